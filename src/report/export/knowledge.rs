//! The knowledge-base parts of the shared outline: where each profile's KB was read
//! back after its runs (KATO's stores, katotune's engine, or only the client's tally),
//! the nodes whose KB as read is not what the server answered, and the levels that
//! learned nothing, with the run record's reason.

use super::markup::{Cell, Markup, Table, Tone};
use crate::report::Comparison;

/// One row per profile: the source of its KB digests and whether they agree with the
/// client's tally; then one row per node of a run that does not.
pub(crate) fn read_back_section(m: &mut impl Markup, c: &Comparison) {
    if c.profiles.iter().all(|p| p.correctness.read_back.is_none()) {
        return;
    }
    m.heading(3, "Knowledge bases read back");
    m.paragraph(
        "After each run every node's KB is read back from where the server keeps it and \
         compared with the names the server answered (the client's tally); the KB column \
         compares what was read.",
        Tone::Plain,
    );
    let mut t = Table::new(&[
        ("Profile", false),
        ("Source", false),
        ("Stored = answered", false),
        ("Why this source", false),
    ]);
    for p in &c.profiles {
        let Some(read) = &p.correctness.read_back else {
            t.row(vec![
                Cell::plain(&p.name),
                Cell::plain("client tally"),
                Cell::plain("not checked"),
                Cell::plain("the records carry no read-back (katotune run, or older records)"),
            ]);
            continue;
        };
        let agree = match (read.mismatches.is_empty(), read.short()) {
            (_, "tally") => Cell::toned("not read", Tone::Warn),
            (true, _) => Cell::toned("yes, every node of every run", Tone::Good),
            (false, _) => Cell::toned(
                format!("NO: {}", read.mismatched_nodes().join(", ")),
                Tone::Bad,
            ),
        };
        t.row(vec![
            Cell::plain(&p.name),
            Cell::plain(read.source.label()),
            agree,
            Cell::plain(&read.note),
        ]);
    }
    m.table(&t);
    mismatch_table(m, c);
}

fn mismatch_table(m: &mut impl Markup, c: &Comparison) {
    let mut t = Table::new(&[
        ("Profile", false),
        ("Run", true),
        ("Node (KB id)", false),
        ("Stored learns / distinct", true),
        ("Answered learns / distinct", true),
        ("Stored digest", false),
        ("Answered digest", false),
    ]);
    for p in &c.profiles {
        let Some(read) = &p.correctness.read_back else {
            continue;
        };
        for mm in &read.mismatches {
            t.row(vec![
                Cell::toned(&p.name, Tone::Bad),
                Cell::plain(mm.run.to_string()),
                Cell::toned(format!("{} ({})", mm.node, mm.kb_id), Tone::Bad),
                Cell::toned(format!("{} / {}", mm.kb.learns, mm.kb.distinct), Tone::Bad),
                Cell::plain(format!("{} / {}", mm.tally.learns, mm.tally.distinct)),
                Cell::toned(short(&mm.kb.digest), Tone::Bad),
                Cell::plain(short(&mm.tally.digest)),
            ]);
        }
    }
    if !t.rows.is_empty() {
        m.paragraph(
            "The server stored something else than it answered for these nodes: the KB in \
             its stores cannot be trusted (lost or doubled learns, another writer, or an \
             evicting Redis).",
            Tone::Bad,
        );
        m.table(&t);
    }
}

fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// The levels that learned nothing, per profile, with the run record's reason; none
/// for a profile that trained nothing (its whole row is n/a).
pub(crate) fn idle_levels(m: &mut impl Markup, c: &Comparison) {
    // (node, reason) -> profiles, in first-seen order.
    let mut idle: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for p in c.profiles.iter().filter(|p| p.samples.done > 0) {
        for n in p.nodes.iter().filter(|n| n.learns == 0) {
            let why = n.note.as_deref().unwrap_or("learned nothing");
            match idle
                .iter_mut()
                .find(|(node, w, _)| *node == n.node && *w == why)
            {
                Some((_, _, profiles)) => profiles.push(&p.name),
                None => idle.push((&n.node, why, vec![&p.name])),
            }
        }
    }
    if idle.is_empty() {
        return;
    }
    let items: Vec<(String, Tone)> = idle
        .into_iter()
        .map(|(node, why, profiles)| {
            (
                format!("{node} ({}): {why}", profiles.join(", ")),
                Tone::Warn,
            )
        })
        .collect();
    m.paragraph(
        "Idle levels: these nodes learned no pattern. A level needs at least 2 names from the \
         level below within one sample (one name per pattern learned there), so upper levels \
         stay idle on short samples; training them costs requests but teaches nothing.",
        Tone::Warn,
    );
    m.list(&items);
}
