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

use tokio_util::sync::CancellationToken;

use super::dataset::{Dataset, DatasetError, DatasetSpec};
use super::digest::NodeTally;
use super::dispatch::{Dispatcher, RunFacts};
use super::durable::{Durability, DurableError};
use super::journal::{Journal, JournalError, RowLog, RowState, JOURNAL_VERSION};
use super::link::KatoLink;
use super::plan::TrainPlan;
use super::reader::Reader;
use super::record::{DurabilityInfo, RunRecord, SampleIssue};
use super::segment::Segmenter;
use super::shard::ShardCursor;
pub use super::target::{replica_of_worker, Target};
use super::tokenizer::Gpt2Tokenizer;
use super::worker::Worker;
use crate::kato::client::ClientConfig;
use crate::kato::error::{KatoError, SetupError};

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
    /// On katotune's engine (the durability barrier's server, in this process or over
    /// HTTP), read each node's digest from its knowledge base at the end instead of
    /// keeping every learned name in the trainer: memory then stays bounded at any KB
    /// size, and the tallies [`run_detailed`] returns count learns only. On other
    /// servers names are kept as usual.
    pub digests_from_kb: bool,
}

impl RunOptions {
    /// Whether the trainer tallies every learned name: unless the digests come from
    /// katotune's engine (`barrier`: the server has the durability barrier).
    pub(crate) fn keeps_names(&self, barrier: bool) -> bool {
        !(self.digests_from_kb && barrier)
    }

    /// A fresh (not resumed) run with no progress bar, its journal at `journal_path`,
    /// 30 s for in-flight samples after a cancel: what tests and benches run.
    pub fn quiet(run_id: &str, journal_path: PathBuf) -> Self {
        Self {
            run_id: run_id.to_string(),
            resume: false,
            journal_path,
            cancel: CancellationToken::new(),
            drain_deadline: Duration::from_secs(30),
            progress_bar: false,
            digests_from_kb: false,
        }
    }
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
    /// The KATO client could not be built (a base URL it cannot use).
    #[error(transparent)]
    Client(#[from] SetupError),
    #[error(transparent)]
    Durable(#[from] DurableError),
}

/// The journal to continue from: `None` for a fresh run, and for a resume that has
/// only a row log (killed before its first checkpoint): the row log says what is done.
fn resume_journal(
    opts: &RunOptions,
    plan: &TrainPlan,
    identity: &super::dataset::DatasetIdentity,
) -> Result<Option<Journal>, JournalError> {
    if !opts.resume {
        return Ok(None);
    }
    match Journal::load(&opts.journal_path) {
        Ok(j) => {
            j.check(
                &opts.journal_path,
                &plan.profile.learning_hash,
                identity,
                plan.shard,
            )?;
            Ok(Some(j))
        }
        Err(JournalError::Missing { path }) => {
            let log = RowLog::path_for(&path);
            if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
                tracing::warn!(
                    "no resume journal at {}; resuming from the row log {}",
                    path.display(),
                    log.display()
                );
                Ok(None)
            } else {
                Err(JournalError::Missing { path })
            }
        }
        Err(e) => Err(e),
    }
}

/// What an earlier run's row log means for this one.
struct ResumePlan {
    /// Rows at or past the start that are settled (done or at risk): not trained again.
    skip: HashSet<u64>,
    /// Rows left half-way on a server without a barrier: reported at risk.
    half_done: Vec<u64>,
    /// Samples settled by earlier runs.
    settled: u64,
}

impl ResumePlan {
    /// With a `barrier`, a row started but never marked done was not stored (the
    /// server was rolled back to its last checkpoint): it is trained again. Without
    /// one, its learns may have reached KATO partly, so it is reported at risk.
    fn new(previous: &BTreeMap<u64, RowState>, start_row: u64, barrier: bool) -> Self {
        let settled_state = |s: RowState| match s {
            RowState::Done | RowState::AtRisk => true,
            RowState::Started => !barrier,
            RowState::Failed => false,
        };
        Self {
            skip: previous
                .iter()
                .filter(|(row, state)| **row >= start_row && settled_state(**state))
                .map(|(row, _)| *row)
                .collect(),
            half_done: previous
                .iter()
                .filter(|(_, state)| !barrier && **state == RowState::Started)
                .map(|(row, _)| *row)
                .collect(),
            settled: previous.values().filter(|s| settled_state(**s)).count() as u64,
        }
    }
}

/// Opens the dataset (and nothing else), so a bad path or format is reported before
/// any stack is started. Returns what the reader does beyond reading plain UTF-8
/// (decompressing, decoding UTF-16), to say on the terminal.
pub fn check_dataset(spec: &DatasetSpec) -> Result<Vec<String>, DatasetError> {
    Ok(Dataset::open(spec)?.notes().to_vec())
}

/// Trains `plan` against `target` and returns the run record (also for runs that
/// stopped early: check `status`).
pub async fn run(
    plan: &TrainPlan,
    target: &Target,
    opts: &RunOptions,
) -> Result<RunRecord, RunError> {
    run_detailed(plan, target, opts)
        .await
        .map(|(record, _)| record)
}

/// Like [`run`], also returning every node's learned names with counts (what
/// `compare` needs to explain a digest difference).
pub async fn run_detailed(
    plan: &TrainPlan,
    target: &Target,
    opts: &RunOptions,
) -> Result<(RunRecord, Vec<NodeTally>), RunError> {
    let mut dataset = Dataset::open(&plan.dataset)?;
    let identity = dataset.identity();
    let journal = resume_journal(opts, plan, &identity)?;
    let start_row = journal.as_ref().map_or(plan.skip, |j| j.next_row);
    let rollback = target.backend.kind != "embedded";
    let owner = std::path::absolute(&opts.journal_path)
        .unwrap_or_else(|_| opts.journal_path.clone())
        .display()
        .to_string();
    let link = connect(plan, target)?;
    let (durability, durable_label) =
        Durability::negotiate(&target.url, &link, &owner, rollback, plan.outage_timeout).await?;
    let barrier = matches!(durability, Durability::Barrier(_));
    let log_path = RowLog::path_for(&opts.journal_path);
    let (previous, applied) = if opts.resume {
        RowLog::load_with(&log_path, durable_label.as_deref())?
    } else {
        Default::default()
    };
    let mut row_log = RowLog::open(&log_path, !opts.resume)?;
    for (row, state) in applied {
        row_log.record(row, state);
    }
    let resumed = ResumePlan::new(&previous, start_row, barrier);
    for row in &resumed.half_done {
        row_log.record(*row, RowState::AtRisk);
    }
    let already_done = journal
        .as_ref()
        .map_or(resumed.settled, |j| resumed.settled.max(j.samples_done));
    let (skip, half_done) = (resumed.skip, resumed.half_done);
    // A shard numbers the samples from `training.skip`, so it reads from there.
    let shard = plan
        .shard
        .map(|s| ShardCursor::new(s, start_row, plan.samples));
    dataset.skip_rows(if shard.is_some() {
        plan.skip
    } else {
        start_row
    })?;
    let urls = target.urls();
    let replicas = urls
        .iter()
        .map(|url| link.at(url))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = Arc::new(plan.settings.clone());
    let mut workers = Vec::new();
    for index in 0..plan.workers {
        let replica = replica_of_worker(index, replicas.len());
        let w = Worker::start(
            replicas[replica].clone(),
            settings.clone(),
            opts.keeps_names(barrier),
        )
        .await
        .map_err(|source| RunError::Start {
            url: urls[replica].clone(),
            source,
        })?;
        workers.push(w);
    }
    let tokenizer = Gpt2Tokenizer::shared().map_err(|e| RunError::Tokenizer(e.to_string()))?;
    let segmenter = Segmenter::new(plan.segmentation, plan.chunk_sizes()[0])
        .and_then(|s| s.with_paragraph_token_cap(plan.paragraph_token_cap))
        .map_err(|e| RunError::Tokenizer(e.to_string()))?;
    let remaining = (plan.samples)
        .filter(|_| shard.is_none())
        .map(|n| n.saturating_sub(already_done));
    let reader_stop = opts.cancel.child_token();
    let reader = Reader {
        tokenizer,
        segmenter,
        filter: plan.filter,
        remaining,
        skip,
        shard,
    };
    let feed_rx = reader.spawn(dataset, plan.workers * 2, reader_stop.clone());

    let journal = match journal {
        Some(mut j) => {
            j.samples_done = already_done;
            j
        }
        None => Journal {
            version: JOURNAL_VERSION,
            profile: plan.profile.name.clone(),
            learning_hash: plan.profile.learning_hash.clone(),
            dataset: identity.clone(),
            next_row: start_row,
            samples_done: already_done,
            at_risk_rows: Vec::new(),
            skipped_rows: Vec::new(),
            run_id: opts.run_id.clone(),
            updated_at: now(),
            shard: plan.shard,
        },
    };
    let mut state = Dispatcher::new(plan, journal, opts, row_log, durability);
    for row in half_done {
        state.previous_at_risk(SampleIssue {
            row,
            origin: format!("row {row}"),
            reason: "was being trained when the previous run stopped; its learns may be partial, so it is not trained again".into(),
        });
    }
    let started = Instant::now();
    let started_at = now();
    state.drive(feed_rx, workers, &link, reader_stop).await;
    let wall = started.elapsed().as_secs_f64();
    let whole_kb = match state.barrier() {
        // Without a name tally the KB is the only source of the digests.
        Some(barrier) if !state.keeps_names() => Some(barrier.kb_digests(plan.node_ids()).await?),
        Some(barrier) if opts.resume => barrier.kb_digests(plan.node_ids()).await.ok(),
        _ => None,
    };
    let (mut record, tallies) = state.into_record(RunFacts {
        plan,
        target,
        run_id: opts.run_id.clone(),
        resumed: opts.resume,
        dataset: identity,
        started_at,
        wall,
        calls: link.metrics_snapshot(),
        durability: DurabilityInfo::default(),
    });
    record.backend.transport = link.transport();
    if let Some(digests) = whole_kb {
        for (level, kb) in record.levels.iter_mut().zip(digests) {
            level.kb = kb;
        }
        record.durability.digests_from_kb = true;
    }
    Ok((record, tallies))
}

/// The trainer's link to `target`, as the plan's transport allows.
fn connect(plan: &TrainPlan, target: &Target) -> Result<KatoLink, SetupError> {
    KatoLink::connect(target, plan.http_only, client_config(plan, &target.url))
}

fn client_config(plan: &TrainPlan, url: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url);
    c.request_timeout = plan.request_timeout;
    c.outage_timeout = plan.outage_timeout;
    c.retry = plan.retry.clone();
    c
}

/// Current time, RFC 3339 in UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_never_marked_done_is_retrained_behind_a_barrier_and_at_risk_without_one() {
        let previous: BTreeMap<u64, RowState> = [
            (0, RowState::Done),
            (1, RowState::Started),
            (2, RowState::AtRisk),
            (3, RowState::Failed),
        ]
        .into();
        let durable = ResumePlan::new(&previous, 1, true);
        assert_eq!(durable.skip, HashSet::from([2]));
        assert!(durable.half_done.is_empty());
        assert_eq!(durable.settled, 2);
        let plain = ResumePlan::new(&previous, 1, false);
        assert_eq!(plain.skip, HashSet::from([1, 2]));
        assert_eq!(plain.half_done, vec![1]);
        assert_eq!(plain.settled, 3);
    }
}
