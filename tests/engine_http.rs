//! The embedded engine over real HTTP: KATO's names, learning semantics, error shapes,
//! sessions, concurrency, persistence and the knobs.

use std::time::Duration;

use katotune::engine::{start, EngineConfig, EngineLimits, RunningEngine};
use katotune::kato::pattern::wire_name;
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Deserialize)]
struct Vector {
    description: String,
    events: Vec<Vec<String>>,
    wire_name: String,
    server_stores: bool,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string("tests/data/hash-vectors.json").expect("vectors file");
    serde_json::from_str(&text).expect("vectors parse")
}

async fn engine_with(limits: EngineLimits) -> RunningEngine {
    let config = EngineConfig {
        limits,
        ..EngineConfig::default()
    };
    start(config).await.expect("engine starts")
}

async fn engine() -> RunningEngine {
    engine_with(EngineLimits::default()).await
}

struct Kato {
    http: Client,
    url: String,
}

impl Kato {
    fn new(engine: &RunningEngine) -> Self {
        Self {
            http: Client::new(),
            url: engine.url(),
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
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

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.send("POST", path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {value}");
        value
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.send("GET", path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
        value
    }

    async fn session(&self, node: &str, config: Value) -> String {
        let body = json!({"node_id": node, "config": config});
        let created = self.post("/sessions", body).await;
        created["session_id"]
            .as_str()
            .expect("session id")
            .to_owned()
    }

    async fn observe_seq(&self, sid: &str, items: &[&[&str]], flags: Value) -> Value {
        let mut body = json!({"observations": items.iter().map(|i| json!({"strings": i})).collect::<Vec<_>>()});
        if let (Some(b), Some(f)) = (body.as_object_mut(), flags.as_object()) {
            b.extend(f.clone());
        }
        self.post(&format!("/sessions/{sid}/observe-sequence"), body)
            .await
    }

    async fn frequency(&self, node: &str, name: &str) -> Value {
        let found = self.get(&format!("/pattern/{name}?node_id={node}")).await;
        found["pattern"]["pattern"]["frequency"].clone()
    }
}

fn name(events: &[&[&str]]) -> String {
    wire_name(events)
}

const TRAINING: Value = Value::Null;

fn training() -> Value {
    json!({"process_predictions": false})
}

#[tokio::test]
async fn all_vectors_get_the_servers_names_through_observe_and_learn() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("vectors", training()).await;
    for v in vectors() {
        for event in &v.events {
            kato.post(
                &format!("/sessions/{sid}/observe"),
                json!({"strings": event}),
            )
            .await;
        }
        let learned = kato
            .post(&format!("/sessions/{sid}/learn"), json!({}))
            .await;
        let expected = if v.server_stores {
            v.wire_name.as_str()
        } else {
            ""
        };
        assert_eq!(learned["pattern_name"], expected, "{}", v.description);
        assert_eq!(kato.get(&format!("/sessions/{sid}/stm")).await["length"], 0);
    }
}

#[tokio::test]
async fn all_vectors_get_the_servers_names_through_observe_sequence() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("vectors", training()).await;
    for v in vectors() {
        let items: Vec<&[String]> = v.events.iter().map(Vec::as_slice).collect();
        let body = json!({"observations": items.iter().map(|i| json!({"strings": i})).collect::<Vec<_>>(), "learn_at_end": true});
        let out = kato
            .post(&format!("/sessions/{sid}/observe-sequence"), body)
            .await;
        let expected = if v.server_stores {
            v.wire_name.as_str()
        } else {
            ""
        };
        assert_eq!(out["final_learned_pattern"], expected, "{}", v.description);
        assert_eq!(
            out["auto_learned_patterns"],
            json!([expected]),
            "{}",
            v.description
        );
    }
}

#[tokio::test]
async fn relearning_increments_frequency_and_the_kb_listing_shows_it() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("freq", training()).await;
    let hello = name(&[&["hello", "world"], &["again"]]);
    for _ in 0..3 {
        kato.observe_seq(
            &sid,
            &[&["world", "hello"], &["again"]],
            json!({"learn_at_end": true}),
        )
        .await;
    }
    assert_eq!(kato.frequency("freq", &hello).await, 3);
    let found = kato.get(&format!("/pattern/{hello}?node_id=freq")).await;
    assert_eq!(found["node_id"], "freq_kato");
    assert_eq!(
        found["pattern"]["pattern"]["pattern_data"],
        json!([["hello", "world"], ["again"]])
    );
    assert_eq!(found["pattern"]["pattern"]["length"], 3);
    let listing = kato.get("/katotune/kb/freq").await;
    assert_eq!(
        listing,
        json!({"kb_id": "freq_kato", "patterns": [{"name": hello, "frequency": 3}]})
    );
    let missing = kato.get("/pattern/PTRN|0000?node_id=freq").await;
    assert_eq!(missing["pattern"]["status"], "error");
}

#[tokio::test]
async fn learn_needs_two_symbols_and_a_non_empty_stm() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("min", training()).await;
    kato.post(
        &format!("/sessions/{sid}/observe"),
        json!({"strings": ["x"]}),
    )
    .await;
    let learned = kato
        .post(&format!("/sessions/{sid}/learn"), json!({}))
        .await;
    assert_eq!(
        (learned["status"].clone(), learned["pattern_name"].clone()),
        (json!("learned"), json!(""))
    );
    assert_eq!(
        kato.get(&format!("/sessions/{sid}/stm")).await["stm"],
        json!([])
    );
    let (status, body) = kato
        .send("POST", &format!("/sessions/{sid}/learn"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"detail": "Cannot learn from empty STM"}));
    assert_eq!(kato.get("/katotune/kb/min").await["patterns"], json!([]));
}

#[tokio::test]
async fn auto_learn_follows_clear_and_rolling_modes() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let clear = kato
        .session(
            "auto",
            json!({"max_pattern_length": 3, "stm_mode": "CLEAR"}),
        )
        .await;
    let out = kato
        .observe_seq(&clear, &[&["a"], &["b"], &["c"], &["d"]], json!({}))
        .await;
    assert_eq!(
        out["results"][2]["auto_learned_pattern"],
        name(&[&["a"], &["b"], &["c"]])
    );
    assert_eq!(out["results"][3]["auto_learned_pattern"], Value::Null);
    assert_eq!(
        kato.get(&format!("/sessions/{clear}/stm")).await["stm"],
        json!([["d"]])
    );

    let rolling = kato
        .session(
            "auto",
            json!({"max_pattern_length": 3, "stm_mode": "ROLLING"}),
        )
        .await;
    let out = kato
        .observe_seq(
            &rolling,
            &[&["a"], &["b"], &["c"], &["d"], &["e"]],
            json!({}),
        )
        .await;
    let expected = [
        name(&[&["a"], &["b"], &["c"]]),
        name(&[&["b"], &["c"], &["d"]]),
        name(&[&["c"], &["d"], &["e"]]),
    ];
    assert_eq!(out["auto_learned_patterns"], json!(expected));
    kato.post(&format!("/sessions/{rolling}/clear-stm"), json!({}))
        .await;
    let out = kato
        .observe_seq(
            &rolling,
            &[&["p"], &["q"], &["r"], &["s"]],
            json!({"learn_at_end": true}),
        )
        .await;
    let expected = [
        name(&[&["p"], &["q"], &["r"]]),
        name(&[&["q"], &["r"], &["s"]]),
        name(&[&["r"], &["s"]]),
    ];
    assert_eq!(out["auto_learned_patterns"], json!(expected));
}

#[tokio::test]
async fn learn_after_each_gives_one_name_per_observation() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("lae", training()).await;
    let out = kato
        .observe_seq(
            &sid,
            &[&["x"], &["z", "y"], &["w"]],
            json!({"learn_after_each": true}),
        )
        .await;
    assert_eq!(
        out["auto_learned_patterns"],
        json!(["", name(&[&["y", "z"]]), ""])
    );
    assert_eq!(out["status"], "completed");
    assert_eq!(out["final_learned_pattern"], Value::Null);
}

#[tokio::test]
async fn metadata_merges_and_accumulators_leak_until_clear_stm() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("meta", training()).await;
    let observe = |strings: Value, book: &str, joy: f64| json!({"strings": strings, "metadata": {"book": book, "n": 3}, "emotives": {"joy": joy}});
    kato.post(
        &format!("/sessions/{sid}/observe"),
        observe(json!(["a"]), "A", 1.0),
    )
    .await;
    kato.post(
        &format!("/sessions/{sid}/observe"),
        observe(json!(["b"]), "B", 0.5),
    )
    .await;
    let first = kato
        .post(&format!("/sessions/{sid}/learn"), json!({}))
        .await;
    kato.post(
        &format!("/sessions/{sid}/observe"),
        observe(json!(["c", "d"]), "C", 0.25),
    )
    .await;
    let second = kato
        .post(&format!("/sessions/{sid}/learn"), json!({}))
        .await;
    let name2 = second["pattern_name"].as_str().expect("name").to_owned();
    let found = kato.get(&format!("/pattern/{name2}?node_id=meta")).await;
    let pattern = &found["pattern"]["pattern"];
    assert_eq!(
        pattern["metadata"],
        json!({"book": ["A", "B", "C"], "n": ["3"]})
    );
    assert_eq!(pattern["emotives"].as_array().map(Vec::len), Some(3));
    kato.post(&format!("/sessions/{sid}/clear-stm"), json!({}))
        .await;
    kato.observe_seq(&sid, &[&["a"], &["b"]], json!({"learn_at_end": true}))
        .await;
    let name1 = first["pattern_name"].as_str().expect("name");
    let found = kato.get(&format!("/pattern/{name1}?node_id=meta")).await;
    assert_eq!(found["pattern"]["pattern"]["frequency"], 2);
    assert_eq!(
        found["pattern"]["pattern"]["metadata"],
        json!({"book": ["A", "B"], "n": ["3"]})
    );
}

#[tokio::test]
async fn errors_have_katos_shapes() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("err", TRAINING).await;
    let (status, body) = kato
        .send("POST", "/sessions/nope/observe", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "SESSION_NOT_FOUND");
    assert_eq!(body["error"]["session_id"], "nope");
    let (status, body) = kato.send("DELETE", "/sessions/nope", None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("SESSION_NOT_FOUND"))
    );
    let (status, body) = kato.send("GET", "/sessions/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Session nope not found or expired"}));
    let (status, body) = kato
        .send(
            "POST",
            &format!("/sessions/{sid}/config"),
            Some(json!({"config": {"persistence": 0}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["detail"]["validation_errors"]["persistence"],
        "Must be an integer between 1 and 100"
    );
    let (status, body) = kato
        .send("POST", "/sessions", Some(json!({"config": {}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "node_id"]));
    assert_eq!(body["detail"][0]["type"], "missing");
    let (status, body) = kato
        .send(
            "POST",
            &format!("/sessions/{sid}/observe"),
            Some(json!({"strings": [1]})),
        )
        .await;
    assert_eq!(
        (status, body["detail"][0]["type"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("string_type"))
    );
    for raw in [
        &b"{\"strings\": ["[..],
        &b"{\"strings\": [\"\xff\"]}"[..],
        &b"not json"[..],
    ] {
        let resp = kato
            .http
            .post(format!("{}/sessions/{sid}/observe", kato.url))
            .header("content-type", "application/json")
            .body(raw.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["detail"][0]["type"], "json_invalid");
    }
    let (status, body) = kato.send("GET", "/observe", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
    );
    let (status, body) = kato
        .send("GET", &format!("/sessions/{sid}/learn"), None)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method Not Allowed"})
        )
    );
    let (status, body) = kato
        .send("GET", &format!("/sessions/{sid}/predictions"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("predictions")));
    let (status, body) = kato
        .send(
            "POST",
            "/sessions",
            Some(json!({"node_id": "n", "ttl_seconds": -1})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!("Internal Server Error")
        )
    );
}

#[tokio::test]
async fn sessions_report_config_and_expire_after_their_ttl() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let created = kato
        .post("/sessions", json!({"node_id": "ttl", "ttl_seconds": 1, "config": {"max_pattern_length": 5, "process_predictions": false}}))
        .await;
    assert_eq!(created["session_config"]["max_pattern_length"], 5);
    assert_eq!(created["session_config"]["persistence"], 5);
    let sid = created["session_id"].as_str().expect("id").to_owned();
    assert!(sid.starts_with("session-") && sid.len() > 50);
    let dropped = kato
        .post(
            "/sessions",
            json!({"node_id": "ttl", "config": {"max_pattern_length": -1}}),
        )
        .await;
    assert_eq!(
        dropped["session_config"]["max_pattern_length"], 0,
        "invalid create config is dropped"
    );
    assert_eq!(
        kato.get(&format!("/sessions/{sid}/exists")).await["exists"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = kato
        .send(
            "POST",
            &format!("/sessions/{sid}/observe"),
            Some(json!({"strings": ["a"]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("SESSION_NOT_FOUND"))
    );
}

#[tokio::test]
async fn concurrent_sessions_on_one_node_count_exactly() {
    let engine = engine().await;
    let kato = std::sync::Arc::new(Kato::new(&engine));
    let chunks: Vec<[String; 5]> = (0..40)
        .map(|c| std::array::from_fn(|t| format!("w{}", (c * 7 + t) % 23)))
        .collect();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (kato, chunks) = (kato.clone(), chunks.clone());
        tasks.push(tokio::spawn(async move {
            let sid = kato
                .session(
                    "shared",
                    json!({"max_pattern_length": 5, "process_predictions": false}),
                )
                .await;
            let items: Vec<Value> = chunks
                .iter()
                .flatten()
                .map(|t| json!({"strings": [t]}))
                .collect();
            kato.post(
                &format!("/sessions/{sid}/observe-sequence"),
                json!({"observations": items}),
            )
            .await
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("task")["auto_learned_patterns"]
                .as_array()
                .map(Vec::len),
            Some(40)
        );
    }
    let mut expected = std::collections::BTreeMap::new();
    for chunk in &chunks {
        let events: Vec<Vec<String>> = chunk.iter().map(|t| vec![t.clone()]).collect();
        *expected.entry(wire_name(&events)).or_insert(0u64) += 8;
    }
    let listing = kato.get("/katotune/kb/shared").await;
    let got: std::collections::BTreeMap<String, u64> = listing["patterns"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["frequency"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn the_knowledge_base_survives_a_restart_on_the_same_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kb.sqlite");
    let config = EngineConfig {
        db_path: Some(db.clone()),
        ..EngineConfig::default()
    };
    let abc = name(&[&["a"], &["b"], &["c"]]);
    for round in 1..=2u64 {
        let engine = start(config.clone()).await.expect("start");
        let kato = Kato::new(&engine);
        let sid = kato.session("disk", training()).await;
        kato.observe_seq(
            &sid,
            &[&["a"], &["b"], &["c"]],
            json!({"learn_at_end": true}),
        )
        .await;
        assert_eq!(kato.frequency("disk", &abc).await, round);
        engine.shutdown().await;
    }
    let conn = rusqlite::Connection::open(&db).expect("open");
    let (freq, data): (i64, String) = conn
        .query_row(
            "SELECT frequency, pattern_data FROM patterns WHERE kb_id = 'disk_kato'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!((freq, data.as_str()), (2, r#"[["a"],["b"],["c"]]"#));
}

/// Opens a raw connection and sends a request whose body never completes.
async fn stuck_request(engine: &RunningEngine, path: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(engine.addr)
        .await
        .expect("connect");
    let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

/// Retries `GET path` until it answers `want` (the stuck request may not be in yet).
async fn eventually(kato: &Kato, path: &str, want: StatusCode) -> Value {
    for _ in 0..100 {
        let (status, body) = kato.send("GET", path, None).await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never answered {want}");
}

#[tokio::test]
async fn the_knobs_answer_413_503_504_and_report_stm_drops() {
    let limits = EngineLimits {
        batch_size: Some(4),
        stm_capacity: 3,
        ..EngineLimits::default()
    };
    let engine = engine_with(limits).await;
    let kato = Kato::new(&engine);
    let sid = kato.session("knobs", training()).await;
    let (status, body) = kato
        .send(
            "POST",
            &format!("/sessions/{sid}/observe-sequence"),
            Some(json!({"observations": vec![json!({"strings": ["a"]}); 5]})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("batch_size")));
    let out = kato
        .observe_seq(&sid, &[&["a"], &["b"], &["c"], &["d"]], json!({}))
        .await;
    assert!(out["stm_capacity_note"]
        .as_str()
        .is_some_and(|n| n.contains('1')));
    assert_eq!(
        kato.get(&format!("/sessions/{sid}/stm")).await["stm"],
        json!([["b"], ["c"], ["d"]])
    );
    assert_eq!(
        kato.get("/status").await["engine"]["counters"]["stm_events_dropped"],
        1
    );

    let pool = engine_with(EngineLimits {
        connection_pool_size: Some(1),
        ..EngineLimits::default()
    })
    .await;
    let kato = Kato::new(&pool);
    let _held = stuck_request(&pool, "/sessions").await;
    let body = eventually(&kato, "/sessions/count", StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("CONNECTION_POOL_SIZE")));
    assert_eq!(
        kato.get("/health").await["status"],
        "healthy",
        "non-session routes are not pooled"
    );

    let limited = engine_with(EngineLimits {
        limit_concurrency: Some(1),
        ..EngineLimits::default()
    })
    .await;
    let kato = Kato::new(&limited);
    let _held = stuck_request(&limited, "/sessions").await;
    let body = eventually(&kato, "/health", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body, json!("Service Unavailable"));

    let slow = engine_with(EngineLimits {
        request_timeout: Some(Duration::from_millis(200)),
        ..EngineLimits::default()
    })
    .await;
    let mut stream = stuck_request(&slow, "/sessions").await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"));
}
