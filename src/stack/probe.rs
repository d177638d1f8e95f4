//! Readiness: `/health` answers, and a real learn gives the name katotune computes,
//! without leaving a trace.
//!
//! Each probe learns on a node of its own (`katotune_probe_<random>`), with the
//! session config training sends, and always ends by deleting that node's KB
//! (`clear-all`, which KATO applies to the node's ClickHouse partition and Redis keys,
//! API.md 2.8) and the session, whether the learn worked or not. A server that drops
//! or changes that config (API.md 2.2) is a permanent answer: the probe stops at once.
//!
//! The probe pattern holds U+1FAE0, a character Python 3.10 (Unicode 13) escapes in
//! `repr` and Python 3.11 (Unicode 14) prints as is. KATO 3.10.1's image runs Python
//! 3.10, whose names katotune computes; a KATO built on a newer Python names every
//! pattern with such characters differently. The probe tells that server apart and
//! warns (its ASCII-only patterns still match), since a run stops at the first
//! pattern whose name differs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::StackError;
use crate::kato::api::{Observation, ObserveSequence, SessionConfig};
use crate::kato::client::{ClientConfig, KatoClient, Replay, RetryPolicy, Session};
use crate::kato::pattern::wire_name;
use crate::profile::Profile;

/// Prefix of the nodes the probe learns on, kept apart from every training node.
pub const PROBE_NODE: &str = "katotune_probe";

/// Which readiness check failed last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Health,
    Probe,
    /// The server dropped or changed the session config: do not retry.
    ConfigIgnored,
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

/// [`ready_with`] for a profile: its health timeout and interval, and the session
/// config keys it adds to training sessions.
pub async fn ready_for(url: &str, profile: &Profile) -> Result<(), StackError> {
    let extra = profile.training.session.config.clone();
    ready_with(url, profile.health.timeout, profile.health.interval, &extra).await
}

/// [`ready_with`] with katotune's training session config and no extra keys.
pub async fn ready(url: &str, timeout: Duration, interval: Duration) -> Result<(), StackError> {
    ready_with(url, timeout, interval, &BTreeMap::new()).await
}

/// Waits, with backoff from `interval`, until the server at `url` is ready or
/// `timeout` has passed; `extra` are the profile's session config keys. Fails at
/// once when the server ignores the session config.
pub async fn ready_with(
    url: &str,
    timeout: Duration,
    interval: Duration,
    extra: &BTreeMap<String, Value>,
) -> Result<(), StackError> {
    let client = check_client(url, Duration::from_secs(10).min(timeout))?;
    let start = Instant::now();
    let mut wait = interval;
    loop {
        let (check, error) = match probe_once(&client, extra).await {
            Ok(_) => return Ok(()),
            Err(failure) => failure,
        };
        if check == Check::ConfigIgnored {
            return Err(StackError::NotReady(error));
        }
        if start.elapsed() + wait > timeout {
            let what = match check {
                Check::Health => "GET /health did not answer",
                _ => "/health answered, but learning a probe pattern failed",
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

/// One round of checks on a fresh probe node; `Ok` gives that node's id (its KB and
/// session are already gone). The error names the check that failed.
pub async fn probe_once(
    client: &KatoClient,
    extra: &BTreeMap<String, Value>,
) -> Result<String, (Check, String)> {
    client
        .health()
        .await
        .map_err(|e| (Check::Health, e.to_string()))?;
    let node = format!("{PROBE_NODE}_{:08x}", rand::random::<u32>());
    let config = SessionConfig {
        extra: extra.clone(),
        ..SessionConfig::default()
    };
    let mut session = match client.create_session(&node, &config, Some(60)).await {
        Ok(session) => session,
        Err(e) if e.is_config_ignored() => return Err((Check::ConfigIgnored, ignored(&e, extra))),
        Err(e) => return Err((Check::Probe, e.to_string())),
    };
    let request = ObserveSequence {
        observations: vec![
            Observation::symbol("katotune"),
            Observation::symbol("probe"),
            Observation::symbol(NEWER_UNICODE),
        ],
        learn_at_end: true,
        ..Default::default()
    };
    let answer = client
        .observe_sequence(&mut session, &request, Replay::Never)
        .await;
    let cleaned = forget(client, &session).await;
    let answer = answer.map_err(|e| (Check::Probe, e.to_string()))?;
    cleaned.map_err(|e| (Check::Probe, e))?;
    let (expected, newer_python) = probe_names();
    match answer.final_learned_pattern.as_deref() {
        Some(name) if name == expected => Ok(node),
        Some(name) if name == newer_python => {
            tracing::warn!(
                "the server names patterns as Python 3.11 or newer does: text with characters \
                 newer than Unicode 13 (such as U+1FAE0) gets other names than KATO 3.10.1's \
                 (Python 3.10), and a run stops at the first such pattern. Use KATO's own \
                 image (Python 3.10), or train only text without such characters"
            );
            Ok(node)
        }
        other => Err((
            Check::Probe,
            format!("the server named the probe pattern {other:?}, katotune computes {expected:?}: pattern names differ, so nothing learned here would match"),
        )),
    }
}

/// A character Python 3.10's `repr` escapes (`\U0001fae0`) and 3.11's prints: U+1FAE0
/// MELTING FACE, new in Unicode 14.
const NEWER_UNICODE: &str = "\u{1FAE0}";

/// The probe pattern's name as KATO 3.10.1 gives it (katotune's rule), and as a KATO
/// on Python 3.11 or newer gives it (U+1FAE0 printed, not escaped, in the `repr`).
pub fn probe_names() -> (String, String) {
    use sha1::Digest;
    let events = [vec!["katotune"], vec!["probe"], vec![NEWER_UNICODE]];
    let newer = crate::kato::pattern::events_repr(&events).replace("\\U0001fae0", NEWER_UNICODE);
    let newer = format!("PTRN|{}", hex::encode(sha1::Sha1::digest(newer.as_bytes())));
    (wire_name(&events), newer)
}

/// Deletes the probe node's KB (`clear-all`) and its session; says what was left.
async fn forget(client: &KatoClient, session: &Session) -> Result<(), String> {
    let url = format!(
        "{}/sessions/{}/clear-all",
        client.base_url().trim_end_matches('/'),
        session.id
    );
    let cleared = reqwest::Client::new()
        .post(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| match r.status().is_success() {
            true => Ok(()),
            false => Err(format!("HTTP {}", r.status())),
        });
    let deleted = client.delete_session(session).await;
    cleared.map_err(|e| {
        format!(
            "the probe learned on node {} but could not delete that KB ({e}); remove it with \
             `katotune kb reset stores --node {}`",
            session.node_id, session.node_id
        )
    })?;
    deleted.map(drop).map_err(|e| e.to_string())
}

fn ignored(e: &crate::kato::error::KatoError, extra: &BTreeMap<String, Value>) -> String {
    let whose = match extra.is_empty() {
        true => "katotune's training settings (the profile adds none)".to_string(),
        false => format!(
            "katotune's training settings plus the profile's session.config keys {}",
            extra.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "the server ignored {whose}: {e}. Training would run with other settings than \
         katotune's (with predictions on, KATO is about 80x slower); the probe session was \
         deleted. Use a server that honours the session config (KATO 3.10), or remove the \
         keys it rejects"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_tells_a_newer_python_apart() {
        let (kato_3_10, newer) = probe_names();
        assert_ne!(kato_3_10, newer);
        // The repr KATO 3.10.1 hashes escapes the character; Python 3.11's does not.
        let events = [vec!["katotune"], vec!["probe"], vec![NEWER_UNICODE]];
        assert_eq!(
            crate::kato::pattern::events_repr(&events),
            "[['katotune'], ['probe'], ['\\U0001fae0']]"
        );
        assert!(newer.starts_with("PTRN|") && newer.len() == 45);
    }
}
