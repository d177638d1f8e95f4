//! The training plan: everything a run needs to know, as plain values.
//!
//! `app` derives a [`TrainPlan`] from a resolved profile (`app::plan`), and the trainer
//! takes only the plan: profile → plan → train, never back. So `train/` never reads
//! YAML sections, and a field the trainer does not use never reaches it. What the run
//! record says about the profile (its name, hashes and the resolved profile as JSON)
//! travels in [`ProfileInfo`], filled by `app` too.

use std::time::Duration;

use super::dataset::DatasetSpec;
use super::record::ProfileInfo;
use super::shard::Shard;
use super::worker::TrainSettings;
use crate::kato::client::RetryPolicy;
use crate::terms::{OnBadSample, SampleFilter, Segmentation};

/// One run's plan (see the module docs).
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// The profile as the run record names it; `profile.name` also names the journal's
    /// owner and the progress line, `profile.learning_hash` guards resumes.
    pub profile: ProfileInfo,
    /// The corpus (shipped corpus already resolved to a readable path).
    pub dataset: DatasetSpec,
    /// Raw rows to skip before the first sample (`training.skip`).
    pub skip: u64,
    /// Samples to train over all resumes, `None` = all (`training.samples`); with a
    /// shard, samples numbered below it (see [`super::shard`]).
    pub samples: Option<u64>,
    /// Which rows are samples.
    pub filter: SampleFilter,
    /// Train only this shard's samples (`run --shard I/N`).
    pub shard: Option<Shard>,
    /// How a sample is cut into node0 chunks.
    pub segmentation: Segmentation,
    /// Path A: tokens kept per paragraph.
    pub paragraph_token_cap: usize,
    /// What every worker needs: node ids, chunk sizes, batching, session config.
    pub settings: TrainSettings,
    /// Samples trained at once, each worker with its own sessions.
    pub workers: usize,
    /// Client deadline per request.
    pub request_timeout: Duration,
    /// Retries of requests that provably never reached the server.
    pub retry: RetryPolicy,
    /// How long to wait for a server that went away (`health.timeout`).
    pub outage_timeout: Duration,
    /// What an unreadable row does.
    pub on_bad_sample: OnBadSample,
    /// Samples between checkpoints (journal, done marks, engine commit).
    pub checkpoint_every: u64,
    /// Talk to an in-process engine over HTTP anyway (`stack.transport: http`), to
    /// measure the HTTP path; other targets always use HTTP.
    pub http_only: bool,
}

impl TrainPlan {
    /// The same plan for one shard of the run (`None`: the whole run).
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// The samples this run trains over all its resumes: the cap, or this shard's
    /// share of it; `None` = all.
    pub fn sample_target(&self) -> Option<u64> {
        match (self.samples, self.shard) {
            (Some(cap), Some(shard)) => Some(shard.share_of(cap)),
            (cap, _) => cap,
        }
    }

    /// Node ids per level, node0 first.
    pub fn node_ids(&self) -> &[String] {
        &self.settings.node_ids
    }

    /// Chunk size per level, node0 first.
    pub fn chunk_sizes(&self) -> &[usize] {
        &self.settings.chunk_sizes
    }
}
