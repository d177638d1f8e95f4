//! `cargo bench --bench training`: the seed plan's hierarchy (5,7,9,11,13,17) over the
//! shipped corpus on the embedded engine, for baseline, batched and batched + 4
//! workers, as samples/s and ratios to the baseline; plus the tokenizer alone, beside
//! tiktoken's own GPT-2 encoder on the same text.
//!
//! Each profile runs on a fresh in-memory engine in this process, over real HTTP on
//! loopback. The digests must agree, or the numbers mean nothing: the bench checks.

use std::time::Instant;

use katotune::engine::{self, EngineConfig};
use katotune::profile::Profile;
use katotune::train::plan::TrainPlan;
use katotune::train::record::RunRecord;
use katotune::train::runner::{self, RunOptions, Target};
use katotune::train::tokenizer::Gpt2Tokenizer;

const ROUNDS: usize = 3;

fn profile(name: &str, batch: usize, workers: usize, out: &std::path::Path) -> Profile {
    let mut p = Profile {
        name: name.into(),
        ..Profile::default()
    };
    p.training.samples = None;
    p.training.node0_batch = batch;
    p.training.workers = workers;
    p.report.output_dir = out.to_path_buf();
    p
}

async fn once(p: &Profile, out: &std::path::Path) -> RunRecord {
    let engine = engine::start(EngineConfig::default())
        .await
        .expect("engine starts");
    let url = engine.url();
    let target = Target::embedded(url);
    let opts = RunOptions::quiet("bench", out.join(format!("{}.journal.json", p.name)));
    let record = runner::run(&TrainPlan::from(p), &target, &opts)
        .await
        .expect("run starts");
    engine.shutdown().await;
    record
}

/// Tokens/s of katotune's GPT-2 tokenizer and of tiktoken's own `r50k_base` (its
/// pre-tokenizer with the lookahead, on `fancy_regex`) over the shipped corpus, ids
/// only, interleaved rounds on one thread; asserts they agree.
fn tokenizer_rates() -> (f64, f64) {
    let tok = Gpt2Tokenizer::new().expect("tokenizer loads");
    let tiktoken = tiktoken_rs::r50k_base().expect("tiktoken's GPT-2 loads");
    let text = std::fs::read_to_string("data/kjv-100.jsonl").expect("shipped corpus");
    let (mut ours, mut theirs) = (0.0, 0.0);
    let mut tokens = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let ids = tok.encode(&text);
        ours += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let reference = tiktoken.encode_ordinary(&text);
        theirs += start.elapsed().as_secs_f64();
        assert_eq!(
            ids, reference,
            "katotune's tokenizer disagrees with tiktoken"
        );
        tokens += ids.len();
    }
    (tokens as f64 / ours, tokens as f64 / theirs)
}

fn main() {
    let out = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let profiles = [
        profile("baseline", 1, 1, out.path()),
        profile("batched", 50, 1, out.path()),
        profile("batched+4w", 50, 4, out.path()),
    ];
    println!("training bench: 100 KJV chapters, chunk sizes 5,7,9,11,13,17, embedded engine, {ROUNDS} rounds each");
    let mut base_rate = 0.0;
    let mut base_digests = Vec::new();
    for p in &profiles {
        let mut rates = Vec::new();
        let mut last = None;
        for _ in 0..ROUNDS {
            let r = rt.block_on(once(p, out.path()));
            rates.push(r.samples_per_second);
            last = Some(r);
        }
        let r = last.expect("at least one round");
        let digests: Vec<String> = r.levels.iter().map(|l| l.kb.digest.clone()).collect();
        if base_digests.is_empty() {
            base_digests = digests.clone();
        }
        assert_eq!(digests, base_digests, "{} learned a different KB", p.name);
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let sd = (rates.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
            / (rates.len() - 1).max(1) as f64)
            .sqrt();
        if base_rate == 0.0 {
            base_rate = mean;
        }
        let calls: f64 = r.calls_per_sample.values().sum();
        println!(
            "  {:<12} {:>8.1} ± {:>5.1} samples/s  {:>8.0} tokens/s  {:>6.1} calls/sample  {:>5.2}x baseline",
            p.name,
            mean,
            sd,
            r.tokens_per_second * mean / r.samples_per_second.max(1e-9),
            calls,
            mean / base_rate
        );
    }
    let (ours, tiktoken) = tokenizer_rates();
    println!(
        "  tokenizer alone: {ours:.0} tokens/s (one thread); tiktoken's r50k_base on the same text: {tiktoken:.0} tokens/s ({:.2}x)",
        ours / tiktoken
    );
}
