//! Changes learned but not yet written, the engine's memory budget, and the bell
//! between the request path and the thread that writes.
//!
//! The budget (`KATOTUNE_ENGINE_CACHE_MB`, see [`super::EngineConfig`]) is split in
//! two: a quarter for SQLite's page cache, the rest for changes held in memory. A
//! learn that leaves more than the changes' share pending waits until the writer has
//! written some (backpressure), unless the last write failed: then nothing already
//! learned is thrown away and memory grows until a write succeeds again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::store::{CheckpointOp, CheckpointState};

/// Pending changes that trigger a write before the interval ends.
pub const FLUSH_CHANGES: usize = 5_000;
/// The default memory budget in MiB (`KATOTUNE_ENGINE_CACHE_MB`).
pub const DEFAULT_CACHE_MB: usize = 256;
const MIB: usize = 1024 * 1024;

/// How the engine's knowledge-base memory is shared out, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// SQLite's page cache (a quarter of the budget).
    pub page_cache: usize,
    /// Changes held in memory: a learn past this waits for the writer.
    pub changes: usize,
}

impl MemoryBudget {
    /// The split of `mb` MiB (at least 1).
    pub fn from_mb(mb: usize) -> Self {
        let total = mb.max(1).saturating_mul(MIB);
        Self {
            page_cache: total / 4,
            changes: total - total / 4,
        }
    }

    /// Pending bytes at which a file-backed engine writes at once (a quarter).
    pub fn write_at(&self) -> usize {
        self.changes / 4
    }

    /// Pending bytes at which an engine without a file moves its changes to a
    /// temporary one (half).
    pub fn spill_at(&self) -> usize {
        self.changes / 2
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::from_mb(DEFAULT_CACHE_MB)
    }
}

/// The request the writer is asked to carry out, and its answer.
#[derive(Default)]
pub(super) struct Control {
    pub(super) hold: bool,
    pub(super) request: Option<CheckpointOp>,
    pub(super) answer: Option<Result<CheckpointState, String>>,
}

/// Counts of changes not yet written, the budget, and the bells of the writer.
#[derive(Default)]
pub struct PendingChanges {
    /// Pattern entries in memory, taken or not, not yet written.
    pub(super) count: AtomicUsize,
    /// Pattern entries written into the open (held) transaction, not yet committed.
    pub(super) spilled: AtomicUsize,
    /// Estimated bytes of changes in memory.
    bytes: AtomicUsize,
    /// Most bytes ever pending.
    peak: AtomicUsize,
    budget: MemoryBudget,
    /// The last write failed: learns do not wait for room.
    pub(super) failing: AtomicBool,
    pub(super) stop: AtomicBool,
    bell: Mutex<Control>,
    pub(super) ring: Condvar,
    pub(super) answered: Condvar,
    room: Condvar,
    /// One checkpoint at a time.
    pub(super) turn: Mutex<()>,
}

impl PendingChanges {
    /// Counters for an engine with this budget.
    pub fn with_budget(budget: MemoryBudget) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// The budget.
    pub fn budget(&self) -> MemoryBudget {
        self.budget
    }

    /// Records `entries` new pattern entries and `bytes` more held; wakes the writer
    /// when a batch is full or the bytes pass `wake_at`.
    pub fn add(&self, entries: usize, bytes: usize, wake_at: usize) {
        let before = self.count.fetch_add(entries, Ordering::Relaxed);
        let held = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(held, Ordering::Relaxed);
        let full = before < FLUSH_CHANGES && before + entries >= FLUSH_CHANGES;
        if full || held >= wake_at {
            let _bell = self.control();
            self.ring.notify_one();
        }
    }

    /// Forgets `entries` pattern entries and `bytes` (written, dropped or folded);
    /// wakes learns waiting for room.
    pub fn release(&self, entries: usize, bytes: usize) {
        sub(&self.count, entries);
        sub(&self.bytes, bytes);
        let _bell = self.control();
        self.room.notify_all();
    }

    /// Estimated bytes of changes in memory.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Most bytes ever pending since start.
    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Blocks while more than the changes' share is pending and the writer is healthy
    /// and running (backpressure; never called with a knowledge-base lock held).
    pub fn wait_for_room(&self) {
        let limit = self.budget.changes;
        if self.bytes() <= limit {
            return;
        }
        let guard = self.control();
        let _guard = self
            .room
            .wait_while(guard, |_| {
                self.bytes() > limit
                    && !self.failing.load(Ordering::Relaxed)
                    && !self.stop.load(Ordering::Relaxed)
            })
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Waits `interval` or until there is something to do: stop, a checkpoint request,
    /// `at_bytes` pending, or (when `eager`) a full batch. Returns the hold state and
    /// the request.
    pub(super) fn wait(
        &self,
        interval: Duration,
        eager: bool,
        at_bytes: usize,
    ) -> (bool, Option<CheckpointOp>) {
        let ready = |c: &mut Control| {
            self.stop.load(Ordering::Relaxed)
                || c.request.is_some()
                || self.bytes() >= at_bytes
                || (eager && self.count.load(Ordering::Relaxed) >= FLUSH_CHANGES)
        };
        let guard = self.control();
        let (guard, _) = self
            .ring
            .wait_timeout_while(guard, interval, |c| !ready(c))
            .unwrap_or_else(|e| e.into_inner());
        (guard.hold, guard.request.clone())
    }

    /// Asks the writer to stop and lets waiting learns through.
    pub(super) fn stop(&self) {
        let _bell = self.control();
        self.stop.store(true, Ordering::Relaxed);
        self.ring.notify_all();
        self.room.notify_all();
    }

    /// Records whether the last write failed; a failure lets waiting learns through.
    pub(super) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
        if failing {
            let _bell = self.control();
            self.room.notify_all();
        }
    }

    pub(super) fn control(&self) -> MutexGuard<'_, Control> {
        self.bell.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer's answer to the current request.
    pub(super) fn answer(&self, hold: bool, answer: Result<CheckpointState, String>) {
        let mut control = self.control();
        control.hold = hold;
        control.request = None;
        control.answer = Some(answer);
        self.answered.notify_all();
    }
}

/// Subtracts without wrapping below 0.
fn sub(counter: &AtomicUsize, n: usize) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_gives_a_quarter_to_the_page_cache() {
        let budget = MemoryBudget::from_mb(256);
        assert_eq!(budget.page_cache, 64 * MIB);
        assert_eq!(budget.changes, 192 * MIB);
        assert_eq!(MemoryBudget::from_mb(0), MemoryBudget::from_mb(1));
    }

    #[test]
    fn a_learn_over_budget_waits_until_the_writer_releases_bytes() {
        let pending = std::sync::Arc::new(PendingChanges::with_budget(MemoryBudget::from_mb(1)));
        pending.add(1, 2 * MIB, usize::MAX);
        let waiter = {
            let pending = std::sync::Arc::clone(&pending);
            std::thread::spawn(move || pending.wait_for_room())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a learn over budget must wait");
        pending.release(1, 2 * MIB);
        waiter.join().expect("released");
        assert_eq!(pending.peak_bytes(), 2 * MIB);
    }
}
