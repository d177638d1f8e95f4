//! The engine's operations as typed functions: what each session endpoint does, with
//! no HTTP in it (API.md sections 2.2-2.8).
//!
//! The axum routes (`session_routes.rs`) parse a request, call one of these and render
//! its answer or its [`OpError`] (`reply.rs`); katotune's trainer calls the same
//! functions through [`super::EngineHandle`] when the engine runs in its own process.
//! One code path for both transports, so both learn the same patterns under the same
//! names. Each operation locks its session only for the synchronous work, then hands
//! the patterns it learned to the node's knowledge base in one batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::kato::api::{
    CreateSession, LearnResult, Observation, ObserveResult, ObserveSequence, SequenceResult,
};
use crate::kato::pattern::kb_id;

use super::limits;
use super::session_config::{apply, server_defaults, validate};
use super::sessions::Session;
use super::Engine;

/// Why an operation refused or failed; each maps to the HTTP answer the routes give
/// (status in brackets) and to the client error kind the trainer sees on either path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// [404] The session expired, was deleted, or never existed on this engine.
    #[error("Session {session_id} not found or expired")]
    SessionNotFound { session_id: String },
    /// [400] The request cannot be carried out as sent (empty STM, vectors...).
    #[error("{0}")]
    BadRequest(String),
    /// [400] A session config update failed KATO's validation; the entries by key.
    #[error("Configuration validation failed: {0}")]
    ConfigRejected(Value),
    /// [413] An observe-sequence longer than `batch_size` (`KATO_BATCH_SIZE`).
    #[error(
        "observe-sequence carries {count} observations but this engine's batch_size \
         (KATO_BATCH_SIZE) allows at most {limit} per request: split the sequence"
    )]
    TooManyObservations { count: usize, limit: usize },
    /// [504] The request ran past `request_timeout` (`REQUEST_TIMEOUT`); nothing kept.
    #[error(
        "request exceeded this engine's request_timeout of {:.3} s (REQUEST_TIMEOUT); \
         nothing from it was kept: send smaller requests or raise the timeout",
        .limit.as_secs_f64()
    )]
    TimedOut { limit: Duration },
    /// [503, JSON] Every slot of `connection_pool_size` (`CONNECTION_POOL_SIZE`) is busy.
    #[error(
        "all {size} connections of this engine's pool are busy (CONNECTION_POOL_SIZE); \
         retry later or send fewer requests at once"
    )]
    PoolBusy { size: usize },
    /// [503, text] More requests in flight than `limit_concurrency`, as uvicorn says it.
    #[error("Service Unavailable")]
    Overloaded,
    /// [501] Something this engine does not compute (predictions).
    #[error("{0}")]
    NotImplemented(String),
    /// [500, text] What KATO answers with an unhandled exception (a negative TTL).
    #[error("Internal Server Error")]
    Internal,
    /// [409] The checkpoint barrier refused: another run holds it, or the engine restarted.
    #[error("{0}")]
    Conflict(String),
    /// [503, JSON] The knowledge-base file could not be written (disk full...).
    #[error("{0}")]
    StoreFailed(String),
}

/// The 400 for vector observations, which this engine does not store.
fn vectors_unsupported() -> OpError {
    OpError::BadRequest(
        "the embedded katotune engine does not support vector observations; \
         send strings only, or use a docker or external KATO backend"
            .into(),
    )
}

impl Engine {
    /// `POST /sessions`: a session on the node's KB. A create-time config that fails
    /// validation is dropped silently, as KATO does (API.md 2.2); a negative TTL is
    /// KATO's 500.
    pub(crate) fn create_session(&self, req: CreateSession) -> Result<Arc<Session>, OpError> {
        let ttl = match req.ttl_seconds {
            None | Some(0) => self.config.session_ttl,
            Some(n) if n < 0 => return Err(OpError::Internal),
            Some(n) => Duration::from_secs(n.unsigned_abs()),
        };
        let mut config = server_defaults();
        if let Some(Value::Object(updates)) = &req.config {
            if validate(updates).is_empty() {
                apply(&mut config, updates);
            }
        }
        let kb = self
            .kbs
            .node(&kb_id(&req.node_id, &self.config.service_name));
        Ok(self.sessions.create(&req.node_id, kb, ttl, config))
    }

    /// `POST /sessions/{sid}/config`: validates `updates` and merges them into the
    /// session's effective config (which sets its auto-learn threshold and STM mode).
    pub(crate) fn set_config(
        &self,
        session: &Session,
        updates: &Map<String, Value>,
    ) -> Result<(), OpError> {
        let errors = validate(updates);
        if !errors.is_empty() {
            return Err(OpError::ConfigRejected(Value::Object(errors)));
        }
        let mut data = session.lock();
        let mut config = data.config.clone();
        apply(&mut config, updates);
        data.set_config(config);
        Ok(())
    }

    /// `POST /sessions/{sid}/observe`: one observation, with auto-learn.
    pub(crate) fn observe(
        &self,
        session: &Session,
        obs: Observation,
    ) -> Result<ObserveResult, OpError> {
        if !obs.vectors.is_empty() {
            return Err(vectors_unsupported());
        }
        let mut learned = Vec::new();
        let mut data = session.lock();
        let step = data.state.observe(obs, &mut learned);
        let dropped = data.state.trim_to_capacity(self.config.limits.stm_capacity);
        drop(data);
        session.kb.learn_all(learned);
        Ok(ObserveResult {
            status: "okay".into(),
            session_id: Some(session.id.clone()),
            processor_id: Some(session.node_id.clone()),
            stm_length: step.stm_length,
            time: step.time,
            unique_id: Some(format!("obs-{:032x}", rand::random::<u128>())),
            auto_learned_pattern: step.auto_learned,
            stm_capacity_note: limits::stm_note(self, dropped),
        })
    }

    /// `POST /sessions/{sid}/observe-sequence` (API.md 4.3). More observations than
    /// `batch_size` is [`OpError::TooManyObservations`]; passing `deadline` half-way
    /// restores the session as it was and is [`OpError::TimedOut`]: either way nothing
    /// is learned.
    pub(crate) fn observe_sequence(
        &self,
        session: &Session,
        req: ObserveSequence,
        deadline: Option<Instant>,
    ) -> Result<SequenceResult, OpError> {
        let count = req.observations.len();
        if let Some(limit) = self.config.limits.batch_size.filter(|l| count > *l) {
            return Err(limits::too_many_observations(self, count, limit));
        }
        if req.observations.iter().any(|o| !o.vectors.is_empty()) {
            return Err(vectors_unsupported());
        }
        let mut learned = Vec::with_capacity(count / 2);
        let mut data = session.lock();
        // A deadline may abandon the request half-way: work on a copy then.
        let backup = deadline.map(|_| data.state.clone());
        let outcome = data
            .state
            .observe_sequence(req, &session.node_id, deadline, &mut learned);
        let mut result = match (outcome, backup) {
            (Ok(result), _) => result,
            (Err(_), backup) => {
                if let Some(backup) = backup {
                    data.state = backup;
                }
                drop(data);
                let limit = self.config.limits.request_timeout.unwrap_or_default();
                return Err(limits::timed_out(self, limit));
            }
        };
        let dropped = data.state.trim_to_capacity(self.config.limits.stm_capacity);
        drop(data);
        session.kb.learn_all(learned);
        result.stm_capacity_note = limits::stm_note(self, dropped);
        Ok(result)
    }

    /// `POST /sessions/{sid}/learn`: the whole STM, always emptied afterwards; an empty
    /// STM is KATO's 400.
    pub(crate) fn learn(&self, session: &Session) -> Result<LearnResult, OpError> {
        let mut learned = Vec::with_capacity(1);
        let mut data = session.lock();
        if data.state.stm.is_empty() {
            return Err(OpError::BadRequest("Cannot learn from empty STM".into()));
        }
        let name = data.state.learn(&mut learned);
        drop(data);
        session.kb.learn_all(learned);
        Ok(LearnResult {
            status: "learned".into(),
            message: Some(format!("Learned pattern {name} from 0 events")),
            pattern_name: name,
            session_id: Some(session.id.clone()),
            processor_id: None,
        })
    }

    /// `POST /sessions/{sid}/clear-stm`: STM, accumulators and time.
    pub(crate) fn clear_stm(&self, session: &Session) {
        session.lock().state.clear_stm();
    }

    /// `POST /sessions/{sid}/clear-all`: also deletes the node's whole knowledge base.
    pub(crate) fn clear_all(&self, session: &Session) {
        session.lock().state.clear_stm();
        session.kb.clear();
    }

    /// `GET /katotune/kb/{node_id}`: the node's KB id and every pattern's wire name
    /// with its frequency, sorted by name (empty for a node that learned nothing).
    /// Every pattern of `node_id`'s KB as (digest, frequency) in name order, streamed
    /// ([`super::kb::NodeKb::visit_frequencies`]); an unknown node visits nothing.
    pub(crate) fn visit_kb(&self, node_id: &str, visit: impl FnMut(&[u8; 20], u64) -> bool) {
        let kb_id = kb_id(node_id, &self.config.service_name);
        if let Some(kb) = self.kbs.existing(&kb_id) {
            kb.visit_frequencies(visit);
        }
    }

    pub(crate) fn kb_frequencies(&self, node_id: &str) -> (String, Vec<(String, u64)>) {
        let kb_id = kb_id(node_id, &self.config.service_name);
        let patterns = self
            .kbs
            .existing(&kb_id)
            .map(|kb| kb.frequencies())
            .unwrap_or_default();
        (kb_id, patterns)
    }
}
