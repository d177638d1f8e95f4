//! The comparison as pretty JSON: the document itself, described by
//! `schema/comparison.schema.json`, and readable again by `katotune report`.

use super::{ExportError, Exporter};
use crate::report::Comparison;

/// Pretty-printed JSON of the whole [`Comparison`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError> {
        let mut bytes = serde_json::to_vec_pretty(comparison)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
