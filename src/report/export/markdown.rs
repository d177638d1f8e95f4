//! GitHub-flavoured Markdown: the shared outline as headings, lists and pipe tables.
//! Problems are bold (Markdown has no colour), settings to look at are italic.

use super::markup::{Markup, Table, Tone};
use super::{sections, ExportError, Exporter};
use crate::report::Comparison;

/// Markdown of the whole comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkdownExporter;

impl Exporter for MarkdownExporter {
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError> {
        let mut doc = Markdown::default();
        sections::document(&mut doc, comparison);
        Ok(doc.out.into_bytes())
    }
}

#[derive(Default)]
struct Markdown {
    out: String,
}

fn styled(text: &str, tone: Tone) -> String {
    match tone {
        _ if text.is_empty() => String::new(),
        Tone::Bad => format!("**{text}**"),
        Tone::Warn => format!("_{text}_"),
        Tone::Plain | Tone::Good => text.to_string(),
    }
}

/// Pipes and line breaks would end the cell.
fn cell_text(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

impl Markup for Markdown {
    fn heading(&mut self, level: usize, text: &str) {
        self.out
            .push_str(&format!("{} {text}\n\n", "#".repeat(level)));
    }

    fn paragraph(&mut self, text: &str, tone: Tone) {
        self.out.push_str(&styled(text, tone));
        self.out.push_str("\n\n");
    }

    fn list(&mut self, items: &[(String, Tone)]) {
        for (text, tone) in items {
            self.out.push_str(&format!("- {}\n", styled(text, *tone)));
        }
        self.out.push('\n');
    }

    fn table(&mut self, table: &Table) {
        let header: Vec<String> = table.columns.iter().map(|c| cell_text(&c.title)).collect();
        self.out.push_str(&format!("| {} |\n", header.join(" | ")));
        let divider: Vec<&str> = table
            .columns
            .iter()
            .map(|c| if c.numeric { "---:" } else { ":---" })
            .collect();
        self.out.push_str(&format!("|{}|\n", divider.join("|")));
        for row in &table.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| styled(&cell_text(&c.text), c.tone))
                .collect();
            self.out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        self.out.push('\n');
    }
}
