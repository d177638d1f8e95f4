//! `cargo bench --bench kb_load`: the bridge from the engine to KATO's stores, timed.
//!
//! Trains the seed hierarchy (chunk sizes 5,7,9,11,13,17) over the 1,189 KJV chapters
//! (`../shared/corpus/kjv-chapters.jsonl`, env `KATOTUNE_KJV_CHAPTERS`) on the embedded
//! engine into a KB file, then loads that file into a real Redis and a real ClickHouse
//! engine started here (see `tests/kb_support`), and reports patterns/s loaded and the
//! whole corpus-to-served-KB time. The loaded digests must equal the run record's.

#[path = "../tests/kb_support/mod.rs"]
mod kb_support;

mod support;

use std::path::Path;
use std::time::Instant;

use katotune::engine::{self, EngineConfig};
use katotune::kb::location::{self, Location};
use katotune::kb::stores::load::{LoadMode, LoadOptions, DEFAULT_BATCH};
use katotune::kb::stores::Stores;
use katotune::profile::Profile;
use katotune::train::plan::TrainPlan;
use katotune::train::record::RunRecord;
use katotune::train::runner::{self, RunOptions, Target};

fn train(db: &Path, out: &Path) -> RunRecord {
    let mut p = Profile {
        name: "kjv-chapters".into(),
        ..Profile::default()
    };
    p.training.dataset.path = support::kjv_chapters();
    p.training.samples = None;
    p.training.node0_batch = 50;
    p.training.workers = 2;
    p.report.output_dir = out.to_path_buf();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let config = EngineConfig {
            db_path: Some(db.to_path_buf()),
            ..EngineConfig::default()
        };
        let engine = engine::start(config).await.expect("engine starts");
        let url = engine.url();
        let target = Target::embedded(url);
        let opts = RunOptions::quiet("bench", out.join("kjv.journal.json"));
        let record = runner::run(&TrainPlan::from(&p), &target, &opts)
            .await
            .expect("run starts");
        engine.shutdown().await;
        record
    })
}

fn main() {
    if !support::kjv_chapters().exists() {
        eprintln!(
            "kb_load bench skipped: {} is missing",
            support::kjv_chapters().display()
        );
        return;
    }
    let Some(stores) = kb_support::start("kb_load bench", "noeviction") else {
        return;
    };
    let out = tempfile::tempdir().expect("temp dir");
    let db = out.path().join("kjv.kato.db");
    let t0 = Instant::now();
    let record = train(&db, out.path());
    let train_s = t0.elapsed().as_secs_f64();
    let patterns: u64 = record.levels.iter().map(|l| l.kb.distinct).sum();
    println!(
        "kb_load bench: {} KJV chapters trained on the embedded engine in {train_s:.1} s ({patterns} distinct patterns over {} nodes)",
        record.samples.done,
        record.levels.len()
    );
    let opts = LoadOptions {
        mode: LoadMode::Fresh,
        resume: false,
        allow_eviction: false,
        batch: DEFAULT_BATCH,
        source: "bench".into(),
    };
    let cpu = |s: &kb_support::TestStores| {
        (
            kb_support::cpu_seconds(s.redis.pid()),
            kb_support::cpu_seconds(s.clickhouse.pid()),
        )
    };
    let cpu0 = cpu(&stores);
    let t1 = Instant::now();
    let report = location::load(
        &Location::EngineFile(db.clone()),
        &Location::Stores(stores.urls.clone()),
        "kato",
        &opts,
    )
    .expect("load");
    let load_s = t1.elapsed().as_secs_f64();
    let cpu1 = cpu(&stores);
    let loaded: u64 = report.written.values().map(|(p, _)| p).sum();
    let mut s = Stores::connect(&stores.urls).expect("stores");
    for level in &record.levels {
        let kb = katotune::kato::pattern::kb_id(&level.node, "kato");
        let st = s.stats(&kb).expect("status");
        assert_eq!(
            st.digest, level.kb.digest,
            "{kb}: loaded digest differs from the run's"
        );
    }
    println!(
        "  loaded {loaded} patterns into Redis + ClickHouse in {load_s:.2} s: {:.0} patterns/s (digests equal the run record's)",
        loaded as f64 / load_s
    );
    println!(
        "  split: preparing writes {:.2} s, ClickHouse inserts {:.2} s, Redis transactions {:.2} s",
        report.seconds.0, report.seconds.1, report.seconds.2
    );
    println!(
        "  corpus to a KB in KATO's stores: {:.1} s (train {train_s:.1} s + load {load_s:.1} s); the reference trainer: about 5.8 h",
        train_s + load_s
    );
    let redis_cpu = cpu1.0 - cpu0.0;
    println!(
        "  Redis: {} commands ({:.1} per pattern), server busy {redis_cpu:.1} s of {load_s:.1} s ({:.2} us per command); ClickHouse engine busy {:.1} s",
        report.redis_commands,
        report.redis_commands as f64 / loaded.max(1) as f64,
        redis_cpu * 1e6 / report.redis_commands.max(1) as f64,
        cpu1.1 - cpu0.1
    );
    println!(
        "  limit: Redis executes commands on one thread; KATO's layout needs about one command per (symbol, pattern) pair (symbol_to_patterns sets and symbol hashes), so patterns/s <= Redis commands/s / commands per pattern"
    );
}
