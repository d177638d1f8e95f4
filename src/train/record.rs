//! The run record: one JSON document per run, everything needed to judge and
//! reproduce it, and the terminal summary printed from it.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::dataset::DatasetIdentity;
use super::digest::KbDigest;
use super::outcome::{KbTrust, StopReason};
use super::segment::SegmentCounts;
use super::shard::Shard;
use crate::kato::metrics::MetricsSnapshot;

/// Format version of run records. 2 added, compatibly (older records still read):
/// latency histograms per endpoint (`calls...latency.histogram`) and `compare`'s
/// `kb_check`.
pub const RECORD_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub version: u32,
    pub katotune_version: String,
    pub run_id: String,
    /// `completed`, `interrupted` or `failed`.
    pub status: RunStatus,
    /// Why the run stopped early, when it did (an object tagged by `kind`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::outcome::read_stop_reason"
    )]
    pub stop_reason: Option<StopReason>,
    /// Whether every pattern name the server returned was the one katotune computed:
    /// `verified`, `untrusted` (see `stop_reason`) or `unchecked` (older records).
    #[serde(default)]
    pub kb_trust: KbTrust,
    pub profile: ProfileInfo,
    /// The shard this run trained (`run --shard I/N`); none for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub backend: BackendInfo,
    pub dataset: DatasetIdentity,
    pub started_at: String,
    pub finished_at: String,
    pub wall_seconds: f64,
    /// True when this run continued from a journal.
    pub resumed: bool,
    pub samples: SampleCounts,
    /// Tokens of the trained samples.
    pub tokens: u64,
    pub samples_per_second: f64,
    pub tokens_per_second: f64,
    /// Client calls per trained sample, by endpoint.
    pub calls_per_sample: BTreeMap<String, f64>,
    pub calls: MetricsSnapshot,
    pub segmentation: SegmentCounts,
    pub levels: Vec<LevelRecord>,
    /// What katotune could promise about the knowledge base surviving a crash.
    #[serde(default)]
    pub durability: DurabilityInfo,
    /// `run --into`: where the KB was loaded and whether the stores hold exactly it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryInfo>,
    /// `compare`: every node's KB read back after the run, against the client's tally
    /// (record version 2; absent in older records and in `run`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_check: Option<super::kb_check::KbCheck>,
}

/// What `run --into` did with the trained KB (see `app::deliver`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryInfo {
    /// The target profile.
    pub into: String,
    /// The target KATO's API URL (password masked).
    pub url: String,
    /// Per KB id: the digest read back from the target's stores (`kb status`).
    pub digests: BTreeMap<String, String>,
    /// Whether every node's digest in the stores equals this run's.
    pub verified: bool,
    /// Patterns written per KB id.
    pub patterns: BTreeMap<String, u64>,
    /// Seconds spent loading into the stores.
    pub load_seconds: f64,
    /// Nodes on which KATO's `finalize-training` ran.
    #[serde(default)]
    pub finalized: Vec<String>,
}

/// What a run could guarantee about durability (see `train::durable`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DurabilityInfo {
    /// True when every sample counted as done is stored in the knowledge-base file.
    pub guaranteed: bool,
    /// How, or why not.
    pub note: String,
    /// True when the level digests were read from the knowledge base itself: all
    /// sessions of a resumed run, or a `run` on the engine in this process, which
    /// keeps no name tally (its KB started empty, so it holds exactly the run's
    /// learns); false when they count the names this session was sent back.
    pub digests_from_kb: bool,
    /// Checkpoints this session committed behind the barrier (0 without one).
    #[serde(default)]
    pub checkpoints: u64,
    /// Seconds this session spent on them, from the moment it stopped feeding workers
    /// for one until the engine had committed and synced it: time the workers were not
    /// training (see `training.checkpoint_every`).
    #[serde(default)]
    pub checkpoint_wait_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Completed,
    Interrupted,
    Failed,
}

/// The profile a run trained, as `app` describes it to the trainer (see
/// [`super::plan::TrainPlan`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileInfo {
    pub name: String,
    /// Hash of the whole resolved profile.
    pub hash: String,
    /// Hash of what decides what is learned (resume and compare check this one).
    pub learning_hash: String,
    /// The resolved profile, as the profile serializes itself (`report` reads it back
    /// as a profile); the trainer never looks inside.
    pub resolved: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `embedded`, `docker` or `external`.
    pub kind: String,
    pub url: String,
    /// Server name and version as it reported them, or the image id.
    pub server: String,
    /// How the trainer reached it (records older than this field: HTTP).
    #[serde(default)]
    pub transport: Transport,
}

/// How the trainer called KATO (see `train::link`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// HTTP requests to `url`.
    #[default]
    Http,
    /// katotune's engine in the same process, called directly (no HTTP).
    InProcess,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Http => "http",
            Transport::InProcess => "in-process",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleCounts {
    /// Samples trained to the end.
    pub done: u64,
    /// Rows dropped by the filter.
    pub filtered: u64,
    /// Unreadable rows skipped (`on_bad_sample: skip`).
    pub skipped: Vec<SampleIssue>,
    /// Samples that failed before changing anything (they are retried on resume).
    pub failed: Vec<SampleIssue>,
    /// Samples whose learns may have reached KATO partly or twice.
    pub at_risk: Vec<SampleIssue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleIssue {
    pub row: u64,
    pub origin: String,
    pub reason: String,
}

/// What one node learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelRecord {
    pub node: String,
    pub chunk_size: usize,
    /// Learn requests made at this node (node0: one per chunk).
    pub requests: u64,
    /// Names the server returned, as a digest.
    pub kb: KbDigest,
    /// Names that entered this level but were never learned (lone tails).
    pub dropped: u64,
    /// Tokens (node0) or names one pattern here spans at full size.
    pub receptive_field: u64,
    /// Why this level learned nothing, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `one` for exactly 1, `many` otherwise: "1 sample", "3 samples".
fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `1 row was` or `3 rows were`.
fn rows(n: u64) -> String {
    format!(
        "{n} {} {}",
        plural(n, "row", "rows"),
        plural(n, "was", "were")
    )
}

impl RunRecord {
    /// Why a completed run trained no sample, and what to change.
    fn nothing_trained(&self) -> String {
        let filtered = self.samples.filtered;
        let skipped = self.samples.skipped.len();
        match (filtered, skipped) {
            (0, 0) => "NOTHING was trained: the dataset held no row for this run (check \
                       training.dataset, training.skip and --shard)"
                .to_string(),
            _ => format!(
                "NOTHING was trained: {} filtered out (training.filter: `reference` drops \
                 texts of 10 characters or fewer; `none` keeps every row) and {} skipped as \
                 unreadable (listed in the run record)",
                rows(filtered),
                rows(skipped as u64),
            ),
        }
    }

    /// Whether the summary says something the user must see even with `-q`: the run
    /// did not complete, or it trained nothing.
    pub fn needs_attention(&self) -> bool {
        self.status != RunStatus::Completed || self.samples.done == 0
    }

    /// The terminal summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let shard = self
            .shard
            .map(|s| format!(" shard {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{}{shard} {}: {} {} ({} filtered, {} skipped, {} failed, {} at risk) in {:.2}s",
            self.profile.name,
            match self.status {
                RunStatus::Completed => "completed",
                RunStatus::Interrupted => "INTERRUPTED",
                RunStatus::Failed => "FAILED",
            },
            self.samples.done,
            plural(self.samples.done, "sample", "samples"),
            self.samples.filtered,
            self.samples.skipped.len(),
            self.samples.failed.len(),
            self.samples.at_risk.len(),
            self.wall_seconds
        );
        if let Some(reason) = &self.stop_reason {
            let _ = writeln!(s, "  stopped: {reason}");
        }
        if self.status == RunStatus::Completed && self.samples.done == 0 {
            let _ = writeln!(s, "  {}", self.nothing_trained());
        }
        if self.kb_trust == KbTrust::Untrusted {
            let _ = writeln!(
                s,
                "  the knowledge base is NOT trustworthy: the server named patterns differently"
            );
        }
        if self.status == RunStatus::Completed && !self.samples.at_risk.is_empty() {
            let _ = writeln!(
                s,
                "  {} samples at risk (rows {}): their learns may be partial or doubled",
                self.samples.at_risk.len(),
                self.samples
                    .at_risk
                    .iter()
                    .map(|i| i.row.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if self.segmentation.tokens_over_cap > 0 {
            let _ = writeln!(
                s,
                "  {} of {} tokens were NOT trained: paragraphs longer than training.paragraph_token_cap ({}) are cut there; raise the cap or split the documents",
                self.segmentation.tokens_over_cap,
                self.segmentation.tokens,
                self.profile.resolved["training"]["paragraph_token_cap"]
            );
        }
        let _ = writeln!(s, "  {}", self.rates());
        if self.durability.checkpoints > 0 {
            let wait = self.durability.checkpoint_wait_seconds;
            let _ = writeln!(
                s,
                "  {} {}: the workers waited {wait:.2}s for them ({:.0}% of the run)",
                self.durability.checkpoints,
                plural(self.durability.checkpoints, "checkpoint", "checkpoints"),
                100.0 * wait / self.wall_seconds.max(f64::EPSILON)
            );
        }
        if self.resumed && self.durability.digests_from_kb {
            // The lines above count this session; the digests describe the whole KB.
            let _ = writeln!(
                s,
                "  the whole knowledge base, every session of this run included:"
            );
        }
        for level in &self.levels {
            let _ = write!(
                s,
                "  {:<8} learns {:>8}  distinct {:>8}  digest {}",
                level.node,
                level.kb.learns,
                level.kb.distinct,
                &level.kb.digest[..12]
            );
            if let Some(note) = &level.note {
                let _ = write!(s, "  ({note})");
            }
            s.push('\n');
        }
        s
    }

    /// Throughput, calls per sample and latency; `n/a` where no sample was trained
    /// or no call made, since a rate over nothing is not a number.
    fn rates(&self) -> String {
        let per_sample = |value: String| {
            if self.samples.done == 0 {
                "n/a".to_string()
            } else {
                value
            }
        };
        let latency = |ms: f64| {
            if self.calls.total_requests == 0 {
                "n/a".to_string()
            } else if ms >= 1.0 {
                format!("{ms:.2} ms")
            } else {
                // In-process calls take microseconds: "0.00 ms" would say nothing.
                format!("{:.1} µs", ms * 1000.0)
            }
        };
        format!(
            "{} samples/s, {} tokens/s, {} calls/sample, latency p50 {} p95 {} p99 {}",
            per_sample(format!("{:.2}", self.samples_per_second)),
            per_sample(format!("{:.0}", self.tokens_per_second)),
            per_sample(format!(
                "{:.1}",
                self.calls_per_sample.values().sum::<f64>()
            )),
            latency(self.calls.latency.p50_ms),
            latency(self.calls.latency.p95_ms),
            latency(self.calls.latency.p99_ms),
        )
    }
}
