//! Session lifecycle endpoints and clear-all, as a KATO client drives them.

use katotune::engine::{start, EngineConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::support::{engine, name, training, Kato};

#[tokio::test]
async fn sessions_can_be_read_extended_counted_and_deleted() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("life", training()).await;
    let info = kato.get(&format!("/sessions/{sid}")).await;
    assert_eq!(info["node_id"], "life");
    assert!(info["ttl_seconds"].as_i64().is_some_and(|t| t > 3500));
    let extended = kato
        .post(
            &format!("/sessions/{sid}/extend?ttl_seconds=7200"),
            json!({}),
        )
        .await;
    assert_eq!(
        extended,
        json!({"status": "extended", "session_id": sid, "ttl_seconds": 7200})
    );
    assert_eq!(kato.get("/sessions/count").await["active_session_count"], 1);
    let (status, _) = kato.send("DELETE", &format!("/sessions/{sid}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let exists = kato.get(&format!("/sessions/{sid}/exists")).await;
    assert_eq!(exists["exists"], false);
    assert_eq!(kato.get("/sessions/count").await["active_session_count"], 0);
}

#[tokio::test]
async fn config_updates_accept_both_shapes_and_change_auto_learn() {
    let engine = engine().await;
    let kato = Kato::new(&engine);
    let sid = kato.session("cfg", training()).await;
    let path = format!("/sessions/{sid}/config");
    let answer = kato
        .post(&path, json!({"config": {"max_pattern_length": 2}}))
        .await;
    assert_eq!(answer["message"], "Configuration updated");
    assert_eq!(kato.get(&path).await["config"]["max_pattern_length"], 2);
    let out = kato.observe_seq(&sid, &[&["a"], &["b"]], json!({})).await;
    assert_eq!(
        out["results"][1]["auto_learned_pattern"],
        name(&[&["a"], &["b"]])
    );
    kato.post(
        &path,
        json!({"stm_mode": "sideways", "max_pattern_length": 0}),
    )
    .await;
    let config = kato.get(&path).await["config"].clone();
    assert_eq!(
        (
            config["stm_mode"].clone(),
            config["max_pattern_length"].clone()
        ),
        (json!("CLEAR"), json!(0))
    );
}

#[tokio::test]
async fn clear_all_empties_the_nodes_kb_also_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        db_path: Some(dir.path().join("kb.sqlite")),
        ..EngineConfig::default()
    };
    let engine = start(config.clone()).await.expect("start");
    let kato = Kato::new(&engine);
    let keep = kato.session("keep", training()).await;
    let wipe = kato.session("wipe", training()).await;
    for sid in [&keep, &wipe] {
        kato.observe_seq(sid, &[&["a"], &["b"]], json!({"learn_at_end": true}))
            .await;
    }
    let cleared = kato
        .post(&format!("/sessions/{wipe}/clear-all"), json!({}))
        .await;
    assert_eq!(cleared["scope"], "all");
    assert_eq!(kato.get("/katotune/kb/wipe").await["patterns"], json!([]));
    engine.shutdown().await;

    let engine = start(config).await.expect("restart");
    let kato = Kato::new(&engine);
    assert_eq!(kato.get("/katotune/kb/wipe").await["patterns"], json!([]));
    let kept = kato.get("/katotune/kb/keep").await["patterns"].clone();
    assert_eq!(
        kept,
        json!([{"name": name(&[&["a"], &["b"]]), "frequency": 1}])
    );
    let found: Value = kato
        .get(&format!(
            "/pattern/{}?node_id=keep",
            name(&[&["a"], &["b"]])
        ))
        .await;
    assert_eq!(found["pattern"]["status"], "okay");
}
