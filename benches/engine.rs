//! Learn cycles per second of the embedded engine (one cycle = one 5-token chunk learned).
//!
//! (a) in-process: the session algorithm and the knowledge base called directly;
//! (b) over HTTP with reqwest: 50-chunk observe-sequence requests (max_pattern_length 5,
//! CLEAR, 250 observations each) from 1 and from 4 concurrent sessions, against an
//! engine writing behind to a SQLite file (and once ephemeral). It also prints the rate
//! of single `/observe` calls on one session, the per-request floor.
//!
//! Run with `cargo bench --bench engine`; without `--bench` (as `cargo test --benches`
//! runs it) each case runs briefly as a smoke test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use katotune::engine::kb::KnowledgeBases;
use katotune::engine::session::SessionState;
use katotune::engine::{start, EngineConfig};
use katotune::kato::api::{Observation, ObserveSequence, StmMode};
use serde::Deserialize;
use serde_json::json;

const CHUNK: usize = 5;
const CHUNKS_PER_REQUEST: usize = 50;
const DISTINCT_CHUNKS: usize = 20_000;

/// A corpus of distinct 5-token chunks over a GPT-2-like vocabulary.
fn corpus() -> Vec<[String; CHUNK]> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..DISTINCT_CHUNKS)
        .map(|_| std::array::from_fn(|_| format!("Ġtok{}", next() % 20_000)))
        .collect()
}

/// The observe-sequence for request `i`: 50 consecutive chunks of the corpus.
fn request(corpus: &[[String; CHUNK]], i: usize) -> ObserveSequence {
    let start = (i * CHUNKS_PER_REQUEST) % corpus.len();
    let observations = (0..CHUNKS_PER_REQUEST)
        .flat_map(|c| corpus[(start + c) % corpus.len()].iter())
        .map(|t| Observation::symbol(t.clone()))
        .collect();
    ObserveSequence {
        observations,
        ..ObserveSequence::default()
    }
}

fn in_process(corpus: &[[String; CHUNK]], run_for: Duration) -> f64 {
    let kbs = KnowledgeBases::new(None);
    let kb = kbs.node("node0_kato");
    let mut session = SessionState::new(CHUNK, StmMode::Clear);
    let started = Instant::now();
    let mut cycles = 0usize;
    let mut i = 0;
    while started.elapsed() < run_for {
        let mut learned = Vec::with_capacity(CHUNKS_PER_REQUEST);
        let req = request(corpus, i);
        let out = session
            .observe_sequence(req, "node0", None, &mut learned)
            .expect("no deadline");
        cycles += out.auto_learned_patterns.len();
        kb.learn_all(learned);
        i += 1;
    }
    cycles as f64 / started.elapsed().as_secs_f64()
}

#[derive(Deserialize)]
struct Answer {
    auto_learned_patterns: Vec<String>,
}

async fn over_http(
    corpus: Arc<Vec<[String; CHUNK]>>,
    sessions: usize,
    persist: bool,
    run_for: Duration,
) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        db_path: persist.then(|| dir.path().join("bench.sqlite")),
        ..EngineConfig::default()
    };
    let engine = start(config).await.expect("engine");
    let url = engine.url();
    let http = reqwest::Client::new();
    let cycles = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let (http, url, corpus, cycles) =
            (http.clone(), url.clone(), corpus.clone(), cycles.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"node_id": "node0", "config": {"max_pattern_length": CHUNK, "stm_mode": "CLEAR", "process_predictions": false}});
            let created: serde_json::Value = http.post(format!("{url}/sessions")).json(&body).send().await?.json().await?;
            let sid = created["session_id"].as_str().unwrap_or_default().to_owned();
            let bodies: Vec<Vec<u8>> = (0..64)
                .map(|i| serde_json::to_vec(&request(&corpus, i * sessions + s)).unwrap_or_default())
                .collect();
            let target = format!("{url}/sessions/{sid}/observe-sequence");
            let mut i = 0;
            while started.elapsed() < run_for {
                let bytes = http
                    .post(&target)
                    .header("content-type", "application/json")
                    .body(bodies[i % bodies.len()].clone())
                    .send()
                    .await?
                    .bytes()
                    .await?;
                let answer: Answer = serde_json::from_slice(&bytes).unwrap_or(Answer { auto_learned_patterns: Vec::new() });
                assert_eq!(answer.auto_learned_patterns.len(), CHUNKS_PER_REQUEST);
                cycles.fetch_add(CHUNKS_PER_REQUEST as u64, Ordering::Relaxed);
                i += 1;
            }
            Ok::<(), reqwest::Error>(())
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("http");
    }
    let rate = cycles.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    engine.shutdown().await;
    rate
}

/// Single `/observe` calls one after another on one session: the per-request floor.
async fn single_observes(run_for: Duration) -> f64 {
    let engine = start(EngineConfig::default()).await.expect("engine");
    let http = reqwest::Client::new();
    let body = json!({"node_id": "node0", "config": {"process_predictions": false}});
    let created: serde_json::Value = http
        .post(format!("{}/sessions", engine.url()))
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("create")
        .json()
        .await
        .expect("session");
    let sid = created["session_id"].as_str().unwrap_or_default();
    let target = format!("{}/sessions/{sid}/observe", engine.url());
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < run_for {
        let answer = http
            .post(&target)
            .header("content-type", "application/json")
            .body(r#"{"strings":["Ġhello"]}"#)
            .send()
            .await
            .expect("observe");
        assert!(answer.status().is_success());
        let _ = answer.bytes().await;
        calls += 1;
    }
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    engine.shutdown().await;
    rate
}

fn main() {
    let run_for = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(100)
    };
    let corpus = corpus();
    println!("engine learn cycles per second (one cycle = one {CHUNK}-token chunk learned)");
    println!(
        "in-process (session + KB logic)              {:>10.0}",
        in_process(&corpus, run_for)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let corpus = Arc::new(corpus);
    for (sessions, persist) in [(1, true), (4, true), (4, false)] {
        let rate = runtime.block_on(over_http(corpus.clone(), sessions, persist, run_for));
        let kb = if persist {
            "SQLite write-behind"
        } else {
            "ephemeral"
        };
        println!("http, {sessions} session(s), {kb:<20} {rate:>10.0}");
    }
    let calls = runtime.block_on(single_observes(run_for));
    println!("(single /observe calls per second, one session: {calls:.0})");
}
