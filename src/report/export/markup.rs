//! The shared base of the document formats (Markdown, HTML): neutral building blocks
//! that [`sections`](super::sections) fills once and each format only draws.

use crate::report::Comparison;

/// How a piece of text should stand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Plain,
    /// Confirms something the user hopes for (same KB, gate passed).
    Good,
    /// Something is wrong (a different KB, a regression, failed samples).
    Bad,
    /// Worth a second look (a knob the server ignores).
    Warn,
}

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Self::toned(text, Tone::Plain)
    }

    pub fn toned(text: impl Into<String>, tone: Tone) -> Self {
        Self {
            text: text.into(),
            tone,
        }
    }
}

/// A column heading; numeric columns are right-aligned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub title: String,
    pub numeric: bool,
}

/// A table with a header row.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// Columns from `(title, numeric)` pairs.
    pub fn new(columns: &[(&str, bool)]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|(title, numeric)| Column {
                    title: (*title).to_string(),
                    numeric: *numeric,
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }
}

/// The charts of the HTML report; text formats leave them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChartKind {
    Throughput,
    Latency,
    Patterns,
    /// Samples/s against the scanned value (scan comparisons only).
    Scan,
}

/// A document format: draws headings, text, lists and tables.
pub(crate) trait Markup {
    fn heading(&mut self, level: usize, text: &str);
    fn paragraph(&mut self, text: &str, tone: Tone);
    fn list(&mut self, items: &[(String, Tone)]);
    fn table(&mut self, table: &Table);
    /// Draws a chart of `comparison`; formats without pictures do nothing.
    fn chart(&mut self, _kind: ChartKind, _comparison: &Comparison) {}
}
