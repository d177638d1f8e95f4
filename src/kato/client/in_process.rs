//! The in-process client: the trainer's KATO calls answered by katotune's engine running
//! in this same process, through [`EngineHandle`], with no HTTP, JSON or socket.
//!
//! It keeps [`KatoClient`](super::KatoClient)'s contract call for call, so the trainer
//! cannot tell the two apart except by speed:
//! - the same engine operations the HTTP routes run, so the same names, KBs and digests;
//! - the engine's limits through the same gates, failing with the same [`ErrorKind`] an
//!   HTTP answer gives: `batch_size` is `PayloadTooLarge` (413),
//!   `limit_concurrency` and `connection_pool_size` are `Overloaded` (503, sent again
//!   with the same backoff), `request_timeout` is `OutcomeUnknown(GatewayTimeout)` on a
//!   call that changes state (504);
//! - the same session rules: a lost session is `SessionNotFound`, replayed once on a new
//!   session under [`Replay::OnFreshSession`]; `clear_stm` recreates; the session
//!   config sent is checked against the one the engine took;
//! - the same [`ClientMetrics`]: one request per attempt, timed, so calls per sample
//!   and latency percentiles in the run record mean the same on both paths.
//!
//! What it does not have: the wire's failure modes (never-sent, lost connections,
//! outages) and a client-side timeout, since a call cannot hang on a network.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::answers::check_config_taken;
use super::session::{Replay, Session};
use super::transport::{backoff, unknown_if_state_changing};
use super::RetryPolicy;
use crate::engine::{Admission, EngineHandle, LiveSession, OpError};
use crate::kato::api::{ObserveSequence, SequenceResult, SessionConfig};
use crate::kato::error::{CallSite, ErrorKind, KatoError};
use crate::kato::metrics::{ClientMetrics, Endpoint, MetricsSnapshot};

/// A KATO client for an engine in this process; cheap to clone (clones share metrics).
#[derive(Debug, Clone)]
pub struct InProcessClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: EngineHandle,
    metrics: ClientMetrics,
    retry: RetryPolicy,
}

impl InProcessClient {
    /// A client of `engine`; `retry` paces calls sent again after `Overloaded`.
    pub fn new(engine: EngineHandle, retry: RetryPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                metrics: ClientMetrics::new(),
                retry,
            }),
        }
    }

    /// The engine this client calls.
    pub fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }

    /// The live counters shared by every clone.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.inner.metrics
    }

    /// A copy of the counters, for the run record.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// A session on `node_id` with the full `config`, checked as taken (API.md 2.2).
    pub async fn create_session(
        &self,
        node_id: &str,
        config: &SessionConfig,
        ttl_seconds: Option<u64>,
    ) -> Result<Session, KatoError> {
        let mut session = Session::resume(String::new(), node_id, config.clone(), ttl_seconds);
        let opened = self.open(&mut session).await;
        self.tracked(Endpoint::CreateSession, opened)?;
        Ok(session)
    }

    /// A new session for the handle's node, config and TTL; the old STM is lost.
    pub async fn recreate_session(&self, session: &mut Session) -> Result<(), KatoError> {
        let renewed = self.renew(session).await;
        self.tracked(Endpoint::CreateSession, renewed)
    }

    /// Deletes the session: true if deleted, false if the engine no longer had it.
    pub async fn delete_session(&self, session: &Session) -> Result<bool, KatoError> {
        let site = session.site(Endpoint::DeleteSession);
        let answer = async {
            let (admitted, started) = self.admit(&site).await?;
            let engine = &self.inner.engine;
            let deleted = match engine.session(&session.id) {
                Ok(live) => {
                    engine.delete_session(&admitted, &live);
                    Ok(true)
                }
                Err(OpError::SessionNotFound { .. }) => Ok(false),
                Err(other) => Err(kato_error(&site, other)),
            };
            self.answered(&site, started);
            deleted
        };
        let answer = answer.await;
        self.tracked(Endpoint::DeleteSession, answer)
    }

    /// observe-sequence with every flag of `request` (see `KatoClient::observe_sequence`).
    pub async fn observe_sequence(
        &self,
        session: &mut Session,
        request: ObserveSequence,
        replay: Replay,
    ) -> Result<SequenceResult, KatoError> {
        let endpoint = Endpoint::ObserveSequence;
        let answer = self
            .on_session(session, endpoint, replay, |engine, admitted, live| {
                engine.observe_sequence(admitted, live, request)
            })
            .await;
        self.tracked(endpoint, answer)
    }

    /// clear-stm; a lost session is replaced by a new one (whose STM is empty, which is
    /// what was asked).
    pub async fn clear_stm(&self, session: &mut Session) -> Result<(), KatoError> {
        let endpoint = Endpoint::ClearStm;
        let sent = self
            .on_session(
                session,
                endpoint,
                Replay::Never,
                |engine, admitted, live| {
                    engine.clear_stm(admitted, live);
                    Ok(())
                },
            )
            .await;
        let answer = match sent {
            Err(err) if err.is_session_not_found() => self.renew(session).await,
            other => other,
        };
        self.tracked(endpoint, answer)
    }

    /// Every pattern of the node's KB as `(name, frequency)`, sorted by name.
    pub async fn kb_patterns(&self, node_id: &str) -> Result<Vec<(String, u64)>, KatoError> {
        let endpoint = Endpoint::KbPatterns;
        self.inner.metrics.call_started(endpoint);
        let started = Instant::now();
        let patterns = self.inner.engine.kb_frequencies(node_id);
        self.inner
            .metrics
            .request_answered(endpoint, started.elapsed());
        Ok(patterns)
    }

    /// Counts one typed call and, if it failed, its error class.
    fn tracked<T>(&self, endpoint: Endpoint, result: Result<T, KatoError>) -> Result<T, KatoError> {
        let metrics = &self.inner.metrics;
        metrics.call_started(endpoint);
        if let Err(err) = &result {
            metrics.call_failed(endpoint, err.class());
        }
        result
    }

    /// One call on the handle's live session; a lost one is replayed once on a new
    /// session when `replay` allows, as the HTTP client does.
    async fn on_session<T>(
        &self,
        session: &mut Session,
        endpoint: Endpoint,
        replay: Replay,
        op: impl FnOnce(&EngineHandle, &Admission, &LiveSession) -> Result<T, OpError>,
    ) -> Result<T, KatoError> {
        let engine = &self.inner.engine;
        let mut replayed = false;
        loop {
            let site = session.site(endpoint);
            let (admitted, started) = self.admit(&site).await?;
            let lost = match engine.session(&session.id) {
                Ok(live) => {
                    let out = op(engine, &admitted, &live);
                    drop(admitted);
                    self.answered(&site, started);
                    return out.map_err(|e| kato_error(&site, e));
                }
                Err(lost) => kato_error(&site, lost),
            };
            drop(admitted);
            self.answered(&site, started);
            if !(lost.is_session_not_found() && replay == Replay::OnFreshSession && !replayed) {
                return Err(lost);
            }
            tracing::warn!(error = %lost, "the engine lost the session; sending the call to a new one");
            self.renew(session).await?;
            self.inner.metrics.retried();
            replayed = true;
        }
    }

    /// Admits one request through the engine's gates; an `Overloaded` answer is sent
    /// again with backoff, up to `max_attempts` in all, each attempt counted as an
    /// answered request. Returns the admission and when the admitted attempt began.
    async fn admit(&self, site: &CallSite) -> Result<(Admission, Instant), KatoError> {
        // The engine answers at once: let the scheduler run other tasks (the
        // dispatcher, Ctrl-C) between calls, as an HTTP await would.
        tokio::task::consume_budget().await;
        let (engine, retry) = (&self.inner.engine, &self.inner.retry);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let busy = match engine.admit() {
                Ok(admitted) => return Ok((admitted, started)),
                Err(busy) => busy,
            };
            self.answered(site, started);
            if attempt >= retry.max_attempts.max(1) {
                return Err(kato_error(site, busy));
            }
            tracing::debug!(call = %site, "engine overloaded ({busy}), retrying");
            tokio::time::sleep(backoff(retry, attempt)).await;
            self.inner.metrics.retried();
            attempt += 1;
        }
    }

    /// Counts an answered request and its latency.
    fn answered(&self, site: &CallSite, started: Instant) {
        self.inner
            .metrics
            .request_answered(site.endpoint, started.elapsed());
    }

    /// A new session for the handle, counted as a recreation.
    async fn renew(&self, session: &mut Session) -> Result<(), KatoError> {
        self.open(session).await?;
        session.recreations += 1;
        self.inner.metrics.session_recreated();
        Ok(())
    }

    /// Creates a session for the handle's node, config and TTL and takes its id; one
    /// whose effective config differs from the one sent is deleted and refused.
    async fn open(&self, session: &mut Session) -> Result<(), KatoError> {
        let site = CallSite {
            endpoint: Endpoint::CreateSession,
            node_id: Some(session.node_id.clone()),
            session_id: None,
        };
        let (request, config) = session.create_request(&site)?;
        let (admitted, started) = self.admit(&site).await?;
        let engine = &self.inner.engine;
        let created = engine.create_session(&admitted, request);
        self.answered(&site, started);
        let live = created.map_err(|e| kato_error(&site, e))?;
        let site = CallSite {
            session_id: Some(live.id().to_owned()),
            ..site
        };
        if let Err(ignored) = check_config_taken(&site, &config, &Value::Object(live.config())) {
            // Not a session katotune will use: gone at once, not at its TTL.
            engine.delete_session(&admitted, &live);
            return Err(ignored);
        }
        session.id = live.id().to_owned();
        Ok(())
    }
}

/// The client error for an engine error: the [`ErrorKind`] the HTTP client makes of
/// the answer the routes give it (see `reply::op_error`), so both paths fail alike.
fn kato_error(site: &CallSite, err: OpError) -> KatoError {
    let message = err.to_string();
    let kind = match err {
        OpError::SessionNotFound { session_id } => ErrorKind::SessionNotFound {
            session_id,
            message,
        },
        OpError::BadRequest(detail) => ErrorKind::BadRequest { detail },
        OpError::ConfigRejected(errors) => ErrorKind::BadRequest {
            detail:
                json!({"error": "Configuration validation failed", "validation_errors": errors})
                    .to_string(),
        },
        OpError::TooManyObservations { .. } => ErrorKind::PayloadTooLarge,
        OpError::TimedOut { .. } => ErrorKind::GatewayTimeout,
        OpError::PoolBusy { .. } | OpError::Overloaded | OpError::StoreFailed(_) => {
            ErrorKind::Overloaded { body: message }
        }
        OpError::NotImplemented(body) => ErrorKind::NotImplemented { body },
        OpError::Internal => ErrorKind::ServerError { body: message },
        OpError::Conflict(body) => ErrorKind::UnexpectedStatus { status: 409, body },
    };
    KatoError::new(site.clone(), unknown_if_state_changing(site, kind))
}
