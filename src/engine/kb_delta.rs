//! What one node learned since its knowledge base was last written: pattern deltas
//! and affinity increments, with the rules that fold them onto what is stored.
//!
//! A learn adds 1 to a pattern's frequency, appends its emotives to a window of the
//! last [`PERSISTENCE`] and unites its metadata values (KATO `knowledge_base.py`
//! `learnPattern`); a learn with emotives also adds their average to each distinct
//! symbol's affinity sums in Redis's `HINCRBYFLOAT` arithmetic (`redis_writer.py`,
//! `batch_update_symbol_affinity`). Each of those folds: a run of learns kept as one
//! [`PatternDelta`] (frequency increment, last emotives, metadata union) and then
//! applied to the stored row gives exactly what applying the learns one by one gives.
//! Affinity sums do not fold (text float addition is not associative), so a symbol's
//! increments are kept in learn order and added one by one when written.
//!
//! Sizes: [`NodeChanges::bytes`] estimates the heap a node's changes hold, for the
//! engine's memory budget (see [`super::pending`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::kb::redis_float;

use super::session::{Learned, PERSISTENCE};

/// Hashes a SHA-1 digest by its first 8 bytes: they are already uniformly random.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by raw SHA-1 digests.
pub type DigestMap<V> = HashMap<[u8; 20], V, BuildHasherDefault<DigestHasher>>;

/// Estimated bytes of one pattern entry beside its JSON (map slot, key, allocations).
const PATTERN_ENTRY_BYTES: usize = 96;
/// Estimated bytes of a boxed [`Extras`] beside its strings.
const EXTRAS_BYTES: usize = 80;
/// Estimated bytes of one map or list element beside its strings.
const ELEMENT_BYTES: usize = 48;

/// Emotives and metadata carried by the learns of a delta (few learns carry any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// The last [`PERSISTENCE`] emotive dicts, oldest first.
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Sorted unique string values per key.
    pub metadata: BTreeMap<String, BTreeSet<String>>,
}

impl Extras {
    /// Adds later learns' emotives (window of the last [`PERSISTENCE`]) and metadata
    /// (values unite); returns the estimated bytes added.
    pub fn absorb(
        &mut self,
        emotives: Vec<BTreeMap<String, f64>>,
        metadata: BTreeMap<String, BTreeSet<String>>,
    ) -> usize {
        let mut bytes = 0;
        if !emotives.is_empty() {
            bytes += emotives.iter().map(dict_bytes).sum::<usize>();
            self.emotives.extend(emotives);
            let skip = self.emotives.len().saturating_sub(PERSISTENCE);
            self.emotives.drain(..skip);
        }
        for (key, values) in metadata {
            bytes += ELEMENT_BYTES + key.len();
            bytes += values
                .iter()
                .map(|v| ELEMENT_BYTES + v.len())
                .sum::<usize>();
            self.metadata.entry(key).or_default().extend(values);
        }
        bytes
    }
}

fn dict_bytes(dict: &BTreeMap<String, f64>) -> usize {
    ELEMENT_BYTES + dict.keys().map(|k| ELEMENT_BYTES + k.len()).sum::<usize>()
}

/// The learns of one pattern since the last write.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternDelta {
    /// The events as the file's `pattern_data` JSON: `[["a","b"],["c"]]`.
    pub pattern_data: Box<str>,
    /// Total symbol count.
    pub length: usize,
    /// Learns since the last write.
    pub frequency: u64,
    /// Emotives and metadata of those learns, when any carried some.
    pub extras: Option<Box<Extras>>,
}

impl PatternDelta {
    /// Adds a later delta of the same pattern.
    fn absorb(&mut self, later: PatternDelta) {
        self.frequency += later.frequency;
        if let Some(extras) = later.extras {
            let Extras { emotives, metadata } = *extras;
            self.extras
                .get_or_insert_with(Box::default)
                .absorb(emotives, metadata);
        }
    }
}

/// One pattern as the knowledge base holds it: a stored row with the deltas applied,
/// or a delta alone when nothing is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternState {
    /// The events as `pattern_data` JSON.
    pub pattern_data: String,
    /// Total symbol count.
    pub length: usize,
    /// Times learned.
    pub frequency: u64,
    /// The last [`PERSISTENCE`] emotive dicts.
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Sorted unique string values per key.
    pub metadata: BTreeMap<String, BTreeSet<String>>,
}

impl PatternState {
    /// A pattern nothing is stored for: the delta is all of it.
    pub fn from_delta(delta: &PatternDelta) -> Self {
        let extras = delta.extras.as_deref().cloned().unwrap_or_default();
        Self {
            pattern_data: delta.pattern_data.to_string(),
            length: delta.length,
            frequency: delta.frequency,
            emotives: extras.emotives,
            metadata: extras.metadata,
        }
    }

    /// Applies the learns of `delta` to this stored pattern.
    pub fn apply(&mut self, delta: &PatternDelta) {
        self.frequency += delta.frequency;
        if let Some(extras) = &delta.extras {
            let mut mine = Extras {
                emotives: std::mem::take(&mut self.emotives),
                metadata: std::mem::take(&mut self.metadata),
            };
            mine.absorb(extras.emotives.clone(), extras.metadata.clone());
            self.emotives = mine.emotives;
            self.metadata = mine.metadata;
        }
    }
}

/// One increment of one emotive of a symbol's affinity: the emotive and the amount as
/// Python's `repr` of the float (what KATO sends to `HINCRBYFLOAT`).
pub type AffinityIncrement = (String, String);

/// Everything one node learned since its changes were last taken.
#[derive(Debug, Default)]
pub struct NodeChanges {
    /// Pattern deltas by digest.
    pub patterns: DigestMap<PatternDelta>,
    /// Per symbol, its affinity increments in learn order.
    pub affinity: HashMap<String, Vec<AffinityIncrement>>,
    /// clear-all happened: what is stored for this node is gone, these changes start
    /// from nothing.
    pub cleared: bool,
    /// Estimated heap bytes held.
    pub bytes: usize,
}

impl NodeChanges {
    /// Records one learn; returns whether it made a new pattern entry.
    pub fn learn(&mut self, learned: Learned) -> bool {
        let Learned {
            digest,
            events,
            emotives,
            metadata,
            averaged_emotives,
        } = learned;
        let mut new = false;
        let delta = self.patterns.entry(digest).or_insert_with(|| {
            new = true;
            PatternDelta {
                pattern_data: serde_json::to_string(&events)
                    .unwrap_or_default()
                    .into_boxed_str(),
                length: events.iter().map(Vec::len).sum(),
                frequency: 0,
                extras: None,
            }
        });
        if new {
            self.bytes += PATTERN_ENTRY_BYTES + delta.pattern_data.len();
        }
        delta.frequency += 1;
        if !emotives.is_empty() || !metadata.is_empty() {
            if delta.extras.is_none() {
                self.bytes += EXTRAS_BYTES;
            }
            let extras = delta.extras.get_or_insert_with(Box::default);
            self.bytes += extras.absorb(emotives, metadata);
        }
        if !averaged_emotives.is_empty() {
            self.add_affinity(&events, &averaged_emotives);
        }
        new
    }

    /// Queues a learn's averaged emotives for each distinct symbol of its events.
    fn add_affinity(&mut self, events: &[Vec<String>], averaged: &BTreeMap<String, f64>) {
        let increments: Vec<AffinityIncrement> = averaged
            .iter()
            .map(|(name, value)| (name.clone(), redis_float::python_float_repr(*value)))
            .collect();
        let each: usize = increments
            .iter()
            .map(|(n, by)| ELEMENT_BYTES + n.len() + by.len())
            .sum();
        let mut seen = BTreeSet::new();
        for symbol in events.iter().flatten() {
            if !seen.insert(symbol.as_str()) {
                continue;
            }
            let queue = match self.affinity.get_mut(symbol) {
                Some(queue) => queue,
                None => {
                    self.bytes += ELEMENT_BYTES + symbol.len();
                    self.affinity.entry(symbol.clone()).or_default()
                }
            };
            queue.extend(increments.iter().cloned());
            self.bytes += each;
        }
    }

    /// Number of pattern entries.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether nothing changed (no pattern, no affinity, no clear).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.affinity.is_empty() && !self.cleared
    }

    /// Puts these (older) changes under `later` ones that arrived meanwhile, as if
    /// they had never been taken; returns how many pattern entries folded into one
    /// (a later clear-all drops all of these).
    pub fn absorb_later(&mut self, later: NodeChanges) -> usize {
        if later.cleared {
            let dropped = self.patterns.len();
            *self = later;
            return dropped;
        }
        let mut folded = 0;
        for (digest, delta) in later.patterns {
            match self.patterns.get_mut(&digest) {
                Some(mine) => {
                    mine.absorb(delta);
                    folded += 1;
                }
                None => {
                    self.patterns.insert(digest, delta);
                }
            }
        }
        for (symbol, increments) in later.affinity {
            self.affinity.entry(symbol).or_default().extend(increments);
        }
        self.bytes += later.bytes;
        folded
    }
}

/// Adds `increments` to `sums` in order, as Redis's `HINCRBYFLOAT` would; an
/// increment Redis would refuse leaves the field as it was (KATO's learn then fails,
/// the pattern itself is already counted).
pub fn add_increments(
    sums: &mut BTreeMap<String, String>,
    increments: &[AffinityIncrement],
    symbol: &str,
) {
    for (name, by) in increments {
        match redis_float::hincrbyfloat(sums.get(name).map(String::as_str), by) {
            Ok(text) => {
                sums.insert(name.clone(), text);
            }
            Err(error) => {
                tracing::warn!(%symbol, emotive = %name, %error, "affinity not updated")
            }
        }
    }
}

#[cfg(test)]
#[path = "kb_delta_tests.rs"]
mod tests;
