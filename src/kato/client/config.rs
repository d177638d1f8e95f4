//! Where a `KatoClient` connects and how patient it is: timeouts and retry backoff.

use std::time::Duration;

use crate::kato::error::SetupError;

/// Backoff for requests that may be sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request in all, the first included.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; it doubles per attempt.
    pub base_backoff: Duration,
    /// Ceiling of any one backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// How to reach one KATO server and how patient to be with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `http://host:port` of the KATO server.
    pub base_url: String,
    /// Whole-request timeout. KATO has none of its own and long observe-sequence
    /// calls are legitimate, so keep it generous.
    pub request_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this; keep it below uvicorn's 5 s.
    pub pool_idle_timeout: Duration,
    /// Backoff for requests that may be sent again.
    pub retry: RetryPolicy,
    /// How long to wait for a server that refuses connections to come back.
    pub outage_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for a server at `base_url`: 300 s requests, 5 s connect, 4 s idle
    /// pool, 5 attempts, and 120 s of patience for a restarting server.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            request_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(4),
            retry: RetryPolicy::default(),
            outage_timeout: Duration::from_secs(120),
        }
    }
}

/// Refuses a base URL that is not `http://HOST:PORT` (`given` is the URL as the
/// caller wrote it, for the message).
pub(super) fn check_base_url(base_url: &str, given: &str) -> Result<(), SetupError> {
    let bad = |reason: String| SetupError::BadBaseUrl {
        url: given.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(bad(
            "only plain http is supported (KATO serves no TLS)".to_owned()
        ));
    }
    Ok(())
}
