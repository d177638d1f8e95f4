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
//! When the trainer calls the engine in-process (`train::link`), the barrier is the
//! same operation called directly: same answers, no HTTP.
//!
//! A real KATO has no such route: its durability lies in its Redis persistence
//! (RDB/AOF settings), which katotune cannot check; the run record says so.

use std::time::{Duration, Instant};

use super::digest::{digest_counts, DigestBuilder, KbDigest};
use super::link::KatoLink;
use crate::engine::{CheckpointAsk, CheckpointReply, EngineHandle, OpError};

/// Why a checkpoint could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The server could not write its database (disk full, permissions...).
    #[error("the knowledge base could not be made durable: {0}")]
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

/// A server that serves the barrier.
#[derive(Debug)]
pub struct Barrier {
    link: BarrierLink,
    instance: String,
    /// Who holds the server's commits: the run's journal (stable across resumes).
    owner: String,
}

/// How the barrier is reached: katotune's route over HTTP, or the engine directly.
#[derive(Debug)]
enum BarrierLink {
    Http {
        http: reqwest::Client,
        base: String,
        /// How long to wait for a server that refuses connections.
        outage: Duration,
    },
    InProcess(EngineHandle),
}

/// What the engine answered one ask.
enum Reply {
    /// Done (200): the state is on disk.
    Done(CheckpointReply),
    /// Refused (409): the engine restarted, or another run holds it.
    Conflict(String),
    /// Not a katotune engine (404 or another 4xx): what it said.
    NoRoute(String),
}

impl Durability {
    /// Asks the server at `base` (through `link`: directly when it is in-process) to
    /// hold commits for checkpoints (`rollback`: forget what is not committed first).
    /// Returns the durability and the label of the last checkpoint in the file.
    /// `outage` bounds waiting for a server that is down. `owner` names the run (its
    /// journal): the server refuses a hold while another run holds it.
    pub async fn negotiate(
        base: &str,
        link: &KatoLink,
        owner: &str,
        rollback: bool,
        outage: Duration,
    ) -> Result<(Self, Option<String>), DurableError> {
        let link = match link {
            KatoLink::InProcess(client) => BarrierLink::InProcess(client.engine().clone()),
            KatoLink::Http(_) => BarrierLink::Http {
                http: reqwest::Client::new(),
                base: base.trim_end_matches('/').to_string(),
                outage,
            },
        };
        let ask = CheckpointAsk {
            hold: Some(true),
            rollback,
            owner: Some(owner.to_string()),
            ..CheckpointAsk::default()
        };
        let answer = match link.ask(&ask).await? {
            Reply::Conflict(why) => return Err(DurableError::Held(why)),
            Reply::NoRoute(_) => {
                return Ok((
                    Self::Unsupported(
                        "the server has no katotune checkpoint route (a real KATO): samples are marked \
                         done when KATO acknowledges them; whether they survive a crash depends on \
                         KATO's Redis persistence (RDB/AOF), which katotune cannot check"
                            .into(),
                    ),
                    None,
                ))
            }
            Reply::Done(answer) => answer,
        };
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
            link,
            instance: answer.instance,
            owner: owner.to_string(),
        };
        Ok((Self::Barrier(barrier), answer.label))
    }
}

impl Barrier {
    /// Commits everything acknowledged so far under `label`; call it with no sample in
    /// flight. Waits out a server outage (up to the outage bound).
    pub async fn commit(&mut self, label: &str) -> Result<Committed, DurableError> {
        let ask = CheckpointAsk {
            label: Some(label.to_string()),
            instance: Some(self.instance.clone()),
            owner: Some(self.owner.clone()),
            ..CheckpointAsk::default()
        };
        match self.link.ask(&ask).await? {
            Reply::Done(_) => return Ok(Committed::Durable),
            Reply::NoRoute(why) => return Err(self.link.failed(why)),
            Reply::Conflict(_) => {}
        }
        // Another instance: roll it back to its file and see whether this label made it
        // (refused, as an error, if another run holds it now).
        let ask = CheckpointAsk {
            hold: Some(true),
            rollback: true,
            owner: Some(self.owner.clone()),
            ..CheckpointAsk::default()
        };
        let answer = match self.link.ask(&ask).await? {
            Reply::Done(answer) => answer,
            Reply::Conflict(why) => return Err(DurableError::Held(why)),
            Reply::NoRoute(why) => return Err(self.link.failed(why)),
        };
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

    /// Forgets everything learned since the last checkpoint (the server goes back to
    /// what its file holds) and keeps holding: for a run that stops because it could
    /// not make its samples durable.
    pub async fn discard(&self) -> Result<(), DurableError> {
        self.set_hold(true, true).await
    }

    /// Commits and lets the server write behind again (end of the run). A server that
    /// restarted since the last checkpoint is left held: the next run rolls it back.
    pub async fn release(&self) -> Result<(), DurableError> {
        self.set_hold(false, false).await
    }

    /// Asks this run's server instance to hold commits or not (`rollback`: forget what
    /// is not committed first). Another instance (a restart) answers with a conflict,
    /// which leaves it as it is.
    async fn set_hold(&self, hold: bool, rollback: bool) -> Result<(), DurableError> {
        let ask = CheckpointAsk {
            hold: Some(hold),
            rollback,
            instance: Some(self.instance.clone()),
            owner: Some(self.owner.clone()),
            ..CheckpointAsk::default()
        };
        match self.link.ask(&ask).await? {
            Reply::Done(_) | Reply::Conflict(_) => Ok(()),
            Reply::NoRoute(why) => Err(self.link.failed(why)),
        }
    }

    /// Every node's digest as the knowledge base itself holds it, in bounded memory at
    /// any KB size: streamed from an engine in this process, or summed by the engine
    /// (`GET /katotune/kb/{node}/digest`; an older engine's whole listing otherwise).
    pub async fn kb_digests(&self, nodes: &[String]) -> Result<Vec<KbDigest>, DurableError> {
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            out.push(self.link.kb_digest(node).await?);
        }
        Ok(out)
    }
}

impl BarrierLink {
    /// Where the barrier is, for messages.
    fn place(&self) -> String {
        match self {
            Self::Http { base, .. } => format!("{base}/katotune/checkpoint"),
            Self::InProcess(_) => "the engine in this process".into(),
        }
    }

    fn failed(&self, reason: String) -> DurableError {
        DurableError::Unreachable {
            url: self.place(),
            reason,
        }
    }

    /// One checkpoint ask; a write failure (503) is [`DurableError::Store`].
    async fn ask(&self, ask: &CheckpointAsk) -> Result<Reply, DurableError> {
        let (http, base, outage) = match self {
            Self::InProcess(engine) => {
                return match engine.checkpoint(ask.clone()).await {
                    Ok(answer) => Ok(Reply::Done(answer)),
                    Err(OpError::Conflict(why)) => Ok(Reply::Conflict(why)),
                    Err(OpError::StoreFailed(why)) => Err(DurableError::Store(why)),
                    Err(other) => Err(self.failed(other.to_string())),
                }
            }
            Self::Http { http, base, outage } => (http, base, *outage),
        };
        let response = post(http, base, ask, outage).await?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT {
            return Ok(Reply::Conflict(detail_of(&text)));
        }
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Err(DurableError::Store(detail_of(&text)));
        }
        if status.is_client_error() {
            return Ok(Reply::NoRoute(format!("HTTP {status}: {text}")));
        }
        if !status.is_success() {
            return Err(self.failed(format!("HTTP {status}: {text}")));
        }
        serde_json::from_str(&text)
            .map(Reply::Done)
            .map_err(|e| self.failed(format!("unexpected answer ({e}): {text}")))
    }

    /// `node`'s digest (see [`Barrier::kb_digests`]).
    async fn kb_digest(&self, node: &str) -> Result<KbDigest, DurableError> {
        let (http, base) = match self {
            Self::InProcess(engine) => {
                let (engine, node) = (engine.clone(), node.to_string());
                return tokio::task::spawn_blocking(move || {
                    let mut digest = DigestBuilder::default();
                    engine.visit_kb(&node, |name, n| digest.add(name.as_bytes(), n));
                    digest.finish()
                })
                .await
                .map_err(|e| self.failed(e.to_string()));
            }
            Self::Http { http, base, .. } => (http, base),
        };
        let url = format!("{base}/katotune/kb/{node}/digest");
        let answer = http.get(&url).send().await.map_err(unreachable(&url))?;
        if answer.status() != reqwest::StatusCode::NOT_FOUND {
            let answer = answer.error_for_status().map_err(unreachable(&url))?;
            return answer.json().await.map_err(unreachable(&url));
        }
        // An engine from before the digest route: its whole listing.
        #[derive(serde::Deserialize)]
        struct Row {
            name: String,
            frequency: u64,
        }
        #[derive(serde::Deserialize)]
        struct Kb {
            patterns: Vec<Row>,
        }
        let url = format!("{base}/katotune/kb/{node}");
        let kb: Kb = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreachable(&url))?
            .json()
            .await
            .map_err(unreachable(&url))?;
        let counts = kb.patterns.into_iter().map(|r| (r.name, r.frequency));
        Ok(digest_counts(&counts.collect()))
    }
}

/// The error of a failed call to `url`.
fn unreachable(url: &str) -> impl Fn(reqwest::Error) -> DurableError + '_ {
    move |e| DurableError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

/// POSTs `ask` to the barrier, retrying connection failures until `outage` passes.
async fn post(
    http: &reqwest::Client,
    base: &str,
    ask: &CheckpointAsk,
    outage: Duration,
) -> Result<reqwest::Response, DurableError> {
    let url = format!("{base}/katotune/checkpoint");
    let deadline = Instant::now() + outage;
    loop {
        let sent = http
            .post(&url)
            .json(ask)
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

/// The `detail` of an error answer, or the whole text.
fn detail_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_string())
}
