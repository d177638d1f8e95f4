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
//! A writer thread owns the connection. Every [`FLUSH_INTERVAL`], or as soon as
//! [`FLUSH_CHANGES`] changes are pending, it collects the dirty patterns of every node
//! and writes them in one transaction. A pattern learned many times between two writes
//! is written once. When writes get slow (a large, busy KB) the writer spaces them to
//! four times the last write's duration, at most [`MAX_FLUSH_INTERVAL`], so that it
//! never takes more than about a fifth of a core from the request path. A kill -9
//! therefore loses at most the batch being collected (50 ms of learning, up to 1 s
//! under heavy load); SQLite's journal keeps the file consistent. Shutdown writes the
//! last batch.
//!
//! katotune's checkpoint barrier ([`Store::checkpoint`], served as
//! `POST /katotune/checkpoint`; katotune's own, not KATO's) changes that for a trainer
//! that must never mark a sample done before it is stored. [`CheckpointOp::Hold`] makes
//! the writer commit *only* at checkpoints (the hold is kept in `engine_info` as
//! `commit_hold`, so it survives a restart, and changes not yet committed are dropped at
//! shutdown); [`CheckpointOp::Commit`] writes everything learned so far in one
//! transaction (`PRAGMA synchronous=FULL` while held) together with the caller's label
//! (`engine_info.checkpoint`), and answers once it is on disk or with the write error;
//! [`CheckpointOp::Release`] commits and goes back to writing behind. The file then
//! always holds exactly the state of the last checkpoint, which the label names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::kb::engine_file;

use super::kb::{parse_digest, Changes, KnowledgeBases, PatternRecord};
use super::EngineError;

/// Longest time a learned pattern waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Longest spacing of writes when they are slow.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Pending changes that trigger a write before the interval ends.
pub const FLUSH_CHANGES: usize = 5_000;

/// What a checkpoint asks of the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointOp {
    /// Commit everything learned so far, recording `label` with it.
    Commit { label: Option<String> },
    /// From now on commit only at checkpoints; with `rollback`, first forget every
    /// change not yet committed (reload the file).
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

/// The request the writer is asked to carry out, and its answer.
#[derive(Default)]
struct Control {
    hold: bool,
    request: Option<CheckpointOp>,
    answer: Option<Result<CheckpointState, String>>,
}

/// Count of changes not yet written, and the bell that wakes the writer.
#[derive(Default)]
pub struct PendingChanges {
    count: AtomicUsize,
    stop: AtomicBool,
    bell: Mutex<Control>,
    ring: Condvar,
    answered: Condvar,
    /// One checkpoint at a time.
    turn: Mutex<()>,
}

impl PendingChanges {
    /// Records `n` more changes; wakes the writer when a batch is full.
    pub fn add(&self, n: usize) {
        let before = self.count.fetch_add(n, Ordering::Relaxed);
        if before < FLUSH_CHANGES && before + n >= FLUSH_CHANGES {
            self.ring.notify_one();
        }
    }

    /// Waits `interval`, or less when `eager` and a full batch is pending, on a
    /// checkpoint request or on stop; returns the hold state and the request.
    fn wait(&self, interval: Duration, eager: bool) -> (bool, Option<CheckpointOp>) {
        let ready = |c: &mut Control| {
            self.stop.load(Ordering::Relaxed)
                || c.request.is_some()
                || (eager && !c.hold && self.count.load(Ordering::Relaxed) >= FLUSH_CHANGES)
        };
        let guard = self.bell.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .ring
            .wait_timeout_while(guard, interval, |c| !ready(c))
            .unwrap_or_else(|e| e.into_inner());
        (guard.hold, guard.request.clone())
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.bell.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer's answer to the current request.
    fn answer(&self, hold: bool, answer: Result<CheckpointState, String>) {
        let mut control = self.control();
        control.hold = hold;
        control.request = None;
        control.answer = Some(answer);
        self.answered.notify_all();
    }
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
    /// Opens (or creates) `path`, loads every pattern into `kbs`, and starts the writer.
    /// `lock` is the file's lock when the caller already holds it; otherwise it is taken
    /// here, and a file another live process has open is refused.
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
        let conn = Connection::open(path).map_err(|e| store_error(path, e))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .and_then(|()| conn.execute_batch(engine_file::SCHEMA_SQL))
            .map_err(|e| store_error(path, e))?;
        load(&conn, &kbs).map_err(|e| store_error(path, e))?;
        load_affinity(&conn, &kbs).map_err(|e| store_error(path, e))?;
        let state = checkpoint_state(&conn).map_err(|e| store_error(path, e))?;
        if state.held {
            tracing::warn!(
                "{} is held for katotune checkpoints (last: {}); changes are committed only at \
                 checkpoints until the run releases it",
                path.display(),
                state.label.as_deref().unwrap_or("none")
            );
            set_synchronous(&conn, true).map_err(|e| store_error(path, e))?;
        }
        pending.control().hold = state.held;
        let stats = Arc::new(StoreStats::default());
        stats.held.store(state.held, Ordering::Relaxed);
        let writer = {
            let (pending, stats) = (Arc::clone(&pending), Arc::clone(&stats));
            let mut writer = Writer {
                conn,
                path: path.to_path_buf(),
                retry: Vec::new(),
                label: state.label,
            };
            std::thread::Builder::new()
                .name("katotune-kb-writer".into())
                .spawn(move || writer.run(&kbs, &pending, &stats))
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
        self.pending.count.load(Ordering::Relaxed)
    }

    /// Writes everything pending and stops the writer; later calls do nothing.
    pub fn close(&self) {
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let control = self.pending.control();
            self.pending.stop.store(true, Ordering::Relaxed);
            self.pending.ring.notify_one();
            drop(control);
            let _ = handle.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads every row into the in-memory knowledge bases.
fn load(conn: &Connection, kbs: &KnowledgeBases) -> rusqlite::Result<()> {
    let mut stmt = conn
        .prepare("SELECT kb_id, name, pattern_data, frequency, emotives, metadata FROM patterns")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let kb_id: String = row.get(0)?;
        let name: String = row.get(1)?;
        let data: String = row.get(2)?;
        let frequency: i64 = row.get(3)?;
        let emotives: String = row.get(4)?;
        let metadata: String = row.get(5)?;
        let parsed = (
            parse_digest(&name),
            serde_json::from_str(&data).ok(),
            serde_json::from_str(&emotives).ok(),
            serde_json::from_str(&metadata).ok(),
        );
        let (Some(digest), Some(events), Some(emotives), Some(metadata)) = parsed else {
            tracing::warn!(%kb_id, %name, "skipping an unreadable pattern row");
            continue;
        };
        let frequency = u64::try_from(frequency).unwrap_or(0);
        let record = PatternRecord::loaded(events, frequency, emotives, metadata);
        kbs.node(&kb_id).insert_loaded(digest, record);
    }
    Ok(())
}

/// Reads every symbol's affinity sums into the in-memory knowledge bases.
fn load_affinity(conn: &Connection, kbs: &KnowledgeBases) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare("SELECT kb_id, symbol, emotive, sum FROM affinity ORDER BY kb_id, symbol")?;
    let mut rows = stmt.query([])?;
    let mut current: Option<(String, String, BTreeMap<String, String>)> = None;
    while let Some(row) = rows.next()? {
        let (kb_id, symbol): (String, String) = (row.get(0)?, row.get(1)?);
        let (emotive, sum): (String, String) = (row.get(2)?, row.get(3)?);
        match &mut current {
            Some((k, s, sums)) if *k == kb_id && *s == symbol => {
                sums.insert(emotive, sum);
            }
            _ => {
                if let Some((k, s, sums)) = current.take() {
                    kbs.node(&k).insert_loaded_affinity(s, sums);
                }
                current = Some((kb_id, symbol, BTreeMap::from([(emotive, sum)])));
            }
        }
    }
    if let Some((k, s, sums)) = current {
        kbs.node(&k).insert_loaded_affinity(s, sums);
    }
    Ok(())
}

/// The writer thread's state: the connection, a failed batch to retry, the last label.
struct Writer {
    conn: Connection,
    path: PathBuf,
    retry: Vec<(String, Changes)>,
    label: Option<String>,
}

impl Writer {
    /// Batches until stopped, then writes the last batch (unless held: then what was
    /// not committed at a checkpoint is dropped, as a crash would drop it).
    fn run(&mut self, kbs: &KnowledgeBases, pending: &PendingChanges, stats: &StoreStats) {
        let mut interval = FLUSH_INTERVAL;
        loop {
            let (hold, request) = pending.wait(interval, interval == FLUSH_INTERVAL);
            let stopping = pending.stop.load(Ordering::Relaxed);
            if let Some(op) = request {
                let (hold, answer) = self.serve(op, hold, kbs, pending, stats);
                stats.held.store(hold, Ordering::Relaxed);
                pending.answer(hold, answer);
                continue;
            }
            if hold {
                if stopping {
                    return;
                }
                interval = MAX_FLUSH_INTERVAL;
                continue;
            }
            let started = std::time::Instant::now();
            let outcome = self.flush(kbs, pending, stats, None);
            interval = (started.elapsed() * 4).clamp(FLUSH_INTERVAL, MAX_FLUSH_INTERVAL);
            if let Err(error) = outcome {
                tracing::error!(%error, "knowledge-base write failed; retrying with the next batch");
                std::thread::sleep(FLUSH_INTERVAL);
            }
            if stopping && self.retry.is_empty() {
                return;
            }
            if stopping && stats.write_errors.load(Ordering::Relaxed) > 20 {
                tracing::error!("giving up writing the knowledge base at shutdown");
                return;
            }
        }
    }

    /// Carries out one checkpoint request; returns the new hold state and the answer.
    fn serve(
        &mut self,
        op: CheckpointOp,
        hold: bool,
        kbs: &KnowledgeBases,
        pending: &PendingChanges,
        stats: &StoreStats,
    ) -> (bool, Result<CheckpointState, String>) {
        let path = self.path.display().to_string();
        let error = |e: rusqlite::Error| format!("knowledge-base database {path}: {e}");
        let result = match &op {
            CheckpointOp::Commit { label } => self.flush(kbs, pending, stats, label.clone()),
            CheckpointOp::Hold { rollback } => {
                let mut outcome = Ok(());
                if *rollback {
                    self.retry.clear();
                    for kb in kbs.all() {
                        kb.reset();
                    }
                    pending.count.store(0, Ordering::Relaxed);
                    outcome = load(&self.conn, kbs).and_then(|()| load_affinity(&self.conn, kbs));
                }
                outcome
                    .and_then(|()| set_hold(&self.conn, true))
                    .map_err(error)
            }
            CheckpointOp::Release => self
                .flush(kbs, pending, stats, None)
                .and_then(|()| set_hold(&self.conn, false).map_err(error)),
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

    /// Writes every change (and the failed batch before them) in one transaction.
    fn flush(
        &mut self,
        kbs: &KnowledgeBases,
        pending: &PendingChanges,
        stats: &StoreStats,
        label: Option<String>,
    ) -> Result<(), String> {
        for kb in kbs.all() {
            let changes = kb.take_changes();
            if changes.cleared || !changes.rows.is_empty() {
                self.retry.push((kb.kb_id.clone(), changes));
            }
        }
        if self.retry.is_empty() && label.is_none() {
            return Ok(());
        }
        match write_batch(&mut self.conn, &self.retry, label.as_deref()) {
            Ok(rows) => {
                stats.rows_written.fetch_add(rows, Ordering::Relaxed);
                let done = self.retry.iter().map(|(_, c)| c.rows.len()).sum();
                pending.count.fetch_sub(done, Ordering::Relaxed);
                self.retry.clear();
                if label.is_some() {
                    self.label = label;
                }
                Ok(())
            }
            Err(e) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                Err(format!(
                    "knowledge-base database {}: {e}",
                    self.path.display()
                ))
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

/// Records the hold flag; a held file syncs every commit (`synchronous=FULL`).
fn set_hold(conn: &Connection, hold: bool) -> rusqlite::Result<()> {
    if hold {
        conn.execute(
            "INSERT OR REPLACE INTO engine_info VALUES ('commit_hold', '1')",
            [],
        )?;
    } else {
        conn.execute("DELETE FROM engine_info WHERE key = 'commit_hold'", [])?;
    }
    set_synchronous(conn, hold)
}

fn set_synchronous(conn: &Connection, full: bool) -> rusqlite::Result<()> {
    conn.execute_batch(if full {
        "PRAGMA synchronous=FULL;"
    } else {
        "PRAGMA synchronous=NORMAL;"
    })
}

/// Writes one batch (and the checkpoint `label`) in one transaction; returns the
/// number of rows written.
fn write_batch(
    conn: &mut Connection,
    batch: &[(String, Changes)],
    label: Option<&str>,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    if let Some(label) = label {
        tx.execute(
            "INSERT OR REPLACE INTO engine_info VALUES ('checkpoint', ?1)",
            [label],
        )?;
    }
    let mut written = 0;
    {
        let mut delete = tx.prepare_cached("DELETE FROM patterns WHERE kb_id = ?1")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO patterns (kb_id, name, pattern_data, length, frequency, emotives, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (kb_id, name) DO UPDATE SET frequency = excluded.frequency,
                emotives = excluded.emotives, metadata = excluded.metadata",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE patterns SET frequency = ?3, emotives = ?4, metadata = ?5
             WHERE kb_id = ?1 AND name = ?2",
        )?;
        let mut delete_affinity = tx.prepare_cached("DELETE FROM affinity WHERE kb_id = ?1")?;
        let mut upsert_affinity = tx.prepare_cached(
            "INSERT INTO affinity (kb_id, symbol, emotive, sum) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kb_id, symbol, emotive) DO UPDATE SET sum = excluded.sum",
        )?;
        for (kb_id, changes) in batch {
            if changes.cleared {
                delete.execute([kb_id])?;
                delete_affinity.execute([kb_id])?;
            }
            for (symbol, sums) in &changes.affinity {
                for (emotive, sum) in sums {
                    upsert_affinity.execute(params![kb_id, symbol, emotive, sum])?;
                }
            }
            for (digest, record) in &changes.rows {
                let name = hex::encode(digest);
                let frequency = i64::try_from(record.frequency).unwrap_or(i64::MAX);
                let emotives = to_json(&record.emotives);
                let metadata = to_json(&record.metadata);
                if record.persisted {
                    update.execute(params![kb_id, name, frequency, emotives, metadata])?;
                } else {
                    let data = to_json(record.events.as_ref());
                    let length = i64::try_from(record.length).unwrap_or(i64::MAX);
                    insert.execute(params![
                        kb_id, name, data, length, frequency, emotives, metadata
                    ])?;
                }
                written += 1;
            }
        }
    }
    tx.commit()?;
    Ok(written)
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
