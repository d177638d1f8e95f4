//! Concurrency, persistence across restarts and kill -9, and the knobs.

use std::time::Duration;

use katotune::engine::{start, EngineConfig, EngineLimits, RunningEngine};
use katotune::kato::pattern::wire_name;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{engine, engine_with, name, training, Kato};

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

/// The frequency of `disk_kato`'s only pattern as the file holds it (None: no row).
fn stored_frequency(db: &std::path::Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row(
        "SELECT frequency FROM patterns WHERE kb_id = 'disk_kato'",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// An engine config on a KB file in a new temp dir (kept alive by the caller), and
/// the file's path.
fn on_a_file() -> (tempfile::TempDir, std::path::PathBuf, EngineConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kb.sqlite");
    let config = EngineConfig {
        db_path: Some(db.clone()),
        ..EngineConfig::default()
    };
    (dir, db, config)
}

#[tokio::test]
async fn the_checkpoint_barrier_commits_only_when_asked_and_survives_a_restart() {
    let (_dir, db, config) = on_a_file();
    let abc: &[&[&str]] = &[&["a"], &["b"], &["c"]];
    let engine = start(config.clone()).await.expect("start");
    let kato = Kato::new(&engine);
    let held = kato
        .post("/katotune/checkpoint", json!({"hold": true}))
        .await;
    assert_eq!(
        (held["held"].as_bool(), held["persistent"].as_bool()),
        (Some(true), Some(true))
    );
    let sid = kato.session("disk", training()).await;
    kato.observe_seq(&sid, abc, json!({"learn_at_end": true}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored_frequency(&db),
        None,
        "held: nothing is written before a checkpoint"
    );
    let committed = kato
        .post("/katotune/checkpoint", json!({"label": "one"}))
        .await;
    assert_eq!(committed["label"], "one");
    assert_eq!(
        stored_frequency(&db),
        Some(1),
        "the barrier answers once it is on disk"
    );
    let (status, _) = kato
        .send(
            "POST",
            "/katotune/checkpoint",
            Some(json!({"instance": "another"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a restarted server is told apart"
    );
    kato.observe_seq(&sid, abc, json!({"learn_at_end": true}))
        .await;
    engine.shutdown().await;
    // The hold outlives the process; what no checkpoint covered is gone, as after a crash.
    let engine = start(config.clone()).await.expect("restart");
    let kato = Kato::new(&engine);
    assert_eq!(kato.frequency("disk", &name(abc)).await, 1);
    let status = kato.get("/status").await;
    assert_eq!(status["engine"]["store"]["held_for_checkpoints"], true);
    let released = kato
        .post("/katotune/checkpoint", json!({"hold": false}))
        .await;
    assert_eq!(
        (released["held"].as_bool(), released["label"].as_str()),
        (Some(false), Some("one"))
    );
    let sid = kato.session("disk", training()).await;
    kato.observe_seq(&sid, abc, json!({"learn_at_end": true}))
        .await;
    engine.shutdown().await;
    assert_eq!(
        stored_frequency(&db),
        Some(2),
        "released: written behind again"
    );
}

/// A run's hold with rollback forgets only what an earlier *held* run left: on a server
/// nobody held, what other clients just learned (still waiting for the write behind)
/// is committed, not dropped. On a held server it is the interrupted run's partial work,
/// and goes.
#[tokio::test]
async fn a_runs_rollback_keeps_other_clients_learns_and_drops_an_interrupted_runs() {
    let (_dir, db, config) = on_a_file();
    let abc: &[&[&str]] = &[&["a"], &["b"], &["c"]];
    let engine = start(config).await.expect("start");
    let kato = Kato::new(&engine);
    let sid = kato.session("disk", training()).await;
    let learn = || kato.observe_seq(&sid, abc, json!({"learn_at_end": true}));
    let ask = |body: Value| kato.post("/katotune/checkpoint", body);
    let hold_with_rollback =
        |owner: &str| ask(json!({"hold": true, "rollback": true, "owner": owner}));
    // Learned and at once held with rollback: well within one write-behind interval.
    learn().await;
    hold_with_rollback("run-a").await;
    let abc_name = name(abc);
    let frequency = || kato.frequency("disk", &abc_name);
    assert_eq!(
        frequency().await,
        1,
        "a user's learn survives the next run's start"
    );
    assert_eq!(stored_frequency(&db), Some(1), "and is on disk");
    // run-a learns once more and releases; run-b takes over and keeps that learn.
    learn().await;
    ask(json!({"hold": false, "owner": "run-a"})).await;
    hold_with_rollback("run-b").await;
    assert_eq!(frequency().await, 2, "released: committed");
    // run-b learns and is interrupted; its next start rolls that learn back.
    learn().await;
    hold_with_rollback("run-b").await;
    assert_eq!(
        frequency().await,
        2,
        "a held run's uncommitted learn is rolled back"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_second_run_cannot_take_over_a_held_engine_from_a_live_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = start(EngineConfig {
        db_path: Some(dir.path().join("kb.sqlite")),
        ..EngineConfig::default()
    })
    .await
    .expect("start");
    let kato = Kato::new(&engine);
    let checkpoint = |body: Value| kato.send("POST", "/katotune/checkpoint", Some(body));
    let (status, _) = checkpoint(json!({"hold": true, "rollback": true, "owner": "run-a"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) =
        checkpoint(json!({"hold": true, "rollback": true, "owner": "run-b"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("run-a"),
        "{refused}"
    );
    let (status, _) = checkpoint(json!({"label": "b/1", "owner": "run-b"})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a commit by a run that does not hold it"
    );
    let (status, _) = checkpoint(json!({"hold": true, "rollback": true, "owner": "run-a"})).await;
    assert_eq!(status, StatusCode::OK, "the holder itself may resume");
    let (status, _) = checkpoint(json!({"hold": false, "owner": "run-a"})).await;
    assert_eq!(status, StatusCode::OK, "the holder releases");
    let (status, _) = checkpoint(json!({"hold": true, "rollback": true, "owner": "run-b"})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "after a release the next run holds at once, without waiting out the lease"
    );
    engine.shutdown().await;
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

const CHILD_DB: &str = "KATOTUNE_TEST_ENGINE_CHILD_DB";

/// Not a test on its own: the engine process the kill -9 test starts and kills.
#[tokio::test]
#[ignore = "run only as the child of the kill -9 test"]
async fn engine_child_process() {
    let Some(db) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let config = EngineConfig {
        db_path: Some(db.into()),
        ..EngineConfig::default()
    };
    let engine = start(config).await.expect("child engine");
    println!("URL={}", engine.url());
    tokio::time::sleep(Duration::from_secs(120)).await;
}

async fn pending_changes(kato: &Kato) -> Value {
    kato.get("/status").await["engine"]["store"]["pending_changes"].clone()
}

#[tokio::test]
async fn kill_9_keeps_every_committed_learn_and_the_file_stays_sound() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kb.sqlite");
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "durability::engine_child_process",
            "--nocapture",
        ])
        .env(CHILD_DB, &db)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child engine");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut url = None;
    while let Some(line) = lines.next_line().await.expect("child output") {
        if let Some(u) = line.strip_prefix("URL=") {
            url = Some(u.to_owned());
            break;
        }
    }
    let kato = Kato {
        http: reqwest::Client::new(),
        url: url.expect("child printed its URL"),
    };
    let sid = kato.session("crash", training()).await;
    for _ in 0..20 {
        kato.observe_seq(&sid, &[&["a"], &["b"]], json!({"learn_at_end": true}))
            .await;
    }
    let mut waited = 0;
    while pending_changes(&kato).await != 0 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(
        pending_changes(&kato).await,
        0,
        "the writer never caught up"
    );
    // Keep learning other patterns while the process dies.
    let hammer = tokio::spawn(async move {
        for i in 0.. {
            let body = json!({"observations": [{"strings": [format!("x{i}")]}, {"strings": ["y"]}], "learn_at_end": true});
            let _ = kato
                .http
                .post(format!("{}/sessions/{sid}/observe-sequence", kato.url))
                .json(&body)
                .send()
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    child.kill().await.expect("kill -9");
    hammer.abort();

    let conn = rusqlite::Connection::open(&db).expect("open after kill");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    drop(conn);
    let config = EngineConfig {
        db_path: Some(db),
        ..EngineConfig::default()
    };
    let engine = start(config).await.expect("reopen");
    let kato = Kato::new(&engine);
    let ab = name(&[&["a"], &["b"]]);
    assert_eq!(kato.frequency("crash", &ab).await, 20);
    let sid = kato.session("crash", training()).await;
    kato.observe_seq(&sid, &[&["a"], &["b"]], json!({"learn_at_end": true}))
        .await;
    assert_eq!(
        kato.frequency("crash", &ab).await,
        21,
        "frequencies keep counting"
    );
}
