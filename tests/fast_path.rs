//! The in-process fast path against HTTP: the same engine code must learn the same
//! knowledge base, fail with the same error kinds and keep the same session rules,
//! whichever way the trainer calls it.

use std::collections::BTreeMap;
use std::time::Duration;

use katotune::engine::{self, EngineConfig, EngineLimits, RunningEngine};
use katotune::kato::api::{SessionConfig, StmMode, SymbolSequence};
use katotune::kato::client::{ClientConfig, Replay, RetryPolicy};
use katotune::kato::error::{ErrorClass, ErrorKind, KatoError};
use katotune::profile::schema::TransportChoice;
use katotune::profile::Profile;
use katotune::train::digest::digest_of;
use katotune::train::link::KatoLink;
use katotune::train::plan::TrainPlan;
use katotune::train::record::{RunRecord, RunStatus, Transport};
use katotune::train::runner::{self, RunOptions, Target};

fn profile(node0_batch: usize, workers: usize, out: &std::path::Path) -> Profile {
    let mut p = Profile {
        name: format!("b{node0_batch}-w{workers}"),
        ..Profile::default()
    };
    p.training.samples = Some(60);
    p.training.node0_batch = node0_batch;
    p.training.workers = workers;
    p.training.chunk_sizes = vec![5, 7, 9, 11];
    p.report.output_dir = out.to_path_buf();
    p
}

async fn engine_with(limits: EngineLimits, db_path: Option<std::path::PathBuf>) -> RunningEngine {
    engine::start(EngineConfig {
        limits,
        db_path,
        ..EngineConfig::default()
    })
    .await
    .expect("engine starts")
}

/// Every node's patterns with their frequencies, as the engine holds them.
fn stored(engine: &RunningEngine, nodes: usize) -> Vec<BTreeMap<String, u64>> {
    let handle = engine.handle();
    (0..nodes)
        .map(|level| {
            handle
                .kb_frequencies(&format!("node{level}"))
                .into_iter()
                .collect()
        })
        .collect()
}

fn digests(r: &RunRecord) -> Vec<String> {
    r.levels.iter().map(|l| l.kb.digest.clone()).collect()
}

/// Trains `p` on a fresh in-memory engine; returns the record and what the engine holds.
async fn train(p: &Profile, out: &std::path::Path) -> (RunRecord, Vec<BTreeMap<String, u64>>) {
    let e = engine_with(EngineLimits::default(), None).await;
    let opts = RunOptions::quiet("fast-path", out.join(format!("{}.journal.json", p.name)));
    let record = runner::run(&TrainPlan::from(p), &Target::in_process(&e), &opts)
        .await
        .expect("run starts");
    assert_eq!(
        record.status,
        RunStatus::Completed,
        "{:?}",
        record.stop_reason
    );
    let kb = stored(&e, p.training.chunk_sizes.len());
    e.shutdown().await;
    (record, kb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_and_http_training_learn_the_same_kb() {
    let dir = tempfile::tempdir().unwrap();
    let mut over_http = profile(50, 2, dir.path());
    over_http.stack.transport = TransportChoice::Http;
    let (http, http_kb) = train(&over_http, dir.path()).await;
    assert_eq!(http.backend.transport, Transport::Http);
    let runs = [profile(50, 2, dir.path()), profile(1, 1, dir.path())];
    for p in &runs {
        let (fast, fast_kb) = train(p, dir.path()).await;
        assert_eq!(fast.backend.transport, Transport::InProcess, "{}", p.name);
        assert_eq!(fast.samples.done, 60);
        assert_eq!(
            digests(&fast),
            digests(&http),
            "{}: digests per node",
            p.name
        );
        assert_eq!(
            fast_kb, http_kb,
            "{}: the same frequencies read back from the engine",
            p.name
        );
        for (level, counts) in fast_kb.iter().enumerate() {
            assert_eq!(
                digest_of(counts),
                fast.levels[level].kb.digest,
                "node{level}"
            );
        }
        assert!(fast.calls.latency.samples > 0, "in-process calls are timed");
    }
    assert!(
        http_kb[3].values().sum::<u64>() > 0,
        "the top level learned"
    );
    let fast = train(&runs[0], dir.path()).await.0;
    assert_eq!(
        fast.calls_per_sample, http.calls_per_sample,
        "the same calls per sample on both paths"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_in_process_run_behind_a_barrier_resumes_to_the_same_kb() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = profile(50, 2, dir.path());
    p.training.samples = None;
    p.training.checkpoint_every = 5;
    let whole = train(&p, dir.path()).await.1;
    let db = dir.path().join("kb.sqlite");
    let journal = dir.path().join("cut.journal.json");
    let e = engine_with(EngineLimits::default(), Some(db.clone())).await;
    let mut opts = RunOptions::quiet("cut", journal.clone());
    let handle = e.handle();
    let stopper = opts.cancel.clone();
    // Ctrl-C as soon as the first patterns are in: in-flight samples drain, then stop.
    tokio::spawn(async move {
        while handle.kb_frequencies("node0").is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stopper.cancel();
    });
    let first = runner::run(&TrainPlan::from(&p), &Target::in_process(&e), &opts)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Interrupted);
    assert!(first.durability.guaranteed, "{}", first.durability.note);
    assert!(first.samples.done < 100, "cut mid-run");
    e.shutdown().await;
    let e = engine_with(EngineLimits::default(), Some(db)).await;
    opts = RunOptions {
        resume: true,
        ..RunOptions::quiet("resumed", journal)
    };
    let second = runner::run(&TrainPlan::from(&p), &Target::in_process(&e), &opts)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        RunStatus::Completed,
        "{:?}",
        second.stop_reason
    );
    assert!(second.samples.at_risk.is_empty());
    assert_eq!(first.samples.done + second.samples.done, 100);
    assert!(second.durability.digests_from_kb, "read from the engine");
    assert_eq!(stored(&e, 4), whole, "same frequencies as one whole run");
    e.shutdown().await;
}

/// An HTTP and an in-process link to `e`, with quick retries.
fn links(e: &RunningEngine) -> [KatoLink; 2] {
    let config = ClientConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
        ..ClientConfig::new(e.url())
    };
    let target = Target::in_process(e);
    let http = KatoLink::connect(&target, true, config.clone()).unwrap();
    let fast = KatoLink::connect(&target, false, config).unwrap();
    assert_eq!(fast.transport(), Transport::InProcess);
    [http, fast]
}

/// Sends `symbols` as one observe-sequence with `learn_at_end` on a fresh session.
async fn learn(link: &KatoLink, node: &str, symbols: &[String]) -> Result<(), KatoError> {
    let config = SessionConfig {
        max_pattern_length: 0,
        stm_mode: StmMode::Clear,
        ..SessionConfig::default()
    };
    let mut session = link.create_session(node, &config, None).await?;
    let mut request = SymbolSequence::new(symbols, None);
    request.learn_at_end = true;
    link.observe_sequence(&mut session, &request, Replay::Never)
        .await
        .map(|_| ())
}

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i}")).collect()
}

#[tokio::test]
async fn the_engine_limits_fail_with_the_same_error_kind_on_both_paths() {
    let e = engine_with(
        EngineLimits {
            batch_size: Some(4),
            ..EngineLimits::default()
        },
        None,
    )
    .await;
    for link in links(&e) {
        let err = learn(&link, "batch", &symbols(5)).await.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::PayloadTooLarge), "{err}");
        assert_eq!(err.class(), ErrorClass::ClientError);
        assert!(!err.may_have_applied(), "a 413 applied nothing");
        learn(&link, "batch", &symbols(4))
            .await
            .expect("within batch_size");
    }
    let kb = e.handle().kb_frequencies("batch");
    assert_eq!(kb.len(), 1, "one pattern, learned once per path");
    assert_eq!(kb[0].1, 2);
    e.shutdown().await;

    let timeout = EngineLimits {
        request_timeout: Some(Duration::from_nanos(1)),
        ..EngineLimits::default()
    };
    let e = engine_with(timeout, None).await;
    for link in links(&e) {
        let err = learn(&link, "late", &symbols(200)).await.unwrap_err();
        let ErrorKind::OutcomeUnknown { cause } = err.kind() else {
            panic!("a 504 on a learn leaves its outcome unknown: {err}");
        };
        assert!(matches!(**cause, ErrorKind::GatewayTimeout), "{err}");
    }
    assert!(e.handle().kb_frequencies("late").is_empty(), "nothing kept");
    e.shutdown().await;

    let e = engine_with(
        EngineLimits {
            limit_concurrency: Some(1),
            ..EngineLimits::default()
        },
        None,
    )
    .await;
    let held = e.handle().admit().expect("the only slot");
    for link in links(&e) {
        let err = learn(&link, "busy", &symbols(5)).await.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Overloaded { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Overload);
        let calls = link.metrics_snapshot();
        assert_eq!(calls.retries, 1, "sent again once, then given up");
    }
    drop(held);
    e.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_is_replayed_on_a_new_one_on_both_paths() {
    let e = engine_with(EngineLimits::default(), None).await;
    let config = SessionConfig::default();
    let mut sessions = Vec::new();
    for link in links(&e) {
        let session = link.create_session("ttl", &config, Some(1)).await.unwrap();
        sessions.push((link, session));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let three = symbols(3);
    for (link, mut session) in sessions {
        let old = session.id().to_string();
        let mut request = SymbolSequence::new(&three, None);
        request.learn_at_end = true;
        let answer = link
            .observe_sequence(&mut session, &request, Replay::OnFreshSession)
            .await
            .expect("replayed on a new session");
        assert!(answer.final_learned_pattern.is_some());
        assert_ne!(session.id(), old);
        assert_eq!(session.recreations(), 1);
        assert_eq!(link.metrics_snapshot().session_recreations, 1);
        let lost = link.delete_session(&session).await.unwrap();
        assert!(lost, "the new session was there to delete");
        assert!(!link.delete_session(&session).await.unwrap(), "and is gone");
    }
    assert_eq!(e.handle().kb_frequencies("ttl")[0].1, 2);
    e.shutdown().await;
}

/// `run` keeps no name tally on katotune's engine: the record's digests are read from
/// the KB at the end (bounded memory at any KB size), streamed in this process or summed
/// by the engine over HTTP, and equal the tallied ones, node by node, learns and
/// distinct names included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_read_from_the_kb_equal_the_tallied_digests() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(50, 2, dir.path());
    let mut records = Vec::new();
    for (from_kb, http) in [(false, false), (true, false), (true, true)] {
        let mut p = p.clone();
        if http {
            p.stack.transport = TransportChoice::Http;
        }
        // A KB file: the checkpoint barrier, and so the digests from the KB, need one.
        let db = dir.path().join(format!("{from_kb}-{http}.db"));
        let e = engine_with(EngineLimits::default(), Some(db)).await;
        let journal = dir.path().join(format!("{from_kb}-{http}.journal.json"));
        let opts = RunOptions {
            digests_from_kb: from_kb,
            ..RunOptions::quiet("from-kb", journal)
        };
        let (record, tallies) =
            runner::run_detailed(&TrainPlan::from(&p), &Target::in_process(&e), &opts)
                .await
                .expect("run starts");
        e.shutdown().await;
        assert_eq!(
            record.status,
            RunStatus::Completed,
            "{:?}",
            record.stop_reason
        );
        let names_kept = !from_kb;
        assert_eq!(
            record.durability.digests_from_kb, !names_kept,
            "from_kb {from_kb}, http {http}"
        );
        for (level, tally) in tallies.iter().enumerate() {
            assert_eq!(
                tally.learns(),
                record.levels[level].kb.learns,
                "node{level}"
            );
            let distinct = tally.digest().distinct;
            assert_eq!(
                distinct > 0,
                names_kept,
                "node{level}: names tallied only when kept"
            );
        }
        records.push(record);
    }
    let kb = |r: &RunRecord| r.levels.iter().map(|l| l.kb.clone()).collect::<Vec<_>>();
    assert_eq!(
        kb(&records[1]),
        kb(&records[0]),
        "read from the KB = tallied"
    );
    assert_eq!(kb(&records[2]), kb(&records[0]), "over HTTP");
    assert!(records[0].levels[3].kb.learns > 0, "the top level learned");
    let requests = |r: &RunRecord| r.levels.iter().map(|l| l.requests).collect::<Vec<_>>();
    assert_eq!(
        requests(&records[1]),
        requests(&records[0]),
        "requests per level"
    );
    assert_eq!(
        requests(&records[2]),
        requests(&records[0]),
        "requests over HTTP"
    );
    assert!(records[0].levels[0].requests > 0);
}
