//! The engine's knowledge base in bounded memory: with a 1 MiB budget
//! (`KATOTUNE_ENGINE_CACHE_MB=1`) an engine moves its patterns to disk as it learns,
//! yet learns exactly what an engine with room for everything learns: the same digests
//! and frequencies, the same patterns read back, the same file, and a restart that
//! continues from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use katotune::engine::{self, EngineConfig, RunningEngine};
use katotune::kb::engine_file::{read_engine_file, EngineFileError};
use katotune::kb::{AffinityEntry, PatternEntry};
use katotune::profile::Profile;
use katotune::train::plan::TrainPlan;
use katotune::train::record::{RunRecord, RunStatus};
use katotune::train::runner::{self, RunOptions, Target};
use serde_json::{json, Value};

const NODES: usize = 4;

async fn engine(db: Option<PathBuf>, cache_mb: usize) -> RunningEngine {
    engine::start(EngineConfig {
        db_path: db,
        cache_mb,
        ..EngineConfig::default()
    })
    .await
    .expect("engine starts")
}

/// 100 KJV chapters, 4 levels, node0 in batches of 50, 2 workers, reference metadata.
async fn train(url: &str, out: &Path) -> RunRecord {
    let mut p = Profile {
        name: "budget".into(),
        ..Profile::default()
    };
    p.training.samples = Some(100);
    p.training.node0_batch = 50;
    p.training.workers = 2;
    p.training.chunk_sizes = vec![5, 7, 9, 11];
    p.report.output_dir = out.to_path_buf();
    let opts = RunOptions::quiet("budget", out.join("journal.json"));
    let record = runner::run(
        &TrainPlan::from(&p),
        &Target::embedded(url.to_owned()),
        &opts,
    )
    .await
    .expect("run starts");
    assert_eq!(
        record.status,
        RunStatus::Completed,
        "{:?}",
        record.stop_reason
    );
    record
}

async fn get(url: &str, path: &str) -> Value {
    let resp = reqwest::get(format!("{url}{path}")).await.expect("request");
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.expect("json")
}

/// What a user sees of the engine's KB: every node's listing, every 40th pattern as
/// `GET /pattern` shows it, and the pattern counts of `/status`.
async fn seen(url: &str) -> (Vec<Value>, Vec<Value>, Value) {
    let mut listings = Vec::new();
    let mut patterns = Vec::new();
    for node in 0..NODES {
        let listing = get(url, &format!("/katotune/kb/node{node}")).await;
        let names: Vec<String> = listing["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .collect();
        for name in names.iter().step_by(40) {
            patterns.push(get(url, &format!("/pattern/{name}?node_id=node{node}")).await);
        }
        listings.push(listing);
    }
    let status = get(url, "/status").await;
    let mut counts: Vec<Value> = status["processors"]["processors"]
        .as_array()
        .expect("processors")
        .clone();
    counts.sort_by_key(|p| p["kb_id"].as_str().unwrap_or_default().to_owned());
    (listings, patterns, json!(counts))
}

fn memory(status: &Value) -> &Value {
    &status["engine"]["knowledge_base"]
}

/// Every pattern and affinity entry of an engine file, in file order.
fn file_contents(db: &Path) -> (Vec<PatternEntry>, Vec<AffinityEntry>) {
    let (mut patterns, mut affinity) = (Vec::new(), Vec::new());
    read_engine_file::<EngineFileError>(
        db,
        |p| {
            patterns.push(p);
            Ok(())
        },
        |a| {
            affinity.push(a);
            Ok(())
        },
    )
    .expect("engine file reads");
    (patterns, affinity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mib_budget_learns_exactly_what_an_unbounded_engine_learns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roomy = engine(None, 256).await;
    let record = train(&roomy.url(), &dir.path().join("roomy")).await;
    let expected = seen(&roomy.url()).await;
    let status = get(&roomy.url(), "/status").await;
    assert_eq!(
        memory(&status)["on_disk"],
        false,
        "256 MiB holds 100 samples"
    );
    roomy.shutdown().await;
    let digests =
        |r: &RunRecord| -> Vec<String> { r.levels.iter().map(|l| l.kb.digest.clone()).collect() };

    let tight = engine(None, 1).await;
    let small = train(&tight.url(), &dir.path().join("tight")).await;
    let status = get(&tight.url(), "/status").await;
    assert_eq!(memory(&status)["on_disk"], true, "1 MiB spills: {status}");
    assert_eq!(digests(&small), digests(&record));
    assert_eq!(
        seen(&tight.url()).await,
        expected,
        "spilled engine reads the same"
    );
    tight.shutdown().await;

    let db = dir.path().join("kb.db");
    let filed = engine(Some(db.clone()), 1).await;
    let on_file = train(&filed.url(), &dir.path().join("filed")).await;
    assert_eq!(digests(&on_file), digests(&record));
    assert_eq!(
        seen(&filed.url()).await,
        expected,
        "file engine reads the same"
    );
    filed.shutdown().await;

    let restarted = engine(Some(db), 1).await;
    assert_eq!(
        seen(&restarted.url()).await,
        expected,
        "a restart reads the file"
    );
    restarted.shutdown().await;
}

async fn post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    let resp = http
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
    resp.json().await.expect("json")
}

/// Learns alpha-beta-gamma explicitly on session `emo` with an emotive and a metadata
/// value on each event (the session's accumulators keep every round's, so each learn
/// carries more), then `fillers` distinct two-event patterns auto-learned on session
/// `fill` of the same node: they push alpha-beta-gamma and its symbols' affinity out of
/// memory between its learns when the budget is small.
async fn learn_round(
    http: &reqwest::Client,
    url: &str,
    sids: (&str, &str),
    round: usize,
    fillers: usize,
) {
    let items: Vec<Value> = ["alpha", "beta", "gamma"]
        .iter()
        .enumerate()
        .map(|(i, symbol)| {
            let joy = 0.1 * (round * 3 + i) as f64 + 0.05;
            json!({"strings": [symbol], "emotives": {"joy": joy}, "metadata": {"round": round % 7}})
        })
        .collect();
    let body = json!({"observations": items, "learn_at_end": true});
    post(
        http,
        url,
        &format!("/sessions/{}/observe-sequence", sids.0),
        body,
    )
    .await;
    let fill: Vec<Value> = (0..fillers)
        .flat_map(|f| {
            [
                json!({"strings": [format!("r{round}f{f}")]}),
                json!({"strings": ["x"]}),
            ]
        })
        .collect();
    let body = json!({"observations": fill});
    post(
        http,
        url,
        &format!("/sessions/{}/observe-sequence", sids.1),
        body,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emotives_metadata_and_affinity_fold_exactly_across_writes_to_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = BTreeMap::new();
    for cache_mb in [256, 1] {
        let db = dir.path().join(format!("kb-{cache_mb}.db"));
        let e = engine(Some(db.clone()), cache_mb).await;
        let http = reqwest::Client::new();
        let mut sids = Vec::new();
        for mpl in [0, 2] {
            let body = json!({"node_id": "emo", "config": {"max_pattern_length": mpl, "process_predictions": false}});
            let created = post(&http, &e.url(), "/sessions", body).await;
            sids.push(created["session_id"].as_str().expect("id").to_owned());
        }
        for round in 0..12 {
            learn_round(&http, &e.url(), (&sids[0], &sids[1]), round, 1_000).await;
        }
        let status = get(&e.url(), "/status").await;
        let peak = memory(&status)["peak_changes_bytes"]
            .as_u64()
            .unwrap_or(u64::MAX);
        if cache_mb == 1 {
            assert!(
                peak < 2 << 20,
                "1 MiB: changes stayed near the budget: {status}"
            );
        }
        e.shutdown().await;
        files.insert(cache_mb, file_contents(&db));
    }
    let (patterns, affinity) = &files[&256];
    assert_eq!(
        patterns.len(),
        12 * 1_000 + 1,
        "the fillers and alpha-beta-gamma"
    );
    let symbols: Vec<&str> = affinity.iter().map(|a| a.symbol.as_str()).collect();
    assert_eq!(
        symbols,
        ["alpha", "beta", "gamma"],
        "affinity of the learned symbols"
    );
    let abc = patterns
        .iter()
        .find(|p| p.events.len() == 3)
        .expect("alpha-beta-gamma");
    assert_eq!(abc.frequency, 12);
    assert_eq!(abc.emotives.len(), 5, "the window of the last 5");
    assert_eq!(
        abc.metadata["round"].len(),
        7,
        "every round's metadata value"
    );
    assert_eq!(files[&1], files[&256], "same file whatever the budget");
}
