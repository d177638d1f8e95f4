//! The terminal table (comfy-table): the compact results table, the relative-speed
//! sentences, and what differs or regressed, in red when colour is on.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TermCell, CellAlignment, Color, ContentArrangement, Table as TermTable};

use super::markup::{Table, Tone};
use super::sections::{all_warnings, compact_results_table};
use super::{ExportError, Exporter};
use crate::report::correctness::CheckStatus;
use crate::report::{Comparison, VerdictStatus};

/// The terminal summary of a comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalTable {
    /// Colour problems red and agreement green (ANSI escapes).
    pub colour: bool,
    /// Widest line allowed, in characters; `None` draws every column unwrapped.
    pub width: Option<u16>,
}

/// The width of the terminal on stdout, else `COLUMNS`, else `None` (a pipe or file
/// gets the whole table; `--format json` always has every column).
pub fn terminal_width() -> Option<u16> {
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
        return Some(w);
    }
    std::env::var("COLUMNS").ok()?.trim().parse().ok()
}

/// Display width of the widest line (ANSI escapes not counted).
fn widest_line(text: &str) -> usize {
    text.lines()
        .map(|l| {
            let mut n = 0;
            let mut escape = false;
            for ch in l.chars() {
                match (escape, ch) {
                    (false, '\x1b') => escape = true,
                    (true, 'm') => escape = false,
                    (true, _) => {}
                    _ => n += 1,
                }
            }
            n
        })
        .max()
        .unwrap_or(0)
}

impl TerminalTable {
    /// The summary as text, ending with a newline.
    pub fn render_text(&self, c: &Comparison) -> String {
        let mut out = self.fitted(compact_results_table(c));
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

    /// Draws `table` within [`Self::width`]: the rightmost columns (the least read)
    /// are dropped and named below until it fits; the last two left wrap their cells.
    fn fitted(&self, mut table: Table) -> String {
        let Some(width) = self.width else {
            return self.draw(&table, None);
        };
        let mut dropped = Vec::new();
        loop {
            let last = table.columns.len() <= 2;
            let text = self.draw(&table, last.then_some(width));
            if widest_line(&text) <= width as usize || last {
                if dropped.is_empty() {
                    return text;
                }
                dropped.reverse();
                let note = format!(
                    "(too narrow for {}: widen the terminal or use --export-json)",
                    dropped.join(", ")
                );
                let wrapped = textwrap_simple(&note, width as usize);
                return format!("{text}\n{wrapped}");
            }
            let column = table.columns.pop().map(|c| c.title).unwrap_or_default();
            dropped.push(column);
            for row in &mut table.rows {
                row.pop();
            }
        }
    }

    /// Draws `table`, wrapping cells to `wrap_to` characters in all when given.
    fn draw(&self, table: &Table, wrap_to: Option<u16>) -> String {
        let mut t = TermTable::new();
        t.load_style(UTF8_FULL_CONDENSED);
        if let Some(width) = wrap_to {
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(width);
        }
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

    /// Warnings, correctness and gate lines.
    fn findings(&self, c: &Comparison) -> Vec<(String, Tone)> {
        let mut lines: Vec<(String, Tone)> = all_warnings(c)
            .into_iter()
            .map(|w| (format!("WARNING: {w}"), Tone::Warn))
            .collect();
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
            for m in p.correctness.read_back.iter().flat_map(|r| &r.mismatches) {
                lines.push((
                    format!(
                        "KB MISMATCH: {} run {} {} ({}): stored {} learns of {} names, the \
                         server answered {} learns of {} names",
                        p.name,
                        m.run,
                        m.node,
                        m.kb_id,
                        m.kb.learns,
                        m.kb.distinct,
                        m.tally.learns,
                        m.tally.distinct
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
                let mut line = match (&d.digest, &d.reference_digest) {
                    (None, _) => format!(
                        "KB: {} has no {} (not in its hierarchy); {} learned {} names there",
                        p.name, d.node, c.reference, d.reference_distinct
                    ),
                    (_, None) => format!(
                        "KB: {} has no {} (not in its hierarchy); {} learned {} names there",
                        c.reference, d.node, p.name, d.distinct
                    ),
                    _ => format!(
                        "KB DIFFERS: {} {} vs {}: {names}, learns {} vs {}",
                        p.name, d.node, c.reference, d.learns, d.reference_learns
                    ),
                };
                if !examples.is_empty() {
                    line.push_str(&format!(" (e.g. {})", examples.join(", ")));
                }
                lines.push((line, tone));
            }
        }
        lines.extend(gate_lines(c));
        lines
    }
}

/// One line per gated profile: the verdict, the effect and the p-value.
fn gate_lines(c: &Comparison) -> Vec<(String, Tone)> {
    let Some(gate) = &c.gate else {
        return Vec::new();
    };
    let mut lines = vec![(
        format!(
            "Gate: slower than the baseline by more than {:.1}% with Welch p < {:.2} ({:.0}% confidence) fails.",
            gate.threshold * 100.0,
            1.0 - gate.confidence,
            gate.confidence * 100.0
        ),
        Tone::Plain,
    )];
    for p in &c.profiles {
        let Some(v) = &p.verdict else { continue };
        let line = match v.status {
            VerdictStatus::Regressed => (
                if v.slower_beyond_threshold && v.significantly_slower {
                    format!("REGRESSION: {}: {}", p.name, v.reasons.join("; "))
                } else {
                    // The digest failed it: say what the speed did too.
                    format!(
                        "REGRESSION: {}: {} (speed {})",
                        p.name,
                        v.reasons.join("; "),
                        v.evidence()
                    )
                },
                Tone::Bad,
            ),
            VerdictStatus::Pass => (format!("pass: {} {}", p.name, v.evidence()), Tone::Good),
            VerdictStatus::TooFewRuns => (
                format!(
                    "not tested: {} {}; give --runs 2 or more on both sides",
                    p.name,
                    v.evidence()
                ),
                Tone::Warn,
            ),
            VerdictStatus::Inconclusive => (
                format!("inconclusive: {}: {}", p.name, v.unjudged.join("; ")),
                Tone::Warn,
            ),
            VerdictStatus::NoBaseline => {
                (format!("no baseline: {} is not in it", p.name), Tone::Plain)
            }
        };
        lines.push(line);
    }
    lines
}

/// Breaks `text` at spaces into lines of at most `width` characters.
fn textwrap_simple(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines.join("\n")
}

impl Exporter for TerminalTable {
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError> {
        Ok(self.render_text(comparison).into_bytes())
    }
}
