//! The profile schema: one YAML file that says where KATO runs, how it is tuned,
//! how training runs against it and what gets reported.
//!
//! Every struct denies unknown keys, and every field has a default, so a profile only
//! spells out what differs from `baseline`. The defaults here are the built-in layer
//! of the precedence chain (defaults < inherited profiles < the file < env < flags).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration;
pub use crate::terms::{DatasetFormat, OnBadSample, SampleFilter, Segmentation};

/// A fully resolved tuning profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Profile name; defaults to the file name without `.yaml`.
    pub name: String,
    /// One line saying what this profile is for (shown by `profiles list`).
    pub description: String,
    /// Parent profile: a shipped name (`baseline`) or a path relative to this file.
    pub inherits: Option<String>,
    pub stack: StackSection,
    pub health: HealthSection,
    pub training: TrainingSection,
    pub report: ReportSection,
    pub deliver: DeliverSection,
}

/// Where KATO runs and how it is tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackSection {
    /// `embedded` (katotune's own server, in-process), `docker` or `external`.
    pub backend: Backend,
    /// Docker backend: which stack definition in templates/ to use.
    pub template: Template,
    /// External backend: the KATO base URL.
    pub url: Option<String>,
    /// Address published ports bind to (loopback unless you mean otherwise).
    pub host: String,
    /// Host port of the KATO API: a number, or `auto` for a free one. With several
    /// replicas, replica `i` (1-based) publishes on `port + i - 1`.
    pub port: Port,
    /// KATO servers behind the stack's one Redis and one ClickHouse, 1 to
    /// [`MAX_REPLICAS`] (docker backend and `render --output kubernetes`). Each has its
    /// own port, and the trainer pins each worker's sessions to one of them (KATO's
    /// session locks are per process, API.md 7).
    pub replicas: u32,
    /// KATO's SERVICE_NAME: the suffix of every knowledge-base id.
    pub service_name: String,
    /// Container images (docker backend).
    pub images: Images,
    /// Start Qdrant too (only vector observations need it).
    pub qdrant: bool,
    /// Embedded engine: keep the knowledge base in this SQLite file
    /// (default: `<report.output_dir>/<profile>.kato.db`).
    pub kb_file: Option<PathBuf>,
    /// Embedded engine: keep the knowledge base in memory only.
    pub ephemeral: bool,
    /// How the trainer calls an engine running in katotune's own process: `auto`
    /// (directly, no HTTP) or `http` (over loopback, to measure the wire). Other
    /// backends are always HTTP.
    pub transport: TransportChoice,
    /// The KATO server settings this profile tunes (see the knob table).
    pub tuning: Tuning,
    /// Any other environment for the KATO container, passed as is.
    pub env: BTreeMap<String, String>,
}

/// Most KATO replicas a stack may run (`stack.replicas`).
pub const MAX_REPLICAS: u32 = 16;

/// The seed plan's server knobs plus the ones that really change KATO's behaviour.
/// `None` means "leave the server's own default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// KATO_BATCH_SIZE: most observations one request may carry.
    pub batch_size: Option<u64>,
    /// CONNECTION_POOL_SIZE: most requests served at once.
    pub connection_pool_size: Option<u64>,
    /// REQUEST_TIMEOUT: per-request deadline (`120s`).
    #[serde(with = "duration::option")]
    pub request_timeout: Option<Duration>,
    /// STM_CAPACITY: most events one session's STM keeps.
    pub stm_capacity: Option<u64>,
    /// KATO_WORKERS: server worker processes.
    pub workers: Option<u64>,
    /// KATO_LIMIT_CONCURRENCY: connections per worker before 503.
    pub limit_concurrency: Option<u64>,
    /// SESSION_TTL: default session lifetime (`3600s`).
    #[serde(with = "duration::option")]
    pub session_ttl: Option<Duration>,
    /// PROCESS_PREDICTIONS: server-wide default for new sessions.
    pub process_predictions: Option<bool>,
}

/// Where KATO runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// katotune's own KATO-compatible server, in-process on loopback.
    #[default]
    Embedded,
    /// A stack of containers through the Docker Engine API.
    Docker,
    /// A KATO already running at `stack.url`.
    External,
}

/// How the trainer reaches the engine when it runs in katotune's own process
/// (`stack.transport`; see `train::link`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportChoice {
    /// In-process when the engine runs inside this katotune (the embedded backend),
    /// HTTP otherwise.
    #[default]
    Auto,
    /// Always HTTP, also to an engine in this process (to measure the wire).
    Http,
}

/// Stack definitions shipped in templates/.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    /// KATO with Redis and ClickHouse (Qdrant optional).
    #[default]
    Kato,
    /// katotune's own engine image alone.
    Embedded,
}

/// A host port: a number, or `auto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Port {
    /// Let the system pick a free port.
    #[default]
    Auto,
    Fixed(u16),
}

impl Serialize for Port {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Auto => s.serialize_str("auto"),
            Port::Fixed(p) => s.serialize_u16(*p),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "auto" => Ok(Port::Auto),
            Value::String(s) => s.parse().map(Port::Fixed).map_err(|_| {
                serde::de::Error::custom(format!("`{s}` is not a port: use 1-65535 or `auto`"))
            }),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Ok(Port::Auto),
                Some(p) if p <= 65535 => Ok(Port::Fixed(p as u16)),
                _ => Err(serde::de::Error::custom(format!(
                    "{n} is not a port: use 1-65535 or `auto`"
                ))),
            },
            other => Err(serde::de::Error::custom(format!(
                "{other} is not a port: use 1-65535 or `auto`"
            ))),
        }
    }
}

/// Container images of the docker templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    pub kato: String,
    pub redis: String,
    pub clickhouse: String,
    pub qdrant: String,
    /// katotune's own engine image (`katotune image build`).
    pub engine: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            kato: "kato:latest".into(),
            redis: "redis:7-alpine".into(),
            clickhouse: "clickhouse/clickhouse-server:latest".into(),
            qdrant: "qdrant/qdrant:latest".into(),
            engine: "katotune-engine:latest".into(),
        }
    }
}

/// When the stack counts as ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Give up waiting for a healthy stack (or a restarted server) after this long.
    #[serde(with = "duration::required")]
    pub timeout: Duration,
    /// First wait between checks; it backs off from here.
    #[serde(with = "duration::required")]
    pub interval: Duration,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            interval: Duration::from_millis(500),
        }
    }
}

/// How training runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    pub dataset: DatasetSection,
    /// How many samples (after the filter) to train; `all` (or unset) = all.
    #[serde(deserialize_with = "samples_or_all")]
    pub samples: Option<u64>,
    /// Raw rows to skip before the first sample.
    pub skip: u64,
    /// `reference` drops texts of 10 characters or fewer after trimming; `none` keeps all.
    pub filter: SampleFilter,
    /// Tokenizer producing the symbols (GPT-2 byte-level BPE token strings).
    pub tokenizer: Tokenizer,
    /// `paragraphs` (the reference engine, path A) or `slices` (notebook v2, path B).
    pub segmentation: Segmentation,
    /// Path A: tokens kept per paragraph.
    pub paragraph_token_cap: usize,
    /// Chunk size per level: node0 chunks tokens, node1 chunks node0 names, ...
    pub chunk_sizes: Vec<usize>,
    /// Node ids are `<node_prefix><level>`: `node0`, `node1`, ...
    pub node_prefix: String,
    /// node0 chunks sent per observe-sequence request (1 = one call per chunk).
    pub node0_batch: usize,
    /// Samples trained concurrently, each worker with its own sessions.
    pub workers: usize,
    /// Client-side deadline for one KATO request.
    #[serde(with = "duration::required")]
    pub request_timeout: Duration,
    /// Retries for requests that provably never reached the server.
    pub retries: RetrySection,
    /// Sessions katotune creates.
    pub session: SessionSection,
    /// `reference` puts the sample's metadata on the first observation at each level.
    pub metadata: MetadataPolicy,
    /// What a sample that cannot be read does: `fail` the run or `skip` it (counted).
    pub on_bad_sample: OnBadSample,
    /// Write the resume journal after this many completed samples.
    pub checkpoint_every: u64,
}

impl Default for TrainingSection {
    fn default() -> Self {
        Self {
            dataset: DatasetSection::default(),
            samples: None,
            skip: 0,
            filter: SampleFilter::Reference,
            tokenizer: Tokenizer::Gpt2,
            segmentation: Segmentation::Paragraphs,
            paragraph_token_cap: 2048,
            chunk_sizes: vec![5, 7, 9, 11, 13, 17],
            node_prefix: "node".into(),
            node0_batch: 1,
            workers: 1,
            request_timeout: Duration::from_secs(120),
            retries: RetrySection::default(),
            session: SessionSection::default(),
            metadata: MetadataPolicy::Reference,
            on_bad_sample: OnBadSample::Fail,
            checkpoint_every: 50,
        }
    }
}

/// The corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetSection {
    /// A file or directory, relative to the working directory.
    pub path: PathBuf,
    /// `auto`, `jsonl`, `lines`, `blocks`, `txt-dir` or `parquet`.
    pub format: DatasetFormat,
    /// JSON Lines / Parquet: the field holding the text.
    pub text_field: String,
    /// Hugging Face dataset folders: which split's files to read.
    pub split: String,
}

impl Default for DatasetSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/kjv-100.jsonl"),
            format: DatasetFormat::Auto,
            text_field: "text".into(),
            split: "train".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tokenizer {
    Gpt2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataPolicy {
    Reference,
    None,
}

/// Retry policy for requests that never reached the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySection {
    pub attempts: u32,
    #[serde(with = "duration::required")]
    pub backoff: Duration,
    #[serde(with = "duration::required")]
    pub max_backoff: Duration,
}

impl Default for RetrySection {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Sessions katotune creates for training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    /// Session lifetime sent on create (sliding on every access).
    #[serde(with = "duration::required")]
    pub ttl: Duration,
    /// Extra session config keys sent with every session, on top of the training
    /// config katotune always sends (`process_predictions: false`, ...).
    pub config: BTreeMap<String, Value>,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            config: BTreeMap::new(),
        }
    }
}

/// What gets written after a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    /// Any of `json`, `csv`, `markdown`, `html`.
    pub formats: Vec<ReportFormat>,
    /// Folder for run records, journals and exports.
    pub output_dir: PathBuf,
    /// `compare`: fewest measured runs per profile (`--runs` overrides).
    pub min_runs: u32,
    /// `compare`: least measured wall time per profile, summed over its runs; runs go
    /// on until both this and `min_runs` are met (`--min-time` overrides).
    #[serde(with = "duration::required")]
    pub min_time: Duration,
}

impl Default for ReportSection {
    fn default() -> Self {
        Self {
            formats: vec![ReportFormat::Json],
            output_dir: PathBuf::from("runs"),
            min_runs: 3,
            min_time: Duration::from_secs(3),
        }
    }
}

/// Where the knowledge base goes after training (`run --into`): the engine trains,
/// then the KB is loaded into a KATO stack's own stores (Redis and ClickHouse) exactly
/// as if that KATO had learned it, and checked there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverSection {
    /// Profile whose stack receives the KB (a docker or external KATO stack); unset = keep
    /// the KB where it was trained.
    pub into: Option<String>,
    /// What to do when the target already holds data for these nodes.
    pub mode: DeliverMode,
    /// Run KATO's `POST /sessions/{sid}/finalize-training` on every node after loading.
    pub finalize: bool,
}

/// How a delivery treats a target KB that already holds data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeliverMode {
    /// Stop before writing anything.
    #[default]
    Refuse,
    /// Add, as learning the same patterns again would.
    Merge,
    /// Remove the target's own KBs for these nodes first (nothing else).
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportFormat {
    Json,
    Csv,
    Markdown,
    Html,
}

impl Default for StackSection {
    fn default() -> Self {
        Self {
            backend: Backend::Embedded,
            template: Template::Kato,
            url: None,
            host: "127.0.0.1".into(),
            port: Port::Auto,
            replicas: 1,
            service_name: "kato".into(),
            images: Images::default(),
            qdrant: false,
            kb_file: None,
            ephemeral: false,
            transport: TransportChoice::Auto,
            tuning: Tuning::default(),
            env: BTreeMap::new(),
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            name: "default".into(),
            description: String::new(),
            inherits: None,
            stack: StackSection::default(),
            health: HealthSection::default(),
            training: TrainingSection::default(),
            report: ReportSection::default(),
            deliver: DeliverSection::default(),
        }
    }
}

impl Profile {
    /// Node id of `level`.
    pub fn node_id(&self, level: usize) -> String {
        format!("{}{}", self.training.node_prefix, level)
    }

    /// Hash of everything that decides *what* is learned (data, filter, tokenizer,
    /// segmentation, chunk sizes, node ids, KB naming). Batch size, workers, backend
    /// and server tuning do not count: they must not change the knowledge base.
    pub fn learning_hash(&self) -> String {
        use sha1::{Digest, Sha1};
        let t = &self.training;
        let key = serde_json::json!({
            "dataset": t.dataset, "skip": t.skip, "filter": t.filter, "tokenizer": t.tokenizer,
            "segmentation": t.segmentation, "cap": t.paragraph_token_cap,
            "chunk_sizes": t.chunk_sizes, "node_prefix": t.node_prefix,
            "service_name": self.stack.service_name,
        });
        hex::encode(Sha1::digest(key.to_string().as_bytes()))[..16].to_string()
    }

    /// Hash of the whole resolved profile (the name and description do not count).
    pub fn hash(&self) -> String {
        use sha1::{Digest, Sha1};
        let mut copy = self.clone();
        copy.name.clear();
        copy.description.clear();
        copy.inherits = None;
        let text = serde_json::to_string(&copy).unwrap_or_default();
        hex::encode(Sha1::digest(text.as_bytes()))[..16].to_string()
    }
}

/// `training.samples`: a count, `all`, or nothing (also all).
fn samples_or_all<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    // Every scalar has a variant, so whatever was written is quoted back (an untagged
    // enum that matches nothing only says "did not match any variant").
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Samples {
        Count(u64),
        Negative(i64),
        Fraction(f64),
        Flag(bool),
        Word(String),
    }
    let refused = |written: String| {
        serde::de::Error::custom(format!(
            "`{written}` is not allowed here: this takes a whole number of samples (1 or more) or `all`"
        ))
    };
    match Option::<Samples>::deserialize(d)? {
        None => Ok(None),
        Some(Samples::Count(n)) => Ok(Some(n)),
        Some(Samples::Word(w)) if w.eq_ignore_ascii_case("all") => Ok(None),
        Some(Samples::Word(w)) => Err(refused(w)),
        Some(Samples::Negative(n)) => Err(refused(n.to_string())),
        Some(Samples::Fraction(x)) => Err(refused(x.to_string())),
        Some(Samples::Flag(b)) => Err(refused(b.to_string())),
    }
}
