//! `cargo bench --bench kb_scale`: the engine's knowledge base as it grows, at 1,189,
//! 20,000 and 100,000 chapter-sized samples: peak memory of the engine process and
//! samples/s at the start and at the end of each run.
//!
//! Samples: the 1,189 KJV chapters (`../shared/corpus/kjv-chapters.jsonl`, env
//! `KATOTUNE_KJV_CHAPTERS`), then the same chapters with their clauses shuffled by a
//! seeded generator (chapter `i % 1189`, variation `i / 1189`), so every sample is a
//! distinct text of a chapter's size and vocabulary. Each size trains into a fresh KB
//! file: `katotune serve --db FILE` (the engine, default budget, or
//! `KATOTUNE_ENGINE_CACHE_MB` from this environment) and `katotune run phase1-batched`
//! against it as an external stack (6 levels, 50 node0 chunks per request, 2 workers,
//! checkpoints behind the barrier), both child processes of this one. Peak memory is
//! each process's `VmHWM` from `/proc/PID/status`; progress is the run's resume journal
//! (`samples_done`, rewritten at every checkpoint), read every 100 ms. The start rate
//! covers the first tenth of the samples after the first checkpoint, the end rate the
//! last tenth, each widened to the checkpoints around it.
//!
//! `KATOTUNE_KB_SCALE_SIZES=1189,20000` measures other sizes (comma-separated sample
//! counts). Without `--bench` (as `cargo test --benches` runs it) it trains 300 samples
//! only.

mod support;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHAPTERS: usize = 1_189;
const SIZES: [usize; 3] = [CHAPTERS, 20_000, 100_000];

/// A seeded xorshift64*: the same variations on every machine.
struct Shuffler(u64);

impl Shuffler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `text` cut after every `, ; : . ? !` followed by a space, the pieces shuffled.
fn variation(text: &str, chapter: usize, round: usize) -> String {
    let mut pieces = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b' ' && b",;:.?!".contains(&bytes[i - 1]) {
            pieces.push(&text[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&text[start..]);
    let mut rng = Shuffler(((chapter as u64) << 32 | round as u64) ^ 0x9e37_79b9_7f4a_7c15);
    for i in (1..pieces.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        pieces.swap(i, j);
    }
    pieces.join(" ")
}

/// Writes `n` samples to `out` as JSONL; returns how many texts are distinct.
fn generate(out: &Path, n: usize) -> usize {
    let file = std::fs::File::open(support::kjv_chapters()).expect("corpus opens");
    let chapters: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(&l.expect("line")).expect("json");
            row["text"].as_str().expect("text").to_owned()
        })
        .collect();
    assert_eq!(
        chapters.len(),
        CHAPTERS,
        "the shipped corpus has 1,189 chapters"
    );
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("corpus file"));
    let mut seen = HashSet::new();
    for i in 0..n {
        let (chapter, round) = (i % CHAPTERS, i / CHAPTERS);
        let text = match round {
            0 => chapters[chapter].clone(),
            _ => variation(&chapters[chapter], chapter, round),
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        seen.insert(h.finish());
        let row = serde_json::json!({"id": i, "text": text});
        writeln!(w, "{row}").expect("write corpus");
    }
    w.flush().expect("flush corpus");
    seen.len()
}

/// A `/proc/PID/status` field in kB (VmHWM, VmRSS).
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

fn katotune() -> Command {
    Command::new(env!("CARGO_BIN_EXE_katotune"))
}

/// `katotune serve` on `port` with `db`, once it accepts connections.
fn serve(db: &Path, port: u16) -> Child {
    let child = katotune()
        .args(["serve", "--port", &port.to_string(), "--db"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("katotune serve starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `katotune run phase1-batched` on `samples` of `corpus` against the engine at `port`.
fn run(corpus: &Path, samples: usize, port: u16, out: &Path) -> Child {
    let set = |cmd: &mut Command, value: String| {
        cmd.arg("--set").arg(value);
    };
    let mut cmd = katotune();
    cmd.args(["run", "phase1-batched", "-q"]);
    set(
        &mut cmd,
        format!("training.dataset.path={}", corpus.display()),
    );
    set(&mut cmd, format!("training.samples={samples}"));
    set(&mut cmd, "training.workers=2".into());
    set(&mut cmd, "stack.backend=external".into());
    set(&mut cmd, format!("stack.url=http://127.0.0.1:{port}"));
    set(&mut cmd, format!("report.output_dir={}", out.display()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("katotune run starts")
}

/// What one size measured.
struct Measured {
    samples: usize,
    wall: f64,
    start_rate: f64,
    end_rate: f64,
    engine_kb: u64,
    trainer_kb: u64,
    file_bytes: u64,
}

/// Samples/s between the last observation at or before `from` and the first at or past
/// `to` (observations are `(seconds, samples done)`): the window widened to the
/// checkpoints around it, since samples count as done only at checkpoints, which may be
/// seconds apart.
fn rate(progress: &[(f64, u64)], from: u64, to: u64) -> f64 {
    let before = progress.iter().rev().find(|(_, d)| *d <= from).copied();
    let after = progress.iter().find(|(_, d)| *d >= to).copied();
    match (before.or(progress.first().copied()), after) {
        (Some((t0, d0)), Some((t1, d1))) if t1 > t0 => (d1 - d0) as f64 / (t1 - t0),
        _ => f64::NAN,
    }
}

fn measure(corpus: &Path, samples: usize, dir: &Path) -> Measured {
    let db = dir.join(format!("kb-{samples}.db"));
    let out = dir.join(format!("out-{samples}"));
    let port = free_port();
    let mut engine = serve(&db, port);
    let started = Instant::now();
    let mut trainer = run(corpus, samples, port, &out);
    let journal = out.join("phase1-batched.journal.json");
    let (engine_pid, trainer_pid) = (engine.id(), trainer.id());
    let mut progress: Vec<(f64, u64)> = Vec::new();
    let mut trainer_kb = 0;
    let status = loop {
        trainer_kb = proc_kb(trainer_pid, "VmHWM:").unwrap_or(trainer_kb);
        if let Ok(j) = katotune::train::journal::Journal::load(&journal) {
            if progress.last().is_none_or(|(_, d)| *d != j.samples_done) {
                progress.push((started.elapsed().as_secs_f64(), j.samples_done));
            }
        }
        if let Some(status) = trainer.try_wait().expect("wait for the run") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = started.elapsed().as_secs_f64();
    assert!(status.success(), "katotune run failed: {status}");
    progress.push((wall, samples as u64));
    let engine_kb = proc_kb(engine_pid, "VmHWM:").expect("engine alive");
    let _ = Command::new("kill")
        .args(["-TERM", &engine_pid.to_string()])
        .status();
    let _ = engine.wait();
    let file_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let tenth = samples as u64 / 10;
    let first = progress
        .iter()
        .map(|(_, d)| *d)
        .find(|d| *d > 0)
        .unwrap_or(0);
    Measured {
        samples,
        wall,
        start_rate: rate(&progress, first, first + tenth),
        end_rate: rate(&progress, samples as u64 - tenth, samples as u64),
        engine_kb,
        trainer_kb,
        file_bytes,
    }
}

fn main() {
    let chapters = support::kjv_chapters();
    if !chapters.exists() {
        eprintln!("kb_scale bench skipped: {} is missing", chapters.display());
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("KATOTUNE_KB_SCALE_SIZES") {
        Ok(list) if full => list
            .split(',')
            .map(|n| {
                n.trim().parse().expect(
                    "KATOTUNE_KB_SCALE_SIZES: comma-separated sample counts, e.g. 1189,20000",
                )
            })
            .collect(),
        _ if full => SIZES.to_vec(),
        _ => vec![300],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus = dir.path().join("samples.jsonl");
    let largest = *sizes.iter().max().unwrap_or(&0);
    let distinct = generate(&corpus, largest);
    println!(
        "kb_scale bench: {largest} chapter-sized samples ({distinct} distinct texts), 6 levels, node0_batch 50, 2 workers; engine `katotune serve --db` with KATOTUNE_ENGINE_CACHE_MB={}",
        std::env::var("KATOTUNE_ENGINE_CACHE_MB").unwrap_or_else(|_| "256 (default)".into())
    );
    println!("| samples | wall s | samples/s start | samples/s end | end/start | engine peak RSS | trainer peak RSS | KB file |");
    println!("|---|---|---|---|---|---|---|---|");
    for samples in sizes {
        let m = measure(&corpus, samples, dir.path());
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {} MB | {} MB | {} MB |",
            m.samples,
            m.wall,
            m.start_rate,
            m.end_rate,
            m.end_rate / m.start_rate,
            m.engine_kb / 1024,
            m.trainer_kb / 1024,
            m.file_bytes / 1_000_000
        );
    }
    println!("  engine peak RSS: VmHWM of `katotune serve`; trainer: VmHWM of `katotune run` (it reads the run's digests from the engine at the end, `durability.digests_from_kb`)");
    println!("  limit: two cores for trainer and engine; past the page cache each commit writes every B-tree leaf page its learns touched (journal, then file): one per learn at worst, fewer the more learns a commit holds");
}
