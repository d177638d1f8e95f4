//! Shared pieces of the contract suite: an engine on a loopback port, a client for it
//! with a short retry policy, session configs and small observation builders.

use std::time::Duration;

use katotune::engine::{start, EngineConfig, EngineLimits, RunningEngine};
use katotune::kato::api::{Observation, ObserveSequence, SessionConfig, StmMode};
use katotune::kato::client::{ClientConfig, KatoClient, RetryPolicy, Session};
use katotune::kato::pattern::wire_name;
use serde::Deserialize;

/// One entry of `tests/data/hash-vectors.json` (API.md 3.6).
#[derive(Deserialize)]
pub struct Vector {
    pub description: String,
    pub events: Vec<Vec<String>>,
    pub normalized_events: Vec<Vec<String>>,
    pub wire_name: String,
    pub server_stores: bool,
}

impl Vector {
    /// The name a learn of this vector answers: `""` when the server stores nothing.
    pub fn learned_name(&self) -> &str {
        if self.server_stores {
            &self.wire_name
        } else {
            ""
        }
    }

    /// One observation per event, as a client sends them.
    pub fn observations(&self) -> Vec<Observation> {
        self.events.iter().map(|e| observation(e)).collect()
    }
}

pub fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string("tests/data/hash-vectors.json").expect("vectors file");
    let vectors: Vec<Vector> = serde_json::from_str(&text).expect("vectors parse");
    assert_eq!(vectors.len(), 55, "the contract has 55 naming vectors");
    vectors
}

pub async fn engine_with(limits: EngineLimits) -> RunningEngine {
    start(EngineConfig {
        limits,
        ..EngineConfig::default()
    })
    .await
    .expect("engine starts")
}

pub async fn engine() -> RunningEngine {
    engine_with(EngineLimits::default()).await
}

/// A client whose retries are few and quick, so exhausted retries show up fast.
pub fn client(engine: &RunningEngine) -> KatoClient {
    KatoClient::new(ClientConfig {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(5),
        },
        outage_timeout: Duration::from_secs(1),
        ..ClientConfig::new(engine.url())
    })
    .expect("client builds")
}

/// The training config of API.md section 8, with auto-learn at `mpl` events.
pub fn training(mpl: u32, mode: StmMode) -> SessionConfig {
    SessionConfig {
        max_pattern_length: mpl,
        stm_mode: mode,
        ..SessionConfig::default()
    }
}

pub async fn session(client: &KatoClient, node: &str, config: SessionConfig) -> Session {
    client
        .create_session(node, &config, None)
        .await
        .expect("session created")
}

pub fn observation<S: AsRef<str>>(symbols: &[S]) -> Observation {
    Observation {
        strings: symbols.iter().map(|s| s.as_ref().to_owned()).collect(),
        ..Observation::default()
    }
}

/// An observe-sequence of `items`, one observation each, with no flags set.
pub fn sequence(items: &[&[&str]]) -> ObserveSequence {
    ObserveSequence {
        observations: items.iter().map(|i| observation(i)).collect(),
        ..ObserveSequence::default()
    }
}

pub fn name(events: &[&[&str]]) -> String {
    wire_name(events)
}

/// Single-symbol events `a`, `b`, ... as the chunk of one token each.
pub fn tokens(symbols: &[&str]) -> Vec<Vec<String>> {
    symbols.iter().map(|s| vec![(*s).to_owned()]).collect()
}
