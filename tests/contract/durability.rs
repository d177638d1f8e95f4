//! Exact counts under concurrency, and a knowledge base that outlives its engine.

use std::collections::BTreeMap;

use katotune::engine::{start, EngineConfig};
use katotune::kato::api::{Observation, ObserveSequence, StmMode};
use katotune::kato::client::Replay;
use katotune::kato::pattern::wire_name;

use super::support::{client, engine, name, sequence, session, training};

const LEARNERS: usize = 8;

#[tokio::test]
async fn eight_sessions_learning_the_same_chunks_at_once_count_every_learn() {
    let engine = engine().await;
    let kato = client(&engine);
    // 40 five-token chunks over 23 tokens: some chunks repeat, so counts exceed 8.
    let chunks: Vec<Vec<String>> = (0..40)
        .map(|c| {
            (0..5)
                .map(|t| format!("w{}", (c * 7 + t * t) % 23))
                .collect()
        })
        .collect();
    let request = ObserveSequence {
        observations: chunks.iter().flatten().map(Observation::symbol).collect(),
        ..ObserveSequence::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..LEARNERS {
        let (kato, request) = (kato.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = session(&kato, "shared", training(5, StmMode::Clear)).await;
            kato.observe_sequence(&mut s, &request, Replay::OnFreshSession)
                .await
        }));
    }
    for task in tasks {
        let out = task.await.expect("task").expect("observe-sequence");
        assert_eq!(out.auto_learned_patterns.len(), chunks.len());
        assert_eq!(out.final_stm_length, 0);
    }
    let mut expected = BTreeMap::new();
    for chunk in &chunks {
        let events: Vec<Vec<String>> = chunk.iter().map(|t| vec![t.clone()]).collect();
        *expected.entry(wire_name(&events)).or_insert(0u64) += LEARNERS as u64;
    }
    let got: BTreeMap<String, u64> = kato
        .kb_patterns("shared")
        .await
        .expect("kb")
        .into_iter()
        .collect();
    assert_eq!(got, expected);
    let (first, count) = expected.iter().next().expect("patterns");
    let stored = kato.get_pattern("shared", first).await.expect("lookup");
    assert_eq!(stored.map(|p| p.frequency), Some(*count));
}

#[tokio::test]
async fn frequencies_continue_after_a_restart_on_the_same_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        db_path: Some(dir.path().join("kb.sqlite")),
        ..EngineConfig::default()
    };
    let abc = name(&[&["a"], &["b"], &["c"]]);
    let xy = name(&[&["x", "y"]]);
    for round in 1..=3u64 {
        let engine = start(config.clone()).await.expect("engine starts");
        let kato = client(&engine);
        let mut s = session(&kato, "disk", training(0, StmMode::Clear)).await;
        let chunk = ObserveSequence {
            learn_at_end: true,
            ..sequence(&[&["a"], &["b"], &["c"]])
        };
        kato.observe_sequence(&mut s, &chunk, Replay::OnFreshSession)
            .await
            .expect("learn");
        if round == 1 {
            let once = ObserveSequence {
                learn_at_end: true,
                ..sequence(&[&["y", "x"]])
            };
            kato.observe_sequence(&mut s, &once, Replay::OnFreshSession)
                .await
                .expect("learn");
        }
        let stored = kato.get_pattern("disk", &abc).await.expect("lookup");
        assert_eq!(stored.map(|p| p.frequency), Some(round), "round {round}");
        let mut kb = kato.kb_patterns("disk").await.expect("kb");
        kb.sort();
        let mut want = vec![(abc.clone(), round), (xy.clone(), 1)];
        want.sort();
        assert_eq!(kb, want, "round {round}");
        engine.shutdown().await;
    }
}
