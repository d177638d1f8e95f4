//! Folding learns into one delta and applying it equals applying them one by one.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn learned(events: &[&[&str]], emotive: Option<f64>, book: Option<&str>) -> Learned {
    let events: Vec<Vec<String>> = events
        .iter()
        .map(|e| e.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    let emotives: Vec<BTreeMap<String, f64>> = emotive
        .map(|v| BTreeMap::from([("joy".to_owned(), v)]))
        .into_iter()
        .collect();
    let metadata = book
        .map(|b| BTreeMap::from([("book".to_owned(), BTreeSet::from([b.to_owned()]))]))
        .unwrap_or_default();
    Learned {
        digest: [events.len() as u8; 20],
        averaged_emotives: emotives.first().cloned().unwrap_or_default(),
        events,
        emotives,
        metadata,
    }
}

/// The seven learns of one pattern the tests split in different places.
fn learns() -> Vec<Learned> {
    (0..7)
        .map(|i| {
            let emotive = (i % 2 == 0).then_some(0.1 * f64::from(i) + 0.35);
            let book = (i % 3 == 0).then(|| format!("b{}", i % 4));
            learned(&[&["a", "b"], &["c"]], emotive, book.as_deref())
        })
        .collect()
}

/// Applies `parts` (each a run of learns folded into one delta) in order onto nothing.
fn stored_after(parts: &[&[Learned]]) -> (PatternState, BTreeMap<String, String>) {
    let mut state: Option<PatternState> = None;
    let mut sums = BTreeMap::new();
    for part in parts {
        let mut changes = NodeChanges::default();
        for l in part.iter() {
            changes.learn(l.clone());
        }
        for delta in changes.patterns.values() {
            match &mut state {
                Some(s) => s.apply(delta),
                None => state = Some(PatternState::from_delta(delta)),
            }
        }
        if let Some(increments) = changes.affinity.get("a") {
            add_increments(&mut sums, increments, "a");
        }
    }
    (state.expect("learned"), sums)
}

#[test]
fn folded_learns_store_what_learns_one_by_one_store() {
    let all = learns();
    let one_by_one: Vec<&[Learned]> = all.chunks(1).collect();
    let expected = stored_after(&one_by_one);
    assert_eq!(expected.0.frequency, 7);
    assert_eq!(expected.0.emotives.len(), PERSISTENCE.min(4));
    assert_eq!(
        expected.0.metadata["book"],
        BTreeSet::from(["b0".to_owned(), "b3".to_owned(), "b2".to_owned()])
    );
    for split in 1..all.len() {
        let (head, tail) = all.split_at(split);
        assert_eq!(stored_after(&[head, tail]), expected, "split at {split}");
    }
    assert_eq!(stored_after(&[&all]), expected);
    assert_eq!(expected.0.pattern_data, r#"[["a","b"],["c"]]"#);
    assert_eq!(expected.0.length, 3);
}

#[test]
fn changes_given_back_fold_under_later_ones_and_a_later_clear_drops_them() {
    let all = learns();
    let mut older = NodeChanges::default();
    let mut later = NodeChanges::default();
    for l in &all[..3] {
        older.learn(l.clone());
    }
    for l in &all[3..] {
        later.learn(l.clone());
    }
    let mut whole = NodeChanges::default();
    for l in &all {
        whole.learn(l.clone());
    }
    let folded = older.absorb_later(later);
    assert_eq!(folded, 1, "one pattern in both");
    assert_eq!(older.patterns, whole.patterns);
    assert_eq!(older.affinity, whole.affinity);

    let mut again = NodeChanges::default();
    again.learn(all[0].clone());
    let cleared = NodeChanges {
        cleared: true,
        ..NodeChanges::default()
    };
    assert_eq!(again.absorb_later(cleared), 1, "the clear drops it");
    assert!(again.cleared && again.patterns.is_empty());
}

#[test]
fn bytes_grow_with_new_patterns_and_extras_not_with_repeats() {
    let mut changes = NodeChanges::default();
    changes.learn(learned(&[&["a"]], None, None));
    let one = changes.bytes;
    assert!(one > 0);
    changes.learn(learned(&[&["a"]], None, None));
    assert_eq!(changes.bytes, one, "a repeat only counts");
    changes.learn(learned(&[&["a"], &["b"]], Some(1.0), Some("Gen")));
    assert!(changes.bytes > 2 * one);
}
