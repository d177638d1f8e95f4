//! The dispatcher: feeds workers, collects their outcomes in any order, keeps the
//! contiguous prefix of finished rows, the journal and the row log, the progress
//! display and Ctrl-C, and finally turns it all into the run record.
//!
//! A finished sample is first *staged*; it counts (tallies, journal, row log `D`) only
//! once a checkpoint made it durable (see `checkpoint.rs`).

mod checkpoint;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::digest::NodeTally;
use super::durable::{Barrier, Durability};
use super::hierarchy::{min_node0_chunks, receptive_field, LevelCounts, TailPolicy};
use super::journal::{Frontier, Journal, RowLog, RowState};
use super::outcome::{KbTrust, StopReason};
use super::progress::ProgressDisplay;
use super::reader::Feed;
use super::record::{
    DurabilityInfo, LevelRecord, ProfileInfo, RunRecord, RunStatus, SampleCounts, SampleIssue,
    RECORD_VERSION,
};
use super::runner::{now, RunOptions, Target};
use super::segment::SegmentCounts;
use super::worker::SampleError;
use super::worker::{PreparedSample, SampleFailure, SampleResult, Worker};
use crate::kato::client::KatoClient;
use crate::profile::schema::OnBadSample;
use crate::profile::Profile;

/// At-risk samples tolerated before the run stops: past this, something is wrong.
const MAX_AT_RISK: usize = 10;

/// Checkpoints behind a barrier are at least this far apart: each one drains the
/// workers and syncs the knowledge base, so on a fast server `checkpoint_every` alone
/// could ask for several a second. A crash loses at most this much training.
const MIN_CHECKPOINT_SPACING: Duration = Duration::from_secs(1);

type Outcome = (PreparedSample, Result<SampleResult, SampleFailure>);

/// Everything the dispatcher tracks while the run goes on.
pub(super) struct RunState<'a> {
    opts: &'a RunOptions,
    profile_name: String,
    on_bad_sample: OnBadSample,
    checkpoint_every: u64,
    frontier: Frontier,
    journal: Journal,
    pub(super) tallies: Vec<NodeTally>,
    counts: Vec<LevelCounts>,
    pub(super) samples: SampleCounts,
    done_before: u64,
    tokens: u64,
    in_flight: BTreeMap<u64, PreparedSample>,
    status: RunStatus,
    stop_reason: Option<StopReason>,
    kb_trust: KbTrust,
    progress: ProgressDisplay,
    row_log: RowLog,
    /// The server's checkpoint barrier, when it has one.
    barrier: Option<Barrier>,
    /// Why there is no barrier (for the record).
    durability_note: String,
    /// Samples finished but not yet durable.
    staged: Vec<Staged>,
    /// Samples lost with a restarted server, to train again.
    redo: VecDeque<PreparedSample>,
    /// Stop feeding until in-flight samples finish and a checkpoint is taken.
    checkpoint_due: bool,
    /// Checkpoints taken (labels are `RUN_ID/SESSION/N`).
    checkpoints: u64,
    /// When the last checkpoint was taken.
    last_checkpoint: std::time::Instant,
    /// Random per run, so labels never repeat even when run ids do.
    session: String,
}

/// A finished sample waiting for a checkpoint.
struct Staged {
    sample: PreparedSample,
    /// `Ok`: trained; `Err`: settled as at risk.
    outcome: Result<SampleResult, SampleIssue>,
}

impl<'a> RunState<'a> {
    pub(super) fn new(
        profile: &Profile,
        journal: Journal,
        opts: &'a RunOptions,
        row_log: RowLog,
        durability: Durability,
    ) -> Self {
        let levels = profile.training.chunk_sizes.len();
        let resumed = opts.resume;
        let start_row = journal.next_row;
        let done_before = journal.samples_done;
        let target = profile.training.samples;
        let (barrier, durability_note) = match durability {
            Durability::Barrier(b) => (
                Some(b),
                "katotune's engine: a sample is marked done only after a checkpoint stored it"
                    .to_string(),
            ),
            Durability::Unsupported(why) => (None, why),
        };
        Self {
            opts,
            profile_name: profile.name.clone(),
            on_bad_sample: profile.training.on_bad_sample,
            checkpoint_every: profile.training.checkpoint_every.max(1),
            frontier: Frontier::starting_at(start_row),
            journal,
            tallies: vec![NodeTally::default(); levels],
            counts: vec![LevelCounts::default(); levels],
            samples: SampleCounts::default(),
            done_before,
            tokens: 0,
            in_flight: BTreeMap::new(),
            status: RunStatus::Completed,
            stop_reason: None,
            kb_trust: KbTrust::Verified,
            row_log,
            barrier,
            durability_note,
            staged: Vec::new(),
            redo: VecDeque::new(),
            checkpoint_due: false,
            checkpoints: 0,
            last_checkpoint: std::time::Instant::now(),
            session: format!("{:08x}", rand::random::<u32>()),
            progress: ProgressDisplay::new(
                &profile.name,
                target.map(|t| t.saturating_sub(done_before)),
                opts.progress_bar,
                resumed,
            ),
        }
    }

    /// Feeds workers, collects outcomes, writes the journal; returns when the corpus
    /// is done, the run failed, or a cancel has drained.
    pub(super) async fn drive(
        &mut self,
        mut feed: mpsc::Receiver<Feed>,
        workers: Vec<Worker>,
        client: &KatoClient,
        reader_stop: CancellationToken,
    ) {
        let capacity = workers.len();
        let (work_tx, work_rx) = mpsc::channel::<PreparedSample>(capacity);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (out_tx, mut out_rx) = mpsc::channel::<Outcome>(capacity * 2);
        let mut handles = Vec::new();
        for mut worker in workers {
            let rx = work_rx.clone();
            let tx = out_tx.clone();
            handles.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(sample) = next else { break };
                    let result = worker.train(&sample).await;
                    if tx.send((sample, result)).await.is_err() {
                        break;
                    }
                }
                worker.close().await;
            }));
        }
        drop(out_tx);
        let mut feeding = true;
        let mut work_tx = Some(work_tx);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let idle = self.in_flight.is_empty();
            let finishing = !feeding && (self.redo.is_empty() || work_tx.is_none());
            if idle && (self.checkpoint_due || finishing && !self.staged.is_empty()) {
                self.checkpoint().await;
                if self.status == RunStatus::Failed && feeding {
                    feeding = false;
                    reader_stop.cancel();
                    work_tx = None;
                }
                continue;
            }
            if idle && finishing {
                break;
            }
            if !self.checkpoint_due && self.in_flight.len() < capacity {
                if let (Some(work), Some(sample)) = (work_tx.as_ref(), self.redo.pop_front()) {
                    self.in_flight.insert(sample.row, sample.clone());
                    let _ = work.send(sample).await;
                    continue;
                }
            }
            tokio::select! {
                biased;
                _ = self.opts.cancel.cancelled(), if deadline.is_none() => {
                    feeding = false;
                    reader_stop.cancel();
                    work_tx = None;
                    self.stop(RunStatus::Interrupted, StopReason::Interrupted);
                    deadline = Some(tokio::time::Instant::now() + self.opts.drain_deadline);
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.abandon_in_flight();
                    for h in &handles { h.abort(); }
                    break;
                }
                Some((sample, result)) = out_rx.recv() => {
                    self.settle(sample, result);
                    if self.status == RunStatus::Failed && feeding {
                        feeding = false;
                        reader_stop.cancel();
                        work_tx = None;
                    }
                }
                item = feed.recv(), if feeding && !self.checkpoint_due && self.in_flight.len() < capacity => match item {
                    None => { feeding = false; }
                    Some(item) => {
                        if !self.accept(item, work_tx.as_ref()).await {
                            feeding = false;
                            reader_stop.cancel();
                            work_tx = None;
                        }
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let settled = self.samples.done + self.staged.len() as u64;
            self.progress
                .tick(settled, self.samples.at_risk.len() as u64, || {
                    client.metrics_snapshot().latency.p95_ms
                });
        }
        drop(work_tx);
        for h in handles {
            let _ = h.await;
        }
        self.finish_checkpoints().await;
        self.save_journal();
        self.progress.finish();
    }

    /// Takes one item from the reader; false stops feeding.
    async fn accept(&mut self, item: Feed, work: Option<&mpsc::Sender<PreparedSample>>) -> bool {
        match item {
            Feed::Filtered(row) => {
                self.samples.filtered += 1;
                self.frontier.settled(row);
                true
            }
            Feed::Settled(row) => {
                self.frontier.settled(row);
                true
            }
            Feed::Bad(bad) => {
                let issue = SampleIssue {
                    row: bad.row,
                    origin: bad.origin.clone(),
                    reason: bad.reason.to_string(),
                };
                if self.on_bad_sample == OnBadSample::Skip && !bad.is_fatal() {
                    tracing::warn!("skipping {bad}");
                    self.journal.skipped_rows.push(bad.row);
                    self.samples.skipped.push(issue);
                    self.frontier.settled(bad.row);
                    true
                } else {
                    let hint = (!bad.is_fatal()).then(|| {
                        "set training.on_bad_sample: skip to go on past bad rows".to_string()
                    });
                    let reason = StopReason::BadData {
                        row: bad.row,
                        origin: issue.origin,
                        reason: issue.reason,
                        hint,
                    };
                    self.stop(RunStatus::Failed, reason);
                    false
                }
            }
            Feed::Sample(sample) => {
                let Some(work) = work else { return false };
                self.frontier.dispatched(sample.row);
                self.row_log.record(sample.row, RowState::Started);
                self.in_flight.insert(sample.row, sample.clone());
                work.send(sample).await.is_ok()
            }
        }
    }

    fn settle(&mut self, sample: PreparedSample, result: Result<SampleResult, SampleFailure>) {
        self.in_flight.remove(&sample.row);
        let outcome = match result {
            Ok(r) => Ok(r),
            Err(failure) => {
                let issue = SampleIssue {
                    row: sample.row,
                    origin: sample.origin.clone(),
                    reason: failure.error.to_string(),
                };
                if let SampleError::WrongName(wrong) = failure.error {
                    tracing::error!(
                        "sample {} taught the server a wrongly named pattern",
                        sample.origin
                    );
                    self.kb_trust = KbTrust::Untrusted;
                    let reason = StopReason::WrongName {
                        row: sample.row,
                        origin: sample.origin.clone(),
                        node: wrong.node,
                        expected: wrong.expected,
                        got: wrong.got,
                    };
                    self.stop(RunStatus::Failed, reason);
                    Err(issue)
                } else if failure.at_risk {
                    tracing::error!(
                        "sample {} is at risk (its learns may have reached KATO partly): {}",
                        sample.origin,
                        failure.error
                    );
                    Err(issue)
                } else {
                    self.samples.failed.push(issue);
                    self.row_log.record(sample.row, RowState::Failed);
                    let reason = StopReason::SampleFailed {
                        row: sample.row,
                        origin: sample.origin.clone(),
                        error: failure.error.to_string(),
                    };
                    self.stop(RunStatus::Failed, reason);
                    return;
                }
            }
        };
        self.staged.push(Staged { sample, outcome });
        if self.barrier.is_some() {
            self.checkpoint_due |= self.staged.len() as u64 >= self.checkpoint_every
                && self.last_checkpoint.elapsed() >= MIN_CHECKPOINT_SPACING;
            return;
        }
        // No barrier: what the server acknowledged is all there is to know.
        self.confirm_staged();
        let settled = self.samples.done + self.samples.at_risk.len() as u64;
        if settled.is_multiple_of(self.checkpoint_every) {
            self.save_journal();
        }
    }

    fn abandon_in_flight(&mut self) {
        for (row, sample) in std::mem::take(&mut self.in_flight) {
            let issue = SampleIssue {
                row,
                origin: sample.origin.clone(),
                reason: "abandoned at the Ctrl-C deadline while training".into(),
            };
            self.staged.push(Staged {
                sample,
                outcome: Err(issue),
            });
        }
        if self.barrier.is_none() {
            self.confirm_staged();
        }
    }

    /// Records why the run stops; the first reason wins, except that a wrong name
    /// (the KB cannot be trusted) wins over anything else.
    fn stop(&mut self, status: RunStatus, reason: StopReason) {
        let wrong = |r: &StopReason| matches!(r, StopReason::WrongName { .. });
        let overrides = wrong(&reason) && !self.stop_reason.as_ref().is_some_and(wrong);
        if self.status == RunStatus::Completed || overrides {
            self.status = status;
            self.stop_reason = Some(reason);
        }
    }

    fn save_journal(&mut self) {
        self.journal.next_row = self.frontier.next_row();
        self.journal.samples_done =
            self.done_before + self.samples.done + self.samples.at_risk.len() as u64;
        self.journal.updated_at = now();
        self.journal.run_id = self.opts.run_id.clone();
        if let Err(e) = self.journal.save(&self.opts.journal_path) {
            tracing::error!("{e}");
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn into_record(
        self,
        profile: &Profile,
        target: &Target,
        dataset: super::dataset::DatasetIdentity,
        learning_hash: String,
        started_at: String,
        wall: f64,
        calls: crate::kato::metrics::MetricsSnapshot,
        segmentation: SegmentCounts,
    ) -> RunRecord {
        // With no sample trained there is no per-sample figure: the map stays empty
        // (n/a), rather than dividing by a made-up one.
        let done = self.samples.done as f64;
        let calls_per_sample = calls
            .endpoints
            .iter()
            .filter(|_| done > 0.0)
            .map(|(e, s)| (e.label().to_string(), s.calls as f64 / done))
            .collect();
        let levels = level_records(profile, &self.tallies, &self.counts);
        RunRecord {
            version: RECORD_VERSION,
            katotune_version: env!("CARGO_PKG_VERSION").into(),
            run_id: self.opts.run_id.clone(),
            status: self.status,
            stop_reason: self.stop_reason,
            kb_trust: self.kb_trust,
            profile: ProfileInfo {
                name: self.profile_name,
                hash: profile.hash(),
                learning_hash,
                resolved: profile.clone(),
            },
            backend: target.backend.clone(),
            dataset,
            started_at,
            finished_at: now(),
            wall_seconds: wall,
            resumed: self.done_before > 0 || self.opts.resume,
            samples_per_second: self.samples.done as f64 / wall.max(1e-9),
            tokens_per_second: self.tokens as f64 / wall.max(1e-9),
            samples: self.samples,
            tokens: self.tokens,
            calls_per_sample,
            calls,
            segmentation,
            levels,
            durability: DurabilityInfo {
                guaranteed: self.barrier.is_some(),
                note: self.durability_note,
                digests_from_kb: false,
            },
            delivery: None,
        }
    }

    /// The barrier, to read the knowledge base's digests after the run.
    pub(super) fn barrier(&self) -> Option<&Barrier> {
        self.barrier.as_ref()
    }
}

fn level_records(
    profile: &Profile,
    tallies: &[NodeTally],
    counts: &[LevelCounts],
) -> Vec<LevelRecord> {
    let sizes = &profile.training.chunk_sizes;
    let anything = tallies.iter().any(|t| t.learns() > 0);
    (0..sizes.len())
        .map(|level| {
            let kb = tallies[level].digest();
            let field = receptive_field(sizes, level);
            let note = (kb.learns == 0 && anything).then(|| idle_level_note(sizes, level));
            LevelRecord {
                node: profile.node_id(level),
                chunk_size: sizes[level],
                requests: if level == 0 {
                    kb.learns + counts[0].empty
                } else {
                    counts[level].requests
                },
                dropped: counts.get(level).map_or(0, |c| c.dropped),
                receptive_field: field,
                kb,
                note,
            }
        })
        .collect()
}

/// Why a level learned nothing: no sample was long enough to give it two names.
fn idle_level_note(sizes: &[usize], level: usize) -> String {
    let field = receptive_field(sizes, level);
    match min_node0_chunks(&sizes[1..], level, TailPolicy::LearnIfAtLeastTwo) {
        Some(chunks) => format!(
            "learned nothing: a sample needs about {} tokens ({chunks} node0 chunks) to give this level \
             the 2 names it learns from; a full pattern here spans {field} tokens",
            chunks * sizes[0] as u64
        ),
        None => format!("learned nothing: a full pattern here spans {field} tokens"),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
