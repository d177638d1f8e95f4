//! The KATO contract (API.md sections 2-4 and 7) as a user of `KatoClient` sees it,
//! over real HTTP against the embedded engine: pattern names, STM, frequencies and
//! learning modes here; typed errors and session loss in `failures`; the engine's knobs
//! in `knobs`; concurrent learners and restarts in `durability`.
//!
//! Not checkable through the client: predictions (the client has no call for them, and
//! the engine answers 501), and the raw 404/405/500 body shapes themselves (the client
//! only exposes what it makes of them; `tests/kato_client.rs` covers that mapping).

#[path = "contract/durability.rs"]
mod durability;
#[path = "contract/failures.rs"]
mod failures;
#[path = "contract/knobs.rs"]
mod knobs;
#[path = "contract/support.rs"]
mod support;

use katotune::kato::api::{ObserveSequence, StmMode};
use katotune::kato::client::Replay;

use support::{client, engine, name, observation, sequence, session, training, vectors};

#[tokio::test]
async fn every_vector_is_named_like_kato_through_observe_and_learn_and_stm_holds_sorted_events() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "vectors", training(0, StmMode::Clear)).await;
    for v in vectors() {
        for event in &v.events {
            let observed = kato
                .observe(&mut s, &observation(event), Replay::Never)
                .await
                .expect("observe");
            assert_eq!(observed.auto_learned_pattern, None, "{}", v.description);
        }
        let stm = kato.get_stm(&s).await.expect("stm");
        assert_eq!(stm.stm, v.normalized_events, "{}", v.description);
        assert_eq!(stm.length, v.normalized_events.len(), "{}", v.description);
        let learned = kato.learn(&mut s).await.expect("learn");
        assert_eq!(learned.pattern_name, v.learned_name(), "{}", v.description);
        let after = kato.get_stm(&s).await.expect("stm after learn");
        assert!(after.stm.is_empty(), "learn empties STM: {}", v.description);
    }
}

#[tokio::test]
async fn every_vector_is_named_like_kato_through_observe_sequence_with_learn_at_end() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "vectors", training(0, StmMode::Clear)).await;
    for v in vectors() {
        let request = ObserveSequence {
            observations: v.observations(),
            learn_at_end: true,
            ..ObserveSequence::default()
        };
        let out = kato
            .observe_sequence(&mut s, &request, Replay::OnFreshSession)
            .await
            .expect("observe-sequence");
        let want = v.learned_name();
        assert_eq!(
            out.final_learned_pattern.as_deref(),
            Some(want),
            "{}",
            v.description
        );
        assert_eq!(out.auto_learned_patterns, [want], "{}", v.description);
        assert_eq!(out.final_stm_length, 0, "{}", v.description);
        if v.server_stores {
            let stored = kato.get_pattern("vectors", want).await.expect("pattern");
            let stored = stored.expect("a stored vector is found");
            assert_eq!(
                stored.pattern_data, v.normalized_events,
                "{}",
                v.description
            );
        }
    }
    assert_eq!(s.recreations(), 0, "the session was never lost");
}

#[tokio::test]
async fn relearning_increments_frequency_seen_through_get_pattern_and_kb_patterns() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "freq", training(0, StmMode::Clear)).await;
    let hello = name(&[&["hello", "world"], &["again"]]);
    let learn_once = ObserveSequence {
        learn_at_end: true,
        ..sequence(&[&["world", "hello"], &["again"]])
    };
    for round in 1..=3u64 {
        let out = kato
            .observe_sequence(&mut s, &learn_once, Replay::OnFreshSession)
            .await
            .expect("learn chunk");
        assert_eq!(out.final_learned_pattern.as_deref(), Some(hello.as_str()));
        let stored = kato.get_pattern("freq", &hello).await.expect("lookup");
        assert_eq!(stored.map(|p| p.frequency), Some(round));
    }
    let stored = kato.get_pattern("freq", &hello).await.expect("lookup");
    let stored = stored.expect("learned pattern is found");
    assert_eq!(stored.name, hello);
    assert_eq!(stored.pattern_data, [vec!["hello", "world"], vec!["again"]]);
    assert_eq!(stored.length, 3, "length counts symbols");
    assert_eq!(
        kato.kb_patterns("freq").await.expect("kb"),
        [(hello.clone(), 3)]
    );

    let unknown = name(&[&["never"], &["learned"]]);
    assert_eq!(
        kato.get_pattern("freq", &unknown).await.expect("lookup"),
        None
    );
    assert_eq!(
        kato.get_pattern("other_node", &hello)
            .await
            .expect("lookup"),
        None,
        "a KB is chosen by node id alone"
    );
}

#[tokio::test]
async fn a_learn_stores_only_two_or_more_symbols_but_always_empties_stm() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "min", training(0, StmMode::Clear)).await;
    kato.observe(&mut s, &observation(&["x"]), Replay::Never)
        .await
        .expect("observe");
    let one = kato.learn(&mut s).await.expect("learn one symbol");
    assert_eq!(
        (one.status.as_str(), one.pattern_name.as_str()),
        ("learned", "")
    );
    assert!(kato.get_stm(&s).await.expect("stm").stm.is_empty());

    kato.observe(&mut s, &observation(&["y", "x"]), Replay::Never)
        .await
        .expect("observe");
    let two = kato.learn(&mut s).await.expect("learn two symbols");
    assert_eq!(two.pattern_name, name(&[&["x", "y"]]));
    assert_eq!(
        kato.kb_patterns("min").await.expect("kb"),
        [(two.pattern_name, 1)],
        "the one-symbol learn stored nothing"
    );
}

#[tokio::test]
async fn auto_learn_in_clear_mode_learns_abc_and_leaves_d_in_stm() {
    let engine = engine().await;
    let kato = client(&engine);
    let abc = name(&[&["a"], &["b"], &["c"]]);
    let mut s = session(&kato, "clear", training(3, StmMode::Clear)).await;
    let out = kato
        .observe_sequence(
            &mut s,
            &sequence(&[&["a"], &["b"], &["c"], &["d"]]),
            Replay::Never,
        )
        .await
        .expect("observe-sequence");
    let per_step: Vec<Option<&str>> = out
        .results
        .iter()
        .map(|r| r.auto_learned_pattern.as_deref())
        .collect();
    assert_eq!(per_step, [None, None, Some(abc.as_str()), None]);
    assert_eq!(out.auto_learned_patterns, [abc.as_str()]);
    assert_eq!(
        out.final_learned_pattern, None,
        "learn_at_end was not asked"
    );
    assert_eq!(kato.get_stm(&s).await.expect("stm").stm, [["d"]]);

    let mut single = session(&kato, "clear", training(3, StmMode::Clear)).await;
    let mut answers = Vec::new();
    for token in ["a", "b", "c"] {
        let observed = kato
            .observe(&mut single, &observation(&[token]), Replay::Never)
            .await
            .expect("observe");
        answers.push(observed.auto_learned_pattern);
    }
    assert_eq!(answers, [None, None, Some(abc.clone())]);
    assert_eq!(kato.kb_patterns("clear").await.expect("kb"), [(abc, 2)]);
}

#[tokio::test]
async fn auto_learn_in_rolling_mode_with_learn_at_end_gives_pqr_qrs_rs() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "rolling", training(3, StmMode::Rolling)).await;
    let request = ObserveSequence {
        learn_at_end: true,
        ..sequence(&[&["p"], &["q"], &["r"], &["s"]])
    };
    let out = kato
        .observe_sequence(&mut s, &request, Replay::Never)
        .await
        .expect("observe-sequence");
    let pqr = name(&[&["p"], &["q"], &["r"]]);
    let qrs = name(&[&["q"], &["r"], &["s"]]);
    let rs = name(&[&["r"], &["s"]]);
    assert_eq!(
        out.auto_learned_patterns,
        [pqr.clone(), qrs.clone(), rs.clone()]
    );
    let per_step: Vec<Option<String>> = out
        .results
        .iter()
        .map(|r| r.auto_learned_pattern.clone())
        .collect();
    assert_eq!(per_step, [None, None, Some(pqr), Some(qrs)]);
    assert_eq!(out.final_learned_pattern, Some(rs));
    assert_eq!(
        out.final_stm_length, 0,
        "learn_at_end empties STM in ROLLING too"
    );
}

#[tokio::test]
async fn learn_after_each_names_every_observation_on_its_own() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "each", training(0, StmMode::Clear)).await;
    let request = ObserveSequence {
        learn_after_each: true,
        ..sequence(&[&["x"], &["z", "y"], &["w"]])
    };
    let out = kato
        .observe_sequence(&mut s, &request, Replay::Never)
        .await
        .expect("observe-sequence");
    let yz = name(&[&["y", "z"]]);
    assert_eq!(out.auto_learned_patterns, ["", yz.as_str(), ""]);
    assert!(
        out.results.iter().all(|r| r.auto_learned_pattern.is_none()),
        "results[i] report only max_pattern_length auto-learns"
    );
    assert_eq!(kato.kb_patterns("each").await.expect("kb"), [(yz, 1)]);
}

#[tokio::test]
async fn clear_stm_between_with_learn_at_end_learns_only_the_last_item() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "isolated", training(0, StmMode::Clear)).await;
    let request = ObserveSequence {
        clear_stm_between: true,
        learn_at_end: true,
        ..sequence(&[&["a", "b"], &["c", "d"], &["f", "e"]])
    };
    let out = kato
        .observe_sequence(&mut s, &request, Replay::Never)
        .await
        .expect("observe-sequence");
    let ef = name(&[&["e", "f"]]);
    assert!(out.isolated, "isolated echoes clear_stm_between");
    assert_eq!(out.final_learned_pattern.as_deref(), Some(ef.as_str()));
    assert_eq!(out.auto_learned_patterns, [ef.as_str()]);
    assert_eq!(kato.kb_patterns("isolated").await.expect("kb"), [(ef, 1)]);
}
