//! Table tests of the observe/learn algorithm against the server behaviour in API.md.

use super::*;
use crate::kato::pattern::wire_name;
use serde_json::json;

fn obs(symbols: &[&str]) -> Observation {
    Observation {
        strings: symbols.iter().map(|s| s.to_string()).collect(),
        ..Observation::default()
    }
}

fn name(events: &[&[&str]]) -> String {
    let events: Vec<Vec<String>> = events
        .iter()
        .map(|e| e.iter().map(|s| s.to_string()).collect())
        .collect();
    wire_name(&events)
}

fn sequence(items: &[&[&str]]) -> ObserveSequence {
    ObserveSequence {
        observations: items.iter().map(|i| obs(i)).collect(),
        ..ObserveSequence::default()
    }
}

#[test]
fn observe_sorts_symbols_and_counts_time_even_for_empty_observations() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    let step = s.observe(obs(&["b", "a"]), &mut learned);
    assert_eq!((step.stm_length, step.time), (1, 1));
    let step = s.observe(obs(&[]), &mut learned);
    assert_eq!((step.stm_length, step.time), (1, 2));
    assert_eq!(s.stm, vec![vec!["a".to_string(), "b".to_string()]]);
    assert!(learned.is_empty());
}

#[test]
fn learn_below_two_symbols_stores_nothing_but_clears_stm() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    s.observe(obs(&["x"]), &mut learned);
    assert_eq!(s.learn(&mut learned), "");
    assert!(s.stm.is_empty() && learned.is_empty());
    s.observe(obs(&["y", "x"]), &mut learned);
    assert_eq!(s.learn(&mut learned), name(&[&["x", "y"]]));
    assert_eq!(learned.len(), 1);
    assert_eq!(s.time, 2, "learning never resets time");
}

#[test]
fn auto_learn_clear_mode_learns_every_full_window() {
    let mut s = SessionState::new(3, StmMode::Clear);
    let mut learned = Vec::new();
    let autos: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|t| s.observe(obs(&[t]), &mut learned).auto_learned)
        .collect();
    assert_eq!(
        autos,
        vec![None, None, Some(name(&[&["a"], &["b"], &["c"]])), None]
    );
    assert_eq!(s.stm, vec![vec!["d".to_string()]]);
}

#[test]
fn auto_learn_rolling_mode_slides_the_window() {
    let mut s = SessionState::new(3, StmMode::Rolling);
    let mut learned = Vec::new();
    let autos: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .filter_map(|t| s.observe(obs(&[t]), &mut learned).auto_learned)
        .collect();
    let expected = vec![
        name(&[&["a"], &["b"], &["c"]]),
        name(&[&["b"], &["c"], &["d"]]),
        name(&[&["c"], &["d"], &["e"]]),
    ];
    assert_eq!(autos, expected);
    assert_eq!(s.stm.len(), 2);
    assert!(learned
        .iter()
        .all(|l| l.emotives.is_empty() && l.metadata.is_empty()));
}

#[test]
fn rolling_with_learn_at_end_gives_the_servers_three_names() {
    let mut s = SessionState::new(3, StmMode::Rolling);
    let mut learned = Vec::new();
    let mut req = sequence(&[&["p"], &["q"], &["r"], &["s"]]);
    req.learn_at_end = true;
    let out = s.observe_sequence(req, "n", None, &mut learned).unwrap();
    let expected = vec![
        name(&[&["p"], &["q"], &["r"]]),
        name(&[&["q"], &["r"], &["s"]]),
        name(&[&["r"], &["s"]]),
    ];
    assert_eq!(out.auto_learned_patterns, expected);
    assert_eq!(
        out.final_learned_pattern.as_deref(),
        Some(expected[2].as_str())
    );
    assert_eq!(out.final_stm_length, 0);
}

#[test]
fn learn_after_each_learns_single_events_with_empty_names() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    let mut req = sequence(&[&["x"], &["z", "y"], &["w"]]);
    req.learn_after_each = true;
    let out = s.observe_sequence(req, "n", None, &mut learned).unwrap();
    assert_eq!(
        out.auto_learned_patterns,
        vec![String::new(), name(&[&["y", "z"]]), String::new()]
    );
    assert!(out.results.iter().all(|r| r.auto_learned_pattern.is_none()));
    assert_eq!(out.final_learned_pattern, None);
}

#[test]
fn learn_after_each_name_comes_before_the_auto_learned_one() {
    let mut s = SessionState::new(1, StmMode::Clear);
    let mut learned = Vec::new();
    let mut req = sequence(&[&["b", "a"]]);
    req.learn_after_each = true;
    let out = s.observe_sequence(req, "n", None, &mut learned).unwrap();
    // The auto-learn emptied STM first, so learn_after_each had nothing left.
    assert_eq!(out.auto_learned_patterns, vec![name(&[&["a", "b"]])]);
}

#[test]
fn clear_stm_between_with_learn_at_end_learns_only_the_last_item() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    let mut req = sequence(&[&["a", "b"], &["c", "d"]]);
    req.clear_stm_between = true;
    req.learn_at_end = true;
    let out = s.observe_sequence(req, "n", None, &mut learned).unwrap();
    assert_eq!(out.final_learned_pattern, Some(name(&[&["c", "d"]])));
    assert!(out.isolated);
}

#[test]
fn accumulators_leak_into_later_learns_until_clear_stm() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    for book in ["A", "B"] {
        let mut o = obs(&[book, "x"]);
        o.metadata.insert("book".into(), json!(book));
        o.emotives.insert("joy".into(), 1.0);
        s.observe(o, &mut learned);
    }
    s.learn(&mut learned);
    let mut o = obs(&["c", "x"]);
    o.metadata.insert("book".into(), json!("C"));
    o.emotives.insert("joy".into(), 0.5);
    s.observe(o, &mut learned);
    s.learn(&mut learned);
    let books: Vec<_> = learned[1].metadata["book"].iter().cloned().collect();
    assert_eq!(books, vec!["A", "B", "C"]);
    assert_eq!(learned[1].emotives.len(), 3);
    s.clear_stm();
    assert!(s.emotives.is_empty() && s.metadata.is_empty() && s.time == 0);
}

#[test]
fn emotives_handed_to_a_pattern_keep_the_last_persistence_entries() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    for i in 0..7 {
        let mut o = obs(&["t"]);
        o.emotives.insert("e".into(), f64::from(i));
        s.observe(o, &mut learned);
    }
    s.learn(&mut learned);
    let kept: Vec<f64> = learned[0].emotives.iter().map(|e| e["e"]).collect();
    assert_eq!(kept, vec![2.0, 3.0, 4.0, 5.0, 6.0]);
    // Affinity averages the whole accumulator, not only the window (KATO learnPattern).
    assert_eq!(learned[0].averaged_emotives["e"], 3.0);
}

#[test]
fn averaged_emotives_count_each_emotive_over_the_dicts_that_hold_it() {
    let dicts = vec![
        BTreeMap::from([("joy".to_owned(), 0.5), ("fear".to_owned(), 4.5)]),
        BTreeMap::from([("joy".to_owned(), 1.0)]),
    ];
    let averaged = average_emotives(&dicts);
    assert_eq!(averaged["joy"], 0.75);
    assert_eq!(averaged["fear"], 4.5);
    assert!(average_emotives(&[]).is_empty());
}

#[test]
fn trimming_keeps_the_newest_events_and_reports_the_drop() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    for i in 0..12 {
        s.observe(obs(&[&format!("t{i}")]), &mut learned);
    }
    assert_eq!(s.trim_to_capacity(10), 2);
    assert_eq!(s.stm[0], vec!["t2".to_string()]);
    assert_eq!(s.trim_to_capacity(10), 0);
}

#[test]
fn a_passed_deadline_stops_a_long_sequence() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    let items: Vec<Vec<String>> = (0..200).map(|i| vec![i.to_string()]).collect();
    let req = ObserveSequence {
        observations: items
            .into_iter()
            .map(|strings| Observation {
                strings,
                ..Observation::default()
            })
            .collect(),
        ..ObserveSequence::default()
    };
    let past = Instant::now();
    assert_eq!(
        s.observe_sequence(req, "n", Some(past), &mut learned).err(),
        Some(DeadlinePassed)
    );
}

#[test]
fn generated_ids_have_the_servers_shape_and_differ() {
    let mut ids = ObservationIds::new();
    let (a, b) = (ids.next_id(), ids.next_id());
    assert_ne!(a, b);
    assert!(a.starts_with("seq-obs-") && a.len() == 40);
}

#[test]
fn wire_names_match_the_naming_module() {
    let mut s = SessionState::new(0, StmMode::Clear);
    let mut learned = Vec::new();
    s.observe(obs(&["é", "a"]), &mut learned);
    let got = s.learn(&mut learned);
    assert_eq!(got, name(&[&["a", "é"]]));
    assert_eq!(wire_name_of(&learned[0].digest), got);
}

#[test]
fn when_both_fire_the_learn_after_each_name_is_listed_first() {
    let mut s = SessionState::new(2, StmMode::Rolling);
    let mut learned = Vec::new();
    s.observe(obs(&["x"]), &mut learned);
    let mut req = sequence(&[&["a"]]);
    req.learn_after_each = true;
    let out = s.observe_sequence(req, "n", None, &mut learned).unwrap();
    // Auto-learn took [x][a] and kept [a]; learn_after_each then learned the lone [a].
    assert_eq!(
        out.auto_learned_patterns,
        vec![String::new(), name(&[&["x"], &["a"]])]
    );
    assert_eq!(
        out.results[0].auto_learned_pattern,
        Some(name(&[&["x"], &["a"]]))
    );
    assert_eq!(out.results[0].stm_length, 0);
}
