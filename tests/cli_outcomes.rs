//! How a run ends, as a script sees it: wrong pattern names stop it (exit 1), samples
//! at risk get exit 6, old records still read, and no secret reaches any output.

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

/// The run record in `out` (the first JSON file with `levels`).
fn record(out: &Path) -> Value {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).ok()?).ok())
        .find(|v| v.get("levels").is_some())
        .expect("a run record")
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

#[test]
fn a_record_from_before_typed_outcomes_still_reports() {
    let out = tempfile::tempdir().unwrap();
    let dir = format!("report.output_dir={}", out.path().display());
    Command::cargo_bin("katotune")
        .unwrap()
        .args(["run", "quick", "--samples", "3", "--set", &dir])
        .assert()
        .success();
    let mut old = record(out.path());
    old["stop_reason"] = Value::from("bad data at corpus.jsonl:2: not JSON");
    old.as_object_mut().unwrap().remove("kb_trust");
    let file = out.path().join("old.json");
    std::fs::write(&file, serde_json::to_vec(&old).unwrap()).unwrap();
    let csv = out.path().join("old.csv");
    Command::cargo_bin("katotune")
        .unwrap()
        .args([
            "report",
            file.to_str().unwrap(),
            "--export-csv",
            csv.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert!(std::fs::read_to_string(csv).unwrap().contains("quick"));
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
