//! The dispatcher: reads the feed, hands samples to the executor, keeps the order of
//! rows (the contiguous prefix of finished rows), decides when a run stops and when a
//! checkpoint is due, and reports every decision as an event to its subscribers: the
//! ledger (journal and row log), the record builder and the progress display.
//!
//! A finished sample is first *staged*; it counts (tallies, journal, row log `D`) only
//! once a checkpoint made it durable (see `checkpoint.rs`).

mod builder;
mod checkpoint;
mod events;
mod executor;
mod ledger;
mod settle;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use builder::RecordBuilder;
pub(super) use builder::{RunFacts, Verdict};
use events::{Event, ProgressReporter, Reporter};
use executor::Executor;
use ledger::Ledger;

use super::durable::{Barrier, Durability};
use super::journal::{Frontier, Journal, RowLog};
use super::outcome::{KbTrust, StopReason};
use super::plan::TrainPlan;
use super::progress::ProgressDisplay;
use super::reader::Feed;
use super::record::{DurabilityInfo, RunRecord, RunStatus, SampleIssue};
use super::runner::RunOptions;
use super::worker::{PreparedSample, SampleResult, Worker};
use crate::terms::OnBadSample;
use crate::train::link::KatoLink;

/// At-risk samples tolerated before the run stops: past this, something is wrong.
const MAX_AT_RISK: usize = 10;

/// Checkpoints behind a barrier are at least this far apart: each one drains the
/// workers and syncs the knowledge base, so on a fast server `checkpoint_every` alone
/// could ask for several a second.
const MIN_CHECKPOINT_SPACING: Duration = Duration::from_secs(1);

/// Checkpoints are also spaced to this many times the last one's duration, so that
/// waiting for them takes at most a tenth of the run: a checkpoint's commit writes
/// every page changed since the last one and syncs the file, which takes longer as the
/// knowledge base outgrows the engine's page cache (measured by `cargo bench --bench
/// kb_scale`: at 20,000 samples, checkpoints every second cut the end rate to 235
/// samples/s, spaced about five seconds apart it was 336).
const CHECKPOINT_SPACING_FACTOR: u32 = 9;

/// The most that [`CHECKPOINT_SPACING_FACTOR`] may space checkpoints: a crash loses at
/// most this much training (plus the checkpoint in progress), and the trainer holds at
/// most this much of finished samples waiting for their checkpoint. Past the page cache
/// a commit writes every B-tree page touched since the last one, so fewer, larger
/// commits write fewer pages per sample: `cargo bench --bench kb_scale` at 100,000
/// samples, capped at 5 s, waited 163 s of 428 s for 55 checkpoints and ended at 0.63
/// of its start rate; capped at 30 s, 49 s of 325 s for 15, ending at 0.77.
const MAX_CHECKPOINT_SPACING: Duration = Duration::from_secs(30);

/// Everything the dispatcher decides with while the run goes on.
pub(super) struct Dispatcher<'a> {
    opts: &'a RunOptions,
    on_bad_sample: OnBadSample,
    checkpoint_every: u64,
    frontier: Frontier,
    /// Samples settled by earlier sessions of this run.
    done_before: u64,
    ledger: Ledger,
    record: RecordBuilder,
    progress: ProgressReporter,
    in_flight: BTreeMap<u64, Arc<PreparedSample>>,
    verdict: Verdict,
    /// The server's checkpoint barrier, when it has one.
    barrier: Option<Barrier>,
    /// Why there is no barrier (for the record).
    durability_note: String,
    /// Samples finished but not yet durable.
    staged: Vec<Staged>,
    /// Samples lost with a restarted server, to train again.
    redo: VecDeque<Arc<PreparedSample>>,
    /// Stop feeding until in-flight samples finish and a checkpoint is taken.
    checkpoint_due: bool,
    /// Checkpoints taken (labels are `RUN_ID/SESSION/N`).
    checkpoints: u64,
    /// When the last checkpoint finished.
    last_checkpoint: std::time::Instant,
    /// When feeding stopped for the checkpoint that is due, if one is.
    due_since: Option<std::time::Instant>,
    /// Time spent on checkpoints, from `due_since` (or the commit's start) to the end.
    checkpoint_wait: Duration,
    /// Least time from one checkpoint to the next: [`MIN_CHECKPOINT_SPACING`], or
    /// [`CHECKPOINT_SPACING_FACTOR`] times the last checkpoint's duration, at most
    /// [`MAX_CHECKPOINT_SPACING`].
    checkpoint_spacing: Duration,
    /// Random per run, so labels never repeat even when run ids do.
    session: String,
}

/// A finished sample waiting for a checkpoint.
struct Staged {
    sample: Arc<PreparedSample>,
    /// `Ok`: trained; `Err`: settled as at risk.
    outcome: Result<SampleResult, SampleIssue>,
}

impl<'a> Dispatcher<'a> {
    pub(super) fn new(
        plan: &TrainPlan,
        journal: Journal,
        opts: &'a RunOptions,
        row_log: RowLog,
        durability: Durability,
    ) -> Self {
        let start_row = journal.next_row;
        let done_before = journal.samples_done;
        let target = plan.sample_target();
        let (barrier, durability_note) = match durability {
            Durability::Barrier(b) => (
                Some(b),
                "katotune's engine: a sample is marked done only after a checkpoint stored it"
                    .to_string(),
            ),
            Durability::Unsupported(why) => (None, why),
        };
        let shard = plan
            .shard
            .map(|s| format!(" shard {s}"))
            .unwrap_or_default();
        let display = ProgressDisplay::new(
            &format!("{}{shard}", plan.profile.name),
            target.map(|t| t.saturating_sub(done_before)),
            opts.progress_bar,
            opts.resume,
        );
        Self {
            opts,
            on_bad_sample: plan.on_bad_sample,
            checkpoint_every: plan.checkpoint_every.max(1),
            frontier: Frontier::starting_at(start_row),
            done_before,
            ledger: Ledger::new(journal, opts.journal_path.clone(), row_log),
            record: RecordBuilder::new(
                plan.chunk_sizes().len(),
                opts.keeps_names(barrier.is_some()),
            ),
            progress: ProgressReporter::new(display),
            in_flight: BTreeMap::new(),
            verdict: Verdict {
                status: RunStatus::Completed,
                stop_reason: None,
                kb_trust: KbTrust::Verified,
            },
            barrier,
            durability_note,
            staged: Vec::new(),
            redo: VecDeque::new(),
            checkpoint_due: false,
            checkpoints: 0,
            last_checkpoint: std::time::Instant::now(),
            checkpoint_spacing: MIN_CHECKPOINT_SPACING,
            due_since: None,
            checkpoint_wait: Duration::ZERO,
            session: format!("{:08x}", rand::random::<u32>()),
        }
    }

    /// Tells every subscriber what happened.
    fn emit(&mut self, event: &Event<'_>) {
        self.ledger.on(event);
        self.record.on(event);
        self.progress.on(event);
    }

    /// A row the previous run left half-way (no barrier): at risk, already in the row
    /// log.
    pub(super) fn previous_at_risk(&mut self, issue: SampleIssue) {
        let event = Event::AtRisk { issue: &issue };
        self.record.on(&event);
        self.progress.on(&event);
    }

    /// Feeds workers, collects outcomes, checkpoints; returns when the corpus is done,
    /// the run failed, or a cancel has drained.
    pub(super) async fn drive(
        &mut self,
        mut feed: mpsc::Receiver<Feed>,
        workers: Vec<Worker>,
        client: &KatoLink,
        reader_stop: CancellationToken,
    ) {
        let capacity = workers.len();
        let (mut executor, mut outcomes) = Executor::start(workers);
        let mut feeding = true;
        let mut deadline: Option<tokio::time::Instant> = None;
        let stop_feeding = |executor: &mut Executor, feeding: &mut bool| {
            *feeding = false;
            reader_stop.cancel();
            executor.close();
        };
        loop {
            let idle = self.in_flight.is_empty();
            let finishing = !feeding && (self.redo.is_empty() || !executor.is_open());
            if idle && (self.checkpoint_due || finishing && !self.staged.is_empty()) {
                self.checkpoint().await;
                if self.verdict.status == RunStatus::Failed && feeding {
                    stop_feeding(&mut executor, &mut feeding);
                }
                continue;
            }
            if idle && finishing {
                break;
            }
            if !self.checkpoint_due && self.in_flight.len() < capacity && executor.is_open() {
                if let Some(sample) = self.redo.pop_front() {
                    self.in_flight.insert(sample.row, sample.clone());
                    executor.submit(sample).await;
                    continue;
                }
            }
            let room = !self.checkpoint_due && self.in_flight.len() < capacity;
            tokio::select! {
                biased;
                _ = self.opts.cancel.cancelled(), if deadline.is_none() => {
                    stop_feeding(&mut executor, &mut feeding);
                    self.stop(RunStatus::Interrupted, StopReason::Interrupted);
                    deadline = Some(tokio::time::Instant::now() + self.opts.drain_deadline);
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.abandon_in_flight();
                    executor.abort();
                    break;
                }
                Some(outcome) = outcomes.recv() => {
                    self.settle(outcome);
                    if self.verdict.status == RunStatus::Failed && feeding {
                        stop_feeding(&mut executor, &mut feeding);
                    }
                }
                item = feed.recv(), if feeding && room => match item {
                    None => feeding = false,
                    Some(item) => {
                        if !self.accept(item, &executor).await {
                            stop_feeding(&mut executor, &mut feeding);
                        }
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            self.progress.tick(client);
        }
        executor.join().await;
        self.finish_checkpoints().await;
        self.save_journal();
        self.ledger.finish().await;
        self.progress.finish();
    }

    /// Samples settled over every session of the run.
    fn samples_done(&self) -> u64 {
        self.done_before + self.record.settled()
    }

    fn save_journal(&mut self) {
        let (next, done) = (self.frontier.next_row(), self.samples_done());
        self.ledger.save(next, done, &self.opts.run_id);
    }

    /// Whether the record's tallies hold every learned name (else learns only, and the
    /// digests must be read from the knowledge base).
    pub(super) fn keeps_names(&self) -> bool {
        self.record.keeps_names()
    }

    /// The barrier, to read the knowledge base's digests after the run.
    pub(super) fn barrier(&self) -> Option<&Barrier> {
        self.barrier.as_ref()
    }

    /// The run record, and every node's learned names with counts over the durable
    /// samples (moved out, not copied: at 100,000 samples they are most of the
    /// trainer's memory); `facts.resumed` and `facts.durability` are filled in here.
    pub(super) fn into_record(
        self,
        mut facts: RunFacts<'_>,
    ) -> (RunRecord, Vec<crate::train::digest::NodeTally>) {
        facts.resumed = self.done_before > 0 || self.opts.resume;
        facts.durability = DurabilityInfo {
            guaranteed: self.barrier.is_some(),
            note: self.durability_note,
            digests_from_kb: false,
            checkpoints: self.checkpoints,
            checkpoint_wait_seconds: self.checkpoint_wait.as_secs_f64(),
        };
        self.record.into_record(self.verdict, facts)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
