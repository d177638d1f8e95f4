//! Loading saved results for `katotune report`: run records (one profile per file;
//! several files of one profile are its repeats) or one saved comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::model::{Comparison, ProfileRuns, SCHEMA_VERSION};
use crate::profile::Profile;
use crate::train::record::RunRecord;

/// What the files held.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// Run records grouped by profile name, in the order the names first appeared.
    /// Name counts are not in run records, so every `kb` is empty.
    Runs(Vec<ProfileRuns>),
    /// A comparison saved by `--export-json`, to render again as it is.
    Comparison(Box<Comparison>),
}

/// Why saved results could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("no input files: give run record JSON files or one comparison JSON")]
    NoInputs,
    #[error("cannot read {}: {source}; check the path", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid JSON: {source}", path.display())]
    InvalidJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} is neither a katotune run record nor a comparison: give the record JSON a run \
         wrote to its output directory, or a file written by `compare --export-json`",
        path.display()
    )]
    Unrecognised { path: PathBuf },
    #[error("{} looks like a run record but does not parse: {source}", path.display())]
    BadRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} looks like a comparison but does not parse: {source}", path.display())]
    BadComparison {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} is a comparison of schema version {found}, newer than this katotune reads \
         ({SCHEMA_VERSION}): render it with a newer katotune",
        path.display()
    )]
    NewerComparison { path: PathBuf, found: u64 },
    #[error(
        "{} is a comparison and {} is not: render a comparison on its own, or give only run records",
        comparison.display(),
        other.display()
    )]
    Mixed { comparison: PathBuf, other: PathBuf },
}

/// Loads `paths`: all run records, or exactly one comparison.
pub fn load_inputs<P: AsRef<Path>>(paths: &[P]) -> Result<Inputs, LoadError> {
    let mut runs: Vec<ProfileRuns> = Vec::new();
    let mut comparison: Option<(PathBuf, Comparison)> = None;
    let mut first_record: Option<PathBuf> = None;
    for path in paths.iter().map(AsRef::as_ref) {
        match load_one(path)? {
            Loaded::Record(record, profile) => {
                if let Some((seen, _)) = &comparison {
                    return Err(mixed(seen, path));
                }
                first_record.get_or_insert_with(|| path.to_path_buf());
                add_record(&mut runs, *record, *profile);
            }
            Loaded::Comparison(c) => {
                if let Some(other) = comparison
                    .as_ref()
                    .map(|(p, _)| p)
                    .or(first_record.as_ref())
                {
                    return Err(mixed(path, other));
                }
                comparison = Some((path.to_path_buf(), *c));
            }
        }
    }
    match comparison {
        Some((_, c)) => Ok(Inputs::Comparison(Box::new(c))),
        None if runs.is_empty() => Err(LoadError::NoInputs),
        None => Ok(Inputs::Runs(runs)),
    }
}

fn mixed(comparison: &Path, other: &Path) -> LoadError {
    LoadError::Mixed {
        comparison: comparison.to_path_buf(),
        other: other.to_path_buf(),
    }
}

enum Loaded {
    /// A run record with its resolved profile read back.
    Record(Box<RunRecord>, Box<Profile>),
    Comparison(Box<Comparison>),
}

fn load_one(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| LoadError::InvalidJson {
        path: path.to_path_buf(),
        source,
    })?;
    let has = |key: &str| value.get(key).is_some();
    if has("schema_version") && has("profiles") {
        let found = value["schema_version"].as_u64().unwrap_or(0);
        if found > u64::from(SCHEMA_VERSION) {
            return Err(LoadError::NewerComparison {
                path: path.to_path_buf(),
                found,
            });
        }
        return serde_json::from_value(value)
            .map(|c| Loaded::Comparison(Box::new(c)))
            .map_err(|source| LoadError::BadComparison {
                path: path.to_path_buf(),
                source,
            });
    }
    if has("run_id") && has("levels") {
        let bad = |source| LoadError::BadRecord {
            path: path.to_path_buf(),
            source,
        };
        let record: RunRecord = serde_json::from_value(value).map_err(bad)?;
        let profile = serde_json::from_value(record.profile.resolved.clone()).map_err(bad)?;
        return Ok(Loaded::Record(Box::new(record), Box::new(profile)));
    }
    Err(LoadError::Unrecognised {
        path: path.to_path_buf(),
    })
}

fn add_record(runs: &mut Vec<ProfileRuns>, record: RunRecord, mut profile: Profile) {
    match runs
        .iter_mut()
        .find(|r| r.profile.name == record.profile.name)
    {
        Some(existing) => existing.records.push(record),
        None => {
            profile.name.clone_from(&record.profile.name);
            runs.push(ProfileRuns {
                sources: BTreeMap::new(),
                profile,
                records: vec![record],
                kb: Vec::new(),
                max_runs_reached: None,
            });
        }
    }
}
