//! Exporters: one file per format behind one small trait, and the set of files a
//! comparison is written to, rewritten atomically after each profile.

mod context;
pub mod csv;
mod details;
mod histogram_chart;
pub mod html;
pub mod json;
mod knowledge;
mod line_chart;
pub mod markdown;
mod markup;
mod sections;
mod svg;
pub mod table;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Comparison;
use crate::profile::schema::ReportFormat;

/// Renders a comparison into the bytes of one file format.
pub trait Exporter {
    /// The whole file.
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError>;
}

/// Why an export could not be written.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot serialize the comparison as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the CSV export: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("cannot write {}: {source}; check that its folder exists and is writable", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The exporter of a report format.
pub fn exporter_for(format: ReportFormat) -> Box<dyn Exporter> {
    match format {
        ReportFormat::Json => Box::new(json::JsonExporter),
        ReportFormat::Csv => Box::new(csv::CsvExporter),
        ReportFormat::Markdown => Box::new(markdown::MarkdownExporter),
        ReportFormat::Html => Box::new(html::HtmlExporter),
    }
}

/// The usual file extension of a report format.
pub fn extension(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Json => "json",
        ReportFormat::Csv => "csv",
        ReportFormat::Markdown => "md",
        ReportFormat::Html => "html",
    }
}

/// The files a comparison is exported to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportSet {
    targets: Vec<(ReportFormat, PathBuf)>,
}

impl ExportSet {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// `dir/<stem>.<ext>` for each format, e.g. `runs/compare.html`.
    pub fn in_dir(dir: &Path, stem: &str, formats: &[ReportFormat]) -> Self {
        let mut set = Self::new();
        for &format in formats {
            set.add(format, dir.join(format!("{stem}.{}", extension(format))));
        }
        set
    }

    /// Also write `format` to `path` (`--export-json FILE` and friends).
    pub fn add(&mut self, format: ReportFormat, path: impl Into<PathBuf>) -> &mut Self {
        self.targets.push((format, path.into()));
        self
    }

    /// The files, in the order they were added.
    pub fn targets(&self) -> &[(ReportFormat, PathBuf)] {
        &self.targets
    }

    /// True when no file is requested.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Writes every file, secrets masked (`crate::secret`). Call it again after each
    /// profile: each file is replaced atomically, so a crash leaves the previous
    /// complete version, never half a file.
    pub fn write(&self, comparison: &Comparison) -> Result<(), ExportError> {
        // Masked by key and URL in the data; should the copy fail (a value JSON cannot
        // hold), the rendered text is still masked below.
        let clean = crate::secret::redacted(comparison);
        let comparison = clean.as_ref().unwrap_or(comparison);
        for (format, path) in &self.targets {
            let bytes = exporter_for(*format).render(comparison)?;
            let bytes = match String::from_utf8(bytes) {
                Ok(text) => crate::secret::mask_text(&text).into_owned().into_bytes(),
                Err(e) => e.into_bytes(),
            };
            write_atomically(path, &bytes)?;
        }
        Ok(())
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over
/// `path` (a rename within one folder replaces the file in one step).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let error = |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = File::create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(source) = result {
        let _ = fs::remove_file(&temp);
        return Err(error(source));
    }
    Ok(())
}
