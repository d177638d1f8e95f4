//! One KATO request on the wire, with the retry rules of the `client` module doc:
//! never-sent requests and 503s are sent again with backoff, a refused connection
//! waits for the server to come back, and anything that may have reached the server
//! is returned as it is.

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ClientConfig, RetryPolicy};
use crate::kato::error::{CallSite, ErrorKind, KatoError, ValidationProblem};
use crate::kato::metrics::ClientMetrics;

/// How much of a body an error message shows.
const BODY_PREVIEW_CHARS: usize = 200;

/// The shared state behind every clone of a `KatoClient`.
#[derive(Debug)]
pub(super) struct Transport {
    pub(super) http: reqwest::Client,
    pub(super) base_url: String,
    pub(super) config: ClientConfig,
    /// Shared with the transports of the same client's other replicas
    /// ([`Transport::sibling`]), so a run's counters cover every replica.
    pub(super) metrics: Arc<ClientMetrics>,
    outage_since: Mutex<Option<Instant>>,
}

/// A request ready to send (and to send again).
pub(super) struct Request {
    pub(super) site: CallSite,
    pub(super) method: Method,
    /// Path and query, already percent-encoded, starting with `/`.
    pub(super) path: String,
    pub(super) body: Option<Vec<u8>>,
}

/// Why one attempt got no HTTP answer.
enum Unanswered {
    /// Provably never reached the server.
    NotSent { refused: bool, reason: String },
    /// Went out (or may have), and the answer never fully arrived.
    Lost { timed_out: bool, reason: String },
}

impl Transport {
    pub(super) fn new(http: reqwest::Client, base_url: String, config: ClientConfig) -> Self {
        Self {
            http,
            base_url,
            config,
            metrics: Arc::new(ClientMetrics::new()),
            outage_since: Mutex::new(None),
        }
    }

    /// A transport to another server (`base_url`) with this one's connection pool,
    /// settings and metrics; outages are tracked per server.
    pub(super) fn sibling(&self, base_url: String) -> Self {
        let mut config = self.config.clone();
        config.base_url.clone_from(&base_url);
        Self {
            http: self.http.clone(),
            base_url,
            config,
            metrics: Arc::clone(&self.metrics),
            outage_since: Mutex::new(None),
        }
    }

    /// Sends `request` under the retry rules; the 2xx body on success.
    pub(super) async fn send(&self, request: &Request) -> Result<String, KatoError> {
        let policy = &self.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let fail = |kind| Err(KatoError::new(request.site.clone(), kind));
            match self.attempt(request).await {
                Ok((status, body)) if status.is_success() => return Ok(body),
                Ok((StatusCode::SERVICE_UNAVAILABLE, body)) if attempt < max_attempts => {
                    tracing::debug!(call = %request.site, body, "KATO overloaded (503), retrying");
                    tokio::time::sleep(backoff(policy, attempt)).await;
                }
                Ok((status, body)) => return fail(status_error(&request.site, status, &body)),
                Err(Unanswered::NotSent { refused, reason }) => {
                    if attempt >= max_attempts {
                        return fail(ErrorKind::NotSent {
                            url: self.base_url.clone(),
                            reason,
                        });
                    }
                    if refused {
                        self.wait_for_server(&request.site).await?;
                    } else {
                        tokio::time::sleep(backoff(policy, attempt)).await;
                    }
                }
                Err(Unanswered::Lost { timed_out, reason }) => {
                    return fail(self.lost_error(&request.site, timed_out, reason));
                }
            }
            self.metrics.retried();
            attempt += 1;
        }
    }

    /// One HTTP exchange, counted and (when answered) timed.
    async fn attempt(&self, request: &Request) -> Result<(StatusCode, String), Unanswered> {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self.http.request(request.method.clone(), url);
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let endpoint = request.site.endpoint;
        let started = Instant::now();
        let answer = match builder.send().await {
            Ok(response) => {
                let status = response.status();
                response.text().await.map(|body| (status, body))
            }
            Err(err) => Err(err),
        };
        match answer {
            Ok(answer) => {
                self.metrics.request_answered(endpoint, started.elapsed());
                Ok(answer)
            }
            Err(err) => {
                self.metrics.request_unanswered(endpoint);
                Err(unanswered(&err))
            }
        }
    }

    /// The error for a request that went out and got no full answer.
    fn lost_error(&self, site: &CallSite, timed_out: bool, reason: String) -> ErrorKind {
        let cause = if timed_out {
            ErrorKind::Timeout {
                after: self.config.request_timeout,
            }
        } else {
            ErrorKind::ConnectionLost { reason }
        };
        unknown_if_state_changing(site, cause)
    }

    /// Polls `GET /health` with backoff until anything answers or `outage_timeout` passes.
    async fn wait_for_server(&self, site: &CallSite) -> Result<(), KatoError> {
        self.outage_began();
        let started = Instant::now();
        let deadline = started + self.config.outage_timeout;
        tracing::warn!(call = %site, url = %self.base_url, "KATO refuses connections, waiting for it");
        let mut poll = 1;
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.outage_ended();
                return Err(KatoError::new(
                    site.clone(),
                    ErrorKind::ServerDown {
                        url: self.base_url.clone(),
                        waited: started.elapsed(),
                    },
                ));
            }
            tokio::time::sleep(backoff(&self.config.retry, poll).min(deadline - now)).await;
            if self.health_answers().await {
                tracing::info!(url = %self.base_url, waited = ?started.elapsed(), "KATO is back");
                self.outage_ended();
                return Ok(());
            }
            poll += 1;
        }
    }

    async fn health_answers(&self) -> bool {
        let probe_timeout = self.config.connect_timeout.max(Duration::from_secs(1));
        let url = format!("{}/health", self.base_url);
        self.http
            .get(url)
            .timeout(probe_timeout)
            .send()
            .await
            .is_ok()
    }

    /// Counts an outage once, however many tasks notice it.
    fn outage_began(&self) {
        let mut since = self.outage_since.lock().unwrap_or_else(|p| p.into_inner());
        if since.is_none() {
            *since = Some(Instant::now());
            self.metrics.outage_began();
        }
    }

    fn outage_ended(&self) {
        let mut since = self.outage_since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(started) = since.take() {
            self.metrics.outage_ended(started.elapsed());
        }
    }
}

/// Exponential backoff with full jitter: uniform in `0..=min(max, base * 2^(n-1))`.
pub(super) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let ceiling = policy
        .base_backoff
        .saturating_mul(1 << exponent)
        .min(policy.max_backoff);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=micros))
}

fn unanswered(err: &reqwest::Error) -> Unanswered {
    let reason = error_chain(err);
    if err.is_connect() {
        Unanswered::NotSent {
            refused: caused_by_refusal(err),
            reason,
        }
    } else {
        Unanswered::Lost {
            timed_out: err.is_timeout(),
            reason,
        }
    }
}

fn caused_by_refusal(err: &reqwest::Error) -> bool {
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = inner.source();
    }
    false
}

/// The error and its causes on one line: reqwest's own message alone says little.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(inner) = source {
        parts.push(inner.to_string());
        source = inner.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// On a call that changes state, a maybe-applied failure becomes `OutcomeUnknown`.
pub(super) fn unknown_if_state_changing(site: &CallSite, cause: ErrorKind) -> ErrorKind {
    if site.endpoint.changes_state() && cause.was_sent() == crate::kato::error::Sent::Maybe {
        ErrorKind::OutcomeUnknown {
            cause: Box::new(cause),
        }
    } else {
        cause
    }
}

/// The error for a non-2xx answer, by status and body shape (API.md section 1).
fn status_error(site: &CallSite, status: StatusCode, body: &str) -> ErrorKind {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let detail = json.as_ref().and_then(|j| j.get("detail"));
    let kind = match status.as_u16() {
        404 => not_found(site, json.as_ref(), detail, body),
        400 => ErrorKind::BadRequest {
            detail: render_detail(detail, body),
        },
        422 => ErrorKind::Validation {
            problems: validation_problems(detail, body),
        },
        413 => ErrorKind::PayloadTooLarge,
        500 => ErrorKind::ServerError {
            body: preview(body),
        },
        501 => ErrorKind::NotImplemented {
            body: preview(body),
        },
        503 => ErrorKind::Overloaded {
            body: preview(body),
        },
        504 => ErrorKind::GatewayTimeout,
        other => ErrorKind::UnexpectedStatus {
            status: other,
            body: preview(body),
        },
    };
    unknown_if_state_changing(site, kind)
}

fn not_found(
    site: &CallSite,
    json: Option<&Value>,
    detail: Option<&Value>,
    body: &str,
) -> ErrorKind {
    let middleware = json
        .and_then(|j| j.get("error"))
        .filter(|e| e.get("code").and_then(Value::as_str) == Some("SESSION_NOT_FOUND"));
    let session = || site.session_id.clone().unwrap_or_default();
    if let Some(error) = middleware {
        let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
        return ErrorKind::SessionNotFound {
            session_id: text("session_id").unwrap_or_else(session),
            message: text("message").unwrap_or_else(|| preview(body)),
        };
    }
    let detail = render_detail(detail, body);
    if site.session_id.is_some() && detail.contains("not found or expired") {
        return ErrorKind::SessionNotFound {
            session_id: session(),
            message: detail,
        };
    }
    ErrorKind::NotFound { detail }
}

fn render_detail(detail: Option<&Value>, body: &str) -> String {
    match detail {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => preview(body),
    }
}

fn validation_problems(detail: Option<&Value>, body: &str) -> Vec<ValidationProblem> {
    let Some(Value::Array(entries)) = detail else {
        return vec![ValidationProblem {
            location: String::new(),
            message: render_detail(detail, body),
        }];
    };
    entries
        .iter()
        .map(|entry| {
            let location = entry
                .get("loc")
                .and_then(Value::as_array)
                .map(|parts| {
                    let parts: Vec<String> = parts
                        .iter()
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                        .collect();
                    parts.join(".")
                })
                .unwrap_or_default();
            let message = entry
                .get("msg")
                .and_then(Value::as_str)
                .map_or_else(|| entry.to_string(), str::to_owned);
            ValidationProblem { location, message }
        })
        .collect()
}

/// Parses a 2xx body as `T`, or says which call got what instead.
pub(super) fn parse<T: DeserializeOwned>(site: &CallSite, body: &str) -> Result<T, KatoError> {
    serde_json::from_str(body).map_err(|err| bad_response(site, err.to_string(), body))
}

pub(super) fn bad_response(site: &CallSite, reason: String, body: &str) -> KatoError {
    KatoError::new(
        site.clone(),
        ErrorKind::BadResponse {
            reason,
            body_start: preview(body),
        },
    )
}

/// A request body as JSON bytes.
pub(super) fn encode<T: serde::Serialize>(
    site: &CallSite,
    value: &T,
) -> Result<Vec<u8>, KatoError> {
    serde_json::to_vec(value).map_err(|err| {
        KatoError::new(
            site.clone(),
            ErrorKind::Encode {
                reason: err.to_string(),
            },
        )
    })
}

/// Percent-encodes one path or query segment (anything but RFC 3986 unreserved).
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn preview(body: &str) -> String {
    body.chars().take(BODY_PREVIEW_CHARS).collect()
}
