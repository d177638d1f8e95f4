//! The training run: a bounded pipeline from the corpus to KATO.
//!
//! A reader thread reads raw rows lazily, filters and tokenizes them, and cuts each
//! sample into node0 chunks; N async workers, each with its own sessions, train one
//! sample at a time; this task (the dispatcher) owns the order of rows, the resume
//! journal, progress and Ctrl-C. Channels are bounded, so memory stays flat however
//! large the corpus is.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::dataset::{passes_reference_filter, BadSample, Dataset, DatasetError, DatasetSpec};
use super::digest::NodeTally;
use super::hierarchy::{min_node0_chunks, receptive_field, Flow, LevelCounts, TailPolicy};
use super::journal::{Frontier, Journal, JournalError, RowLog, RowState, JOURNAL_VERSION};
use super::progress::ProgressDisplay;
use super::record::{
    BackendInfo, LevelRecord, ProfileInfo, RunRecord, RunStatus, SampleCounts, SampleIssue,
    RECORD_VERSION,
};
use super::segment::{SegmentCounts, Segmenter};
use super::tokenizer::Gpt2Tokenizer;
use super::worker::{PreparedSample, SampleFailure, SampleResult, TrainSettings, Worker};
use crate::kato::client::{ClientConfig, KatoClient, RetryPolicy};
use crate::kato::error::KatoError;
use crate::profile::schema::{MetadataPolicy, OnBadSample, SampleFilter, Segmentation};
use crate::profile::Profile;

/// At-risk samples tolerated before the run stops: past this, something is wrong.
const MAX_AT_RISK: usize = 10;

/// How a run is carried out (beyond the profile).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub run_id: String,
    /// Continue from the journal instead of starting at `training.skip`.
    pub resume: bool,
    pub journal_path: PathBuf,
    /// Cancelled on Ctrl-C: stop feeding, let in-flight samples finish.
    pub cancel: CancellationToken,
    /// How long in-flight samples may take to finish after a cancel.
    pub drain_deadline: Duration,
    /// Draw a progress bar (a terminal) or log lines (otherwise).
    pub progress_bar: bool,
}

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub backend: BackendInfo,
}

/// What stops a run before it trains anything.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot load the GPT-2 tokenizer: {0}")]
    Tokenizer(String),
    #[error("cannot start training against {url}: {source}")]
    Start { url: String, source: KatoError },
}

enum Feed {
    Sample(PreparedSample),
    Filtered(u64),
    /// Settled by an earlier run (resume).
    Settled(u64),
    Bad(BadSample),
}

type Outcome = (PreparedSample, Result<SampleResult, SampleFailure>);

/// Opens the profile's dataset (and nothing else), so a bad path or format is
/// reported before any stack is started.
pub fn check_dataset(profile: &Profile) -> Result<(), DatasetError> {
    Dataset::open(&dataset_spec(profile))?;
    Ok(())
}

fn dataset_spec(profile: &Profile) -> DatasetSpec {
    let d = &profile.training.dataset;
    DatasetSpec {
        path: d.path.clone(),
        format: d.format,
        text_field: d.text_field.clone(),
    }
}

/// Trains `profile` against `target` and returns the run record (also for runs that
/// stopped early: check `status`).
pub async fn run(
    profile: &Profile,
    target: &Target,
    opts: &RunOptions,
) -> Result<RunRecord, RunError> {
    run_detailed(profile, target, opts)
        .await
        .map(|(record, _)| record)
}

/// Like [`run`], also returning every node's learned names with counts (what
/// `compare` needs to explain a digest difference).
pub async fn run_detailed(
    profile: &Profile,
    target: &Target,
    opts: &RunOptions,
) -> Result<(RunRecord, Vec<NodeTally>), RunError> {
    let t = &profile.training;
    let spec = dataset_spec(profile);
    let mut dataset = Dataset::open(&spec)?;
    let identity = dataset.identity();
    let learning_hash = profile.learning_hash();
    let journal = if opts.resume {
        let j = Journal::load(&opts.journal_path)?;
        j.check(&opts.journal_path, &learning_hash, &identity)?;
        Some(j)
    } else {
        None
    };
    let start_row = journal.as_ref().map_or(t.skip, |j| j.next_row);
    let log_path = RowLog::path_for(&opts.journal_path);
    let previous = if opts.resume {
        RowLog::load(&log_path)?
    } else {
        BTreeMap::new()
    };
    let mut row_log = RowLog::open(&log_path, !opts.resume)?;
    // Rows the previous run settled beyond the resume point (out of order), or left
    // half-way: neither is trained again.
    let skip: HashSet<u64> = previous
        .iter()
        .filter(|(row, state)| **row >= start_row && **state != RowState::Failed)
        .map(|(row, _)| *row)
        .collect();
    let half_done: Vec<u64> = previous
        .iter()
        .filter(|(_, state)| **state == RowState::Started)
        .map(|(row, _)| *row)
        .collect();
    for row in &half_done {
        row_log.record(*row, RowState::AtRisk);
    }
    let already_done = match journal.as_ref() {
        Some(j) if !previous.is_empty() => {
            let settled = previous
                .values()
                .filter(|s| **s != RowState::Failed)
                .count();
            (settled as u64).max(j.samples_done)
        }
        Some(j) => j.samples_done,
        None => 0,
    };
    dataset.skip_rows(start_row)?;
    let client = KatoClient::new(client_config(profile, &target.url))
        .map_err(|e| RunError::Tokenizer(e.to_string()))?;
    let settings = Arc::new(train_settings(profile));
    let mut workers = Vec::new();
    for _ in 0..t.workers {
        let w = Worker::start(client.clone(), settings.clone())
            .await
            .map_err(|source| RunError::Start {
                url: target.url.clone(),
                source,
            })?;
        workers.push(w);
    }
    let tokenizer = Gpt2Tokenizer::new().map_err(|e| RunError::Tokenizer(e.to_string()))?;
    let segmenter = Segmenter::new(t.segmentation, t.chunk_sizes[0])
        .and_then(|s| s.with_paragraph_token_cap(t.paragraph_token_cap))
        .map_err(|e| RunError::Tokenizer(e.to_string()))?;
    let remaining = t.samples.map(|n| n.saturating_sub(already_done));
    let reader_stop = opts.cancel.child_token();
    let reader = Reader {
        tokenizer,
        segmenter,
        filter: t.filter,
        remaining,
        skip,
    };
    let (feed_rx, seg_counts) = reader.spawn(dataset, t.workers * 2, reader_stop.clone());

    let mut state = RunState::new(
        profile,
        start_row,
        journal,
        opts,
        &identity,
        &learning_hash,
        row_log,
    );
    for row in half_done {
        state.samples.at_risk.push(SampleIssue {
            row,
            origin: format!("row {row}"),
            reason: "was being trained when the previous run stopped; its learns may be partial, so it is not trained again".into(),
        });
    }
    let started = Instant::now();
    let started_at = now();
    state.drive(feed_rx, workers, &client, reader_stop).await;
    let wall = started.elapsed().as_secs_f64();
    let segmentation = *seg_counts.lock().await;
    let tallies = state.tallies.clone();
    let record = state.into_record(
        profile,
        target,
        identity,
        learning_hash,
        started_at,
        wall,
        client.metrics_snapshot(),
        segmentation,
    );
    Ok((record, tallies))
}

fn client_config(profile: &Profile, url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url);
    c.request_timeout = profile.training.request_timeout;
    c.outage_timeout = profile.health.timeout;
    c.retry = RetryPolicy {
        max_attempts: profile.training.retries.attempts,
        base_backoff: profile.training.retries.backoff,
        max_backoff: profile.training.retries.max_backoff,
    };
    c
}

/// The worker settings a profile implies.
pub fn train_settings(profile: &Profile) -> TrainSettings {
    let t = &profile.training;
    TrainSettings {
        node_ids: (0..t.chunk_sizes.len())
            .map(|l| profile.node_id(l))
            .collect(),
        chunk_sizes: t.chunk_sizes.clone(),
        flow: match t.segmentation {
            Segmentation::Paragraphs => Flow::SinglePass,
            Segmentation::Slices => Flow::LevelByLevel,
        },
        tail: TailPolicy::LearnIfAtLeastTwo,
        node0_batch: t.node0_batch,
        metadata: t.metadata == MetadataPolicy::Reference,
        session_ttl: Some(t.session.ttl.as_secs().max(1)),
        extra_config: t.session.config.clone().into_iter().collect(),
    }
}

/// The reader thread's work: rows in, prepared samples out, in row order.
struct Reader {
    tokenizer: Gpt2Tokenizer,
    segmenter: Segmenter,
    filter: SampleFilter,
    /// Samples still to train; `None` = the whole corpus.
    remaining: Option<u64>,
    /// Rows an earlier run already settled.
    skip: HashSet<u64>,
}

impl Reader {
    fn spawn(
        mut self,
        dataset: Dataset,
        capacity: usize,
        stop: CancellationToken,
    ) -> (mpsc::Receiver<Feed>, Arc<Mutex<SegmentCounts>>) {
        let (tx, rx) = mpsc::channel(capacity.max(2));
        let counts = Arc::new(Mutex::new(SegmentCounts::default()));
        let shared = counts.clone();
        std::thread::spawn(move || {
            let mut local = SegmentCounts::default();
            for item in dataset {
                if stop.is_cancelled() || self.remaining == Some(0) {
                    break;
                }
                let feed = match item {
                    Err(bad) => {
                        let fatal = bad.is_fatal();
                        if tx.blocking_send(Feed::Bad(bad)).is_err() || fatal {
                            break;
                        }
                        continue;
                    }
                    Ok(raw) => match self.prepare(raw, &mut local) {
                        Some(feed) => feed,
                        None => continue,
                    },
                };
                if tx.blocking_send(feed).is_err() {
                    break;
                }
            }
            *shared.blocking_lock() = local;
        });
        (rx, counts)
    }

    fn prepare(
        &mut self,
        raw: super::dataset::RawSample,
        counts: &mut SegmentCounts,
    ) -> Option<Feed> {
        if self.skip.contains(&raw.row) {
            return Some(Feed::Settled(raw.row));
        }
        if self.filter == SampleFilter::Reference && !passes_reference_filter(&raw.text) {
            return Some(Feed::Filtered(raw.row));
        }
        let tokenizer = &self.tokenizer;
        let plan = self
            .segmenter
            .plan(&raw.text, &|text: &str| tokenizer.tokenize(text));
        counts.add(&plan.counts);
        self.remaining = self.remaining.map(|n| n - 1);
        Some(Feed::Sample(PreparedSample {
            row: raw.row,
            origin: raw.origin,
            tokens: plan.counts.tokens,
            chunks: plan.chunks,
            metadata: raw.metadata,
        }))
    }
}

/// Everything the dispatcher tracks while the run goes on.
struct RunState<'a> {
    opts: &'a RunOptions,
    profile_name: String,
    on_bad_sample: OnBadSample,
    checkpoint_every: u64,
    frontier: Frontier,
    journal: Journal,
    tallies: Vec<NodeTally>,
    counts: Vec<LevelCounts>,
    samples: SampleCounts,
    done_before: u64,
    tokens: u64,
    in_flight: BTreeMap<u64, PreparedSample>,
    status: RunStatus,
    stop_reason: Option<String>,
    progress: ProgressDisplay,
    row_log: RowLog,
}

impl<'a> RunState<'a> {
    fn new(
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
    async fn drive(
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
                    self.stop(RunStatus::Interrupted, "interrupted (Ctrl-C): in-flight samples were allowed to finish");
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
                    let hint = if bad.is_fatal() {
                        ""
                    } else {
                        " (set training.on_bad_sample: skip to go on past bad rows)"
                    };
                    self.stop(RunStatus::Failed, &format!("bad data at {bad}{hint}"));
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
                if failure.at_risk {
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
                        self.stop(
                            RunStatus::Failed,
                            &format!(
                                "more than {MAX_AT_RISK} samples at risk; last: {}",
                                failure.error
                            ),
                        );
                    }
                } else {
                    self.samples.failed.push(issue);
                    self.row_log.record(sample.row, RowState::Failed);
                    self.stop(
                        RunStatus::Failed,
                        &format!("sample {} failed: {}", sample.origin, failure.error),
                    );
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

    fn stop(&mut self, status: RunStatus, reason: &str) {
        if self.status == RunStatus::Completed {
            self.status = status;
            self.stop_reason = Some(reason.to_string());
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
    fn into_record(
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
        let done = self.samples.done.max(1) as f64;
        let calls_per_sample = calls
            .endpoints
            .iter()
            .map(|(e, s)| (e.label().to_string(), s.calls as f64 / done))
            .collect();
        let levels = level_records(profile, &self.tallies, &self.counts);
        RunRecord {
            version: RECORD_VERSION,
            katotune_version: env!("CARGO_PKG_VERSION").into(),
            run_id: self.opts.run_id.clone(),
            status: self.status,
            stop_reason: self.stop_reason,
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

/// Current time, RFC 3339 in UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
