//! Knowledge bases read in key order, one entry at a time, for the k-way merge of
//! [`super::merge`]: patterns by `(kb_id, name)`, then affinity sums by
//! `(kb_id, symbol, emotive)`.
//!
//! An engine KB file is read in pages of [`PAGE`] rows by keyset (`WHERE key > last
//! ORDER BY key LIMIT PAGE`, on the tables' primary keys), so memory stays at one page
//! per input however large the file, with no reader thread. A dump is read line by
//! line; it must already be in that order (as `kb dump` writes an engine file), which
//! the merge checks as it goes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::dump::{DumpError, DumpItem, DumpReader};
use super::engine_file::{pattern_from_row, EngineFileError};
use super::PatternEntry;

/// Rows fetched per query from an engine file.
pub const PAGE: usize = 512;

/// One symbol's sum for one emotive in one KB: `(kb_id, symbol, emotive, sum)`, the
/// sum as Redis's `HINCRBYFLOAT` text.
pub type AffinityRow = (String, String, String, String);

/// What a sorted source could not read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    EngineFile(#[from] EngineFileError),
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Entries out of merge order (`what` says which).
    #[error(
        "{}: {what}. A merge reads its inputs in (KB, name) order, as engine KB files \
         and their dumps are; a dump of KATO's stores is not: load it into an engine file \
         first (`katotune kb load DUMP --into FILE.kato.db`) and merge that",
        path.display()
    )]
    Unsorted { path: PathBuf, what: String },
}

/// A knowledge base read in key order. [`SortedSource::next_affinity`] is asked only
/// once [`SortedSource::next_pattern`] has answered `None`.
pub trait SortedSource {
    /// The next pattern, `None` after the last.
    fn next_pattern(&mut self) -> Result<Option<PatternEntry>, SourceError>;
    /// The next affinity sum, `None` after the last.
    fn next_affinity(&mut self) -> Result<Option<AffinityRow>, SourceError>;
}

/// An engine KB file read by pages (see the module docs).
pub struct EngineFileSource {
    path: PathBuf,
    conn: Connection,
    patterns: VecDeque<PatternEntry>,
    /// Key of the last pattern fetched; `None` before the first page.
    pattern_key: Option<(String, String)>,
    patterns_done: bool,
    affinity: VecDeque<AffinityRow>,
    affinity_key: Option<(String, String, String)>,
    /// No affinity table (schema version 1), or every row fetched.
    affinity_done: bool,
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> EngineFileError + '_ {
    move |source| EngineFileError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

impl EngineFileSource {
    /// Opens `path` read-only.
    ///
    /// # Errors
    /// [`EngineFileError::Sqlite`] when it cannot be opened or is not an engine file.
    pub fn open(path: &Path) -> Result<Self, EngineFileError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite(path))?;
        let has_affinity = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'affinity'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(sqlite(path))?
            .is_some();
        Ok(Self {
            path: path.to_path_buf(),
            conn,
            patterns: VecDeque::new(),
            pattern_key: None,
            patterns_done: false,
            affinity: VecDeque::new(),
            affinity_key: None,
            affinity_done: !has_affinity,
        })
    }

    fn fetch_patterns(&mut self) -> Result<(), EngineFileError> {
        let err = sqlite(&self.path);
        let columns =
            "SELECT kb_id, name, pattern_data, frequency, emotives, metadata FROM patterns";
        let (sql, after) = match &self.pattern_key {
            None => (format!("{columns} ORDER BY kb_id, name LIMIT {PAGE}"), None),
            Some(key) => (
                format!(
                    "{columns} WHERE (kb_id, name) > (?1, ?2) ORDER BY kb_id, name LIMIT {PAGE}"
                ),
                Some(key.clone()),
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(&err)?;
        let mut rows = match &after {
            None => stmt.query([]),
            Some((kb, name)) => stmt.query(params![kb, name]),
        }
        .map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            self.patterns.push_back(pattern_from_row(&self.path, row)?);
        }
        self.patterns_done = self.patterns.len() < PAGE;
        if let Some(last) = self.patterns.back() {
            self.pattern_key = Some((last.kb_id.clone(), last.name.clone()));
        }
        Ok(())
    }

    fn fetch_affinity(&mut self) -> Result<(), EngineFileError> {
        let err = sqlite(&self.path);
        let columns = "SELECT kb_id, symbol, emotive, sum FROM affinity";
        let order = format!("ORDER BY kb_id, symbol, emotive LIMIT {PAGE}");
        let (sql, after) = match &self.affinity_key {
            None => (format!("{columns} {order}"), None),
            Some(key) => (
                format!("{columns} WHERE (kb_id, symbol, emotive) > (?1, ?2, ?3) {order}"),
                Some(key.clone()),
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(&err)?;
        let read = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        let rows = match &after {
            None => stmt.query_map([], read),
            Some((kb, symbol, emotive)) => stmt.query_map(params![kb, symbol, emotive], read),
        }
        .map_err(&err)?;
        for row in rows {
            self.affinity.push_back(row.map_err(&err)?);
        }
        self.affinity_done = self.affinity.len() < PAGE;
        if let Some((kb, symbol, emotive, _)) = self.affinity.back() {
            self.affinity_key = Some((kb.clone(), symbol.clone(), emotive.clone()));
        }
        Ok(())
    }
}

impl SortedSource for EngineFileSource {
    fn next_pattern(&mut self) -> Result<Option<PatternEntry>, SourceError> {
        if self.patterns.is_empty() && !self.patterns_done {
            self.fetch_patterns()?;
        }
        Ok(self.patterns.pop_front())
    }

    fn next_affinity(&mut self) -> Result<Option<AffinityRow>, SourceError> {
        if self.affinity.is_empty() && !self.affinity_done {
            self.fetch_affinity()?;
        }
        Ok(self.affinity.pop_front())
    }
}

/// A dump read line by line: its patterns, then its affinity entries spread into rows.
pub struct DumpSource {
    path: PathBuf,
    reader: DumpReader<BufReader<File>>,
    /// The first affinity entry, read while looking for more patterns.
    peeked: Option<DumpItem>,
    rows: VecDeque<AffinityRow>,
}

impl DumpSource {
    /// Opens the dump at `path` and checks its header.
    ///
    /// # Errors
    /// [`SourceError::Open`] or the dump's own [`DumpError`].
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: DumpReader::new(BufReader::with_capacity(1 << 16, file), path)?,
            peeked: None,
            rows: VecDeque::new(),
        })
    }

    /// The dump's header: its service name and KB ids.
    pub fn header(&self) -> &super::dump::DumpHeader {
        self.reader.header()
    }
}

impl SortedSource for DumpSource {
    fn next_pattern(&mut self) -> Result<Option<PatternEntry>, SourceError> {
        if self.peeked.is_some() {
            return Ok(None);
        }
        match self.reader.next_item()? {
            Some(DumpItem::Pattern(p)) => Ok(Some(p)),
            other => {
                self.peeked = other;
                Ok(None)
            }
        }
    }

    fn next_affinity(&mut self) -> Result<Option<AffinityRow>, SourceError> {
        while self.rows.is_empty() {
            let item = match self.peeked.take() {
                Some(item) => Some(item),
                None => self.reader.next_item()?,
            };
            match item {
                None => return Ok(None),
                Some(DumpItem::Affinity(a)) => self.rows.extend(
                    (a.sums.into_iter())
                        .map(|(emotive, sum)| (a.kb_id.clone(), a.symbol.clone(), emotive, sum)),
                ),
                Some(DumpItem::Pattern(p)) => {
                    return Err(SourceError::Unsorted {
                        path: self.path.clone(),
                        what: format!(
                            "pattern {} of {} comes after affinity entries",
                            p.name, p.kb_id
                        ),
                    })
                }
            }
        }
        Ok(self.rows.pop_front())
    }
}
