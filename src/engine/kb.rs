//! Knowledge bases in memory: one per KB id, shared by every session of that node.
//!
//! A learn creates a pattern with frequency 1 or increments it, appends emotives (keeping
//! the last [`PERSISTENCE`]) and merges metadata as sorted unique strings, all under the
//! node's lock so concurrent learners count exactly. A learn that carried emotives
//! also adds their average to each of its symbols' affinity sums, kept as the text
//! Redis's `HINCRBYFLOAT` would hold (see [`crate::kb::redis_float`]).
//!
//! When the engine persists, each change marks the pattern dirty (and the symbols
//! whose affinity changed); the store's writer collects them with
//! [`NodeKb::take_changes`] and writes them behind the request path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::Value;

use crate::kato::api::StoredPattern;

use crate::kb::redis_float;

use super::session::{wire_name_of, Learned, PERSISTENCE};
use super::store::PendingChanges;

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

type DigestMap<V> = HashMap<[u8; 20], V, BuildHasherDefault<DigestHasher>>;

/// One stored pattern.
#[derive(Debug, Clone)]
pub struct PatternRecord {
    /// The events, sorted per event.
    pub events: Arc<Vec<Vec<String>>>,
    /// Total symbol count.
    pub length: usize,
    /// How many times the pattern was learned.
    pub frequency: u64,
    /// The last [`PERSISTENCE`] emotive dicts.
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Sorted unique string values per key.
    pub metadata: BTreeMap<String, BTreeSet<String>>,
    /// Whether the row exists in the database file.
    pub persisted: bool,
    dirty: bool,
}

impl PatternRecord {
    /// A record loaded from the database file.
    pub fn loaded(
        events: Vec<Vec<String>>,
        frequency: u64,
        emotives: Vec<BTreeMap<String, f64>>,
        metadata: BTreeMap<String, BTreeSet<String>>,
    ) -> Self {
        Self {
            length: events.iter().map(Vec::len).sum(),
            events: Arc::new(events),
            frequency,
            emotives,
            metadata,
            persisted: true,
            dirty: false,
        }
    }
}

/// Changes of one node since the writer last looked.
#[derive(Debug, Default)]
pub struct Changes {
    /// The KB was emptied by clear-all before these rows changed.
    pub cleared: bool,
    /// Bare digest and a snapshot of each changed pattern.
    pub rows: Vec<([u8; 20], PatternRecord)>,
    /// Symbol and a snapshot of its affinity sums, for each symbol whose sums changed.
    /// They only change together with a pattern in `rows`, so they need no count.
    pub affinity: Vec<(String, SymbolAffinity)>,
}

/// One symbol's affinity: emotive name to its running sum as Redis's text.
pub type SymbolAffinity = BTreeMap<String, String>;

#[derive(Default)]
struct KbInner {
    patterns: DigestMap<PatternRecord>,
    dirty: Vec<[u8; 20]>,
    cleared: bool,
    affinity: HashMap<String, SymbolAffinity>,
    affinity_dirty: BTreeSet<String>,
}

impl KbInner {
    /// Adds a learn's averaged emotives to each distinct symbol's sums, as KATO's
    /// `HINCRBYFLOAT` pipeline does (`redis_writer.py`, `batch_update_symbol_affinity`).
    fn add_affinity(
        &mut self,
        events: &[Vec<String>],
        averaged: &BTreeMap<String, f64>,
        track: bool,
    ) {
        let increments: Vec<(&String, String)> = averaged
            .iter()
            .map(|(name, value)| (name, redis_float::python_float_repr(*value)))
            .collect();
        let mut seen = BTreeSet::new();
        for symbol in events.iter().flatten() {
            if !seen.insert(symbol.as_str()) {
                continue;
            }
            let sums = self.affinity.entry(symbol.clone()).or_default();
            for (name, by) in &increments {
                let current = sums.get(*name).map(String::as_str);
                match redis_float::hincrbyfloat(current, by) {
                    Ok(text) => {
                        sums.insert((*name).clone(), text);
                    }
                    // Redis refuses the increment and keeps the field (KATO's learn
                    // then fails); the pattern itself is already counted here.
                    Err(error) => {
                        tracing::warn!(%symbol, emotive = %name, %error, "affinity not updated")
                    }
                }
            }
            if track && !self.affinity_dirty.contains(symbol) {
                self.affinity_dirty.insert(symbol.clone());
            }
        }
    }
}

/// One node's knowledge base.
pub struct NodeKb {
    /// The KB id, `kb_id(node_id, service_name)`.
    pub kb_id: String,
    inner: Mutex<KbInner>,
    /// Shared count of changes not yet written, when the engine persists.
    pending: Option<Arc<PendingChanges>>,
}

impl NodeKb {
    fn lock(&self) -> MutexGuard<'_, KbInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a batch of learned patterns; returns how many were new.
    pub fn learn_all(&self, batch: Vec<Learned>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let track = self.pending.is_some();
        let mut new = 0;
        let mut changed = 0;
        let mut kb = self.lock();
        for learned in batch {
            let Learned {
                digest,
                events,
                emotives,
                metadata,
                averaged_emotives,
            } = learned;
            let KbInner {
                patterns, dirty, ..
            } = &mut *kb;
            let record = patterns.entry(digest).or_insert_with(|| {
                new += 1;
                PatternRecord {
                    length: events.iter().map(Vec::len).sum(),
                    events: Arc::new(events),
                    frequency: 0,
                    emotives: Vec::new(),
                    metadata: BTreeMap::new(),
                    persisted: false,
                    dirty: false,
                }
            });
            record.frequency += 1;
            if !emotives.is_empty() {
                record.emotives.extend(emotives);
                let skip = record.emotives.len().saturating_sub(PERSISTENCE);
                record.emotives.drain(..skip);
            }
            for (key, values) in metadata {
                record.metadata.entry(key).or_default().extend(values);
            }
            if track && !record.dirty {
                record.dirty = true;
                dirty.push(digest);
                changed += 1;
            }
            if !averaged_emotives.is_empty() {
                let events = Arc::clone(&record.events);
                kb.add_affinity(&events, &averaged_emotives, track);
            }
        }
        // Counted before the lock is released, so the writer never takes a change
        // it has not seen counted.
        if let Some(pending) = &self.pending {
            pending.add(changed);
        }
        drop(kb);
        new
    }

    /// The pattern as `GET /pattern` shows it.
    pub fn get(&self, digest: &[u8; 20]) -> Option<StoredPattern> {
        let kb = self.lock();
        let record = kb.patterns.get(digest)?;
        Some(StoredPattern {
            name: wire_name_of(digest),
            pattern_data: record.events.as_ref().clone(),
            length: record.length,
            frequency: record.frequency,
            emotives: record.emotives.iter().map(emotive_value).collect(),
            metadata: record
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
                .collect(),
        })
    }

    /// Every pattern's wire name and frequency, sorted by name.
    pub fn frequencies(&self) -> Vec<(String, u64)> {
        let kb = self.lock();
        let mut out: Vec<_> = kb
            .patterns
            .iter()
            .map(|(d, r)| (wire_name_of(d), r.frequency))
            .collect();
        drop(kb);
        out.sort_unstable();
        out
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.lock().patterns.len()
    }

    /// Whether the KB holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// clear-all: forgets every pattern of this node.
    pub fn clear(&self) {
        let mut kb = self.lock();
        kb.patterns.clear();
        kb.dirty.clear();
        kb.affinity.clear();
        kb.affinity_dirty.clear();
        kb.cleared = self.pending.is_some();
    }

    /// Forgets every pattern and change in memory, without marking the node cleared
    /// (a rollback to the file: the store reloads what it holds).
    pub fn reset(&self) {
        let mut kb = self.lock();
        kb.patterns.clear();
        kb.dirty.clear();
        kb.affinity.clear();
        kb.affinity_dirty.clear();
        kb.cleared = false;
    }

    /// Snapshots and resets this node's changes for the writer.
    pub fn take_changes(&self) -> Changes {
        let mut kb = self.lock();
        let cleared = std::mem::take(&mut kb.cleared);
        let digests = std::mem::take(&mut kb.dirty);
        let mut rows = Vec::with_capacity(digests.len());
        for digest in digests {
            if let Some(record) = kb.patterns.get_mut(&digest) {
                record.dirty = false;
                rows.push((digest, record.clone()));
                record.persisted = true;
            }
        }
        let symbols = std::mem::take(&mut kb.affinity_dirty);
        let affinity = symbols
            .into_iter()
            .filter_map(|symbol| {
                let sums = kb.affinity.get(&symbol)?.clone();
                Some((symbol, sums))
            })
            .collect();
        Changes {
            cleared,
            rows,
            affinity,
        }
    }

    /// Puts a symbol's loaded affinity sums in place (database load at start).
    pub fn insert_loaded_affinity(&self, symbol: String, sums: SymbolAffinity) {
        self.lock().affinity.insert(symbol, sums);
    }

    /// Every symbol's affinity sums, sorted by symbol (for dumps and tests).
    pub fn affinity(&self) -> Vec<(String, SymbolAffinity)> {
        let kb = self.lock();
        let mut out: Vec<_> = kb
            .affinity
            .iter()
            .map(|(symbol, sums)| (symbol.clone(), sums.clone()))
            .collect();
        drop(kb);
        out.sort_unstable();
        out
    }

    /// Puts a loaded record in place (database load at start).
    pub fn insert_loaded(&self, digest: [u8; 20], record: PatternRecord) {
        self.lock().patterns.insert(digest, record);
    }
}

/// An emotive dict as JSON (ints were coerced to float on the way in).
fn emotive_value(dict: &BTreeMap<String, f64>) -> Value {
    Value::Object(
        dict.iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect(),
    )
}

/// Every node's knowledge base, keyed by KB id.
#[derive(Default)]
pub struct KnowledgeBases {
    nodes: RwLock<HashMap<String, Arc<NodeKb>>>,
    pending: Option<Arc<PendingChanges>>,
}

impl KnowledgeBases {
    /// Knowledge bases that count pending changes in `pending` (None = ephemeral).
    pub fn new(pending: Option<Arc<PendingChanges>>) -> Self {
        Self {
            nodes: RwLock::default(),
            pending,
        }
    }

    /// The KB with this id, created empty on first use.
    pub fn node(&self, kb_id: &str) -> Arc<NodeKb> {
        if let Some(kb) = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kb_id)
        {
            return Arc::clone(kb);
        }
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(nodes.entry(kb_id.to_owned()).or_insert_with(|| {
            Arc::new(NodeKb {
                kb_id: kb_id.to_owned(),
                inner: Mutex::default(),
                pending: self.pending.clone(),
            })
        }))
    }

    /// The KB with this id if it was ever used.
    pub fn existing(&self, kb_id: &str) -> Option<Arc<NodeKb>> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.get(kb_id).cloned()
    }

    /// Every KB, for the writer and `/status`.
    pub fn all(&self) -> Vec<Arc<NodeKb>> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.values().cloned().collect()
    }
}

/// Parses 40 hex digits into a digest.
pub fn parse_digest(hex_digits: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex_digits, &mut out).ok()?;
    Some(out)
}
