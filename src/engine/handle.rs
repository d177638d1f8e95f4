//! The engine called in-process: the same operations the HTTP routes call, with the
//! same limits, for a trainer running in the engine's own process.
//!
//! A call goes as an HTTP request does, minus the wire: [`EngineHandle::admit`] passes
//! the `limit_concurrency` and `connection_pool_size` gates and sets the
//! `request_timeout` deadline (the middleware's work), [`EngineHandle::session`] finds
//! and touches the live session (KATO's session middleware: sliding TTL), then the
//! typed operation runs and answers or fails with an [`OpError`].

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::kato::api::{CreateSession, ObserveSequence, SequenceResult};

use super::checkpoint::{CheckpointAsk, CheckpointReply};
use super::limits::Admission;
use super::ops::OpError;
use super::sessions::Session;
use super::Engine;

/// A running engine, callable without HTTP; cheap to clone. It keeps the engine's
/// state alive, but not its serving: after `RunningEngine::shutdown` the knowledge
/// base is flushed and closed, and checkpoints fail.
#[derive(Clone)]
pub struct EngineHandle {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("service_name", &self.engine.config.service_name)
            .field("instance", &self.engine.instance)
            .finish()
    }
}

/// A live session found (and touched) by [`EngineHandle::session`] or made by
/// [`EngineHandle::create_session`].
pub struct LiveSession(Arc<Session>);

impl LiveSession {
    /// `session-<32 hex>-<unix ms>`.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The effective session config (the server defaults merged with what was sent),
    /// as `GET /sessions/{sid}/config` shows it.
    pub fn config(&self) -> Map<String, Value> {
        self.0.lock().config.clone()
    }
}

impl EngineHandle {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// KATO's `SERVICE_NAME`: the suffix of every KB id.
    pub fn service_name(&self) -> &str {
        &self.engine.config.service_name
    }

    /// Admits one call through the engine's gates (see [`Admission`]): `Overloaded`
    /// beyond `limit_concurrency`, `PoolBusy` beyond `connection_pool_size`. Hold it
    /// for the whole call.
    pub fn admit(&self) -> Result<Admission, OpError> {
        self.engine.admit()
    }

    /// The live session `session_id`, its expiry slid by its TTL;
    /// [`OpError::SessionNotFound`] when it expired or never existed.
    pub fn session(&self, session_id: &str) -> Result<LiveSession, OpError> {
        self.engine
            .sessions
            .get(session_id, true)
            .map(LiveSession)
            .ok_or_else(|| OpError::SessionNotFound {
                session_id: session_id.to_owned(),
            })
    }

    /// `POST /sessions` (API.md 2.2): an invalid config is dropped silently, as KATO
    /// does, so compare [`LiveSession::config`] with what was sent.
    pub fn create_session(
        &self,
        _admitted: &Admission,
        req: CreateSession,
    ) -> Result<LiveSession, OpError> {
        self.engine.create_session(req).map(LiveSession)
    }

    /// `DELETE /sessions/{sid}`: the session's STM goes; its knowledge base stays.
    pub fn delete_session(&self, _admitted: &Admission, session: &LiveSession) {
        self.engine.sessions.remove(&session.0.id);
    }

    /// `POST /sessions/{sid}/observe-sequence` (API.md 4.3) under the admission's
    /// deadline: `TooManyObservations` past `batch_size`, `TimedOut` past the deadline
    /// (nothing kept either way).
    pub fn observe_sequence(
        &self,
        admitted: &Admission,
        session: &LiveSession,
        req: ObserveSequence,
    ) -> Result<SequenceResult, OpError> {
        self.engine
            .observe_sequence(&session.0, req, admitted.deadline)
    }

    /// `POST /sessions/{sid}/clear-stm`: STM, accumulators and time.
    pub fn clear_stm(&self, _admitted: &Admission, session: &LiveSession) {
        self.engine.clear_stm(&session.0);
    }

    /// `GET /katotune/kb/{node_id}`: every pattern of the node's KB as (wire name,
    /// frequency), sorted by name.
    pub fn kb_frequencies(&self, node_id: &str) -> Vec<(String, u64)> {
        self.engine.kb_frequencies(node_id).1
    }

    /// Every pattern of the node's KB as (wire name, frequency), sorted by name, one
    /// at a time: memory stays bounded whatever the KB's size (the listing
    /// `GET /katotune/kb/{node_id}` streams the same). Blocks while it reads and holds
    /// the writer meanwhile: call it from a blocking thread.
    pub fn visit_kb(&self, node_id: &str, mut visit: impl FnMut(&str, u64)) {
        self.engine.visit_kb(node_id, |digest, frequency| {
            visit(&super::session::wire_name_of(digest), frequency);
            true
        });
    }

    /// `POST /katotune/checkpoint` (see `checkpoint.rs`), run on a blocking thread
    /// because it waits for the database writer.
    pub async fn checkpoint(&self, ask: CheckpointAsk) -> Result<CheckpointReply, OpError> {
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.checkpoint(ask))
            .await
            .unwrap_or_else(|e| Err(OpError::StoreFailed(e.to_string())))
    }
}
