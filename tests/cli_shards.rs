//! Sharded training and exact merges as a user runs them: `run --shard I/N` on the
//! embedded engine, `kb merge` of the shards' KB files, and the merged KB checked
//! against one unsharded run of the same samples (`kb status --record`, `kb diff`).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn kt() -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// `katotune run quick` with its KB in a file under `out`, `samples` samples, and
/// `extra` flags (`--shard I/N`, `--resume`...); returns the run record and its path.
fn run_quick_at(out: &Path, samples: u64, extra: &[&str]) -> (Value, PathBuf) {
    let record = out.join(format!("record-{}.json", rand_word()));
    kt().args(["run", "quick", "--samples", &samples.to_string()])
        .args(["--set", "stack.ephemeral=false", "--set"])
        .arg(format!("report.output_dir={}", out.display()))
        .arg("--record")
        .arg(&record)
        .args(extra)
        .assert()
        .success();
    let value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    (value, record)
}

/// [`run_quick_at`], the record only.
fn run_quick(out: &Path, samples: u64, extra: &[&str]) -> Value {
    run_quick_at(out, samples, extra).0
}

fn rand_word() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The KB file `run --shard I/N` writes for the quick profile under `out`.
fn shard_kb(out: &Path, i: u32, n: u32) -> PathBuf {
    out.join(format!("quick.shard-{i}-of-{n}.kato.db"))
}

fn merge(inputs: &[PathBuf], output: &Path) -> assert_cmd::assert::Assert {
    kt().args(["kb", "merge"])
        .args(inputs)
        .arg("-o")
        .arg(output)
        .assert()
}

/// `kb status KB --record RECORD`: every KB matches the record (exit 0).
fn assert_matches_record(kb: &Path, record: &Path) {
    let out = kt()
        .args(["kb", "status"])
        .arg(kb)
        .arg("--record")
        .arg(record)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert_eq!(text.matches("matches the run record").count(), 3, "{text}");
}

#[test]
fn bad_shard_specs_and_unshardable_runs_exit_2_saying_what_is_allowed() {
    let out = tempfile::tempdir().unwrap();
    for bad in ["3/3", "0/0", "x/2"] {
        kt().args(["run", "quick", "--shard", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("0 <= I < N"))
            .stderr(predicate::str::contains(format!("`{bad}` is not a shard")));
    }
    kt().args([
        "run",
        "quick",
        "--shard",
        "0/2",
        "--backend",
        "docker",
        "--set",
    ])
    .arg(format!("report.output_dir={}", out.path().display()))
    .assert()
    .code(2)
    .stderr(predicate::str::contains("needs the embedded engine"))
    .stderr(predicate::str::contains("kb merge"));
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing was started"
    );
}

#[test]
fn shards_merge_to_the_unsharded_runs_digests_for_one_two_and_three_shards() {
    let out = tempfile::tempdir().unwrap();
    let (_, whole_record) = run_quick_at(&out.path().join("whole"), 10, &[]);
    for n in 1..=3u32 {
        let dir = out.path().join(format!("n{n}"));
        let mut done = Vec::new();
        for i in 0..n {
            let r = run_quick(&dir, 10, &["--shard", &format!("{i}/{n}")]);
            assert_eq!(r["shard"], serde_json::json!({"index": i, "count": n}));
            done.push(r["samples"]["done"].as_u64().unwrap());
        }
        assert_eq!(
            done.iter().sum::<u64>(),
            10,
            "every sample in one shard: {done:?}"
        );
        if n == 3 {
            assert_eq!(done, [4, 3, 3], "10 samples in 3 shards");
        }
        let merged = dir.join("merged.kato.db");
        let shards: Vec<PathBuf> = (0..n).map(|i| shard_kb(&dir, i, n)).collect();
        merge(&shards, &merged)
            .success()
            .stdout(predicate::str::contains(format!("merged {n} inputs")));
        assert_matches_record(&merged, &whole_record);
    }
}

#[test]
fn a_shard_resumes_its_own_share_and_the_merged_kb_continues_as_one_run() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    // Shard 1/3 stops at a cap of 4 samples (its share: sample 1), then resumes to 10
    // (samples 4 and 7); the others train their share of 10 at once.
    let first = run_quick(dir, 4, &["--shard", "1/3"]);
    assert_eq!(first["samples"]["done"], 1);
    let resumed = run_quick(dir, 10, &["--shard", "1/3", "--resume"]);
    assert_eq!(
        resumed["samples"]["done"], 2,
        "samples 4 and 7, nothing twice"
    );
    kt().args(["run", "quick", "--shard", "1/2", "--resume", "--set"])
        .arg(format!("report.output_dir={}", dir.display()))
        .args(["--set", "stack.ephemeral=false"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to resume for shard 1/2"))
        .stderr(predicate::str::contains("shard 1/3"));
    for i in [0, 2] {
        run_quick(dir, 10, &["--shard", &format!("{i}/3")]);
    }
    let merged = dir.join("merged.kato.db");
    let shards: Vec<PathBuf> = (0..3).map(|i| shard_kb(dir, i, 3)).collect();
    merge(&shards, &merged)
        .success()
        .stderr(predicate::str::contains("resume journal"));
    // The merged KB and its journal are the whole run's: an unsharded resume trains
    // samples 10 to 14 on it and ends where one run of 15 samples ends.
    let merged_set = format!("stack.kb_file={}", merged.display());
    run_quick(dir, 15, &["--resume", "--set", &merged_set]);
    let whole = dir.join("whole15.kato.db");
    run_quick(
        dir,
        15,
        &["--set", &format!("stack.kb_file={}", whole.display())],
    );
    kt().args(["kb", "diff"])
        .arg(&merged)
        .arg(&whole)
        .assert()
        .success()
        .stdout(predicate::str::contains("hold the same knowledge bases"));
}

#[test]
fn a_merge_never_replaces_a_kb_unless_told_and_leaves_nothing_when_refused() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    run_quick(dir, 4, &["--shard", "0/2"]);
    run_quick(dir, 4, &["--shard", "1/2"]);
    let shards = vec![shard_kb(dir, 0, 2), shard_kb(dir, 1, 2)];
    let merged = dir.join("merged.kato.db");
    merge(&shards, &merged).success();
    let before = std::fs::read(&merged).unwrap();
    merge(&shards[..1], &merged)
        .code(8)
        .stderr(predicate::str::contains("--overwrite"));
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        before,
        "the refused merge wrote nothing"
    );
    kt().args(["kb", "merge"])
        .arg(&shards[0])
        .arg("-o")
        .arg(&merged)
        .arg("--overwrite")
        .assert()
        .success()
        .stderr(predicate::str::contains("shard 1/2 is missing"));
    assert!(
        !dir.join("merged.kato.db.journal.json").exists(),
        "the replaced KB's journal went with it"
    );
    merge(&[dir.join("missing.kato.db")], &dir.join("x.kato.db"))
        .code(2)
        .stderr(predicate::str::contains("is not a file"));
}
