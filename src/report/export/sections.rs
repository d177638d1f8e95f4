//! The outline every document format shares: results, correctness, the regression
//! gate, latency, patterns per node, calls, server settings and reproduction facts.
//! Each section is built here once as neutral tables and text.

pub(crate) use super::context::all_warnings;
use super::context::{differences_section, scan_section, warnings_section};
use super::markup::{Cell, ChartKind, Markup, Table, Tone};
use crate::report::correctness::{CheckStatus, NodeDifference};
use crate::report::{Comparison, ProfileSummary, VerdictStatus};

/// Writes the whole report.
pub(crate) fn document(m: &mut impl Markup, c: &Comparison) {
    m.heading(1, "katotune comparison");
    m.paragraph(&intro(c), Tone::Plain);
    m.heading(2, "Results");
    m.table(&results_table(c));
    let sentences = c.relative_sentences();
    if !sentences.is_empty() {
        m.list(&plain(sentences));
    }
    scan_section(m, c);
    differences_section(m, c);
    m.chart(ChartKind::Throughput, c);
    warnings_section(m, c);
    correctness_section(m, c);
    if c.gate.is_some() {
        gate_section(m, c);
    }
    m.heading(2, "Latency");
    m.table(&super::details::latency_table(c));
    m.chart(ChartKind::Latency, c);
    m.heading(2, "Patterns per node");
    m.table(&super::details::patterns_table(c));
    super::knowledge::idle_levels(m, c);
    m.chart(ChartKind::Patterns, c);
    m.heading(2, "Calls per sample");
    m.table(&super::details::calls_table(c));
    super::details::settings_section(m, c);
    super::details::reproduction_section(m, c);
}

fn intro(c: &Comparison) -> String {
    format!(
        "{} profile{} compared with {} (reference), from {} to {}.",
        c.profiles.len(),
        if c.profiles.len() == 1 { "" } else { "s" },
        c.reference,
        c.meta.started_at,
        c.meta.finished_at
    )
}

pub(crate) fn plain(items: Vec<String>) -> Vec<(String, Tone)> {
    items.into_iter().map(|s| (s, Tone::Plain)).collect()
}

/// The correctness cell: `same KB`, `DIFFERS (node1, node2)`...
pub(crate) fn check_cell(p: &ProfileSummary) -> Cell {
    let status = p.correctness.status;
    let mut text = status.label().to_string();
    if !p.correctness.differences.is_empty() {
        // A node one side lacks is named as absent, not as a different KB.
        let nodes: Vec<String> = p
            .correctness
            .differences
            .iter()
            .map(|d| match (&d.digest, &d.reference_digest) {
                (Some(_), Some(_)) => d.node.clone(),
                _ => format!("{} absent", d.node),
            })
            .collect();
        text = format!("{text} ({})", nodes.join(", "));
    }
    let tone = match status {
        _ if !p.correctness.repeats_agree || p.correctness.stores_disagree() => Tone::Bad,
        CheckStatus::Same => Tone::Good,
        s if s.is_bad() => Tone::Bad,
        _ => Tone::Plain,
    };
    if !p.correctness.repeats_agree {
        text.push_str("; repeats disagree");
    }
    if let Some(read) = &p.correctness.read_back {
        match read.mismatches.is_empty() {
            true => text.push_str(&format!(" · {}", read.short())),
            false => text.push_str(&format!(
                " · {} ≠ tally ({})",
                read.short().to_uppercase(),
                read.mismatched_nodes().join(", ")
            )),
        }
    }
    Cell::toned(text, tone)
}

/// `4.21 ± 0.12`, `1.00` for the reference, `n/a` without a ratio.
pub(crate) fn relative_text(p: &ProfileSummary) -> String {
    p.relative
        .map_or_else(|| "n/a".to_string(), |r| r.display())
}

fn count_cell(n: u64) -> Cell {
    Cell::toned(n.to_string(), if n > 0 { Tone::Bad } else { Tone::Plain })
}

/// One column of the results table: its header, alignment and cell.
pub(crate) type Column = (&'static str, bool, fn(&ProfileSummary) -> Cell);

/// `n/a` for a profile that trained nothing (its speed would read as fastest or slowest).
fn measured(p: &ProfileSummary, text: impl FnOnce() -> String) -> Cell {
    if p.samples.done == 0 {
        Cell::toned("n/a", Tone::Warn)
    } else {
        Cell::plain(text())
    }
}

/// Time per sample in the unit that fits: ms below a second, else s.
pub(crate) fn per_sample_text(p: &ProfileSummary) -> String {
    let s = &p.seconds_per_sample;
    let (scale, unit) = if s.mean < 1.0 {
        (1000.0, "ms")
    } else {
        (1.0, "s")
    };
    let places = |v: f64| {
        if v * scale >= 100.0 {
            0
        } else if v * scale >= 10.0 {
            1
        } else {
            2
        }
    };
    let d = places(s.mean);
    match s.stddev {
        Some(sd) => format!("{:.*} ± {:.*} {unit}", d, s.mean * scale, d, sd * scale),
        None => format!("{:.*} {unit}", d, s.mean * scale),
    }
}

const PROFILE: Column = ("Profile", false, |p| Cell::plain(&p.name));
pub(crate) const RUNS: Column = ("Runs × samples", true, |p| {
    Cell::plain(format!("{} × {}", p.runs.len(), p.samples.done))
});
pub(crate) const RATE: Column = ("Samples/s (mean ± sd)", true, |p| {
    measured(p, || p.samples_per_second.display(2))
});
pub(crate) const MEDIAN: Column = ("Median", true, |p| {
    measured(p, || format!("{:.2}", p.samples_per_second.median))
});
pub(crate) const RANGE: Column = ("Min … max", true, |p| {
    measured(p, || {
        format!(
            "{:.2} … {:.2}",
            p.samples_per_second.min, p.samples_per_second.max
        )
    })
});
const PER_SAMPLE: Column = ("Per sample", true, |p| measured(p, || per_sample_text(p)));
const TOKENS: Column = ("Tokens/s", true, |p| {
    measured(p, || p.tokens_per_second.display(0))
});
pub(crate) const RELATIVE: Column = ("Relative speed", true, |p| Cell::plain(relative_text(p)));
const CALLS: Column = ("Calls/sample", true, |p| {
    measured(p, || format!("{:.2}", p.calls.per_sample))
});
const P95: Column = ("p95 ms", true, |p| {
    if p.calls.latency.samples == 0 {
        Cell::toned("n/a", Tone::Warn)
    } else {
        Cell::plain(format!("{:.2}", p.calls.latency.p95_ms))
    }
});
const ERRORS: Column = ("Errors", true, |p| count_cell(p.calls.errors));
const DONE: Column = ("Done", true, |p| Cell::plain(p.samples.done.to_string()));
const AT_RISK: Column = ("At risk", true, |p| count_cell(p.samples.at_risk));
const FAILED: Column = ("Failed", true, |p| count_cell(p.samples.failed));
pub(crate) const KB: Column = ("KB vs reference", false, check_cell);

fn table_of(c: &Comparison, columns: &[Column]) -> Table {
    let headers: Vec<(&str, bool)> = columns.iter().map(|(h, right, _)| (*h, *right)).collect();
    let mut t = Table::new(&headers);
    for p in &c.profiles {
        t.row(columns.iter().map(|(_, _, cell)| cell(p)).collect());
    }
    t
}

/// The main table (the latency section has every percentile).
pub(crate) fn results_table(c: &Comparison) -> Table {
    table_of(
        c,
        &[
            PROFILE, RUNS, RATE, MEDIAN, RANGE, PER_SAMPLE, TOKENS, RELATIVE, CALLS, P95, ERRORS,
            DONE, AT_RISK, FAILED, KB,
        ],
    )
}

/// The main table for a terminal: the measures a user reads first.
pub(crate) fn compact_results_table(c: &Comparison) -> Table {
    table_of(
        c,
        &[
            PROFILE, RATE, RELATIVE, RUNS, KB, MEDIAN, RANGE, PER_SAMPLE, P95, CALLS, ERRORS,
            AT_RISK,
        ],
    )
}

fn correctness_section(m: &mut impl Markup, c: &Comparison) {
    m.heading(2, "Correctness");
    // KBs that disagree with the server's answers are explained in the read-back part.
    let failures: Vec<_> = c
        .correctness_failures()
        .into_iter()
        .filter(|p| p.correctness.status.is_bad() || !p.correctness.repeats_agree)
        .collect();
    if failures.is_empty() {
        m.paragraph(
            &format!(
                "Every profile that trains the same data learned the same knowledge base as {} at every node.",
                c.reference
            ),
            Tone::Good,
        );
    } else {
        let names: Vec<&str> = failures.iter().map(|p| p.name.as_str()).collect();
        m.paragraph(
            &format!(
                "{} learned something else than {}: a profile that only tunes speed must not change the knowledge base.",
                names.join(", "),
                c.reference
            ),
            Tone::Bad,
        );
    }
    super::knowledge::read_back_section(m, c);
    for p in &c.profiles {
        profile_differences(m, p, &c.reference);
    }
}

fn profile_differences(m: &mut impl Markup, p: &ProfileSummary, reference: &str) {
    if !p.correctness.repeats_agree {
        m.paragraph(
            &format!("{}: its repeats learned different knowledge bases.", p.name),
            Tone::Bad,
        );
    }
    if p.correctness.differences.is_empty() {
        return;
    }
    m.heading(3, &format!("{} vs {reference}", p.name));
    let tone = if p.correctness.status == CheckStatus::Differs {
        Tone::Bad
    } else {
        Tone::Warn
    };
    if let Some(note) = &p.correctness.note {
        m.paragraph(
            &format!("{note}, so different digests are expected."),
            Tone::Warn,
        );
    }
    m.table(&difference_table(&p.correctness.differences, tone));
    let examples = example_table(&p.correctness.differences, tone);
    if !examples.rows.is_empty() {
        m.table(&examples);
    }
}

fn short(digest: &Option<String>) -> String {
    digest
        .as_deref()
        .map_or_else(|| "(no node)".to_string(), |d| d.chars().take(12).collect())
}

fn difference_table(diffs: &[NodeDifference], tone: Tone) -> Table {
    let mut t = Table::new(&[
        ("Node", false),
        ("Digest", false),
        ("Reference digest", false),
        ("Learns", true),
        ("Reference learns", true),
        ("Distinct", true),
        ("Reference distinct", true),
        ("Names differing", true),
    ]);
    for d in diffs {
        t.row(vec![
            Cell::toned(&d.node, tone),
            Cell::toned(short(&d.digest), tone),
            Cell::plain(short(&d.reference_digest)),
            Cell::plain(d.learns.to_string()),
            Cell::plain(d.reference_learns.to_string()),
            Cell::plain(d.distinct.to_string()),
            Cell::plain(d.reference_distinct.to_string()),
            Cell::toned(
                d.names_differing
                    .map_or_else(|| "names not read".to_string(), |n| n.to_string()),
                tone,
            ),
        ]);
    }
    t
}

fn example_table(diffs: &[NodeDifference], tone: Tone) -> Table {
    let mut t = Table::new(&[
        ("Node", false),
        ("Example name", false),
        ("Count", true),
        ("Reference count", true),
    ]);
    for d in diffs {
        for e in &d.examples {
            t.row(vec![
                Cell::plain(&d.node),
                Cell::toned(&e.name, tone),
                Cell::toned(e.count.to_string(), tone),
                Cell::plain(e.reference_count.to_string()),
            ]);
        }
    }
    t
}

fn gate_section(m: &mut impl Markup, c: &Comparison) {
    let Some(gate) = &c.gate else { return };
    m.heading(2, "Regression gate");
    m.paragraph(
        &format!(
            "Against the baseline of {} (katotune revision {}). A profile regresses when its mean \
             samples/s fell more than {:.1}% AND Welch's one-sided t-test over the per-run samples/s \
             says it is slower at {:.0}% confidence (p < {:.2}), or when a KB digest changed.",
            gate.baseline_started_at,
            gate.baseline_git_revision,
            gate.threshold * 100.0,
            gate.confidence * 100.0,
            1.0 - gate.confidence
        ),
        Tone::Plain,
    );
    let mut t = Table::new(&[
        ("Profile", false),
        ("Baseline samples/s", true),
        ("Samples/s", true),
        ("Change", true),
        ("Welch test (slower)", true),
        ("Runs (now vs baseline)", true),
        ("Verdict", false),
    ]);
    for p in &c.profiles {
        let Some(v) = &p.verdict else { continue };
        let (word, tone) = match v.status {
            VerdictStatus::Pass => ("pass".to_string(), Tone::Good),
            VerdictStatus::NoBaseline => ("no baseline".to_string(), Tone::Plain),
            VerdictStatus::TooFewRuns => (
                "not tested: fewer than 2 runs on a side".to_string(),
                Tone::Warn,
            ),
            VerdictStatus::Inconclusive => (
                format!("inconclusive: {}", v.unjudged.join("; ")),
                Tone::Warn,
            ),
            VerdictStatus::Regressed => (format!("REGRESSED: {}", v.reasons.join("; ")), Tone::Bad),
        };
        t.row(vec![
            Cell::plain(&p.name),
            Cell::plain(
                v.baseline_samples_per_second
                    .map_or("-".into(), |b| format!("{b:.2}")),
            ),
            Cell::plain(format!("{:.2}", p.samples_per_second.mean)),
            Cell::toned(
                v.speed_change
                    .map_or("-".into(), |c| format!("{:+.1}%", c * 100.0)),
                if v.slower_beyond_threshold {
                    Tone::Bad
                } else {
                    Tone::Plain
                },
            ),
            Cell::plain(
                v.welch
                    .map_or("-".into(), |w| crate::report::regression::p_text(w.p_less)),
            ),
            Cell::plain(format!("{} vs {}", v.runs.0, v.runs.1)),
            Cell::toned(word, tone),
        ]);
    }
    m.table(&t);
}
