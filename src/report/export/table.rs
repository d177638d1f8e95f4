//! The terminal table (comfy-table): the compact results table, the relative-speed
//! sentences, and what differs or regressed, in red when colour is on.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TermCell, CellAlignment, Color, Table as TermTable};

use super::markup::{Table, Tone};
use super::sections::compact_results_table;
use super::{ExportError, Exporter};
use crate::report::correctness::CheckStatus;
use crate::report::Comparison;

/// The terminal summary of a comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalTable {
    /// Colour problems red and agreement green (ANSI escapes).
    pub colour: bool,
}

impl TerminalTable {
    /// The summary as text, ending with a newline.
    pub fn render_text(&self, c: &Comparison) -> String {
        let mut out = self.draw(&compact_results_table(c));
        out.push('\n');
        for sentence in c.relative_sentences() {
            out.push_str(&format!("  {sentence}\n"));
        }
        for (line, tone) in self.findings(c) {
            out.push_str(&self.paint(&line, tone));
            out.push('\n');
        }
        out
    }

    fn draw(&self, table: &Table) -> String {
        let mut t = TermTable::new();
        t.load_style(UTF8_FULL_CONDENSED);
        if self.colour {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.set_header(table.columns.iter().map(|c| TermCell::new(&c.title)));
        for row in &table.rows {
            t.add_row(row.iter().map(|cell| {
                let c = TermCell::new(&cell.text);
                match (self.colour, cell.tone) {
                    (true, Tone::Bad) => c.fg(Color::Red),
                    (true, Tone::Good) => c.fg(Color::Green),
                    (true, Tone::Warn) => c.fg(Color::Yellow),
                    _ => c,
                }
            }));
        }
        for (i, column) in table.columns.iter().enumerate() {
            if let (true, Some(col)) = (column.numeric, t.column_mut(i)) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
        t.to_string()
    }

    fn paint(&self, text: &str, tone: Tone) -> String {
        let code = match tone {
            Tone::Bad => "31",
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Plain => return text.to_string(),
        };
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Correctness and gate lines.
    fn findings(&self, c: &Comparison) -> Vec<(String, Tone)> {
        let mut lines = Vec::new();
        if c.correctness_failures().is_empty() {
            lines.push((
                format!(
                    "KB: every profile that trains the same data learned the same knowledge base as {}.",
                    c.reference
                ),
                Tone::Good,
            ));
        }
        for p in &c.profiles {
            if !p.correctness.repeats_agree {
                lines.push((
                    format!(
                        "KB: {}'s repeats learned different knowledge bases.",
                        p.name
                    ),
                    Tone::Bad,
                ));
            }
            let tone = match p.correctness.status {
                CheckStatus::Differs => Tone::Bad,
                _ => Tone::Warn,
            };
            for d in &p.correctness.differences {
                let names = d.names_differing.map_or_else(
                    || "names not read".to_string(),
                    |n| format!("{n} names differ"),
                );
                let examples: Vec<String> = d
                    .examples
                    .iter()
                    .map(|e| format!("{} {} vs {}", e.name, e.count, e.reference_count))
                    .collect();
                let mut line = format!(
                    "KB DIFFERS: {} {} vs {}: {names}, learns {} vs {}",
                    p.name, d.node, c.reference, d.learns, d.reference_learns
                );
                if !examples.is_empty() {
                    line.push_str(&format!(" (e.g. {})", examples.join(", ")));
                }
                lines.push((line, tone));
            }
        }
        for (p, v) in c.regressions() {
            lines.push((
                format!("REGRESSION: {}: {}", p.name, v.reasons.join("; ")),
                Tone::Bad,
            ));
        }
        lines
    }
}

impl Exporter for TerminalTable {
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError> {
        Ok(self.render_text(comparison).into_bytes())
    }
}
