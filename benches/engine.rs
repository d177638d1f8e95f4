//! Learn cycles per second of the embedded engine (one cycle = one 5-token chunk learned).
//!
//! (a) in-process: the session algorithm and the knowledge base called directly;
//! (b) over HTTP with reqwest: 50-chunk observe-sequence requests (max_pattern_length 5,
//! CLEAR, 250 observations each) from 1 and from 4 concurrent sessions, against an
//! engine writing behind to a SQLite file (and once ephemeral). It also prints the rate
//! of single `/observe` calls on one session, the per-request floor.
//! (c) the client's own CPU time per request: a `KatoClient` alone on a current-thread
//! tokio runtime in its own OS thread sends observe-sequence requests to the engine
//! (served by the other runtime's threads); that thread's CPU time, read from
//! `/proc/thread-self/schedstat`, divided by the requests sent. JSON encoding, HTTP and
//! answer parsing all run on that thread, so this is what the client costs per call.
//!
//! Run with `cargo bench --bench engine`; without `--bench` (as `cargo test --benches`
//! runs it) each case runs briefly as a smoke test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use katotune::engine::kb::KnowledgeBases;
use katotune::engine::session::SessionState;
use katotune::engine::{start, EngineConfig};
use katotune::kato::api::{Observation, ObserveSequence, SessionConfig, StmMode};
use katotune::kato::client::{ClientConfig, KatoClient, Replay};
use katotune::kato::error::KatoError;
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
    chunk_sequence(corpus, i, CHUNKS_PER_REQUEST)
}

/// Request `i` of a series sending `chunks` consecutive chunks of the corpus each.
fn chunk_sequence(corpus: &[[String; CHUNK]], i: usize, chunks: usize) -> ObserveSequence {
    let start = (i * chunks) % corpus.len();
    let observations = (0..chunks)
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

/// CPU time the calling thread has used: `/proc/thread-self/schedstat` (nanoseconds),
/// or else `utime + stime` of `/proc/thread-self/stat` (ticks of 10 ms).
fn thread_cpu_time() -> Option<Duration> {
    if let Ok(text) = std::fs::read_to_string("/proc/thread-self/schedstat") {
        let on_cpu_ns = text.split_whitespace().next().and_then(|n| n.parse().ok());
        if let Some(ns) = on_cpu_ns.filter(|ns| *ns > 0) {
            return Some(Duration::from_nanos(ns));
        }
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the ")" that ends the command name; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Sends `requests` round-robin for `run_for` (after a short warm-up) through one
/// client on the current thread; the thread's CPU time per request.
async fn client_cpu(
    url: String,
    requests: &[ObserveSequence],
    run_for: Duration,
) -> Result<Duration, KatoError> {
    let kato = KatoClient::new(ClientConfig::new(url)).expect("client");
    let config = SessionConfig {
        max_pattern_length: CHUNK as u32,
        stm_mode: StmMode::Clear,
        ..SessionConfig::default()
    };
    let mut session = kato.create_session("client_cpu", &config, None).await?;
    for request in requests.iter().take(4) {
        kato.observe_sequence(&mut session, request, Replay::OnFreshSession)
            .await?;
    }
    let cpu_before = thread_cpu_time().expect("thread CPU time from /proc");
    let started = Instant::now();
    let mut sent = 0u32;
    while started.elapsed() < run_for || sent == 0 {
        let request = &requests[sent as usize % requests.len()];
        let out = kato
            .observe_sequence(&mut session, request, Replay::OnFreshSession)
            .await?;
        assert_eq!(
            out.auto_learned_patterns.len(),
            request.observations.len() / CHUNK
        );
        sent += 1;
    }
    let cpu = thread_cpu_time().expect("thread CPU time from /proc") - cpu_before;
    Ok(cpu / sent)
}

/// Runs [`client_cpu`] on a current-thread runtime in a new OS thread, so the
/// thread's CPU time is the client's alone.
fn client_cpu_in_own_thread(
    url: String,
    requests: Vec<ObserveSequence>,
    run_for: Duration,
) -> Duration {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        runtime.block_on(client_cpu(url, &requests, run_for))
    })
    .join()
    .expect("client thread")
    .expect("client requests")
}

fn print_client_cpu(
    runtime: &tokio::runtime::Runtime,
    corpus: &[[String; CHUNK]],
    run_for: Duration,
) {
    let engine = runtime
        .block_on(start(EngineConfig::default()))
        .expect("engine");
    println!(
        "client CPU time per request (KatoClient alone on a current-thread runtime in its own \
         OS thread; that thread's CPU time / requests, engine served by other threads)"
    );
    for (chunks, what) in [
        (
            CHUNKS_PER_REQUEST,
            "50-chunk auto-learn observe-sequence (250 obs)",
        ),
        (1, "single 5-observation observe-sequence (1 chunk)"),
    ] {
        let requests = (0..64).map(|i| chunk_sequence(corpus, i, chunks)).collect();
        let per_request = client_cpu_in_own_thread(engine.url(), requests, run_for);
        let micros = per_request.as_secs_f64() * 1e6;
        println!(
            "  {what:<48} {micros:>8.1} µs/request {:>7.2} µs/chunk",
            micros / chunks as f64
        );
    }
    runtime.block_on(engine.shutdown());
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
    print_client_cpu(&runtime, &corpus, run_for);
}
