//! What the comparison says about speed and correctness.

use katotune::report::correctness::CheckStatus;
use katotune::report::export::markdown::MarkdownExporter;
use katotune::report::{Comparison, Exporter, ProfileRuns};
use katotune::train::kb_check::KbSource;

use super::fixture;

fn profile<'a>(c: &'a Comparison, name: &str) -> &'a katotune::report::ProfileSummary {
    c.profiles
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is in the comparison"))
}

#[test]
fn parallel_profile_is_reported_faster_with_propagated_uncertainty() {
    let c = fixture::comparison();
    assert_eq!(c.reference, "baseline");
    let base = profile(&c, "baseline");
    assert_eq!(base.relative.map(|r| r.display()), Some("1.00".to_string()));
    let fast = profile(&c, "phase3-parallel");
    let r = fast.relative.expect("both profiles trained");
    assert!((r.ratio - 4.2).abs() < 1e-9, "{}", r.ratio);
    // 4.2 * sqrt((0.1/8.4)^2 + (0.1/2.0)^2) = 0.2159
    let u = r.uncertainty.expect("three repeats each");
    assert!((u - 0.2159).abs() < 1e-3, "{u}");
    assert!(c
        .relative_sentences()
        .contains(&"phase3-parallel ran 4.20 ± 0.22 times faster than baseline".to_string()));
    assert!(c
        .relative_sentences()
        .iter()
        .any(|s| s.starts_with("broken-batch ran 1.25 ± ")
            && s.ends_with("times slower than baseline")));
}

#[test]
fn per_profile_measures_are_mean_and_spread_over_the_repeats() {
    let c = fixture::comparison();
    let base = profile(&c, "baseline");
    assert_eq!(base.runs.len(), 3);
    assert!((base.samples_per_second.mean - 2.0).abs() < 1e-9);
    assert!((base.samples_per_second.stddev.unwrap_or(0.0) - 0.1).abs() < 1e-9);
    assert_eq!(
        (base.samples_per_second.min, base.samples_per_second.max),
        (1.9, 2.1)
    );
    assert!((base.calls.per_sample - 7.0).abs() < 1e-9);
    let broken = profile(&c, "broken-batch");
    assert_eq!(broken.calls.errors, 6, "3 errors in each of 2 repeats");
    assert_eq!(broken.calls.errors_by_class.get("timeout"), Some(&4));
    assert_eq!(broken.samples.at_risk, 1);
    assert_eq!(broken.samples.done, 8);
    assert_eq!(
        c.meta.dataset,
        Some(fixture::dataset()),
        "taken from the reference"
    );
}

#[test]
fn a_differing_node_is_named_with_how_many_names_and_examples() {
    let c = fixture::comparison();
    assert_eq!(
        profile(&c, "phase3-parallel").correctness.status,
        CheckStatus::Same
    );
    let broken = &profile(&c, "broken-batch").correctness;
    assert_eq!(broken.status, CheckStatus::Differs);
    assert_eq!(broken.differences.len(), 1, "only node1 differs");
    let d = &broken.differences[0];
    assert_eq!(d.node, "node1");
    // One name learned twice instead of once, one never, two new ones.
    assert_eq!(d.names_differing, Some(4));
    assert_eq!((d.learns, d.reference_learns), (4, 2));
    let twice = d
        .examples
        .iter()
        .find(|e| e.name == "PTRN|9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3")
        .expect("the name learned twice is an example");
    assert_eq!((twice.count, twice.reference_count), (2, 1));
    assert!(d
        .examples
        .iter()
        .any(|e| e.count == 0 && e.reference_count == 1));
    let failures: Vec<&str> = c
        .correctness_failures()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(failures, ["broken-batch"]);
}

#[test]
fn more_than_five_differing_names_list_five_examples() {
    let mut inputs = fixture::inputs();
    let mut many = fixture::reference_kb();
    for i in 0..9 {
        many[0].insert(format!("PTRN|extra{i}"), 1);
    }
    inputs[1].kb = many.clone();
    let last = inputs[1].records.len() - 1;
    let digest = katotune::train::digest::digest_of(&many[0]);
    fixture::set_digest(&mut inputs[1].records[last], 0, digest);
    let c = Comparison::build(inputs, 0, None, None, fixture::meta());
    let d = &profile(&c, "phase3-parallel").correctness.differences[0];
    assert_eq!(d.names_differing, Some(9));
    assert_eq!(d.examples.len(), 5);
}

#[test]
fn a_profile_that_trains_other_chunks_is_flagged_as_a_settings_difference() {
    let mut inputs = fixture::inputs();
    let mut other = fixture::parallel_profile();
    other.training.chunk_sizes = vec![4, 7, 9];
    for r in &mut inputs[1].records {
        fixture::set_digest(r, 0, "0".repeat(40));
        r.profile.learning_hash = other.learning_hash();
    }
    inputs[1].profile = other;
    inputs[1].kb.clear();
    let c = Comparison::build(inputs, 0, None, None, fixture::meta());
    let p = profile(&c, "phase3-parallel");
    assert_eq!(p.correctness.status, CheckStatus::DifferentLearning);
    assert!(p
        .correctness
        .note
        .as_deref()
        .unwrap_or("")
        .contains("learning hash"));
    assert_eq!(p.correctness.differences[0].names_differing, None);
    // A different KB is always flagged (exit code non-zero unless --allow-kb-diff),
    // and the note says it comes from other settings rather than a batching bug.
    assert!(c
        .correctness_failures()
        .iter()
        .any(|f| f.name == "phase3-parallel"));
}

#[test]
fn repeats_that_learn_different_kbs_are_flagged() {
    let mut inputs = fixture::inputs();
    fixture::set_digest(&mut inputs[0].records[1], 0, "f".repeat(40));
    let c = Comparison::build(inputs, 0, None, None, fixture::meta());
    assert!(!profile(&c, "baseline").correctness.repeats_agree);
    assert!(c
        .correctness_failures()
        .iter()
        .any(|p| p.name == "baseline"));
}

#[test]
fn reference_can_be_any_profile_and_out_of_range_means_the_first() {
    let c = Comparison::build(fixture::inputs(), 1, None, None, fixture::meta());
    assert_eq!(c.reference, "phase3-parallel");
    assert_eq!(
        profile(&c, "baseline").correctness.status,
        CheckStatus::Same
    );
    let c = Comparison::build(fixture::inputs(), 7, None, None, fixture::meta());
    assert_eq!(c.reference, "baseline");
}

#[test]
fn a_profile_without_runs_is_marked_not_run() {
    let mut inputs = fixture::inputs();
    inputs.push(ProfileRuns {
        profile: fixture::parallel_profile(),
        records: Vec::new(),
        kb: Vec::new(),
        sources: Default::default(),
        max_runs_reached: None,
    });
    inputs[3].profile.name = "never-ran".into();
    let c = Comparison::build(inputs, 0, None, None, fixture::meta());
    let p = profile(&c, "never-ran");
    assert_eq!(p.correctness.status, CheckStatus::NotRun);
    assert_eq!(p.relative, None);
    assert!(c
        .relative_sentences()
        .contains(&"never-ran has no speed ratio: one side trained nothing".to_string()));
}

#[test]
fn knob_table_explains_each_setting_for_the_profiles_target() {
    let c = fixture::comparison();
    let broken = profile(&c, "broken-batch");
    assert_eq!(broken.target, "kato");
    let pool = broken
        .settings
        .iter()
        .find(|s| s.env == "CONNECTION_POOL_SIZE")
        .expect("the pool size is set");
    assert_eq!(
        (pool.value.as_str(), pool.effect.as_str()),
        ("50", "parsed but unused")
    );
    let parallel = profile(&c, "phase3-parallel");
    assert_eq!(parallel.target, "engine");
    assert!(parallel.settings.iter().all(|s| s.effect == "engine"));
    assert!(profile(&c, "baseline").settings.is_empty());
}

#[test]
fn a_kb_stored_otherwise_than_answered_is_a_mismatch_and_fails_the_check() {
    let mut inputs = fixture::inputs();
    // phase3-parallel's second run: the engine kept one node0 learn less than it said.
    let check = inputs[1].records[1].kb_check.as_mut().expect("read back");
    check.nodes[0].kb.learns -= 1;
    check.nodes[0].kb.digest = "e".repeat(40);
    let c = Comparison::build(inputs, 0, None, None, fixture::meta());
    let p = profile(&c, "phase3-parallel");
    let read = p
        .correctness
        .read_back
        .as_ref()
        .expect("records carry a read-back");
    assert_eq!(read.source, KbSource::Engine);
    assert_eq!(read.mismatches.len(), 1);
    let m = &read.mismatches[0];
    assert_eq!((m.run, m.node.as_str()), (2, "node0"));
    assert_eq!(m.tally.learns, m.kb.learns + 1);
    assert!(p.correctness.stores_disagree());
    assert!(
        !p.correctness.repeats_agree,
        "run 2 stored another KB than runs 1 and 3"
    );
    assert!(c
        .correctness_failures()
        .iter()
        .any(|f| f.name == "phase3-parallel"));
    let markdown = MarkdownExporter.render(&c).expect("renders");
    let markdown = String::from_utf8(markdown).expect("utf-8");
    assert!(markdown.contains("ENGINE ≠ tally (node0)"), "{markdown}");
    assert!(
        markdown.contains("NO: node0"),
        "the read-back table names the node"
    );
    let table = katotune::report::export::table::TerminalTable {
        colour: false,
        width: None,
    }
    .render_text(&c);
    let line = "KB MISMATCH: phase3-parallel run 2 node0 (node0_kato): stored 7 learns";
    assert!(table.contains(line), "{table}");
}
