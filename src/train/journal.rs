//! The resume journal: where a run may continue from, written atomically.
//!
//! It records the raw row index just past the contiguous prefix of *completed*
//! samples (not submitted ones, and in raw rows, not filtered counts: TRAINING.md
//! problems 9-11), together with the profile's learning hash and the dataset's
//! identity, so a resume can refuse a journal from another profile or dataset.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dataset::DatasetIdentity;
use super::shard::Shard;

/// Format version of the journal file.
pub const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub profile: String,
    /// Hash of everything in the profile that decides what is learned.
    pub learning_hash: String,
    pub dataset: DatasetIdentity,
    /// First raw row not yet known to be done; a resume starts reading here.
    pub next_row: u64,
    /// Samples trained (or settled as at risk) so far, over every session of this run.
    pub samples_done: u64,
    /// Rows whose learns may have been applied partly or twice (never re-run).
    pub at_risk_rows: Vec<u64>,
    /// Rows skipped as unreadable.
    pub skipped_rows: Vec<u64>,
    pub run_id: String,
    pub updated_at: String,
    /// The shard this journal's run trains (`run --shard I/N`); none for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read the resume journal {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the resume journal {} is damaged ({reason}); delete it to start over", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("no resume journal at {} and no row log beside it: nothing to resume; run without --resume to start (with --fresh if a knowledge base from an earlier run is in the way)", path.display())]
    Missing { path: PathBuf },
    #[error("the resume journal {} belongs to {what}; resuming would mix two trainings in one knowledge base. Run without --resume to start over, or use the matching profile, dataset and --shard", path.display())]
    Mismatch { path: PathBuf, what: String },
    #[error("cannot write the resume journal {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Journal {
    /// Reads a journal; `Missing` when there is none.
    pub fn load(path: &Path) -> Result<Journal, JournalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JournalError::Missing { path: path.into() })
            }
            Err(source) => {
                return Err(JournalError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let journal: Journal = serde_json::from_str(&text).map_err(|e| JournalError::Damaged {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if journal.version != JOURNAL_VERSION {
            return Err(JournalError::Damaged {
                path: path.into(),
                reason: format!(
                    "version {} (this katotune writes {JOURNAL_VERSION})",
                    journal.version
                ),
            });
        }
        Ok(journal)
    }

    /// Refuses a journal written for another profile, dataset or shard.
    pub fn check(
        &self,
        path: &Path,
        learning_hash: &str,
        dataset: &DatasetIdentity,
        shard: Option<Shard>,
    ) -> Result<(), JournalError> {
        if self.shard != shard {
            let name = |s: Option<Shard>| {
                s.map_or("the whole run (no --shard)".into(), |s| {
                    format!("shard {s}")
                })
            };
            return Err(JournalError::Mismatch {
                path: path.into(),
                what: format!("{}, but this run is {}", name(self.shard), name(shard)),
            });
        }
        if self.learning_hash != learning_hash {
            return Err(JournalError::Mismatch {
                path: path.into(),
                what: format!(
                    "profile `{}` with other training settings (hash {} here, {} in the journal)",
                    self.profile, learning_hash, self.learning_hash
                ),
            });
        }
        if self.dataset.fingerprint != dataset.fingerprint || self.dataset.bytes != dataset.bytes {
            return Err(JournalError::Mismatch {
                path: path.into(),
                what: format!(
                    "another dataset ({}, {} bytes)",
                    self.dataset.path.display(),
                    self.dataset.bytes
                ),
            });
        }
        Ok(())
    }

    /// Writes the journal atomically: a temporary file, fsync, then rename.
    pub fn save(&self, path: &Path) -> Result<(), JournalError> {
        let err = |source| JournalError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("journal.tmp");
        let text = serde_json::to_vec_pretty(self).expect("a journal always serializes");
        let mut file = std::fs::File::create(&tmp).map_err(err)?;
        file.write_all(&text).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// Tracks which raw rows are done, to find the contiguous completed prefix while
/// samples finish out of order.
#[derive(Debug, Default)]
pub struct Frontier {
    /// Rows handed out, in order, with whether each is done.
    pending: VecDeque<(u64, bool)>,
    /// First row after everything handed out so far.
    read_up_to: u64,
}

impl Frontier {
    pub fn starting_at(row: u64) -> Self {
        Self {
            pending: VecDeque::new(),
            read_up_to: row,
        }
    }

    /// A row was read and is now being trained.
    pub fn dispatched(&mut self, row: u64) {
        self.pending.push_back((row, false));
        self.read_up_to = row + 1;
    }

    /// A row was read and needs no training (filtered, or skipped as unreadable).
    pub fn settled(&mut self, row: u64) {
        self.pending.push_back((row, true));
        self.read_up_to = row + 1;
        self.advance();
    }

    /// A dispatched row finished (trained, or settled as at risk).
    pub fn completed(&mut self, row: u64) {
        if let Some(slot) = self.pending.iter_mut().find(|(r, _)| *r == row) {
            slot.1 = true;
        }
        self.advance();
    }

    fn advance(&mut self) {
        while self.pending.front().is_some_and(|(_, done)| *done) {
            self.pending.pop_front();
        }
    }

    /// First row not known to be done.
    pub fn next_row(&self) -> u64 {
        self.pending
            .front()
            .map(|(r, _)| *r)
            .unwrap_or(self.read_up_to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_stops_at_the_first_unfinished_row() {
        let mut f = Frontier::starting_at(10);
        f.dispatched(10);
        f.settled(11);
        f.dispatched(12);
        f.dispatched(13);
        assert_eq!(f.next_row(), 10);
        f.completed(13);
        assert_eq!(f.next_row(), 10, "13 finished, but 10 and 12 did not");
        f.completed(10);
        assert_eq!(f.next_row(), 12);
        f.completed(12);
        assert_eq!(f.next_row(), 14);
    }

    #[test]
    fn rows_staged_under_the_stored_label_count_as_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.log");
        let mut log = RowLog::open(&path, true).unwrap();
        for row in 0..4 {
            log.record(row, RowState::Started);
        }
        log.stage("run/a/1", &[(0, RowState::Done), (1, RowState::AtRisk)])
            .unwrap();
        log.stage("run/a/2", &[(2, RowState::Done)]).unwrap();
        let (states, applied) = RowLog::load_with(&path, Some("run/a/1")).unwrap();
        assert_eq!(states[&0], RowState::Done);
        assert_eq!(states[&1], RowState::AtRisk);
        assert_eq!(
            states[&2],
            RowState::Started,
            "its checkpoint never reached the KB"
        );
        assert_eq!(applied, vec![(0, RowState::Done), (1, RowState::AtRisk)]);
        let (states, _) = RowLog::load_with(&path, None).unwrap();
        assert_eq!(states[&0], RowState::Started);
    }

    /// A full disk: the checkpoint learns that its rows are not on disk (and so must
    /// not commit), naming the file; `/dev/full` fails every write with ENOSPC.
    #[cfg(target_os = "linux")]
    #[test]
    fn staging_on_a_full_disk_is_an_error_naming_the_log() {
        let full = std::path::Path::new("/dev/full");
        let mut log = RowLog::open(full, false).unwrap();
        log.record(0, RowState::Started);
        let error = log.stage("run/a/1", &[(0, RowState::Done)]).unwrap_err();
        assert!(error.contains("/dev/full"), "{error}");
        assert!(error.contains("No space left"), "{error}");
    }
}

/// What happened to one row, as the row log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// Training started and never finished: its learns may be partial.
    Started,
    /// Trained to the end.
    Done,
    /// Settled as at risk.
    AtRisk,
    /// Failed before changing anything: train it again.
    Failed,
}

/// An append-only log of row events, written before each sample's first request and
/// after its last, so even a `kill -9` leaves a true account: on resume, rows that
/// finished out of order are not trained twice, and rows that were half-way are
/// reported at risk instead of being trained again over their partial learns.
///
/// Writes are buffered: [`RowLog::flush`] hands them to the operating system (which
/// keeps them through a `kill -9`), [`RowLog::stage`] also syncs them to disk.
#[derive(Debug)]
pub struct RowLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    /// Whether a write error was already reported (a full disk fails every line:
    /// one message is enough; the next checkpoint's [`RowLog::stage`] stops the run).
    failing: bool,
}

impl RowLog {
    /// The log that belongs to a journal file.
    pub fn path_for(journal: &Path) -> PathBuf {
        journal.with_extension("rows.log")
    }

    /// Opens the log for appending; `fresh` empties it first.
    pub fn open(path: &Path, fresh: bool) -> Result<Self, JournalError> {
        let err = |source| JournalError::Write {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        if fresh {
            file.set_len(0).map_err(err)?;
        }
        Ok(Self {
            file: std::io::BufWriter::new(file),
            path: path.into(),
            failing: false,
        })
    }

    /// Hands buffered lines to the operating system: from then on they survive the
    /// process dying (not the machine: see [`RowLog::stage`]).
    pub fn flush(&mut self) {
        if let Err(e) = self.file.flush() {
            self.report(&e);
        }
    }

    /// Reports the first write error; later ones stay quiet until a checkpoint's
    /// [`RowLog::stage`] succeeds again.
    fn report(&mut self, e: &std::io::Error) {
        if !self.failing {
            tracing::error!("cannot append to {}: {e}", self.path.display());
        }
        self.failing = true;
    }

    /// Appends one event to the buffer (see [`RowLog::flush`]).
    pub fn record(&mut self, row: u64, state: RowState) {
        let tag = match state {
            RowState::Started => 'S',
            RowState::Done => 'D',
            RowState::AtRisk => 'R',
            RowState::Failed => 'F',
        };
        if let Err(e) = writeln!(self.file, "{tag} {row}") {
            self.report(&e);
        }
    }

    /// Writes (and syncs, with every line before it) the rows a labelled checkpoint is about to commit, with the
    /// state each gets once it is durable: `P LABEL ROWd ROWr ...`. A resume whose
    /// knowledge base holds that label applies them even if the process died before
    /// writing their own lines.
    ///
    /// # Errors
    /// The row log could not be written and synced (`cannot append to PATH: ...`): the
    /// checkpoint must not commit, since a resume could not tell its rows were done.
    pub fn stage(&mut self, label: &str, rows: &[(u64, RowState)]) -> Result<(), String> {
        let mut line = format!("P {label}");
        for (row, state) in rows {
            let tag = if *state == RowState::AtRisk { 'r' } else { 'd' };
            line.push_str(&format!(" {row}{tag}"));
        }
        line.push('\n');
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.get_ref().sync_data());
        match written {
            Ok(()) => {
                self.failing = false;
                Ok(())
            }
            Err(e) => {
                self.failing = true;
                Err(format!("cannot append to {}: {e}", self.path.display()))
            }
        }
    }

    /// The last state of every row, with the rows staged under `durable_label` (the
    /// label the knowledge base holds) applied as done or at risk.
    /// Also returns the rows the label settled, to be written down again.
    #[allow(clippy::type_complexity)]
    pub fn load_with(
        path: &Path,
        durable_label: Option<&str>,
    ) -> Result<
        (
            std::collections::BTreeMap<u64, RowState>,
            Vec<(u64, RowState)>,
        ),
        JournalError,
    > {
        let mut states = Self::load(path)?;
        let mut applied = Vec::new();
        let Some(label) = durable_label else {
            return Ok((states, applied));
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let mut parts = line.split(' ');
            if parts.next() != Some("P") || parts.next() != Some(label) {
                continue;
            }
            for entry in parts {
                let (row, state) = match entry.split_at(entry.len().saturating_sub(1)) {
                    (row, "r") => (row, RowState::AtRisk),
                    (row, _) => (row, RowState::Done),
                };
                if let Ok(row) = row.parse::<u64>() {
                    let slot = states.entry(row).or_insert(RowState::Started);
                    if matches!(slot, RowState::Started) {
                        *slot = state;
                        applied.push((row, state));
                    }
                }
            }
        }
        Ok((states, applied))
    }

    /// The last state of every row in the log (a torn last line is ignored).
    pub fn load(path: &Path) -> Result<std::collections::BTreeMap<u64, RowState>, JournalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(source) => {
                return Err(JournalError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let mut states = std::collections::BTreeMap::new();
        for line in text.lines() {
            let mut parts = line.split(' ');
            let state = match parts.next() {
                Some("S") => RowState::Started,
                Some("D") => RowState::Done,
                Some("R") => RowState::AtRisk,
                Some("F") => RowState::Failed,
                _ => continue,
            };
            if let Some(row) = parts.next().and_then(|r| r.parse::<u64>().ok()) {
                states.insert(row, state);
            }
        }
        Ok(states)
    }
}
