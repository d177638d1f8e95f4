//! The async KATO HTTP client: typed calls, session handles, and retry rules that never
//! learn a chunk twice.
//!
//! One [`KatoClient`] talks to one KATO base URL through one pooled `reqwest::Client`.
//! Its idle connections are dropped after 4 s by default, before uvicorn closes them at
//! 5 s, so a reused connection is rarely found dead. Clones share the pool and the
//! [`ClientMetrics`].
//!
//! # Retry rules
//!
//! Learning is not idempotent: a chunk learned twice doubles its pattern's frequency.
//! So the client only sends a request again when it knows the first one did nothing.
//!
//! 1. **Never sent**: connection refused, DNS failure, connect timeout. The request
//!    did not reach the server. It is sent again with exponential backoff and full
//!    jitter (`RetryPolicy`), up to `max_attempts` attempts in all.
//! 2. **Server down**: when the connection is *refused*, the client first waits for
//!    the server: it polls `GET /health` with backoff until anything answers, for at
//!    most `outage_timeout` (then [`ErrorKind::ServerDown`]), and sends the request
//!    again; that counts as one of the `max_attempts`. Each outage is counted once,
//!    with its length, in the metrics, however many tasks were waiting.
//! 3. **503 Overloaded** is sent again with backoff: uvicorn (and katotune's engine)
//!    rejects it before the application runs.
//! 4. **Outcome unknown**: a timeout, a connection lost after sending, or a 500/504
//!    on a call that changes state (observe, observe-sequence, learn, ...) is **never**
//!    sent again. It is returned as [`ErrorKind::OutcomeUnknown`], so the trainer marks
//!    the sample "at risk". On read-only calls the same failures come back as
//!    `Timeout`, `ConnectionLost` or `ServerError`.
//! 5. **Session lost** (404, expired or the server restarted): the call was rejected
//!    before it ran. If the caller passed [`Replay::OnFreshSession`], the client creates
//!    a new session with the same node, config and TTL, puts its id in the
//!    [`Session`] handle, and sends the call once more there. With [`Replay::Never`]
//!    (and always for `learn`, whose STM died with the session) the error is returned
//!    and the handle is left alone; [`KatoClient::recreate_session`] renews it.
//!    `clear_stm` and `update_session_config` always recreate: a fresh session is
//!    exactly what they ask for. Recreations are counted.
//!
//! Every other answer (400, 404, 413, 422, 501, a 2xx with unexpected JSON) is returned
//! at once as a typed [`KatoError`] naming the call, node and session.

mod answers;
mod config;
mod in_process;
mod session;
mod transport;

use std::future::Future;
use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use self::answers::{check_config_taken, expect_status, ConfigUpdate, KbListing, StatusAnswer};
use self::config::check_base_url;
pub use self::config::{ClientConfig, RetryPolicy};
pub use self::in_process::InProcessClient;
pub use self::session::{Replay, Session};
pub(crate) use self::transport::segment;
use self::transport::{bad_response, encode, parse, Request, Transport};
use super::api::{
    Health, LearnResult, Observation, ObserveResult, PatternResult, SequenceResult, SessionConfig,
    SessionInfo, StmResult, StoredPattern,
};
use super::error::{CallSite, KatoError, SetupError};
use super::metrics::{ClientMetrics, Endpoint, MetricsSnapshot};

/// Async client of one KATO server; cheap to clone.
#[derive(Debug, Clone)]
pub struct KatoClient {
    transport: Arc<Transport>,
}

impl KatoClient {
    /// A client for the server in `config`, with its own connection pool.
    pub fn new(config: ClientConfig) -> Result<Self, SetupError> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        check_base_url(&base_url, &config.base_url)?;
        // KATO runs on loopback, a compose network or a LAN: a forward proxy from the
        // environment would only get in the way.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(config.pool_idle_timeout)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|source| SetupError::Http {
                url: base_url.clone(),
                source,
            })?;
        Ok(Self {
            transport: Arc::new(Transport::new(http, base_url, config)),
        })
    }

    /// A client of another server of the same stack (a KATO replica at `base_url`):
    /// same connection pool, timeouts and retry policy, and the same
    /// [`ClientMetrics`], so a run's counters cover every replica. Outages are waited
    /// for per server.
    pub fn at(&self, base_url: &str) -> Result<Self, SetupError> {
        let base_url = base_url.trim_end_matches('/');
        if base_url == self.base_url() {
            return Ok(self.clone());
        }
        check_base_url(base_url, base_url)?;
        Ok(Self {
            transport: Arc::new(self.transport.sibling(base_url.to_owned())),
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.transport.base_url
    }

    /// The live counters shared by every clone.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.transport.metrics
    }

    /// A copy of the counters, for the run record.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.transport.metrics.snapshot()
    }

    /// `GET /health`. KATO answers 200 even when `unhealthy`; read `status`.
    pub async fn health(&self) -> Result<Health, KatoError> {
        let site = CallSite {
            endpoint: Endpoint::Health,
            node_id: None,
            session_id: None,
        };
        self.tracked(
            Endpoint::Health,
            self.json(site, Method::GET, "/health".into(), None),
        )
        .await
    }

    /// `POST /sessions` with the full `config` sent explicitly; checks that KATO
    /// really took the keys that matter (it drops an invalid config silently).
    pub async fn create_session(
        &self,
        node_id: &str,
        config: &SessionConfig,
        ttl_seconds: Option<u64>,
    ) -> Result<Session, KatoError> {
        let mut session = Session::resume(String::new(), node_id, config.clone(), ttl_seconds);
        self.tracked(Endpoint::CreateSession, self.open(&mut session))
            .await?;
        Ok(session)
    }

    /// Creates a new session for `session`'s node, config and TTL and points the handle
    /// at it. The old session's STM is lost; its KB is not.
    pub async fn recreate_session(&self, session: &mut Session) -> Result<(), KatoError> {
        self.tracked(Endpoint::CreateSession, self.renew(session))
            .await
    }

    /// `GET /sessions/{sid}`.
    pub async fn get_session(&self, session: &Session) -> Result<SessionInfo, KatoError> {
        let site = session.site(Endpoint::GetSession);
        let path = format!("/sessions/{}", segment(&session.id));
        self.tracked(
            Endpoint::GetSession,
            self.json(site, Method::GET, path, None),
        )
        .await
    }

    /// `DELETE /sessions/{sid}`: true if deleted, false if the server no longer had it.
    pub async fn delete_session(&self, session: &Session) -> Result<bool, KatoError> {
        let site = session.site(Endpoint::DeleteSession);
        let path = format!("/sessions/{}", segment(&session.id));
        let call = async {
            match self.json::<Value>(site, Method::DELETE, path, None).await {
                Ok(_) => Ok(true),
                Err(err) if err.is_session_not_found() => Ok(false),
                Err(err) => Err(err),
            }
        };
        self.tracked(Endpoint::DeleteSession, call).await
    }

    /// `POST /sessions/{sid}/config` with the full config. The handle keeps it, so a
    /// recreated session gets it too; if KATO lost the session, a new one is created
    /// with this config.
    pub async fn update_session_config(
        &self,
        session: &mut Session,
        config: &SessionConfig,
    ) -> Result<(), KatoError> {
        let endpoint = Endpoint::SessionConfig;
        let call = async {
            let body = encode(&session.site(endpoint), &ConfigUpdate { config })?;
            let sent = self
                .on_session::<StatusAnswer>(session, endpoint, "config", Some(body), Replay::Never)
                .await;
            match sent {
                Err(err) if err.is_session_not_found() => {
                    session.config = config.clone();
                    self.renew(session).await
                }
                Err(err) => Err(err),
                Ok(answer) => {
                    expect_status(&session.site(endpoint), &answer.status, "okay")?;
                    session.config = config.clone();
                    Ok(())
                }
            }
        };
        self.tracked(endpoint, call).await
    }

    /// `POST /sessions/{sid}/observe` of one observation.
    pub async fn observe(
        &self,
        session: &mut Session,
        observation: &Observation,
        replay: Replay,
    ) -> Result<ObserveResult, KatoError> {
        let endpoint = Endpoint::Observe;
        let call = async {
            let body = encode(&session.site(endpoint), observation)?;
            self.on_session(session, endpoint, "observe", Some(body), replay)
                .await
        };
        self.tracked(endpoint, call).await
    }

    /// `POST /sessions/{sid}/observe-sequence` with every flag of `request`. Names come
    /// back in `auto_learned_patterns`, `final_learned_pattern` and
    /// `results[i].auto_learned_pattern`.
    pub async fn observe_sequence(
        &self,
        session: &mut Session,
        request: &impl serde::Serialize,
        replay: Replay,
    ) -> Result<SequenceResult, KatoError> {
        let endpoint = Endpoint::ObserveSequence;
        let call = async {
            let body = encode(&session.site(endpoint), request)?;
            self.on_session(session, endpoint, "observe-sequence", Some(body), replay)
                .await
        };
        self.tracked(endpoint, call).await
    }

    /// `POST /sessions/{sid}/learn`: learns the session's STM. Never replayed: a new
    /// session would have an empty STM.
    pub async fn learn(&self, session: &mut Session) -> Result<LearnResult, KatoError> {
        let call = self.on_session(session, Endpoint::Learn, "learn", None, Replay::Never);
        self.tracked(Endpoint::Learn, call).await
    }

    /// `POST /sessions/{sid}/clear-stm`. If KATO lost the session, a new one (whose STM
    /// and accumulators are empty, which is what was asked) takes its place.
    pub async fn clear_stm(&self, session: &mut Session) -> Result<(), KatoError> {
        let endpoint = Endpoint::ClearStm;
        let call = async {
            let sent = self
                .on_session::<StatusAnswer>(session, endpoint, "clear-stm", None, Replay::Never)
                .await;
            match sent {
                Err(err) if err.is_session_not_found() => self.renew(session).await,
                Err(err) => Err(err),
                Ok(answer) => expect_status(&session.site(endpoint), &answer.status, "cleared"),
            }
        };
        self.tracked(endpoint, call).await
    }

    /// `GET /sessions/{sid}/stm`.
    pub async fn get_stm(&self, session: &Session) -> Result<StmResult, KatoError> {
        let site = session.site(Endpoint::GetStm);
        let path = format!("/sessions/{}/stm", segment(&session.id));
        self.tracked(Endpoint::GetStm, self.json(site, Method::GET, path, None))
            .await
    }

    /// `GET /pattern/{name}?node_id=NODE`; `Ok(None)` when KATO says not found (which
    /// it does with HTTP 200 and `pattern.status == "error"`).
    pub async fn get_pattern(
        &self,
        node_id: &str,
        name: &str,
    ) -> Result<Option<StoredPattern>, KatoError> {
        let site = node_site(Endpoint::GetPattern, node_id);
        let path = format!("/pattern/{}?node_id={}", segment(name), segment(node_id));
        let call = async {
            let answer: PatternResult = self.json(site.clone(), Method::GET, path, None).await?;
            match (answer.pattern.status.as_str(), answer.pattern.pattern) {
                ("error", _) => Ok(None),
                ("okay", Some(pattern)) => Ok(Some(pattern)),
                (status, _) => Err(bad_response(
                    &site,
                    format!("pattern.status is {status:?} and no pattern came with it"),
                    "",
                )),
            }
        };
        self.tracked(Endpoint::GetPattern, call).await
    }

    /// `GET /katotune/kb/{node_id}` (katotune's engine only): every pattern of the
    /// node's KB as `(name, frequency)`.
    pub async fn kb_patterns(&self, node_id: &str) -> Result<Vec<(String, u64)>, KatoError> {
        let site = node_site(Endpoint::KbPatterns, node_id);
        let path = format!("/katotune/kb/{}", segment(node_id));
        let call = async {
            let listing: KbListing = self.json(site, Method::GET, path, None).await?;
            let entries = listing.patterns.into_iter();
            Ok(entries.map(|entry| (entry.name, entry.frequency)).collect())
        };
        self.tracked(Endpoint::KbPatterns, call).await
    }

    /// Counts one typed call and, if it fails, its error class.
    async fn tracked<T>(
        &self,
        endpoint: Endpoint,
        call: impl Future<Output = Result<T, KatoError>>,
    ) -> Result<T, KatoError> {
        self.metrics().call_started(endpoint);
        let result = call.await;
        if let Err(err) = &result {
            self.metrics().call_failed(endpoint, err.class());
        }
        result
    }

    /// Sends one request under the retry rules and parses the 2xx body.
    async fn json<T: DeserializeOwned>(
        &self,
        site: CallSite,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, KatoError> {
        let request = Request {
            site,
            method,
            path,
            body,
        };
        let answer = self.transport.send(&request).await?;
        parse(&request.site, &answer)
    }

    /// `POST /sessions/{sid}/{sub}`, replayed once on a fresh session if allowed.
    async fn on_session<T: DeserializeOwned>(
        &self,
        session: &mut Session,
        endpoint: Endpoint,
        sub: &str,
        body: Option<Vec<u8>>,
        replay: Replay,
    ) -> Result<T, KatoError> {
        let path = |s: &Session| format!("/sessions/{}/{sub}", segment(&s.id));
        let site = session.site(endpoint);
        let first = self
            .json(site, Method::POST, path(session), body.clone())
            .await;
        match first {
            Err(err) if err.is_session_not_found() && replay == Replay::OnFreshSession => {
                tracing::warn!(error = %err, "KATO lost the session; sending the call to a new one");
                self.renew(session).await?;
                self.metrics().retried();
                let site = session.site(endpoint);
                self.json(site, Method::POST, path(session), body).await
            }
            other => other,
        }
    }

    /// Creates a session for the handle's node, config and TTL and takes its id.
    async fn renew(&self, session: &mut Session) -> Result<(), KatoError> {
        self.open(session).await?;
        session.recreations += 1;
        self.metrics().session_recreated();
        Ok(())
    }

    /// `POST /sessions` for the handle; sets its id.
    async fn open(&self, session: &mut Session) -> Result<(), KatoError> {
        let site = node_site(Endpoint::CreateSession, &session.node_id);
        let (request, config) = session.create_request(&site)?;
        let body = encode(&site, &request)?;
        let info: SessionInfo = self
            .json(site.clone(), Method::POST, "/sessions".into(), Some(body))
            .await?;
        let site = CallSite {
            session_id: Some(info.session_id.clone()),
            ..site
        };
        if let Err(ignored) = check_config_taken(&site, &config, &info.session_config) {
            // The server made a session katotune will not use: delete it at once
            // rather than leave it open until its TTL.
            let path = format!("/sessions/{}", segment(&info.session_id));
            let gone = site.clone();
            let _ = self.json::<Value>(gone, Method::DELETE, path, None).await;
            return Err(ignored);
        }
        session.id = info.session_id;
        Ok(())
    }
}

fn node_site(endpoint: Endpoint, node_id: &str) -> CallSite {
    CallSite {
        endpoint,
        node_id: Some(node_id.to_owned()),
        session_id: None,
    }
}
