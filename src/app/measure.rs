//! How a profile is measured in `compare`: whole warm-up runs, then measured runs
//! until the least count and time are met ([`RunPlan`]), each on a fresh stack or on
//! the shared one.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::run::{new_run_id, write_record};
use super::CliResult;
use crate::cli::CompareArgs;
use crate::profile::Profile;
use crate::stack::{KbStart, StackGuard};
use crate::train::journal::Journal;
use crate::train::plan::TrainPlan;
use crate::train::record::{RunRecord, RunStatus};
use crate::train::runner::{self, RunOptions};

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

pub(super) type Measured = (Vec<RunRecord>, Vec<BTreeMap<String, u64>>);

/// Warm-up runs, then measured runs as `plan` says; stops at the first run that did
/// not complete. Returns the measured records and the last run's name counts.
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
            return Ok((vec![record], Vec::new()));
        }
    }
    let (mut records, mut kb) = (Vec::new(), Vec::new());
    let mut seconds = 0.0;
    while plan.wants_more(records.len() as u32, seconds) {
        let run = records.len() + 1;
        let label = format!("{} run {run} (at least {})", ctx.label, plan.min_runs);
        let dir = ctx.out_dir.join(format!("{}-run{run}", ctx.prefix));
        let (record, tallies) =
            measured_run(profile, &label, &dir, ctx, shared.as_deref_mut()).await?;
        write_record(&record, &dir.join("record.json"))?;
        let stopped = record.status != RunStatus::Completed;
        seconds += record.wall_seconds;
        records.push(record);
        kb = tallies.iter().map(|t| t.sorted_counts()).collect();
        if stopped {
            break;
        }
    }
    Ok((records, kb))
}

/// One run (after its warm-up samples) on a fresh stack, or on the shared one. A stack
/// this run brought up is always taken down again ([`StackGuard::scope`]), whatever fails.
async fn measured_run(
    profile: &Profile,
    label: &str,
    dir: &Path,
    ctx: &RunContext<'_>,
    shared: Option<&mut Option<StackGuard>>,
) -> CliResult<(RunRecord, Vec<crate::train::digest::NodeTally>)> {
    let (warmup, cancel) = (ctx.warmup_samples, ctx.cancel);
    noteln!(
        "{label}: provisioning ({} backend)",
        super::output::user_name(&profile.stack.backend)
    );
    let run_id = new_run_id();
    let own = match &shared {
        Some(slot) if slot.is_some() => None,
        _ => Some(StackGuard::up(profile, KbStart::Continue, &run_id, false, cancel).await?),
    };
    let target = match (own.as_ref(), &shared) {
        (Some(g), _) => g.target(),
        (None, Some(slot)) => slot.as_ref().context("shared stack")?.target(),
        (None, None) => unreachable!("a stack is either owned or shared"),
    };
    let work = async {
        let mut measured = profile.clone();
        if warmup > 0 {
            noteln!("{label}: warm-up ({warmup} samples, not counted)");
            let mut warm = profile.clone();
            warm.training.samples = Some(warmup);
            let opts = run_options(&run_id, &dir.join("warmup"), cancel);
            runner::run(&TrainPlan::from(&warm), &target, &opts).await?;
            let journal = Journal::load(&opts.journal_path)?;
            measured.training.skip = journal.next_row;
        }
        noteln!("{label}: training");
        let opts = run_options(&run_id, dir, cancel);
        Ok(runner::run_detailed(&TrainPlan::from(&measured), &target, &opts).await?)
    };
    match (own, shared) {
        // The first run on a shared stack keeps it for the next ones (`compare` takes it
        // down at the end); a failed one still leaves it in the slot to be taken down.
        (Some(g), Some(slot)) => {
            *slot = Some(g);
            work.await
        }
        (Some(g), None) => g.scope(work).await,
        (None, _) => work.await,
    }
}

fn run_options(run_id: &str, dir: &Path, cancel: &CancellationToken) -> RunOptions {
    RunOptions {
        run_id: run_id.to_string(),
        resume: false,
        journal_path: dir.join("journal.json"),
        cancel: cancel.clone(),
        drain_deadline: std::time::Duration::from_secs(30),
        progress_bar: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    }
}
