//! One CSV row per profile with raw numbers, for spreadsheets and scripts.

use serde::Serialize;

use super::{ExportError, Exporter};
use crate::report::{Comparison, ProfileSummary};

/// CSV with a header row and one row per profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvExporter;

#[derive(Serialize)]
struct Row<'a> {
    profile: &'a str,
    reference: bool,
    runs: usize,
    samples_per_second_mean: f64,
    samples_per_second_stddev: Option<f64>,
    samples_per_second_min: f64,
    samples_per_second_max: f64,
    seconds_per_sample_mean: f64,
    seconds_per_sample_stddev: Option<f64>,
    tokens_per_second_mean: f64,
    tokens_per_second_stddev: Option<f64>,
    relative: Option<f64>,
    relative_uncertainty: Option<f64>,
    calls_per_sample: f64,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    errors: u64,
    retries: u64,
    samples_done: u64,
    samples_at_risk: u64,
    samples_failed: u64,
    kb_check: &'a str,
    differing_nodes: String,
    verdict: &'a str,
    target: &'a str,
    backend: &'a str,
    server: &'a str,
    profile_hash: &'a str,
    learning_hash: &'a str,
}

impl Exporter for CsvExporter {
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError> {
        let mut writer = ::csv::Writer::from_writer(Vec::new());
        for profile in &comparison.profiles {
            writer.serialize(row(profile, &comparison.reference))?;
        }
        writer
            .into_inner()
            .map_err(|e| ExportError::Csv(e.into_error().into()))
    }
}

fn row<'a>(p: &'a ProfileSummary, reference: &str) -> Row<'a> {
    let verdict = p.verdict.as_ref().map_or("", |v| v.status.key());
    let latency = &p.calls.latency;
    Row {
        profile: &p.name,
        reference: p.name == reference,
        runs: p.runs.len(),
        samples_per_second_mean: p.samples_per_second.mean,
        samples_per_second_stddev: p.samples_per_second.stddev,
        samples_per_second_min: p.samples_per_second.min,
        samples_per_second_max: p.samples_per_second.max,
        seconds_per_sample_mean: p.seconds_per_sample.mean,
        seconds_per_sample_stddev: p.seconds_per_sample.stddev,
        tokens_per_second_mean: p.tokens_per_second.mean,
        tokens_per_second_stddev: p.tokens_per_second.stddev,
        relative: p.relative.map(|r| r.ratio),
        relative_uncertainty: p.relative.and_then(|r| r.uncertainty),
        calls_per_sample: p.calls.per_sample,
        latency_p50_ms: latency.p50_ms,
        latency_p95_ms: latency.p95_ms,
        latency_p99_ms: latency.p99_ms,
        latency_max_ms: latency.max_ms,
        errors: p.calls.errors,
        retries: p.calls.retries,
        samples_done: p.samples.done,
        samples_at_risk: p.samples.at_risk,
        samples_failed: p.samples.failed,
        kb_check: p.correctness.status.key(),
        differing_nodes: p
            .correctness
            .differences
            .iter()
            .map(|d| d.node.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        verdict,
        target: &p.target,
        backend: &p.backend.kind,
        server: &p.backend.server,
        profile_hash: &p.hash,
        learning_hash: &p.learning_hash,
    }
}
