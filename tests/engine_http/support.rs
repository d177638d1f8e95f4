//! Shared helpers: an engine on a loopback port and a raw JSON client for it.

use katotune::engine::{start, EngineConfig, EngineLimits, RunningEngine};
use katotune::kato::pattern::wire_name;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

pub async fn engine_with(limits: EngineLimits) -> RunningEngine {
    let config = EngineConfig {
        limits,
        ..EngineConfig::default()
    };
    start(config).await.expect("engine starts")
}

pub async fn engine() -> RunningEngine {
    engine_with(EngineLimits::default()).await
}

pub struct Kato {
    pub http: Client,
    pub url: String,
}

impl Kato {
    pub fn new(engine: &RunningEngine) -> Self {
        Self {
            http: Client::new(),
            url: engine.url(),
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.send("POST", path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {value}");
        value
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, value) = self.send("GET", path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
        value
    }

    pub async fn session(&self, node: &str, config: Value) -> String {
        let body = json!({"node_id": node, "config": config});
        let created = self.post("/sessions", body).await;
        created["session_id"]
            .as_str()
            .expect("session id")
            .to_owned()
    }

    pub async fn observe_seq(&self, sid: &str, items: &[&[&str]], flags: Value) -> Value {
        let mut body = json!({"observations": items.iter().map(|i| json!({"strings": i})).collect::<Vec<_>>()});
        if let (Some(b), Some(f)) = (body.as_object_mut(), flags.as_object()) {
            b.extend(f.clone());
        }
        self.post(&format!("/sessions/{sid}/observe-sequence"), body)
            .await
    }

    pub async fn frequency(&self, node: &str, name: &str) -> Value {
        let found = self.get(&format!("/pattern/{name}?node_id={node}")).await;
        found["pattern"]["pattern"]["frequency"].clone()
    }
}

pub fn name(events: &[&[&str]]) -> String {
    wire_name(events)
}

pub fn training() -> Value {
    json!({"process_predictions": false})
}
