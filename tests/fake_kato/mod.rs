//! A fake KATO for command-line tests: an HTTP proxy on loopback in front of
//! katotune's embedded engine, which passes every call through and can spoil one
//! answer the way a different server would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use katotune::engine::{self, EngineConfig, RunningEngine};
use katotune::kato::pattern::wire_name;
use serde_json::Value;

/// How the proxy spoils the first training answer that names a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoil {
    /// Pass everything through.
    Nothing,
    /// Replace the name with another valid-looking one.
    WrongName,
    /// Replace the name with `null`.
    NullName,
    /// Apply the call, then answer HTTP 500 (its sample's outcome is unknown).
    FailAfterApplying,
}

/// `Authorization` of `user:s3cr3t-pw` (what a URL with that userinfo must send).
pub const BASIC_AUTH: &str = "Basic dXNlcjpzM2NyM3QtcHc=";

struct Shared {
    engine_url: String,
    client: reqwest::Client,
    spoil: Spoil,
    spoiled: AtomicBool,
    /// (the engine's name, the name sent instead) of the spoiled answer.
    swapped: Mutex<Option<(Option<String>, Option<String>)>>,
    with_auth: AtomicU64,
    probe_name: String,
}

/// The running proxy and engine.
pub struct FakeKato {
    pub port: u16,
    shared: Arc<Shared>,
    engine: Option<RunningEngine>,
}

impl FakeKato {
    /// Starts an in-memory engine and the proxy in front of it.
    pub async fn start(spoil: Spoil) -> Self {
        let engine = engine::start(EngineConfig::default()).await.unwrap();
        let shared = Arc::new(Shared {
            engine_url: engine.url(),
            client: reqwest::Client::new(),
            spoil,
            spoiled: AtomicBool::new(false),
            swapped: Mutex::new(None),
            with_auth: AtomicU64::new(0),
            // The readiness probe's pattern (its answers are never spoiled).
            probe_name: katotune::stack::probe::probe_names().0,
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            port,
            shared,
            engine: Some(engine),
        }
    }

    /// The (right, sent) names of the spoiled answer, once one was spoiled.
    pub fn swapped(&self) -> Option<(Option<String>, Option<String>)> {
        self.shared.swapped.lock().unwrap().clone()
    }

    /// Calls that carried [`BASIC_AUTH`].
    pub fn calls_with_auth(&self) -> u64 {
        self.shared.with_auth.load(Ordering::SeqCst)
    }

    /// Stops the engine.
    pub async fn stop(mut self) {
        if let Some(e) = self.engine.take() {
            e.shutdown().await;
        }
    }
}

async fn forward(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers
        .get("authorization")
        .is_some_and(|v| v == BASIC_AUTH)
    {
        s.with_auth.fetch_add(1, Ordering::SeqCst);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = s
        .client
        .request(method, format!("{}{path}", s.engine_url))
        .body(body);
    if let Some(ct) = headers.get("content-type") {
        request = request.header("content-type", ct.as_bytes());
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let bytes = answer.bytes().await.unwrap();
    if status.is_success() && uri.path().ends_with("/observe-sequence") {
        let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
        if let Some(spoiled) = spoil(&s, &mut doc) {
            return spoiled;
        }
        return (status, axum::Json(doc)).into_response();
    }
    (
        status,
        [("content-type", "application/json")],
        bytes.to_vec(),
    )
        .into_response()
}

/// Spoils the first training answer that names a pattern; `Some` replaces the answer.
fn spoil(s: &Shared, doc: &mut Value) -> Option<Response> {
    let is_probe = doc["final_learned_pattern"] == s.probe_name.as_str();
    let named = doc["auto_learned_patterns"]
        .as_array()
        .is_some_and(|names| {
            names
                .iter()
                .any(|n| n.as_str().is_some_and(|n| !n.is_empty()))
        });
    if s.spoil == Spoil::Nothing || is_probe || !named || s.spoiled.swap(true, Ordering::SeqCst) {
        return None;
    }
    if s.spoil == Spoil::FailAfterApplying {
        return Some((StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response());
    }
    let instead = match s.spoil {
        Spoil::WrongName => Value::from(wire_name(&[vec!["sorted", "otherwise"]])),
        _ => Value::Null,
    };
    // The first place that names a pattern: an auto-learn result, else the final learn.
    let auto = doc["results"]
        .as_array()
        .and_then(|r| r.iter().position(|r| r["auto_learned_pattern"].is_string()));
    let slot = match auto {
        Some(i) => &mut doc["results"][i]["auto_learned_pattern"],
        None if doc["final_learned_pattern"].is_string() => &mut doc["final_learned_pattern"],
        None => return None,
    };
    let right = slot.as_str().map(str::to_string);
    *slot = instead.clone();
    *s.swapped.lock().unwrap() = Some((right, instead.as_str().map(str::to_string)));
    None
}
