//! The context of the figures: which settings differ between the profiles (and
//! where each value came from), a scan's table and chart, and the reasons to doubt
//! a figure (measurement warnings).

use super::markup::{Cell, ChartKind, Markup, Table, Tone};
use super::sections::{KB, MEDIAN, RANGE, RATE, RELATIVE, RUNS};
use crate::report::Comparison;

/// The scan table: one row per value of the scanned setting.
pub(crate) fn scan_table(c: &Comparison) -> Option<Table> {
    let axis = c.scan.as_ref()?;
    let columns = [RATE, MEDIAN, RANGE, RELATIVE, RUNS, KB];
    let mut headers: Vec<(&str, bool)> = vec![(axis.setting.as_str(), true)];
    headers.extend(columns.iter().map(|(h, right, _)| (*h, *right)));
    let mut t = Table::new(&headers);
    for (p, value) in c.profiles.iter().zip(&axis.values) {
        let mut row = vec![Cell::plain(value)];
        row.extend(columns.iter().map(|(_, _, cell)| cell(p)));
        t.row(row);
    }
    Some(t)
}

pub(crate) fn scan_section(m: &mut impl Markup, c: &Comparison) {
    let Some(table) = scan_table(c) else { return };
    let key = c.scan.as_ref().map_or("", |s| s.setting.as_str());
    m.heading(2, &format!("Scan of {key}"));
    let best = c
        .profiles
        .iter()
        .zip(c.scan.iter().flat_map(|s| &s.values))
        .filter(|(p, _)| p.samples.done > 0)
        .max_by(|a, b| {
            a.0.samples_per_second
                .mean
                .total_cmp(&b.0.samples_per_second.mean)
        });
    if let Some((p, value)) = best {
        m.paragraph(
            &format!(
                "Fastest at {key} = {value}: {} samples/s. Values whose ± ranges overlap are not told apart by these runs.",
                p.samples_per_second.display(2)
            ),
            Tone::Plain,
        );
    }
    m.table(&table);
    m.chart(ChartKind::Scan, c);
}

/// A value's origin, short: a file's name, else the source as recorded.
fn short_source(source: &str) -> String {
    let path = std::path::Path::new(source);
    if source.contains('/') {
        if let Some(name) = path.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    source.to_string()
}

/// The settings-difference table: one row per setting whose value differs, one
/// column per profile, each cell `value (where it came from)`.
pub(crate) fn differences_table(c: &Comparison) -> Table {
    let mut headers: Vec<(&str, bool)> = vec![("Setting", false), ("Side", false)];
    headers.extend(c.profiles.iter().map(|p| (p.name.as_str(), false)));
    let mut t = Table::new(&headers);
    for d in &c.setting_differences {
        let mut row = vec![Cell::plain(&d.setting), Cell::plain(&d.side)];
        row.extend(
            d.values
                .iter()
                .map(|v| Cell::plain(format!("{} ({})", v.value, short_source(&v.source)))),
        );
        t.row(row);
    }
    t
}

pub(crate) fn differences_section(m: &mut impl Markup, c: &Comparison) {
    m.heading(2, "What differs");
    if c.profiles.len() < 2 {
        return m.paragraph("One profile: nothing to set apart.", Tone::Plain);
    }
    if c.setting_differences.is_empty() {
        return m.paragraph(
            "The profiles resolve to the same settings: any speed difference is noise.",
            Tone::Plain,
        );
    }
    m.paragraph(
        "Every client and server setting whose resolved value is not the same in all profiles, \
         with where each value came from.",
        Tone::Plain,
    );
    m.table(&differences_table(c));
}

/// Every reason to doubt a figure, or a sentence saying there is none.
pub(crate) fn all_warnings(c: &Comparison) -> Vec<String> {
    let mut out = c.warnings.clone();
    out.extend(c.profiles.iter().flat_map(|p| p.warnings.iter().cloned()));
    out
}

pub(crate) fn warnings_section(m: &mut impl Markup, c: &Comparison) {
    let warnings = all_warnings(c);
    m.heading(2, "Measurement warnings");
    if warnings.is_empty() {
        m.paragraph(
            "None: every run lasted long enough, repeats agree within 10% and no run is an outlier.",
            Tone::Good,
        );
    } else {
        m.list(
            &warnings
                .into_iter()
                .map(|w| (w, Tone::Warn))
                .collect::<Vec<_>>(),
        );
    }
}
