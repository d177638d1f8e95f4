//! Handlers under `/sessions` (API.md sections 2.2-2.8).
//!
//! Handlers behind the session middleware receive the live [`Session`] as a request
//! extension. Each is a thin wrapper: parse the body, call the engine's typed operation
//! (`ops.rs`), render its answer or its error (`reply.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::kato::api::{CreateSession, Observation, ObserveSequence, StmResult};

use super::body::{self, parse};
use super::limits::Deadline;
use super::ops::OpError;
use super::reply::{
    detail, internal_error, not_found, ok, op_error, session_detail_not_found, unprocessable,
};
use super::sessions::{timestamp, Session};
use super::Engine;

type Live = Extension<Arc<Session>>;
type Body = Result<Bytes, BytesRejection>;

/// Parses a request body, or gives the answer for a body that could not be read or parsed.
fn read<T: serde::de::DeserializeOwned>(body: Body, schema: &body::Ty) -> Result<T, Box<Response>> {
    let bytes = body.map_err(|e| {
        Box::new(detail(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        ))
    })?;
    parse(&bytes, schema).map_err(|entries| Box::new(unprocessable(entries)))
}

/// `POST /sessions`.
pub async fn create(State(engine): State<Arc<Engine>>, body: Body) -> Response {
    let req: CreateSession = match read(body, &body::CREATE_SESSION) {
        Ok(value) => value,
        Err(answer) => return *answer,
    };
    let echoed_ttl = req.ttl_seconds.unwrap_or(3600);
    match engine.create_session(req) {
        Ok(session) => ok(&session_info(&session, json!(echoed_ttl))),
        Err(err) => op_error(&err),
    }
}

fn session_info(session: &Session, ttl_seconds: Value) -> Value {
    let config = session.lock().config.clone();
    json!({
        "session_id": session.id,
        "node_id": session.node_id,
        "created_at": timestamp(session.created_at),
        "expires_at": timestamp(session.expires_at()),
        "ttl_seconds": ttl_seconds,
        "metadata": {},
        "session_config": config,
    })
}

/// `GET /sessions/{sid}`: 404 with `detail` here, not the middleware's shape.
pub async fn info(
    State(engine): State<Arc<Engine>>,
    sid: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(sid)) = sid else {
        return not_found().await;
    };
    let Some(session) = engine.sessions.get(&sid, true) else {
        return session_detail_not_found(&sid);
    };
    let remaining = (session.expires_at() - Utc::now()).num_seconds().max(0);
    ok(&session_info(&session, json!(remaining)))
}

/// `DELETE /sessions/{sid}`.
pub async fn delete(State(engine): State<Arc<Engine>>, Extension(session): Live) -> Response {
    engine.sessions.remove(&session.id);
    ok(&json!({"status": "deleted", "session_id": session.id}))
}

/// `GET /sessions/{sid}/exists`: never 404, never extends.
pub async fn exists(
    State(engine): State<Arc<Engine>>,
    sid: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(sid)) = sid else {
        return not_found().await;
    };
    let (exists, expired) = engine.sessions.exists(&sid);
    ok(&json!({"exists": exists, "expired": expired, "session_id": sid}))
}

/// `POST /sessions/{sid}/extend?ttl_seconds=N` (query parameter, default 3600).
pub async fn extend(Extension(session): Live, RawQuery(query): RawQuery) -> Response {
    let raw = query.as_deref().unwrap_or("").split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == "ttl_seconds").then_some(value)
    });
    let ttl = match raw.map(|v| v.parse::<i64>()) {
        None => 3600,
        Some(Ok(n)) if n >= 0 => n,
        Some(Ok(_)) => return internal_error(),
        Some(Err(_)) => {
            return unprocessable(vec![json!({
                "type": "int_parsing", "loc": ["query", "ttl_seconds"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": raw,
            })])
        }
    };
    session.extend_by(Duration::from_secs(ttl.unsigned_abs()));
    ok(&json!({"status": "extended", "session_id": session.id, "ttl_seconds": ttl}))
}

/// `GET /sessions/count`.
pub async fn count(State(engine): State<Arc<Engine>>) -> Response {
    ok(&json!({"active_session_count": engine.sessions.sweep()}))
}

/// `GET /sessions/{sid}/config`.
pub async fn get_config(Extension(session): Live) -> Response {
    let config = session.lock().config.clone();
    ok(&json!({"session_id": session.id, "config": config}))
}

/// `POST /sessions/{sid}/config`: `{"config": {...}}` or the bare object.
pub async fn set_config(
    State(engine): State<Arc<Engine>>,
    Extension(session): Live,
    body: Body,
) -> Response {
    let mut map: Map<String, Value> = match read(body, &body::CONFIG_UPDATE) {
        Ok(value) => value,
        Err(answer) => return *answer,
    };
    let updates = match map.remove("config") {
        Some(Value::Object(inner)) => inner,
        Some(other) => {
            map.insert("config".into(), other);
            map
        }
        None => map,
    };
    match engine.set_config(&session, &updates) {
        Ok(()) => ok(
            &json!({"status": "okay", "message": "Configuration updated", "session_id": session.id}),
        ),
        Err(err) => op_error(&err),
    }
}

/// `POST /sessions/{sid}/observe`.
pub async fn observe(
    State(engine): State<Arc<Engine>>,
    Extension(session): Live,
    body: Body,
) -> Response {
    let obs: Observation = match read(body, &body::OBSERVATION) {
        Ok(value) => value,
        Err(answer) => return *answer,
    };
    reply(engine.observe(&session, obs))
}

/// `POST /sessions/{sid}/observe-sequence`.
pub async fn observe_sequence(
    State(engine): State<Arc<Engine>>,
    Extension(session): Live,
    deadline: Option<Extension<Deadline>>,
    body: Body,
) -> Response {
    let req: ObserveSequence = match read(body, &body::OBSERVE_SEQUENCE) {
        Ok(value) => value,
        Err(answer) => return *answer,
    };
    let deadline = deadline.map(|Extension(Deadline(at))| at);
    reply(engine.observe_sequence(&session, req, deadline))
}

/// `POST /sessions/{sid}/learn`: the whole STM, always emptied afterwards.
pub async fn learn(State(engine): State<Arc<Engine>>, Extension(session): Live) -> Response {
    reply(engine.learn(&session))
}

/// `POST /sessions/{sid}/clear-stm`: STM, accumulators and time.
pub async fn clear_stm(State(engine): State<Arc<Engine>>, Extension(session): Live) -> Response {
    engine.clear_stm(&session);
    ok(&json!({"status": "cleared", "session_id": session.id}))
}

/// `POST /sessions/{sid}/clear-all`: also deletes the node's whole knowledge base.
pub async fn clear_all(State(engine): State<Arc<Engine>>, Extension(session): Live) -> Response {
    engine.clear_all(&session);
    ok(&json!({"status": "cleared", "session_id": session.id, "scope": "all"}))
}

/// `GET /sessions/{sid}/stm`.
pub async fn stm(Extension(session): Live) -> Response {
    let stm = session.lock().state.stm.clone();
    ok(&StmResult {
        length: stm.len(),
        stm,
        session_id: session.id.clone(),
    })
}

/// `GET /sessions/{sid}/predictions`: not computed by this engine.
pub async fn predictions(Extension(_session): Live) -> Response {
    op_error(&OpError::NotImplemented(
        "the embedded katotune engine does not compute predictions; it learns and \
         stores patterns only. Use a docker or external KATO backend for predictions"
            .into(),
    ))
}

/// 200 with the operation's answer, or the answer for its error.
fn reply<T: serde::Serialize>(result: Result<T, OpError>) -> Response {
    match result {
        Ok(answer) => ok(&answer),
        Err(err) => op_error(&err),
    }
}
