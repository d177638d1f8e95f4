//! `katotune compare` and `katotune report` as a user runs them.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Profiles under test: unbatched, batched with workers, and other chunk sizes.
fn profiles(dir: &Path) -> [String; 3] {
    let write = |name: &str, text: &str| {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let common = "training:\n  samples: 12\n";
    [
        write("one-by-one", &format!("inherits: baseline\n{common}  chunk_sizes: [5, 7, 9]\n")),
        write("batched", &format!("inherits: baseline\n{common}  chunk_sizes: [5, 7, 9]\n  node0_batch: 50\n  workers: 3\n")),
        write("other-chunks", &format!("inherits: baseline\n{common}  chunk_sizes: [4, 7, 9]\n")),
    ]
}

fn compare(out: &Path, profiles: &[&str], extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1")
        .arg("compare")
        .args(profiles)
        .args(["--set", &format!("report.output_dir={}", out.display())])
        .args(extra);
    cmd.assert()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn batched_and_unbatched_agree_and_other_chunk_sizes_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let [one, batched, other] = profiles(dir.path());
    let export = dir.path().join("agree.json");
    compare(
        dir.path(),
        &[&one, &batched],
        &["--export-json", export.to_str().unwrap()],
    )
    .success()
    .stdout(predicate::str::contains("same KB"));
    let c = json(&export);
    assert_eq!(c["schema_version"], 1);
    assert_eq!(c["profiles"][1]["correctness"]["status"], "same");

    let md = dir.path().join("flagged.md");
    compare(
        dir.path(),
        &[&one, &batched, &other],
        &["--export-markdown", md.to_str().unwrap()],
    )
    .code(5)
    .stdout(predicate::str::contains("DIFFERS"))
    .stderr(predicate::str::contains("KB DIFFERS other-chunks"));
    assert!(std::fs::read_to_string(&md).unwrap().contains("node0"));
    compare(dir.path(), &[&one, &other], &["--allow-kb-diff"]).success();
}

#[test]
fn the_regression_gate_has_its_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let [one, batched, _] = profiles(dir.path());
    let base = dir.path().join("base.json");
    compare(
        dir.path(),
        &[&one, &batched],
        &["--export-json", base.to_str().unwrap()],
    )
    .success();
    // Within a generous threshold: passes.
    compare(
        dir.path(),
        &[&one, &batched],
        &["--baseline", base.to_str().unwrap(), "--threshold", "95%"],
    )
    .success();
    // A baseline claiming 1000 times the speed: a regression.
    let mut fast = json(&base);
    for p in fast["profiles"].as_array_mut().unwrap() {
        let mean = p["samples_per_second"]["mean"].as_f64().unwrap();
        p["samples_per_second"]["mean"] = Value::from(mean * 1000.0);
    }
    let fast_path = dir.path().join("fast.json");
    std::fs::write(&fast_path, serde_json::to_string(&fast).unwrap()).unwrap();
    compare(
        dir.path(),
        &[&one, &batched],
        &["--baseline", fast_path.to_str().unwrap()],
    )
    .code(3)
    .stderr(predicate::str::contains("REGRESSION one-by-one"));
    // A baseline whose knowledge base differs: a regression too, even at full speed.
    let mut changed = json(&base);
    changed["profiles"][0]["nodes"][1]["digest"] = Value::from("0".repeat(40));
    let changed_path = dir.path().join("changed.json");
    std::fs::write(&changed_path, serde_json::to_string(&changed).unwrap()).unwrap();
    compare(
        dir.path(),
        &[&one],
        &[
            "--baseline",
            changed_path.to_str().unwrap(),
            "--threshold",
            "95%",
        ],
    )
    .code(3)
    .stderr(predicate::str::contains("node1"));
}

#[test]
fn report_rerenders_saved_results_without_training() {
    let dir = tempfile::tempdir().unwrap();
    let [one, batched, _] = profiles(dir.path());
    let saved = dir.path().join("saved.json");
    compare(
        dir.path(),
        &[&one, &batched],
        &["--export-json", saved.to_str().unwrap()],
    )
    .success();
    let html = dir.path().join("again.html");
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.args([
        "report",
        saved.to_str().unwrap(),
        "--export-html",
        html.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    // From the run records compare saved along the way.
    let records: Vec<PathBuf> = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("record.json"))
        .collect();
    assert!(records.len() >= 2);
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.arg("report")
        .args(&records)
        .assert()
        .success()
        .stdout(predicate::str::contains("batched"));
}

#[test]
fn bad_compare_input_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let [one, _, _] = profiles(dir.path());
    let not_json = dir.path().join("x.json");
    std::fs::write(&not_json, "not json").unwrap();
    compare(
        dir.path(),
        &[&one],
        &["--baseline", not_json.to_str().unwrap()],
    )
    .code(2)
    .stderr(predicate::str::contains("x.json"));
    compare(dir.path(), &[&one], &["--threshold", "150%"]).code(2);
    compare(dir.path(), &[&one, "no-such-profile"], &[]).code(2);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
