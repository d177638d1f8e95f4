//! The command line (clap definitions only; `app` carries the commands out).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tune, provision and benchmark KATO training stacks from YAML profiles.
#[derive(Debug, Parser)]
#[command(name = "katotune", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Colour: auto (terminal and no NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Output format for commands that print data.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, show and validate tuning profiles.
    #[command(subcommand)]
    Profiles(ProfilesCommand),
    /// Print the plan the docker backend would apply (containers, env, ports, labels,
    /// health checks), an equivalent docker-compose file, or Kubernetes manifests,
    /// without touching anything.
    Render(RenderArgs),
    /// Spin KATO up (per the profile's backend), wait until healthy, train, report,
    /// tear down.
    Run(RunArgs),
    /// Create what the profile's docker stack is missing, recreate containers whose
    /// config changed, leave the rest; print what was done.
    Apply(StackArgs),
    /// Apply the docker stack and wait until it is ready; print its URL.
    Up(StackArgs),
    /// Remove a docker stack: only katotune-labelled resources of that stack.
    Down(DownArgs),
    /// Every katotune container with its state and health (stale ones included).
    Status(StatusArgs),
    /// Logs of a docker stack's containers.
    Logs(LogsArgs),
    /// Build katotune's engine image (FROM scratch, from a static katotune binary).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Run several profiles on the same samples and compare speed and what they learned.
    Compare(Box<CompareArgs>),
    /// Re-render exports from saved run records or a saved comparison (no training).
    Report(ReportArgs),
    /// Run katotune's KATO-compatible engine as a standalone server.
    Serve(ServeArgs),
    /// Check that a KATO server answers /health (exit 0 when it does).
    Health(HealthArgs),
    /// Say what will go wrong with a profile on its stack: Redis eviction, persistence
    /// and memory against the corpus, ClickHouse schema, stores that disagree, levels
    /// that can never learn, knobs KATO ignores. Exit 1 when a check fails.
    Doctor(DoctorArgs),
    /// Knowledge bases: status, dump, load, diff, reset (engine KB files, profiles,
    /// KATO's Redis and ClickHouse).
    #[command(subcommand)]
    Kb(KbCommand),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// Shipped and local profiles with their descriptions.
    List,
    /// The fully resolved profile as YAML (or JSON with --format json).
    Show(ShowArgs),
    /// The knob table: every KATO setting katotune knows and what it really does.
    Knobs,
    /// Check profiles; every problem of every file in one pass (exit 2 on any).
    Validate {
        /// Profile files or names.
        #[arg(required = true)]
        profiles: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Profile name (shipped or in ./profiles) or file.
    pub profile: String,
    /// Show where each value came from (default, file, env var, flag).
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Profile name or file.
    pub profile: String,
    /// What to print: the plan, a docker-compose file, or Kubernetes manifests (the
    /// stack and the sharded training).
    #[arg(long, value_enum, default_value_t = RenderAs::Plan)]
    pub output: RenderAs,
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderAs {
    Plan,
    Compose,
    Kubernetes,
}

/// `render --output kubernetes` only.
#[derive(Debug, Args, Default, Clone)]
pub struct KubernetesArgs {
    /// Namespace of every object (default: katotune-<profile>).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Training shards: pods of the Indexed Job, each `run --shard I/N` (default 1).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// katotune's image for the training Jobs (default: katotune-engine:latest, what
    /// `katotune image build` tags).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Size of every persistent volume claim (default 10Gi).
    #[arg(long, value_name = "QUANTITY")]
    pub volume_size: Option<String>,
    /// Storage class of every claim (default: the cluster's).
    #[arg(long, value_name = "NAME")]
    pub storage_class: Option<String>,
}

/// Flags that override profile values (highest precedence).
#[derive(Debug, Args, Default, Clone)]
pub struct ProfileOverrides {
    /// Override the backend.
    #[arg(long, value_parser = ["embedded", "docker", "external"])]
    pub backend: Option<String>,
    /// Override training.samples: a number, or `all`.
    #[arg(long, value_parser = parse_samples, allow_negative_numbers = true)]
    pub samples: Option<SampleCount>,
    /// Override training.skip (raw rows).
    #[arg(long)]
    pub skip: Option<u64>,
    /// Override training.workers.
    #[arg(long)]
    pub workers: Option<u64>,
    /// Override training.node0_batch.
    #[arg(long = "node0-batch")]
    pub node0_batch: Option<u64>,
    /// Override any value: --set training.chunk_sizes=[5,7] (value is YAML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// SQLite file for the knowledge base (env KATOTUNE_ENGINE_DB).
    #[arg(long, env = "KATOTUNE_ENGINE_DB", conflicts_with = "ephemeral")]
    pub db: Option<PathBuf>,
    /// Keep the knowledge base in memory only.
    #[arg(long)]
    pub ephemeral: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Profile name or file.
    pub profile: String,
    /// Continue from the profile's resume journal.
    #[arg(long, conflicts_with = "fresh")]
    pub resume: bool,
    /// Start over, replacing the embedded knowledge base an earlier run left.
    #[arg(long)]
    pub fresh: bool,
    /// Leave the stack running after the run (docker backend).
    #[arg(long)]
    pub keep: bool,
    /// Write the run record here (default: <report.output_dir>/<profile>-<run id>.json).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// What to do with an unreadable row: fail the run, or skip it (listed in the record).
    #[arg(long, value_parser = ["fail", "skip"])]
    pub on_bad_sample: Option<String>,
    /// Train on the engine, then load the KB into this profile's KATO stack (its Redis and
    /// ClickHouse) and check it there; the stack keeps serving (profile key deliver.into).
    #[arg(long, value_name = "PROFILE")]
    pub into: Option<String>,
    /// With --into: run KATO's finalize-training on every node after loading.
    #[arg(long, requires = "into")]
    pub finalize: bool,
    /// With --into: load even though the target's Redis may evict keys (allkeys-*).
    #[arg(long)]
    pub allow_eviction: bool,
    /// Train only shard I of N (0-based, 0 <= I < N): the samples numbered I, I+N,
    /// I+2N... into a KB file of its own (`.shard-I-of-N`); merge with `kb merge`.
    #[arg(long, value_name = "I/N", value_parser = clap::value_parser!(crate::train::shard::Shard))]
    pub shard: Option<crate::train::shard::Shard>,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "3s")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct StackArgs {
    /// Profile name or file (its `stack.backend` should be `docker`).
    pub profile: String,
    /// On Ctrl-C, leave what this invocation created instead of removing it.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Profile whose stack to remove.
    #[arg(required_unless_present_any = ["stack", "all"])]
    pub profile: Option<String>,
    /// Remove this stack by name (e.g. a stale one `status` shows).
    #[arg(long, conflicts_with = "profile")]
    pub stack: Option<String>,
    /// Remove every katotune stack.
    #[arg(long, conflicts_with_all = ["profile", "stack"])]
    pub all: bool,
    /// Remove the stack's volumes (its data) too.
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask: needed for `--all` without a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Profile name or file.
    pub profile: String,
    /// Samples of the corpus to read for the estimates.
    #[arg(long, default_value_t = 200)]
    pub sample: u64,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this profile's stack (default: every katotune stack).
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Profile whose stack's logs to show.
    pub profile: String,
    /// Lines from the end of each container's log.
    #[arg(long, default_value_t = 100)]
    pub tail: usize,
    /// Keep streaming.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the engine image from a static katotune binary.
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Image tag.
    #[arg(long, default_value = "katotune-engine:latest")]
    pub tag: String,
    /// A statically linked katotune binary (default: this binary if it is static,
    /// else build one with cargo in the current checkout).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// Where to write exports (each may be given; `-` is not supported, use a path).
#[derive(Debug, Args, Default, Clone)]
pub struct ExportArgs {
    #[arg(long, value_name = "FILE")]
    pub export_json: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub export_csv: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub export_markdown: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub export_html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Profiles to compare (names or files), in table order.
    #[arg(required = true, num_args = 1..)]
    pub profiles: Vec<String>,
    /// The profile the others are measured against (default: the first).
    #[arg(long)]
    pub reference: Option<String>,
    /// Whole runs of each profile before its measured runs, not counted.
    #[arg(long, default_value_t = 0, value_name = "RUNS")]
    pub warmup: u32,
    /// Samples trained before each measured run on its stack, not counted (on nodes of
    /// their own, removed afterwards, so the measured KB holds only measured samples).
    #[arg(long, default_value_t = 0, value_name = "SAMPLES")]
    pub warmup_samples: u64,
    /// Fewest measured runs per profile (default: the profile's `report.min_runs`, 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: Option<u32>,
    /// Least measured wall time per profile, like `3s` (default: `report.min_time`, 3s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub min_time: Option<std::time::Duration>,
    /// Most measured runs per profile, whatever `--min-time` asks; never fewer than
    /// `--runs` (the least count wins).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_runs: u32,
    /// Run one profile once per value of a setting: `training.workers=1,2,4,8`,
    /// `training.workers=1..8`, any key (server knobs get a fresh stack per value).
    #[arg(long, value_name = "KEY=VALUES")]
    pub scan: Option<String>,
    /// Use one stack for every profile when they differ only in client settings (each
    /// run then trains nodes of its own there, removed after the run).
    #[arg(long)]
    pub reuse_stack: bool,
    /// An earlier `--export-json` to gate against.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// How far below the baseline's throughput a profile may fall: `10%` or `0.1`.
    #[arg(long, default_value = "10%")]
    pub threshold: String,
    /// Confidence of the gate's Welch t-test: `95%` or `0.95`.
    #[arg(long, default_value = "95%")]
    pub confidence: String,
    /// Exit 0 even when a profile learned a different knowledge base.
    #[arg(long)]
    pub allow_kb_diff: bool,
    #[command(flatten)]
    pub exports: ExportArgs,
    #[command(flatten)]
    pub overrides: ProfileOverrides,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run record JSON files (several per profile become repeats) or one comparison JSON.
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// The reference profile (default: the first).
    #[arg(long)]
    pub reference: Option<String>,
    #[command(flatten)]
    pub exports: ExportArgs,
}

/// Where KATO's stores are, for TARGET `stores` (or no TARGET).
#[derive(Debug, Args, Default, Clone)]
pub struct StoreFlags {
    /// KATO's Redis: redis://[:PASSWORD@]HOST:PORT[/DB] (env KATOTUNE_REDIS_URL).
    #[arg(long, value_name = "URL", env = "KATOTUNE_REDIS_URL")]
    pub redis: Option<String>,
    /// KATO's ClickHouse HTTP interface: http://[USER:PASSWORD@]HOST:PORT
    /// (env KATOTUNE_CLICKHOUSE_URL).
    #[arg(long, value_name = "URL", env = "KATOTUNE_CLICKHOUSE_URL")]
    pub clickhouse: Option<String>,
    /// KATO's SERVICE_NAME, the suffix of every KB id (default: the profile's, a dump's,
    /// or `kato`).
    #[arg(long)]
    pub service_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Per KB: patterns, learns, distinct symbols, the run record's digest, and any
    /// interrupted load.
    Status(KbStatusArgs),
    /// Write a TARGET's knowledge bases to a dump file (JSON Lines, versioned).
    Dump(KbDumpArgs),
    /// Load a dump, an engine KB file or a profile's KB into a TARGET.
    Load(KbLoadArgs),
    /// Per KB: names only in A, only in B, and with different frequencies (exit 5 on any).
    Diff(KbDiffArgs),
    /// Remove knowledge bases from a TARGET (only the named nodes).
    Reset(KbResetArgs),
    /// Add knowledge bases up as one run would have learned them all (the shards of
    /// `run --shard`): frequencies add, metadata unites; streams in bounded memory.
    Merge(KbMergeArgs),
}

#[derive(Debug, Args)]
pub struct KbMergeArgs {
    /// Engine KB files, dumps, or profiles whose KB is an engine file.
    #[arg(required = true, value_name = "KB")]
    pub inputs: Vec<String>,
    /// The merged KB to write: an engine KB file, or a dump when it ends in `.jsonl`
    /// (built as OUT.partial, renamed when complete).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Replace OUT (and the resume journal beside it) when it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Combine emotive windows and affinity sums that several inputs hold in input
    /// order instead of refusing (not exact: the merge counts them).
    #[arg(long)]
    pub combine_emotives: bool,
}

#[derive(Debug, Args)]
pub struct KbStatusArgs {
    /// An engine KB file, a profile, or `stores` (default with --redis/--clickhouse).
    pub target: Option<String>,
    /// A run record to check the digests against.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub stores: StoreFlags,
}

#[derive(Debug, Args)]
pub struct KbDumpArgs {
    /// An engine KB file, a profile, or `stores`.
    pub target: Option<String>,
    /// The dump file to write (written beside as FILE.partial, renamed when complete).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub stores: StoreFlags,
}

#[derive(Debug, Args)]
pub struct KbLoadArgs {
    /// A dump, an engine KB file, or a profile.
    pub source: String,
    /// An engine KB file, a profile, or `stores` (default with --redis/--clickhouse).
    #[arg(long, value_name = "TARGET")]
    pub into: Option<String>,
    /// Add to KBs that already hold patterns, as learning them again would.
    #[arg(long, conflicts_with = "replace")]
    pub merge: bool,
    /// First remove the target's KBs that the source holds (only those).
    #[arg(long)]
    pub replace: bool,
    /// Finish a load that was cut (Ctrl-C, kill, crash), from the same source.
    #[arg(long, conflicts_with = "replace")]
    pub resume: bool,
    /// Load into a Redis whose maxmemory-policy may evict keys (allkeys-*).
    #[arg(long)]
    pub allow_eviction: bool,
    /// Records per batch (one ClickHouse insert, one Redis transaction).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
    #[command(flatten)]
    pub stores: StoreFlags,
}

#[derive(Debug, Args)]
pub struct KbDiffArgs {
    /// A dump, an engine KB file, a profile, or `stores`.
    pub a: String,
    /// A dump, an engine KB file, a profile, or `stores`.
    pub b: String,
    /// Example names shown per kind of difference.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    #[command(flatten)]
    pub stores: StoreFlags,
}

#[derive(Debug, Args)]
pub struct KbResetArgs {
    /// An engine KB file, a profile, or `stores`.
    pub target: Option<String>,
    /// Node ids to remove (default: the profile's nodes; required otherwise).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub stores: StoreFlags,
}

/// `--samples`: how many samples to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleCount {
    /// Every sample of the dataset.
    All,
    /// This many (after the filter).
    Count(u64),
}

/// Reads `--samples`, saying what is allowed when the value does not fit.
fn parse_samples(raw: &str) -> Result<SampleCount, String> {
    if raw.eq_ignore_ascii_case("all") {
        return Ok(SampleCount::All);
    }
    raw.trim().parse::<u64>().map(SampleCount::Count).map_err(|_| {
        format!("`{raw}` is not a number of samples: give a whole number, 1 or more (e.g. --samples 100), or `all`")
    })
}
