//! katotune's `GET /katotune/kb/{node_id}` answer, streamed: every pattern of a node
//! with its frequency, in name order, written as it is read so that a knowledge base of
//! millions of patterns never sits in memory whole (not even as JSON).
//!
//! The body is `{"kb_id": ..., "patterns": [{"name": "PTRN|...", "frequency": N}, ...]}`.
//! A blocking task reads the node ([`NodeKb::visit_frequencies`]) and sends chunks of
//! about [`CHUNK_BYTES`] through a small channel; a client that goes away stops it.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::kb::NodeKb;
use super::session::wire_name_of;

/// Size of one body chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks read ahead of the client.
const CHUNKS_AHEAD: usize = 4;

/// The streamed listing of `kb` (an unknown node lists nothing) under `kb_id`.
pub fn frequencies(kb: Option<Arc<NodeKb>>, kb_id: String) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 128);
        buf.extend_from_slice(b"{\"kb_id\":");
        let _ = serde_json::to_writer(&mut buf, &kb_id);
        buf.extend_from_slice(b",\"patterns\":[");
        let mut first = true;
        let mut open = true;
        if let Some(kb) = kb {
            kb.visit_frequencies(|digest, frequency| {
                if !first {
                    buf.push(b',');
                }
                first = false;
                let name = wire_name_of(digest);
                let _ = write!(buf, "{{\"name\":\"{name}\",\"frequency\":{frequency}}}");
                if buf.len() >= CHUNK_BYTES {
                    let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES + 128));
                    open = tx.blocking_send(chunk).is_ok();
                }
                open
            });
        }
        if open {
            buf.extend_from_slice(b"]}");
            let _ = tx.blocking_send(buf);
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from_stream(chunks),
    )
        .into_response()
}
