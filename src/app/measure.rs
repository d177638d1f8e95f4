//! How a profile is measured in `compare`: whole warm-up runs, then measured runs
//! until the least count and time are met ([`RunPlan`]), each on a clean knowledge base
//! (see [`super::measured_run`]).

use std::collections::BTreeMap;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::measured_run::measured_run;
use super::run::write_record;
use super::CliResult;
use crate::cli::CompareArgs;
use crate::profile::Profile;
use crate::report::warnings::MaxRunsReached;
use crate::stack::StackGuard;
use crate::train::record::{RunRecord, RunStatus};

/// How many runs a profile gets: warm-ups, then measured runs until both the least
/// count and the least summed wall time are met, but never more than `max_runs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunPlan {
    /// Whole runs before the measured ones, not counted.
    pub warmup_runs: u32,
    pub min_runs: u32,
    pub min_seconds: f64,
    pub max_runs: u32,
}

impl RunPlan {
    /// Flags first, then the profile's `report.min_runs` and `report.min_time`.
    pub(super) fn of(args: &CompareArgs, profile: &Profile) -> Self {
        let min_runs = args.runs.unwrap_or(profile.report.min_runs).max(1);
        Self {
            warmup_runs: args.warmup,
            min_runs,
            min_seconds: args
                .min_time
                .unwrap_or(profile.report.min_time)
                .as_secs_f64(),
            max_runs: args.max_runs.max(min_runs),
        }
    }

    /// Whether another measured run is due after `runs` runs of `seconds` in all.
    pub fn wants_more(&self, runs: u32, seconds: f64) -> bool {
        runs < self.min_runs || (seconds < self.min_seconds && runs < self.max_runs)
    }

    /// When `runs` runs of `seconds` in all stopped only because `max_runs` was
    /// reached, short of `min_seconds`: what to tell the user.
    pub fn cut_short(&self, runs: u32, seconds: f64) -> Option<MaxRunsReached> {
        (runs >= self.max_runs && seconds < self.min_seconds).then_some(MaxRunsReached {
            max_runs: self.max_runs,
            measured_seconds: seconds,
            min_seconds: self.min_seconds,
        })
    }
}

/// What every run of one profile shares.
pub(super) struct RunContext<'a> {
    pub label: String,
    /// Folder-name prefix of this profile's runs, unique within the comparison (a
    /// profile compared with itself keeps both sets of records).
    pub prefix: String,
    pub out_dir: &'a Path,
    pub warmup_samples: u64,
    pub cancel: &'a CancellationToken,
}

/// One profile's measured runs.
pub(super) struct Measured {
    /// The measured records, in order (warm-up runs left out).
    pub records: Vec<RunRecord>,
    /// The last run's name counts per level: read back from its KB, else tallied.
    pub kb: Vec<BTreeMap<String, u64>>,
    /// Set when `--max-runs` ended the runs before `--min-time` was met.
    pub max_runs_reached: Option<MaxRunsReached>,
}

/// Warm-up runs, then measured runs as `plan` says; stops at the first run that did
/// not complete, and says so when `--max-runs` stopped the runs short of the time.
pub(super) async fn measure_profile(
    profile: &Profile,
    plan: &RunPlan,
    ctx: &RunContext<'_>,
    mut shared: Option<&mut Option<StackGuard>>,
) -> CliResult<Measured> {
    for w in 0..plan.warmup_runs {
        let label = format!("{} warm-up run {}/{}", ctx.label, w + 1, plan.warmup_runs);
        let dir = ctx.out_dir.join(format!("{}-warmup{}", ctx.prefix, w + 1));
        let (record, _) = measured_run(profile, &label, &dir, ctx, shared.as_deref_mut()).await?;
        if record.status != RunStatus::Completed {
            return Ok(Measured {
                records: vec![record],
                kb: Vec::new(),
                max_runs_reached: None,
            });
        }
    }
    let (mut records, mut kb) = (Vec::new(), Vec::new());
    let mut seconds = 0.0;
    let mut stopped = false;
    while !stopped && plan.wants_more(records.len() as u32, seconds) {
        let run = records.len() + 1;
        let label = format!("{} run {run} (at least {})", ctx.label, plan.min_runs);
        let dir = ctx.out_dir.join(format!("{}-run{run}", ctx.prefix));
        let (record, names) =
            measured_run(profile, &label, &dir, ctx, shared.as_deref_mut()).await?;
        write_record(&record, &dir.join("record.json"))?;
        stopped = record.status != RunStatus::Completed;
        seconds += record.wall_seconds;
        records.push(record);
        kb = names;
    }
    let max_runs_reached = match stopped {
        true => None,
        false => plan.cut_short(records.len() as u32, seconds),
    };
    if let Some(cut) = &max_runs_reached {
        noteln!("{}: {}", ctx.label, cut.sentence());
    }
    Ok(Measured {
        records,
        kb,
        max_runs_reached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RunPlan {
        RunPlan {
            warmup_runs: 0,
            min_runs: 3,
            min_seconds: 3.0,
            max_runs: 5,
        }
    }

    #[test]
    fn max_runs_reached_short_of_the_time_is_said() {
        let cut = plan().cut_short(5, 1.25).expect("cut short");
        assert_eq!(cut.max_runs, 5);
        assert!(
            cut.sentence().contains("--max-runs 5"),
            "{}",
            cut.sentence()
        );
        assert!(cut.sentence().contains("1.25 s"), "{}", cut.sentence());
    }

    #[test]
    fn enough_time_or_runs_left_is_not_cut_short() {
        assert!(plan().cut_short(5, 3.5).is_none(), "the time was met");
        assert!(plan().cut_short(3, 3.5).is_none(), "stopped by the time");
        assert!(!plan().wants_more(5, 1.0), "max runs ends the loop");
    }
}
