//! Where a merge writes: a new engine KB file or a new dump, built beside the output
//! (`OUT.partial`) and renamed over it only when complete, so a failed or cut merge
//! never leaves a half-written knowledge base under the output's name.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::super::dump::{DumpHeader, DumpItem, DumpWriter};
use super::super::engine_file::EngineFileWriter;
use super::{AffinityEntry, MergeError, MergeSink, PatternEntry};

/// `OUT.partial`: where the output is built.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

fn write_error(path: &Path, reason: impl ToString) -> MergeError {
    MergeError::Write {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Removes `path` and SQLite's `-wal`/`-shm` companions (a stale WAL beside a new
/// file would be replayed into it). Missing files are fine.
fn remove_with_companions(path: &Path) -> Result<(), MergeError> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(&file, e)),
        }
    }
    Ok(())
}

/// Moves the finished `partial` over `out` (replacing it and its companions).
fn publish(partial: &Path, out: &Path) -> Result<(), MergeError> {
    remove_with_companions(out)?;
    std::fs::rename(partial, out).map_err(|e| write_error(out, e))
}

/// A new engine KB file (schema version 2) at `out`.
pub struct EngineFileSink {
    out: PathBuf,
    partial: PathBuf,
    writer: EngineFileWriter,
}

impl EngineFileSink {
    /// Starts `OUT.partial` (a leftover from a cut merge is replaced).
    ///
    /// # Errors
    /// [`MergeError::Write`] when the file cannot be created.
    pub fn create(out: &Path) -> Result<Self, MergeError> {
        let partial = partial_path(out);
        remove_with_companions(&partial)?;
        let writer = EngineFileWriter::open(&partial).map_err(|e| write_error(&partial, e))?;
        Ok(Self {
            out: out.to_path_buf(),
            partial,
            writer,
        })
    }

    /// Commits and renames the file to `out`.
    ///
    /// # Errors
    /// [`MergeError::Write`] when the commit or the rename fails.
    pub fn finish(self) -> Result<(), MergeError> {
        self.writer
            .finish()
            .map_err(|e| write_error(&self.partial, e))?;
        publish(&self.partial, &self.out)
    }

    /// Drops what was written.
    pub fn discard(self) {
        let partial = self.partial.clone();
        drop(self.writer);
        let _ = remove_with_companions(&partial);
    }
}

impl MergeSink for EngineFileSink {
    fn pattern(&mut self, p: &PatternEntry) -> Result<(), MergeError> {
        let path = &self.partial;
        (self.writer.add_pattern(p, false))
            .map(|_| ())
            .map_err(|e| write_error(path, e))
    }

    fn affinity(&mut self, a: &AffinityEntry) -> Result<(), MergeError> {
        let path = &self.partial;
        (self.writer.add_affinity(a, false)).map_err(|e| write_error(path, e))
    }
}

/// A new dump at `out`.
pub struct DumpSink {
    out: PathBuf,
    partial: PathBuf,
    writer: DumpWriter<BufWriter<File>>,
}

impl DumpSink {
    /// Starts `OUT.partial` with a header for `service_name` and `kb_ids` (every KB
    /// the inputs hold).
    ///
    /// # Errors
    /// [`MergeError::Write`] when the file cannot be created.
    pub fn create(out: &Path, service_name: &str, kb_ids: Vec<String>) -> Result<Self, MergeError> {
        let partial = partial_path(out);
        let file = File::create(&partial).map_err(|e| write_error(&partial, e))?;
        let header = DumpHeader::new(service_name, kb_ids);
        let writer = DumpWriter::new(BufWriter::with_capacity(1 << 20, file), out, &header)
            .map_err(|e| write_error(&partial, e))?;
        Ok(Self {
            out: out.to_path_buf(),
            partial,
            writer,
        })
    }

    /// Writes the `end` line and renames the file to `out`.
    ///
    /// # Errors
    /// [`MergeError::Write`] when the write or the rename fails.
    pub fn finish(self) -> Result<(), MergeError> {
        self.writer
            .finish()
            .map_err(|e| write_error(&self.partial, e))?;
        publish(&self.partial, &self.out)
    }

    /// Drops what was written.
    pub fn discard(self) {
        let partial = self.partial.clone();
        drop(self.writer);
        let _ = std::fs::remove_file(partial);
    }
}

impl MergeSink for DumpSink {
    fn pattern(&mut self, p: &PatternEntry) -> Result<(), MergeError> {
        let item = DumpItem::Pattern(p.clone());
        self.writer
            .write(&item)
            .map_err(|e| write_error(&self.partial, e))
    }

    fn affinity(&mut self, a: &AffinityEntry) -> Result<(), MergeError> {
        let item = DumpItem::Affinity(a.clone());
        self.writer
            .write(&item)
            .map_err(|e| write_error(&self.partial, e))
    }
}
