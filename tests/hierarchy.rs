//! The hierarchy state machine and the segmenter against TRAINING.md's worked
//! example (section 8), its variants, and the per-level count formula.

use std::collections::BTreeMap;

use katotune::train::hierarchy::{
    expected_learns, min_node0_chunks, receptive_field, Flow, Hierarchy, HierarchyError,
    LearnRequest, LevelCounts, TailPolicy,
};
use katotune::train::segment::{Segmentation, Segmenter};
use proptest::prelude::*;

/// One learn as a fake server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Learn {
    level: usize,
    symbols: Vec<String>,
    first: bool,
    partial: bool,
    /// How many node0 names had been pushed when the learn was requested.
    after_pushes: usize,
}

/// A fake server: node_k's results are named by level letter and order (Q0, Q1 ... for
/// node1, R0 ... for node2, S0 ... for node3). Answers a batch in reverse order to
/// show that results are slotted back in request order.
struct FakeServer {
    learned: BTreeMap<usize, usize>,
    log: Vec<Learn>,
}

impl FakeServer {
    fn new() -> Self {
        FakeServer {
            learned: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn serve(&mut self, h: &mut Hierarchy, mut due: Vec<LearnRequest>, pushes: usize) {
        while !due.is_empty() {
            let mut answers = Vec::new();
            for request in &due {
                let n = self.learned.entry(request.level).or_insert(0);
                let letter = (b'P' + request.level as u8) as char;
                answers.push((request.id, format!("{letter}{n}")));
                *n += 1;
                self.log.push(Learn {
                    level: request.level,
                    symbols: request.symbols.iter().map(|s| s.to_string()).collect(),
                    first: request.first_at_level,
                    partial: request.partial,
                    after_pushes: pushes,
                });
            }
            let mut next = Vec::new();
            for (id, name) in answers.into_iter().rev() {
                next.extend(h.learned(id, name).expect("known request"));
            }
            due = next;
        }
    }
}

/// Runs one sample whose node0 learned `names`; returns the learns and the counts.
fn run_sample(h: &mut Hierarchy, names: &[String]) -> (Vec<Learn>, Vec<LevelCounts>) {
    let mut server = FakeServer::new();
    for (i, name) in names.iter().enumerate() {
        let due = h.push_name(name.clone()).expect("filling");
        server.serve(h, due, i + 1);
    }
    let due = h.finish().expect("first finish");
    server.serve(h, due, names.len());
    assert!(h.is_done());
    (server.log, h.next_sample().expect("done"))
}

fn node0_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("P{i}")).collect()
}

fn symbols(items: &[&str]) -> Vec<std::sync::Arc<str>> {
    items.iter().map(|s| std::sync::Arc::from(*s)).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn words(text: &str) -> Vec<std::sync::Arc<str>> {
    text.split_whitespace().map(std::sync::Arc::from).collect()
}

fn tokens_text(n: usize) -> String {
    (0..n)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn chunk_sizes(segmentation: Segmentation, tokens: usize) -> Vec<usize> {
    let seg = Segmenter::new(segmentation, 5).unwrap();
    let plan = seg.plan(&tokens_text(tokens), &words);
    plan.chunks.iter().map(Vec::len).collect()
}

fn single_pass(sizes: &[usize]) -> Hierarchy {
    Hierarchy::new(sizes, Flow::SinglePass, TailPolicy::LearnIfAtLeastTwo).unwrap()
}

fn level_by_level(sizes: &[usize]) -> Hierarchy {
    Hierarchy::new(sizes, Flow::LevelByLevel, TailPolicy::LearnIfAtLeastTwo).unwrap()
}

#[test]
fn worked_example_path_a_learns_p0_to_p4_once_at_the_end() {
    assert_eq!(chunk_sizes(Segmentation::Paragraphs, 23), [5, 5, 5, 5, 3]);
    let (log, counts) = run_sample(&mut single_pass(&[7]), &node0_names(5));
    assert_eq!(
        log,
        [Learn {
            level: 1,
            symbols: strings(&["P0", "P1", "P2", "P3", "P4"]),
            first: true,
            partial: true,
            after_pushes: 5,
        }]
    );
    assert_eq!(counts[1].requests, 1);
    assert_eq!(counts[1].dropped, 0);
}

#[test]
fn worked_example_path_a_22_and_21_tokens_merge_the_tail() {
    assert_eq!(chunk_sizes(Segmentation::Paragraphs, 22), [5, 5, 5, 7]);
    assert_eq!(chunk_sizes(Segmentation::Paragraphs, 21), [5, 5, 5, 6]);
    let (log, _) = run_sample(&mut single_pass(&[7]), &node0_names(4));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].symbols, strings(&["P0", "P1", "P2", "P3"]));
}

#[test]
fn worked_example_path_a_third_level_drops_the_lone_q0() {
    let (log, counts) = run_sample(&mut single_pass(&[7, 9]), &node0_names(5));
    assert_eq!(log.len(), 1, "no node2 call: {log:?}");
    assert_eq!(counts[2].received, 1);
    assert_eq!(counts[2].dropped, 1);
    assert_eq!(counts[2].requests, 0);
}

#[test]
fn worked_example_path_a_40_tokens_learns_mid_sample_and_drops_p7() {
    assert_eq!(chunk_sizes(Segmentation::Paragraphs, 40), [5; 8]);
    let (log, counts) = run_sample(&mut single_pass(&[7]), &node0_names(8));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].symbols, node0_names(7));
    assert_eq!(log[0].after_pushes, 7, "learned as P6 arrived, before P7");
    assert!(!log[0].partial);
    assert_eq!(counts[1].dropped, 1);
}

#[test]
fn path_a_cascades_in_reference_order_with_metadata_flags() {
    // [2, 2]: P0 P1 -> Q0; P2 P3 -> Q1, which fills node2 -> R0 at once; P4 alone.
    let (log, counts) = run_sample(&mut single_pass(&[2, 2]), &node0_names(5));
    let seen: Vec<(usize, Vec<String>, bool, usize)> = log
        .iter()
        .map(|l| (l.level, l.symbols.clone(), l.first, l.after_pushes))
        .collect();
    assert_eq!(
        seen,
        [
            (1, strings(&["P0", "P1"]), true, 2),
            (1, strings(&["P2", "P3"]), false, 4),
            (2, strings(&["Q0", "Q1"]), true, 4),
        ]
    );
    assert_eq!(counts[1].dropped, 1);
}

#[test]
fn path_a_force_learns_cascade_upward_at_the_end() {
    // [3, 3, 3] with 5 names: Q0 mid-sample; at the end P3 P4 -> Q1, then node2 holds
    // Q0 Q1 -> R0, then node3 holds R0 alone and drops it.
    let (log, counts) = run_sample(&mut single_pass(&[3, 3, 3]), &node0_names(5));
    let seen: Vec<(usize, Vec<String>, bool)> = log
        .iter()
        .map(|l| (l.level, l.symbols.clone(), l.partial))
        .collect();
    assert_eq!(
        seen,
        [
            (1, strings(&["P0", "P1", "P2"]), false),
            (1, strings(&["P3", "P4"]), true),
            (2, strings(&["Q0", "Q1"]), true),
        ]
    );
    assert_eq!(counts[3].dropped, 1);
}

#[test]
fn worked_example_path_b_slices_and_learns_the_same_group() {
    assert_eq!(chunk_sizes(Segmentation::Slices, 23), [5, 5, 5, 5, 3]);
    let (log, _) = run_sample(&mut level_by_level(&[7]), &node0_names(5));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].symbols, node0_names(5));
}

#[test]
fn path_b_never_sends_a_one_item_slice() {
    let seg = Segmenter::new(Segmentation::Slices, 5).unwrap();
    let plan = seg.plan(&tokens_text(21), &words);
    assert_eq!(plan.chunks.len(), 4, "the lone t20 is not a chunk");
    assert_eq!(plan.counts.tokens_dropped, 1);
    let (log, counts) = run_sample(&mut level_by_level(&[7]), &node0_names(8));
    assert_eq!(log.len(), 1, "[P7] is not sent: {log:?}");
    assert_eq!(log[0].symbols, node0_names(7));
    assert_eq!(counts[1].dropped, 1);
    assert!(log
        .iter()
        .all(|l| !l.symbols.iter().any(|s| s == "UNKNOWN")));
}

#[test]
fn path_b_four_layers_stop_where_a_slice_holds_one_name() {
    let (log, counts) = run_sample(&mut level_by_level(&[7, 8, 8]), &node0_names(5));
    assert_eq!(log.len(), 1);
    assert_eq!(counts[2].dropped, 1);
    assert_eq!(counts[3].received, 0);
}

#[test]
fn path_b_sends_a_whole_level_at_once_and_keeps_slice_order() {
    let mut h = level_by_level(&[2, 2]);
    for name in node0_names(7) {
        assert!(h.push_name(name).unwrap().is_empty());
    }
    let due = h.finish().unwrap();
    let slices: Vec<Vec<String>> = due
        .iter()
        .map(|r| r.symbols.iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(
        slices,
        [
            strings(&["P0", "P1"]),
            strings(&["P2", "P3"]),
            strings(&["P4", "P5"])
        ]
    );
    assert_eq!(
        due.iter().map(|r| r.first_at_level).collect::<Vec<_>>(),
        [true, false, false]
    );
    // Answer out of order: node2 must still see the names in slice order.
    assert!(h.learned(due[2].id, "Q2".into()).unwrap().is_empty());
    assert!(h.learned(due[0].id, "Q0".into()).unwrap().is_empty());
    let next = h.learned(due[1].id, "Q1".into()).unwrap();
    let next: Vec<Vec<String>> = next
        .iter()
        .map(|r| r.symbols.iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(next, [strings(&["Q0", "Q1"])]);
    assert_eq!(h.counts()[1].dropped, 1);
    assert_eq!(h.counts()[2].dropped, 1);
}

#[test]
fn empty_names_are_never_passed_upward() {
    let mut h = single_pass(&[2, 2]);
    assert!(h.push_name(String::new()).unwrap().is_empty());
    assert!(h.push_name("P0".into()).unwrap().is_empty());
    let due = h.push_name("P1".into()).unwrap();
    assert!(h.learned(due[0].id, String::new()).unwrap().is_empty());
    assert!(h.finish().unwrap().is_empty());
    assert!(h.is_done());
    assert_eq!(h.counts()[0].empty, 1);
    assert_eq!(h.counts()[1].empty, 1);
    assert_eq!(h.counts()[2].received, 0);
}

#[test]
fn names_pushed_while_a_learn_is_out_wait_their_turn() {
    let mut h = single_pass(&[2, 2]);
    assert!(h.push_name("P0".into()).unwrap().is_empty());
    let q0 = h.push_name("P1".into()).unwrap();
    assert!(h.push_name("P2".into()).unwrap().is_empty());
    assert!(h.push_name("P3".into()).unwrap().is_empty());
    let q1 = h.learned(q0[0].id, "Q0".into()).unwrap();
    assert_eq!(q1[0].symbols, symbols(&["P2", "P3"]));
    let r0 = h.learned(q1[0].id, "Q1".into()).unwrap();
    assert_eq!(r0[0].symbols, symbols(&["Q0", "Q1"]));
}

#[test]
fn misuse_is_reported_not_panicked() {
    assert_eq!(
        Hierarchy::new(&[7, 1], Flow::SinglePass, TailPolicy::LearnIfAtLeastTwo).err(),
        Some(HierarchyError::ChunkSizeTooSmall {
            level: 2,
            chunk_size: 1
        })
    );
    let mut h = single_pass(&[2]);
    h.push_name("P0".into()).unwrap();
    let due = h.push_name("P1".into()).unwrap();
    assert_eq!(h.next_sample().err(), Some(HierarchyError::SampleNotDone));
    h.learned(due[0].id, "Q0".into()).unwrap();
    assert_eq!(
        h.learned(due[0].id, "Q0".into()).err(),
        Some(HierarchyError::UnknownRequest { id: due[0].id })
    );
    h.finish().unwrap();
    assert_eq!(
        h.push_name("P2".into()).err(),
        Some(HierarchyError::SampleFinished)
    );
}

#[test]
fn drop_partial_learns_only_full_groups() {
    let mut h = Hierarchy::new(&[7], Flow::SinglePass, TailPolicy::DropPartial).unwrap();
    let (log, counts) = run_sample(&mut h, &node0_names(5));
    assert!(log.is_empty());
    assert_eq!(counts[1].dropped, 5);
}

#[test]
fn a_sample_learns_the_same_after_any_previous_sample() {
    for flow in [Flow::SinglePass, Flow::LevelByLevel] {
        let sizes = [3, 2, 2];
        let alone = run_sample(
            &mut Hierarchy::new(&sizes, flow, TailPolicy::LearnIfAtLeastTwo).unwrap(),
            &node0_names(11),
        );
        let mut reused = Hierarchy::new(&sizes, flow, TailPolicy::LearnIfAtLeastTwo).unwrap();
        run_sample(&mut reused, &node0_names(8));
        assert_eq!(run_sample(&mut reused, &node0_names(11)), alone);
        // A sample abandoned halfway leaves nothing behind either.
        reused.push_name("X0".into()).unwrap();
        reused.push_name("X1".into()).unwrap();
        reused.push_name("X2".into()).unwrap();
        reused.abandon_sample();
        assert_eq!(run_sample(&mut reused, &node0_names(11)), alone);
    }
}

#[test]
fn idle_levels_are_explained_by_the_sizes() {
    assert_eq!(receptive_field(&[5, 7, 9], 0), 5);
    assert_eq!(receptive_field(&[5, 7, 9], 2), 315);
    let sizes = [8, 8, 8];
    assert_eq!(
        min_node0_chunks(&sizes, 3, TailPolicy::LearnIfAtLeastTwo),
        Some(74)
    );
    assert_eq!(
        min_node0_chunks(&sizes, 1, TailPolicy::LearnIfAtLeastTwo),
        Some(2)
    );
    assert_eq!(
        min_node0_chunks(&sizes, 1, TailPolicy::DropPartial),
        Some(8)
    );
    assert_eq!(min_node0_chunks(&sizes, 4, TailPolicy::DropPartial), None);
    assert_eq!(
        expected_learns(5, &[7, 9], TailPolicy::LearnIfAtLeastTwo),
        [5, 1, 0]
    );
    assert_eq!(
        expected_learns(8, &[7], TailPolicy::LearnIfAtLeastTwo),
        [8, 1]
    );
}

fn tail_policy() -> impl Strategy<Value = TailPolicy> {
    prop_oneof![
        Just(TailPolicy::LearnIfAtLeastTwo),
        Just(TailPolicy::DropPartial)
    ]
}

fn flow() -> impl Strategy<Value = Flow> {
    prop_oneof![Just(Flow::SinglePass), Just(Flow::LevelByLevel)]
}

proptest! {
    #[test]
    fn count_formula_matches_the_state_machine(
        n0 in 0usize..400,
        sizes in prop::collection::vec(2usize..10, 0..5),
        flow in flow(),
        tail in tail_policy(),
    ) {
        let mut h = Hierarchy::new(&sizes, flow, tail).unwrap();
        let (_, counts) = run_sample(&mut h, &node0_names(n0));
        let requests: Vec<u64> = std::iter::once(n0 as u64)
            .chain(counts[1..].iter().map(|c| c.requests))
            .collect();
        prop_assert_eq!(requests, expected_learns(n0 as u64, &sizes, tail));
    }

    #[test]
    fn both_flows_learn_the_same_groups_per_level(
        n0 in 0usize..300,
        sizes in prop::collection::vec(2usize..8, 1..4),
        tail in tail_policy(),
    ) {
        let by_level = |flow| {
            let mut h = Hierarchy::new(&sizes, flow, tail).unwrap();
            let (log, _) = run_sample(&mut h, &node0_names(n0));
            let mut per_level: BTreeMap<usize, Vec<Vec<String>>> = BTreeMap::new();
            for learn in log {
                per_level.entry(learn.level).or_default().push(learn.symbols);
            }
            per_level
        };
        prop_assert_eq!(by_level(Flow::SinglePass), by_level(Flow::LevelByLevel));
    }

    #[test]
    fn min_node0_chunks_is_the_least_that_learns(
        sizes in prop::collection::vec(2usize..10, 1..4),
        tail in tail_policy(),
    ) {
        let top = sizes.len();
        let least = min_node0_chunks(&sizes, top, tail).unwrap();
        prop_assert!(expected_learns(least, &sizes, tail)[top] >= 1);
        prop_assert_eq!(expected_learns(least - 1, &sizes, tail)[top], 0);
    }

    #[test]
    fn slices_hold_every_token_once_in_order(
        n in 0usize..200,
        chunk_size in 2usize..12,
    ) {
        let seg = Segmenter::new(Segmentation::Slices, chunk_size).unwrap();
        let text = tokens_text(n);
        let plan = seg.plan(&text, &words);
        let kept = plan.chunks.concat();
        let all = words(&text);
        let lone_tail = n % chunk_size == 1;
        prop_assert_eq!(&kept[..], &all[..n - usize::from(lone_tail)]);
        prop_assert_eq!(plan.counts.tokens_dropped, u64::from(lone_tail));
        prop_assert!(plan.chunks.iter().all(|c| (2..=chunk_size).contains(&c.len())));
    }

    #[test]
    fn paragraphs_hold_every_kept_token_once_in_order(
        paragraphs in prop::collection::vec(0usize..40, 0..8),
        separators in prop::collection::vec(
            prop::sample::select(vec!["\n\n", "\n \n", "\n\t\n\n", "\r\n\r\n", "\n\u{a0}\n"]), 8),
        chunk_size in 2usize..12,
        cap in 1usize..50,
    ) {
        // Paragraph p's tokens are "p{p}w{i}"; a one-token paragraph is under 10 chars.
        let texts: Vec<Vec<String>> = paragraphs.iter().enumerate()
            .map(|(p, &n)| (0..n).map(|i| format!("p{p}w{i:02}")).collect())
            .collect();
        let mut text = String::new();
        for (p, tokens) in texts.iter().enumerate() {
            if p > 0 { text.push_str(separators[p]); }
            text.push_str(&tokens.join(" "));
        }
        let seg = Segmenter::new(Segmentation::Paragraphs, chunk_size).unwrap()
            .with_paragraph_token_cap(cap).unwrap();
        let plan = seg.plan(&text, &words);

        let mut expected = Vec::new();
        for tokens in &texts {
            let kept = &tokens[..tokens.len().min(cap)];
            if tokens.len() >= 2 && kept.len() >= 3 {
                expected.extend(kept.iter().map(|t| std::sync::Arc::<str>::from(t.as_str())));
            }
        }
        let in_chunks: usize = plan.chunks.iter().map(Vec::len).sum();
        prop_assert_eq!(plan.chunks.concat(), expected);
        for chunk in &plan.chunks {
            prop_assert!((3..=chunk_size + 2).contains(&chunk.len()) || chunk.len() == chunk_size);
            let paragraph = chunk[0].split('w').next();
            prop_assert!(chunk.iter().all(|t| t.split('w').next() == paragraph));
        }
        prop_assert_eq!(
            plan.counts.tokens,
            plan.counts.tokens_over_cap + plan.counts.tokens_dropped + in_chunks as u64
        );
    }
}
