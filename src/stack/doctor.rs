//! `katotune doctor PROFILE`: what will go wrong with this profile on this stack,
//! before hours of training find out.
//!
//! Checks, each a [`Verdict`] with a fix: Redis eviction policy, persistence and
//! `maxmemory` against the knowledge base the corpus will make (estimated from a
//! sample of it), the STM streams KATO appends every observation to, ClickHouse's `kato.patterns_data` table, KBs whose stores disagree,
//! levels that can never learn from this corpus, and knobs KATO ignores that the
//! profile sets anyway. The corpus and knob checks need no running stack.

use serde::Serialize;

use crate::kb::stores::redis_store::StreamSize;
use crate::kb::stores::{StoreError, StoreUrls, Stores};
use crate::profile::knobs::KatoEffect;
use crate::profile::validate::tuning_values;
use crate::profile::Profile;
use crate::train::dataset::{Dataset, DatasetSpec};
use crate::train::segment::Segmenter;
use crate::train::tokenizer::Gpt2Tokenizer;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub level: Level,
    /// What was checked (`redis eviction`, `level node4`, ...).
    pub check: String,
    pub finding: String,
    /// What to do (empty when nothing is wrong).
    pub fix: String,
}

fn verdict(level: Level, check: &str, finding: String, fix: &str) -> Verdict {
    Verdict {
        level,
        check: check.into(),
        finding,
        fix: fix.into(),
    }
}

/// Redis bytes per stored pattern of node0, and of the levels above (whose symbols are
/// pattern names, so their symbol keys and sets are larger). Measured with `MEMORY
/// USAGE` over every key of a node in the stores a real KATO 3.10.1 wrote for 5 KJV
/// chapters: 1,001 bytes per node0 pattern, 3,684 per node1 pattern (907 for a node0
/// KB loaded by `kb load`). An estimate, said as one.
pub const REDIS_BYTES_PER_PATTERN: [u64; 2] = [1_000, 3_700];

/// Redis bytes a KB of `patterns[level]` patterns per level takes (estimated with
/// [`REDIS_BYTES_PER_PATTERN`]).
pub fn redis_kb_bytes(patterns: &[u64]) -> u64 {
    patterns
        .iter()
        .enumerate()
        .map(|(level, n)| n * REDIS_BYTES_PER_PATTERN[usize::from(level > 0)])
        .sum()
}

/// Redis bytes per observation in KATO's STM streams when none exist yet to measure:
/// KATO `XADD`s each observation to two streams (API.md 9, "Redis growth"), and an
/// entry of its shape (event type, node, timestamp, a JSON body with one token) took
/// 168 bytes in `MEMORY USAGE` on Debian's Redis 7 (20,000 entries, measured here).
pub const STREAM_BYTES_PER_OBSERVATION: u64 = 2 * 168;

/// What a sample of the corpus says about the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorpusEstimate {
    /// Samples read.
    pub sampled: u64,
    /// Per level, how many sampled samples give it at least 2 items (so it can learn).
    pub samples_reaching: Vec<u64>,
    /// Patterns per sample at each level, summed over the sampled samples.
    pub patterns: Vec<u64>,
    /// Observations the sampled samples send over all levels (one per token at
    /// node0, one per name above): what KATO appends to its STM streams.
    pub observations: u64,
}

/// Patterns a level stores from `items` in chunks of `size`: whole chunks, plus a
/// tail of 2 items or more (TRAINING.md 3.A step 5; a learn of fewer than 2 symbols
/// stores nothing, API.md 3.4).
pub fn patterns_from(items: u64, size: usize) -> u64 {
    let size = size.max(1) as u64;
    items / size + u64::from(items % size >= 2)
}

/// Items each level receives for one sample: level 0 its `tokens`, level 1 the
/// sample's `node0_chunks` names, level k+1 one name per pattern level k stores (the
/// hierarchy runs per sample and nothing carries over, TRAINING.md 3.A).
pub fn level_inputs(tokens: u64, node0_chunks: u64, chunk_sizes: &[usize]) -> Vec<u64> {
    let mut inputs = vec![tokens];
    if chunk_sizes.len() > 1 {
        inputs.push(node0_chunks);
    }
    for size in chunk_sizes
        .iter()
        .skip(1)
        .take(chunk_sizes.len().saturating_sub(2))
    {
        let below = *inputs.last().unwrap_or(&0);
        inputs.push(patterns_from(below, *size));
    }
    inputs
}

/// Reads up to `sample` samples of the profile's corpus (`dataset`, the profile's
/// dataset section as a reader spec) and counts, per level, how many could learn and
/// how many patterns they would make.
pub fn estimate_corpus(
    profile: &Profile,
    dataset: &DatasetSpec,
    sample: u64,
) -> anyhow::Result<CorpusEstimate> {
    let t = &profile.training;
    let dataset = Dataset::open(dataset)?;
    let tokenizer = Gpt2Tokenizer::shared()?;
    let segmenter = Segmenter::new(t.segmentation, t.chunk_sizes[0])?
        .with_paragraph_token_cap(t.paragraph_token_cap)?;
    let levels = t.chunk_sizes.len();
    let mut est = CorpusEstimate {
        sampled: 0,
        samples_reaching: vec![0; levels],
        patterns: vec![0; levels],
        observations: 0,
    };
    for raw in dataset.flatten().take(sample as usize) {
        let tokenize = |text: &str| tokenizer.tokenize(text);
        let plan = segmenter.plan(&raw.text, &tokenize);
        let tokens: u64 = plan.chunks.iter().map(|c| c.len() as u64).sum();
        let inputs = level_inputs(tokens, plan.chunks.len() as u64, &t.chunk_sizes);
        est.observations += inputs.iter().sum::<u64>();
        for (level, items) in inputs.iter().enumerate() {
            let stored = match level {
                0 => plan.chunks.iter().filter(|c| c.len() >= 2).count() as u64,
                _ => patterns_from(*items, t.chunk_sizes[level]),
            };
            if stored > 0 {
                est.samples_reaching[level] += 1;
                est.patterns[level] += stored;
            }
        }
        est.sampled += 1;
    }
    Ok(est)
}

/// Rows of the profile's corpus (`dataset`) that are samples (what a run without
/// `training.samples` trains).
pub fn count_samples(dataset: &DatasetSpec) -> anyhow::Result<u64> {
    let dataset = Dataset::open(dataset)?;
    Ok(dataset.flatten().count() as u64)
}

/// Verdicts on the levels: a level no sampled sample reaches with 2 items never learns.
pub fn level_verdicts(profile: &Profile, est: &CorpusEstimate) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (level, reaching) in est.samples_reaching.iter().enumerate() {
        let node = profile.node_id(level);
        let check = format!("level {node}");
        let size = profile.training.chunk_sizes[level];
        out.push(match (*reaching, est.sampled) {
            (_, 0) => verdict(Level::Warn, &check, "the corpus sample is empty".into(), ""),
            (0, n) => verdict(
                Level::Fail,
                &check,
                format!("none of {n} sampled samples gives {node} the 2 items it needs to learn (chunk size {size}): it will never learn"),
                "drop this level from training.chunk_sizes, lower the chunk sizes below it, or use longer samples",
            ),
            (r, n) => verdict(Level::Ok, &check, format!("{r} of {n} sampled samples reach it"), ""),
        });
    }
    out
}

/// Redis settings that matter to a knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisFacts {
    pub maxmemory: u64,
    pub policy: String,
    pub appendonly: bool,
    /// The `save` setting (empty: no RDB snapshots).
    pub save: String,
    pub used_memory: u64,
    /// KATO's STM streams present now.
    pub streams: Vec<StreamSize>,
}

/// Reads [`RedisFacts`] from a connected store.
pub fn redis_facts(stores: &mut Stores) -> Result<RedisFacts, StoreError> {
    let r = &mut stores.redis;
    Ok(RedisFacts {
        maxmemory: r
            .config_get("maxmemory")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        policy: r.config_get("maxmemory-policy")?.unwrap_or_default(),
        appendonly: r.config_get("appendonly")?.as_deref() == Some("yes"),
        save: r.config_get("save")?.unwrap_or_default(),
        used_memory: r.used_memory()?,
        streams: r.stm_streams()?,
    })
}

/// What a run will add to Redis (estimates from a sample of the corpus).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunGrowth {
    /// Bytes of knowledge base ([`redis_kb_bytes`]).
    pub kb_bytes: u64,
    /// Observations the run sends, each appended to KATO's two STM streams.
    pub observations: u64,
}

impl RunGrowth {
    /// Bytes the streams gain: per observation the bytes the present streams hold per
    /// entry (both streams), or [`STREAM_BYTES_PER_OBSERVATION`] when there are none.
    pub fn stream_bytes(&self, present: &[StreamSize]) -> u64 {
        let entries: u64 = present.iter().map(|s| s.entries).sum();
        let bytes: u64 = present.iter().map(|s| s.bytes).sum();
        let per_observation = match entries {
            0 => STREAM_BYTES_PER_OBSERVATION,
            n => 2 * bytes / n,
        };
        self.observations * per_observation
    }
}

/// The STM-stream verdict: KATO never trims them, so they grow with every observation
/// of every run; a warning when they hold anything or the run will add more than the
/// knowledge base itself.
pub fn stream_verdict(f: &RedisFacts, growth: RunGrowth) -> Verdict {
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    let bytes: u64 = f.streams.iter().map(|s| s.bytes).sum();
    let entries: u64 = f.streams.iter().map(|s| s.entries).sum();
    let adds = growth.stream_bytes(&f.streams);
    let finding = format!(
        "{} STM streams hold {entries} entries ({:.1} MiB); KATO appends each of the run's about {} observations to two of them and never trims them: about {:.1} MiB more",
        f.streams.len(),
        mib(bytes),
        growth.observations,
        mib(adds),
    );
    let fix = "KATO does not read these streams back for training: trim them between runs (`redis-cli XTRIM stm:global MAXLEN 0`, and each `stm:events:*`), and count them in maxmemory";
    match entries > 0 || adds > growth.kb_bytes {
        true => verdict(Level::Warn, "redis streams", finding, fix),
        false => verdict(Level::Ok, "redis streams", finding, ""),
    }
}

/// Verdicts on Redis: eviction, persistence, room for what the run adds (its KB and
/// the STM streams' growth), and the streams.
pub fn redis_verdicts(f: &RedisFacts, growth: Option<RunGrowth>) -> Vec<Verdict> {
    let expected_bytes = growth.map(|g| g.kb_bytes + g.stream_bytes(&f.streams));
    let mut out = Vec::new();
    out.push(if f.policy.starts_with("allkeys") {
        verdict(Level::Fail, "redis eviction", format!("maxmemory-policy is {}: when Redis fills up it silently evicts pattern frequencies and sessions", f.policy), "set `maxmemory-policy noeviction` in the stack's redis.conf (katotune's kato template does)")
    } else {
        verdict(Level::Ok, "redis eviction", format!("maxmemory-policy is {}", f.policy), "")
    });
    out.push(if !f.appendonly && f.save.trim().is_empty() {
        verdict(Level::Fail, "redis persistence", "appendonly is no and save is empty: a restart forgets every frequency while ClickHouse keeps the rows".into(), "set `appendonly yes` and keep /data on a volume (katotune's kato template does)")
    } else {
        verdict(Level::Ok, "redis persistence", format!("appendonly {}, save \"{}\"", if f.appendonly { "yes" } else { "no" }, f.save), "")
    });
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    out.push(match (f.maxmemory, expected_bytes) {
        (0, _) => verdict(Level::Warn, "redis memory", "maxmemory is 0 (no cap): Redis can grow until the host kills it".into(), "set maxmemory to what the host can give"),
        (cap, Some(need)) if f.used_memory + need > cap => verdict(Level::Fail, "redis memory", format!("the run will need about {:.2} GiB more (knowledge base and STM streams, estimated from the corpus sample) on top of {:.2} GiB used, over maxmemory {:.2} GiB", gib(need), gib(f.used_memory), gib(cap)), "raise maxmemory, trim KATO's STM streams, or train fewer samples per stack"),
        (cap, need) => verdict(Level::Ok, "redis memory", format!("{:.2} GiB used of maxmemory {:.2} GiB; the run adds about {:.2} GiB", gib(f.used_memory), gib(cap), gib(need.unwrap_or(0))), ""),
    });
    out.push(stream_verdict(f, growth.unwrap_or_default()));
    out
}

/// Knobs the profile sets that KATO does not use (`knobs.rs`, API.md 5.3).
pub fn knob_verdicts(profile: &Profile) -> Vec<Verdict> {
    tuning_values(&profile.stack.tuning)
        .into_iter()
        .filter(|(knob, _)| knob.kato != KatoEffect::ChangesBehaviour)
        .map(|(knob, value)| {
            verdict(
                Level::Warn,
                &format!("knob {}", knob.env),
                format!(
                    "{}={value} is set, but KATO: {} ({})",
                    knob.env,
                    knob.kato.label(),
                    knob.kato_note
                ),
                "remove it from the profile, or tune a knob that does something",
            )
        })
        .collect()
}

/// KATO's `KATO_WORKERS` when the environment does not set it (API.md 7).
const KATO_DEFAULT_WORKERS: usize = 4;

/// Server settings against this machine: KATO workers vs cores, and predictions on
/// by default for every session (katotune's sessions send `false` anyway).
pub fn server_verdicts(profile: &Profile, cores: usize) -> Vec<Verdict> {
    let env = profile.server_env();
    let mut out = Vec::new();
    let replicas = profile.stack.replicas.max(1) as usize;
    let set = env
        .get("KATO_WORKERS")
        .and_then(|w| w.parse::<usize>().ok());
    // With replicas, KATO's default of 4 workers each counts too (API.md 7).
    if let Some(workers) = set.or((replicas > 1).then_some(KATO_DEFAULT_WORKERS)) {
        let total = workers * replicas;
        let shape = match replicas {
            1 => format!("KATO_WORKERS={workers}"),
            n => format!("{n} replicas x KATO_WORKERS={workers} = {total} server processes"),
        };
        out.push(match total > 2 * cores {
            true => verdict(Level::Warn, "server workers", format!("{shape} on {cores} cores: workers beyond about 2 per core only add memory and contention"), "set stack.tuning.workers (times stack.replicas) to at most twice the cores"),
            false => verdict(Level::Ok, "server workers", format!("{shape} on {cores} cores"), ""),
        });
    }
    if env.get("PROCESS_PREDICTIONS").map(String::as_str) == Some("true") {
        out.push(verdict(Level::Warn, "predictions default", "PROCESS_PREDICTIONS=true: every session that does not say otherwise computes predictions (about 80x slower); katotune's training sessions send false".into(), "leave PROCESS_PREDICTIONS unset unless other clients need it"));
    }
    out
}

/// Every verdict on the running stack's stores, given what the run will add.
pub fn store_verdicts(urls: &StoreUrls, growth: Option<RunGrowth>) -> Vec<Verdict> {
    let mut stores = match Stores::connect(urls) {
        Ok(s) => s,
        Err(e) => {
            return vec![verdict(
                Level::Fail,
                "stores",
                e.to_string(),
                "bring the stack up with `katotune up PROFILE`",
            )]
        }
    };
    let mut out = vec![verdict(
        Level::Ok,
        "clickhouse schema",
        "kato.patterns_data exists".into(),
        "",
    )];
    match redis_facts(&mut stores) {
        Ok(f) => out.extend(redis_verdicts(&f, growth)),
        Err(e) => out.push(verdict(Level::Fail, "redis", e.to_string(), "")),
    }
    out.push(match super::kb_guard::disagreements(&mut stores) {
        Ok(bad) if bad.is_empty() => verdict(
            Level::Ok,
            "stores agree",
            "every ClickHouse row has its Redis frequency and the reverse".into(),
            "",
        ),
        Ok(bad) => verdict(
            Level::Fail,
            "stores agree",
            bad.iter()
                .map(|d| d.describe())
                .collect::<Vec<_>>()
                .join("; "),
            super::kb_guard::DISAGREE_FIX,
        ),
        Err(e) => verdict(Level::Fail, "stores agree", e.to_string(), ""),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_gets_one_item_per_chunk_of_the_level_below() {
        // 100 tokens in 20 node0 chunks of 5; node1 stores 20/7 = 2 whole chunks and
        // a tail of 6 (3 names for node2); node2 stores one pattern from a tail of 3
        // (1 name for node3), so node3 can never learn (TRAINING.md 3.A step 5).
        assert_eq!(level_inputs(100, 20, &[5, 7, 7, 7]), vec![100, 20, 3, 1]);
        assert_eq!(patterns_from(1, 7), 0);
        assert_eq!(patterns_from(15, 7), 2, "a tail of 1 stores nothing");
        assert_eq!(level_inputs(9, 2, &[5]), vec![9]);
    }

    #[test]
    fn too_many_workers_for_the_cores_are_a_warning() {
        let mut profile = crate::profile::load("docker-kato", &[]).unwrap().profile;
        profile.stack.tuning.workers = Some(16);
        let v = server_verdicts(&profile, 2);
        assert_eq!(v[0].level, Level::Warn, "{v:?}");
        assert_eq!(server_verdicts(&profile, 8)[0].level, Level::Ok);
    }

    #[test]
    fn replicas_multiply_the_server_workers_against_the_cores() {
        let mut profile = crate::profile::load("docker-kato", &[]).unwrap().profile;
        profile.stack.tuning.workers = None;
        assert!(
            server_verdicts(&profile, 2).is_empty(),
            "one replica, KATO's default"
        );
        profile.stack.replicas = 3;
        let v = server_verdicts(&profile, 4);
        assert_eq!(v[0].level, Level::Warn, "3 x 4 workers on 4 cores: {v:?}");
        assert!(v[0].finding.contains("12 server processes"), "{v:?}");
        assert_eq!(server_verdicts(&profile, 6)[0].level, Level::Ok);
    }

    #[test]
    fn a_misconfigured_redis_gets_failing_verdicts_with_fixes() {
        let facts = RedisFacts {
            maxmemory: 1 << 20,
            policy: "allkeys-lru".into(),
            appendonly: false,
            save: String::new(),
            used_memory: 900_000,
            streams: vec![],
        };
        let growth = RunGrowth {
            kb_bytes: 500_000,
            observations: 0,
        };
        let v = redis_verdicts(&facts, Some(growth));
        let (settings, streams) = v.split_at(v.len() - 1);
        assert!(settings.iter().all(|v| v.level == Level::Fail), "{v:?}");
        assert!(settings.iter().all(|v| !v.fix.is_empty()));
        assert_eq!(streams[0].level, Level::Ok, "no stream, none added: {v:?}");
    }

    #[test]
    fn streams_that_grow_past_the_kb_are_a_warning_sized_from_their_own_entries() {
        let mut facts = RedisFacts {
            maxmemory: 8 << 30,
            policy: "noeviction".into(),
            appendonly: true,
            save: String::new(),
            used_memory: 1 << 20,
            streams: vec![],
        };
        // 1,000 observations, no stream yet: 336 bytes each (2 × 168), more than a KB
        // of 30,000 bytes.
        let growth = RunGrowth {
            kb_bytes: 100 * 300,
            observations: 1_000,
        };
        assert_eq!(growth.stream_bytes(&facts.streams), 336_000);
        let v = stream_verdict(&facts, growth);
        assert_eq!(v.level, Level::Warn, "{v:?}");
        assert!(v.fix.contains("XTRIM stm:global"), "{v:?}");
        // Present streams give their own size per entry: 2 streams of 10 entries,
        // 2,000 bytes each, make 200 bytes per entry, 400 per observation.
        facts.streams = ["stm:events:node0_kato", "stm:global"]
            .map(|key| StreamSize {
                key: key.into(),
                entries: 10,
                bytes: 2_000,
            })
            .to_vec();
        assert_eq!(growth.stream_bytes(&facts.streams), 400_000);
        assert!(stream_verdict(&facts, growth)
            .finding
            .contains("20 entries"));
        let quiet = RunGrowth {
            kb_bytes: 1 << 30,
            observations: 10,
        };
        facts.streams.clear();
        assert_eq!(stream_verdict(&facts, quiet).level, Level::Ok);
    }
}
