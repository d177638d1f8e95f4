//! The knowledge base a run left behind, read back from where the server keeps it and
//! set against the client's tally of the names the server answered.
//!
//! The client's tally ([`super::digest::NodeTally`]) says what the server *answered*;
//! only reading the KB back says what it *stored*. `compare` reads every node back after
//! each run: from KATO's Redis and ClickHouse (`kato.patterns_data` rows with their
//! `<kb>:frequency:<name>` keys, KATO `kato/storage/redis_writer.py`), or from katotune's
//! engine (`GET /katotune/kb/{node}`), with the digest definition of the run record
//! ([`super::digest`]). A node whose stored digest is not its tally is a mismatch: the
//! server kept something else than it said it learned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::{digest_counts, KbDigest};
use super::record::{LevelRecord, RunRecord};

/// Where a run's KB digests come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KbSource {
    /// Read from KATO's Redis and ClickHouse.
    Stores,
    /// Read from katotune's engine (`GET /katotune/kb/{node}`): it keeps its KB itself.
    Engine,
    /// Nothing could be read back: the names the server answered, tallied by the client.
    ClientTally,
}

impl KbSource {
    /// Words for tables and notes: `from the stores`, `from the engine`, `client tally`.
    pub fn label(self) -> &'static str {
        match self {
            KbSource::Stores => "from the stores",
            KbSource::Engine => "from the engine",
            KbSource::ClientTally => "client tally",
        }
    }
}

/// One run's KB as read back, node by node, against the client's tally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KbCheck {
    pub source: KbSource,
    /// Why this source (for example: katotune's engine serves in KATO's place and keeps
    /// its KB itself, not in the stack's Redis and ClickHouse).
    pub note: String,
    /// Per node, in level order.
    pub nodes: Vec<NodeCheck>,
}

/// One node's KB as read back and as tallied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCheck {
    /// The profile's node id (`node0`).
    pub node: String,
    /// The KB the run trained and that was read: `<node>_<SERVICE_NAME>`, or a node of
    /// the run's own (`kt<id>_node0_kato`) when the stack is shared or external.
    pub kb_id: String,
    /// The KB as read back (the tally itself when the source is the client tally).
    pub kb: KbDigest,
    /// The names the server answered, tallied by the client.
    pub tally: KbDigest,
}

impl NodeCheck {
    /// True when the stored KB is the tallied one.
    pub fn agrees(&self) -> bool {
        self.kb.digest == self.tally.digest
    }
}

/// One node to check: its ids, what was read (`None`: nothing could be read) and the
/// client's name counts.
pub struct NodeReading<'a> {
    pub node: String,
    pub kb_id: String,
    pub read: Option<&'a BTreeMap<String, u64>>,
    pub tally: &'a BTreeMap<String, u64>,
}

impl KbCheck {
    /// The check of `readings` read from `source`. A node read from nowhere counts as
    /// its tally (and the whole check as [`KbSource::ClientTally`] when none was read).
    pub fn build(source: KbSource, note: String, readings: &[NodeReading<'_>]) -> KbCheck {
        let nodes = readings
            .iter()
            .map(|r| {
                let tally = digest_counts(r.tally);
                NodeCheck {
                    node: r.node.clone(),
                    kb_id: r.kb_id.clone(),
                    kb: r.read.map_or_else(|| tally.clone(), digest_counts),
                    tally,
                }
            })
            .collect();
        let read_any = readings.iter().any(|r| r.read.is_some());
        KbCheck {
            source: if read_any {
                source
            } else {
                KbSource::ClientTally
            },
            note,
            nodes,
        }
    }

    /// Nodes whose stored KB is not what the client tallied.
    pub fn mismatches(&self) -> impl Iterator<Item = &NodeCheck> {
        self.nodes.iter().filter(|n| !n.agrees())
    }
}

impl RunRecord {
    /// The levels with each node's KB as read back after the run (`kb_check`), or as
    /// tallied when the record has no check: what `compare` compares between profiles.
    pub fn kb_levels(&self) -> Vec<LevelRecord> {
        let mut levels = self.levels.clone();
        let Some(check) = &self.kb_check else {
            return levels;
        };
        for level in &mut levels {
            if let Some(read) = check.nodes.iter().find(|n| n.node == level.node) {
                level.kb = read.kb.clone();
            }
        }
        levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_stored_kb_that_is_not_the_tally_is_a_mismatch_and_names_its_node() {
        let tally = counts(&[("PTRN|a", 2), ("PTRN|b", 1)]);
        let short = counts(&[("PTRN|a", 1), ("PTRN|b", 1)]);
        let readings = [
            NodeReading {
                node: "node0".into(),
                kb_id: "node0_kato".into(),
                read: Some(&tally),
                tally: &tally,
            },
            NodeReading {
                node: "node1".into(),
                kb_id: "node1_kato".into(),
                read: Some(&short),
                tally: &tally,
            },
        ];
        let check = KbCheck::build(KbSource::Stores, String::new(), &readings);
        assert_eq!(check.source, KbSource::Stores);
        let bad: Vec<&str> = check.mismatches().map(|n| n.node.as_str()).collect();
        assert_eq!(bad, ["node1"]);
        assert_eq!(check.nodes[1].kb.learns, 2);
        assert_eq!(check.nodes[1].tally.learns, 3);
    }

    #[test]
    fn nothing_read_is_the_client_tally_and_agrees() {
        let tally = counts(&[("PTRN|a", 2)]);
        let readings = [NodeReading {
            node: "node0".into(),
            kb_id: "node0_kato".into(),
            read: None,
            tally: &tally,
        }];
        let check = KbCheck::build(KbSource::Stores, "no stores".into(), &readings);
        assert_eq!(check.source, KbSource::ClientTally);
        assert_eq!(check.mismatches().count(), 0);
    }
}
