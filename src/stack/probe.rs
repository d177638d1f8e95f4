//! Readiness: `/health` answers, and a real learn gives the name katotune computes.

use std::time::{Duration, Instant};

use super::StackError;
use crate::kato::api::{Observation, ObserveSequence, SessionConfig};
use crate::kato::client::{ClientConfig, KatoClient, Replay, RetryPolicy};
use crate::kato::pattern::wire_name;

/// Node the probe learns on, kept apart from every training node.
pub const PROBE_NODE: &str = "katotune_probe";

/// Which readiness check failed last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Health,
    Probe,
}

/// A client for checks: one attempt per call, no waiting out an outage, answers
/// within `timeout`.
pub fn check_client(url: &str, timeout: Duration) -> Result<KatoClient, StackError> {
    let mut config = ClientConfig::new(url);
    config.request_timeout = timeout;
    config.outage_timeout = Duration::ZERO;
    config.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    KatoClient::new(config).map_err(|e| StackError::NotReady(e.to_string()))
}

/// Waits, with backoff from `interval`, until the server at `url` is ready or
/// `timeout` has passed.
pub async fn ready(url: &str, timeout: Duration, interval: Duration) -> Result<(), StackError> {
    let client = check_client(url, Duration::from_secs(10).min(timeout))?;
    let start = Instant::now();
    let mut wait = interval;
    loop {
        let (check, error) = match probe_once(&client).await {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        if start.elapsed() + wait > timeout {
            let what = match check {
                Check::Health => "GET /health did not answer",
                Check::Probe => "/health answered, but learning a probe pattern failed",
            };
            return Err(StackError::NotReady(format!(
                "{what} within {} at {url}: {error}",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// One round of checks; the error names the check that failed.
pub async fn probe_once(client: &KatoClient) -> Result<(), (Check, String)> {
    client
        .health()
        .await
        .map_err(|e| (Check::Health, e.to_string()))?;
    let probe = |e: crate::kato::error::KatoError| (Check::Probe, e.to_string());
    let mut session = client
        .create_session(PROBE_NODE, &SessionConfig::default(), Some(60))
        .await
        .map_err(probe)?;
    let request = ObserveSequence {
        observations: vec![
            Observation::symbol("katotune"),
            Observation::symbol("probe"),
        ],
        learn_at_end: true,
        ..Default::default()
    };
    let answer = client
        .observe_sequence(&mut session, &request, Replay::Never)
        .await;
    let _ = client.delete_session(&session).await;
    let answer = answer.map_err(probe)?;
    let expected = wire_name(&[vec!["katotune"], vec!["probe"]]);
    match answer.final_learned_pattern.as_deref() {
        Some(name) if name == expected => Ok(()),
        other => Err((
            Check::Probe,
            format!("the server named the probe pattern {other:?}, katotune computes {expected:?}: pattern names differ, so nothing learned here would match"),
        )),
    }
}
