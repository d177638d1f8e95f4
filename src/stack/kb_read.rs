//! A stack's knowledge base read back after a run, node by node, as name counts
//! (`PTRN|<hex>` to times learned: the run record's digest input, `train::digest`).
//!
//! Where it is read, in this order:
//! - katotune's engine, when it serves at the URL (`GET /katotune/kb/{node}` answers;
//!   KATO has no such route and answers 404): it keeps its KB itself, also when it
//!   stands in KATO's place on a stack with Redis and ClickHouse (profile
//!   `docker-stores`), whose stores it never writes;
//! - KATO's Redis and ClickHouse, when katotune can reach them (a docker stack of the
//!   `kato` template, or an external KATO with `KATOTUNE_REDIS_URL` and
//!   `KATOTUNE_CLICKHOUSE_URL`): every `kato.patterns_data` row of the node's KB with
//!   its `<kb>:frequency:<name>` key (a row without one counts 0, so it shows as a
//!   mismatch);
//! - nowhere: KATO without known stores has no route that lists a KB.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::StoreUrls;
use crate::kato::pattern::{kb_id, PATTERN_PREFIX};
use crate::kb::stores::{StoreError, Stores};
use crate::train::kb_check::KbSource;

/// How long one read of the engine's KB may take.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// One node's KB as read: its KB id and name counts (`None`: not read).
pub type ReadKb = (String, Option<BTreeMap<String, u64>>);

/// What was read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBack {
    pub source: KbSource,
    /// Why this source, in the user's words.
    pub note: String,
    /// Per node asked, in order: the KB id read and its name counts (`None`: not read).
    pub kbs: Vec<ReadKb>,
}

/// Why a KB could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the engine's KB of {node} at {url}: {detail}")]
    Engine {
        node: String,
        url: String,
        detail: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store read stopped: {0}")]
    Task(String),
}

#[derive(Deserialize)]
struct EngineKb {
    kb_id: String,
    patterns: Vec<EnginePattern>,
}

#[derive(Deserialize)]
struct EnginePattern {
    name: String,
    frequency: u64,
}

/// Reads `nodes` (node ids as trained) of the KATO at `url`, from the engine or the
/// `stores` (see the module doc); `service_name` names the KBs when nothing is read.
///
/// Errors: the engine or a store answered but could not be read to the end.
pub async fn read_back(
    url: &str,
    stores: Option<&StoreUrls>,
    nodes: &[String],
    service_name: &str,
) -> Result<ReadBack, ReadError> {
    let http = reqwest::Client::new();
    let base = url.trim_end_matches('/');
    if let Some(first) = nodes.first() {
        if let Some(kb) = engine_kb(&http, base, first).await? {
            let mut kbs = vec![(kb.0, Some(kb.1))];
            for node in &nodes[1..] {
                let (id, counts) = engine_kb(&http, base, node).await?.ok_or_else(|| {
                    engine_error(node, base, "the engine stopped answering its KB route")
                })?;
                kbs.push((id, Some(counts)));
            }
            let note = match stores {
                Some(_) => {
                    "katotune's engine serves here in KATO's place and keeps its KB \
                    itself (the stack's Redis and ClickHouse stay empty); read from the engine"
                }
                None => "read from katotune's engine (GET /katotune/kb/{node})",
            };
            return Ok(ReadBack {
                source: KbSource::Engine,
                note: note.into(),
                kbs,
            });
        }
    }
    let Some(stores) = stores else {
        return Ok(ReadBack {
            source: KbSource::ClientTally,
            note: "KATO keeps its KB in Redis and ClickHouse that katotune was not told about \
                (set KATOTUNE_REDIS_URL and KATOTUNE_CLICKHOUSE_URL to read it back); the \
                client's tally of the server's answers stands in"
                .into(),
            kbs: nodes
                .iter()
                .map(|n| (kb_id(n, service_name), None))
                .collect(),
        });
    };
    let (urls, nodes) = (stores.clone(), nodes.to_vec());
    let kbs = tokio::task::spawn_blocking(move || read_stores(&urls, &nodes))
        .await
        .map_err(|e| ReadError::Task(e.to_string()))??;
    Ok(ReadBack {
        source: KbSource::Stores,
        note: format!(
            "read from KATO's stores (Redis {}, ClickHouse {})",
            crate::kb::stores::redacted(&stores.redis),
            crate::kb::stores::redacted(&stores.clickhouse)
        ),
        kbs,
    })
}

fn engine_error(node: &str, url: &str, detail: impl ToString) -> ReadError {
    ReadError::Engine {
        node: node.into(),
        url: url.into(),
        detail: detail.to_string(),
    }
}

/// The engine's KB of `node`, or `None` when the server has no such route (KATO).
async fn engine_kb(
    http: &reqwest::Client,
    base: &str,
    node: &str,
) -> Result<Option<(String, BTreeMap<String, u64>)>, ReadError> {
    let answer = http
        .get(format!("{base}/katotune/kb/{node}"))
        .timeout(ENGINE_TIMEOUT)
        .send()
        .await
        .map_err(|e| engine_error(node, base, e))?;
    if answer.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let answer = answer
        .error_for_status()
        .map_err(|e| engine_error(node, base, e))?;
    let kb: EngineKb = answer
        .json()
        .await
        .map_err(|e| engine_error(node, base, e))?;
    let counts = kb
        .patterns
        .into_iter()
        .map(|p| (p.name, p.frequency))
        .collect();
    Ok(Some((kb.kb_id, counts)))
}

/// Every node's KB from KATO's stores, as (KB id, name counts) in `nodes`' order:
/// each `kato.patterns_data` row of `<node>_<service>` with its Redis frequency (0
/// when the key is missing).
///
/// Blocking: call it on a blocking thread. Errors: a store that cannot be reached or
/// read.
pub fn read_stores(urls: &StoreUrls, nodes: &[String]) -> Result<Vec<ReadKb>, ReadError> {
    let mut stores = Stores::connect(urls)?;
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let kb = kb_id(node, &urls.service_name);
        let mut counts = BTreeMap::new();
        stores.scan_patterns(&kb, |page| {
            for (name, _, meta) in page {
                let frequency = meta.map_or(0, |m| m.frequency);
                counts.insert(format!("{PATTERN_PREFIX}{name}"), frequency);
            }
            Ok::<(), StoreError>(())
        })?;
        out.push((kb, Some(counts)));
    }
    Ok(out)
}
