//! Error shapes as typed errors, and a session lost to its TTL: what the client makes of
//! 400, 404 (both shapes) and 422, and when it recreates a session on its own.

use std::collections::BTreeMap;
use std::time::Duration;

use katotune::kato::api::{ObserveSequence, StmMode};
use katotune::kato::client::{Replay, Session};
use katotune::kato::error::{ErrorClass, ErrorKind, Sent};
use katotune::kato::metrics::Endpoint;

use super::support::{client, engine, name, observation, sequence, session, training};

#[tokio::test]
async fn learn_on_an_empty_stm_is_a_bad_request_naming_the_call_node_and_session() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "empty", training(0, StmMode::Clear)).await;
    let err = kato.learn(&mut s).await.expect_err("empty STM");
    match err.kind() {
        ErrorKind::BadRequest { detail } => assert_eq!(detail, "Cannot learn from empty STM"),
        other => panic!("expected BadRequest, got {other:?}"),
    }
    assert_eq!(err.call().endpoint, Endpoint::Learn);
    assert_eq!(err.call().node_id.as_deref(), Some("empty"));
    assert_eq!(err.call().session_id.as_deref(), Some(s.id()));
    let message = err.to_string();
    for part in ["learn", "empty", s.id(), "Cannot learn from empty STM"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    assert_eq!(err.class(), ErrorClass::ClientError);
    assert!(!err.may_have_applied(), "a 400 applied nothing");
}

#[tokio::test]
async fn an_unknown_session_is_session_not_found_on_sub_paths_and_on_get_session() {
    let engine = engine().await;
    let kato = client(&engine);
    let ghost = "session-00000000000000000000000000000000-1";
    let mut s = Session::resume(ghost, "ghost", training(0, StmMode::Clear), None);
    let observe = kato
        .observe(&mut s, &observation(&["a"]), Replay::Never)
        .await
        .expect_err("unknown session");
    let learn = kato.learn(&mut s).await.expect_err("unknown session");
    let stm = kato.get_stm(&s).await.expect_err("unknown session");
    let info = kato.get_session(&s).await.expect_err("unknown session");
    for err in [&observe, &learn, &stm, &info] {
        match err.kind() {
            ErrorKind::SessionNotFound {
                session_id,
                message,
            } => {
                assert_eq!(session_id, ghost, "{err}");
                assert!(message.contains("not found or expired"), "{err}");
            }
            other => panic!("{} gave {other:?}", err.call()),
        }
        assert_eq!(err.class(), ErrorClass::SessionExpired);
        assert_eq!(err.was_sent(), Sent::Yes, "rejected before it ran");
    }
    assert_eq!(info.call().endpoint, Endpoint::GetSession);
    assert!(
        !kato.delete_session(&s).await.expect("delete"),
        "nothing to delete"
    );
    assert_eq!(
        (s.id(), s.recreations()),
        (ghost, 0),
        "Replay::Never keeps the handle"
    );
    assert_eq!(kato.metrics_snapshot().session_recreations, 0);
}

#[tokio::test]
async fn a_non_number_emotive_is_a_validation_error_naming_the_field() {
    let engine = engine().await;
    let kato = client(&engine);
    let mut s = session(&kato, "valid", training(0, StmMode::Clear)).await;
    // serde_json writes a NaN as null: the only invalid body the typed API can produce.
    let bad = katotune::kato::api::Observation {
        emotives: BTreeMap::from([("joy".to_owned(), f64::NAN)]),
        ..observation(&["a", "b"])
    };
    let err = kato
        .observe(&mut s, &bad, Replay::Never)
        .await
        .expect_err("null emotive");
    let ErrorKind::Validation { problems } = err.kind() else {
        panic!("expected Validation, got {err}");
    };
    let locations: Vec<&str> = problems.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(locations, ["body.emotives.joy"], "{err}");
    assert_eq!(err.class(), ErrorClass::ClientError);
    assert!(!err.may_have_applied());
    assert!(
        kato.get_stm(&s).await.expect("stm").stm.is_empty(),
        "nothing observed"
    );
}

#[tokio::test]
async fn an_expired_session_is_recreated_for_a_replayable_sequence_but_not_for_learn() {
    let engine = engine().await;
    let kato = client(&engine);
    let config = training(0, StmMode::Clear);
    let mut replayed = kato
        .create_session("ttl", &config, Some(1))
        .await
        .expect("session");
    let mut kept = kato
        .create_session("ttl", &config, Some(1))
        .await
        .expect("session");
    kato.observe(&mut kept, &observation(&["a"]), Replay::Never)
        .await
        .expect("observe");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (old_replayed, old_kept) = (replayed.id().to_owned(), kept.id().to_owned());
    let err = kato.learn(&mut kept).await.expect_err("expired session");
    assert!(err.is_session_not_found(), "{err}");
    let chunk = ObserveSequence {
        learn_at_end: true,
        ..sequence(&[&["a"], &["b"], &["c"]])
    };
    let err = kato
        .observe_sequence(&mut kept, &chunk, Replay::Never)
        .await
        .expect_err("expired session, no replay");
    assert!(err.is_session_not_found(), "{err}");
    assert_eq!((kept.id(), kept.recreations()), (old_kept.as_str(), 0));

    let out = kato
        .observe_sequence(&mut replayed, &chunk, Replay::OnFreshSession)
        .await
        .expect("replayed on a fresh session");
    let abc = name(&[&["a"], &["b"], &["c"]]);
    assert_eq!(out.final_learned_pattern.as_deref(), Some(abc.as_str()));
    assert_ne!(
        replayed.id(),
        old_replayed,
        "the handle points at the new session"
    );
    assert_eq!(replayed.recreations(), 1);
    assert_eq!(
        replayed.ttl_seconds(),
        Some(1),
        "recreated with the same TTL"
    );
    let metrics = kato.metrics_snapshot();
    assert_eq!(metrics.session_recreations, 1);
    assert_eq!(kato.kb_patterns("ttl").await.expect("kb"), [(abc, 1)]);
    let info = kato
        .get_session(&replayed)
        .await
        .expect("new session lives");
    assert_eq!(info.node_id, "ttl");
}
