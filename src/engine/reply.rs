//! The answers KATO's clients must be able to parse, error shapes included (API.md section 1).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// 200 with a JSON body.
pub fn ok<T: Serialize>(body: &T) -> Response {
    with_status(StatusCode::OK, body)
}

/// Any status with a JSON body.
pub fn with_status<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => internal_error(),
    }
}

/// `{"detail": ...}` with the given status (400, 404, 405, 409, 413, 501, 503, 504).
pub fn detail(status: StatusCode, detail: impl Into<Value>) -> Response {
    with_status(status, &json!({ "detail": detail.into() }))
}

/// 422 with FastAPI's list of validation entries.
pub fn unprocessable(entries: Vec<Value>) -> Response {
    with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ "detail": entries }),
    )
}

/// The session middleware's 404 on `/sessions/{sid}/<sub>` and `DELETE /sessions/{sid}`.
pub fn session_not_found(sid: &str) -> Response {
    with_status(
        StatusCode::NOT_FOUND,
        &json!({"error": {
            "code": "SESSION_NOT_FOUND",
            "message": format!("Session {sid} not found or expired"),
            "session_id": sid,
        }}),
    )
}

/// The endpoint's own 404 on `GET /sessions/{sid}`.
pub fn session_detail_not_found(sid: &str) -> Response {
    detail(
        StatusCode::NOT_FOUND,
        format!("Session {sid} not found or expired"),
    )
}

/// KATO's unhandled-exception answer: 500, `text/plain`, not JSON.
pub fn internal_error() -> Response {
    plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// A `text/plain` answer (500, and uvicorn's 503 at its concurrency limit).
pub fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// 404 for an unknown route.
pub async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

/// 405 for a known route with the wrong method.
pub async fn method_not_allowed() -> Response {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// The answer for a refused or failed operation: the status and body shape KATO (or,
/// for the knobs beyond KATO, this engine's documented answer) gives it.
pub fn op_error(err: &super::ops::OpError) -> Response {
    use super::ops::OpError;
    match err {
        OpError::SessionNotFound { session_id } => session_not_found(session_id),
        OpError::BadRequest(_) => detail(StatusCode::BAD_REQUEST, err.to_string()),
        OpError::ConfigRejected(errors) => detail(
            StatusCode::BAD_REQUEST,
            json!({"error": "Configuration validation failed", "validation_errors": errors}),
        ),
        OpError::TooManyObservations { .. } => {
            detail(StatusCode::PAYLOAD_TOO_LARGE, err.to_string())
        }
        OpError::TimedOut { .. } => detail(StatusCode::GATEWAY_TIMEOUT, err.to_string()),
        OpError::PoolBusy { .. } | OpError::StoreFailed(_) => {
            detail(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
        }
        OpError::Overloaded => plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        OpError::NotImplemented(_) => detail(StatusCode::NOT_IMPLEMENTED, err.to_string()),
        OpError::Internal => internal_error(),
        OpError::Conflict(_) => detail(StatusCode::CONFLICT, err.to_string()),
    }
}
