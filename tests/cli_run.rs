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
    run(out.path(), &["--resume"])
        .code(2)
        .stderr(predicate::str::contains("nothing to resume"));
}

#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes_the_job() {
    let out = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("katotune");
    let args = [
        "run",
        "baseline",
        "--set",
        &format!("report.output_dir={}", out.path().display()),
    ];
    let child = std::process::Command::new(&bin)
        .args(args)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
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
    assert!(done < 100, "stopped mid-run");
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
        .success();
    let second = record(out.path());
    assert_eq!(second["status"], "completed");
    assert_eq!(done + second["samples"]["done"].as_u64().unwrap(), 100);
}

mod fake_kato;

use fake_kato::{FakeKato, Spoil, BASIC_AUTH};

/// Runs the binary off the async threads (the fake server lives on them).
async fn katotune(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::cargo_bin("katotune")
            .unwrap()
            .env("NO_COLOR", "1")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `run quick` against the fake server, its record in `out`.
async fn run_against(fake: &FakeKato, out: &Path) -> std::process::Output {
    let url = format!("stack.url=http://127.0.0.1:{}", fake.port);
    let dir = format!("report.output_dir={}", out.display());
    katotune(args(&[
        "run",
        "quick",
        "--backend",
        "external",
        "--set",
        &url,
        "--set",
        &dir,
    ]))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_names_a_pattern_differently_stops_the_run_naming_sample_node_and_names() {
    for spoil in [Spoil::WrongName, Spoil::NullName] {
        let fake = FakeKato::start(spoil).await;
        let out = tempfile::tempdir().unwrap();
        let o = run_against(&fake, out.path()).await;
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{spoil:?}: {stderr}");
        let (right, sent) = fake.swapped().expect("an answer was spoiled");
        let right = right.expect("the engine named the pattern");
        let r = record(out.path());
        assert_eq!(r["status"], "failed");
        assert_eq!(r["kb_trust"], "untrusted", "a script can tell");
        let reason = &r["stop_reason"];
        assert_eq!(reason["kind"], "wrong-name", "{reason}");
        assert_eq!(reason["expected"], right.as_str());
        assert_eq!(reason["got"].as_str(), sent.as_deref());
        let node = reason["node"].as_str().unwrap();
        let row = reason["row"].as_u64().unwrap();
        for needle in [
            format!("node {node}"),
            format!("(row {row})"),
            right.clone(),
            sent.clone().unwrap_or_else(|| "null".into()),
            "SORT_SYMBOLS".into(),
            "another KATO version".into(),
        ] {
            assert!(
                stderr.contains(&needle),
                "{spoil:?}: `{needle}` not in {stderr}"
            );
        }
        fake.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_completes_with_a_sample_at_risk_has_its_own_exit_code() {
    let fake = FakeKato::start(Spoil::FailAfterApplying).await;
    let out = tempfile::tempdir().unwrap();
    let o = run_against(&fake, out.path()).await;
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(katotune::exit::SAMPLES_AT_RISK),
        "{stderr}"
    );
    assert_eq!(katotune::exit::SAMPLES_AT_RISK, 6);
    let r = record(out.path());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["kb_trust"], "verified");
    let at_risk = r["samples"]["at_risk"].as_array().unwrap();
    assert_eq!(at_risk.len(), 1);
    assert_eq!(r["samples"]["done"], 19, "every other sample trained");
    let row = at_risk[0]["row"].as_u64().unwrap();
    assert!(
        stderr.contains(&format!("1 samples at risk (rows {row})")),
        "{stderr}"
    );
    fake.stop().await;
}

const SECRETS: [&str; 4] = [
    "hunter2-secret",
    "s3cr3t-pw",
    "tok-abcdef-9",
    // The userinfo as a Basic auth header would carry it.
    "dXNlcjpzM2NyM3QtcHc",
];

fn assert_no_secret(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows `{secret}`:\n{text}");
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_env_and_url_reach_no_output_while_the_run_uses_them() {
    let fake = FakeKato::start(Spoil::Nothing).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let file = dir.path().join("secret.yaml");
    std::fs::write(
        &file,
        format!(
            "inherits: quick\nstack:\n  backend: external\n  url: http://user:s3cr3t-pw@127.0.0.1:{}\n  env:\n    CLICKHOUSE_PASSWORD: hunter2-secret\n    KATO_API_TOKEN: tok-abcdef-9\nreport:\n  output_dir: {}\n",
            fake.port,
            out.display()
        ),
    )
    .unwrap();
    let p = file.display().to_string();
    let e = |name: &str| out.join(name).display().to_string();
    let commands: Vec<(Vec<String>, Option<i32>)> = vec![
        (args(&["-v", "--format", "json", "run", &p]), Some(0)),
        (args(&["profiles", "show", &p]), Some(0)),
        (args(&["profiles", "show", &p, "--explain"]), Some(0)),
        (
            args(&["--format", "json", "profiles", "show", &p, "--explain"]),
            Some(0),
        ),
        (args(&["render", &p]), Some(0)),
        (args(&["render", &p, "--output", "compose"]), Some(0)),
        (
            args(&[
                "compare",
                &p,
                "--export-json",
                &e("c.json"),
                "--export-csv",
                &e("c.csv"),
                "--export-markdown",
                &e("c.md"),
                "--export-html",
                &e("c.html"),
            ]),
            Some(0),
        ),
        (
            args(&[
                "health",
                "--url",
                "http://user:s3cr3t-pw@127.0.0.1:9/",
                "--timeout",
                "1s",
            ]),
            None,
        ),
    ];
    for (command, code) in commands {
        let o = katotune(command.clone()).await;
        let shown = format!("{command:?}: {}", String::from_utf8_lossy(&o.stderr));
        if let Some(code) = code {
            assert_eq!(o.status.code(), Some(code), "{shown}");
        } else {
            assert!(!o.status.success(), "{shown}");
            assert!(shown.contains("user:***@127.0.0.1:9"), "{shown}");
        }
        assert_no_secret(&format!("stdout of {command:?}"), &o.stdout);
        assert_no_secret(&format!("stderr of {command:?}"), &o.stderr);
    }
    let files = files_under(&out);
    assert!(
        files.len() >= 6,
        "a record, a journal and four exports: {files:?}"
    );
    for f in &files {
        assert_no_secret(&f.display().to_string(), &std::fs::read(f).unwrap());
    }
    let r = record(&out);
    assert_eq!(r["status"], "completed");
    assert_eq!(
        r["profile"]["resolved"]["stack"]["env"]["CLICKHOUSE_PASSWORD"],
        "***"
    );
    assert!(r["backend"]["url"].as_str().unwrap().contains("user:***@"));
    assert!(
        fake.calls_with_auth() > 0,
        "the run sent the real password ({BASIC_AUTH})"
    );
    fake.stop().await;
}
