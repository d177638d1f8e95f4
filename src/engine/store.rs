//! The knowledge bases on disk: one SQLite file per engine, written behind the request path.
//!
//! The file is plain SQLite in WAL mode, so `sqlite3 FILE` can read it while the engine
//! runs. Schema (version 1):
//!
//! ```sql
//! CREATE TABLE patterns (
//!     kb_id        TEXT    NOT NULL,  -- node0_kato: kb_id(node_id, SERVICE_NAME)
//!     name         TEXT    NOT NULL,  -- bare 40-hex SHA-1, as KATO stores it (no PTRN|)
//!     pattern_data TEXT    NOT NULL,  -- JSON list of events: [["a","b"],["c"]]
//!     length       INTEGER NOT NULL,  -- total symbol count
//!     frequency    INTEGER NOT NULL,  -- times learned
//!     emotives     TEXT    NOT NULL,  -- JSON list of the last PERSISTENCE emotive dicts
//!     metadata     TEXT    NOT NULL,  -- JSON {key: [sorted unique strings]}
//!     PRIMARY KEY (kb_id, name)
//! ) WITHOUT ROWID;
//! CREATE TABLE engine_info (key TEXT PRIMARY KEY, value TEXT NOT NULL); -- schema_version
//! -- version 2 adds each symbol's affinity (KATO's `<kb>:affinity:<symbol>` hash):
//! CREATE TABLE affinity (
//!     kb_id   TEXT NOT NULL,
//!     symbol  TEXT NOT NULL,
//!     emotive TEXT NOT NULL,
//!     sum     TEXT NOT NULL,  -- the running sum as Redis's HINCRBYFLOAT text, e.g. "4.55"
//!     PRIMARY KEY (kb_id, symbol, emotive)
//! ) WITHOUT ROWID;
//! ```
//!
//! A version-1 file opens as is and gains the empty affinity table. The same schema,
//! and a streaming reader, are in [`crate::kb::engine_file`].
//!
//! Sessions are not stored: like KATO without Redis persistence, they end with the process.
//!
//! The file is the knowledge base: memory holds only the changes not yet written (see
//! [`super::kb`]) and SQLite's page cache, both within the budget
//! `KATOTUNE_ENGINE_CACHE_MB`. Opening a file of any size reads nothing but its
//! checkpoint state.
//!
//! A writer thread writes. Every [`FLUSH_INTERVAL`], as soon as [`FLUSH_CHANGES`]
//! patterns changed, or when the changes pass a quarter of their budget, it takes the
//! changes of every node and applies them as upserts in one transaction. A pattern
//! learned many times between two writes is written once. When writes get slow (a
//! large, busy KB) the writer spaces them to four times the last write's duration, at
//! most [`MAX_FLUSH_INTERVAL`] (the budget still wakes it). A kill -9 therefore loses
//! at most the batch being collected (50 ms of learning, up to 1 s under heavy load);
//! SQLite's journal keeps the file consistent. Shutdown writes the last batch.
//!
//! katotune's checkpoint barrier ([`Store::checkpoint`], served as
//! `POST /katotune/checkpoint`; katotune's own, not KATO's) changes that for a trainer
//! that must never mark a sample done before it is stored. [`CheckpointOp::Hold`] makes
//! the writer commit *only* at checkpoints (the hold is kept in `engine_info` as
//! `commit_hold`, so it survives a restart, and changes not yet committed are dropped at
//! shutdown); [`CheckpointOp::Commit`] writes everything learned so far in one
//! transaction (`PRAGMA synchronous=FULL` while held) together with the caller's label
//! (`engine_info.checkpoint`), and answers once it is on disk or with the write error;
//! [`CheckpointOp::Release`] commits and goes back to writing behind. While held, the
//! writer still applies changes every interval, into one transaction it leaves open
//! until the next checkpoint (SQLite keeps those pages in its journal, uncommitted, and
//! a crash drops them), so a checkpoint only has the last interval left to write. The
//! file then always holds exactly the state of the last checkpoint, which the label
//! names. A write that fails inside that open transaction (disk full, an I/O error)
//! rolls the whole transaction back (see [`Disk::apply`] for why there is no savepoint
//! per write); every later commit then fails, naming the reason, until a rollback
//! (`Hold` with `rollback`) starts again from the file. A write behind that fails was
//! its own transaction: its changes go back into memory and the next write retries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::flush::Finish;
use super::kb::KnowledgeBases;
use super::kb_disk::{Disk, WriteFailure};
use super::EngineError;

pub use super::pending::{PendingChanges, FLUSH_CHANGES};

/// Longest time a learned pattern waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Longest spacing of writes when they are slow.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two copies of the journal into the file.
const WAL_CHECKPOINT_SPACING: Duration = Duration::from_secs(1);

/// What a checkpoint asks of the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointOp {
    /// Commit everything learned so far, recording `label` with it.
    Commit { label: Option<String> },
    /// From now on commit only at checkpoints; with `rollback` on a held engine, first
    /// forget every change not yet committed (back to what the file holds). An engine
    /// that was writing behind commits what it has first, whatever `rollback` says.
    Hold { rollback: bool },
    /// Commit everything and go back to writing behind.
    Release,
}

/// The writer's answer to a checkpoint: what is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointState {
    /// Whether commits wait for checkpoints.
    pub held: bool,
    /// The label of the last committed checkpoint, if any.
    pub label: Option<String>,
}

/// Counters the writer publishes for `/status`.
#[derive(Default)]
pub struct StoreStats {
    /// Rows written since start.
    pub rows_written: AtomicU64,
    /// Transactions that failed (their rows are retried).
    pub write_errors: AtomicU64,
    /// Whether commits wait for checkpoints.
    pub held: AtomicBool,
}

/// The open database file and its writer thread.
pub struct Store {
    path: PathBuf,
    pending: Arc<PendingChanges>,
    /// Counters for `/status`.
    pub stats: Arc<StoreStats>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The advisory lock on `<path>.lock`, held while the file is open.
    _lock: crate::lock::RunLock,
}

fn store_error(path: &Path, source: rusqlite::Error) -> EngineError {
    EngineError::Store {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens (or creates) `path` as the file of `kbs` (reading only its checkpoint
    /// state) and starts the writer. `pending` must be the counters `kbs` was made
    /// with. `lock` is the file's lock when the caller already holds it; otherwise it
    /// is taken here, and a file another live process has open is refused.
    pub fn open(
        path: &Path,
        kbs: Arc<KnowledgeBases>,
        pending: Arc<PendingChanges>,
        lock: Option<crate::lock::RunLock>,
    ) -> Result<Self, EngineError> {
        let lock = match lock {
            Some(lock) => lock,
            None => crate::lock::RunLock::acquire(&crate::lock::lock_path(path), "knowledge base")?,
        };
        let disk =
            Disk::open_file(path, pending.budget().page_cache).map_err(|e| store_error(path, e))?;
        let state = checkpoint_state(disk.conn()).map_err(|e| store_error(path, e))?;
        if state.held {
            let since = match &state.label {
                Some(label) => format!("up to its last checkpoint ({label})"),
                None => "as it was before that run".to_string(),
            };
            tracing::warn!(
                "{}: the last katotune run on this file did not finish; the file holds its \
                 training {since}. Until a run finishes, this engine commits only at a run's \
                 checkpoints: anything else learned through it is dropped when it stops. \
                 To continue that run: `katotune run` with its profile, settings and \
                 `--resume`",
                path.display(),
            );
            set_synchronous(disk.conn(), true).map_err(|e| store_error(path, e))?;
        }
        for kb_id in disk.kb_ids().map_err(|e| store_error(path, e))? {
            kbs.node(&kb_id);
        }
        *kbs.shared.backing.disk() = Some(disk);
        pending.control().hold = state.held;
        let stats = Arc::new(StoreStats::default());
        stats.held.store(state.held, Ordering::Relaxed);
        let writer = {
            let mut writer = Writer {
                kbs,
                pending: Arc::clone(&pending),
                stats: Arc::clone(&stats),
                path: path.to_path_buf(),
                label: state.label,
                lost: None,
                wal_checkpointed: Instant::now(),
            };
            std::thread::Builder::new()
                .name("katotune-kb-writer".into())
                .spawn(move || writer.run())
                .map_err(|source| EngineError::Io {
                    what: "starting the knowledge-base writer thread".into(),
                    source,
                })?
        };
        Ok(Self {
            path: path.to_path_buf(),
            pending,
            stats,
            writer: Mutex::new(Some(writer)),
            _lock: lock,
        })
    }

    /// Carries out a checkpoint and waits for the writer's answer (blocking: call it
    /// off the async threads). An error names the file and SQLite's reason (disk full...).
    pub fn checkpoint(&self, op: CheckpointOp) -> Result<CheckpointState, String> {
        let _turn = self.pending.turn.lock().unwrap_or_else(|e| e.into_inner());
        let mut control = self.pending.control();
        if self.pending.stop.load(Ordering::Relaxed) {
            return Err(format!(
                "{}: the engine is shutting down",
                self.path.display()
            ));
        }
        control.answer = None;
        control.request = Some(op);
        self.pending.ring.notify_one();
        let mut control = self
            .pending
            .answered
            .wait_while(control, |c| c.answer.is_none())
            .unwrap_or_else(|e| e.into_inner());
        control
            .answer
            .take()
            .unwrap_or_else(|| Err("no answer".into()))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes learned but not yet committed to the file (0 = everything acknowledged is on disk).
    pub fn pending(&self) -> usize {
        self.pending.count.load(Ordering::Relaxed) + self.pending.spilled.load(Ordering::Relaxed)
    }

    /// Writes everything pending (unless held), stops the writer and closes the file;
    /// later calls do nothing.
    pub fn close(&self) {
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            self.pending.stop();
            let _ = handle.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state.
struct Writer {
    kbs: Arc<KnowledgeBases>,
    pending: Arc<PendingChanges>,
    stats: Arc<StoreStats>,
    path: PathBuf,
    /// The last committed checkpoint label.
    label: Option<String>,
    /// Why the held transaction was lost, until a rollback.
    lost: Option<String>,
    wal_checkpointed: Instant,
}

impl Writer {
    /// Writes until stopped, then writes the last batch (unless held: then what was not
    /// committed at a checkpoint is dropped, as a crash would drop it) and closes the file.
    fn run(&mut self) {
        let write_at = self.pending.budget().write_at();
        let mut interval = FLUSH_INTERVAL;
        let mut errors_at_stop = 0;
        loop {
            let (hold, request) = self
                .pending
                .wait(interval, interval == FLUSH_INTERVAL, write_at);
            let stopping = self.pending.stop.load(Ordering::Relaxed);
            if let Some(op) = request {
                let (hold, answer) = self.serve(op, hold);
                self.stats.held.store(hold, Ordering::Relaxed);
                self.pending.answer(hold, answer);
                self.checkpoint_wal();
                continue;
            }
            if stopping && hold {
                break;
            }
            let started = Instant::now();
            let outcome = self.write(hold);
            interval = (started.elapsed() * 4).clamp(FLUSH_INTERVAL, MAX_FLUSH_INTERVAL);
            self.pending.set_failing(outcome.is_err());
            if let Err(error) = &outcome {
                tracing::error!(%error, "knowledge-base write failed; retrying with the next batch");
                std::thread::sleep(FLUSH_INTERVAL);
            }
            self.checkpoint_wal();
            if stopping && outcome.is_ok() {
                break;
            }
            if stopping {
                errors_at_stop += 1;
                if errors_at_stop > 20 {
                    tracing::error!("giving up writing the knowledge base at shutdown");
                    break;
                }
            }
        }
        let disk = self.kbs.shared.backing.disk().take();
        if let Some(mut disk) = disk {
            disk.rollback();
        }
    }

    /// One write between checkpoints: committed when writing behind, into the open
    /// transaction when held.
    fn write(&mut self, hold: bool) -> Result<(), String> {
        if !hold {
            return self.flush(Finish::Commit(None));
        }
        if self.lost.is_some() {
            // The transaction since the last checkpoint is gone: these changes no
            // longer add up to anything; the run rolls back.
            self.kbs.shared.discard_all();
            return Ok(());
        }
        self.flush(Finish::KeepOpen)
    }

    /// Flushes; a failure that lost the held transaction's earlier writes marks it lost.
    fn flush(&mut self, finish: Finish) -> Result<(), String> {
        let spilled = self.pending.spilled.load(Ordering::Relaxed);
        match self.kbs.shared.flush(&finish) {
            Ok(rows) => {
                self.stats.rows_written.fetch_add(rows, Ordering::Relaxed);
                if let Finish::Commit(Some(label)) = finish {
                    self.label = Some(label);
                }
                Ok(())
            }
            Err(WriteFailure {
                error,
                transaction_lost,
            }) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                let message = format!("knowledge-base database {}: {error}", self.path.display());
                if transaction_lost && spilled > 0 {
                    let since = match self.label {
                        Some(_) => "the last checkpoint",
                        None => "the run began",
                    };
                    self.lost = Some(format!(
                        "{message}; what was learned since {since} is not stored"
                    ));
                    self.kbs.shared.discard_all();
                }
                Err(message)
            }
        }
    }

    /// Carries out one checkpoint request; returns the new hold state and the answer.
    fn serve(&mut self, op: CheckpointOp, hold: bool) -> (bool, Result<CheckpointState, String>) {
        let result = match &op {
            CheckpointOp::Commit { label } => match &self.lost {
                Some(lost) => Err(lost.clone()),
                None => self.flush(Finish::Commit(label.clone())),
            },
            CheckpointOp::Hold { rollback } => self.hold(*rollback, hold),
            CheckpointOp::Release => match &self.lost {
                Some(lost) => Err(lost.clone()),
                None => self
                    .flush(Finish::Commit(None))
                    .and_then(|()| self.set_hold(false)),
            },
        };
        let hold = match op {
            CheckpointOp::Hold { .. } => result.is_ok() || hold,
            CheckpointOp::Release => hold && result.is_err(),
            CheckpointOp::Commit { .. } => hold,
        };
        let answer = result.map(|()| CheckpointState {
            held: hold,
            label: self.label.clone(),
        });
        (hold, answer)
    }

    /// Holds commits for checkpoints. `rollback` forgets what an earlier holder left
    /// uncommitted (a run that was interrupted, or an engine that restarted held); while
    /// nobody held (`held` false) the changes in memory are other clients' learns
    /// waiting for the next write behind, and they are committed first, never dropped.
    fn hold(&mut self, rollback: bool, held: bool) -> Result<(), String> {
        if held {
            if rollback {
                if let Some(disk) = self.kbs.shared.backing.disk().as_mut() {
                    disk.rollback();
                }
                self.kbs.shared.discard_all();
                self.lost = None;
            }
            // The flag is stored and the file syncs already: nothing to write (which a
            // full disk would refuse, after the rollback has been done).
            return Ok(());
        }
        self.flush(Finish::Commit(None))?;
        self.set_hold(true)
    }

    /// Records the hold flag; a held file syncs every commit (`synchronous=FULL`).
    /// Inside an open (held) transaction the flag is already stored and set.
    fn set_hold(&mut self, hold: bool) -> Result<(), String> {
        let mut guard = self.kbs.shared.backing.disk();
        let Some(disk) = guard.as_mut() else {
            return Err(format!("{}: the file is closed", self.path.display()));
        };
        if disk.in_transaction() {
            return Ok(());
        }
        let conn = disk.conn();
        let outcome = if hold {
            conn.execute(
                "INSERT OR REPLACE INTO engine_info VALUES ('commit_hold', '1')",
                [],
            )
        } else {
            conn.execute("DELETE FROM engine_info WHERE key = 'commit_hold'", [])
        };
        outcome
            .and_then(|_| set_synchronous(conn, hold))
            .map_err(|e| format!("knowledge-base database {}: {e}", self.path.display()))
    }

    /// Copies the journal into the file now and then, outside any transaction.
    fn checkpoint_wal(&mut self) {
        if self.wal_checkpointed.elapsed() < WAL_CHECKPOINT_SPACING {
            return;
        }
        if let Some(disk) = self.kbs.shared.backing.disk().as_ref() {
            if !disk.in_transaction() {
                disk.checkpoint_wal();
                self.wal_checkpointed = Instant::now();
            }
        }
    }
}

/// The hold flag and the last checkpoint label, as the file records them.
fn checkpoint_state(conn: &Connection) -> rusqlite::Result<CheckpointState> {
    let value = |key: &str| -> rusqlite::Result<Option<String>> {
        let mut stmt = conn.prepare("SELECT value FROM engine_info WHERE key = ?1")?;
        let mut rows = stmt.query([key])?;
        Ok(match rows.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        })
    };
    Ok(CheckpointState {
        held: value("commit_hold")?.is_some_and(|v| v == "1"),
        label: value("checkpoint")?,
    })
}

fn set_synchronous(conn: &Connection, full: bool) -> rusqlite::Result<()> {
    conn.execute_batch(if full {
        "PRAGMA synchronous=FULL;"
    } else {
        "PRAGMA synchronous=NORMAL;"
    })
}
