//! The regression gate: each profile against the same-named profile of an earlier
//! comparison. Slower by more than the threshold, or a changed KB digest, fails it.

use serde::{Deserialize, Serialize};

use super::{Comparison, ProfileSummary};

/// The threshold used when a baseline is given without one: 10 % slower.
pub const DEFAULT_THRESHOLD: f64 = 0.10;

/// The baseline a comparison was gated against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Largest accepted drop in mean samples/s, as a fraction (0.10 = 10 %).
    pub threshold: f64,
    /// When the baseline comparison started.
    pub baseline_started_at: String,
    /// katotune revision the baseline ran with.
    pub baseline_git_revision: String,
}

/// Outcome of the gate for one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// Within the threshold and the same KB digests.
    Pass,
    /// Slower beyond the threshold, or the KB digests changed.
    Regressed,
    /// The baseline has no profile of this name.
    NoBaseline,
}

impl VerdictStatus {
    /// The JSON spelling: `pass`, `regressed`, `no-baseline`.
    pub fn key(self) -> &'static str {
        match self {
            VerdictStatus::Pass => "pass",
            VerdictStatus::Regressed => "regressed",
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
    /// `(now - baseline) / baseline` of mean samples/s; -0.25 is 25 % slower.
    #[serde(default)]
    pub speed_change: Option<f64>,
    /// Mean samples/s fell more than the threshold.
    pub slower_beyond_threshold: bool,
    /// Nodes whose KB digest differs from the baseline's (or exist on one side only).
    pub changed_nodes: Vec<String>,
    /// One sentence per failed check.
    pub reasons: Vec<String>,
}

/// Judges `profile` against the same-named profile in `baseline`.
pub fn judge(profile: &ProfileSummary, baseline: &Comparison, threshold: f64) -> Verdict {
    let Some(before) = baseline.profiles.iter().find(|p| p.name == profile.name) else {
        return Verdict {
            status: VerdictStatus::NoBaseline,
            baseline_samples_per_second: None,
            speed_change: None,
            slower_beyond_threshold: false,
            changed_nodes: Vec::new(),
            reasons: Vec::new(),
        };
    };
    let base = before.samples_per_second.mean;
    let now = profile.samples_per_second.mean;
    let speed_change = (base > 0.0).then(|| (now - base) / base);
    let slower = speed_change.is_some_and(|c| c < -threshold);
    let changed_nodes = changed_nodes(profile, before);
    let mut reasons = Vec::new();
    if let (true, Some(change)) = (slower, speed_change) {
        reasons.push(format!(
            "samples/s fell {:.1}% below the baseline ({base:.2} -> {now:.2}; threshold {:.1}%)",
            -change * 100.0,
            threshold * 100.0
        ));
    }
    if !changed_nodes.is_empty() {
        reasons.push(format!(
            "the KB digest changed versus the baseline at {}",
            changed_nodes.join(", ")
        ));
    }
    Verdict {
        status: if reasons.is_empty() {
            VerdictStatus::Pass
        } else {
            VerdictStatus::Regressed
        },
        baseline_samples_per_second: Some(base),
        speed_change,
        slower_beyond_threshold: slower,
        changed_nodes,
        reasons,
    }
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
