//! Moving changes from memory to the file.
//!
//! A flush takes every node's changes at once (so learns go on meanwhile), applies
//! them in the file's open transaction and, unless the store is held for checkpoints,
//! commits. A failed write gives the changes back to their nodes under whatever was
//! learned since, so nothing is lost and nothing counted twice; the next flush retries.
//!
//! An engine without a file runs [`spill`] on its own thread: when its changes pass
//! half the budget, it opens a private temporary file and flushes there.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::kb::Shared;
use super::kb_delta::NodeChanges;
use super::kb_disk::{Disk, NodeBatch, WriteFailure};

/// What a flush does once the changes are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Commit, recording this checkpoint label with it.
    Commit(Option<String>),
    /// Leave the transaction open (held for checkpoints).
    KeepOpen,
}

impl Shared {
    /// Writes every pending change (see the module doc); returns the pattern rows
    /// written. Without a file there is nothing to write to: `Ok(0)`.
    pub(super) fn flush(&self, finish: &Finish) -> Result<u64, WriteFailure> {
        let mut guard = self.backing.disk();
        let Some(disk) = guard.as_mut() else {
            return Ok(0);
        };
        let batch = self.take_all();
        let entries: usize = batch.iter().map(|b| b.changes.len()).sum();
        let bytes: usize = batch.iter().map(|b| b.changes.bytes).sum();
        let pending = &self.backing.pending;
        let mut rows = 0;
        if !batch.is_empty() {
            let applied = disk.begin().map_err(|error| WriteFailure {
                error,
                transaction_lost: false,
            });
            match applied.and_then(|()| disk.apply(&batch)) {
                Ok(written) => rows = written,
                Err(failure) => {
                    self.give_back(batch);
                    return Err(failure);
                }
            }
        }
        match finish {
            Finish::Commit(label) => {
                if let Err(failure) = disk.commit(label.as_deref()) {
                    self.give_back(batch);
                    return Err(failure);
                }
                pending.spilled.store(0, Ordering::Relaxed);
            }
            Finish::KeepOpen => {
                pending.spilled.fetch_add(entries, Ordering::Relaxed);
            }
        }
        pending.release(entries, bytes);
        Ok(rows)
    }

    /// Takes every node's changes.
    fn take_all(&self) -> Vec<NodeBatch> {
        let mut batch = Vec::new();
        for kb in self.all() {
            let mut changes = kb.changes();
            if !changes.is_empty() {
                batch.push(NodeBatch {
                    kb_id: kb.kb_id.clone(),
                    changes: std::mem::take(&mut *changes),
                });
            }
        }
        batch
    }

    /// Puts changes that could not be written back under what their nodes learned
    /// since.
    fn give_back(&self, batch: Vec<NodeBatch>) {
        for NodeBatch { kb_id, changes } in batch {
            let kb = self.node(&kb_id);
            let mut current = kb.changes();
            let later = std::mem::take(&mut *current);
            let mut older = changes;
            let older_bytes = older.bytes;
            let later_cleared = later.cleared;
            let folded = older.absorb_later(later);
            *current = older;
            let dropped_bytes = if later_cleared { older_bytes } else { 0 };
            self.backing.pending.release(folded, dropped_bytes);
        }
    }

    /// Forgets every change in memory (a rollback to what the file holds).
    pub(super) fn discard_all(&self) {
        for kb in self.all() {
            let mut changes = kb.changes();
            let NodeChanges {
                patterns, bytes, ..
            } = std::mem::take(&mut *changes);
            self.backing.pending.release(patterns.len(), bytes);
        }
        self.backing.pending.spilled.store(0, Ordering::Relaxed);
    }
}

/// The spill thread of an engine without a file: waits until the changes pass half the
/// budget, then flushes them to a private temporary file (opened the first time).
/// Returns when the knowledge bases close.
pub(super) fn spill(shared: &Shared) {
    let pending = &shared.backing.pending;
    let at = pending.budget().spill_at();
    loop {
        pending.wait(Duration::from_secs(60), false, at);
        if pending.stop.load(Ordering::Relaxed) {
            return;
        }
        if pending.bytes() < at {
            continue;
        }
        if let Err(error) = open_spill(shared) {
            tracing::error!(%error, "cannot open a temporary knowledge-base file; memory is not bounded");
            pending.set_failing(true);
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        match shared.flush(&Finish::Commit(None)) {
            Ok(_) => pending.set_failing(false),
            Err(failure) => {
                tracing::error!(error = %failure.error, "writing the temporary knowledge-base file; retrying");
                pending.set_failing(true);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn open_spill(shared: &Shared) -> Result<(), String> {
    let mut disk = shared.backing.disk();
    if disk.is_none() {
        let page_cache = shared.backing.pending.budget().page_cache;
        let opened = Disk::open_spill(page_cache)?;
        tracing::info!(path = %opened.path().display(), "knowledge base outgrew its memory budget; continuing on a temporary file");
        *disk = Some(opened);
    }
    Ok(())
}
