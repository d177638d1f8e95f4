//! One profile's measured repeats reduced to what the comparison shows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::correctness::{self, CheckStatus, Correctness};
use super::model::ProfileRuns;
use super::read_back::ReadBackSummary;
use super::settings::{settings_of, target_label};
use super::stats::Spread;
use super::ProfileSummary;
use crate::kato::metrics::LatencySummary;
use crate::train::record::{BackendInfo, RunRecord, RunStatus};

/// One measured repeat, for reproducing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBrief {
    pub run_id: String,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    pub wall_seconds: f64,
    pub samples_per_second: f64,
    /// The run continued from a journal.
    pub resumed: bool,
}

/// What the KATO client did, over the repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    /// Client calls per trained sample, all endpoints (mean over repeats).
    pub per_sample: f64,
    /// Client calls per trained sample by endpoint (mean over repeats).
    pub per_sample_by_endpoint: BTreeMap<String, f64>,
    /// Percentiles are the mean over repeats; `max_ms` is the slowest of all;
    /// `samples` counts every measured request; `histogram` is every repeat's
    /// distribution added up.
    pub latency: LatencySummary,
    /// Failed calls, summed over repeats.
    pub errors: u64,
    /// Failed calls by class (`connect`, `timeout`, `4xx`...), summed over repeats.
    pub errors_by_class: BTreeMap<String, u64>,
    /// Requests sent again, summed over repeats.
    pub retries: u64,
}

/// Sample outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSummary {
    /// Samples trained to the end in one repeat (the fewest when repeats differ).
    pub done: u64,
    /// Samples whose learns may have reached KATO partly or twice, over all repeats.
    pub at_risk: u64,
    /// Samples that failed, over all repeats.
    pub failed: u64,
    /// Unreadable rows skipped, over all repeats.
    pub skipped: u64,
}

/// What one node learned in the last measured repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub node: String,
    pub chunk_size: usize,
    /// Learns that stored a pattern (names with multiplicity).
    pub learns: u64,
    /// Distinct pattern names.
    pub distinct: u64,
    /// KB digest (SHA-1 over sorted `name count` lines), as read back when it was.
    pub digest: String,
    /// Why this node learned nothing, when it did not (the run record's explanation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything but the parts that need other profiles (relative speed, correctness
/// against the reference, the regression verdict).
pub(crate) fn summarize(runs: &ProfileRuns) -> ProfileSummary {
    let records = &runs.records;
    let last = records.last();
    let measure = |f: fn(&RunRecord) -> f64| Spread::of(&records.iter().map(f).collect::<Vec<_>>());
    ProfileSummary {
        name: runs.profile.name.clone(),
        description: runs.profile.description.clone(),
        hash: runs.profile.hash(),
        learning_hash: runs.profile.learning_hash(),
        target: target_label(&runs.profile).to_string(),
        backend: last.map_or_else(no_backend, |r| r.backend.clone()),
        dataset: last.map(|r| r.dataset.clone()),
        runs: records.iter().map(brief).collect(),
        samples_per_second: measure(|r| r.samples_per_second),
        seconds_per_sample: measure(|r| {
            if r.samples_per_second > 0.0 {
                1.0 / r.samples_per_second
            } else {
                0.0
            }
        }),
        tokens_per_second: measure(|r| r.tokens_per_second),
        wall_seconds: measure(|r| r.wall_seconds),
        relative: None,
        calls: calls(records),
        samples: samples(records),
        nodes: last.map_or_else(Vec::new, |r| r.kb_levels().iter().map(node).collect()),
        correctness: Correctness {
            status: CheckStatus::NotRun,
            differences: Vec::new(),
            note: None,
            repeats_agree: correctness::repeats_agree(
                &records
                    .iter()
                    .map(RunRecord::kb_levels)
                    .collect::<Vec<_>>()
                    .iter()
                    .map(Vec::as_slice)
                    .collect::<Vec<_>>(),
            ),
            read_back: ReadBackSummary::of(records),
        },
        settings: settings_of(&runs.profile),
        warnings: Vec::new(),
        verdict: None,
        resolved: runs.profile.clone(),
        sources: runs.sources.clone(),
        max_runs_reached: runs.max_runs_reached,
    }
}

fn no_backend() -> BackendInfo {
    BackendInfo {
        kind: "none".into(),
        url: String::new(),
        server: String::new(),
        transport: Default::default(),
    }
}

fn brief(r: &RunRecord) -> RunBrief {
    RunBrief {
        run_id: r.run_id.clone(),
        status: r.status,
        started_at: r.started_at.clone(),
        finished_at: r.finished_at.clone(),
        wall_seconds: r.wall_seconds,
        samples_per_second: r.samples_per_second,
        resumed: r.resumed,
    }
}

fn node(level: &crate::train::record::LevelRecord) -> NodeSummary {
    NodeSummary {
        node: level.node.clone(),
        chunk_size: level.chunk_size,
        learns: level.kb.learns,
        distinct: level.kb.distinct,
        digest: level.kb.digest.clone(),
        note: level.note.clone(),
    }
}

fn calls(records: &[RunRecord]) -> CallSummary {
    let n = records.len().max(1) as f64;
    let mut summary = CallSummary::default();
    for r in records {
        for (endpoint, per) in &r.calls_per_sample {
            *summary
                .per_sample_by_endpoint
                .entry(endpoint.clone())
                .or_default() += per / n;
        }
        summary.errors += r.calls.total_errors;
        summary.retries += r.calls.retries;
        for (class, count) in &r.calls.errors_by_class {
            let label = serde_json::to_value(class)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{class:?}"));
            *summary.errors_by_class.entry(label).or_default() += count;
        }
        let l = &r.calls.latency;
        let s = &mut summary.latency;
        s.samples += l.samples;
        s.p50_ms += l.p50_ms / n;
        s.p95_ms += l.p95_ms / n;
        s.p99_ms += l.p99_ms / n;
        s.mean_ms += l.mean_ms / n;
        s.max_ms = s.max_ms.max(l.max_ms);
        match (&mut s.histogram, &l.histogram) {
            (Some(all), Some(h)) => all.merge(h),
            (None, Some(h)) => s.histogram = Some(h.clone()),
            _ => {}
        }
    }
    summary.per_sample = summary.per_sample_by_endpoint.values().sum();
    summary
}

fn samples(records: &[RunRecord]) -> SampleSummary {
    SampleSummary {
        done: records.iter().map(|r| r.samples.done).min().unwrap_or(0),
        at_risk: records.iter().map(|r| r.samples.at_risk.len() as u64).sum(),
        failed: records.iter().map(|r| r.samples.failed.len() as u64).sum(),
        skipped: records.iter().map(|r| r.samples.skipped.len() as u64).sum(),
    }
}
