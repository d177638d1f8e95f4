//! The embedded engine's knowledge-base file (SQLite, schema in
//! [`crate::engine::store`]) read and written as portable entries.
//!
//! [`read_engine_file`] streams a file without loading it: patterns come sorted by
//! `kb_id` then `name`, affinity by `kb_id` then `symbol`, in bounded memory, through a
//! read-only connection (safe while nothing writes it; SQLite WAL readers see the
//! last commit). [`EngineFileWriter`] adds entries to a file with the same semantics
//! a `--merge` load into KATO's stores has (see [`super::kato_form`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::kato_form::EMOTIVE_WINDOW;
use super::redis_float::{hincrbyfloat, RedisFloatError};
use super::{AffinityEntry, PatternEntry};

/// The schema every engine KB file has (version 2); idempotent, so it also upgrades
/// a version-1 file by adding the affinity table.
pub const SCHEMA_SQL: &str = "
    CREATE TABLE IF NOT EXISTS patterns (
        kb_id TEXT NOT NULL, name TEXT NOT NULL, pattern_data TEXT NOT NULL,
        length INTEGER NOT NULL, frequency INTEGER NOT NULL,
        emotives TEXT NOT NULL, metadata TEXT NOT NULL,
        PRIMARY KEY (kb_id, name)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS affinity (
        kb_id TEXT NOT NULL, symbol TEXT NOT NULL, emotive TEXT NOT NULL, sum TEXT NOT NULL,
        PRIMARY KEY (kb_id, symbol, emotive)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS engine_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT OR REPLACE INTO engine_info VALUES ('schema_version', '2');";

/// What went wrong with an engine KB file.
#[derive(Debug, thiserror::Error)]
pub enum EngineFileError {
    /// SQLite refused (missing file, not a database, locked, disk full...).
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A row that does not parse.
    #[error("{path}: pattern {kb_id}/{name}: unreadable {column} column; the file is damaged")]
    BadRow {
        path: PathBuf,
        kb_id: String,
        name: String,
        column: &'static str,
    },
    /// Two affinity sums Redis could not add.
    #[error("{path}: affinity {kb_id}/{symbol}: {source}")]
    Affinity {
        path: PathBuf,
        kb_id: String,
        symbol: String,
        source: RedisFloatError,
    },
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> EngineFileError + '_ {
    move |source| EngineFileError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether the engine file at `path` holds any knowledge: a pattern or an affinity
/// sum. A missing or empty file holds none, and so does the bare schema a run leaves
/// when it stopped before learning anything; a file that cannot be read as an engine
/// file counts as holding some, so that it is never replaced without `--fresh`.
pub fn holds_knowledge(path: &Path) -> bool {
    if !std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        return false;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return true;
    };
    let any = |table: &str| {
        conn.query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), [], |r| {
            r.get::<_, bool>(0)
        })
    };
    match (any("patterns"), any("affinity")) {
        (Ok(patterns), Ok(affinity)) => patterns || affinity,
        // Schema version 1 has no affinity table.
        (Ok(patterns), Err(_)) => patterns,
        (Err(_), _) => true,
    }
}

/// Streams every pattern, then every symbol's affinity, of the engine file at `path`.
///
/// A file without the affinity table (schema version 1) gives no affinity. An error
/// returned by a callback stops the read and comes back as is.
///
/// # Errors
/// [`EngineFileError`] (boxed into `E` via `From`) when the file cannot be read.
pub fn read_engine_file<E: From<EngineFileError>>(
    path: &Path,
    mut on_pattern: impl FnMut(PatternEntry) -> Result<(), E>,
    mut on_affinity: impl FnMut(AffinityEntry) -> Result<(), E>,
) -> Result<(), E> {
    let err = sqlite(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(&err)?;
    let mut stmt = conn
        .prepare(
            "SELECT kb_id, name, pattern_data, frequency, emotives, metadata
             FROM patterns ORDER BY kb_id, name",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([]).map_err(&err)?;
    while let Some(row) = rows.next().map_err(&err)? {
        on_pattern(pattern_from_row(path, row)?)?;
    }
    let has_affinity: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'affinity'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(&err)?;
    if has_affinity.is_none() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare("SELECT kb_id, symbol, emotive, sum FROM affinity ORDER BY kb_id, symbol, emotive")
        .map_err(&err)?;
    let mut rows = stmt.query([]).map_err(&err)?;
    let mut current: Option<AffinityEntry> = None;
    while let Some(row) = rows.next().map_err(&err)? {
        let (kb_id, symbol): (String, String) =
            (row.get(0).map_err(&err)?, row.get(1).map_err(&err)?);
        let (emotive, sum): (String, String) =
            (row.get(2).map_err(&err)?, row.get(3).map_err(&err)?);
        match &mut current {
            Some(entry) if entry.kb_id == kb_id && entry.symbol == symbol => {
                entry.sums.insert(emotive, sum);
            }
            _ => {
                if let Some(done) = current.take() {
                    on_affinity(done)?;
                }
                current = Some(AffinityEntry {
                    kb_id,
                    symbol,
                    sums: BTreeMap::from([(emotive, sum)]),
                });
            }
        }
    }
    if let Some(done) = current {
        on_affinity(done)?;
    }
    Ok(())
}

/// One `patterns` row (columns kb_id, name, pattern_data, frequency, emotives,
/// metadata, in that order) as an entry.
pub(crate) fn pattern_from_row(
    path: &Path,
    row: &rusqlite::Row<'_>,
) -> Result<PatternEntry, EngineFileError> {
    let err = sqlite(path);
    let kb_id: String = row.get(0).map_err(&err)?;
    let name: String = row.get(1).map_err(&err)?;
    let bad = |column| EngineFileError::BadRow {
        path: path.to_path_buf(),
        kb_id: kb_id.clone(),
        name: name.clone(),
        column,
    };
    let text = |i: usize| -> Result<String, EngineFileError> { row.get(i).map_err(&err) };
    let events = serde_json::from_str(&text(2)?).map_err(|_| bad("pattern_data"))?;
    let frequency: i64 = row.get(3).map_err(&err)?;
    let frequency = u64::try_from(frequency).map_err(|_| bad("frequency"))?;
    let emotives = serde_json::from_str(&text(4)?).map_err(|_| bad("emotives"))?;
    let metadata = serde_json::from_str(&text(5)?).map_err(|_| bad("metadata"))?;
    Ok(PatternEntry {
        kb_id,
        name,
        events,
        frequency,
        emotives,
        metadata,
    })
}

#[path = "engine_file_writer.rs"]
mod writer;
pub use writer::EngineFileWriter;

#[cfg(test)]
#[path = "engine_file_tests.rs"]
mod tests;
