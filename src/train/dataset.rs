//! Training corpora, read lazily one raw row at a time.
//!
//! A [`DatasetSpec`] names a path and a format: JSON Lines, plain text with one
//! document per line or per blank-line-separated block, a directory of `.txt` files,
//! or Parquet files laid out as Hugging Face datasets are. [`Dataset::open`] checks
//! what can be checked up front (the path exists, no file is empty, Parquet files have
//! the text column) and then streams: nothing is ever read whole except a single
//! document. Each raw row keeps its index, counting rows the trainer later filters, so
//! a resume can [`Dataset::skip_rows`] to where it stopped, and [`DatasetIdentity`]
//! lets it refuse a different corpus.

pub mod decode;
mod hf_split;
mod identity;
mod lines;
mod parquet_files;
mod txt_dir;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::terms::DatasetFormat;
pub use identity::DatasetIdentity;

/// Where a corpus is and how to read it (the `dataset` section of a profile).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatasetSpec {
    /// A file, or a directory for `txt-dir` and `parquet`.
    pub path: PathBuf,
    /// How to read it; `auto` decides from the extension or the directory's files.
    #[serde(default)]
    pub format: DatasetFormat,
    /// The JSON field or Parquet column that holds the text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Hugging Face folders: the split to read (`train`, as `load_dataset` reads).
    #[serde(default = "default_split")]
    pub split: String,
}

fn default_split() -> String {
    "train".to_string()
}

fn default_text_field() -> String {
    "text".to_string()
}

impl DatasetSpec {
    /// A spec for `path` with format `auto` and text field `text`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: DatasetFormat::Auto,
            text_field: default_text_field(),
            split: default_split(),
        }
    }
}

/// Why a dataset could not be opened or skipped through.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The path does not exist.
    #[error("dataset path {0} does not exist; check `training.dataset.path` (relative paths are from the working directory)")]
    Missing(PathBuf),
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}; check that the file exists and is readable")]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A data file has no bytes.
    #[error("file {0} is empty; point `training.dataset.path` at a file with data")]
    Empty(PathBuf),
    /// `auto` could not tell the format from the file name.
    #[error("cannot tell the format of {0} from its extension (.jsonl, .json, .txt, .parquet, each optionally .gz, .zst, .bz2 or .xz); set `training.dataset.format` to jsonl, lines, blocks or parquet")]
    UnknownFormat(PathBuf),
    /// A directory has no file the format reads.
    #[error("directory {path} has no {wanted} files; point `training.dataset.path` at the directory that holds them")]
    NoFiles {
        /// The directory.
        path: PathBuf,
        /// What was looked for, e.g. `.txt or .parquet`.
        wanted: &'static str,
    },
    /// The format wants a file but got a directory, or the other way round.
    #[error("format {format} reads {wanted}, but {path} is not one; fix `training.dataset.path` or `training.dataset.format`")]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// The format.
        format: DatasetFormat,
        /// `a file` or `a directory`.
        wanted: &'static str,
    },
    /// A file cannot be read as text: UTF-32, binary data, or a broken archive.
    #[error("{path} {what}")]
    Undecodable {
        /// The file.
        path: PathBuf,
        /// What it is and what to do, e.g. `holds NUL bytes, so it is binary data...`.
        what: String,
    },
    /// A Hugging Face folder has no file of the configured split.
    #[error("{path} has no files of split `{split}` (splits there: {found}); set `training.dataset.split` to one of them")]
    NoSplit {
        /// The folder searched.
        path: PathBuf,
        /// The configured split.
        split: String,
        /// The splits found, comma-separated.
        found: String,
    },
    /// A Parquet file could not be opened.
    #[error("{path} is not a readable Parquet file: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said.
        message: String,
    },
    /// A Parquet file has no column named by `text_field`.
    #[error("{path} has no column `{field}` (its columns: {columns}); set `training.dataset.text_field` to the column that holds the text")]
    NoTextColumn {
        /// The file.
        path: PathBuf,
        /// The configured text field.
        field: String,
        /// The file's top-level columns, comma-separated.
        columns: String,
    },
}

/// One raw row of a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    /// Raw row index from the start of the dataset, counting every row, including the
    /// ones the trainer filters out.
    pub row: u64,
    /// The document.
    pub text: String,
    /// The row's other fields (JSON Lines fields or Parquet columns).
    pub metadata: Map<String, Value>,
    /// Where the row is, for messages: `file:line`, or `file:row N` for Parquet.
    pub origin: String,
}

impl RawSample {
    /// The row `row` at `origin`: a sample when its text (and metadata) could be
    /// read, else a bad row saying why.
    pub(crate) fn read(
        row: u64,
        origin: String,
        parsed: Result<(String, Map<String, Value>), BadReason>,
    ) -> Result<RawSample, BadSample> {
        match parsed {
            Ok((text, metadata)) => Ok(RawSample {
                row,
                text,
                metadata,
                origin,
            }),
            Err(reason) => Err(BadSample {
                row,
                origin,
                reason,
            }),
        }
    }
}

/// A row that could not be read as a sample.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct BadSample {
    /// Raw row index, as in [`RawSample::row`].
    pub row: u64,
    /// Where the row is: `file:line`, or `file:row N` for Parquet.
    pub origin: String,
    /// What is wrong with it.
    pub reason: BadReason,
}

impl BadSample {
    /// Whether the stream ended here (an I/O or Parquet error) rather than only
    /// this row being bad.
    pub fn is_fatal(&self) -> bool {
        matches!(self.reason, BadReason::Read(_))
    }
}

/// What is wrong with a bad row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadReason {
    /// The row's bytes are not UTF-8.
    #[error("not valid UTF-8 (bad byte at offset {0} of the row); re-encode the file as UTF-8 or let the trainer skip bad rows")]
    InvalidUtf8(usize),
    /// A JSON Lines line does not parse.
    #[error("not JSON ({0}); each line must hold one JSON object")]
    NotJson(String),
    /// A JSON Lines line parses to something other than an object.
    #[error("holds {0}, not a JSON object; each line must hold one JSON object")]
    NotObject(&'static str),
    /// The text field is absent.
    #[error("no `{0}` field; set `training.dataset.text_field` to the field that holds the text")]
    MissingField(String),
    /// The text field is there but `null`: the row has no document.
    #[error("field `{0}` is null: this row has no text; remove the row, or let the trainer skip rows without text")]
    NullText(String),
    /// The text field is not a string.
    #[error("field `{field}` is {kind}, not a string; set `training.dataset.text_field` to the field that holds the text")]
    FieldNotString {
        /// The configured text field.
        field: String,
        /// What it holds instead, e.g. `a number` or `null`.
        kind: &'static str,
    },
    /// Reading failed; nothing after this point was read.
    #[error("read failed: {0}; the rest of the dataset was not read")]
    Read(String),
}

/// An open corpus: an iterator over its raw rows.
pub struct Dataset {
    identity: DatasetIdentity,
    notes: Vec<String>,
    source: Box<dyn Source>,
    finished: bool,
}

/// One format's reader.
trait Source: Send {
    /// The next row, or `None` at the end.
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>>;
    /// Skips up to `n` raw rows without building samples; returns how many it skipped.
    fn skip(&mut self, n: u64) -> Result<u64, DatasetError>;
}

impl Dataset {
    /// Opens `spec`, checking the path, the files and (for Parquet) the text column.
    pub fn open(spec: &DatasetSpec) -> Result<Self, DatasetError> {
        let format = resolve_format(&spec.path, spec.format)?;
        let files = identity::data_files(&spec.path, format, &spec.split)?;
        let identity = DatasetIdentity::of(&spec.path, format, &files)?;
        let field = spec.text_field.clone();
        let mut decodings = Vec::new();
        if format != DatasetFormat::Parquet {
            for file in &files {
                decodings.push(decode::sniff(file)?);
            }
        }
        let notes = files
            .iter()
            .zip(&decodings)
            .filter_map(|(file, d)| d.note(file))
            .collect();
        let first = || (files[0].as_path(), decodings[0]);
        let source: Box<dyn Source> = match format {
            DatasetFormat::Jsonl => Box::new(lines::JsonLines::open(first(), field)?),
            DatasetFormat::Lines => Box::new(lines::TextLines::open(first())?),
            DatasetFormat::Blocks => Box::new(lines::TextBlocks::open(first())?),
            DatasetFormat::TxtDir => Box::new(txt_dir::TextFiles::new(files, decodings)),
            DatasetFormat::Parquet => Box::new(parquet_files::ParquetFiles::open(files, field)?),
            DatasetFormat::Auto => return Err(DatasetError::UnknownFormat(spec.path.clone())),
        };
        Ok(Self {
            identity,
            notes,
            source,
            finished: false,
        })
    }

    /// What a resume compares: the path, the resolved format, the size and a
    /// fingerprint of the content.
    pub fn identity(&self) -> DatasetIdentity {
        self.identity.clone()
    }

    /// What the reader does to the files beyond reading UTF-8 (decompressing,
    /// decoding UTF-16), one line per file, for the terminal.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Skips up to `n` raw rows cheaply (JSON Lines without parsing); returns how many
    /// were skipped, fewer only when the dataset ends first.
    pub fn skip_rows(&mut self, n: u64) -> Result<u64, DatasetError> {
        if self.finished {
            return Ok(0);
        }
        self.source.skip(n)
    }
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("identity", &self.identity)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Iterator for Dataset {
    type Item = Result<RawSample, BadSample>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.source.next_row();
        match &item {
            None => self.finished = true,
            Some(Err(bad)) if bad.is_fatal() => self.finished = true,
            _ => {}
        }
        item
    }
}

/// Decides `auto` from the path; checks that the path exists.
fn resolve_format(path: &Path, format: DatasetFormat) -> Result<DatasetFormat, DatasetError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DatasetError::Missing(path.to_path_buf()),
        _ => DatasetError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if format != DatasetFormat::Auto {
        return Ok(format);
    }
    if meta.is_dir() {
        return identity::directory_format(path);
    }
    match format_extension(path).as_deref() {
        Some("jsonl" | "json") => Ok(DatasetFormat::Jsonl),
        Some("txt") => Ok(DatasetFormat::Lines),
        Some("parquet") => Ok(DatasetFormat::Parquet),
        _ => Err(DatasetError::UnknownFormat(path.to_path_buf())),
    }
}

/// The extension that names a file's format, looking through a compression
/// extension: `corpus.jsonl.gz` gives `jsonl`.
fn format_extension(path: &Path) -> Option<String> {
    let lower = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
    };
    let outer = lower(path)?;
    if decode::Compression::extensions().contains(&outer.as_str()) {
        return lower(Path::new(path.file_stem()?));
    }
    Some(outer)
}

/// The reference trainer's sample filter: keeps texts with more than 10 characters
/// once surrounding whitespace is stripped.
///
/// This follows Python's `len(text.strip()) > 10` (TRAINING.md section 2.1):
/// characters are Unicode code points, not bytes, and whitespace is Python's
/// `str.isspace()`, which is Unicode White_Space plus the separators U+001C..U+001F.
pub fn passes_reference_filter(text: &str) -> bool {
    let is_python_space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    text.trim_matches(is_python_space).chars().nth(10).is_some()
}

/// The name of a JSON value's kind, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Turns a row's fields into a sample: `field` becomes the text, the rest metadata.
fn split_text_field(
    mut fields: Map<String, Value>,
    field: &str,
) -> Result<(String, Map<String, Value>), BadReason> {
    match fields.shift_remove(field) {
        Some(Value::String(text)) => Ok((text, fields)),
        Some(Value::Null) => Err(BadReason::NullText(field.to_string())),
        Some(other) => Err(BadReason::FieldNotString {
            field: field.to_string(),
            kind: json_kind(&other),
        }),
        None => Err(BadReason::MissingField(field.to_string())),
    }
}
