//! The trainer's link to KATO: HTTP, or in-process when katotune's engine runs in this
//! process. [`KatoLink::connect`] is the one place that chooses.
//!
//! An enum, not a trait: there are exactly two transports and the runtime knows both;
//! a `match` dispatches statically, with no boxed future per call (`async fn` in a trait
//! is not object-safe, and a generic worker would put a type parameter on the executor
//! and the dispatcher too). Both arms keep the same contract (see
//! `kato::client::in_process`): same calls, same error kinds, same metrics.

use super::record::Transport;
use super::runner::Target;
use crate::kato::api::{SequenceResult, SessionConfig, SymbolSequence};
use crate::kato::client::{ClientConfig, InProcessClient, KatoClient, Replay, Session};
use crate::kato::error::{KatoError, SetupError};
use crate::kato::metrics::MetricsSnapshot;

/// A client of the target's KATO; cheap to clone (clones share the metrics).
#[derive(Debug, Clone)]
pub enum KatoLink {
    /// A KATO server reached over HTTP.
    Http(KatoClient),
    /// katotune's engine in this process, called directly.
    InProcess(InProcessClient),
}

impl KatoLink {
    /// The link to `target`: in-process when the target's engine runs in this process
    /// (unless `http_only`, the profile's `stack.transport: http`), HTTP to
    /// `config.base_url` otherwise. `config.retry` paces the in-process client's
    /// retries after `Overloaded` too.
    pub fn connect(
        target: &Target,
        http_only: bool,
        config: ClientConfig,
    ) -> Result<Self, SetupError> {
        match &target.engine {
            Some(engine) if !http_only => Ok(Self::InProcess(InProcessClient::new(
                engine.clone(),
                config.retry,
            ))),
            _ => KatoClient::new(config).map(Self::Http),
        }
    }

    /// The same link to another replica at `base_url` (`stack.replicas`), sharing its
    /// call counters. An in-process link has one engine and stays itself.
    pub fn at(&self, base_url: &str) -> Result<Self, SetupError> {
        match self {
            Self::Http(c) => c.at(base_url).map(Self::Http),
            Self::InProcess(_) => Ok(self.clone()),
        }
    }

    /// Which transport this link uses, for the run record.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Http(_) => Transport::Http,
            Self::InProcess(_) => Transport::InProcess,
        }
    }

    /// A copy of the call counters, for the run record and the progress display.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        match self {
            Self::Http(c) => c.metrics_snapshot(),
            Self::InProcess(c) => c.metrics_snapshot(),
        }
    }

    /// A session on `node_id` with `config` (see `KatoClient::create_session`).
    pub async fn create_session(
        &self,
        node_id: &str,
        config: &SessionConfig,
        ttl_seconds: Option<u64>,
    ) -> Result<Session, KatoError> {
        match self {
            Self::Http(c) => c.create_session(node_id, config, ttl_seconds).await,
            Self::InProcess(c) => c.create_session(node_id, config, ttl_seconds).await,
        }
    }

    /// A new session in place of `session` (its STM is lost, its KB stays).
    pub async fn recreate_session(&self, session: &mut Session) -> Result<(), KatoError> {
        match self {
            Self::Http(c) => c.recreate_session(session).await,
            Self::InProcess(c) => c.recreate_session(session).await,
        }
    }

    /// Deletes `session`: true if deleted, false if the server no longer had it.
    pub async fn delete_session(&self, session: &Session) -> Result<bool, KatoError> {
        match self {
            Self::Http(c) => c.delete_session(session).await,
            Self::InProcess(c) => c.delete_session(session).await,
        }
    }

    /// observe-sequence with every flag of `request` (see `KatoClient::observe_sequence`).
    pub async fn observe_sequence(
        &self,
        session: &mut Session,
        request: &SymbolSequence<'_>,
        replay: Replay,
    ) -> Result<SequenceResult, KatoError> {
        match self {
            Self::Http(c) => c.observe_sequence(session, request, replay).await,
            Self::InProcess(c) => {
                c.observe_sequence(session, request.to_owned_sequence(), replay)
                    .await
            }
        }
    }

    /// clear-stm (a lost session is replaced by a new one).
    pub async fn clear_stm(&self, session: &mut Session) -> Result<(), KatoError> {
        match self {
            Self::Http(c) => c.clear_stm(session).await,
            Self::InProcess(c) => c.clear_stm(session).await,
        }
    }

    /// Every pattern of the node's KB with its frequency (katotune's engine only).
    pub async fn kb_patterns(&self, node_id: &str) -> Result<Vec<(String, u64)>, KatoError> {
        match self {
            Self::Http(c) => c.kb_patterns(node_id).await,
            Self::InProcess(c) => c.kb_patterns(node_id).await,
        }
    }
}
