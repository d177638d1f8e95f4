//! The engine stores what KATO 3.10.1 stores: replay the golden request sequences on
//! the in-process engine, read its KB file back, convert it to KATO's store form, and
//! compare with the dumps taken from the real server (`../shared/kato/storage/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use katotune::engine::{self, EngineConfig, RunningEngine};
use katotune::kb::engine_file::{read_engine_file, EngineFileError};
use katotune::kb::kato_form::{affinity_writes, clickhouse_row, pattern_writes, StoreImage};
use katotune::profile::Profile;
use katotune::train::plan::TrainPlan;
use katotune::train::runner::{self, RunOptions, Target};
use reqwest::Client;
use serde_json::{json, Value};

/// `../shared/kato/storage`: from `KATOTUNE_SHARED`, else the first `shared/` beside
/// the crate or one of its ancestors (a worktree sits deeper than the main checkout).
fn storage_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KATOTUNE_SHARED") {
        return Path::new(&dir).join("kato/storage");
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared/kato/storage"))
        .find(|dir| dir.join("README.md").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the golden dumps (shared/kato/storage) are not beside {} or any parent; \
                 set KATOTUNE_SHARED to the shared directory",
                manifest.display()
            )
        })
}

fn golden(file: &str) -> Value {
    let path = storage_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden dump is JSON")
}

async fn engine_with_file(db: &Path) -> RunningEngine {
    engine::start(EngineConfig {
        db_path: Some(db.to_path_buf()),
        ..EngineConfig::default()
    })
    .await
    .expect("engine starts")
}

/// The engine file converted to KATO's store form, as a fresh load would write it.
fn image_of(db: &Path) -> Value {
    let mut image = StoreImage::default();
    let mut rows = Vec::new();
    let mut affinity = Vec::new();
    read_engine_file::<EngineFileError>(
        db,
        |p| {
            image
                .apply_all(&pattern_writes(&p, None))
                .expect("redis accepts");
            rows.push(clickhouse_row(&p));
            Ok(())
        },
        |a| {
            affinity.push(a);
            Ok(())
        },
    )
    .expect("engine file reads");
    for a in &affinity {
        image
            .apply_all(&affinity_writes(a, false))
            .expect("redis accepts");
    }
    image.rows = rows;
    image.to_golden_json()
}

/// Every key and row that differs, with both sides (empty = equal).
fn differences(ours: &Value, theirs: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (
        ours["redis"].as_object().unwrap(),
        theirs["redis"].as_object().unwrap(),
    );
    for (key, value) in b {
        match a.get(key) {
            None => out.push(format!("missing key {key:?} = {value}")),
            Some(mine) if mine != value => {
                out.push(format!("key {key:?}: ours {mine}, KATO {value}"))
            }
            Some(_) => {}
        }
    }
    out.extend(
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .map(|k| format!("extra key {k:?}")),
    );
    let index = |rows: &Value| -> BTreeMap<String, Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    format!(
                        "{}/{}",
                        r["kb_id"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    ),
                    r.clone(),
                )
            })
            .collect()
    };
    let (ra, rb) = (index(&ours["clickhouse"]), index(&theirs["clickhouse"]));
    for (name, row) in &rb {
        match ra.get(name) {
            None => out.push(format!("missing row {name}")),
            Some(mine) if mine != row => out.push(format!("row {name}: ours {mine}, KATO {row}")),
            Some(_) => {}
        }
    }
    out.extend(
        ra.keys()
            .filter(|k| !rb.contains_key(*k))
            .map(|k| format!("extra row {k}")),
    );
    out
}

fn assert_same(ours: &Value, theirs: &Value) {
    let diff = differences(ours, theirs);
    assert!(
        diff.is_empty(),
        "{} differences, first ones:\n{}",
        diff.len(),
        diff.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}

async fn call(http: &Client, url: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{url}{path}"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The calls of `emotives-metadata.requests.py`, in order.
async fn replay_emotives_metadata(url: &str) {
    let http = Client::new();
    let created = call(
        &http,
        url,
        "POST",
        "/sessions",
        Some(json!({"node_id": "emonode", "config": {"process_predictions": false}})),
    )
    .await;
    let s = created["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let (observe, learn) = (
        format!("/sessions/{s}/observe"),
        format!("/sessions/{s}/learn"),
    );
    for i in 0..7 {
        let (joy, fear) = (0.1 * f64::from(i), -0.5 + f64::from(i));
        let first = json!({"strings": ["alpha", "beta"], "emotives": {"joy": joy, "fear": fear}, "metadata": {"src": format!("doc{}", i % 3), "n": i}});
        call(&http, url, "POST", &observe, Some(first)).await;
        call(
            &http,
            url,
            "POST",
            &observe,
            Some(json!({"strings": ["gamma"], "emotives": {"joy": 1.0}})),
        )
        .await;
        call(&http, url, "POST", &learn, None).await;
        call(
            &http,
            url,
            "POST",
            &format!("/sessions/{s}/clear-stm"),
            None,
        )
        .await;
    }
    for _ in 0..2 {
        let odd =
            json!({"strings": ["don't", "a\\b", "é", "\u{e9}\u{301}"], "emotives": {"calm": 2.5}});
        call(&http, url, "POST", &observe, Some(odd)).await;
        call(
            &http,
            url,
            "POST",
            &observe,
            Some(json!({"strings": ["\t", "ＡＢＣ", "🫠"]})),
        )
        .await;
        call(
            &http,
            url,
            "POST",
            &observe,
            Some(json!({"strings": ["x"]})),
        )
        .await;
        call(&http, url, "POST", &learn, None).await;
    }
    call(
        &http,
        url,
        "POST",
        &observe,
        Some(json!({"strings": ["p", "q"], "metadata": {"title": "one"}})),
    )
    .await;
    call(&http, url, "POST", &learn, None).await;
    call(
        &http,
        url,
        "POST",
        &observe,
        Some(json!({"strings": ["r", "s"], "metadata": {"title": "two"}})),
    )
    .await;
    call(&http, url, "POST", &learn, None).await;
    call(&http, url, "DELETE", &format!("/sessions/{s}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emotives_metadata_and_affinity_are_stored_as_kato_stores_them() {
    let expected = golden("emotives-metadata.json");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kb.sqlite");
    let engine = engine_with_file(&db).await;
    replay_emotives_metadata(&engine.url()).await;
    engine.shutdown().await;
    let ours = image_of(&db);
    assert_same(&ours, &expected);
    // The comparison sees a one-ulp difference in an affinity sum.
    let mut off = ours.clone();
    off["redis"]["emonode_kato:affinity:alpha"]["value"]["joy"] = json!("4.550000000000001");
    assert_eq!(differences(&off, &expected).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_kjv_samples_on_the_baseline_profile_store_what_kato_stores() {
    let expected = golden("kjv5-baseline.json");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kb.sqlite");
    let engine = engine_with_file(&db).await;
    let baseline = root.join("profiles/baseline.yaml");
    let mut profile: Profile = katotune::profile::load(baseline.to_str().unwrap(), &[])
        .expect("baseline profile loads")
        .profile;
    profile.training.dataset.path = root.join("data/kjv-100.jsonl");
    profile.training.samples = Some(5);
    profile.report.output_dir = dir.path().to_path_buf();
    let url = engine.url();
    let target = Target::embedded(url);
    let options = RunOptions::quiet("golden", dir.path().join("journal.json"));
    runner::run(&TrainPlan::from(&profile), &target, &options)
        .await
        .expect("training runs");
    engine.shutdown().await;
    let ours = image_of(&db);
    assert_eq!(ours["clickhouse"].as_array().unwrap().len(), 903);
    assert_same(&ours, &expected);
}

/// One learn of `[["a", "b"]]` with `calm` on node `n`.
async fn learn_calm(url: &str, calm: f64) {
    let http = Client::new();
    let created = call(
        &http,
        url,
        "POST",
        "/sessions",
        Some(json!({"node_id": "n", "config": {"process_predictions": false}})),
    )
    .await;
    let s = created["session_id"].as_str().unwrap().to_owned();
    let obs = json!({"strings": ["b", "a"], "emotives": {"calm": calm}});
    call(
        &http,
        url,
        "POST",
        &format!("/sessions/{s}/observe"),
        Some(obs),
    )
    .await;
    call(&http, url, "POST", &format!("/sessions/{s}/learn"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_file_opens_and_affinity_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE patterns (kb_id TEXT NOT NULL, name TEXT NOT NULL, pattern_data TEXT NOT NULL,
            length INTEGER NOT NULL, frequency INTEGER NOT NULL, emotives TEXT NOT NULL,
            metadata TEXT NOT NULL, PRIMARY KEY (kb_id, name)) WITHOUT ROWID;
         CREATE TABLE engine_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO engine_info VALUES ('schema_version', '1');
         INSERT INTO patterns VALUES ('old_kato', 'aa', '[[\"x\"],[\"y\"]]', 2, 7, '[]', '{}');",
    )
    .unwrap();
    drop(conn);
    for calm in [2.5, 0.1] {
        let engine = engine_with_file(&db).await;
        learn_calm(&engine.url(), calm).await;
        engine.shutdown().await;
    }
    let image = image_of(&db);
    let redis = &image["redis"];
    assert_eq!(redis["old_kato:frequency:aa"]["value"], json!(7));
    assert_eq!(redis["n_kato:affinity:a"]["value"], json!({"calm": "2.6"}));
    assert_eq!(redis["n_kato:affinity:b"]["value"], json!({"calm": "2.6"}));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM engine_info WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "2");
}
