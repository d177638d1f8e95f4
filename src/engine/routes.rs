//! The router, the session middleware, and the node-level endpoints (health, status,
//! patterns, and katotune's own `/katotune/kb/{node_id}`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::kato::api::{PatternLookup, PatternResult};
use crate::kato::pattern::{bare_hash, kb_id};

use super::checkpoint::CheckpointAsk;
use super::kb::parse_digest;
use super::ops::OpError;
use super::reply::{detail, method_not_allowed, not_found, ok, op_error, session_not_found};
use super::{limits, session_routes as s, Engine};

/// KATO's version this engine is compatible with.
const KATO_VERSION: &str = "3.10.1";

/// Every route, the fallbacks and the middleware stack.
pub(crate) fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/", get(root))
        .route("/status", get(status))
        .route("/sessions", post(s::create))
        .route("/sessions/count", get(s::count))
        .route("/sessions/{sid}", get(s::info).delete(s::delete))
        .route("/sessions/{sid}/exists", get(s::exists))
        .route("/sessions/{sid}/extend", post(s::extend))
        .route(
            "/sessions/{sid}/config",
            get(s::get_config).post(s::set_config),
        )
        .route("/sessions/{sid}/observe", post(s::observe))
        .route(
            "/sessions/{sid}/observe-sequence",
            post(s::observe_sequence),
        )
        .route("/sessions/{sid}/learn", post(s::learn))
        .route("/sessions/{sid}/clear-stm", post(s::clear_stm))
        .route("/sessions/{sid}/clear-all", post(s::clear_all))
        .route("/sessions/{sid}/stm", get(s::stm))
        .route("/sessions/{sid}/predictions", get(s::predictions))
        .route("/pattern/{pattern_id}", get(pattern))
        .route("/katotune/kb/{node_id}", get(kb_frequencies))
        .route("/katotune/kb/{node_id}/digest", get(kb_digest))
        .route("/katotune/checkpoint", post(checkpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(Arc::clone(&engine), session_gate))
        .layer(axum::middleware::from_fn(trace_id))
        .layer(from_fn_with_state(
            Arc::clone(&engine),
            limits::connection_pool,
        ))
        .layer(from_fn_with_state(
            Arc::clone(&engine),
            limits::request_timeout,
        ))
        .layer(from_fn_with_state(
            Arc::clone(&engine),
            limits::limit_concurrency,
        ))
        .layer(DefaultBodyLimit::disable())
        .with_state(engine)
}

/// KATO's session middleware: every `/sessions/{sid}/<sub>` (except `exists`) and
/// `DELETE /sessions/{sid}` needs a live session, which this touches (sliding expiry)
/// and hands to the handler; the answer carries `X-Session-ID`.
async fn session_gate(State(engine): State<Arc<Engine>>, mut req: Request, next: Next) -> Response {
    let Some(sid) = gated_session_id(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let sid = sid.to_owned();
    let Some(session) = engine.sessions.get(&sid, true) else {
        return session_not_found(&sid);
    };
    req.extensions_mut().insert(session);
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&sid) {
        response.headers_mut().insert("x-session-id", value);
    }
    response
}

/// KATO echoes `X-Trace-ID`, or makes one up, on every answer.
async fn trace_id(req: Request, next: Next) -> Response {
    let given = req.headers().get("x-trace-id").cloned();
    let mut response = next.run(req).await;
    let value =
        given.or_else(|| HeaderValue::from_str(&format!("{:032x}", rand::random::<u128>())).ok());
    if let Some(value) = value {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

fn gated_session_id<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix("/sessions/")?;
    match rest.split_once('/') {
        Some((_, "exists")) => None,
        Some((sid, _)) => Some(sid),
        None if method == Method::DELETE => Some(rest),
        None => None,
    }
}

async fn health(State(engine): State<Arc<Engine>>) -> Response {
    ok(&json!({
        "status": "healthy",
        "processor_status": "healthy",
        "service_name": engine.config.service_name,
        "uptime_seconds": engine.started.elapsed().as_secs_f64(),
        "issues": [],
        "metrics_collected": 0,
        "last_collection": engine.started_unix,
        "active_sessions": engine.sessions.sweep(),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
    }))
}

async fn root(State(engine): State<Arc<Engine>>) -> Response {
    ok(&json!({
        "service": engine.config.service_name,
        "version": KATO_VERSION,
        "description": "KATO-compatible engine embedded in katotune (no predictions)",
        "docs": "/docs",
        "health": "/health",
        "status": "running",
        "uptime_seconds": engine.started.elapsed().as_secs_f64(),
        "architecture": "modular",
        "session_support": true,
    }))
}

async fn status(State(engine): State<Arc<Engine>>) -> Response {
    let kbs = engine.kbs.all();
    let processors: Vec<Value> = kbs
        .iter()
        .map(|kb| json!({"kb_id": kb.kb_id, "patterns": kb.len()}))
        .collect();
    let limits = &engine.config.limits;
    let store = engine.store.as_ref().map(|store| {
        json!({
            "path": store.path().display().to_string(),
            "pending_changes": store.pending(),
            "rows_written": store.stats.rows_written.load(Ordering::Relaxed),
            "write_errors": store.stats.write_errors.load(Ordering::Relaxed),
            "held_for_checkpoints": store.stats.held.load(Ordering::Relaxed),
        })
    });
    ok(&json!({
        "status": "running",
        "base_processor_id": engine.config.service_name,
        "uptime_seconds": engine.started.elapsed().as_secs_f64(),
        "sessions": {"active": engine.sessions.sweep(), "per_node": engine.sessions.per_node()},
        "processors": {
            "total_processors": kbs.len(),
            "max_processors": 100,
            "eviction_ttl_seconds": engine.config.session_ttl.as_secs(),
            "processors": processors,
        },
        "version": KATO_VERSION,
        "engine": {
            "implementation": concat!("katotune ", env!("CARGO_PKG_VERSION")),
            "limits": {
                "batch_size": limits.batch_size,
                "connection_pool_size": limits.connection_pool_size,
                "request_timeout_seconds": limits.request_timeout.map(|d| d.as_secs_f64()),
                "stm_capacity": limits.stm_capacity,
                "limit_concurrency": limits.limit_concurrency,
            },
            "counters": engine.counters.to_json(),
            "store": store,
            "knowledge_base": kb_memory(&engine),
        },
    }))
}

/// The knowledge bases' memory: the budget, the changes held, and whether the
/// patterns are on a file (the engine's own, or a temporary one past the budget).
fn kb_memory(engine: &Engine) -> Value {
    let pending = engine.kbs.pending();
    json!({
        "cache_mb": engine.config.cache_mb,
        "changes_bytes": pending.bytes(),
        "peak_changes_bytes": pending.peak_bytes(),
        "changes_budget_bytes": pending.budget().changes,
        "on_disk": engine.kbs.on_disk(),
    })
}

/// The node a `/pattern` lookup targets: `node_id`, then `X-Node-ID`, then `X-Test-ID`.
fn pattern_node(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(node) = query.get("node_id") {
        return node.clone();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(node) = header("x-node-id") {
        return node.to_owned();
    }
    if let Some(test) = header("x-test-id") {
        return format!("test_{test}");
    }
    "default_node".into()
}

async fn pattern(
    State(engine): State<Arc<Engine>>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(id)) = id else {
        return not_found().await;
    };
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let kb_id = kb_id(&pattern_node(&query, &headers), &engine.config.service_name);
    let bare = bare_hash(&id);
    let found = parse_digest(bare)
        .and_then(|digest| engine.kbs.existing(&kb_id).and_then(|kb| kb.get(&digest)));
    let lookup = match found {
        Some(pattern) => PatternLookup {
            status: "okay".into(),
            pattern: Some(pattern),
            message: None,
        },
        None => PatternLookup {
            status: "error".into(),
            pattern: None,
            message: Some(format!("Pattern PTRN|{bare} not found")),
        },
    };
    ok(&PatternResult {
        pattern: lookup,
        node_id: kb_id,
    })
}

/// katotune's own check: every pattern of a node with its frequency, sorted by name.
async fn kb_frequencies(
    State(engine): State<Arc<Engine>>,
    node: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(node)) = node else {
        return not_found().await;
    };
    let kb_id = kb_id(&node, &engine.config.service_name);
    super::kb_listing::frequencies(engine.kbs.existing(&kb_id), kb_id)
}

/// katotune's own check, summed up: `{"kb_id", "digest", "learns", "distinct"}` of a
/// node (the run record's digest rule, `train::digest`), computed here while the
/// patterns stream past in name order, so neither side holds the KB. An unknown node
/// has the digest of nothing.
async fn kb_digest(
    State(engine): State<Arc<Engine>>,
    node: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let Ok(Path(node)) = node else {
        return not_found().await;
    };
    let kb_id = kb_id(&node, &engine.config.service_name);
    let kb = engine.kbs.existing(&kb_id);
    let summed = tokio::task::spawn_blocking(move || {
        let mut digest = crate::train::digest::DigestBuilder::default();
        if let Some(kb) = kb {
            kb.visit_frequencies(|name, frequency| {
                digest.add(super::session::wire_name_of(name).as_bytes(), frequency);
                true
            });
        }
        digest.finish()
    })
    .await;
    match summed {
        Ok(d) => ok(&json!({
            "kb_id": kb_id,
            "digest": d.digest,
            "learns": d.learns,
            "distinct": d.distinct,
        })),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// katotune's own durability barrier (not a KATO route; see `checkpoint.rs`): the JSON
/// body is a [`CheckpointAsk`] (empty = commit). 200 answers a [`super::CheckpointReply`] once
/// the state is on disk; 409 `{"detail"}` for another instance or another run's hold;
/// 503 `{"detail"}` when the database could not be written (disk full...).
async fn checkpoint(State(engine): State<Arc<Engine>>, body: axum::body::Bytes) -> Response {
    let ask: CheckpointAsk = if body.iter().all(u8::is_ascii_whitespace) {
        CheckpointAsk::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(ask) => ask,
            Err(e) => return detail(StatusCode::BAD_REQUEST, format!("bad checkpoint body: {e}")),
        }
    };
    let answer = tokio::task::spawn_blocking(move || engine.checkpoint(ask))
        .await
        .unwrap_or_else(|e| Err(OpError::StoreFailed(e.to_string())));
    match answer {
        Ok(reply) => ok(&reply),
        Err(err) => op_error(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_middleware_guards_sub_paths_and_delete_only() {
        let get = Method::GET;
        assert_eq!(gated_session_id(&get, "/sessions/s1/observe"), Some("s1"));
        assert_eq!(gated_session_id(&get, "/sessions/s1/exists"), None);
        assert_eq!(gated_session_id(&get, "/sessions/s1"), None);
        assert_eq!(
            gated_session_id(&Method::DELETE, "/sessions/s1"),
            Some("s1")
        );
        assert_eq!(gated_session_id(&get, "/sessions/count"), None);
        assert_eq!(gated_session_id(&get, "/health"), None);
    }
}
