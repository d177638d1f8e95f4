//! `compare` against a KATO it did not start, and KB read-back from KATO's stores.
//!
//! - An external KATO (katotune's engine, started here with a KB file) that already
//!   holds a user's KB on `node0`: every compare run trains nodes of its own, its KB
//!   is read back exactly, and afterwards the user's KB is as it was and every node
//!   compare trained is empty again.
//! - KATO's Redis and ClickHouse (real ones, `kb_support`) holding a trained KB: read
//!   back per node, the digests equal the run record's; a frequency key lost from
//!   Redis is a mismatch of that node. Without the stores this one skips (fails
//!   under CI).

mod kb_support;

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use katotune::engine::{self, EngineConfig};
use katotune::kb::location::{self, Location};
use katotune::stack::kb_read;
use katotune::train::digest::digest_of;
use katotune::train::kb_check::{KbCheck, KbSource, NodeReading};
use serde_json::{json, Value};

fn katotune() -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1")
        .env_remove("KATOTUNE_REDIS_URL")
        .env_remove("KATOTUNE_CLICKHOUSE_URL");
    cmd
}

fn shown(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Learns the user's own pattern `hello world` on `node` through KATO's API.
async fn learn_by_hand(url: &str, node: &str) {
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{url}/sessions"))
        .json(&json!({ "node_id": node }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = created["session_id"].as_str().expect("a session id");
    for word in ["hello", "world"] {
        let observed = http
            .post(format!("{url}/sessions/{sid}/observe"))
            .json(&json!({ "strings": [word] }))
            .send()
            .await
            .unwrap();
        assert!(observed.status().is_success());
    }
    let learned = http
        .post(format!("{url}/sessions/{sid}/learn"))
        .send()
        .await
        .unwrap();
    assert!(learned.status().is_success());
}

/// The engine's KB of `node` as `(name, frequency)` pairs.
async fn engine_kb(url: &str, node: &str) -> Value {
    reqwest::get(format!("{url}/katotune/kb/{node}"))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["patterns"]
        .clone()
}

fn profile_file(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_on_an_external_kato_trains_nodes_of_its_own_and_leaves_the_users_kb_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users-kato.db");
    let kato = engine::start(EngineConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        db_path: Some(db.clone()),
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    let url = kato.url();
    learn_by_hand(&url, "node0").await;
    let users_kb = engine_kb(&url, "node0").await;
    assert_eq!(users_kb.as_array().map(Vec::len), Some(1));

    let common = format!(
        "inherits: baseline\nstack:\n  backend: external\n  url: {url}\n\
         training:\n  samples: 6\n  chunk_sizes: [5, 7, 9]\n"
    );
    let one = profile_file(dir.path(), "one-by-one", &common);
    let batched = profile_file(
        dir.path(),
        "batched",
        &format!("{common}  node0_batch: 50\n  workers: 2\n"),
    );
    let export = dir.path().join("external.json");
    let args: Vec<String> = [
        "compare",
        &one,
        &batched,
        "--runs",
        "2",
        "--min-time",
        "0s",
        "--warmup-samples",
        "2",
        "--export-json",
        export.to_str().unwrap(),
        "--set",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!(
        "report.output_dir={}",
        dir.path().join("runs").display()
    )])
    .collect();
    let out = tokio::task::spawn_blocking(move || katotune().args(&args).output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    for p in c["profiles"].as_array().unwrap() {
        let read = &p["correctness"]["read_back"];
        assert_eq!(read["source"], "engine", "{read}");
        assert_eq!(read["mismatches"], json!([]), "{}", p["name"]);
        assert!(
            p["nodes"][0]["learns"].as_u64().unwrap() > 0,
            "node0 trained"
        );
    }
    assert_eq!(c["profiles"][1]["correctness"]["status"], "same");

    // The user's KB is as it was; every KB compare trained was removed again.
    assert_eq!(engine_kb(&url, "node0").await, users_kb);
    kato.shutdown().await;
    let stats = location::stats(&Location::EngineFile(db), "kato").unwrap();
    for kb in &stats {
        let expected = u64::from(kb.kb_id == "node0_kato");
        assert_eq!(kb.patterns, expected, "{}: {kb:?}", kb.kb_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kato_stores_read_back_equal_the_run_and_a_lost_frequency_is_a_mismatch() {
    let Some(s) = kb_support::start("KB read-back from the stores", "noeviction") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kb.db");
    let train = profile_file(
        dir.path(),
        "train",
        &format!(
            "inherits: quick\nstack:\n  ephemeral: false\n  kb_file: {}\n\
             training:\n  samples: 8\nreport:\n  output_dir: {}\n",
            db.display(),
            dir.path().join("runs").display()
        ),
    );
    let (redis, clickhouse) = (s.urls.redis.clone(), s.urls.clickhouse.clone());
    let (record, loaded) = tokio::task::spawn_blocking(move || {
        let run = katotune()
            .args(["--format", "json", "run", &train])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{}", shown(&run));
        let load = katotune()
            .args(["kb", "load", db.to_str().unwrap(), "--into", "stores"])
            .args(["--redis", &redis, "--clickhouse", &clickhouse])
            .output()
            .unwrap();
        (serde_json::from_slice::<Value>(&run.stdout).unwrap(), load)
    })
    .await
    .unwrap();
    assert_eq!(loaded.status.code(), Some(0), "{}", shown(&loaded));
    let levels = record["levels"].as_array().unwrap().clone();
    let nodes: Vec<String> = levels
        .iter()
        .map(|l| l["node"].as_str().unwrap().to_string())
        .collect();

    let urls = s.urls.clone();
    let read = |urls: katotune::kb::stores::StoreUrls, nodes: Vec<String>| {
        tokio::task::spawn_blocking(move || kb_read::read_stores(&urls, &nodes).unwrap())
    };
    let first = read(urls.clone(), nodes.clone()).await.unwrap();
    for ((kb_id, counts), level) in first.iter().zip(&levels) {
        let counts = counts.as_ref().expect("read");
        assert_eq!(kb_id, &format!("{}_kato", level["node"].as_str().unwrap()));
        assert_eq!(
            digest_of(counts),
            level["kb"]["digest"].as_str().unwrap(),
            "{kb_id}: the stores hold what the run learned"
        );
    }

    // Redis loses one node0 frequency: node0 read back is not what was answered.
    let lost = first[0].1.as_ref().unwrap().keys().next().unwrap().clone();
    let bare = lost.trim_start_matches("PTRN|");
    let mut con = redis::Client::open(s.urls.redis.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let removed: u64 = redis::cmd("DEL")
        .arg(format!("node0_kato:frequency:{bare}"))
        .query(&mut con)
        .unwrap();
    assert_eq!(removed, 1);
    let second = read(urls, nodes.clone()).await.unwrap();
    let empty = BTreeMap::new();
    let readings: Vec<NodeReading<'_>> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| NodeReading {
            node: node.clone(),
            kb_id: second[i].0.clone(),
            read: second[i].1.as_ref(),
            tally: first[i].1.as_ref().unwrap_or(&empty),
        })
        .collect();
    let check = KbCheck::build(KbSource::Stores, String::new(), &readings);
    let bad: Vec<_> = check.mismatches().collect();
    assert_eq!(bad.len(), 1, "{check:?}");
    assert_eq!(bad[0].node, "node0");
    assert_eq!(
        bad[0].kb.distinct, bad[0].tally.distinct,
        "the row is still there"
    );
    assert!(bad[0].kb.learns < bad[0].tally.learns, "its learns are not");
}
