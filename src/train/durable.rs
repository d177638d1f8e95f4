//! Done means durable: the trainer's side of katotune's checkpoint barrier.
//!
//! katotune's engine (embedded, `katotune serve`, or its image) serves
//! `POST /katotune/checkpoint` (katotune's own route, not KATO's; see
//! `engine::store`). At the start of a run the trainer asks it to *hold* commits for
//! checkpoints (and, on a server that outlived an earlier run, to forget what that run
//! left uncommitted). At each journal checkpoint the dispatcher lets in-flight samples
//! finish, then asks for a labelled commit, and only then marks the samples done. The
//! database file therefore always holds exactly the samples marked done, and the label
//! it stores tells a resume which checkpoint made it to disk.
//!
//! A real KATO has no such route: its durability lies in its Redis persistence
//! (RDB/AOF settings), which katotune cannot check; the run record says so.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::digest::{digest_of, KbDigest};

/// Why a checkpoint could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The server could not write its database (disk full, permissions...).
    #[error(
        "the knowledge base could not be made durable: {0}; the samples since the last \
         checkpoint are not marked done, so `--resume` trains them again once this is fixed"
    )]
    Store(String),
    /// Another katotune run holds the server's commits.
    #[error("{0}")]
    Held(String),
    /// The server did not answer the barrier in time.
    #[error("the checkpoint barrier at {url} failed: {reason}")]
    Unreachable { url: String, reason: String },
}

/// What the run can promise about durability, for the run record.
#[derive(Debug)]
pub enum Durability {
    /// katotune's engine with a database file: samples are marked done only once stored.
    Barrier(Barrier),
    /// No barrier (a real KATO, or an in-memory engine): why.
    Unsupported(String),
}

/// The outcome of a labelled commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Everything acknowledged since the last checkpoint is on disk.
    Durable,
    /// The server restarted since the last checkpoint; `landed` says whether this
    /// checkpoint's commit reached the file before it went down. If not, every sample
    /// since the last checkpoint was lost with it (the restarted server was rolled back
    /// to the file) and must be trained again.
    Restarted { landed: bool },
}

#[derive(Debug, Deserialize)]
struct Answer {
    instance: String,
    persistent: bool,
    label: Option<String>,
}

/// A server that serves the barrier.
#[derive(Debug)]
pub struct Barrier {
    http: reqwest::Client,
    base: String,
    instance: String,
    /// Who holds the server's commits: the run's journal (stable across resumes).
    owner: String,
    outage: Duration,
}

impl Durability {
    /// Asks the server at `base` to hold commits for checkpoints (`rollback`: forget
    /// what is not committed first). Returns the durability and the label of the last
    /// checkpoint in the file. `outage` bounds waiting for a server that is down.
    /// `owner` names the run (its journal): the server refuses a hold while another
    /// run holds it.
    pub async fn negotiate(
        base: &str,
        owner: &str,
        rollback: bool,
        outage: Duration,
    ) -> Result<(Self, Option<String>), DurableError> {
        let http = reqwest::Client::new();
        let base = base.trim_end_matches('/').to_string();
        let body = json!({"hold": true, "rollback": rollback, "owner": owner});
        let response = post(&http, &base, &body, outage).await?;
        let status = response.status();
        if status == reqwest::StatusCode::CONFLICT {
            return Err(DurableError::Held(detail_of(
                &response.text().await.unwrap_or_default(),
            )));
        }
        if status == reqwest::StatusCode::NOT_FOUND || status.is_client_error() {
            return Ok((
                Self::Unsupported(
                    "the server has no katotune checkpoint route (a real KATO): samples are marked \
                     done when KATO acknowledges them; whether they survive a crash depends on \
                     KATO's Redis persistence (RDB/AOF), which katotune cannot check"
                        .into(),
                ),
                None,
            ));
        }
        let answer = read_answer(response, &base).await?;
        if !answer.persistent {
            return Ok((
                Self::Unsupported(
                    "the knowledge base is in memory (ephemeral): nothing survives the server"
                        .into(),
                ),
                None,
            ));
        }
        let barrier = Barrier {
            http,
            base,
            instance: answer.instance,
            owner: owner.to_string(),
            outage,
        };
        Ok((Self::Barrier(barrier), answer.label))
    }
}

impl Barrier {
    /// Commits everything acknowledged so far under `label`; call it with no sample in
    /// flight. Waits out a server outage (up to the outage bound).
    pub async fn commit(&mut self, label: &str) -> Result<Committed, DurableError> {
        let body = json!({"label": label, "instance": self.instance, "owner": self.owner});
        let response = post(&self.http, &self.base, &body, self.outage).await?;
        if response.status() != reqwest::StatusCode::CONFLICT {
            read_answer(response, &self.base).await?;
            return Ok(Committed::Durable);
        }
        // Another instance: roll it back to its file and see whether this label made it
        // (refused, as an error, if another run holds it now).
        let body = json!({"hold": true, "rollback": true, "owner": self.owner});
        let response = post(&self.http, &self.base, &body, self.outage).await?;
        let answer = read_answer(response, &self.base).await?;
        tracing::warn!(
            "the server restarted since the last checkpoint (instance {} -> {})",
            self.instance,
            answer.instance
        );
        self.instance = answer.instance;
        Ok(Committed::Restarted {
            landed: answer.label.as_deref() == Some(label),
        })
    }

    /// Commits and lets the server write behind again (end of the run). A server that
    /// restarted since the last checkpoint is left held: the next run rolls it back.
    pub async fn release(&self) -> Result<(), DurableError> {
        let body = json!({"hold": false, "instance": self.instance, "owner": self.owner});
        let response = post(&self.http, &self.base, &body, self.outage).await?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        read_answer(response, &self.base).await.map(|_| ())
    }

    /// Every node's digest as the knowledge base itself holds it (`GET /katotune/kb`).
    pub async fn kb_digests(&self, nodes: &[String]) -> Result<Vec<KbDigest>, DurableError> {
        #[derive(Deserialize)]
        struct Row {
            name: String,
            frequency: u64,
        }
        #[derive(Deserialize)]
        struct Kb {
            patterns: Vec<Row>,
        }
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let url = format!("{}/katotune/kb/{node}", self.base);
            let unreachable = |e: reqwest::Error| DurableError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            };
            let kb: Kb = self
                .http
                .get(&url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(unreachable)?
                .json()
                .await
                .map_err(unreachable)?;
            let counts: std::collections::BTreeMap<String, u64> = kb
                .patterns
                .into_iter()
                .map(|r| (r.name, r.frequency))
                .collect();
            out.push(KbDigest {
                digest: digest_of(&counts),
                learns: counts.values().sum(),
                distinct: counts.len() as u64,
            });
        }
        Ok(out)
    }
}

/// POSTs `body` to the barrier, retrying connection failures until `outage` passes.
async fn post(
    http: &reqwest::Client,
    base: &str,
    body: &serde_json::Value,
    outage: Duration,
) -> Result<reqwest::Response, DurableError> {
    let url = format!("{base}/katotune/checkpoint");
    let deadline = Instant::now() + outage;
    loop {
        let sent = http
            .post(&url)
            .json(body)
            .timeout(Duration::from_secs(600))
            .send()
            .await;
        match sent {
            Ok(response) => return Ok(response),
            Err(e) if Instant::now() < deadline && (e.is_connect() || e.is_request()) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(DurableError::Unreachable {
                    url,
                    reason: e.to_string(),
                })
            }
        }
    }
}

async fn read_answer(response: reqwest::Response, base: &str) -> Result<Answer, DurableError> {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Err(DurableError::Store(detail_of(&text)));
    }
    if status == reqwest::StatusCode::CONFLICT {
        return Err(DurableError::Held(detail_of(&text)));
    }
    if !status.is_success() {
        return Err(DurableError::Unreachable {
            url: format!("{base}/katotune/checkpoint"),
            reason: format!("HTTP {status}: {text}"),
        });
    }
    serde_json::from_str(&text).map_err(|e| DurableError::Unreachable {
        url: format!("{base}/katotune/checkpoint"),
        reason: format!("unexpected answer ({e}): {text}"),
    })
}

/// The `detail` of an error answer, or the whole text.
fn detail_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_string())
}
