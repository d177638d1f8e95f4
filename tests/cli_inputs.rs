//! Inputs and conventions users expect from `katotune`: compressed and encoded
//! corpora, rows without text, runs with nothing to train, `-q`, closed pipes.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn katotune() -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// `katotune run quick` on `corpus`, records under `out`.
fn run(out: &Path, corpus: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    katotune()
        .args(["run", "quick", "--set"])
        .arg(format!("report.output_dir={}", out.display()))
        .arg("--set")
        .arg(format!("training.dataset.path={}", corpus.display()))
        .args(extra)
        .assert()
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

const GOOD: &str = r#"{"text": "In the beginning God created the heaven and the earth, and the earth was without form."}"#;

fn corpus_text() -> String {
    format!("{GOOD}\n{GOOD}\n{GOOD}\n")
}

#[test]
fn a_gzipped_corpus_trains_and_the_terminal_says_it_was_decompressed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(corpus_text().as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let out = dir.path().join("out");
    run(&out, &path, &[])
        .success()
        .stderr(predicate::str::contains(
            "gzip-compressed, decompressing while reading",
        ))
        .stderr(predicate::str::contains(
            "completed: 3 samples (0 filtered, 0 skipped",
        ));
    assert_eq!(record(&out)["samples"]["done"], 3);
}

#[test]
fn a_utf16_corpus_without_bom_is_decoded_not_trained_as_nul_riddled_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    let bytes: Vec<u8> = corpus_text()
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let out = dir.path().join("out");
    run(&out, &path, &[])
        .success()
        .stderr(predicate::str::contains(
            "UTF-16LE (NUL pattern, no byte order mark), decoding to UTF-8",
        ));
    assert_eq!(record(&out)["samples"]["done"], 3);
}

#[test]
fn a_binary_corpus_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    let mut bytes = b"PAR1".to_vec();
    bytes.extend((0u8..=255).cycle().take(10_000));
    std::fs::write(&path, bytes).unwrap();
    let out = dir.path().join("out");
    run(&out, &path, &[])
        .code(2)
        .stderr(predicate::str::contains("binary data, not text"))
        .stderr(predicate::str::contains("provisioning").not());
    assert!(!out.exists(), "nothing was started, so no record");
}

#[test]
fn a_null_text_row_says_it_has_no_text_and_how_to_skip_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, format!("{GOOD}\n{{\"text\": null}}\n")).unwrap();
    run(&dir.path().join("out"), &path, &[])
        .code(2)
        .stderr(predicate::str::contains(
            "corpus.jsonl:2: field `text` is null: this row has no text",
        ))
        .stderr(predicate::str::contains("on_bad_sample: skip"))
        .stderr(predicate::str::contains("text_field").not());
}

#[test]
fn a_run_with_every_row_filtered_reports_na_not_made_up_rates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, "{\"text\": \"short\"}\n{\"text\": \"tiny\"}\n").unwrap();
    let out = dir.path().join("out");
    run(&out, &path, &[])
        .success()
        .stderr(predicate::str::contains("0 samples (2 filtered"))
        .stderr(predicate::str::contains(
            "n/a samples/s, n/a tokens/s, n/a calls/sample",
        ));
    let r = record(&out);
    assert_eq!(r["calls_per_sample"], serde_json::json!({}), "{r}");
    // Said even under -q: a run that trained nothing is what a quiet script must log.
    run(&dir.path().join("quiet"), &path, &["-q"])
        .success()
        .stderr(predicate::str::contains(
            "NOTHING was trained: 2 rows were filtered out (training.filter",
        ));
}

#[test]
fn a_quiet_run_that_stops_on_a_bad_row_still_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, format!("{GOOD}\n{{\"text\": null}}\n")).unwrap();
    run(&dir.path().join("out"), &path, &["-q"])
        .code(2)
        .stderr(predicate::str::contains("corpus.jsonl:2"))
        .stderr(predicate::str::contains("this row has no text"));
}

#[test]
fn quiet_run_prints_nothing_but_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, corpus_text()).unwrap();
    let out = dir.path().join("out");
    run(&out, &path, &["-q"]).success().stderr("").stdout("");
    assert_eq!(record(&out)["samples"]["done"], 3);
}

/// Runs `args` with standard output closed before anything is read, as `| head`
/// does once it has its lines; returns the exit code and standard error.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let bin = assert_cmd::cargo::cargo_bin("katotune");
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    for args in [
        &["completions", "bash"][..],
        &["profiles", "list"][..],
        &["profiles", "show", "quick"][..],
        &["profiles", "knobs"][..],
    ] {
        let (code, stderr) = with_closed_stdout(args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_document_over_the_paragraph_cap_is_said_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.txt");
    let long = "and the earth was without form and void ".repeat(200);
    std::fs::write(&path, format!("{long}\n")).unwrap();
    run(
        &dir.path().join("out"),
        &path,
        &["--set", "training.paragraph_token_cap=50"],
    )
    .success()
    .stderr(predicate::str::contains("tokens were NOT trained"))
    .stderr(predicate::str::contains(
        "training.paragraph_token_cap (50)",
    ));
}

#[test]
fn resume_refuses_an_in_memory_kb_and_a_finished_run_has_nothing_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, corpus_text()).unwrap();
    let out = dir.path().join("out");
    run(&out, &path, &["--resume"])
        .code(2)
        .stderr(predicate::str::contains(
            "keeps it in memory (stack.ephemeral: true)",
        ));
    let persistent = ["--set", "stack.ephemeral=false"];
    run(&out, &path, &persistent).success();
    let records = std::fs::read_dir(&out).unwrap().count();
    run(&out, &path, &[&persistent[..], &["--resume"]].concat())
        .success()
        .stderr(predicate::str::contains("nothing to resume: the run in"))
        .stderr(predicate::str::contains(
            "already read the whole dataset (3 samples trained)",
        ))
        .stderr(predicate::str::contains("calls/sample").not());
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        records,
        "no new record"
    );
    run(
        &out,
        &path,
        &[&persistent[..], &["--resume", "--samples", "2"]].concat(),
    )
    .success()
    .stderr(predicate::str::contains("the training.samples cap (2)"));
    // Another dataset, shorter than what the journal read: refused as the run would
    // refuse it, never "nothing to resume" (exit 0).
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, format!("{GOOD}\n")).unwrap();
    run(&out, &other, &[&persistent[..], &["--resume"]].concat())
        .code(katotune::exit::BAD_INPUT)
        .stderr(predicate::str::contains("resuming would mix two trainings"))
        .stderr(predicate::str::contains("nothing to resume").not());
}

#[test]
fn run_writes_every_report_format_the_profile_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    std::fs::write(&path, corpus_text()).unwrap();
    let out = dir.path().join("out");
    run(
        &out,
        &path,
        &["--set", "report.formats=[json, csv, markdown]"],
    )
    .success()
    .stderr(predicate::str::contains("wrote csv: "))
    .stderr(predicate::str::contains("Csv").not());
    let mut extensions: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("quick-")
        })
        .map(|p| p.extension().unwrap().to_string_lossy().into_owned())
        .collect();
    extensions.sort();
    assert_eq!(extensions, ["csv", "json", "md"]);
}
