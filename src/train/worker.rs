//! One training worker: its own KATO sessions, and the calls that teach one sample
//! to every level.
//!
//! Batching is real batching: with `node0_batch: N`, node0's chunks of exactly the
//! node0 chunk size go to a session whose `max_pattern_length` is that size, N at a
//! time in one observe-sequence, and KATO auto-learns each one (API.md 4.3). Higher
//! levels are batched the same way: a batched run carries names up level by level, so
//! all of a level's full groups for the sample go out together. Groups of another
//! length (tails, merged tails) and the group that carries the sample's metadata
//! (auto-learned patterns get no metadata) go through a second session of the same
//! node with `learn_at_end`. Names are put back in group order before they go up, and
//! every node learns exactly the groups the one-call-per-chunk path learns.
//!
//! Every call starts from an empty STM (each learn empties it), so a call that KATO
//! rejected because it lost the session may be replayed on a fresh one. After a
//! metadata-carrying learn the worker clears STM, because KATO hands a session's
//! accumulated metadata to every later learn otherwise (API.md 3.5).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::digest::NodeTally;
use super::hierarchy::{Flow, Hierarchy, LearnRequest, LevelCounts, TailPolicy};
use super::link::KatoLink;
pub use super::outcome::{SampleError, WrongName};
use super::segment::SegmentCounts;
use super::tokenizer::Symbol;
use crate::kato::api::{SessionConfig, StmMode, SymbolSequence};
use crate::kato::client::{Replay, Session};
use crate::kato::error::{ErrorKind, KatoError};
use crate::kato::pattern::NameCheck;

/// What every worker needs to know, derived once from the profile.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// `node0`, `node1`, ...
    pub node_ids: Vec<String>,
    /// Chunk size per level (index 0 = node0).
    pub chunk_sizes: Vec<usize>,
    pub flow: Flow,
    pub tail: TailPolicy,
    pub node0_batch: usize,
    /// Attach the sample's metadata at each level's first learn (the reference's rule).
    pub metadata: bool,
    pub session_ttl: Option<u64>,
    /// Extra session config keys from the profile.
    pub extra_config: Map<String, Value>,
}

impl TrainSettings {
    fn session_config(&self, max_pattern_length: u32) -> SessionConfig {
        SessionConfig {
            max_pattern_length,
            stm_mode: StmMode::Clear,
            process_predictions: false,
            sort_symbols: true,
            extra: self.extra_config.clone().into_iter().collect(),
        }
    }
}

/// A sample ready to train: its node0 chunks and the metadata it carries.
#[derive(Debug, Clone)]
pub struct PreparedSample {
    pub row: u64,
    pub origin: String,
    /// How the text was segmented: its tokens, and what was cut or dropped (summed
    /// over the samples a run marks done, for the record's `segmentation`).
    pub segments: SegmentCounts,
    /// node0 chunks: each a run of tokens, shared with the tokenizer's vocabulary.
    pub chunks: Vec<Vec<Symbol>>,
    pub metadata: Map<String, Value>,
}

/// What one trained sample taught.
#[derive(Debug, Default)]
pub struct SampleResult {
    /// Names learned per level.
    pub tallies: Vec<NodeTally>,
    pub counts: Vec<LevelCounts>,
}

/// A sample that did not finish.
#[derive(Debug)]
pub struct SampleFailure {
    pub error: SampleError,
    /// Some of its learns may have reached KATO: re-running it could double them.
    pub at_risk: bool,
}

/// A worker and its sessions.
pub struct Worker {
    /// HTTP or in-process (see `train::link`).
    client: KatoLink,
    settings: Arc<TrainSettings>,
    /// `learn_at_end` session per level.
    sessions: Vec<Session>,
    /// Auto-learn session per level (`max_pattern_length` = the level's chunk size),
    /// only when batching.
    auto: Vec<Session>,
    hierarchy: Hierarchy,
    /// Checks every returned name against the naming rule.
    names: NameCheck,
    /// Tally each sample's learned names (else count its learns only).
    keep_names: bool,
}

/// One group of symbols to learn at a level, and whether it carries the metadata.
struct Group<'a> {
    symbols: &'a [Symbol],
    meta: bool,
}

impl Worker {
    /// Creates the worker's sessions, sending the full training config explicitly.
    /// `keep_names`: each [`SampleResult`] tallies the names learned, not only how
    /// many (a run whose digests come from the knowledge base needs the count only).
    pub async fn start(
        client: KatoLink,
        settings: Arc<TrainSettings>,
        keep_names: bool,
    ) -> Result<Self, KatoError> {
        // Batched runs learn level by level: every level's full groups can then go in
        // one auto-learn request. Each node learns the same groups as in the
        // reference's single pass, so the knowledge bases are identical.
        let flow = if settings.node0_batch > 1 {
            Flow::LevelByLevel
        } else {
            settings.flow
        };
        let hierarchy = Hierarchy::new(&settings.chunk_sizes[1..], flow, settings.tail)
            .expect("chunk sizes are validated with the profile");
        let mut sessions = Vec::with_capacity(settings.node_ids.len());
        let mut auto = Vec::new();
        for (node, size) in settings.node_ids.iter().zip(&settings.chunk_sizes) {
            let config = settings.session_config(0);
            sessions.push(
                client
                    .create_session(node, &config, settings.session_ttl)
                    .await?,
            );
            if settings.node0_batch > 1 {
                let config = settings.session_config(*size as u32);
                auto.push(
                    client
                        .create_session(node, &config, settings.session_ttl)
                        .await?,
                );
            }
        }
        Ok(Self {
            client,
            settings,
            sessions,
            auto,
            hierarchy,
            names: NameCheck::default(),
            keep_names,
        })
    }

    /// Deletes the worker's sessions (the knowledge bases stay).
    pub async fn close(self) {
        for s in self.sessions.iter().chain(self.auto.iter()) {
            if let Err(e) = self.client.delete_session(s).await {
                tracing::debug!("could not delete session {}: {e}", s.id());
            }
        }
    }

    /// Teaches one sample to every level.
    pub async fn train(&mut self, sample: &PreparedSample) -> Result<SampleResult, SampleFailure> {
        let mut progress = Progress::new(self.settings.node_ids.len(), self.keep_names);
        match self.train_inner(sample, &mut progress).await {
            Ok(()) => {
                let counts = self.hierarchy.next_sample().unwrap_or_default();
                Ok(SampleResult {
                    tallies: progress.tallies,
                    counts,
                })
            }
            Err(error) => {
                self.hierarchy.abandon_sample();
                let at_risk = progress.applied || error.may_have_applied();
                // Whatever STM the failed call left behind must not glue onto the next chunk.
                for s in self.sessions.iter_mut().chain(self.auto.iter_mut()) {
                    let _ = self.client.recreate_session(s).await;
                }
                Err(SampleFailure { error, at_risk })
            }
        }
    }

    async fn train_inner(
        &mut self,
        sample: &PreparedSample,
        p: &mut Progress,
    ) -> Result<(), SampleError> {
        let meta = self.settings.metadata.then(|| book_metadata(sample));
        let batch = self.settings.node0_batch.max(1);
        for (i, chunks) in sample.chunks.chunks(batch).enumerate() {
            let groups: Vec<Group> = chunks
                .iter()
                .enumerate()
                .map(|(j, c)| Group {
                    symbols: c,
                    meta: i == 0 && j == 0 && meta.is_some(),
                })
                .collect();
            let names = self.learn_groups(0, &groups, meta.as_ref(), p).await?;
            for name in names {
                p.learned(0, &name);
                let due = self
                    .hierarchy
                    .push_name(name)
                    .expect("hierarchy accepts names while filling");
                self.drain(due, meta.as_ref(), p).await?;
            }
        }
        let due = self
            .hierarchy
            .finish()
            .expect("finish is called once per sample");
        self.drain(due, meta.as_ref(), p).await
    }

    /// Runs the hierarchy's due learns until none are left. Path A makes one due at a
    /// time; level by level, a whole level's groups are due together.
    async fn drain(
        &mut self,
        mut due: Vec<LearnRequest>,
        meta: Option<&Map<String, Value>>,
        p: &mut Progress,
    ) -> Result<(), SampleError> {
        while !due.is_empty() {
            let level = due[0].level;
            let split = due
                .iter()
                .position(|r| r.level != level)
                .unwrap_or(due.len());
            let batch: Vec<LearnRequest> = due.drain(..split).collect();
            let groups: Vec<Group> = batch
                .iter()
                .map(|r| Group {
                    symbols: &r.symbols,
                    meta: r.first_at_level && meta.is_some(),
                })
                .collect();
            let names = self.learn_groups(level, &groups, meta, p).await?;
            for (request, name) in batch.iter().zip(names) {
                p.learned(level, &name);
                due.extend(
                    self.hierarchy
                        .learned(request.id, name)
                        .expect("the request is outstanding"),
                );
            }
        }
        Ok(())
    }

    /// Learns `groups` at `level`; names come back in group order. Full-size groups
    /// without metadata go through the auto-learn session, `node0_batch` per request;
    /// the rest one call each through the `learn_at_end` session.
    async fn learn_groups(
        &mut self,
        level: usize,
        groups: &[Group<'_>],
        meta: Option<&Map<String, Value>>,
        p: &mut Progress,
    ) -> Result<Vec<String>, SampleError> {
        let size = self.settings.chunk_sizes[level];
        let mut names: Vec<Option<String>> = vec![None; groups.len()];
        let uniform: Vec<usize> = if self.auto.is_empty() {
            Vec::new()
        } else {
            (0..groups.len())
                .filter(|&i| groups[i].symbols.len() == size && !groups[i].meta)
                .collect()
        };
        for ids in uniform.chunks(self.settings.node0_batch.max(1)) {
            let batch: Vec<&[Symbol]> = ids.iter().map(|&i| groups[i].symbols).collect();
            let found = self.auto_learn(level, &batch, p).await?;
            for (&i, name) in ids.iter().zip(found) {
                names[i] = Some(name);
            }
        }
        for (i, group) in groups.iter().enumerate() {
            if names[i].is_none() {
                let m = if group.meta { meta } else { None };
                names[i] = Some(self.learn_at(level, group.symbols, m, p).await?);
            }
        }
        Ok(names.into_iter().flatten().collect())
    }

    /// One observe-sequence of whole groups on `level`'s auto-learn session: KATO
    /// learns each group as its last event arrives, and names it in that event's result.
    async fn auto_learn(
        &mut self,
        level: usize,
        groups: &[&[Symbol]],
        p: &mut Progress,
    ) -> Result<Vec<String>, SampleError> {
        let request = SymbolSequence::new(groups.iter().flat_map(|g| g.iter()), None);
        let sent = request.observations.len();
        let size = self.settings.chunk_sizes[level];
        let session = &mut self.auto[level];
        let answer = self
            .client
            .observe_sequence(session, &request, Replay::OnFreshSession)
            .await?;
        p.applied = true;
        if answer.results.len() != sent {
            let got = answer.results.iter().flat_map(|r| &r.auto_learned_pattern);
            return Err(unexpected_answer(session, groups.len(), got.count()).into());
        }
        // Group k's name is in the result of its last observation.
        let mut learned = Vec::with_capacity(groups.len());
        let ends = answer.results.into_iter().skip(size - 1).step_by(size);
        for (group, result) in groups.iter().zip(ends) {
            let got = result.auto_learned_pattern;
            self.check_name(level, group, got.as_deref())?;
            learned.push(got.unwrap_or_default());
        }
        Ok(learned)
    }

    /// Stops the sample when `got` is not the name KATO's rule gives `symbols`.
    /// Kept out of line: inlined, it bloats every async learn's state machine.
    #[inline(never)]
    fn check_name(
        &mut self,
        level: usize,
        symbols: &[Symbol],
        got: Option<&str>,
    ) -> Result<(), SampleError> {
        if self.names.matches(symbols, got) {
            return Ok(());
        }
        Err(SampleError::WrongName(WrongName {
            node: self.settings.node_ids[level].clone(),
            expected: NameCheck::expected(symbols),
            got: got.filter(|g| !g.is_empty()).map(str::to_string),
        }))
    }

    /// One observe-sequence with `learn_at_end` on `level`'s session.
    async fn learn_at(
        &mut self,
        level: usize,
        symbols: &[Symbol],
        meta: Option<&Map<String, Value>>,
        p: &mut Progress,
    ) -> Result<String, SampleError> {
        let mut request = SymbolSequence::new(symbols, meta);
        request.learn_at_end = true;
        let session = &mut self.sessions[level];
        let answer = self
            .client
            .observe_sequence(session, &request, Replay::OnFreshSession)
            .await?;
        p.applied = true;
        if meta.is_some() {
            self.client.clear_stm(session).await?;
        }
        let got = answer.final_learned_pattern;
        self.check_name(level, symbols, got.as_deref())?;
        Ok(got.unwrap_or_default())
    }
}

/// Per-sample bookkeeping while it trains.
struct Progress {
    tallies: Vec<NodeTally>,
    keep_names: bool,
    /// A state-changing call succeeded: the sample has started to change the KB.
    applied: bool,
}

impl Progress {
    fn new(levels: usize, keep_names: bool) -> Self {
        Self {
            tallies: vec![NodeTally::default(); levels],
            keep_names,
            applied: false,
        }
    }

    /// Tallies a learn at `level` that returned `name` (empty: nothing stored).
    fn learned(&mut self, level: usize, name: &str) {
        match self.keep_names {
            true => self.tallies[level].record(name),
            false => self.tallies[level].count(name),
        }
    }
}

/// The reference's book metadata: `{title, author, book_idx}` (TRAINING.md 3.A),
/// with the title taken from the sample's own `title` field when it has one.
fn book_metadata(sample: &PreparedSample) -> Map<String, Value> {
    let title = sample
        .metadata
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("sample_{}", sample.row));
    let mut m = Map::new();
    m.insert("title".into(), Value::from(title));
    m.insert("author".into(), Value::from("Unknown"));
    m.insert("book_idx".into(), Value::from(1));
    m
}

fn unexpected_answer(session: &Session, expected: usize, got: usize) -> KatoError {
    let reason = format!(
        "auto-learn returned {got} names for {expected} chunks; does this server honour max_pattern_length?"
    );
    KatoError::new(
        session.site(crate::kato::metrics::Endpoint::ObserveSequence),
        ErrorKind::BadResponse {
            reason,
            body_start: String::new(),
        },
    )
}
