//! Handlers under `/sessions` (API.md sections 2.2-2.8).
//!
//! Handlers behind the session middleware receive the live [`Session`] as a request
//! extension. Each locks its session only for the synchronous work, then hands the
//! patterns it learned to the node's knowledge base in one batch.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::kato::api::{
    CreateSession, LearnResult, Observation, ObserveResult, ObserveSequence, StmResult,
};
use crate::kato::pattern::kb_id;

use super::body::{self, parse};
use super::limits::{self, Deadline};
use super::reply::{
    detail, internal_error, not_found, ok, session_detail_not_found, unprocessable,
};
use super::session_config::{apply, server_defaults, validate};
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

fn vectors_unsupported() -> Response {
    detail(
        StatusCode::BAD_REQUEST,
        "the embedded katotune engine does not support vector observations; \
         send strings only, or use a docker or external KATO backend",
    )
}

/// `POST /sessions`.
pub async fn create(State(engine): State<Arc<Engine>>, body: Body) -> Response {
    let req: CreateSession = match read(body, &body::CREATE_SESSION) {
        Ok(value) => value,
        Err(answer) => return *answer,
    };
    let ttl = match req.ttl_seconds {
        None | Some(0) => engine.config.session_ttl,
        Some(n) if n < 0 => return internal_error(),
        Some(n) => Duration::from_secs(n.unsigned_abs()),
    };
    let mut config = server_defaults();
    if let Some(Value::Object(updates)) = &req.config {
        // KATO applies a create-time config all-or-nothing, and drops it silently.
        if validate(updates).is_empty() {
            apply(&mut config, updates);
        }
    }
    let kb = engine
        .kbs
        .node(&kb_id(&req.node_id, &engine.config.service_name));
    let session = engine.sessions.create(&req.node_id, kb, ttl, config);
    let echoed_ttl = req.ttl_seconds.unwrap_or(3600);
    ok(&session_info(&session, json!(echoed_ttl)))
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
pub async fn set_config(Extension(session): Live, body: Body) -> Response {
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
    let errors = validate(&updates);
    if !errors.is_empty() {
        return detail(
            StatusCode::BAD_REQUEST,
            json!({"error": "Configuration validation failed", "validation_errors": errors}),
        );
    }
    let mut data = session.lock();
    let mut config = data.config.clone();
    apply(&mut config, &updates);
    data.set_config(config);
    drop(data);
    ok(&json!({"status": "okay", "message": "Configuration updated", "session_id": session.id}))
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
    if !obs.vectors.is_empty() {
        return vectors_unsupported();
    }
    let mut learned = Vec::new();
    let mut data = session.lock();
    let step = data.state.observe(obs, &mut learned);
    let dropped = data
        .state
        .trim_to_capacity(engine.config.limits.stm_capacity);
    drop(data);
    session.kb.learn_all(learned);
    ok(&ObserveResult {
        status: "okay".into(),
        session_id: Some(session.id.clone()),
        processor_id: Some(session.node_id.clone()),
        stm_length: step.stm_length,
        time: step.time,
        unique_id: Some(format!("obs-{:032x}", rand::random::<u128>())),
        auto_learned_pattern: step.auto_learned,
        stm_capacity_note: limits::stm_note(&engine, dropped),
    })
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
    let count = req.observations.len();
    if let Some(limit) = engine.config.limits.batch_size.filter(|l| count > *l) {
        return limits::too_many_observations(&engine, count, limit);
    }
    if req.observations.iter().any(|o| !o.vectors.is_empty()) {
        return vectors_unsupported();
    }
    let deadline = deadline.map(|Extension(Deadline(at))| at);
    let mut learned = Vec::with_capacity(count / 2);
    let mut data = session.lock();
    // A deadline may abandon the request half-way: work on a copy then.
    let backup = deadline.map(|_| data.state.clone());
    let outcome = data
        .state
        .observe_sequence(req, &session.node_id, deadline, &mut learned);
    let mut result = match (outcome, backup) {
        (Ok(result), _) => result,
        (Err(_), backup) => {
            if let Some(backup) = backup {
                data.state = backup;
            }
            drop(data);
            let limit = engine.config.limits.request_timeout.unwrap_or_default();
            return limits::timed_out(&engine, limit);
        }
    };
    let dropped = data
        .state
        .trim_to_capacity(engine.config.limits.stm_capacity);
    drop(data);
    session.kb.learn_all(learned);
    result.stm_capacity_note = limits::stm_note(&engine, dropped);
    ok(&result)
}

/// `POST /sessions/{sid}/learn`: the whole STM, always emptied afterwards.
pub async fn learn(Extension(session): Live) -> Response {
    let mut learned = Vec::with_capacity(1);
    let mut data = session.lock();
    if data.state.stm.is_empty() {
        return detail(StatusCode::BAD_REQUEST, "Cannot learn from empty STM");
    }
    let name = data.state.learn(&mut learned);
    drop(data);
    session.kb.learn_all(learned);
    ok(&LearnResult {
        status: "learned".into(),
        message: Some(format!("Learned pattern {name} from 0 events")),
        pattern_name: name,
        session_id: Some(session.id.clone()),
        processor_id: None,
    })
}

/// `POST /sessions/{sid}/clear-stm`: STM, accumulators and time.
pub async fn clear_stm(Extension(session): Live) -> Response {
    session.lock().state.clear_stm();
    ok(&json!({"status": "cleared", "session_id": session.id}))
}

/// `POST /sessions/{sid}/clear-all`: also deletes the node's whole knowledge base.
pub async fn clear_all(Extension(session): Live) -> Response {
    session.lock().state.clear_stm();
    session.kb.clear();
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
    detail(
        StatusCode::NOT_IMPLEMENTED,
        "the embedded katotune engine does not compute predictions; it learns and \
         stores patterns only. Use a docker or external KATO backend for predictions",
    )
}
