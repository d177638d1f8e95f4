//! Merging knowledge bases as if one run had learned everything they learned
//! (`katotune kb merge`): the reduce step after sharded training.
//!
//! A pattern's name depends only on its content, so the same pattern learned in two
//! shards has the same name, and KATO's per-pattern state is a sum (KATO 3.10.1
//! `knowledge_base.py` `learnPattern`, `redis_writer.py`; facts in
//! `../shared/kato/storage/README.md`). What is exact and what is not:
//!
//! - **frequency**: learns add, so the sum is exact; hence every KB digest (SHA-1 over
//!   the sorted `name frequency` lines) of the merge equals the single run's.
//! - **metadata**: KATO keeps, per key, the set of values ever attached; the union of
//!   sorted unique strings is exact.
//! - **emotives**: KATO keeps the last `PERSISTENCE` (5) emotive dicts of the learns
//!   that carried emotives, in learn order; learns without emotives add nothing. When
//!   one input holds a pattern's emotives, its window is the single run's window
//!   (exact). When several do, the order their learns interleaved in is not recorded
//!   anywhere: the merge refuses ([`MergeError::Inexact`]) unless asked to combine them
//!   in input order (windows concatenated, last 5 kept), and then counts them.
//! - **affinity**: per symbol and emotive, a running float sum written as Redis's
//!   `HINCRBYFLOAT` text. Float addition depends on order, so a sum found in one input
//!   is exact and a sum found in several is refused unless combined in input order
//!   (Redis arithmetic, [`super::redis_float`]), and counted.
//!
//! Training without emotives (katotune's trainer sends none) therefore always merges
//! exactly. The merge streams: a k-way merge over inputs read in key order
//! ([`super::sorted_source`]), one page per input in memory, and the output is written
//! as it goes (an engine KB file, or a dump).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;

use serde::Serialize;

use super::kato_form::EMOTIVE_WINDOW;
use super::redis_float::hincrbyfloat;
use super::sorted_source::{AffinityRow, SortedSource, SourceError};
use super::stats::StatsBuilder;
use super::{AffinityEntry, PatternEntry};

/// How to treat what cannot be merged exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    /// Combine emotive windows and affinity sums found in several inputs in input
    /// order (not exact; counted in the report) instead of refusing.
    pub combine_emotives: bool,
}

/// Why a merge stopped; nothing of it is left at the output.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// An input could not be read, or is not in merge order.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The output could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    /// The output exists and replacing it was not asked for.
    #[error(
        "{} already exists; the merge writes a new knowledge base and never changes one: \
         choose another -o, or pass --overwrite to replace it (and the resume journal beside it)",
        path.display()
    )]
    OutputExists { path: PathBuf },
    /// Something several inputs hold that cannot be combined exactly.
    #[error(
        "cannot merge exactly: {what} in {inputs}. KATO keeps {kept}, and the order in \
         which the inputs' learns happened is not recorded, so no merge can rebuild it. \
         Pass --combine-emotives to combine them in input order anyway (the merge then \
         says how many are not exact); frequencies, metadata and digests stay exact"
    )]
    Inexact {
        what: String,
        inputs: String,
        kept: &'static str,
    },
    /// Two inputs give one pattern name different events: one of them is damaged or was
    /// named by another rule.
    #[error(
        "pattern {name} of {kb_id} has different events in {a} and {b}: the same name must \
         mean the same events (KATO's naming rule); one input is damaged or was made by \
         another naming rule, so they cannot be merged"
    )]
    EventsDiffer {
        kb_id: String,
        name: String,
        a: String,
        b: String,
    },
    /// An input's entries are not in merge order.
    #[error("{input}: {what} comes after {after}, out of merge order; {hint}")]
    OutOfOrder {
        input: String,
        what: String,
        after: String,
        hint: &'static str,
    },
}

const ORDER_HINT: &str = "a dump of KATO's stores is not in (KB, name) order: load it \
     into an engine file first (`katotune kb load DUMP --into FILE.kato.db`) and merge that";

/// Where merged entries go, in key order.
pub trait MergeSink {
    /// Writes one merged pattern.
    fn pattern(&mut self, p: &PatternEntry) -> Result<(), MergeError>;
    /// Writes one symbol's merged affinity sums.
    fn affinity(&mut self, a: &AffinityEntry) -> Result<(), MergeError>;
}

/// One merged knowledge base, as `kb status` would summarise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedKb {
    pub kb_id: String,
    /// Distinct patterns.
    pub patterns: u64,
    /// Sum of frequencies.
    pub learns: u64,
    /// Patterns held by more than one input (their frequencies were added).
    pub shared: u64,
    /// The KB digest (`kb status`, the run record's).
    pub digest: String,
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Per KB, in id order.
    pub kbs: Vec<MergedKb>,
    /// Affinity sums written (one per symbol and emotive).
    pub affinity_sums: u64,
    /// Patterns whose emotive windows from several inputs were combined in input order.
    pub inexact_emotives: u64,
    /// Affinity sums from several inputs added in input order.
    pub inexact_sums: u64,
}

/// Merges `sources` (named `names` in messages) into `sink`.
///
/// # Errors
/// [`MergeError`]; the sink may hold part of the output, which the caller discards.
pub fn merge(
    sources: &mut [Box<dyn SortedSource>],
    names: &[String],
    sink: &mut dyn MergeSink,
    opts: MergeOptions,
) -> Result<MergeReport, MergeError> {
    let mut report = MergeReport::default();
    let mut stats: Option<(StatsBuilder, u64)> = None;
    kway(
        sources.len(),
        |i| Ok(sources[i].next_pattern()?),
        |p: &PatternEntry| (p.kb_id.clone(), p.name.clone()),
        |group| {
            let shared = group.len() > 1;
            let p = combine_pattern(group, names, opts, &mut report)?;
            tally(&mut stats, &mut report, &p, shared)?;
            sink.pattern(&p)
        },
        |i, after, what| {
            out_of_order(
                &names[i],
                &format!("pattern {}/{}", what.0, what.1),
                &format!("{}/{}", after.0, after.1),
            )
        },
    )?;
    if let Some((b, shared)) = stats.take() {
        report.kbs.push(finish(b, shared));
    }
    let mut entry: Option<AffinityEntry> = None;
    kway(
        sources.len(),
        |i| Ok(sources[i].next_affinity()?),
        |r: &AffinityRow| (r.0.clone(), r.1.clone(), r.2.clone()),
        |group| {
            let (kb_id, symbol, emotive, sum) = combine_sum(group, names, opts, &mut report)?;
            report.affinity_sums += 1;
            match &mut entry {
                Some(e) if e.kb_id == kb_id && e.symbol == symbol => {
                    e.sums.insert(emotive, sum);
                }
                _ => {
                    if let Some(done) = entry.take() {
                        sink.affinity(&done)?;
                    }
                    let sums = BTreeMap::from([(emotive, sum)]);
                    entry = Some(AffinityEntry {
                        kb_id,
                        symbol,
                        sums,
                    });
                }
            }
            Ok(())
        },
        |i, after, what| {
            out_of_order(
                &names[i],
                &format!("affinity {}/{}/{}", what.0, what.1, what.2),
                &format!("{}/{}/{}", after.0, after.1, after.2),
            )
        },
    )?;
    if let Some(done) = entry {
        sink.affinity(&done)?;
    }
    Ok(report)
}

fn out_of_order(input: &str, what: &str, after: &str) -> MergeError {
    MergeError::OutOfOrder {
        input: input.to_string(),
        what: what.to_string(),
        after: after.to_string(),
        hint: ORDER_HINT,
    }
}

/// A k-way merge: takes entries from `count` inputs (`next(i)`, each in ascending
/// `key` order) and hands every group of entries with the same key to `on_group`, in
/// key order, each group in input order. An input whose next key is not above its
/// last one stops the merge with `unsorted(input, last key, next key)`.
fn kway<T, K: Ord + Clone>(
    count: usize,
    mut next: impl FnMut(usize) -> Result<Option<T>, MergeError>,
    key: impl Fn(&T) -> K,
    mut on_group: impl FnMut(Vec<(usize, T)>) -> Result<(), MergeError>,
    unsorted: impl Fn(usize, &K, &K) -> MergeError,
) -> Result<(), MergeError> {
    let mut heads: Vec<Option<T>> = Vec::with_capacity(count);
    let mut heap = BinaryHeap::new();
    for i in 0..count {
        let head = next(i)?;
        if let Some(t) = &head {
            heap.push(Reverse((key(t), i)));
        }
        heads.push(head);
    }
    while let Some(Reverse((k, first))) = heap.pop() {
        let mut members = vec![first];
        while heap.peek().is_some_and(|Reverse((other, _))| *other == k) {
            if let Some(Reverse((_, i))) = heap.pop() {
                members.push(i);
            }
        }
        members.sort_unstable();
        let mut group = Vec::with_capacity(members.len());
        for i in members {
            if let Some(t) = heads[i].take() {
                group.push((i, t));
            }
            if let Some(t) = next(i)? {
                let nk = key(&t);
                if nk <= k {
                    return Err(unsorted(i, &k, &nk));
                }
                heap.push(Reverse((nk, i)));
                heads[i] = Some(t);
            }
        }
        on_group(group)?;
    }
    Ok(())
}

/// One pattern from every input that holds it (see the module docs for what is exact).
fn combine_pattern(
    group: Vec<(usize, PatternEntry)>,
    names: &[String],
    opts: MergeOptions,
    report: &mut MergeReport,
) -> Result<PatternEntry, MergeError> {
    let with_emotives: Vec<usize> = (group.iter())
        .filter(|(_, p)| !p.emotives.is_empty())
        .map(|(i, _)| *i)
        .collect();
    let mut parts = group.into_iter();
    let (first_input, mut merged) = parts.next().expect("a group is never empty");
    if with_emotives.len() > 1 {
        if !opts.combine_emotives {
            return Err(MergeError::Inexact {
                what: format!(
                    "pattern {} of {} carries emotives",
                    merged.name, merged.kb_id
                ),
                inputs: inputs(names, &with_emotives),
                kept: "the last 5 emotive dicts in learn order",
            });
        }
        report.inexact_emotives += 1;
    }
    for (i, p) in parts {
        if p.events != merged.events {
            return Err(MergeError::EventsDiffer {
                kb_id: p.kb_id,
                name: p.name,
                a: names[first_input].clone(),
                b: names[i].clone(),
            });
        }
        merged.frequency = merged.frequency.saturating_add(p.frequency);
        merged.emotives.extend(p.emotives);
        for (key, values) in p.metadata {
            merged.metadata.entry(key).or_default().extend(values);
        }
    }
    let skip = merged.emotives.len().saturating_sub(EMOTIVE_WINDOW);
    merged.emotives.drain(..skip);
    Ok(merged)
}

/// One affinity sum from every input that holds it.
fn combine_sum(
    group: Vec<(usize, AffinityRow)>,
    names: &[String],
    opts: MergeOptions,
    report: &mut MergeReport,
) -> Result<AffinityRow, MergeError> {
    let holders: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
    let mut parts = group.into_iter().map(|(_, row)| row);
    let (kb_id, symbol, emotive, mut sum) = parts.next().expect("a group is never empty");
    if holders.len() > 1 {
        if !opts.combine_emotives {
            return Err(MergeError::Inexact {
                what: format!("the affinity of symbol {symbol:?} for emotive {emotive:?} in {kb_id}"),
                inputs: inputs(names, &holders),
                kept: "one running float sum per symbol and emotive, whose last digits depend on the order of the additions",
            });
        }
        report.inexact_sums += 1;
        for (_, _, _, more) in parts {
            sum = hincrbyfloat(Some(&sum), &more).map_err(|e| MergeError::Inexact {
                what: format!(
                    "the affinity of symbol {symbol:?} for emotive {emotive:?} in {kb_id} ({e})"
                ),
                inputs: inputs(names, &holders),
                kept: "one running float sum per symbol and emotive",
            })?;
        }
    }
    Ok((kb_id, symbol, emotive, sum))
}

fn inputs(names: &[String], which: &[usize]) -> String {
    which
        .iter()
        .map(|i| names[*i].as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Adds a merged pattern to its KB's summary, starting a new one at each KB id.
fn tally(
    stats: &mut Option<(StatsBuilder, u64)>,
    report: &mut MergeReport,
    p: &PatternEntry,
    shared: bool,
) -> Result<(), MergeError> {
    let same_kb = stats.as_ref().is_some_and(|(b, _)| b.kb_id() == p.kb_id);
    if !same_kb {
        if let Some((b, shared)) = stats.take() {
            report.kbs.push(finish(b, shared));
        }
        *stats = Some((StatsBuilder::new(&p.kb_id), 0));
    }
    let (b, count) = stats.as_mut().expect("set above");
    *count += u64::from(shared);
    b.add(&p.name, p.frequency)
        .map_err(|e| MergeError::OutOfOrder {
            input: "the merge".into(),
            what: e.to_string(),
            after: String::new(),
            hint: ORDER_HINT,
        })
}

fn finish(b: StatsBuilder, shared: u64) -> MergedKb {
    let s = b.finish(0, None);
    MergedKb {
        kb_id: s.kb_id,
        patterns: s.patterns,
        learns: s.learns,
        shared,
        digest: s.digest,
    }
}

#[path = "merge_sinks.rs"]
mod sinks;
pub use sinks::{DumpSink, EngineFileSink};

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
