//! The dispatcher: feeds workers, collects their outcomes in any order, keeps the
//! contiguous prefix of finished rows, the journal and the row log, the progress
//! display and Ctrl-C, and finally turns it all into the run record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::digest::NodeTally;
use super::hierarchy::{min_node0_chunks, receptive_field, LevelCounts, TailPolicy};
use super::journal::{Frontier, Journal, RowLog, RowState, JOURNAL_VERSION};
use super::outcome::{KbTrust, StopReason};
use super::progress::ProgressDisplay;
use super::reader::Feed;
use super::record::{
    LevelRecord, ProfileInfo, RunRecord, RunStatus, SampleCounts, SampleIssue, RECORD_VERSION,
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
}

impl<'a> RunState<'a> {
    pub(super) fn new(
        profile: &Profile,
        start_row: u64,
        journal: Option<Journal>,
        opts: &'a RunOptions,
        identity: &super::dataset::DatasetIdentity,
        learning_hash: &str,
        row_log: RowLog,
    ) -> Self {
        let levels = profile.training.chunk_sizes.len();
        let resumed = journal.is_some();
        let journal = journal.unwrap_or_else(|| Journal {
            version: JOURNAL_VERSION,
            profile: profile.name.clone(),
            learning_hash: learning_hash.to_string(),
            dataset: identity.clone(),
            next_row: start_row,
            samples_done: 0,
            at_risk_rows: Vec::new(),
            skipped_rows: Vec::new(),
            run_id: opts.run_id.clone(),
            updated_at: now(),
        });
        let done_before = journal.samples_done;
        let target = profile.training.samples;
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
            if !feeding && self.in_flight.is_empty() {
                break;
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
                item = feed.recv(), if feeding && self.in_flight.len() < capacity => match item {
                    None => { feeding = false; work_tx = None; }
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
            self.progress
                .tick(self.samples.done, self.samples.at_risk.len() as u64, || {
                    client.metrics_snapshot().latency.p95_ms
                });
        }
        drop(work_tx);
        for h in handles {
            let _ = h.await;
        }
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
        match result {
            Ok(r) => {
                for (total, t) in self.tallies.iter_mut().zip(r.tallies) {
                    total.merge(t);
                }
                for (total, c) in self.counts.iter_mut().zip(&r.counts) {
                    total.add(c);
                }
                self.tokens += sample.tokens;
                self.samples.done += 1;
                self.row_log.record(sample.row, RowState::Done);
                self.frontier.completed(sample.row);
            }
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
                    self.journal.at_risk_rows.push(sample.row);
                    self.samples.at_risk.push(issue);
                    self.row_log.record(sample.row, RowState::AtRisk);
                    self.frontier.completed(sample.row);
                    let reason = StopReason::WrongName {
                        row: sample.row,
                        origin: sample.origin,
                        node: wrong.node,
                        expected: wrong.expected,
                        got: wrong.got,
                    };
                    self.stop(RunStatus::Failed, reason);
                } else if failure.at_risk {
                    tracing::error!(
                        "sample {} is at risk (its learns may have reached KATO partly): {}",
                        sample.origin,
                        failure.error
                    );
                    self.journal.at_risk_rows.push(sample.row);
                    self.samples.at_risk.push(issue);
                    self.row_log.record(sample.row, RowState::AtRisk);
                    self.frontier.completed(sample.row);
                    if self.samples.at_risk.len() > MAX_AT_RISK {
                        let last = failure.error.to_string();
                        let reason = StopReason::TooManyAtRisk {
                            limit: MAX_AT_RISK,
                            last,
                        };
                        self.stop(RunStatus::Failed, reason);
                    }
                } else {
                    self.samples.failed.push(issue);
                    self.row_log.record(sample.row, RowState::Failed);
                    let reason = StopReason::SampleFailed {
                        row: sample.row,
                        origin: sample.origin.clone(),
                        error: failure.error.to_string(),
                    };
                    self.stop(RunStatus::Failed, reason);
                }
            }
        }
        let settled = self.samples.done + self.samples.at_risk.len() as u64;
        if settled.is_multiple_of(self.checkpoint_every) {
            self.save_journal();
        }
    }

    fn abandon_in_flight(&mut self) {
        for (row, sample) in std::mem::take(&mut self.in_flight) {
            self.journal.at_risk_rows.push(row);
            self.row_log.record(row, RowState::AtRisk);
            self.samples.at_risk.push(SampleIssue {
                row,
                origin: sample.origin,
                reason: "abandoned at the Ctrl-C deadline while training".into(),
            });
            self.frontier.completed(row);
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
        }
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
