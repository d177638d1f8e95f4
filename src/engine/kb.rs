//! Knowledge bases: one per KB id, shared by every session of that node, in bounded
//! memory whatever their size.
//!
//! A learn records a delta in memory under the node's lock, so concurrent learners
//! count exactly (folding rules in [`super::kb_delta`]). The patterns themselves live
//! in the SQLite file ([`super::kb_disk`]): a writer moves the deltas there as upserts
//! ([`super::flush`]), and every read (`GET /pattern`, the listing, `/status` counts)
//! combines the file with the deltas not yet written. An engine without a file keeps
//! whole patterns in memory until they pass half its budget, then moves them to a
//! private temporary file and goes on the same way.
//!
//! Locks are always taken in the order disk, then node: a read holds the disk while it
//! looks at both, so it never sees a delta twice or not at all while the writer moves it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::Value;

use crate::kato::api::StoredPattern;

use super::kb_delta::{add_increments, NodeChanges, PatternState};
use super::kb_disk::Disk;
use super::pending::{MemoryBudget, PendingChanges};
use super::session::{wire_name_of, Learned};

pub use super::kb_delta::{DigestHasher, DigestMap};

/// One symbol's affinity: emotive name to its running sum as Redis's text.
pub type SymbolAffinity = BTreeMap<String, String>;

/// What every node's knowledge base shares: the file, once there is one, and the
/// counts of what is pending.
pub struct Backing {
    pub(super) disk: Mutex<Option<Disk>>,
    pub(super) pending: Arc<PendingChanges>,
    /// Pending bytes at which the writer is woken.
    pub(super) wake_at: usize,
}

impl Backing {
    pub(super) fn disk(&self) -> MutexGuard<'_, Option<Disk>> {
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's knowledge base.
pub struct NodeKb {
    /// The KB id, `kb_id(node_id, service_name)`.
    pub kb_id: String,
    changes: Mutex<NodeChanges>,
    backing: Arc<Backing>,
}

impl NodeKb {
    pub(super) fn changes(&self) -> MutexGuard<'_, NodeChanges> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a batch of learned patterns. When more than the memory budget's share of
    /// changes is pending, waits until the writer has made room (blocking).
    pub fn learn_all(&self, batch: Vec<Learned>) {
        if batch.is_empty() {
            return;
        }
        let pending = &self.backing.pending;
        {
            let mut changes = self.changes();
            let before = changes.bytes;
            let mut entries = 0;
            for learned in batch {
                entries += usize::from(changes.learn(learned));
            }
            // Counted before the lock is released, so the writer never takes a change
            // it has not seen counted.
            pending.add(entries, changes.bytes - before, self.backing.wake_at);
        }
        pending.wait_for_room();
    }

    /// The pattern as `GET /pattern` shows it.
    pub fn get(&self, digest: &[u8; 20]) -> Option<StoredPattern> {
        let disk = self.backing.disk();
        let (delta, cleared) = {
            let changes = self.changes();
            (changes.patterns.get(digest).cloned(), changes.cleared)
        };
        let stored = match (disk.as_ref(), cleared) {
            (Some(disk), false) => disk.pattern(&self.kb_id, digest).unwrap_or_else(|error| {
                tracing::warn!(kb_id = %self.kb_id, %error, "reading a pattern");
                None
            }),
            _ => None,
        };
        drop(disk);
        let state = match (stored, delta) {
            (Some(mut state), Some(delta)) => {
                state.apply(&delta);
                state
            }
            (Some(state), None) => state,
            (None, Some(delta)) => PatternState::from_delta(&delta),
            (None, None) => return None,
        };
        Some(StoredPattern {
            name: wire_name_of(digest),
            pattern_data: serde_json::from_str(&state.pattern_data).unwrap_or_default(),
            length: state.length,
            frequency: state.frequency,
            emotives: state.emotives.iter().map(emotive_value).collect(),
            metadata: state
                .metadata
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
        })
    }

    /// Every pattern's digest and frequency in name order, file and pending changes
    /// together, without holding them all in memory; `visit` returns false to stop.
    /// The writer waits meanwhile.
    pub fn visit_frequencies(&self, mut visit: impl FnMut(&[u8; 20], u64) -> bool) {
        let disk = self.backing.disk();
        let (mut pending, cleared): (Vec<([u8; 20], u64)>, bool) = {
            let changes = self.changes();
            let list = changes
                .patterns
                .iter()
                .map(|(d, delta)| (*d, delta.frequency))
                .collect();
            (list, changes.cleared)
        };
        pending.sort_unstable();
        let mut next = 0;
        let mut going = true;
        if let (Some(disk), false) = (disk.as_ref(), cleared) {
            let read = disk.visit_frequencies(&self.kb_id, |digest, mut frequency| {
                while next < pending.len() && pending[next].0 < digest {
                    going = visit(&pending[next].0, pending[next].1);
                    next += 1;
                    if !going {
                        return false;
                    }
                }
                if next < pending.len() && pending[next].0 == digest {
                    frequency += pending[next].1;
                    next += 1;
                }
                going = visit(&digest, frequency);
                going
            });
            if let Err(error) = read {
                tracing::warn!(kb_id = %self.kb_id, %error, "listing the knowledge base");
            }
        }
        while going && next < pending.len() {
            going = visit(&pending[next].0, pending[next].1);
            next += 1;
        }
    }

    /// Every pattern's wire name and frequency, sorted by name.
    pub fn frequencies(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        self.visit_frequencies(|digest, frequency| {
            out.push((wire_name_of(digest), frequency));
            true
        });
        out
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        let mut disk = self.backing.disk();
        let (digests, cleared): (Vec<[u8; 20]>, bool) = {
            let changes = self.changes();
            (changes.patterns.keys().copied().collect(), changes.cleared)
        };
        let Some(disk) = disk.as_mut().filter(|_| !cleared) else {
            return digests.len();
        };
        let counted = disk.count(&self.kb_id).and_then(|stored| {
            let mut total = stored;
            for digest in &digests {
                total += u64::from(!disk.contains(&self.kb_id, digest)?);
            }
            Ok(total)
        });
        match counted {
            Ok(total) => usize::try_from(total).unwrap_or(usize::MAX),
            Err(error) => {
                tracing::warn!(kb_id = %self.kb_id, %error, "counting patterns");
                digests.len()
            }
        }
    }

    /// Whether the KB holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// clear-all: forgets every pattern and affinity sum of this node (the file's rows
    /// go with the next write and are not read meanwhile).
    pub fn clear(&self) {
        let mut changes = self.changes();
        let (entries, bytes) = (changes.len(), changes.bytes);
        *changes = NodeChanges {
            cleared: true,
            ..NodeChanges::default()
        };
        self.backing.pending.release(entries, bytes);
    }

    /// Every symbol's affinity sums, sorted by symbol (for dumps and tests).
    pub fn affinity(&self) -> Vec<(String, SymbolAffinity)> {
        let disk = self.backing.disk();
        let (queued, cleared) = {
            let changes = self.changes();
            (changes.affinity.clone(), changes.cleared)
        };
        let stored = match (disk.as_ref(), cleared) {
            (Some(disk), false) => disk.affinity(&self.kb_id).unwrap_or_else(|error| {
                tracing::warn!(kb_id = %self.kb_id, %error, "reading affinity");
                Vec::new()
            }),
            _ => Vec::new(),
        };
        drop(disk);
        let mut all: BTreeMap<String, SymbolAffinity> = stored.into_iter().collect();
        for (symbol, increments) in queued {
            add_increments(all.entry(symbol.clone()).or_default(), &increments, &symbol);
        }
        all.into_iter().collect()
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

/// The nodes and what they share; the writer and the spill thread hold it.
pub(super) struct Shared {
    pub(super) nodes: RwLock<HashMap<String, Arc<NodeKb>>>,
    pub(super) backing: Arc<Backing>,
}

impl Shared {
    /// Every KB.
    pub(super) fn all(&self) -> Vec<Arc<NodeKb>> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.values().cloned().collect()
    }

    /// The KB with this id, created empty on first use.
    pub(super) fn node(&self, kb_id: &str) -> Arc<NodeKb> {
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
                changes: Mutex::default(),
                backing: Arc::clone(&self.backing),
            })
        }))
    }
}

/// Every node's knowledge base, keyed by KB id.
pub struct KnowledgeBases {
    pub(super) shared: Arc<Shared>,
    spiller: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl KnowledgeBases {
    /// Knowledge bases whose changes a store writes to its file, counted in `pending`
    /// (`None`: an engine without a file, with the default budget).
    pub fn new(pending: Option<Arc<PendingChanges>>) -> Self {
        match pending {
            Some(pending) => {
                let wake_at = pending.budget().write_at();
                Self::with(pending, wake_at)
            }
            None => Self::ephemeral(MemoryBudget::default()),
        }
    }

    /// Knowledge bases without a file: whole patterns in memory up to half of
    /// `budget`'s share for changes, then on a private temporary file (removed at
    /// [`KnowledgeBases::close`] or drop).
    pub fn ephemeral(budget: MemoryBudget) -> Self {
        let kbs = Self::with(
            Arc::new(PendingChanges::with_budget(budget)),
            budget.spill_at(),
        );
        let shared = Arc::clone(&kbs.shared);
        let spiller = std::thread::Builder::new()
            .name("katotune-kb-spill".into())
            .spawn(move || super::flush::spill(&shared));
        match spiller {
            Ok(handle) => *kbs.spiller.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle),
            Err(error) => {
                tracing::error!(%error, "no knowledge-base spill thread: memory is not bounded");
                kbs.shared.backing.pending.set_failing(true);
            }
        }
        kbs
    }

    fn with(pending: Arc<PendingChanges>, wake_at: usize) -> Self {
        let backing = Arc::new(Backing {
            disk: Mutex::new(None),
            pending,
            wake_at,
        });
        Self {
            shared: Arc::new(Shared {
                nodes: RwLock::default(),
                backing,
            }),
            spiller: Mutex::new(None),
        }
    }

    /// The KB with this id, created empty on first use.
    pub fn node(&self, kb_id: &str) -> Arc<NodeKb> {
        self.shared.node(kb_id)
    }

    /// The KB with this id if it was ever used.
    pub fn existing(&self, kb_id: &str) -> Option<Arc<NodeKb>> {
        let nodes = self.shared.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.get(kb_id).cloned()
    }

    /// Every KB, for the writer and `/status`.
    pub fn all(&self) -> Vec<Arc<NodeKb>> {
        self.shared.all()
    }

    /// The pending-change counters and budget.
    pub fn pending(&self) -> &PendingChanges {
        &self.shared.backing.pending
    }

    /// Whether the patterns are (also) on a file: the engine's own or a spill file.
    pub fn on_disk(&self) -> bool {
        self.shared.backing.disk().is_some()
    }

    /// Stops the spill thread of an engine without a file and removes its temporary
    /// file; later calls do nothing. (A file-backed engine's store closes its file.)
    pub fn close(&self) {
        let handle = self
            .spiller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            self.shared.backing.pending.stop();
            let _ = handle.join();
            drop(self.shared.backing.disk().take());
        }
    }
}

impl Drop for KnowledgeBases {
    fn drop(&mut self) {
        self.close();
    }
}

/// Parses 40 hex digits into a digest.
pub fn parse_digest(hex_digits: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex_digits, &mut out).ok()?;
    Some(out)
}
