//! The embedded engine over real HTTP: KATO's names, learning semantics, error shapes,
//! sessions, concurrency, persistence (in `durability`) and the knobs.

#[path = "engine_http/durability.rs"]
mod durability;
#[path = "engine_http/lifecycle.rs"]
mod lifecycle;
#[path = "engine_http/support.rs"]
mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use support::{engine, name, training, Kato};

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
    let sid = kato.session("err", Value::Null).await;
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
