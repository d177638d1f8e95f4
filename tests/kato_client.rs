//! The KATO client against small fake servers that answer with the real server's
//! shapes (API.md section 1): error mapping, retry rules, session recreation, metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::Router;
use katotune::kato::api::{Observation, ObserveSequence, SessionConfig};
use katotune::kato::client::{ClientConfig, KatoClient, Replay, RetryPolicy, Session};
use katotune::kato::error::{ErrorClass, ErrorKind, Sent};
use katotune::kato::metrics::Endpoint;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// What the fake answers: status, content type, body, and how long to stall first.
#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn text_reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

/// One request the fake saw: `METHOD /path?query` and the body.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;
type Responder = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// Serves `respond(line, nth request with this line)` on `listener`; returns the log.
fn serve(
    listener: TcpListener,
    respond: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
) -> Log {
    let log: Log = Arc::default();
    let respond: Responder = Arc::new(respond);
    let seen = log.clone();
    let app = Router::new().fallback(move |req: Request| {
        let (seen, respond) = (seen.clone(), respond.clone());
        async move {
            let line = format!("{} {}", req.method(), req.uri());
            let body = to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            let nth = {
                let mut seen = seen.lock().expect("log lock");
                let nth = seen.iter().filter(|s| s.line == line).count();
                let body = String::from_utf8_lossy(&body).into_owned();
                seen.push(Seen {
                    line: line.clone(),
                    body,
                });
                nth
            };
            let reply = respond(&line, nth);
            tokio::time::sleep(reply.delay).await;
            let status = StatusCode::from_u16(reply.status).expect("valid status");
            (
                status,
                [(header::CONTENT_TYPE, reply.content_type)],
                reply.body,
            )
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    log
}

async fn fake(respond: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    (url, serve(listener, respond))
}

fn config(url: &str) -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            max_attempts: 4,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        outage_timeout: Duration::from_secs(3),
        ..ClientConfig::new(url)
    }
}

fn client(url: &str) -> KatoClient {
    KatoClient::new(config(url)).expect("client builds")
}

fn count(log: &Log, line: &str) -> usize {
    log.lock()
        .expect("log lock")
        .iter()
        .filter(|s| s.line == line)
        .count()
}

fn old_session() -> Session {
    Session::resume("session-old", "node0", SessionConfig::default(), Some(600))
}

fn created(id: &str) -> Value {
    json!({"session_id": id, "node_id": "node0", "ttl_seconds": 600, "metadata": {},
           "session_config": {"max_pattern_length": 0, "stm_mode": "CLEAR",
                              "process_predictions": false, "sort_symbols": true, "persistence": 5}})
}

fn sequence_done() -> Value {
    json!({"status":"completed","processor_id":"node0","observations_processed":2,
           "initial_stm_length":0,"final_stm_length":0,
           "results":[
             {"status":"okay","sequence_position":0,"stm_length":1,"time":1,"unique_id":"seq-obs-1","auto_learned_pattern":null},
             {"status":"okay","sequence_position":1,"stm_length":2,"time":2,"unique_id":"seq-obs-2","auto_learned_pattern":null}],
           "auto_learned_patterns":["PTRN|345035a51fa393d1b1324ecf07ec4edb16cda0b8"],
           "final_learned_pattern":"PTRN|345035a51fa393d1b1324ecf07ec4edb16cda0b8",
           "isolated":false})
}

fn middleware_404(sid: &str) -> Reply {
    json_reply(
        404,
        json!({"error": {"code": "SESSION_NOT_FOUND",
        "message": format!("Session {sid} not found or expired"), "session_id": sid}}),
    )
}

fn chunk() -> ObserveSequence {
    ObserveSequence {
        observations: vec![Observation::symbol("x"), Observation::symbol("y")],
        learn_at_end: true,
        ..ObserveSequence::default()
    }
}

#[tokio::test]
async fn middleware_404_on_a_session_call_is_session_not_found_naming_the_call() {
    let (url, _log) = fake(|_, _| middleware_404("session-old")).await;
    let err = client(&url)
        .observe(&mut old_session(), &Observation::symbol("a"), Replay::Never)
        .await
        .expect_err("session is gone");
    assert!(err.is_session_not_found(), "{err}");
    assert_eq!(err.class(), ErrorClass::SessionExpired);
    let message = err.to_string();
    for part in ["observe", "node0", "session-old"] {
        assert!(message.contains(part), "{message:?} lacks {part}");
    }
}

#[tokio::test]
async fn endpoint_404_on_get_session_is_session_not_found() {
    let (url, _log) = fake(|_, _| {
        json_reply(
            404,
            json!({"detail": "Session session-old not found or expired"}),
        )
    })
    .await;
    let err = client(&url)
        .get_session(&old_session())
        .await
        .expect_err("gone");
    assert!(err.is_session_not_found(), "{err}");
}

#[tokio::test]
async fn unknown_route_404_is_not_found_rather_than_session_not_found() {
    let (url, _log) = fake(|_, _| json_reply(404, json!({"detail": "Not Found"}))).await;
    let err = client(&url)
        .kb_patterns("node0")
        .await
        .expect_err("no route");
    assert!(matches!(err.kind(), ErrorKind::NotFound { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::ClientError);
}

#[tokio::test]
async fn validation_422_shows_each_location_and_message() {
    let (url, _log) = fake(|_, _| {
        json_reply(
            422,
            json!({"detail": [
            {"type": "missing", "loc": ["body", "node_id"], "msg": "Field required", "input": {}},
            {"type": "string_type", "loc": ["body", "observations", 0, "strings", 1],
             "msg": "Input should be a valid string", "input": 3}]}),
        )
    })
    .await;
    let err = client(&url)
        .create_session("node0", &SessionConfig::default(), None)
        .await
        .expect_err("invalid");
    let ErrorKind::Validation { problems } = err.kind() else {
        panic!("expected Validation, got {err}");
    };
    assert_eq!(problems.len(), 2);
    let message = err.to_string();
    assert!(
        message.contains("body.node_id: Field required"),
        "{message}"
    );
    assert!(
        message.contains("body.observations.0.strings.1: Input should be a valid string"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_request_400_with_an_object_detail_keeps_its_content() {
    let (url, _log) = fake(|_, _| {
        json_reply(
            400,
            json!({"detail": {"error": "Configuration validation failed",
            "validation_errors": {"persistence": "Must be an integer between 1 and 100"}}}),
        )
    })
    .await;
    let err = client(&url)
        .update_session_config(&mut old_session(), &SessionConfig::default())
        .await
        .expect_err("rejected");
    assert!(matches!(err.kind(), ErrorKind::BadRequest { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("Must be an integer between 1 and 100"),
        "{err}"
    );
    assert_eq!(err.was_sent(), Sent::Yes);
}

#[tokio::test]
async fn plain_text_500_on_learn_is_outcome_unknown_and_sent_once() {
    let (url, log) = fake(|_, _| text_reply(500, "Internal Server Error")).await;
    let client = client(&url);
    let err = client.learn(&mut old_session()).await.expect_err("500");
    let ErrorKind::OutcomeUnknown { cause } = err.kind() else {
        panic!("expected OutcomeUnknown, got {err}");
    };
    assert!(matches!(**cause, ErrorKind::ServerError { .. }), "{cause}");
    assert_eq!(err.was_sent(), Sent::Maybe);
    assert!(err.may_have_applied());
    assert_eq!(err.class(), ErrorClass::ServerError);
    assert_eq!(count(&log, "POST /sessions/session-old/learn"), 1);
    assert_eq!(client.metrics_snapshot().retries, 0);
}

#[tokio::test]
async fn plain_text_500_on_a_read_is_a_server_error() {
    let (url, log) = fake(|_, _| text_reply(500, "Internal Server Error")).await;
    let err = client(&url).get_stm(&old_session()).await.expect_err("500");
    assert!(
        matches!(err.kind(), ErrorKind::ServerError { body } if body == "Internal Server Error"),
        "{err}"
    );
    assert_eq!(count(&log, "GET /sessions/session-old/stm"), 1);
}

#[tokio::test]
async fn refused_connection_waits_for_the_server_and_then_succeeds() {
    let spare = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = spare.local_addr().expect("addr");
    drop(spare);
    let client = client(&format!("http://{addr}"));
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = TcpListener::bind(addr).await.expect("rebind the same port");
        serve(listener, |line, _| match line {
            "GET /health" => json_reply(200, json!({"status": "healthy"})),
            _ => json_reply(200, sequence_done()),
        })
    });
    let mut session = old_session();
    let result = client
        .observe_sequence(&mut session, &chunk(), Replay::Never)
        .await;
    let log = late.await.expect("late server started");
    let result = result.expect("succeeds once the server is up");
    assert_eq!(result.auto_learned_patterns.len(), 1);
    assert_eq!(
        count(&log, "POST /sessions/session-old/observe-sequence"),
        1
    );
    let snap = client.metrics_snapshot();
    assert_eq!(snap.outages, 1);
    assert!(snap.outage_seconds > 0.0);
    assert!(snap.retries >= 1);
}

#[tokio::test]
async fn a_server_that_stays_down_gives_server_down_after_the_outage_timeout() {
    let spare = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = spare.local_addr().expect("addr");
    drop(spare);
    let config = ClientConfig {
        outage_timeout: Duration::from_millis(200),
        ..config(&format!("http://{addr}"))
    };
    let client = KatoClient::new(config).expect("client");
    let err = client.learn(&mut old_session()).await.expect_err("down");
    assert!(matches!(err.kind(), ErrorKind::ServerDown { .. }), "{err}");
    assert_eq!(err.was_sent(), Sent::No);
    assert!(!err.may_have_applied());
    assert_eq!(err.class(), ErrorClass::Connect);
    assert_eq!(client.metrics_snapshot().outages, 1);
}

#[tokio::test]
async fn overloaded_503_is_retried_until_the_server_accepts() {
    let (url, log) = fake(|_, nth| match nth {
        0 | 1 => text_reply(503, "Service Unavailable"),
        _ => json_reply(200, sequence_done()),
    })
    .await;
    let client = client(&url);
    let result = client
        .observe_sequence(&mut old_session(), &chunk(), Replay::Never)
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        count(&log, "POST /sessions/session-old/observe-sequence"),
        3
    );
    assert_eq!(client.metrics_snapshot().retries, 2);
}

#[tokio::test]
async fn persistent_503_gives_overloaded_after_max_attempts() {
    let (url, log) = fake(|_, _| text_reply(503, "Service Unavailable")).await;
    let err = client(&url)
        .learn(&mut old_session())
        .await
        .expect_err("busy");
    assert!(matches!(err.kind(), ErrorKind::Overloaded { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Overload);
    assert!(!err.may_have_applied());
    assert_eq!(count(&log, "POST /sessions/session-old/learn"), 4);
}

#[tokio::test]
async fn timeout_on_observe_sequence_is_outcome_unknown_and_not_retried() {
    let (url, log) = fake(|_, _| Reply {
        delay: Duration::from_secs(2),
        ..json_reply(200, sequence_done())
    })
    .await;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(200),
        ..config(&url)
    };
    let client = KatoClient::new(config).expect("client");
    let err = client
        .observe_sequence(&mut old_session(), &chunk(), Replay::OnFreshSession)
        .await
        .expect_err("too slow");
    let ErrorKind::OutcomeUnknown { cause } = err.kind() else {
        panic!("expected OutcomeUnknown, got {err}");
    };
    assert!(matches!(**cause, ErrorKind::Timeout { .. }), "{cause}");
    assert_eq!(err.class(), ErrorClass::Timeout);
    assert!(err.may_have_applied());
    assert_eq!(
        count(&log, "POST /sessions/session-old/observe-sequence"),
        1
    );
}

#[tokio::test]
async fn connection_dropped_mid_answer_on_learn_is_outcome_unknown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(Mutex::new(0usize));
    let counter = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            *counter.lock().expect("lock") += 1;
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"sta")
                .await;
        }
    });
    let err = client(&url)
        .learn(&mut old_session())
        .await
        .expect_err("cut");
    let ErrorKind::OutcomeUnknown { cause } = err.kind() else {
        panic!("expected OutcomeUnknown, got {err}");
    };
    assert!(
        matches!(**cause, ErrorKind::ConnectionLost { .. }),
        "{cause}"
    );
    assert_eq!(*accepted.lock().expect("lock"), 1);
}

#[tokio::test]
async fn lost_session_on_a_safe_observe_sequence_is_recreated_and_replayed() {
    let (url, log) = fake(|line, _| match line {
        "POST /sessions" => json_reply(200, created("session-new")),
        "POST /sessions/session-new/observe-sequence" => json_reply(200, sequence_done()),
        _ => middleware_404("session-old"),
    })
    .await;
    let client = client(&url);
    let mut session = old_session();
    let result = client
        .observe_sequence(&mut session, &chunk(), Replay::OnFreshSession)
        .await
        .expect("replayed on a new session");
    assert_eq!(
        result.final_learned_pattern.as_deref(),
        Some("PTRN|345035a51fa393d1b1324ecf07ec4edb16cda0b8")
    );
    assert_eq!(session.id(), "session-new");
    assert_eq!(session.recreations(), 1);
    assert_eq!(count(&log, "POST /sessions"), 1);
    let create = log
        .lock()
        .expect("lock")
        .iter()
        .find(|s| s.line == "POST /sessions")
        .cloned();
    let create: Value =
        serde_json::from_str(&create.expect("create seen").body).expect("json body");
    assert_eq!(create["node_id"], "node0");
    assert_eq!(create["ttl_seconds"], 600);
    let snap = client.metrics_snapshot();
    assert_eq!(snap.session_recreations, 1);
    assert_eq!(snap.total_errors, 0);
}

#[tokio::test]
async fn lost_session_on_learn_is_returned_and_no_session_is_created() {
    let (url, log) = fake(|line, _| match line {
        "POST /sessions" => json_reply(200, created("session-new")),
        _ => middleware_404("session-old"),
    })
    .await;
    let mut session = old_session();
    let err = client(&url).learn(&mut session).await.expect_err("gone");
    assert!(err.is_session_not_found(), "{err}");
    assert!(!err.may_have_applied());
    assert_eq!(session.id(), "session-old");
    assert_eq!(count(&log, "POST /sessions"), 0);
}

#[tokio::test]
async fn garbage_json_is_a_bad_response_naming_the_call_and_showing_the_body() {
    let (url, _log) = fake(|_, _| text_reply(200, "<html>proxy says hello</html>")).await;
    let err = client(&url)
        .observe_sequence(&mut old_session(), &chunk(), Replay::Never)
        .await
        .expect_err("not json");
    assert!(matches!(err.kind(), ErrorKind::BadResponse { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("observe-sequence"), "{message}");
    assert!(message.contains("<html>proxy says hello"), "{message}");
    assert!(err.may_have_applied(), "a 2xx observe-sequence was applied");
}

#[tokio::test]
async fn create_session_sends_the_full_config_and_rejects_a_silently_dropped_one() {
    let (url, log) = fake(|_, _| {
        let mut answer = created("session-a");
        answer["session_config"]["process_predictions"] = json!(true);
        json_reply(200, answer)
    })
    .await;
    let err = client(&url)
        .create_session("node0", &SessionConfig::default(), Some(600))
        .await
        .expect_err("server kept predictions on");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConfigIgnored {
                key: "process_predictions",
                ..
            }
        ),
        "{err}"
    );
    let sent = log.lock().expect("lock")[0].body.clone();
    let sent: Value = serde_json::from_str(&sent).expect("json body");
    assert_eq!(sent["config"]["process_predictions"], false);
    assert_eq!(sent["config"]["max_pattern_length"], 0);
    assert_eq!(sent["config"]["stm_mode"], "CLEAR");
}

#[tokio::test]
async fn get_pattern_maps_the_200_not_found_to_none_and_encodes_the_name() {
    let (url, log) = fake(|line, _| {
        if line.contains("0000") {
            json_reply(200, json!({"pattern": {"status": "error", "message": "Pattern PTRN|0000 not found"},
                                   "node_id": "node0_kato"}))
        } else {
            json_reply(200, json!({"pattern": {"status": "okay", "pattern": {
                "name": "PTRN|ae68", "pattern_data": [["hello", "world"], ["again"]],
                "length": 3, "frequency": 2, "emotives": [], "metadata": {}}}, "node_id": "node0_kato"}))
        }
    })
    .await;
    let client = client(&url);
    assert_eq!(
        client
            .get_pattern("node0", "PTRN|0000")
            .await
            .expect("answer"),
        None
    );
    let found = client
        .get_pattern("node0", "PTRN|ae68")
        .await
        .expect("answer");
    assert_eq!(found.map(|p| p.frequency), Some(2));
    assert_eq!(count(&log, "GET /pattern/PTRN%7Cae68?node_id=node0"), 1);
}

#[tokio::test]
async fn kb_patterns_lists_names_with_frequencies() {
    let (url, _log) = fake(|_, _| {
        json_reply(
            200,
            json!({"kb_id": "node0_kato", "patterns": [
            {"name": "PTRN|aa", "frequency": 3}, {"name": "PTRN|bb", "frequency": 1}]}),
        )
    })
    .await;
    let patterns = client(&url).kb_patterns("node0").await.expect("listing");
    assert_eq!(
        patterns,
        vec![("PTRN|aa".to_owned(), 3), ("PTRN|bb".to_owned(), 1)]
    );
}

#[tokio::test]
async fn metrics_count_calls_by_endpoint_and_give_percentiles() {
    let (url, _log) = fake(|line, _| match line {
        "GET /health" => json_reply(200, json!({"status": "degraded"})),
        _ => middleware_404("session-old"),
    })
    .await;
    let client = client(&url);
    for _ in 0..10 {
        client.health().await.expect("health answers");
    }
    for _ in 0..3 {
        let _ = client.learn(&mut old_session()).await;
    }
    let snap = client.metrics_snapshot();
    assert_eq!(snap.total_calls, 13);
    assert_eq!(snap.endpoints[&Endpoint::Health].calls, 10);
    assert_eq!(snap.endpoints[&Endpoint::Learn].errors, 3);
    assert_eq!(snap.errors_by_class[&ErrorClass::SessionExpired], 3);
    assert_eq!(snap.latency.samples, 13);
    assert!(snap.latency.p50_ms > 0.0);
    assert!(snap.latency.p50_ms <= snap.latency.p99_ms);
    assert!(snap.latency.p99_ms <= snap.latency.max_ms);
}
