//! The regression gate: each profile against the same-named profile of an earlier
//! comparison. A profile fails when its per-run samples/s are slower than the
//! baseline's both beyond the threshold and with confidence (Welch's t-test), or when
//! a KB digest changed. Runs too short to time ([`SHORT_RUN_SECONDS`]) and samples
//! that differ from the baseline's make the verdict `inconclusive`, never a pass or a
//! failure on figures that cannot carry it.

use serde::{Deserialize, Serialize};

use super::stats::{self, Welch};
use super::warnings::SHORT_RUN_SECONDS;
use super::{Comparison, ProfileSummary};
use crate::train::record::RunStatus;

/// The threshold used when a baseline is given without one: 10 % slower.
pub const DEFAULT_THRESHOLD: f64 = 0.10;

/// The confidence used when none is given: 95 % (a one-sided p below 0.05).
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// What the gate decides with: a profile regressed when its mean samples/s fell by
/// more than `threshold` AND Welch's one-sided t-test says, at `confidence`, that it
/// is slower than the baseline (p < 1 - confidence). Both must hold, so noise alone
/// (a big drop over few noisy runs) and a tiny but certain drop both pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateRule {
    /// Largest accepted drop in mean samples/s, as a fraction (0.10 = 10 %).
    pub threshold: f64,
    /// Confidence of the t-test, as a fraction (0.95).
    pub confidence: f64,
}

impl GateRule {
    /// `threshold` with [`DEFAULT_CONFIDENCE`].
    pub fn with_threshold(threshold: f64) -> Self {
        Self {
            threshold,
            confidence: DEFAULT_CONFIDENCE,
        }
    }
}

/// The baseline a comparison was gated against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Largest accepted drop in mean samples/s, as a fraction (0.10 = 10 %).
    pub threshold: f64,
    /// Confidence of Welch's t-test (0.95); older comparisons lack it.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// When the baseline comparison started.
    pub baseline_started_at: String,
    /// katotune revision the baseline ran with.
    pub baseline_git_revision: String,
}

fn default_confidence() -> f64 {
    DEFAULT_CONFIDENCE
}

/// Outcome of the gate for one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// Not slower with confidence beyond the threshold, and the same KB digests.
    Pass,
    /// Slower with confidence beyond the threshold, or the KB digests changed.
    Regressed,
    /// Fewer than two completed runs on a side: speed cannot be tested (digests were).
    TooFewRuns,
    /// The runs on a side lasted under [`SHORT_RUN_SECONDS`] on average, so start-up
    /// and timer noise outweigh training in their samples/s; or the two sides trained
    /// different samples, so neither speed nor digests are comparable. The reasons say
    /// which; digests that differ on the same samples still fail the gate.
    Inconclusive,
    /// The baseline has no profile of this name.
    NoBaseline,
}

impl VerdictStatus {
    /// The JSON spelling: `pass`, `regressed`, `too-few-runs`, `inconclusive`,
    /// `no-baseline`.
    pub fn key(self) -> &'static str {
        match self {
            VerdictStatus::Pass => "pass",
            VerdictStatus::Regressed => "regressed",
            VerdictStatus::TooFewRuns => "too-few-runs",
            VerdictStatus::Inconclusive => "inconclusive",
            VerdictStatus::NoBaseline => "no-baseline",
        }
    }
}

/// The gate's verdict for one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: VerdictStatus,
    /// The baseline's mean samples/s.
    #[serde(default)]
    pub baseline_samples_per_second: Option<f64>,
    /// The effect: `(now - baseline) / baseline` of mean samples/s; -0.25 is 25 % slower.
    #[serde(default)]
    pub speed_change: Option<f64>,
    /// Welch's t-test of this profile's per-run samples/s against the baseline's.
    #[serde(default)]
    pub welch: Option<Welch>,
    /// Completed runs the test rests on: (now, baseline).
    #[serde(default)]
    pub runs: (usize, usize),
    /// Mean samples/s fell more than the threshold.
    pub slower_beyond_threshold: bool,
    /// The t-test says slower at the gate's confidence.
    #[serde(default)]
    pub significantly_slower: bool,
    /// Nodes whose KB digest differs from the baseline's (or exist on one side only).
    pub changed_nodes: Vec<String>,
    /// One sentence per failed check.
    pub reasons: Vec<String>,
    /// Why the speed or the digests could not be judged (runs too short, other
    /// samples); empty when they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unjudged: Vec<String>,
}

impl Verdict {
    /// `-25.0% (p = 0.003, 3 vs 3 runs)`: the effect and its evidence.
    pub fn evidence(&self) -> String {
        let change = self
            .speed_change
            .map_or_else(|| "n/a".to_string(), |c| format!("{:+.1}%", c * 100.0));
        match self.welch {
            Some(w) => format!(
                "{change} (Welch {}, {} vs {} runs)",
                p_text(w.p_less),
                self.runs.0,
                self.runs.1
            ),
            None => format!(
                "{change} ({} vs {} runs: not tested)",
                self.runs.0, self.runs.1
            ),
        }
    }
}

/// `p = 0.003`, or `p < 0.001`.
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

/// Per-run samples/s of the completed runs.
fn run_speeds(p: &ProfileSummary) -> Vec<f64> {
    p.runs
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .map(|r| r.samples_per_second)
        .collect()
}

/// Judges `profile` against the same-named profile in `baseline` with `rule`.
pub fn judge(profile: &ProfileSummary, baseline: &Comparison, rule: GateRule) -> Verdict {
    let Some(before) = baseline.profiles.iter().find(|p| p.name == profile.name) else {
        return Verdict {
            status: VerdictStatus::NoBaseline,
            baseline_samples_per_second: None,
            speed_change: None,
            welch: None,
            runs: (profile.runs.len(), 0),
            slower_beyond_threshold: false,
            significantly_slower: false,
            changed_nodes: Vec::new(),
            reasons: Vec::new(),
            unjudged: Vec::new(),
        };
    };
    let (now_runs, base_runs) = (run_speeds(profile), run_speeds(before));
    let base = before.samples_per_second.mean;
    let now = profile.samples_per_second.mean;
    let speed_change = (base > 0.0).then(|| (now - base) / base);
    let welch = stats::welch(&now_runs, &base_runs);
    let slower = speed_change.is_some_and(|c| c < -rule.threshold);
    let alpha = 1.0 - rule.confidence;
    let significant = welch.is_some_and(|w| w.p_less < alpha);
    let mut unjudged = Vec::new();
    let (now_samples, base_samples) = (profile.samples.done, before.samples.done);
    if now_samples != base_samples {
        unjudged.push(format!(
            "the runs trained {now_samples} samples each where the baseline's trained \
             {base_samples}: neither speed nor KB digests compare; give the same \
             --samples (training.samples) on both sides"
        ));
    } else if let Some(what) = other_samples(profile, before) {
        unjudged.push(format!(
            "the runs trained other samples than the baseline's ({what}): neither speed \
             nor KB digests compare; train the same rows of the same data on both sides"
        ));
    }
    let same_samples = unjudged.is_empty();
    // The summary's own mean run wall time, as the short-run warning reads it.
    let (now_wall, base_wall) = (profile.wall_seconds.mean, before.wall_seconds.mean);
    if welch.is_some() && now_wall.min(base_wall) < SHORT_RUN_SECONDS {
        unjudged.push(format!(
            "runs lasted {now_wall:.2} s here and {base_wall:.2} s in the baseline on average, \
             under {SHORT_RUN_SECONDS} s: start-up and timer noise outweigh training, so \
             speed is not judged; train more samples per run (--samples) on both sides"
        ));
    }
    let changed_nodes = match same_samples {
        true => changed_nodes(profile, before),
        false => Vec::new(),
    };
    let mut reasons = Vec::new();
    let judged = unjudged.is_empty();
    if let (true, true, true, Some(change), Some(w)) =
        (judged, slower, significant, speed_change, welch)
    {
        reasons.push(format!(
            "samples/s fell {:.1}% below the baseline ({base:.2} -> {now:.2}; threshold {:.1}%), \
             Welch {} (below {alpha:.2}) over {} vs {} runs",
            -change * 100.0,
            rule.threshold * 100.0,
            p_text(w.p_less),
            now_runs.len(),
            base_runs.len()
        ));
    }
    if !changed_nodes.is_empty() {
        reasons.push(format!(
            "the KB digest changed versus the baseline at {}",
            changed_nodes.join(", ")
        ));
    }
    let status = match (reasons.is_empty(), welch.is_some(), judged) {
        (false, _, _) => VerdictStatus::Regressed,
        (true, _, false) => VerdictStatus::Inconclusive,
        (true, false, true) => VerdictStatus::TooFewRuns,
        (true, true, true) => VerdictStatus::Pass,
    };
    Verdict {
        status,
        baseline_samples_per_second: Some(base),
        speed_change,
        welch,
        runs: (now_runs.len(), base_runs.len()),
        slower_beyond_threshold: slower,
        significantly_slower: significant,
        changed_nodes,
        reasons,
        unjudged,
    }
}

/// What makes the two sides' samples differ, though their counts agree: another
/// dataset (its fingerprint), other rows (`training.skip`), another filter, text
/// field or split. `None` when they are the same (or a side does not say).
fn other_samples(now: &ProfileSummary, before: &ProfileSummary) -> Option<String> {
    let (a, b) = (&now.resolved.training, &before.resolved.training);
    let fingerprint = |p: &ProfileSummary| p.dataset.as_ref().map(|d| d.fingerprint.clone());
    let mut differs = Vec::new();
    if let (Some(x), Some(y)) = (fingerprint(now), fingerprint(before)) {
        if x != y {
            differs.push("the dataset's content".to_string());
        }
    }
    if a.skip != b.skip {
        differs.push(format!("training.skip {} vs {}", a.skip, b.skip));
    }
    if a.filter != b.filter {
        differs.push("training.filter".to_string());
    }
    if a.dataset.text_field != b.dataset.text_field || a.dataset.split != b.dataset.split {
        differs.push("training.dataset's text field or split".to_string());
    }
    (!differs.is_empty()).then(|| differs.join(", "))
}

fn changed_nodes(now: &ProfileSummary, before: &ProfileSummary) -> Vec<String> {
    let digest = |p: &ProfileSummary, node: &str| {
        p.nodes
            .iter()
            .find(|n| n.node == node)
            .map(|n| n.digest.clone())
    };
    let mut names: Vec<&str> = before.nodes.iter().map(|n| n.node.as_str()).collect();
    for n in &now.nodes {
        if !names.contains(&n.node.as_str()) {
            names.push(&n.node);
        }
    }
    names
        .into_iter()
        .filter(|node| digest(now, node) != digest(before, node))
        .map(str::to_string)
        .collect()
}
