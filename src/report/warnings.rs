//! Why a figure may not be trusted: runs too short, repeats too noisy, outlying runs,
//! a busy machine, a profile that trained nothing. Printed under the terminal table
//! and in every report; they never change the exit code.

use serde::{Deserialize, Serialize};

use super::meta::ReproMeta;
use super::stats::{self, OUTLIER_Z};
use super::ProfileSummary;
use crate::train::record::RunStatus;

/// A measured run shorter than this (seconds) is dominated by start-up and timer
/// noise rather than training.
pub const SHORT_RUN_SECONDS: f64 = 0.5;

/// A coefficient of variation of samples/s above this (10 %) makes the mean shaky.
pub const HIGH_CV: f64 = 0.10;

/// A 1-minute load average at start above this share of the logical CPUs means other
/// work competed with the measurement.
pub const BUSY_LOAD_PER_CPU: f64 = 0.5;

/// `--max-runs` ended a profile's measured runs before they added up to `--min-time`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MaxRunsReached {
    /// The most runs allowed (`--max-runs`).
    pub max_runs: u32,
    /// Seconds the measured runs lasted, summed.
    pub measured_seconds: f64,
    /// The least measured time asked for (`--min-time`, `report.min_time`), seconds.
    pub min_seconds: f64,
}

impl MaxRunsReached {
    /// What happened and what to do, in one sentence.
    pub fn sentence(&self) -> String {
        format!(
            "--max-runs {} reached after {:.2} s of measured runs, short of the {:.2} s asked \
             (--min-time, report.min_time): the figures rest on less time than asked; raise \
             --max-runs or train more samples per run",
            self.max_runs, self.measured_seconds, self.min_seconds
        )
    }
}

/// One sentence per reason to doubt `p`'s figures.
pub fn profile_warnings(p: &ProfileSummary) -> Vec<String> {
    let mut out = Vec::new();
    if p.samples.done == 0 {
        out.push(format!(
            "{} trained no samples: its speed figures are n/a",
            p.name
        ));
        return out;
    }
    let speeds: Vec<f64> = p
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .map(|r| r.samples_per_second)
        .collect();
    let short = p
        .runs
        .iter()
        .filter(|r| r.wall_seconds < SHORT_RUN_SECONDS)
        .count();
    if short > 0 {
        out.push(format!(
            "{}: {short} of {} runs lasted under {SHORT_RUN_SECONDS} s (mean {:.2} s); start-up \
             weighs on them: train more samples per run (training.samples) or more runs",
            p.name,
            p.runs.len(),
            p.wall_seconds.mean
        ));
    }
    if let Some(cv) = p.samples_per_second.cv().filter(|cv| *cv > HIGH_CV) {
        out.push(format!(
            "{}: samples/s varies by {:.0}% between runs (coefficient of variation above \
             {:.0}%); add runs (--runs, --min-time) or quiet the machine",
            p.name,
            cv * 100.0,
            HIGH_CV * 100.0
        ));
    }
    if let Some(cut) = &p.max_runs_reached {
        out.push(format!("{}: {}", p.name, cut.sentence()));
    }
    let outliers = stats::outliers(&speeds);
    if !outliers.is_empty() {
        let runs: Vec<String> = outliers.iter().map(|i| (i + 1).to_string()).collect();
        out.push(format!(
            "{}: run {} is an outlier (|modified Z-score| > {OUTLIER_Z}); something else may \
             have run meanwhile",
            p.name,
            runs.join(", ")
        ));
    }
    out
}

/// Warnings about the whole comparison: a busy machine at the start.
pub fn comparison_warnings(meta: &ReproMeta) -> Vec<String> {
    let Some(load) = meta.load_average_at_start else {
        return Vec::new();
    };
    let cpus = meta.host.cores.max(1) as f64;
    if load > BUSY_LOAD_PER_CPU * cpus {
        vec![format!(
            "the machine was busy: load average {load:.2} on {} CPUs at the start; \
             figures may be slower and noisier than on a quiet machine",
            meta.host.cores
        )]
    } else {
        Vec::new()
    }
}
