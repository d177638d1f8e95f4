//! One split of a Hugging Face dataset folder: `train-00000-of-00002.parquet`,
//! `test-...`, `validation-...`, directly in the folder, under `data/` (the Hub's
//! repository layout) or under a folder named after the split. The Hub cache's
//! snapshot files are symlinks to blobs; they are followed.
//!
//! Which files make a split follows the Hub's naming (`datasets` docs, "Split
//! patterns"): a file belongs to split `S` when its name starts with `S-` or `S.`.

use std::path::{Path, PathBuf};

use super::DatasetError;

/// The Parquet files of `split` under `dir`, in shard order; `None` when the folder
/// is not split at all (no file is named like a split shard), so every file is read.
pub(super) fn split_files(
    files: Vec<PathBuf>,
    dir: &Path,
    split: &str,
) -> Result<Vec<PathBuf>, DatasetError> {
    let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    let named_split = |name: &str, s: &str| {
        name.strip_prefix(s)
            .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
    };
    let is_split_layout = names
        .iter()
        .any(|n| is_shard_name(n) || named_split(n, split));
    if !is_split_layout {
        return Ok(files);
    }
    let mut chosen: Vec<(u64, String, PathBuf)> = files
        .into_iter()
        .zip(names)
        .filter(|(_, n)| named_split(n, split))
        .map(|(f, n)| (shard_index(&n[split.len() + 1..]), n, f))
        .collect();
    if chosen.is_empty() {
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| split_of(&file_name(&e.path())))
            .filter(|s| !s.is_empty())
            .collect();
        found.sort();
        found.dedup();
        return Err(DatasetError::NoSplit {
            path: dir.to_path_buf(),
            split: split.to_string(),
            found: found.join(", "),
        });
    }
    chosen.sort();
    Ok(chosen.into_iter().map(|(_, _, f)| f).collect())
}

/// The folder that holds a split's files: `dir/<split>` or `dir/data` when they
/// exist and `dir` itself holds no Parquet file.
pub(super) fn split_dir(dir: &Path, split: &str, has_parquet: bool) -> PathBuf {
    if has_parquet {
        return dir.to_path_buf();
    }
    for sub in [dir.join(split), dir.join("data")] {
        if sub.is_dir() {
            return sub;
        }
    }
    dir.to_path_buf()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `train-00000-of-00002.parquet` style names.
fn is_shard_name(name: &str) -> bool {
    name.split_once('-').is_some_and(|(_, rest)| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with("-of-")
    })
}

/// The split a shard belongs to: the name up to its first `-` (or `.`).
fn split_of(name: &str) -> String {
    if !name.ends_with(".parquet") {
        return String::new();
    }
    name.split(['-', '.'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The shard number at the start of `rest` (`00001-of-00002.parquet` gives 1), so
/// `train-10` follows `train-9`; names without one sort first, by name.
fn shard_index(rest: &str) -> u64 {
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_recognised_and_numbered() {
        assert!(is_shard_name("train-00000-of-00002.parquet"));
        assert!(!is_shard_name("part-0.parquet"));
        assert_eq!(shard_index("00010-of-00012.parquet"), 10);
        assert_eq!(split_of("validation-00000-of-00001.parquet"), "validation");
    }
}
