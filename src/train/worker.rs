//! One training worker: its own KATO sessions, and the calls that teach one sample
//! to every level.
//!
//! Node0 batching is real batching: with `node0_batch: N`, the chunks of exactly the
//! node0 chunk size go to a session whose `max_pattern_length` is that size, N at a
//! time in one observe-sequence, and KATO auto-learns each one (API.md 4.3). Chunks of
//! another length (tails, merged tails) and the chunk that carries the sample's
//! metadata (auto-learned patterns get no metadata) go through a second session of
//! the same node with `learn_at_end`. Names are put back in chunk order before they go
//! up, so every node learns exactly what the one-call-per-chunk path learns.
//!
//! Every call starts from an empty STM (each learn empties it), so a call that KATO
//! rejected because it lost the session may be replayed on a fresh one. After a
//! metadata-carrying learn the worker clears STM, because KATO hands a session's
//! accumulated metadata to every later learn otherwise (API.md 3.5).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::digest::NodeTally;
use super::hierarchy::{Flow, Hierarchy, LearnRequest, LevelCounts, TailPolicy};
use crate::kato::api::{Observation, ObserveSequence, SessionConfig, StmMode};
use crate::kato::client::{KatoClient, Replay, Session};
use crate::kato::error::{ErrorKind, KatoError};

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
    pub tokens: u64,
    pub chunks: Vec<Vec<String>>,
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
    pub error: KatoError,
    /// Some of its learns may have reached KATO: re-running it could double them.
    pub at_risk: bool,
}

/// A worker and its sessions.
pub struct Worker {
    client: KatoClient,
    settings: Arc<TrainSettings>,
    /// `learn_at_end` session per level.
    sessions: Vec<Session>,
    /// Node0 auto-learn session (only with `node0_batch` > 1).
    auto: Option<Session>,
    hierarchy: Hierarchy,
}

impl Worker {
    /// Creates the worker's sessions, sending the full training config explicitly.
    pub async fn start(
        client: KatoClient,
        settings: Arc<TrainSettings>,
    ) -> Result<Self, KatoError> {
        let hierarchy = Hierarchy::new(&settings.chunk_sizes[1..], settings.flow, settings.tail)
            .expect("chunk sizes are validated with the profile");
        let mut sessions = Vec::with_capacity(settings.node_ids.len());
        for node in &settings.node_ids {
            let config = settings.session_config(0);
            sessions.push(
                client
                    .create_session(node, &config, settings.session_ttl)
                    .await?,
            );
        }
        let auto = if settings.node0_batch > 1 {
            let config = settings.session_config(settings.chunk_sizes[0] as u32);
            Some(
                client
                    .create_session(&settings.node_ids[0], &config, settings.session_ttl)
                    .await?,
            )
        } else {
            None
        };
        Ok(Self {
            client,
            settings,
            sessions,
            auto,
            hierarchy,
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
        let mut progress = Progress::new(self.settings.node_ids.len());
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
    ) -> Result<(), KatoError> {
        let meta = self.settings.metadata.then(|| book_metadata(sample));
        let batch = self.settings.node0_batch.max(1);
        for (i, group) in sample.chunks.chunks(batch).enumerate() {
            let first_meta = if i == 0 { meta.as_ref() } else { None };
            let names = self.learn_node0(group, first_meta, p).await?;
            for name in names {
                p.tallies[0].record(&name);
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

    /// Learns one group of node0 chunks; names come back in chunk order.
    async fn learn_node0(
        &mut self,
        chunks: &[Vec<String>],
        meta: Option<&Map<String, Value>>,
        p: &mut Progress,
    ) -> Result<Vec<String>, KatoError> {
        let size = self.settings.chunk_sizes[0];
        let mut names: Vec<Option<String>> = vec![None; chunks.len()];
        let uniform: Vec<usize> = match &self.auto {
            Some(_) => (0..chunks.len())
                .filter(|&i| chunks[i].len() == size && !(i == 0 && meta.is_some()))
                .collect(),
            None => Vec::new(),
        };
        if !uniform.is_empty() {
            let auto = self
                .auto
                .as_mut()
                .expect("uniform chunks need the auto session");
            let observations: Vec<Observation> = uniform
                .iter()
                .flat_map(|&i| chunks[i].iter().map(|t| Observation::symbol(t.clone())))
                .collect();
            let request = ObserveSequence {
                observations,
                ..Default::default()
            };
            let answer = self
                .client
                .observe_sequence(auto, &request, Replay::OnFreshSession)
                .await?;
            p.applied = true;
            let learned: Vec<String> = answer
                .results
                .iter()
                .filter_map(|r| r.auto_learned_pattern.clone())
                .collect();
            if learned.len() != uniform.len() {
                return Err(unexpected_answer(auto, uniform.len(), learned.len()));
            }
            for (&i, name) in uniform.iter().zip(learned) {
                names[i] = Some(name);
            }
        }
        for (i, chunk) in chunks.iter().enumerate() {
            if names[i].is_none() {
                let m = if i == 0 { meta } else { None };
                names[i] = Some(self.learn_at(0, chunk, m, p).await?);
            }
        }
        Ok(names.into_iter().flatten().collect())
    }

    /// Runs the hierarchy's due learns one at a time (path A sends at most one; path B
    /// sends a level's slices, which share the level's session).
    async fn drain(
        &mut self,
        mut due: Vec<LearnRequest>,
        meta: Option<&Map<String, Value>>,
        p: &mut Progress,
    ) -> Result<(), KatoError> {
        while let Some(request) = (!due.is_empty()).then(|| due.remove(0)) {
            let m = if request.first_at_level { meta } else { None };
            let name = self.learn_at(request.level, &request.symbols, m, p).await?;
            p.tallies[request.level].record(&name);
            let more = self
                .hierarchy
                .learned(request.id, name)
                .expect("the request is outstanding");
            due.extend(more);
        }
        Ok(())
    }

    /// One observe-sequence with `learn_at_end` on `level`'s session.
    async fn learn_at(
        &mut self,
        level: usize,
        symbols: &[String],
        meta: Option<&Map<String, Value>>,
        p: &mut Progress,
    ) -> Result<String, KatoError> {
        let mut observations: Vec<Observation> = symbols
            .iter()
            .map(|s| Observation::symbol(s.clone()))
            .collect();
        if let (Some(m), Some(first)) = (meta, observations.first_mut()) {
            first.metadata = m.clone();
        }
        let request = ObserveSequence {
            observations,
            learn_at_end: true,
            ..Default::default()
        };
        let session = &mut self.sessions[level];
        let answer = self
            .client
            .observe_sequence(session, &request, Replay::OnFreshSession)
            .await?;
        p.applied = true;
        if meta.is_some() {
            self.client.clear_stm(session).await?;
        }
        Ok(answer.final_learned_pattern.unwrap_or_default())
    }
}

/// Per-sample bookkeeping while it trains.
struct Progress {
    tallies: Vec<NodeTally>,
    /// A state-changing call succeeded: the sample has started to change the KB.
    applied: bool,
}

impl Progress {
    fn new(levels: usize) -> Self {
        Self {
            tallies: vec![NodeTally::default(); levels],
            applied: false,
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
