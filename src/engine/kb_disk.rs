//! The knowledge bases' SQLite file as the engine reads and writes it: changes applied
//! as upserts, single patterns and whole listings read back (schema in
//! [`super::store`] and [`crate::kb::engine_file::SCHEMA_SQL`]).
//!
//! One connection, owned by whoever holds the engine's disk lock. Its page cache is
//! sized by the memory budget (`PRAGMA cache_size`); the rest of the file stays on disk
//! (the kernel's file cache, which is not the process's memory). Changes are applied
//! inside a transaction that [`Disk::begin`] opens and [`Disk::commit`] closes; a held
//! engine keeps it open between checkpoints, so the file still holds exactly the last
//! checkpoint while what was learned since waits in the journal, uncommitted.
//!
//! An engine without a file gets a private one in a temporary directory when its
//! changes outgrow the budget ([`Disk::open_spill`]); the directory is removed when the
//! disk is dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::kb::engine_file;

use super::kb_delta::{add_increments, NodeChanges, PatternDelta, PatternState};

/// One node's changes, taken for writing.
#[derive(Debug)]
pub struct NodeBatch {
    /// The KB id.
    pub kb_id: String,
    /// What it learned.
    pub changes: NodeChanges,
}

/// A failed write and whether the open transaction survived it.
#[derive(Debug)]
pub struct WriteFailure {
    /// SQLite's reason (disk full, I/O error...).
    pub error: rusqlite::Error,
    /// The whole transaction was rolled back, with whatever earlier writes it held.
    pub transaction_lost: bool,
}

/// The open file and its transaction state.
pub struct Disk {
    conn: Connection,
    path: PathBuf,
    _spill_dir: Option<tempfile::TempDir>,
    in_tx: bool,
    /// Rows per KB id as this connection sees them, for the KBs counted so far.
    counts: HashMap<String, u64>,
}

impl Disk {
    /// Opens (or creates) the engine file at `path`, with `page_cache` bytes of cache.
    /// WAL journal, `synchronous=NORMAL`; the WAL is checkpointed by
    /// [`Disk::checkpoint_wal`], not inside commits.
    pub fn open_file(path: &Path, page_cache: usize) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;",
        )?;
        conn.execute_batch(engine_file::SCHEMA_SQL)?;
        Self::with(conn, path, page_cache, None)
    }

    /// A private file in a new temporary directory, for an engine without one whose
    /// changes outgrew the budget. Nothing is synced: it never outlives the process.
    pub fn open_spill(page_cache: usize) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("katotune-kb-")
            .tempdir()
            .map_err(|e| format!("{}: {e}", std::env::temp_dir().display()))?;
        let path = dir.path().join("spill.kato.db");
        let open = || -> rusqlite::Result<Self> {
            let conn = Connection::open(&path)?;
            conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;")?;
            conn.execute_batch(engine_file::SCHEMA_SQL)?;
            Self::with(conn, &path, page_cache, None)
        };
        let mut disk = open().map_err(|e| format!("{}: {e}", path.display()))?;
        disk._spill_dir = Some(dir);
        Ok(disk)
    }

    fn with(
        conn: Connection,
        path: &Path,
        page_cache: usize,
        spill_dir: Option<tempfile::TempDir>,
    ) -> rusqlite::Result<Self> {
        let kib = (page_cache / 1024).max(64);
        conn.execute_batch(&format!("PRAGMA cache_size=-{kib};"))?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            _spill_dir: spill_dir,
            in_tx: false,
            counts: HashMap::new(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the store's own bookkeeping (`engine_info`).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// Opens a transaction unless one is open.
    pub fn begin(&mut self) -> rusqlite::Result<()> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN")?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits the open transaction (if any) with `label` as the checkpoint label.
    pub fn commit(&mut self, label: Option<&str>) -> Result<(), WriteFailure> {
        if let Some(label) = label {
            self.begin().map_err(|error| self.failure(error))?;
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO engine_info VALUES ('checkpoint', ?1)",
                    [label],
                )
                .map_err(|error| self.failure(error))?;
        }
        if !self.in_tx {
            return Ok(());
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.in_tx = false;
                Ok(())
            }
            Err(error) => {
                self.rollback();
                Err(WriteFailure {
                    error,
                    transaction_lost: true,
                })
            }
        }
    }

    /// Rolls the open transaction back (if any): the file is as last committed.
    pub fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(%error, "rolling the knowledge-base transaction back");
            }
        }
        self.in_tx = false;
        self.counts.clear();
    }

    /// Copies committed pages from the journal into the file, without waiting for
    /// readers (SQLite's passive checkpoint).
    pub fn checkpoint_wal(&self) {
        if let Err(error) = self.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(
                %error,
                "copying the knowledge base's write-ahead log into its file (retried later)"
            );
        }
    }

    fn failure(&mut self, error: rusqlite::Error) -> WriteFailure {
        let transaction_lost = self.in_tx && self.conn.is_autocommit();
        if transaction_lost {
            self.in_tx = false;
        }
        self.counts.clear();
        WriteFailure {
            error,
            transaction_lost,
        }
    }

    /// Applies `batch` inside the open transaction (call [`Disk::begin`] first), all or
    /// nothing for the whole transaction: on failure it is rolled back, this batch and
    /// every earlier write it held ([`WriteFailure::transaction_lost`] is always true),
    /// and the file is as last committed. Returns the pattern rows written.
    ///
    /// No savepoint around the batch: one would let a failed batch be undone alone, but
    /// SQLite then copies every page the batch touches into a statement journal (a
    /// temporary file) before changing it, twice the writes. Measured on the 1,189 KJV
    /// chapters with a KB file, 2 workers: about 720 samples/s with the savepoint,
    /// 1,270 without. A held transaction that is lost is what the checkpoint barrier
    /// recovers from anyway (the run goes back to its last checkpoint), and a batch
    /// written behind is its own transaction, given back and retried.
    pub fn apply(&mut self, batch: &[NodeBatch]) -> Result<u64, WriteFailure> {
        self.apply_all(batch).map_err(|error| {
            self.rollback();
            WriteFailure {
                error,
                transaction_lost: true,
            }
        })
    }

    fn apply_all(&mut self, batch: &[NodeBatch]) -> rusqlite::Result<u64> {
        let mut rows = 0;
        for node in batch {
            let kb_id = node.kb_id.as_str();
            if node.changes.cleared {
                self.conn
                    .execute("DELETE FROM patterns WHERE kb_id = ?1", [kb_id])?;
                self.conn
                    .execute("DELETE FROM affinity WHERE kb_id = ?1", [kb_id])?;
                self.counts.insert(kb_id.to_owned(), 0);
            }
            let mut sorted: Vec<_> = node.changes.patterns.iter().collect();
            sorted.sort_unstable_by_key(|(digest, _)| **digest);
            let mut added = 0;
            for (digest, delta) in sorted {
                if self.upsert(kb_id, digest, delta)? {
                    added += 1;
                }
                rows += 1;
            }
            if let Some(count) = self.counts.get_mut(kb_id) {
                *count += added;
            }
            for (symbol, increments) in &node.changes.affinity {
                let mut sums = self.affinity_of(kb_id, symbol)?;
                add_increments(&mut sums, increments, symbol);
                let mut upsert = self.conn.prepare_cached(
                    "INSERT INTO affinity (kb_id, symbol, emotive, sum) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kb_id, symbol, emotive) DO UPDATE SET sum = excluded.sum",
                )?;
                for (emotive, sum) in &sums {
                    upsert.execute(params![kb_id, symbol, emotive, sum])?;
                }
            }
        }
        Ok(rows)
    }

    /// Adds one delta to its row; returns whether the row is new.
    fn upsert(
        &self,
        kb_id: &str,
        digest: &[u8; 20],
        delta: &PatternDelta,
    ) -> rusqlite::Result<bool> {
        let mut hex = [0u8; 40];
        let name = hex_name(digest, &mut hex);
        let frequency = i64::try_from(delta.frequency).unwrap_or(i64::MAX);
        let length = i64::try_from(delta.length).unwrap_or(i64::MAX);
        let Some(extras) = &delta.extras else {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO patterns (kb_id, name, pattern_data, length, frequency, emotives, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, '[]', '{}')
                 ON CONFLICT (kb_id, name) DO UPDATE SET frequency = frequency + excluded.frequency
                 RETURNING frequency",
            )?;
            let total: i64 = stmt.query_row(
                params![kb_id, name, &*delta.pattern_data, length, frequency],
                |r| r.get(0),
            )?;
            return Ok(total == frequency);
        };
        // Emotives and metadata fold onto the stored ones: read, merge, write.
        debug_assert!(extras.emotives.len() <= super::session::PERSISTENCE);
        let (state, new) = match self.pattern(kb_id, digest)? {
            Some(mut stored) => {
                stored.apply(delta);
                (stored, false)
            }
            None => (PatternState::from_delta(delta), true),
        };
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO patterns (kb_id, name, pattern_data, length, frequency, emotives, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (kb_id, name) DO UPDATE SET frequency = excluded.frequency,
                emotives = excluded.emotives, metadata = excluded.metadata",
        )?;
        stmt.execute(params![
            kb_id,
            name,
            state.pattern_data,
            length,
            i64::try_from(state.frequency).unwrap_or(i64::MAX),
            to_json(&state.emotives),
            to_json(&state.metadata),
        ])?;
        Ok(new)
    }

    /// The stored pattern, if any (an unreadable row reads as absent, with a warning).
    pub fn pattern(
        &self,
        kb_id: &str,
        digest: &[u8; 20],
    ) -> rusqlite::Result<Option<PatternState>> {
        let mut hex = [0u8; 40];
        let name = hex_name(digest, &mut hex);
        let mut stmt = self.conn.prepare_cached(
            "SELECT pattern_data, length, frequency, emotives, metadata
             FROM patterns WHERE kb_id = ?1 AND name = ?2",
        )?;
        let row = stmt
            .query_row(params![kb_id, name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()?;
        let Some((pattern_data, length, frequency, emotives, metadata)) = row else {
            return Ok(None);
        };
        match (
            serde_json::from_str(&emotives),
            serde_json::from_str(&metadata),
        ) {
            (Ok(emotives), Ok(metadata)) => Ok(Some(PatternState {
                pattern_data,
                length: usize::try_from(length).unwrap_or(0),
                frequency: u64::try_from(frequency).unwrap_or(0),
                emotives,
                metadata,
            })),
            _ => {
                tracing::warn!(%kb_id, %name, "unreadable pattern row read as absent");
                Ok(None)
            }
        }
    }

    /// Every KB id with a pattern or an affinity sum stored, each found by one index
    /// seek (not a scan), so this is quick on a file of any size.
    pub fn kb_ids(&self) -> rusqlite::Result<Vec<String>> {
        let mut ids = std::collections::BTreeSet::new();
        for table in ["patterns", "affinity"] {
            let mut after = String::new();
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT MIN(kb_id) FROM {table} WHERE kb_id > ?1"))?;
            while let Some(id) = stmt.query_row([&after], |r| r.get::<_, Option<String>>(0))? {
                ids.insert(id.clone());
                after = id;
            }
        }
        Ok(ids.into_iter().collect())
    }

    /// Whether a row of that name is stored.
    pub fn contains(&self, kb_id: &str, digest: &[u8; 20]) -> rusqlite::Result<bool> {
        let mut hex = [0u8; 40];
        let name = hex_name(digest, &mut hex);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM patterns WHERE kb_id = ?1 AND name = ?2")?;
        stmt.exists(params![kb_id, name])
    }

    /// Rows stored for `kb_id` (counted once, then kept up to date by the writes).
    pub fn count(&mut self, kb_id: &str) -> rusqlite::Result<u64> {
        if let Some(count) = self.counts.get(kb_id) {
            return Ok(*count);
        }
        let count: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM patterns WHERE kb_id = ?1",
            [kb_id],
            |r| r.get(0),
        )?;
        let count = u64::try_from(count).unwrap_or(0);
        self.counts.insert(kb_id.to_owned(), count);
        Ok(count)
    }

    /// Every stored name of `kb_id` with its frequency, in name order; `visit` returns
    /// false to stop. Names that are not 40 hex digits are skipped with a warning.
    pub fn visit_frequencies(
        &self,
        kb_id: &str,
        mut visit: impl FnMut([u8; 20], u64) -> bool,
    ) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, frequency FROM patterns WHERE kb_id = ?1 ORDER BY name",
        )?;
        let mut rows = stmt.query([kb_id])?;
        while let Some(row) = rows.next()? {
            let name = row.get_ref(0)?.as_str()?;
            let frequency: i64 = row.get(1)?;
            let Some(digest) = super::kb::parse_digest(name) else {
                tracing::warn!(%kb_id, %name, "skipping a pattern row with a bad name");
                continue;
            };
            if !visit(digest, u64::try_from(frequency).unwrap_or(0)) {
                break;
            }
        }
        Ok(())
    }

    /// One symbol's stored affinity sums.
    pub fn affinity_of(
        &self,
        kb_id: &str,
        symbol: &str,
    ) -> rusqlite::Result<BTreeMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT emotive, sum FROM affinity WHERE kb_id = ?1 AND symbol = ?2")?;
        let rows = stmt.query_map(params![kb_id, symbol], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// Every stored symbol of `kb_id` with its sums, in symbol order.
    pub fn affinity(
        &self,
        kb_id: &str,
    ) -> rusqlite::Result<Vec<(String, BTreeMap<String, String>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT symbol, emotive, sum FROM affinity WHERE kb_id = ?1 ORDER BY symbol, emotive",
        )?;
        let mut rows = stmt.query([kb_id])?;
        let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        while let Some(row) = rows.next()? {
            let (symbol, emotive, sum): (String, String, String) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            match out.last_mut() {
                Some((last, sums)) if *last == symbol => {
                    sums.insert(emotive, sum);
                }
                _ => out.push((symbol, BTreeMap::from([(emotive, sum)]))),
            }
        }
        Ok(out)
    }
}

/// The bare 40-hex name of `digest`, written into `buf`.
fn hex_name<'a>(digest: &[u8; 20], buf: &'a mut [u8; 40]) -> &'a str {
    // 40 hex digits always fit and are ASCII.
    let _ = hex::encode_to_slice(digest, buf);
    std::str::from_utf8(buf).unwrap_or_default()
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
