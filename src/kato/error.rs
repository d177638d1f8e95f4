//! Errors of the KATO client: one kind per answer shape the real server gives
//! (API.md section 1), plus the transport failures, each tied to the call it came from.
//!
//! Two questions every error answers for the trainer's run record:
//! - [`KatoError::was_sent`]: did the request reach the server, and may it have been
//!   applied? A learn whose outcome is unknown marks its sample "at risk".
//! - [`KatoError::class`]: a coarse class (connect, timeout, 4xx, 5xx, overload,
//!   session-expired, bad-response) for counting.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::metrics::Endpoint;

/// Where an error happened: the call, and the node and session it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// Which call.
    pub endpoint: Endpoint,
    /// The node (KB) the call was about, if any.
    pub node_id: Option<String>,
    /// The session the call was sent to, if any.
    pub session_id: Option<String>,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.endpoint.label())?;
        if let Some(node) = &self.node_id {
            write!(f, " on node {node}")?;
        }
        if let Some(session) = &self.session_id {
            write!(f, " in session {session}")?;
        }
        Ok(())
    }
}

/// A failed KATO call: where it happened and what went wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("KATO {call} failed: {kind}")]
pub struct KatoError {
    call: CallSite,
    kind: ErrorKind,
}

/// One 422 validation entry: where (`body.node_id`) and what (`Field required`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationProblem {
    /// The `loc` path joined with dots.
    pub location: String,
    /// The `msg`.
    pub message: String,
}

/// What went wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ErrorKind {
    /// 404 `SESSION_NOT_FOUND` (middleware) or 404 `Session X not found or expired`.
    #[error("session {session_id} is not known to the server (expired, or the server restarted and lost it): {message}")]
    SessionNotFound { session_id: String, message: String },
    /// Any other 404, e.g. a route this server does not have.
    #[error("not found (HTTP 404): {detail}; is this a KATO server of the expected version?")]
    NotFound { detail: String },
    /// 400 with `detail` as a string or an object (rendered as JSON).
    #[error("rejected as a bad request (HTTP 400): {detail}")]
    BadRequest { detail: String },
    /// 422: the body or query failed validation.
    #[error("rejected by validation (HTTP 422): {}", list_problems(.problems))]
    Validation { problems: Vec<ValidationProblem> },
    /// 500 with KATO's plain-text body.
    #[error("server error (HTTP 500, body {body:?}); see the KATO server log")]
    ServerError { body: String },
    /// 503: uvicorn's concurrency limit or the engine's own limits.
    #[error("server overloaded (HTTP 503, body {body:?}); lower the client concurrency or raise KATO_LIMIT_CONCURRENCY")]
    Overloaded { body: String },
    /// 413 from a proxy in front of KATO.
    #[error("request body too large (HTTP 413); a proxy in front of KATO limits body size, send fewer observations per call")]
    PayloadTooLarge,
    /// 504 from a proxy in front of KATO.
    #[error(
        "gateway timeout (HTTP 504); a proxy in front of KATO gave up waiting, raise its timeout"
    )]
    GatewayTimeout,
    /// 501.
    #[error("not implemented by this server (HTTP 501, body {body:?})")]
    NotImplemented { body: String },
    /// A status the KATO contract does not produce (e.g. 405, 502).
    #[error("unexpected HTTP {status} (body {body:?})")]
    UnexpectedStatus { status: u16, body: String },
    /// No answer in time on a call that changes nothing.
    #[error("no answer within {}; raise request_timeout if the server is only slow", humantime::format_duration(*.after))]
    Timeout { after: Duration },
    /// The request never reached the server (refused, DNS, connect timeout).
    #[error("could not reach {url}: {reason}; the request was not sent")]
    NotSent { url: String, reason: String },
    /// The server refused connections for longer than `outage_timeout`.
    #[error("{url} refused connections for {}; is KATO running? raise health.timeout in the profile to wait longer", humantime::format_duration(*.waited))]
    ServerDown { url: String, waited: Duration },
    /// The connection broke after the request went out, on a call that changes nothing.
    #[error("connection lost before the answer arrived: {reason}")]
    ConnectionLost { reason: String },
    /// A call that changes state may or may not have been applied; it was not repeated.
    #[error("outcome unknown, the server may have applied it ({cause}); not repeated: treat its sample as at risk")]
    OutcomeUnknown { cause: Box<ErrorKind> },
    /// A 2xx answer whose body is not the JSON this call expects.
    #[error("the answer is not the expected JSON ({reason}); it starts with {body_start:?}")]
    BadResponse { reason: String, body_start: String },
    /// The request could not be written as JSON (nothing was sent).
    #[error("could not encode the request as JSON: {reason}")]
    Encode { reason: String },
    /// KATO dropped the session config silently (API.md 2.2): the effective value differs.
    #[error("the server does not use the session config sent: {key} = {sent} was sent, it uses {got}; check the profile's session_config values")]
    ConfigIgnored {
        key: &'static str,
        sent: String,
        got: String,
    },
}

fn list_problems(problems: &[ValidationProblem]) -> String {
    let parts: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.location, p.message))
        .collect();
    parts.join("; ")
}

/// Whether the request reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sent {
    /// Provably never reached the server: nothing was applied, safe to send again.
    No,
    /// May have reached it and may have been applied (timeout, lost connection, 5xx).
    Maybe,
    /// Reached it and got a definite answer (4xx, 503, or a 2xx we could not read).
    Yes,
}

/// Coarse error class for counting in the run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorClass {
    /// Could not connect, or the connection broke.
    #[serde(rename = "connect")]
    Connect,
    /// No answer in time.
    #[serde(rename = "timeout")]
    Timeout,
    /// The server rejected the request (4xx other than session-not-found).
    #[serde(rename = "4xx")]
    ClientError,
    /// The server failed (5xx other than 503).
    #[serde(rename = "5xx")]
    ServerError,
    /// 503: too busy.
    #[serde(rename = "overload")]
    Overload,
    /// The session was gone.
    #[serde(rename = "session-expired")]
    SessionExpired,
    /// The answer was not what KATO's contract promises.
    #[serde(rename = "bad-response")]
    BadResponse,
}

impl ErrorClass {
    /// Every class.
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::ClientError,
        ErrorClass::ServerError,
        ErrorClass::Overload,
        ErrorClass::SessionExpired,
        ErrorClass::BadResponse,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl KatoError {
    /// An error of `kind` from the call at `call`.
    pub fn new(call: CallSite, kind: ErrorKind) -> Self {
        Self { call, kind }
    }

    /// Where it happened.
    pub fn call(&self) -> &CallSite {
        &self.call
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether the request reached the server.
    pub fn was_sent(&self) -> Sent {
        self.kind.was_sent()
    }

    /// True when the server may have applied the call: its sample is "at risk".
    pub fn may_have_applied(&self) -> bool {
        match self.kind {
            ErrorKind::BadResponse { .. } => self.call.endpoint.changes_state(),
            _ => self.was_sent() == Sent::Maybe,
        }
    }

    /// Coarse class for counting.
    pub fn class(&self) -> ErrorClass {
        self.kind.class()
    }

    /// True when the server dropped or changed the session config sent (API.md 2.2):
    /// a permanent answer from this server, not worth retrying.
    pub fn is_config_ignored(&self) -> bool {
        matches!(self.kind, ErrorKind::ConfigIgnored { .. })
    }

    /// True for `SessionNotFound`.
    pub fn is_session_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::SessionNotFound { .. })
    }
}

impl ErrorKind {
    /// Whether a request that failed this way reached the server.
    pub fn was_sent(&self) -> Sent {
        match self {
            ErrorKind::NotSent { .. } | ErrorKind::ServerDown { .. } | ErrorKind::Encode { .. } => {
                Sent::No
            }
            ErrorKind::Timeout { .. }
            | ErrorKind::ConnectionLost { .. }
            | ErrorKind::OutcomeUnknown { .. }
            | ErrorKind::ServerError { .. }
            | ErrorKind::GatewayTimeout => Sent::Maybe,
            ErrorKind::UnexpectedStatus { status, .. } if *status >= 500 => Sent::Maybe,
            _ => Sent::Yes,
        }
    }

    /// Coarse class for counting.
    pub fn class(&self) -> ErrorClass {
        match self {
            ErrorKind::SessionNotFound { .. } => ErrorClass::SessionExpired,
            ErrorKind::NotFound { .. }
            | ErrorKind::BadRequest { .. }
            | ErrorKind::Validation { .. }
            | ErrorKind::PayloadTooLarge
            | ErrorKind::Encode { .. } => ErrorClass::ClientError,
            ErrorKind::ServerError { .. }
            | ErrorKind::NotImplemented { .. }
            | ErrorKind::GatewayTimeout => ErrorClass::ServerError,
            ErrorKind::UnexpectedStatus { status, .. } if *status >= 500 => ErrorClass::ServerError,
            ErrorKind::UnexpectedStatus { .. } => ErrorClass::ClientError,
            ErrorKind::Overloaded { .. } => ErrorClass::Overload,
            ErrorKind::Timeout { .. } => ErrorClass::Timeout,
            ErrorKind::NotSent { .. }
            | ErrorKind::ServerDown { .. }
            | ErrorKind::ConnectionLost { .. } => ErrorClass::Connect,
            ErrorKind::OutcomeUnknown { cause } => cause.class(),
            ErrorKind::BadResponse { .. } | ErrorKind::ConfigIgnored { .. } => {
                ErrorClass::BadResponse
            }
        }
    }
}

/// The client could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `base_url` is not an `http://host:port` URL.
    #[error("KATO base URL {url:?} is not usable: {reason}; give it as http://HOST:PORT")]
    BadBaseUrl { url: String, reason: String },
    /// reqwest refused the settings.
    #[error("could not build the HTTP client for {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}
