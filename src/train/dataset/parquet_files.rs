//! Parquet files laid out as Hugging Face datasets are: a text column plus others,
//! in one file or a directory of `*.parquet` files read in name order.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use serde_json::{Map, Number, Value};

use super::{split_text_field, BadReason, BadSample, DatasetError, RawSample, Source};

/// One data file and its row count from the footer.
struct ParquetFile {
    path: PathBuf,
    rows: u64,
}

/// Rows of all files in order; row numbers run on across files.
pub(super) struct ParquetFiles {
    files: Vec<ParquetFile>,
    field: String,
    /// Index of the file being read (or to read next).
    file: usize,
    /// Rows of the current file already consumed.
    row_in_file: u64,
    /// Rows before the current file.
    rows_before: u64,
    current: Option<RowIter<'static>>,
}

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> DatasetError {
    DatasetError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl ParquetFiles {
    /// Reads each file's footer, checking the text column is there.
    pub(super) fn open(paths: Vec<PathBuf>, field: String) -> Result<Self, DatasetError> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let reader = open_reader(&path, 0)?;
            let meta = reader.metadata().file_metadata();
            let columns: Vec<&str> = meta
                .schema_descr()
                .root_schema()
                .get_fields()
                .iter()
                .map(|f| f.name())
                .collect();
            if !columns.contains(&field.as_str()) {
                return Err(DatasetError::NoTextColumn {
                    path,
                    field,
                    columns: columns.join(", "),
                });
            }
            let rows = u64::try_from(meta.num_rows()).unwrap_or(0);
            files.push(ParquetFile { path, rows });
        }
        Ok(Self {
            files,
            field,
            file: 0,
            row_in_file: 0,
            rows_before: 0,
            current: None,
        })
    }

    /// Moves to the next file.
    fn next_file(&mut self) {
        if let Some(done) = self.files.get(self.file) {
            self.rows_before += done.rows;
        }
        self.file += 1;
        self.row_in_file = 0;
        self.current = None;
    }

    /// Opens the current file at `row_in_file`, leaving out the row groups before it;
    /// returns how many rows of the skipped position are still to be read past.
    fn open_current(&mut self) -> Result<u64, DatasetError> {
        let file = &self.files[self.file];
        let reader = open_reader(&file.path, self.row_in_file)?;
        let kept: i64 = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .sum();
        let left_out = file.rows.saturating_sub(u64::try_from(kept).unwrap_or(0));
        self.current = Some(RowIter::from_file_into(Box::new(reader)));
        Ok(self.row_in_file.saturating_sub(left_out))
    }

    fn sample(&self, row: Row) -> Result<RawSample, BadSample> {
        let global = self.rows_before + self.row_in_file;
        let origin = format!(
            "{}:row {}",
            self.files[self.file].path.display(),
            self.row_in_file + 1
        );
        let fields: Map<String, Value> = row
            .into_columns()
            .into_iter()
            .map(|(name, field)| (name, field_json(field)))
            .collect();
        RawSample::read(global, origin, split_text_field(fields, &self.field))
    }

    fn failed(&self, message: String) -> BadSample {
        let path = self.files[self.file].path.display();
        BadSample {
            row: self.rows_before + self.row_in_file,
            origin: format!("{path}:row {}", self.row_in_file + 1),
            reason: BadReason::Read(message),
        }
    }

    /// Passes over `n` rows of the current iterator.
    fn pass_rows(&mut self, n: u64) -> Result<(), DatasetError> {
        let Some(rows) = self.current.as_mut() else {
            return Ok(());
        };
        for _ in 0..n {
            match rows.next() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(parquet_error(&self.files[self.file].path, e)),
                None => break,
            }
        }
        Ok(())
    }
}

impl Source for ParquetFiles {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        loop {
            if self.file >= self.files.len() {
                return None;
            }
            if self.current.is_none() {
                let result = self.open_current().and_then(|n| self.pass_rows(n));
                if let Err(e) = result {
                    return Some(Err(self.failed(e.to_string())));
                }
            }
            match self.current.as_mut().and_then(Iterator::next) {
                Some(Ok(row)) => {
                    let sample = self.sample(row);
                    self.row_in_file += 1;
                    return Some(sample);
                }
                Some(Err(e)) => return Some(Err(self.failed(e.to_string()))),
                None => self.next_file(),
            }
        }
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        let mut left = n;
        while left > 0 && self.file < self.files.len() {
            let in_file = self.files[self.file].rows - self.row_in_file;
            if left >= in_file {
                left -= in_file;
                self.next_file();
                continue;
            }
            // Reopen at the target row: whole row groups are left out unread.
            self.row_in_file += left;
            left = 0;
            let pass = self.open_current()?;
            self.pass_rows(pass)?;
        }
        Ok(n - left)
    }
}

/// Opens `path`, leaving out the row groups that end at or before row `from`.
fn open_reader(path: &Path, from: u64) -> Result<SerializedFileReader<File>, DatasetError> {
    let file = File::open(path).map_err(|source| DatasetError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut start = 0u64;
    let options = ReadOptionsBuilder::new()
        .with_predicate(Box::new(move |group, _| {
            start += u64::try_from(group.num_rows()).unwrap_or(0);
            start > from
        }))
        .build();
    SerializedFileReader::new_with_options(file, options).map_err(|e| parquet_error(path, e))
}

/// A Parquet value as JSON, for the sample's metadata.
fn field_json(field: Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(b),
        Field::Byte(n) => n.into(),
        Field::Short(n) => n.into(),
        Field::Int(n) => n.into(),
        Field::Long(n) => n.into(),
        Field::UByte(n) => n.into(),
        Field::UShort(n) => n.into(),
        Field::UInt(n) => n.into(),
        Field::ULong(n) => n.into(),
        Field::Float(x) => Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number),
        Field::Double(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        Field::Str(s) => Value::String(s),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Array(b.data().iter().map(|&x| x.into()).collect()),
        },
        Field::Group(row) => Value::Object(
            row.into_columns()
                .into_iter()
                .map(|(name, field)| (name, field_json(field)))
                .collect(),
        ),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().cloned().map(field_json).collect())
        }
        other => Value::String(other.to_string()),
    }
}
