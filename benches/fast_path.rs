//! `cargo bench --bench fast_path`: the in-process fast path against HTTP, end to end,
//! in one run, beside the physical limit of the work itself.
//!
//! The seed plan's hierarchy (chunk sizes 5,7,9,11,13,17) over the 100 shipped KJV
//! chapters, `node0_batch: 50`, on a fresh in-memory engine per run in this process:
//! the same profile called in-process (`stack.transport: auto`) and over loopback HTTP
//! (`stack.transport: http`), rounds interleaved so drift hits both alike. Samples/s is
//! the run record's (reading, tokenizing and training; engine start not included). The
//! digests of every run must agree, or the numbers mean nothing: the bench checks.
//!
//! The physical limit is what learning a pattern cannot avoid: one SHA-1 of its Python
//! repr (the name) and one hash-map update (its frequency). It is measured here on the
//! run's own patterns, per level (node0 reprs from the corpus's real 5-token chunks,
//! higher levels from the real names below them), weighted by the learns per level, and
//! turned into a samples/s ceiling with the run's patterns per sample.
//!
//! Without `--bench` (as `cargo test --benches` runs it) each case runs once, as a
//! smoke test.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use katotune::engine::{self, EngineConfig, RunningEngine};
use katotune::kato::pattern::push_singleton_events_repr;
use katotune::profile::schema::{Segmentation, TransportChoice};
use katotune::profile::Profile;
use katotune::train::plan::TrainPlan;
use katotune::train::record::{RunRecord, Transport};
use katotune::train::runner::{self, RunOptions, Target};
use katotune::train::segment::Segmenter;
use katotune::train::tokenizer::Gpt2Tokenizer;
use sha1::{Digest, Sha1};

/// The binary's allocator (`src/main.rs`), so the bench measures what `katotune run` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CORPUS: &str = "data/kjv-100.jsonl";

fn profile(transport: TransportChoice, workers: usize, out: &std::path::Path) -> Profile {
    let mut p = Profile {
        name: format!("{transport:?}-w{workers}").to_lowercase(),
        ..Profile::default()
    };
    p.training.samples = None;
    p.training.node0_batch = 50;
    p.training.workers = workers;
    p.stack.transport = transport;
    p.report.output_dir = out.to_path_buf();
    p
}

/// One run on a fresh in-memory engine; the engine is handed back for the limit.
async fn once(p: &Profile, out: &std::path::Path) -> (RunRecord, RunningEngine) {
    let engine = engine::start(EngineConfig::default())
        .await
        .expect("engine starts");
    let opts = RunOptions::quiet("bench", out.join(format!("{}.journal.json", p.name)));
    let record = runner::run(&TrainPlan::from(p), &Target::in_process(&engine), &opts)
        .await
        .expect("run starts");
    (record, engine)
}

/// Mean and sample standard deviation.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1).max(1) as f64;
    (mean, var.sqrt())
}

/// A hasher for SHA-1 digests: their first 8 bytes are already uniformly random.
#[derive(Default)]
struct FirstWord(u64);

impl Hasher for FirstWord {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The Python reprs one level's learns hash: node0 from the corpus's chunks, higher
/// levels from the names the level below stored (grouped by the level's chunk size).
fn level_reprs(engine: &RunningEngine, sizes: &[usize], level: usize) -> Vec<String> {
    let groups: Vec<Vec<String>> = if level == 0 {
        let tokenizer = Gpt2Tokenizer::new().expect("tokenizer loads");
        let segmenter = Segmenter::new(Segmentation::Paragraphs, sizes[0]).expect("segmenter");
        let text = std::fs::read_to_string(CORPUS).expect("shipped corpus");
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["text"].as_str().map(str::to_owned))
            .flat_map(|t| segmenter.plan(&t, &|s: &str| tokenizer.tokenize(s)).chunks)
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect()
    } else {
        let below = engine
            .handle()
            .kb_frequencies(&format!("node{}", level - 1));
        let names: Vec<String> = below.into_iter().map(|(n, _)| n).collect();
        names
            .chunks_exact(sizes[level])
            .map(<[String]>::to_vec)
            .collect()
    };
    groups
        .iter()
        .map(|g| {
            let mut repr = String::new();
            push_singleton_events_repr(&mut repr, g);
            repr
        })
        .collect()
}

/// Nanoseconds per pattern of one SHA-1 of its repr plus one frequency update, over
/// `reprs` repeated until about 2 million patterns were timed. Also the mean repr bytes.
fn per_pattern_ns(reprs: &[String]) -> (f64, f64, f64) {
    let rounds = (2_000_000 / reprs.len().max(1)).max(1);
    let started = Instant::now();
    let mut digests = Vec::with_capacity(reprs.len());
    for _ in 0..rounds {
        digests.clear();
        digests.extend(
            reprs
                .iter()
                .map(|r| <[u8; 20]>::from(Sha1::digest(r.as_bytes()))),
        );
    }
    let sha = started.elapsed().as_nanos() as f64 / (rounds * reprs.len()) as f64;
    let mut map: HashMap<[u8; 20], u64, BuildHasherDefault<FirstWord>> = HashMap::default();
    let started = Instant::now();
    for _ in 0..rounds {
        for d in &digests {
            *map.entry(*d).or_insert(0) += 1;
        }
    }
    let update = started.elapsed().as_nanos() as f64 / (rounds * digests.len()) as f64;
    let bytes = reprs.iter().map(String::len).sum::<usize>() as f64 / reprs.len().max(1) as f64;
    (sha, update, bytes)
}

/// Prints the physical limit and returns its samples/s ceiling on `cores` cores.
fn physical_limit(record: &RunRecord, engine: &RunningEngine, cores: usize) -> f64 {
    let sizes: Vec<usize> =
        serde_json::from_value(record.profile.resolved["training"]["chunk_sizes"].clone())
            .expect("the record's profile has chunk sizes");
    let sizes = &sizes;
    let (mut learns, mut ns, mut bytes) = (0u64, 0.0, 0.0);
    for (level, l) in record.levels.iter().enumerate() {
        let reprs = level_reprs(engine, sizes, level);
        if l.kb.learns == 0 || reprs.is_empty() {
            continue;
        }
        let (sha, update, b) = per_pattern_ns(&reprs);
        println!(
            "    node{level}: {:>7} learns, repr {b:>5.0} bytes, SHA-1 {sha:>5.0} ns + map update {update:>4.0} ns",
            l.kb.learns
        );
        learns += l.kb.learns;
        ns += l.kb.learns as f64 * (sha + update);
        bytes += l.kb.learns as f64 * b;
    }
    let per_pattern = ns / learns as f64;
    let per_sample = learns as f64 / record.samples.done as f64;
    let one_core = 1e9 / (per_pattern * per_sample);
    println!(
        "  physical limit: {per_pattern:.0} ns per pattern (repr {:.0} bytes on average) x {per_sample:.1} patterns per sample = {:.1} us per sample: {one_core:.0} samples/s on one core, {:.0} on {cores}",
        bytes / learns as f64,
        per_pattern * per_sample / 1000.0,
        one_core * cores as f64
    );
    one_core * cores as f64
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds = if measuring { 7 } else { 1 };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let out = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cases = [
        profile(TransportChoice::Http, 2, out.path()),
        profile(TransportChoice::Auto, 2, out.path()),
        profile(TransportChoice::Auto, 1, out.path()),
    ];
    println!(
        "fast path bench: 100 KJV chapters, chunk sizes 5,7,9,11,13,17, node0_batch 50, \
         in-memory engine in this process, {cores} cores, {rounds} interleaved rounds"
    );
    let mut rates = vec![Vec::new(); cases.len()];
    let mut reference: Option<Vec<String>> = None;
    let mut last = None;
    for _ in 0..rounds {
        for (i, p) in cases.iter().enumerate() {
            let (r, engine) = rt.block_on(once(p, out.path()));
            let digests: Vec<String> = r.levels.iter().map(|l| l.kb.digest.clone()).collect();
            let expected = reference.get_or_insert_with(|| digests.clone());
            assert_eq!(&digests, expected, "{} learned a different KB", p.name);
            assert_eq!(r.samples.done, 100, "{}: {:?}", p.name, r.stop_reason);
            rates[i].push(r.samples_per_second);
            if let Some((_, old)) = last.replace((r, engine)) {
                rt.block_on(RunningEngine::shutdown(old));
            }
        }
    }
    let (http, _) = mean_sd(&rates[0]);
    for (p, rates) in cases.iter().zip(&rates) {
        let (mean, sd) = mean_sd(rates);
        let transport = match p.stack.transport {
            TransportChoice::Http => Transport::Http,
            TransportChoice::Auto => Transport::InProcess,
        };
        println!(
            "  {:<10} {} worker(s) {:>8.1} ± {:>6.1} samples/s  {:>5.2}x http",
            transport.to_string(),
            p.training.workers,
            mean,
            sd,
            mean / http
        );
    }
    let (record, engine) = last.expect("at least one run");
    let ceiling = physical_limit(&record, &engine, cores);
    let (fast, _) = mean_sd(&rates[1]);
    println!(
        "  in-process with 2 workers reaches {:.0}% of the physical limit",
        100.0 * fast / ceiling
    );
    rt.block_on(engine.shutdown());
}
