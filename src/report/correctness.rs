//! Did a profile learn what the reference learned? Per node, the KB digests must be
//! equal; where they are not, the name counts say how many names differ and which.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::train::record::LevelRecord;

/// Most example names listed per differing node.
pub const MAX_EXAMPLES: usize = 5;

/// The verdict of the correctness check for one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// This is the reference profile.
    Reference,
    /// Every node's digest equals the reference's.
    Same,
    /// At least one node learned something else: a bug if the profile only tunes speed.
    Differs,
    /// The profile trains other data or segments differently (its learning hash or
    /// dataset differs), so different digests are expected.
    DifferentLearning,
    /// The profile has no measured run.
    NotRun,
}

impl CheckStatus {
    /// Short words for tables: `reference`, `same KB`, `DIFFERS`...
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Reference => "reference",
            CheckStatus::Same => "same KB",
            CheckStatus::Differs => "DIFFERS",
            CheckStatus::DifferentLearning => "DIFFERS (other settings)",
            CheckStatus::NotRun => "not run",
        }
    }

    /// The JSON spelling: `reference`, `same`, `differs`, `different-learning`, `not-run`.
    pub fn key(self) -> &'static str {
        match self {
            CheckStatus::Reference => "reference",
            CheckStatus::Same => "same",
            CheckStatus::Differs => "differs",
            CheckStatus::DifferentLearning => "different-learning",
            CheckStatus::NotRun => "not-run",
        }
    }

    /// True when this is something the user must look at.
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            CheckStatus::Differs | CheckStatus::DifferentLearning | CheckStatus::NotRun
        )
    }
}

/// The correctness check of one profile against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correctness {
    pub status: CheckStatus,
    /// Nodes whose digest differs from the reference's.
    pub differences: Vec<NodeDifference>,
    /// Why digests are not expected to match, for `different-learning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every measured repeat of this profile learned the same digests.
    pub repeats_agree: bool,
    /// Where the digests were read back after each run, and the nodes whose KB as
    /// read is not the client's tally; `None` when the records carry no KB check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back: Option<super::read_back::ReadBackSummary>,
}

impl Correctness {
    /// True when a run's KB as read back is not what the server answered.
    pub fn stores_disagree(&self) -> bool {
        self.read_back
            .as_ref()
            .is_some_and(|r| !r.mismatches.is_empty())
    }
}

/// One node that learned something else than the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDifference {
    pub node: String,
    /// This profile's digest; `None` when it has no such node.
    pub digest: Option<String>,
    /// The reference's digest; `None` when the reference has no such node.
    pub reference_digest: Option<String>,
    pub learns: u64,
    pub reference_learns: u64,
    pub distinct: u64,
    pub reference_distinct: u64,
    /// Names whose count differs; `None` when the name counts of either side were not
    /// read back (for example a report re-rendered from run records).
    pub names_differing: Option<u64>,
    /// Up to [`MAX_EXAMPLES`] differing names, in name order.
    pub examples: Vec<NameExample>,
}

/// One name learned a different number of times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameExample {
    pub name: String,
    /// Times this profile learned it (0: never).
    pub count: u64,
    /// Times the reference learned it (0: never).
    pub reference_count: u64,
}

/// One side of the check: a run's levels and, when read back, each level's name counts
/// (`kb[i]` belongs to `levels[i]`).
#[derive(Debug, Clone, Copy)]
pub struct KbSide<'a> {
    pub levels: &'a [LevelRecord],
    pub kb: &'a [BTreeMap<String, u64>],
}

impl KbSide<'_> {
    fn level(&self, node: &str) -> Option<(&LevelRecord, Option<&BTreeMap<String, u64>>)> {
        let i = self.levels.iter().position(|l| l.node == node)?;
        Some((&self.levels[i], self.kb.get(i)))
    }
}

/// Every node of either side whose digest differs, in the reference's node order.
pub fn differences(side: KbSide<'_>, reference: KbSide<'_>) -> Vec<NodeDifference> {
    let mut nodes: Vec<&str> = reference.levels.iter().map(|l| l.node.as_str()).collect();
    for level in side.levels {
        if !nodes.contains(&level.node.as_str()) {
            nodes.push(&level.node);
        }
    }
    nodes
        .into_iter()
        .filter_map(|node| node_difference(node, side.level(node), reference.level(node)))
        .collect()
}

type Level<'a> = Option<(&'a LevelRecord, Option<&'a BTreeMap<String, u64>>)>;

/// How one node of two runs differs, or `None` when both hold the same there. A node
/// one side lacks and the other never taught a pattern (idle: its level learned
/// nothing) holds nothing on either side, so it is no difference.
fn node_difference(node: &str, mine: Level<'_>, theirs: Level<'_>) -> Option<NodeDifference> {
    let digest = mine.map(|(l, _)| l.kb.digest.clone());
    let reference_digest = theirs.map(|(l, _)| l.kb.digest.clone());
    if digest == reference_digest {
        return None;
    }
    let holds_nothing = |level: Level<'_>| level.is_none_or(|(l, _)| l.kb.distinct == 0);
    if holds_nothing(mine) && holds_nothing(theirs) {
        return None;
    }
    let empty = BTreeMap::new();
    let (names_differing, examples) =
        match (known_counts(mine, &empty), known_counts(theirs, &empty)) {
            (Some(a), Some(b)) => {
                let (n, examples) = name_differences(a, b);
                (Some(n), examples)
            }
            _ => (None, Vec::new()),
        };
    let stat = |level: Level<'_>, f: fn(&LevelRecord) -> u64| level.map_or(0, |(l, _)| f(l));
    Some(NodeDifference {
        node: node.to_string(),
        digest,
        reference_digest,
        learns: stat(mine, |l| l.kb.learns),
        reference_learns: stat(theirs, |l| l.kb.learns),
        distinct: stat(mine, |l| l.kb.distinct),
        reference_distinct: stat(theirs, |l| l.kb.distinct),
        names_differing,
        examples,
    })
}

/// The name counts of a level, if read; a missing node learned nothing, so its
/// (empty) counts are known.
fn known_counts<'a>(
    level: Level<'a>,
    empty: &'a BTreeMap<String, u64>,
) -> Option<&'a BTreeMap<String, u64>> {
    match level {
        None => Some(empty),
        Some((_, kb)) => kb,
    }
}

/// How many names have different counts, and the first few of them by name.
fn name_differences(
    mine: &BTreeMap<String, u64>,
    reference: &BTreeMap<String, u64>,
) -> (u64, Vec<NameExample>) {
    let mut names: Vec<&String> = mine.keys().chain(reference.keys()).collect();
    names.sort();
    names.dedup();
    let mut differing = 0;
    let mut examples = Vec::new();
    for name in names {
        let count = mine.get(name).copied().unwrap_or(0);
        let reference_count = reference.get(name).copied().unwrap_or(0);
        if count == reference_count {
            continue;
        }
        differing += 1;
        if examples.len() < MAX_EXAMPLES {
            examples.push(NameExample {
                name: name.clone(),
                count,
                reference_count,
            });
        }
    }
    (differing, examples)
}

/// True when every run learned the same digest at every node.
pub fn repeats_agree(runs: &[&[LevelRecord]]) -> bool {
    let digests = |levels: &[LevelRecord]| -> Vec<(String, String)> {
        levels
            .iter()
            .map(|l| (l.node.clone(), l.kb.digest.clone()))
            .collect()
    };
    runs.windows(2).all(|w| digests(w[0]) == digests(w[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::digest::{digest_of, KbDigest};

    fn level(node: &str, counts: &BTreeMap<String, u64>) -> LevelRecord {
        LevelRecord {
            node: node.into(),
            chunk_size: 5,
            requests: 1,
            kb: KbDigest {
                digest: digest_of(counts),
                learns: counts.values().sum(),
                distinct: counts.len() as u64,
            },
            dropped: 0,
            receptive_field: 5,
            note: None,
        }
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn equal_name_counts_give_no_difference() {
        let kb = vec![counts(&[("PTRN|a", 2)])];
        let levels = vec![level("node0", &kb[0])];
        let side = KbSide {
            levels: &levels,
            kb: &kb,
        };
        assert!(differences(side, side).is_empty());
    }

    #[test]
    fn a_missing_node_counts_every_reference_name_as_different() {
        let kb = vec![
            counts(&[("PTRN|a", 1)]),
            counts(&[("PTRN|x", 1), ("PTRN|y", 3)]),
        ];
        let levels = [level("node0", &kb[0]), level("node1", &kb[1])];
        let short = KbSide {
            levels: &levels[..1],
            kb: &kb[..1],
        };
        let full = KbSide {
            levels: &levels,
            kb: &kb,
        };
        let diffs = differences(short, full);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].node, "node1");
        assert_eq!(diffs[0].digest, None);
        assert_eq!(diffs[0].names_differing, Some(2));
        assert_eq!(diffs[0].examples[1].reference_count, 3);
    }

    #[test]
    fn a_node_absent_on_one_side_and_idle_on_the_other_is_no_difference() {
        let kb = [counts(&[("PTRN|a", 1)]), counts(&[])];
        let levels = [level("node0", &kb[0]), level("node1", &kb[1])];
        let (short, full) = (&levels[..1], &levels[..]);
        let side = |levels| KbSide { levels, kb: &[] };
        assert!(differences(side(short), side(full)).is_empty());
        assert!(differences(side(full), side(short)).is_empty());
    }

    #[test]
    fn without_name_counts_the_difference_is_still_reported() {
        let a = counts(&[("PTRN|a", 1)]);
        let b = counts(&[("PTRN|b", 1)]);
        let (la, lb) = (vec![level("node0", &a)], vec![level("node0", &b)]);
        let diffs = differences(
            KbSide {
                levels: &la,
                kb: &[],
            },
            KbSide {
                levels: &lb,
                kb: &[],
            },
        );
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].names_differing, None);
        assert!(diffs[0].examples.is_empty());
    }
}
