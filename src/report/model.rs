//! The comparison document: every profile's measured repeats side by side, speed
//! against a reference, the correctness check, the knob table, the regression gate
//! and what it takes to reproduce it. Built by one pure function, serialized as is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::correctness::{self, CheckStatus, KbSide};
use super::differences::{differing_settings, SettingDifference};
use super::meta::ReproMeta;
use super::regression::{self, Gate, GateRule, Verdict, VerdictStatus, DEFAULT_THRESHOLD};
use super::relative_speed::Relative;
use super::settings::Setting;
use super::stats::Spread;
use super::summary::{self, CallSummary, NodeSummary, RunBrief, SampleSummary};
use super::warnings::{self, MaxRunsReached};
use crate::profile::Profile;
use crate::train::dataset::DatasetIdentity;
use crate::train::record::{BackendInfo, RunRecord};

/// Format version of the comparison JSON. 2 added, compatibly (version 1 documents
/// still read): latency histograms, where each KB was read back
/// (`correctness.read_back`), idle-level notes and `max_runs_reached`.
pub const SCHEMA_VERSION: u32 = 2;

/// One profile's input to a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRuns {
    /// The resolved profile.
    pub profile: Profile,
    /// The measured repeats, in the order they ran (warm-ups left out).
    pub records: Vec<RunRecord>,
    /// Name counts of the last repeat's KB, one map per level in the order of that
    /// record's `levels` (`kb[0]` is node0): read back from the server's KB (the
    /// record's `kb_check` says from where), else the client's tally. Empty when
    /// unknown; differences are then reported without examples.
    pub kb: Vec<BTreeMap<String, u64>>,
    /// Where each resolved setting came from, by dotted key (`profile::explain`);
    /// empty when rebuilt from run records.
    pub sources: BTreeMap<String, String>,
    /// Set when `--max-runs` ended the runs before `--min-time` was met.
    pub max_runs_reached: Option<MaxRunsReached>,
}

/// The comparison of several profiles over the same samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    pub meta: ReproMeta,
    /// Name of the profile speeds and digests are compared with.
    pub reference: String,
    /// The baseline and threshold of the regression gate, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// In the order they were given.
    pub profiles: Vec<ProfileSummary>,
    /// When the profiles are one profile scanned across values of one setting
    /// (`compare --scan`): the key and the values, in profile order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanAxis>,
    /// Settings whose resolved value is not the same in every profile.
    #[serde(default)]
    pub setting_differences: Vec<SettingDifference>,
    /// Reasons to doubt every figure (a busy machine), see [`super::warnings`].
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One profile in the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub name: String,
    pub description: String,
    /// Hash of the whole resolved profile.
    pub hash: String,
    /// Hash of what decides what is learned.
    pub learning_hash: String,
    /// `kato` or `engine`: the server that received the tuning.
    pub target: String,
    /// Backend kind, URL and the server's name and version (or image id).
    pub backend: BackendInfo,
    /// The corpus, from the last repeat.
    #[serde(default)]
    pub dataset: Option<DatasetIdentity>,
    /// Each measured repeat.
    pub runs: Vec<RunBrief>,
    pub samples_per_second: Spread,
    pub seconds_per_sample: Spread,
    pub tokens_per_second: Spread,
    pub wall_seconds: Spread,
    /// Speed against the reference; `None` when either trained nothing.
    #[serde(default)]
    pub relative: Option<Relative>,
    pub calls: CallSummary,
    pub samples: SampleSummary,
    /// Patterns per node, from the last repeat.
    pub nodes: Vec<NodeSummary>,
    pub correctness: correctness::Correctness,
    /// The server settings this profile sets, explained for its target.
    pub settings: Vec<Setting>,
    /// Reasons to doubt this profile's figures (short runs, high variation, outliers,
    /// nothing trained), see [`super::warnings`].
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The regression gate's verdict, when a baseline was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The resolved profile.
    pub resolved: Profile,
    /// Where each resolved setting came from, by dotted key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// Set when `--max-runs` ended the runs before `--min-time` was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs_reached: Option<MaxRunsReached>,
}

/// The setting a scan varied and its values, one per profile in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanAxis {
    /// Dotted key, e.g. `training.workers` (not named `key`: that field name is
    /// masked as a secret in exports).
    pub setting: String,
    /// The values as written, e.g. `["1", "2", "4"]`.
    pub values: Vec<String>,
}

impl Comparison {
    /// This comparison as a scan over `axis` (profile `i` ran with `axis.values[i]`).
    pub fn with_scan(mut self, axis: Option<ScanAxis>) -> Self {
        self.scan = axis;
        self
    }

    /// Builds the comparison of `inputs` against `inputs[reference]` (the first profile
    /// when `reference` is out of range), gated against `baseline` with `threshold`
    /// ([`DEFAULT_THRESHOLD`] when a baseline comes without one). `meta.dataset` is
    /// taken from the reference's last run when it is `None`.
    pub fn build(
        inputs: Vec<ProfileRuns>,
        reference: usize,
        baseline: Option<&Comparison>,
        threshold: Option<f64>,
        meta: ReproMeta,
    ) -> Comparison {
        let rule = GateRule::with_threshold(threshold.unwrap_or(DEFAULT_THRESHOLD));
        Self::build_with_rule(inputs, reference, baseline, rule, meta)
    }

    /// [`Comparison::build`] with the gate's confidence too.
    pub fn build_with_rule(
        inputs: Vec<ProfileRuns>,
        reference: usize,
        baseline: Option<&Comparison>,
        rule: GateRule,
        mut meta: ReproMeta,
    ) -> Comparison {
        let reference = if reference < inputs.len() {
            reference
        } else {
            0
        };
        let mut profiles: Vec<ProfileSummary> = inputs.iter().map(summary::summarize).collect();
        if let Some(reference_input) = inputs.get(reference) {
            let reference_summary = profiles[reference].clone();
            for (i, (profile, input)) in profiles.iter_mut().zip(&inputs).enumerate() {
                compare_with_reference(
                    profile,
                    input,
                    &reference_summary,
                    reference_input,
                    i == reference,
                );
            }
        }
        let gate = baseline.map(|base| {
            for profile in &mut profiles {
                profile.verdict = Some(regression::judge(profile, base, rule));
            }
            Gate {
                threshold: rule.threshold,
                confidence: rule.confidence,
                baseline_started_at: base.meta.started_at.clone(),
                baseline_git_revision: base.meta.git_revision.clone(),
            }
        });
        if meta.dataset.is_none() {
            meta.dataset = profiles.get(reference).and_then(|p| p.dataset.clone());
        }
        for p in &mut profiles {
            p.warnings = warnings::profile_warnings(p);
        }
        Comparison {
            schema_version: SCHEMA_VERSION,
            warnings: warnings::comparison_warnings(&meta),
            setting_differences: differing_settings(&profiles),
            scan: None,
            meta,
            reference: profiles
                .get(reference)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            gate,
            profiles,
        }
    }

    /// The reference profile's summary.
    pub fn reference_profile(&self) -> Option<&ProfileSummary> {
        self.profiles.iter().find(|p| p.name == self.reference)
    }

    /// Profiles the regression gate failed, with their verdicts.
    pub fn regressions(&self) -> Vec<(&ProfileSummary, &Verdict)> {
        self.profiles
            .iter()
            .filter_map(|p| p.verdict.as_ref().map(|v| (p, v)))
            .filter(|(_, v)| v.status == VerdictStatus::Regressed)
            .collect()
    }

    /// Profiles whose KB differs from the reference's: a batching or parallelism bug
    /// when they train the same data the same way (`Differs`), or an expected change
    /// of settings (`DifferentLearning`) the user must acknowledge (`--allow-kb-diff`);
    /// also profiles whose repeats disagree, or whose KB as read back is not what the
    /// server answered.
    pub fn correctness_failures(&self) -> Vec<&ProfileSummary> {
        self.profiles
            .iter()
            .filter(|p| {
                matches!(
                    p.correctness.status,
                    CheckStatus::Differs | CheckStatus::DifferentLearning
                ) || !p.correctness.repeats_agree
                    || p.correctness.stores_disagree()
            })
            .collect()
    }

    /// "X ran 4.21 ± 0.12 times faster than REF", one line per non-reference profile.
    pub fn relative_sentences(&self) -> Vec<String> {
        self.profiles
            .iter()
            .filter(|p| p.name != self.reference)
            .map(|p| match p.relative {
                Some(r) => r.sentence(&p.name, &self.reference),
                None => format!("{} has no speed ratio: one side trained nothing", p.name),
            })
            .collect()
    }
}

fn compare_with_reference(
    profile: &mut ProfileSummary,
    input: &ProfileRuns,
    reference: &ProfileSummary,
    reference_input: &ProfileRuns,
    is_reference: bool,
) {
    if is_reference {
        profile.relative = (profile.samples_per_second.mean > 0.0).then_some(Relative::REFERENCE);
    } else {
        profile.relative = Relative::of(&profile.samples_per_second, &reference.samples_per_second);
    }
    let (Some(mine), Some(theirs)) = (input.records.last(), reference_input.records.last()) else {
        profile.correctness.status = CheckStatus::NotRun;
        return;
    };
    if is_reference {
        profile.correctness.status = CheckStatus::Reference;
        return;
    }
    profile.correctness.differences = correctness::differences(
        KbSide {
            levels: &mine.kb_levels(),
            kb: &input.kb,
        },
        KbSide {
            levels: &theirs.kb_levels(),
            kb: &reference_input.kb,
        },
    );
    profile.correctness.note = learning_note(profile, reference);
    profile.correctness.status = match (
        &profile.correctness.note,
        profile.correctness.differences.is_empty(),
    ) {
        (_, true) => CheckStatus::Same,
        (Some(_), false) => CheckStatus::DifferentLearning,
        (None, false) => CheckStatus::Differs,
    };
}

/// Why `profile` is not expected to learn what `reference` learned, if it is not.
fn learning_note(profile: &ProfileSummary, reference: &ProfileSummary) -> Option<String> {
    let fingerprint = |p: &ProfileSummary| p.dataset.as_ref().map(|d| d.fingerprint.clone());
    if fingerprint(profile) != fingerprint(reference) {
        return Some(format!(
            "{} trained another dataset than {}",
            profile.name, reference.name
        ));
    }
    (profile.learning_hash != reference.learning_hash).then(|| {
        format!(
            "{} segments or names differently from {} (learning hash {} vs {})",
            profile.name, reference.name, profile.learning_hash, reference.learning_hash
        )
    })
}
