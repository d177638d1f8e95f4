//! Adding portable entries to an engine KB file (the `kb load` side of
//! [`super::read_engine_file`]).

use super::*;

/// Entries per transaction: bounds the journal while keeping inserts fast.
const BATCH: usize = 10_000;

/// Writes entries into an engine KB file, creating it (schema version 2) if needed.
///
/// Nothing else may write the file meanwhile (stop the engine first). Entries become
/// visible in batches; call [`EngineFileWriter::finish`] to commit the last one
/// (dropping the writer without it rolls the last batch back).
pub struct EngineFileWriter {
    path: PathBuf,
    conn: Connection,
    in_batch: std::cell::Cell<usize>,
}

impl EngineFileWriter {
    /// Opens or creates the file at `path`.
    ///
    /// # Errors
    /// [`EngineFileError::Sqlite`] when the file cannot be opened or is not a database.
    pub fn open(path: &Path) -> Result<Self, EngineFileError> {
        let err = sqlite(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .and_then(|()| conn.execute_batch(SCHEMA_SQL))
            .and_then(|()| conn.execute_batch("BEGIN"))
            .map_err(&err)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn,
            in_batch: std::cell::Cell::new(0),
        })
    }

    fn tick(&self) -> Result<(), EngineFileError> {
        self.in_batch.set(self.in_batch.get() + 1);
        if self.in_batch.get() >= BATCH {
            self.conn
                .execute_batch("COMMIT; BEGIN")
                .map_err(sqlite(&self.path))?;
            self.in_batch.set(0);
        }
        Ok(())
    }

    /// Adds one pattern. Without `merge` it replaces any stored pattern of that name;
    /// with `merge` it adds as relearning would: frequencies add, the emotive window is
    /// the stored one followed by `p`'s (last 5 kept), metadata values unite.
    /// Returns whether the pattern was new to the file.
    ///
    /// # Errors
    /// [`EngineFileError`] when SQLite fails or the stored row is unreadable.
    pub fn add_pattern(&mut self, p: &PatternEntry, merge: bool) -> Result<bool, EngineFileError> {
        let err = sqlite(&self.path);
        let tx = &self.conn;
        let prior = if merge {
            stored_pattern(&self.path, tx, p)?
        } else {
            None
        };
        let is_new = prior.is_none();
        let merged = match prior {
            Some(prior) => merge_into(prior, p),
            None => p.clone(),
        };
        let length =
            i64::try_from(merged.events.iter().map(Vec::len).sum::<usize>()).unwrap_or(i64::MAX);
        let replaced = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO patterns
                 (kb_id, name, pattern_data, length, frequency, emotives, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    merged.kb_id,
                    merged.name,
                    to_json(&merged.events),
                    length,
                    i64::try_from(merged.frequency).unwrap_or(i64::MAX),
                    to_json(&merged.emotives),
                    to_json(&merged.metadata),
                ])
            })
            .map_err(&err)?;
        debug_assert_eq!(replaced, 1);
        self.tick()?;
        Ok(is_new)
    }

    /// Adds one symbol's affinity: sets each sum, or with `merge` adds it to the
    /// stored sum in Redis's `HINCRBYFLOAT` arithmetic.
    ///
    /// # Errors
    /// [`EngineFileError`] when SQLite fails or two sums cannot be added.
    pub fn add_affinity(&mut self, a: &AffinityEntry, merge: bool) -> Result<(), EngineFileError> {
        let err = sqlite(&self.path);
        let tx = &self.conn;
        for (emotive, text) in &a.sums {
            let sum = if merge {
                let stored: Option<String> = tx
                    .prepare_cached("SELECT sum FROM affinity WHERE kb_id = ?1 AND symbol = ?2 AND emotive = ?3")
                    .and_then(|mut s| s.query_row(params![a.kb_id, a.symbol, emotive], |r| r.get(0)).optional())
                    .map_err(&err)?;
                hincrbyfloat(stored.as_deref(), text).map_err(|source| {
                    EngineFileError::Affinity {
                        path: self.path.clone(),
                        kb_id: a.kb_id.clone(),
                        symbol: a.symbol.clone(),
                        source,
                    }
                })?
            } else {
                text.clone()
            };
            tx.prepare_cached("INSERT OR REPLACE INTO affinity (kb_id, symbol, emotive, sum) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![a.kb_id, a.symbol, emotive, sum]))
                .map_err(&err)?;
        }
        self.tick()
    }

    /// Removes every pattern and affinity sum of one KB; returns the patterns removed.
    ///
    /// # Errors
    /// [`EngineFileError::Sqlite`].
    pub fn remove_kb(&mut self, kb_id: &str) -> Result<u64, EngineFileError> {
        let err = sqlite(&self.path);
        let removed = self
            .conn
            .execute("DELETE FROM patterns WHERE kb_id = ?1", [kb_id])
            .map_err(&err)?;
        self.conn
            .execute("DELETE FROM affinity WHERE kb_id = ?1", [kb_id])
            .map_err(&err)?;
        Ok(u64::try_from(removed).unwrap_or(u64::MAX))
    }

    /// Commits what is left.
    ///
    /// # Errors
    /// [`EngineFileError::Sqlite`] when the commit fails (nothing of the last batch stays).
    pub fn finish(self) -> Result<(), EngineFileError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(sqlite(&self.path))
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn stored_pattern(
    path: &Path,
    tx: &Connection,
    p: &PatternEntry,
) -> Result<Option<PatternEntry>, EngineFileError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT kb_id, name, pattern_data, frequency, emotives, metadata
             FROM patterns WHERE kb_id = ?1 AND name = ?2",
        )
        .map_err(sqlite(path))?;
    let mut rows = stmt.query(params![p.kb_id, p.name]).map_err(sqlite(path))?;
    match rows.next().map_err(sqlite(path))? {
        Some(row) => Ok(Some(pattern_from_row(path, row)?)),
        None => Ok(None),
    }
}

fn merge_into(mut prior: PatternEntry, p: &PatternEntry) -> PatternEntry {
    prior.frequency = prior.frequency.saturating_add(p.frequency);
    prior.emotives.extend(p.emotives.iter().cloned());
    let skip = prior.emotives.len().saturating_sub(EMOTIVE_WINDOW);
    prior.emotives.drain(..skip);
    for (key, values) in &p.metadata {
        let merged: &mut BTreeSet<String> = prior.metadata.entry(key.clone()).or_default();
        merged.extend(values.iter().cloned());
    }
    prior
}
