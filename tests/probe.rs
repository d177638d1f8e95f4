//! The readiness probe proves a server learns and leaves nothing behind, and stops at
//! once (deleting its session) when a server ignores katotune's session config.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{delete, get, post};
use axum::{Json, Router};
use katotune::engine::{self, EngineConfig};
use katotune::stack::probe::{self, check_client, probe_once, PROBE_NODE};
use serde_json::{json, Value};

#[tokio::test]
async fn the_probe_leaves_no_knowledge_base_pattern_or_session_behind() {
    let engine = engine::start(EngineConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..EngineConfig::default()
    })
    .await
    .expect("start the engine");
    let client = check_client(&engine.url(), Duration::from_secs(10)).unwrap();
    let node = probe_once(&client, &BTreeMap::new())
        .await
        .expect("the probe learns on the engine");
    assert!(node.starts_with(PROBE_NODE), "{node}");
    let again = probe_once(&client, &BTreeMap::new()).await.unwrap();
    assert_ne!(node, again, "every probe learns on a node of its own");
    for node in [&node, &again] {
        let left = client.kb_patterns(node).await.expect("read the probe's KB");
        assert!(
            left.is_empty(),
            "the probe left patterns on {node}: {left:?}"
        );
    }
    let count: Value = reqwest::get(format!("{}/sessions/count", engine.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        count["active_session_count"], 0,
        "the probe left a session open"
    );
    engine.shutdown().await;
}

/// A server that answers every session with predictions on (as KATO does when it
/// drops a config it does not validate), counting creates and deletes.
async fn server_ignoring_the_config() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let created = Arc::new(AtomicUsize::new(0));
    let deleted = Arc::new(AtomicUsize::new(0));
    let (c, d) = (created.clone(), deleted.clone());
    let app = Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route(
            "/sessions",
            post(move || {
                c.fetch_add(1, Ordering::SeqCst);
                async {
                    Json(json!({"session_id": "s-1", "node_id": "n",
                        "session_config": {"max_pattern_length": 0, "stm_mode": "CLEAR",
                                           "process_predictions": true}}))
                }
            }),
        )
        .route(
            "/sessions/{sid}",
            delete(move || {
                d.fetch_add(1, Ordering::SeqCst);
                async { Json(json!({"status": "deleted", "session_id": "s-1"})) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, created, deleted)
}

#[tokio::test]
async fn a_server_that_ignores_the_session_config_fails_at_once_and_its_session_is_deleted() {
    let (url, created, deleted) = server_ignoring_the_config().await;
    let err = probe::ready(&url, Duration::from_secs(120), Duration::from_millis(10))
        .await
        .expect_err("a server with predictions on is not ready for training");
    let text = err.to_string();
    assert!(
        text.contains("the server ignored katotune's training settings (the profile adds none)"),
        "{text}"
    );
    assert!(
        text.contains("process_predictions"),
        "names the key: {text}"
    );
    assert_eq!(
        created.load(Ordering::SeqCst),
        1,
        "no retry of a permanent answer"
    );
    assert_eq!(
        deleted.load(Ordering::SeqCst),
        1,
        "the probe session was deleted"
    );
}
