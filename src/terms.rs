//! The words `profile/` and `train/` both speak: the small enums a profile names and
//! the trainer acts on. They live here, below both, so that the profile never imports
//! the trainer and the trainer never imports the profile (profile → plan → train).
//!
//! Each keeps the serde spelling profiles use (`kebab-case`), since profiles, journals
//! and run records store them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A corpus format (`training.dataset.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetFormat {
    /// `.jsonl`/`.json` → jsonl, `.txt` → lines, `.parquet` → parquet; a directory
    /// holding `.parquet` files → parquet, else one holding `.txt` files → txt-dir.
    #[default]
    Auto,
    /// One JSON object per line; the text field is the document, the rest metadata.
    Jsonl,
    /// Plain text, one document per line.
    Lines,
    /// Plain text, one document per block of lines separated by blank lines.
    Blocks,
    /// A directory of `.txt` files, one document per file, in file-name order.
    TxtDir,
    /// A Parquet file, or a directory of `.parquet` files in file-name order.
    Parquet,
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Jsonl => "jsonl",
            Self::Lines => "lines",
            Self::Blocks => "blocks",
            Self::TxtDir => "txt-dir",
            Self::Parquet => "parquet",
        })
    }
}

/// Which reference path cuts a sample into node0 chunks (`training.segmentation`;
/// TRAINING.md 2.3, see `train::segment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Segmentation {
    /// Path A: blank-line paragraphs, stripped, capped, tail-merged chunks.
    #[default]
    Paragraphs,
    /// Path B: the whole raw text in consecutive fixed-size slices.
    Slices,
}

/// Which raw rows are samples (`training.filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SampleFilter {
    /// The reference trainer's rule: texts of 10 characters or fewer after trimming
    /// are dropped (TRAINING.md, `passes_reference_filter`).
    Reference,
    /// Every readable row is a sample.
    None,
}

/// What an unreadable row does to a run (`training.on_bad_sample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadSample {
    /// Stop the run at the row (exit 2 names it).
    Fail,
    /// Skip it and list it in the run record.
    Skip,
}
