//! Which files a dataset is made of, and the identity a resume checks.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::{DatasetError, DatasetFormat};

/// How much of each end of a file the fingerprint reads.
const FINGERPRINT_SPAN: u64 = 64 * 1024;

/// What identifies a corpus across runs, so a resume can refuse another dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetIdentity {
    /// The dataset path as configured.
    pub path: PathBuf,
    /// The format it is read as (never `auto`).
    pub format: DatasetFormat,
    /// Total size of its data files in bytes.
    pub bytes: u64,
    /// The files read, in reading order (a Hugging Face folder: the split's shards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// Hex SHA-1 over each data file's name (for directories), size, first 64 KiB and
    /// last 64 KiB: cheap, stable, and different when the data changes.
    pub fingerprint: String,
}

impl DatasetIdentity {
    /// Fingerprints `files`, the data files of the dataset at `path`.
    pub(super) fn of(
        path: &Path,
        format: DatasetFormat,
        files: &[PathBuf],
    ) -> Result<Self, DatasetError> {
        let mut hasher = Sha1::new();
        let mut bytes = 0;
        let in_directory = path.is_dir();
        for file in files {
            if in_directory {
                let name = file.file_name().unwrap_or_default().to_string_lossy();
                hasher.update((name.len() as u64).to_le_bytes());
                hasher.update(name.as_bytes());
            }
            bytes += hash_ends(file, &mut hasher).map_err(|source| DatasetError::Unreadable {
                path: file.clone(),
                source,
            })?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            format,
            bytes,
            files: files.to_vec(),
            fingerprint: hex::encode(hasher.finalize()),
        })
    }
}

/// Feeds the size, first and last 64 KiB of `file` to `hasher`; returns the size.
fn hash_ends(file: &Path, hasher: &mut Sha1) -> std::io::Result<u64> {
    let mut handle = File::open(file)?;
    let size = handle.metadata()?.len();
    hasher.update(size.to_le_bytes());
    let mut buf = Vec::with_capacity(FINGERPRINT_SPAN as usize);
    (&mut handle).take(FINGERPRINT_SPAN).read_to_end(&mut buf)?;
    hasher.update(&buf);
    if size > FINGERPRINT_SPAN {
        buf.clear();
        handle.seek(SeekFrom::Start(size.saturating_sub(FINGERPRINT_SPAN)))?;
        handle.take(FINGERPRINT_SPAN).read_to_end(&mut buf)?;
        hasher.update(&buf);
    }
    Ok(size)
}

/// Picks txt-dir or parquet for a directory by the files it holds.
pub(super) fn directory_format(dir: &Path) -> Result<DatasetFormat, DatasetError> {
    let hub = [dir.join("data"), dir.join("train")];
    let in_hub_layout = hub
        .iter()
        .any(|d| d.is_dir() && files_with_extension(d, "parquet").is_ok_and(|f| !f.is_empty()));
    if in_hub_layout || !files_with_extension(dir, "parquet")?.is_empty() {
        Ok(DatasetFormat::Parquet)
    } else if !files_with_extension(dir, "txt")?.is_empty() {
        Ok(DatasetFormat::TxtDir)
    } else {
        Err(DatasetError::NoFiles {
            path: dir.to_path_buf(),
            wanted: ".txt or .parquet",
        })
    }
}

/// The data files of a dataset in reading order, each checked to be non-empty.
pub(super) fn data_files(
    path: &Path,
    format: DatasetFormat,
    split: &str,
) -> Result<Vec<PathBuf>, DatasetError> {
    let is_dir = path.is_dir();
    let files = match format {
        DatasetFormat::TxtDir if is_dir => files_with_extension(path, "txt")?,
        DatasetFormat::Parquet if is_dir => {
            let here = files_with_extension(path, "parquet")?;
            let dir = super::hf_split::split_dir(path, split, !here.is_empty());
            let files = if dir == path {
                here
            } else {
                files_with_extension(&dir, "parquet")?
            };
            super::hf_split::split_files(files, &dir, split)?
        }
        DatasetFormat::TxtDir => return Err(wrong_kind(path, format, "a directory")),
        _ if is_dir => return Err(wrong_kind(path, format, "a file")),
        _ => vec![path.to_path_buf()],
    };
    if files.is_empty() {
        let wanted = if format == DatasetFormat::TxtDir {
            ".txt"
        } else {
            ".parquet"
        };
        return Err(DatasetError::NoFiles {
            path: path.to_path_buf(),
            wanted,
        });
    }
    // Files in a .txt directory are single documents; an empty one is an empty
    // document for the filter to drop, not a broken dataset.
    if format != DatasetFormat::TxtDir {
        for file in &files {
            let len = std::fs::metadata(file)
                .map_err(|source| DatasetError::Unreadable {
                    path: file.clone(),
                    source,
                })?
                .len();
            if len == 0 {
                return Err(DatasetError::Empty(file.clone()));
            }
        }
    }
    Ok(files)
}

fn wrong_kind(path: &Path, format: DatasetFormat, wanted: &'static str) -> DatasetError {
    DatasetError::WrongKind {
        path: path.to_path_buf(),
        format,
        wanted,
    }
}

/// Regular files directly in `dir` whose extension is `extension`, sorted by name.
fn files_with_extension(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, DatasetError> {
    let unreadable = |source| DatasetError::Unreadable {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let matches = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case(extension));
        if matches && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
