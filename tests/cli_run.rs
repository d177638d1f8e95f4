//! `katotune run` as a user runs it: exit codes, messages and the files it leaves.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

fn run(out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1")
        .args(["run", "quick", "--set"])
        .arg(format!("report.output_dir={}", out.display()))
        .args(extra);
    cmd.assert()
}

fn record(out: &Path) -> Value {
    let file = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().contains("journal")
        })
        .expect("a run record");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn corpus(dir: &Path, lines: &[&str]) -> String {
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    format!("training.dataset.path={}", path.display())
}

const GOOD: &str = r#"{"text": "In the beginning God created the heaven and the earth, and the earth was without form."}"#;

#[test]
fn the_shipped_quick_profile_trains_and_writes_a_record() {
    let out = tempfile::tempdir().unwrap();
    run(out.path(), &[])
        .success()
        .stderr(predicate::str::contains("quick completed: 20 samples"));
    let r = record(out.path());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["samples"]["done"], 20);
    assert_eq!(r["levels"].as_array().unwrap().len(), 3);
    assert!(r["levels"][1]["kb"]["learns"].as_u64().unwrap() > 0);
}

#[test]
fn a_line_that_is_not_json_fails_the_run_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let set = corpus(dir.path(), &[GOOD, "{not json", GOOD]);
    run(&dir.path().join("out"), &["--set", &set])
        .code(2)
        .stderr(predicate::str::contains("corpus.jsonl:2"))
        .stderr(predicate::str::contains("on_bad_sample: skip"));
}

#[test]
fn bad_rows_are_skipped_and_listed_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let set = corpus(
        dir.path(),
        &[GOOD, "{not json", r#"{"title": "no text"}"#, GOOD],
    );
    let out = dir.path().join("out");
    run(&out, &["--set", &set, "--on-bad-sample", "skip"]).success();
    let r = record(&out);
    assert_eq!(r["samples"]["done"], 2);
    let skipped = r["samples"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert!(skipped[1]["reason"]
        .as_str()
        .unwrap()
        .contains("no `text` field"));
}

#[test]
fn invalid_utf8_in_the_corpus_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"\n{\"text\": \"caf\xe9 au lait with enough characters\"}\n");
    std::fs::write(&path, bytes).unwrap();
    run(
        &dir.path().join("out"),
        &[
            "--set",
            &format!("training.dataset.path={}", path.display()),
        ],
    )
    .code(2)
    .stderr(predicate::str::contains("corpus.jsonl:2"))
    .stderr(predicate::str::contains("UTF-8"));
}

#[test]
fn an_empty_or_missing_corpus_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = corpus(dir.path(), &[]);
    run(&dir.path().join("out"), &["--set", &empty])
        .code(2)
        .stderr(predicate::str::contains("empty"));
    run(
        &dir.path().join("out"),
        &["--set", "training.dataset.path=nowhere.jsonl"],
    )
    .code(2)
    .stderr(predicate::str::contains("nowhere.jsonl does not exist"));
}

#[test]
fn an_earlier_knowledge_base_is_never_overwritten_silently() {
    let out = tempfile::tempdir().unwrap();
    let persistent = ["--set", "stack.ephemeral=false"];
    run(out.path(), &persistent).success();
    run(out.path(), &persistent)
        .code(2)
        .stderr(predicate::str::contains("already holds a knowledge base"))
        .stderr(predicate::str::contains("--resume"));
    run(out.path(), &[&persistent[..], &["--fresh"]].concat()).success();
}

#[test]
fn resume_without_a_journal_says_there_is_nothing_to_resume() {
    let out = tempfile::tempdir().unwrap();
    run(out.path(), &["--resume", "--set", "stack.ephemeral=false"])
        .code(2)
        .stderr(predicate::str::contains("nothing to resume"));
    // Whatever the refused resume left (a KB file with nothing learned in it) does not
    // block a plain run, which would otherwise send the user back to --resume.
    run(out.path(), &["--set", "stack.ephemeral=false"]).success();
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes_the_job() {
    stops_cleanly_on("-INT");
}

/// SIGTERM is what `kill`, `docker stop` and Kubernetes send: the same clean stop.
#[test]
fn sigterm_stops_cleanly_like_ctrl_c() {
    stops_cleanly_on("-TERM");
}

fn stops_cleanly_on(signal: &str) {
    let out = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("katotune");
    // The shipped 100 chapters ten times: at the baseline's rate (about 150 samples/s
    // on a quiet 2-core machine) the run lasts several seconds, so the signal below
    // lands mid-run on a machine several times faster too (100 samples once finished
    // before it, in 0.64 s).
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/kjv-100.jsonl"))
            .unwrap();
    let corpus = out.path().join("kjv-1000.jsonl");
    std::fs::write(&corpus, shipped.repeat(10)).unwrap();
    let args = [
        "run",
        "baseline",
        "--samples",
        "1000",
        "--set",
        &format!("report.output_dir={}", out.path().display()),
        "--set",
        &format!("training.dataset.path={}", corpus.display()),
    ];
    let child = std::process::Command::new(&bin)
        .args(args)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let killed = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("INTERRUPTED"), "{stderr}");
    let first = record(out.path());
    assert_eq!(first["status"], "interrupted");
    let done = first["samples"]["done"].as_u64().unwrap();
    assert!(done < 1000, "stopped mid-run");
    // The segmentation block describes the samples the record counts as done, as the
    // record's own token count does: not zeros, not the samples read ahead.
    let tokens = first["tokens"].as_u64().unwrap();
    assert!(tokens > 0, "{first}");
    assert_eq!(
        first["segmentation"]["tokens"].as_u64(),
        Some(tokens),
        "{first}"
    );
    assert!(out.path().join("baseline.journal.json").exists());
    for f in std::fs::read_dir(out.path()).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().contains("baseline-") {
            std::fs::remove_file(p).unwrap();
        }
    }
    Command::cargo_bin("katotune")
        .unwrap()
        .args(args)
        .arg("--resume")
        .assert()
        .success()
        // The session's sample count and the whole KB's learns are told apart.
        .stderr(predicate::str::contains(
            "the whole knowledge base, every session of this run included:",
        ));
    let second = record(out.path());
    assert_eq!(second["status"], "completed");
    assert_eq!(done + second["samples"]["done"].as_u64().unwrap(), 1000);
}

#[test]
fn run_and_resume_agree_on_what_to_do_with_an_earlier_knowledge_base() {
    let out = tempfile::tempdir().unwrap();
    let persistent = ["--set", "stack.ephemeral=false"];
    run(out.path(), &persistent).success();
    let journal = out.path().join("quick.journal.json");
    let rows = out.path().join("quick.journal.rows.log");
    // Only the row log left (as after a kill before the first journal write): resumable.
    std::fs::remove_file(&journal).unwrap();
    run(out.path(), &persistent)
        .code(2)
        .stderr(predicate::str::contains("--resume"));
    run(out.path(), &[&persistent[..], &["--resume"]].concat()).success();
    // Neither journal nor row log: both say --fresh, neither says --resume.
    std::fs::remove_file(&journal).unwrap();
    std::fs::remove_file(&rows).unwrap();
    run(out.path(), &persistent)
        .code(2)
        .stderr(predicate::str::contains("--fresh"))
        .stderr(predicate::str::contains("cannot be continued"));
    run(out.path(), &[&persistent[..], &["--resume"]].concat())
        .code(2)
        .stderr(predicate::str::contains("nothing to resume"))
        .stderr(predicate::str::contains("--fresh"));
}

#[test]
fn each_kb_file_has_its_own_journal_so_resume_neither_skips_nor_repeats() {
    let out = tempfile::tempdir().unwrap();
    let go = |file: &str, more: &[&str]| {
        let kb = format!("stack.kb_file={}", out.path().join(file).display());
        let mut args = vec!["--set", "stack.ephemeral=false", "--set", kb.as_str()];
        args.extend_from_slice(more);
        run(out.path(), &args)
    };
    go("a.db", &["--samples", "5"]).success();
    // Another KB of the same profile in between must not move a.db's progress.
    go("b.db", &["--samples", "3"]).success();
    go("a.db", &["--samples", "8", "--resume"]).success();
    go("c.db", &["--samples", "8"]).success();
    Command::cargo_bin("katotune")
        .unwrap()
        .args(["kb", "diff"])
        .arg(out.path().join("a.db"))
        .arg(out.path().join("c.db"))
        .assert()
        .code(0);
    // A KB that never ran has nothing to resume, whatever other KBs of the profile did.
    go("d.db", &["--resume"])
        .code(2)
        .stderr(predicate::str::contains("nothing to resume"));
}

#[test]
fn a_run_refused_by_another_runs_lock_exits_in_use_naming_it() {
    let out = tempfile::tempdir().unwrap();
    let db = out.path().join("held.db");
    let kb_file = format!("stack.kb_file={}", db.display());
    let args = ["--set", "stack.ephemeral=false", "--set", &kb_file];
    // This test process plays the other run: it holds the KB's lock.
    let lock = katotune::lock::lock_path(&db);
    let held = katotune::lock::RunLock::acquire(&lock, "knowledge base").unwrap();
    let pid = format!("pid {}", std::process::id());
    let assert = run(out.path(), &args).code(katotune::exit::IN_USE);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains(&pid), "{stderr}");
    assert!(
        stderr.contains("wait for it to finish or stop it"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("is in use").count(),
        1,
        "said once: {stderr}"
    );
    // The resume journal's lock (`<kb file>.journal.json`): the same refusal.
    drop(held);
    let journal = katotune::lock::lock_path(&out.path().join("held.db.journal.json"));
    let _held = katotune::lock::RunLock::acquire(&journal, "resume journal").unwrap();
    run(out.path(), &args)
        .code(katotune::exit::IN_USE)
        .stderr(predicate::str::contains(&pid));
}

/// An engine setting that cannot be used is bad input (exit 2) naming the variable, its
/// unit and the default, whether it reaches the engine through the profile's
/// `stack.env` or the environment of `katotune serve`; nothing trains.
#[test]
fn an_unusable_engine_budget_is_bad_input_on_both_paths() {
    let out = tempfile::tempdir().unwrap();
    let said = "KATOTUNE_ENGINE_CACHE_MB=\"abc\" is invalid: must be a whole number of MiB";
    run(
        out.path(),
        &["--set", "stack.env.KATOTUNE_ENGINE_CACHE_MB=abc"],
    )
    .code(2)
    .stderr(predicate::str::contains(said).and(predicate::str::contains("default 256")));
    Command::cargo_bin("katotune")
        .unwrap()
        .env("KATOTUNE_ENGINE_CACHE_MB", "0")
        .args(["serve", "--port", "0", "--ephemeral"])
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "KATOTUNE_ENGINE_CACHE_MB=\"0\" is invalid",
        ));
}

/// On an external server that is a katotune engine, a fresh run refuses nodes of the
/// profile that already hold patterns (as on the embedded backend and on KATO's stores),
/// `--fresh` replaces exactly them, and `--resume` is how to continue. The KB read
/// after each run tells: a second plain run would have doubled every frequency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_an_external_engine_is_refused_and_fresh_replaces_only_its_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = katotune::engine::start(katotune::engine::EngineConfig {
        db_path: Some(dir.path().join("server.db")),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = engine.url();
    let frequencies = |node: &str| {
        let url = url.clone();
        let node = node.to_string();
        async move {
            let body: Value = reqwest::get(format!("{url}/katotune/kb/{node}"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let patterns = body["patterns"].as_array().unwrap().clone();
            patterns
                .iter()
                .map(|p| p["frequency"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let out = dir.path().join("runs");
    let attempt = |extra: &'static [&'static str]| {
        let (url, out) = (url.clone(), out.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::cargo_bin("katotune").unwrap();
            cmd.env("NO_COLOR", "1")
                .args(["run", "quick", "--samples", "3", "--backend", "external"])
                .arg("--set")
                .arg(format!("stack.url={url}"))
                .arg("--set")
                .arg(format!("report.output_dir={}", out.display()))
                .args(["--set", "training.node_prefix=mine"])
                .args(extra)
                .output()
                .unwrap()
        })
    };
    let first = attempt(&[]).await.unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let learned = frequencies("mine0").await;
    assert!(!learned.is_empty());
    let second = attempt(&[]).await.unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("already holds data for mine0")
            && stderr.contains("--resume")
            && stderr.contains("--fresh"),
        "{stderr}"
    );
    assert_eq!(frequencies("mine0").await, learned, "nothing was trained");
    let fresh = attempt(&["--fresh"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&fresh.stderr);
    assert_eq!(fresh.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--fresh: removed node mine0"), "{stderr}");
    assert_eq!(
        frequencies("mine0").await,
        learned,
        "replaced, not added to"
    );
    engine.shutdown().await;
}

#[test]
fn a_run_into_a_kb_file_says_how_long_its_checkpoints_held_the_workers() {
    let out = tempfile::tempdir().unwrap();
    let stderr = run(out.path(), &["--set", "stack.ephemeral=false"])
        .success()
        .get_output()
        .stderr
        .clone();
    let printed = String::from_utf8_lossy(&stderr);
    let record = record(out.path());
    let durability = &record["durability"];
    assert_eq!(durability["guaranteed"], true, "{durability}");
    let checkpoints = durability["checkpoints"].as_u64().unwrap();
    assert!(
        checkpoints >= 1,
        "the last samples are made durable: {durability}"
    );
    let waited = durability["checkpoint_wait_seconds"].as_f64().unwrap();
    let wall = record["wall_seconds"].as_f64().unwrap();
    assert!(
        waited > 0.0 && waited <= wall,
        "{waited} s of a {wall} s run"
    );
    let noun = if checkpoints == 1 {
        "checkpoint"
    } else {
        "checkpoints"
    };
    assert!(
        printed.contains(&format!("{checkpoints} {noun}: the workers waited")),
        "{printed}"
    );
    // A run in memory has no barrier: no checkpoints, and no line about them.
    let memory = tempfile::tempdir().unwrap();
    let stdout = run(memory.path(), &[])
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(!String::from_utf8_lossy(&stdout).contains("checkpoints:"));
    assert_eq!(record_checkpoints(memory.path()), 0);
}

fn record_checkpoints(out: &Path) -> u64 {
    record(out)["durability"]["checkpoints"].as_u64().unwrap()
}
