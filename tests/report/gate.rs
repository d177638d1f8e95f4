//! The regression gate against a saved baseline comparison.

use katotune::report::{Comparison, VerdictStatus, DEFAULT_THRESHOLD};

use super::fixture;

/// Today's runs: baseline 2.5 % slower (within 10 %), phase3-parallel 25 % slower,
/// broken-batch as fast as before but now learning what the reference learns (so its
/// node1 digest changed versus the baseline), and a profile the baseline lacks.
fn today() -> Comparison {
    let mut inputs = fixture::inputs();
    for r in &mut inputs[0].records {
        r.samples_per_second *= 0.975;
    }
    for r in &mut inputs[1].records {
        r.samples_per_second *= 0.75;
    }
    let reference_levels = inputs[0].records[0].levels.clone();
    for r in &mut inputs[2].records {
        fixture::relevel(r, reference_levels.clone());
    }
    inputs[2].kb = fixture::reference_kb();
    let mut extra = inputs[1].clone();
    extra.profile.name = "new-profile".into();
    inputs.push(extra);
    let baseline = fixture::comparison();
    Comparison::build(inputs, 0, Some(&baseline), Some(0.10), fixture::meta())
}

fn verdict<'a>(c: &'a Comparison, name: &str) -> &'a katotune::report::Verdict {
    c.profiles
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.verdict.as_ref())
        .unwrap_or_else(|| panic!("{name} has a verdict"))
}

#[test]
fn throughput_drop_beyond_the_threshold_is_a_regression() {
    let c = today();
    let v = verdict(&c, "phase3-parallel");
    assert_eq!(v.status, VerdictStatus::Regressed);
    assert!(v.slower_beyond_threshold);
    assert!((v.speed_change.unwrap_or(0.0) + 0.25).abs() < 1e-9);
    assert_eq!(
        v.reasons,
        [
            "samples/s fell 25.0% below the baseline (8.40 -> 6.30; threshold 10.0%), \
          Welch p < 0.001 (below 0.05) over 3 vs 3 runs"
        ]
    );
    assert!(v.changed_nodes.is_empty());
}

#[test]
fn a_changed_digest_is_a_regression_even_at_the_same_speed() {
    let c = today();
    let v = verdict(&c, "broken-batch");
    assert_eq!(v.status, VerdictStatus::Regressed);
    assert!(!v.slower_beyond_threshold);
    assert_eq!(v.changed_nodes, ["node1"]);
    assert_eq!(
        v.reasons,
        ["the KB digest changed versus the baseline at node1"]
    );
}

#[test]
fn a_profile_within_the_threshold_passes() {
    let c = today();
    let v = verdict(&c, "baseline");
    assert_eq!(v.status, VerdictStatus::Pass);
    assert!((v.speed_change.unwrap_or(0.0) + 0.025).abs() < 1e-9);
    assert!(v.reasons.is_empty());
    assert_eq!(verdict(&c, "new-profile").status, VerdictStatus::NoBaseline);
}

#[test]
fn regressions_lists_exactly_the_failed_profiles() {
    let c = today();
    let names: Vec<&str> = c
        .regressions()
        .iter()
        .map(|(p, _)| p.name.as_str())
        .collect();
    assert_eq!(names, ["phase3-parallel", "broken-batch"]);
    let gate = c.gate.as_ref().expect("a baseline was given");
    assert_eq!(gate.threshold, 0.10);
    assert_eq!(gate.baseline_git_revision, "abc1234");
}

#[test]
fn without_a_baseline_there_is_no_verdict_and_a_missing_threshold_defaults() {
    let c = fixture::comparison();
    assert!(c.gate.is_none());
    assert!(c.regressions().is_empty());
    let baseline = fixture::comparison();
    let c = Comparison::build(fixture::inputs(), 0, Some(&baseline), None, fixture::meta());
    assert_eq!(
        c.gate.as_ref().map(|g| g.threshold),
        Some(DEFAULT_THRESHOLD)
    );
    assert!(
        c.regressions().is_empty(),
        "the same runs pass against themselves"
    );
}
