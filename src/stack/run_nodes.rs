//! Nodes of a run's own on a stack that outlives the run (an external KATO, or one
//! shared by `compare --reuse-stack`), and their removal afterwards.
//!
//! KATO picks a knowledge base by node id alone: its KB id is `<node>_<SERVICE_NAME>`
//! (API.md 2.2), and `SERVICE_NAME` belongs to the server, not to the client. So a run
//! that must start from an empty KB on a server it did not start trains nodes nobody
//! else uses, `kt<8 hex>_<prefix><level>`, and removes exactly those KBs when it is
//! done, with KATO's own `clear-all` (it deletes the node's ClickHouse partition and
//! Redis keys, API.md 2.8; katotune's engine drops the node's KB). The user's own
//! nodes are never touched. Pattern names are content hashes and never contain a node
//! id, so the names learned, and the digests, are those the profile's nodes would get.

use std::time::Duration;

/// How long one call of the removal may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client of these calls, each bounded by [`CALL_TIMEOUT`].
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap_or_default()
}

/// A node prefix no other run uses: `kt<8 hex>_<prefix>` (`kt3fa9c1d2_node`).
pub fn own_prefix(prefix: &str) -> String {
    format!("kt{:08x}_{prefix}", rand::random::<u32>())
}

/// Deletes the KBs of `nodes` on the KATO at `url`: per node a session, `clear-all`,
/// and the session deleted again; then katotune's engine commits ([`commit`]).
/// Returns each node that could not be cleared, with why (the caller says so: the KB
/// is left on the server).
pub async fn remove_nodes(url: &str, nodes: &[String]) -> Vec<(String, String)> {
    let http = client();
    let base = url.trim_end_matches('/');
    let mut failed = Vec::new();
    for node in nodes {
        if let Err(why) = clear_node(&http, base, node).await {
            failed.push((node.clone(), why));
        }
    }
    if let Err(why) = commit(&http, base).await {
        failed.extend(nodes.iter().map(|n| (n.clone(), why.clone())));
    }
    failed
}

/// Which of `nodes` hold at least one pattern on katotune's engine at `url` (its
/// `GET /katotune/kb/{node}`, read only as far as the first pattern: the listing streams
/// every pattern of the node). `None` when the server is not a katotune engine (a real
/// KATO answers 404) or cannot be asked.
pub async fn holding_patterns(url: &str, nodes: &[String]) -> Option<Vec<String>> {
    let http = client();
    let base = url.trim_end_matches('/');
    let mut holding = Vec::new();
    for node in nodes {
        let path = format!("{base}/katotune/kb/{}", crate::kato::client::segment(node));
        if listing_names_a_pattern(&http, &path).await? {
            holding.push(node.clone());
        }
    }
    Some(holding)
}

/// Whether the KB listing at `path` names a pattern, from the start of its body.
async fn listing_names_a_pattern(http: &reqwest::Client, path: &str) -> Option<bool> {
    const LIST: &str = "\"patterns\":[";
    let mut answer = http.get(path).send().await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    let mut head = String::new();
    while let Some(chunk) = answer.chunk().await.ok()? {
        head.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(at) = head.find(LIST) {
            match head[at + LIST.len()..].trim_start().chars().next() {
                Some(']') => return Some(false),
                Some(_) => return Some(true),
                None => {}
            }
        }
        if head.len() > 4096 {
            return None;
        }
    }
    None
}

/// katotune's engine keeps the removal on disk before anything else happens: the next
/// run's durability barrier rolls the engine back to what its file holds, which would
/// bring uncommitted KBs back (`POST /katotune/checkpoint`). KATO has no such route
/// (404) and writes its stores as it goes.
async fn commit(http: &reqwest::Client, base: &str) -> Result<(), String> {
    let answer = http
        .post(format!("{base}/katotune/checkpoint"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .map_err(|e| crate::secret::mask_text(&e.to_string()).into_owned())?;
    match answer.status() {
        s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
        s => Err(format!(
            "the engine did not commit the removal (HTTP {s}: {})",
            answer.text().await.unwrap_or_default()
        )),
    }
}

async fn clear_node(http: &reqwest::Client, base: &str, node: &str) -> Result<(), String> {
    let created: serde_json::Value = http
        .post(format!("{base}/sessions"))
        .json(&serde_json::json!({ "node_id": node }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| crate::secret::mask_text(&e.to_string()).into_owned())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let Some(sid) = created["session_id"].as_str() else {
        return Err(format!("POST /sessions answered no session_id: {created}"));
    };
    let cleared = http
        .post(format!("{base}/sessions/{sid}/clear-all"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    let _ = http.delete(format!("{base}/sessions/{sid}")).send().await;
    cleared
        .map(|_| ())
        .map_err(|e| crate::secret::mask_text(&e.to_string()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_prefixes_keep_the_profiles_prefix_and_differ_per_run() {
        let (a, b) = (own_prefix("node"), own_prefix("node"));
        assert!(a.starts_with("kt") && a.ends_with("_node"), "{a}");
        assert_ne!(a, b);
    }
}
