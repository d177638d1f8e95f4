//! The detail sections of the shared outline: latency, patterns per node, calls,
//! server settings per profile and the facts needed to reproduce the comparison.

use std::collections::BTreeSet;

use super::markup::{Cell, Markup, Table, Tone};
use super::sections::plain;
use crate::report::Comparison;

/// p50/p95/p99/max/mean per profile.
pub(crate) fn latency_table(c: &Comparison) -> Table {
    let mut t = Table::new(&[
        ("Profile", false),
        ("Requests", true),
        ("p50 ms", true),
        ("p95 ms", true),
        ("p99 ms", true),
        ("max ms", true),
        ("mean ms", true),
    ]);
    for p in &c.profiles {
        let l = &p.calls.latency;
        let ms = |v: f64| match l.samples {
            0 => na(),
            _ => Cell::plain(format!("{v:.2}")),
        };
        t.row(vec![
            Cell::plain(&p.name),
            Cell::plain(l.samples.to_string()),
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms),
            ms(l.max_ms),
            ms(l.mean_ms),
        ]);
    }
    t
}

/// The cell of a figure that does not exist (nothing trained, nothing measured).
pub(crate) fn na() -> Cell {
    Cell::toned("n/a", Tone::Warn)
}

/// A per-sample figure, `n/a` for a profile that trained nothing.
fn per_sample(p: &crate::report::ProfileSummary, v: f64) -> Cell {
    match p.samples.done {
        0 => na(),
        _ => Cell::plain(format!("{v:.2}")),
    }
}

/// Every node of any profile, in first-seen order.
pub(crate) fn node_names(c: &Comparison) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in &c.profiles {
        for n in &p.nodes {
            if !names.contains(&n.node) {
                names.push(n.node.clone());
            }
        }
    }
    names
}

/// One row per node, `learns / distinct` per profile; differing nodes stand out.
pub(crate) fn patterns_table(c: &Comparison) -> Table {
    let mut columns: Vec<(&str, bool)> = vec![("Node", false)];
    columns.extend(c.profiles.iter().map(|p| (p.name.as_str(), true)));
    let mut t = Table::new(&columns);
    for node in node_names(c) {
        let mut row = vec![Cell::plain(&node)];
        for p in &c.profiles {
            if p.samples.done == 0 {
                row.push(na());
                continue;
            }
            let differs = p.correctness.differences.iter().any(|d| d.node == node);
            let text = p.nodes.iter().find(|n| n.node == node).map_or_else(
                || "-".to_string(),
                |n| format!("{} / {}", n.learns, n.distinct),
            );
            row.push(Cell::toned(
                text,
                if differs { Tone::Bad } else { Tone::Plain },
            ));
        }
        t.row(row);
    }
    t
}

/// Calls per sample by endpoint, then errors by class and retries, per profile.
pub(crate) fn calls_table(c: &Comparison) -> Table {
    let mut columns: Vec<(&str, bool)> = vec![("Calls per sample", false)];
    columns.extend(c.profiles.iter().map(|p| (p.name.as_str(), true)));
    let mut t = Table::new(&columns);
    let endpoints: BTreeSet<&String> = c
        .profiles
        .iter()
        .flat_map(|p| p.calls.per_sample_by_endpoint.keys())
        .collect();
    for endpoint in endpoints {
        let mut row = vec![Cell::plain(endpoint.as_str())];
        for p in &c.profiles {
            let v = p
                .calls
                .per_sample_by_endpoint
                .get(endpoint)
                .copied()
                .unwrap_or(0.0);
            row.push(per_sample(p, v));
        }
        t.row(row);
    }
    let mut total = vec![Cell::plain("all endpoints")];
    total.extend(c.profiles.iter().map(|p| per_sample(p, p.calls.per_sample)));
    t.row(total);
    let classes: BTreeSet<&String> = c
        .profiles
        .iter()
        .flat_map(|p| p.calls.errors_by_class.keys())
        .collect();
    for class in classes {
        let mut row = vec![Cell::plain(format!("errors: {class}"))];
        for p in &c.profiles {
            let n = p.calls.errors_by_class.get(class).copied().unwrap_or(0);
            row.push(Cell::toned(
                n.to_string(),
                if n > 0 { Tone::Bad } else { Tone::Plain },
            ));
        }
        t.row(row);
    }
    let mut retries = vec![Cell::plain("retries")];
    retries.extend(
        c.profiles
            .iter()
            .map(|p| Cell::plain(p.calls.retries.to_string())),
    );
    t.row(retries);
    t
}

/// Per profile: each server setting and what it does on that profile's target.
pub(crate) fn settings_section(m: &mut impl Markup, c: &Comparison) {
    m.heading(2, "Server settings");
    for p in &c.profiles {
        m.heading(
            3,
            &format!("{} ({}: {})", p.name, p.target, p.backend.server),
        );
        if p.settings.is_empty() {
            m.paragraph(
                "No server settings: the server's own defaults.",
                Tone::Plain,
            );
            continue;
        }
        let mut t = Table::new(&[
            ("Setting", false),
            ("Value", false),
            ("Effect", false),
            ("What it does", false),
        ]);
        for s in &p.settings {
            let tone = if s.is_inert() {
                Tone::Warn
            } else {
                Tone::Plain
            };
            let mut note = s.note.clone();
            if !s.advice.is_empty() {
                note = format!("{note}. Instead: {}", s.advice);
            }
            t.row(vec![
                Cell::plain(&s.env),
                Cell::plain(&s.value),
                Cell::toned(&s.effect, tone),
                Cell::plain(note),
            ]);
        }
        m.table(&t);
    }
}

/// katotune, host, dataset, times, and per profile its backend, hashes and runs.
pub(crate) fn reproduction_section(m: &mut impl Markup, c: &Comparison) {
    let meta = &c.meta;
    m.heading(2, "Reproducing");
    let mut facts = vec![
        format!(
            "katotune {} (revision {})",
            meta.katotune_version, meta.git_revision
        ),
        format!("Host: {}", meta.host.describe()),
    ];
    if let Some(d) = &meta.dataset {
        facts.push(format!(
            "Dataset: {} ({}, {} bytes, fingerprint {})",
            d.path.display(),
            d.format,
            d.bytes,
            d.fingerprint
        ));
    }
    facts.push(format!("From {} to {}", meta.started_at, meta.finished_at));
    m.list(&plain(facts));
    let mut t = Table::new(&[
        ("Profile", false),
        ("Backend", false),
        ("Server", false),
        ("Profile hash", false),
        ("Learning hash", false),
        ("Runs", false),
    ]);
    for p in &c.profiles {
        let runs: Vec<String> = p
            .runs
            .iter()
            .map(|r| format!("{} ({:.2}/s)", r.run_id, r.samples_per_second))
            .collect();
        t.row(vec![
            Cell::plain(&p.name),
            Cell::plain(backend_label(&p.backend)),
            Cell::plain(&p.backend.server),
            Cell::plain(&p.hash),
            Cell::plain(&p.learning_hash),
            Cell::plain(runs.join(", ")),
        ]);
    }
    m.table(&t);
}

/// The backend's kind, with `(in-process)` when the trainer called the engine directly.
fn backend_label(backend: &crate::train::record::BackendInfo) -> String {
    match backend.transport {
        crate::train::record::Transport::Http => backend.kind.clone(),
        crate::train::record::Transport::InProcess => format!("{} (in-process)", backend.kind),
    }
}
