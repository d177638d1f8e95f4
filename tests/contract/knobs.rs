//! The engine's knobs as the client sees them: batch_size, stm_capacity,
//! request_timeout, connection_pool_size and limit_concurrency.

use std::time::Duration;

use katotune::engine::{EngineLimits, RunningEngine};
use katotune::kato::api::{ObserveSequence, StmMode};
use katotune::kato::client::{KatoClient, Replay, Session};
use katotune::kato::error::{ErrorClass, ErrorKind, KatoError, Sent};
use katotune::kato::metrics::Endpoint;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::support::{client, engine_with, observation, sequence, session, tokens, training};

#[tokio::test]
async fn more_observations_than_batch_size_is_payload_too_large_and_nothing_is_kept() {
    let engine = engine_with(EngineLimits {
        batch_size: Some(4),
        ..EngineLimits::default()
    })
    .await;
    let kato = client(&engine);
    let mut s = session(&kato, "batch", training(0, StmMode::Clear)).await;
    let five = ObserveSequence {
        learn_at_end: true,
        ..sequence(&[&["a"], &["b"], &["c"], &["d"], &["e"]])
    };
    let err = kato
        .observe_sequence(&mut s, &five, Replay::OnFreshSession)
        .await
        .expect_err("over batch_size");
    assert!(matches!(err.kind(), ErrorKind::PayloadTooLarge), "{err}");
    assert_eq!(err.class(), ErrorClass::ClientError);
    assert!(!err.may_have_applied(), "a 413 applied nothing");
    assert!(kato.kb_patterns("batch").await.expect("kb").is_empty());
    let four = ObserveSequence {
        learn_at_end: true,
        ..sequence(&[&["a"], &["b"], &["c"], &["d"]])
    };
    let out = kato
        .observe_sequence(&mut s, &four, Replay::OnFreshSession)
        .await
        .expect("within batch_size");
    assert!(out.final_learned_pattern.is_some_and(|n| !n.is_empty()));
}

#[tokio::test]
async fn stm_beyond_capacity_is_trimmed_from_the_front_and_the_answer_says_so() {
    let engine = engine_with(EngineLimits {
        stm_capacity: 3,
        ..EngineLimits::default()
    })
    .await;
    let kato = client(&engine);
    let mut s = session(&kato, "cap", training(0, StmMode::Clear)).await;
    let within = kato
        .observe_sequence(&mut s, &sequence(&[&["a"], &["b"]]), Replay::Never)
        .await
        .expect("observe-sequence");
    assert_eq!(within.stm_capacity_note, None, "nothing dropped yet");
    let over = kato
        .observe_sequence(&mut s, &sequence(&[&["c"], &["d"]]), Replay::Never)
        .await
        .expect("observe-sequence");
    let note = over
        .stm_capacity_note
        .expect("a note when events are dropped");
    assert!(
        note.contains("stm_capacity = 3") && note.contains("oldest 1"),
        "{note}"
    );
    let observed = kato
        .observe(&mut s, &observation(&["e"]), Replay::Never)
        .await
        .expect("observe");
    assert!(
        observed.stm_capacity_note.is_some(),
        "single observes report it too"
    );
    assert_eq!(
        kato.get_stm(&s).await.expect("stm").stm,
        tokens(&["c", "d", "e"])
    );
}

/// Retries `call` while the engine's tiny request_timeout cuts it short at random.
async fn past_timeouts<T, F: std::future::Future<Output = Result<T, KatoError>>>(
    mut call: impl FnMut() -> F,
) -> T {
    for _ in 0..50 {
        match call().await {
            Err(err) if is_gateway_timeout(err.kind()) => continue,
            other => return other.expect("the call succeeds when the timer does not fire"),
        }
    }
    panic!("50 calls in a row timed out");
}

fn is_gateway_timeout(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::GatewayTimeout => true,
        ErrorKind::OutcomeUnknown { cause } => is_gateway_timeout(cause),
        _ => false,
    }
}

#[tokio::test]
async fn a_sequence_past_request_timeout_is_a_gateway_timeout_of_unknown_outcome() {
    // The engine checks its deadline every 64 observations: with a 1 ns limit a
    // 64-observation sequence always overruns it, whatever the machine's speed.
    let engine = engine_with(EngineLimits {
        request_timeout: Some(Duration::from_nanos(1)),
        ..EngineLimits::default()
    })
    .await;
    let kato = client(&engine);
    let config = training(0, StmMode::Clear);
    let mut s = past_timeouts(|| kato.create_session("slow", &config, None)).await;
    let symbols: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
    let long = ObserveSequence {
        observations: symbols.iter().map(|t| observation(&[t])).collect(),
        learn_at_end: true,
        ..ObserveSequence::default()
    };
    let before = kato.metrics_snapshot();
    let err = kato
        .observe_sequence(&mut s, &long, Replay::OnFreshSession)
        .await
        .expect_err("past the deadline");
    let ErrorKind::OutcomeUnknown { cause } = err.kind() else {
        panic!("expected OutcomeUnknown, got {err}");
    };
    assert!(matches!(**cause, ErrorKind::GatewayTimeout), "{err}");
    assert_eq!(err.was_sent(), Sent::Maybe);
    assert!(
        err.may_have_applied(),
        "the trainer must mark the sample at risk"
    );
    assert_eq!(err.class(), ErrorClass::ServerError);
    let after = kato.metrics_snapshot();
    let requests = |m: &katotune::kato::metrics::MetricsSnapshot| {
        m.endpoints
            .get(&Endpoint::ObserveSequence)
            .map_or(0, |e| e.requests)
    };
    assert_eq!(requests(&after) - requests(&before), 1, "never sent twice");
    let stm = past_timeouts(|| kato.get_stm(&s)).await;
    assert!(stm.stm.is_empty(), "the engine kept nothing of the request");
    let kb = past_timeouts(|| kato.kb_patterns("slow")).await;
    assert!(kb.is_empty(), "nothing was learned");
}

/// Opens a raw connection and sends a request whose body never completes: it holds
/// one permit of the engine's concurrency gates until the connection closes.
async fn stuck_request(engine: &RunningEngine) -> TcpStream {
    let mut stream = TcpStream::connect(engine.addr).await.expect("connect");
    let head = "POST /sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

/// Calls get-stm until the stuck request holds its permit and the client gives up.
async fn overloaded(kato: &KatoClient, s: &Session) -> KatoError {
    for _ in 0..200 {
        match kato.get_stm(s).await {
            Err(err) if matches!(err.kind(), ErrorKind::Overloaded { .. }) => return err,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("the engine never answered 503");
}

/// The requests and retries one more overloaded get-stm costs.
async fn cost_of_one_overloaded_call(kato: &KatoClient, s: &Session) -> (u64, u64) {
    let before = kato.metrics_snapshot();
    let err = kato.get_stm(s).await.expect_err("still overloaded");
    assert!(matches!(err.kind(), ErrorKind::Overloaded { .. }), "{err}");
    let after = kato.metrics_snapshot();
    let requests = |m: &katotune::kato::metrics::MetricsSnapshot| {
        m.endpoints.get(&Endpoint::GetStm).map_or(0, |e| e.requests)
    };
    (
        requests(&after) - requests(&before),
        after.retries - before.retries,
    )
}

#[tokio::test]
async fn a_full_connection_pool_is_overloaded_once_the_retries_are_spent() {
    let engine = engine_with(EngineLimits {
        connection_pool_size: Some(1),
        ..EngineLimits::default()
    })
    .await;
    let kato = client(&engine);
    let s = session(&kato, "pool", training(0, StmMode::Clear)).await;
    let _held = stuck_request(&engine).await;
    let err = overloaded(&kato, &s).await;
    let ErrorKind::Overloaded { body } = err.kind() else {
        unreachable!("overloaded() returns only Overloaded");
    };
    assert!(body.contains("CONNECTION_POOL_SIZE"), "{body}");
    assert_eq!(err.class(), ErrorClass::Overload);
    assert!(
        !err.may_have_applied(),
        "a 503 is rejected before anything runs"
    );
    assert_eq!(cost_of_one_overloaded_call(&kato, &s).await, (3, 2));
    assert!(kato.health().await.is_ok(), "health is outside the pool");
}

#[tokio::test]
async fn limit_concurrency_is_overloaded_with_uvicorns_plain_body() {
    let engine = engine_with(EngineLimits {
        limit_concurrency: Some(1),
        ..EngineLimits::default()
    })
    .await;
    let kato = client(&engine);
    let s = session(&kato, "limit", training(0, StmMode::Clear)).await;
    let _held = stuck_request(&engine).await;
    let err = overloaded(&kato, &s).await;
    let ErrorKind::Overloaded { body } = err.kind() else {
        unreachable!("overloaded() returns only Overloaded");
    };
    assert_eq!(body, "Service Unavailable");
    assert_eq!(cost_of_one_overloaded_call(&kato, &s).await, (3, 2));
    let health = kato.health().await.expect_err("every route is limited");
    assert!(
        matches!(health.kind(), ErrorKind::Overloaded { .. }),
        "{health}"
    );
}
