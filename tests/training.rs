//! Training against the embedded engine over real HTTP: batching, workers and resume
//! must never change what is learned.

use std::collections::BTreeMap;
use std::time::Duration;

use katotune::engine::{self, EngineConfig, RunningEngine};
use katotune::kato::client::{ClientConfig, KatoClient};
use katotune::profile::schema::Segmentation;
use katotune::profile::Profile;
use katotune::train::digest::digest_of;
use katotune::train::plan::TrainPlan;
use katotune::train::record::{RunRecord, RunStatus};
use katotune::train::runner::{self, RunOptions, Target};
use tokio_util::sync::CancellationToken;

fn profile(samples: u64, node0_batch: usize, workers: usize, out: &std::path::Path) -> Profile {
    let mut p = Profile {
        name: format!("b{node0_batch}-w{workers}"),
        ..Profile::default()
    };
    p.training.samples = Some(samples);
    p.training.node0_batch = node0_batch;
    p.training.workers = workers;
    p.training.chunk_sizes = vec![5, 7, 9, 11];
    p.report.output_dir = out.to_path_buf();
    p
}

async fn engine(db: Option<std::path::PathBuf>) -> RunningEngine {
    engine::start(EngineConfig {
        db_path: db,
        ..EngineConfig::default()
    })
    .await
    .unwrap()
}

fn options(out: &std::path::Path, resume: bool, cancel: CancellationToken) -> RunOptions {
    RunOptions {
        run_id: "test".into(),
        resume,
        journal_path: out.join("journal.json"),
        cancel,
        drain_deadline: Duration::from_secs(30),
        progress_bar: false,
        digests_from_kb: false,
    }
}

async fn train(p: &Profile, url: &str, opts: &RunOptions) -> RunRecord {
    runner::run(
        &TrainPlan::from(p),
        &Target::embedded(url.to_string()),
        opts,
    )
    .await
    .unwrap()
}

/// Every node's patterns with their frequencies, read back from the engine.
async fn kb(url: &str, nodes: usize) -> Vec<BTreeMap<String, u64>> {
    let client = KatoClient::new(ClientConfig::new(url)).unwrap();
    let mut out = Vec::new();
    for level in 0..nodes {
        let patterns = client.kb_patterns(&format!("node{level}")).await.unwrap();
        out.push(patterns.into_iter().collect());
    }
    out
}

fn digests(r: &RunRecord) -> Vec<String> {
    r.levels.iter().map(|l| l.kb.digest.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_unbatched_and_parallel_runs_learn_the_same_kb() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (batch, workers) in [(1, 1), (50, 1), (50, 4)] {
        let e = engine(None).await;
        let out = dir.path().join(format!("{batch}-{workers}"));
        let p = profile(100, batch, workers, &out);
        let record = train(
            &p,
            &e.url(),
            &options(&out, false, CancellationToken::new()),
        )
        .await;
        assert_eq!(
            record.status,
            RunStatus::Completed,
            "{:?}",
            record.stop_reason
        );
        assert_eq!(record.samples.done, 100);
        let stored = kb(&e.url(), 4).await;
        // What the client counted is exactly what the server stored.
        for (level, counts) in stored.iter().enumerate() {
            assert_eq!(
                digest_of(counts),
                record.levels[level].kb.digest,
                "node{level}, batch {batch}, workers {workers}"
            );
        }
        results.push((record, stored));
        e.shutdown().await;
    }
    let (base, base_kb) = &results[0];
    assert!(
        base.levels[3].kb.learns > 0,
        "the top level learned something"
    );
    for (record, stored) in &results[1..] {
        assert_eq!(digests(record), digests(base));
        assert_eq!(
            stored, base_kb,
            "identical frequencies read back from the engine"
        );
    }
    let calls = |r: &RunRecord| {
        r.calls_per_sample
            .get("observe-sequence")
            .copied()
            .unwrap_or(0.0)
    };
    assert!(
        calls(&results[1].0) < calls(base) / 5.0,
        "batching cuts requests: {} vs {}",
        calls(&results[1].0),
        calls(base)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumed_learns_what_an_uninterrupted_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let whole = {
        let e = engine(None).await;
        let out = dir.path().join("whole");
        let r = train(
            &profile(60, 1, 2, &out),
            &e.url(),
            &options(&out, false, CancellationToken::new()),
        )
        .await;
        let stored = kb(&e.url(), 4).await;
        e.shutdown().await;
        (r, stored)
    };
    let out = dir.path().join("cut");
    let db = out.join("kb.sqlite");
    std::fs::create_dir_all(&out).unwrap();
    let p = profile(60, 1, 2, &out);
    let cancel = CancellationToken::new();
    let e = engine(Some(db.clone())).await;
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let first = train(&p, &e.url(), &options(&out, false, cancel)).await;
    assert_eq!(first.status, RunStatus::Interrupted);
    assert!(
        first.samples.done < 60,
        "the cut came mid-run ({} done)",
        first.samples.done
    );
    e.shutdown().await;
    // A new engine on the same file: the knowledge base survived the restart.
    let e = engine(Some(db)).await;
    let second = train(&p, &e.url(), &options(&out, true, CancellationToken::new())).await;
    assert_eq!(
        second.status,
        RunStatus::Completed,
        "{:?}",
        second.stop_reason
    );
    assert!(second.samples.at_risk.is_empty());
    assert_eq!(first.samples.done + second.samples.done, 60);
    assert_eq!(
        kb(&e.url(), 4).await,
        whole.1,
        "same frequencies as the uninterrupted run"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_journal_from_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(None).await;
    let p = profile(5, 1, 1, dir.path());
    train(
        &p,
        &e.url(),
        &options(dir.path(), false, CancellationToken::new()),
    )
    .await;
    let mut other = p.clone();
    other.training.chunk_sizes = vec![5, 7];
    let target = Target::embedded(e.url());
    let err = runner::run(
        &TrainPlan::from(&other),
        &target,
        &options(dir.path(), true, CancellationToken::new()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("other training settings"), "{err}");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_b_slices_train_and_never_send_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(None).await;
    let mut p = profile(10, 1, 1, dir.path());
    p.training.segmentation = Segmentation::Slices;
    p.training.chunk_sizes = vec![8, 8, 8, 8];
    let r = train(
        &p,
        &e.url(),
        &options(dir.path(), false, CancellationToken::new()),
    )
    .await;
    assert_eq!(r.status, RunStatus::Completed);
    assert!(r.levels[2].kb.learns > 0);
    let client = KatoClient::new(ClientConfig::new(e.url())).unwrap();
    for level in 1..4 {
        for (name, _) in client.kb_patterns(&format!("node{level}")).await.unwrap() {
            let stored = client
                .get_pattern(&format!("node{level}"), &name)
                .await
                .unwrap()
                .unwrap();
            assert!(
                stored
                    .pattern_data
                    .iter()
                    .flatten()
                    .all(|s| s.starts_with("PTRN|")),
                "no UNKNOWN symbols"
            );
        }
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let whole = {
        let e = engine(None).await;
        let out = dir.path().join("whole");
        train(
            &profile(40, 1, 2, &out),
            &e.url(),
            &options(&out, false, CancellationToken::new()),
        )
        .await;
        let stored = kb(&e.url(), 4).await;
        e.shutdown().await;
        stored
    };
    let out = dir.path().join("restart");
    std::fs::create_dir_all(&out).unwrap();
    let db = out.join("kb.sqlite");
    let e = engine(Some(db.clone())).await;
    let addr = e.addr;
    let url = e.url();
    let mut p = profile(40, 1, 2, &out);
    p.health.timeout = Duration::from_secs(30);
    let restarter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        e.shutdown().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        engine::start(EngineConfig {
            bind: addr,
            db_path: Some(db),
            ..EngineConfig::default()
        })
        .await
        .unwrap()
    });
    let record = train(&p, &url, &options(&out, false, CancellationToken::new())).await;
    let e = restarter.await.unwrap();
    assert_eq!(
        record.status,
        RunStatus::Completed,
        "{:?}",
        record.stop_reason
    );
    assert!(record.calls.outages >= 1, "the outage is counted");
    let at_risk = record.samples.at_risk.len() as u64;
    let stored = kb(&e.url(), 4).await;
    if at_risk == 0 {
        assert_eq!(stored, whole, "nothing lost, nothing doubled");
    } else {
        // A request cut by the restart is never replayed, so nothing is ever doubled;
        // what is missing belongs to the samples reported at risk, and only to them.
        assert!(at_risk <= 2, "{:?}", record.samples.at_risk);
        let mut missing = 0;
        for (level, names) in whole.iter().enumerate() {
            for (name, n) in names {
                let got = stored[level].get(name).copied().unwrap_or(0);
                assert!(got <= *n, "{name} doubled at node{level}");
                missing += n - got;
            }
            assert!(
                stored[level].keys().all(|k| names.contains_key(k)),
                "no foreign patterns"
            );
        }
        let per_sample = whole.iter().map(|m| m.values().sum::<u64>()).sum::<u64>() / 40;
        assert!(
            missing <= at_risk * per_sample * 3,
            "{missing} learns missing for {at_risk} samples at risk"
        );
    }
    e.shutdown().await;
}
