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

/// The binary under test: `CARGO_BIN_EXE_katotune` from the environment when set (a
/// copy kept aside while others rebuild the shared target dir), else Cargo's.
fn katotune() -> Command {
    let path = std::env::var_os("CARGO_BIN_EXE_katotune").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_katotune")),
        PathBuf::from,
    );
    Command::new(path)
}

fn compare(out: &Path, profiles: &[&str], extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = katotune();
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
    let args = with(&[&QUICK, &["--export-json", export.to_str().unwrap()]]);
    compare(dir.path(), &[&one, &batched], &strs(&args))
        .success()
        .stdout(predicate::str::contains("same KB · engine"));
    let c = json(&export);
    assert_eq!(c["schema_version"], 2);
    assert_eq!(c["profiles"][1]["correctness"]["status"], "same");
    // The KBs compared are those read back from the engine after each run.
    let read = &c["profiles"][1]["correctness"]["read_back"];
    assert_eq!(read["source"], "engine", "{read}");
    assert_eq!(read["mismatches"], serde_json::json!([]));

    let md = dir.path().join("flagged.md");
    let args = with(&[&QUICK, &["--export-markdown", md.to_str().unwrap()]]);
    compare(dir.path(), &[&one, &batched, &other], &strs(&args))
        .code(5)
        .stdout(predicate::str::contains("DIFFERS"))
        .stderr(predicate::str::contains("KB DIFFERS other-chunks"));
    assert!(std::fs::read_to_string(&md).unwrap().contains("node0"));
    compare(
        dir.path(),
        &[&one, &other],
        &["--allow-kb-diff", "--runs", "1", "--min-time", "0s"],
    )
    .success();
}

/// Few, short runs for tests that only check what is reported, not how fast.
const QUICK: [&str; 4] = ["--runs", "1", "--min-time", "0s"];

/// Enough runs for the gate's t-test: at least 4 and a second of training each side,
/// each run long enough (over the gate's 0.5 s) for its speed to be judged at all:
/// 600 samples of [`gated_corpus`] per run (200 lasted 0.47 s on a quiet machine: too
/// close to the limit, and such a run was once judged inconclusive).
const GATED: [&str; 6] = ["--runs", "4", "--min-time", "1s", "--samples", "600"];

/// `--set` of a 600-sample corpus for gated runs: the shipped 100 chapters six times
/// (repeats only raise frequencies, the same on every run), so no run ends early for
/// want of samples.
fn gated_corpus(dir: &Path) -> [String; 2] {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/kjv-100.jsonl"))
            .unwrap();
    let path = dir.join("kjv-600.jsonl");
    std::fs::write(&path, shipped.repeat(6)).unwrap();
    [
        "--set".to_string(),
        format!("training.dataset.path={}", path.display()),
    ]
}

/// The gate threshold for these tests: 20 %, above what a test machine running other
/// tests at once swings between two identical profiles, far below the slowdown of a
/// one-chunk-per-request profile (two to five times slower).
const THRESHOLD: [&str; 2] = ["--threshold", "20%"];

fn with(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn identical_profiles_pass_the_gate_run_after_run() {
    let dir = tempfile::tempdir().unwrap();
    let [_, batched, _] = profiles(dir.path());
    let corpus = gated_corpus(dir.path());
    let corpus = strs(&corpus);
    let base = dir.path().join("base.json");
    let args = with(&[&GATED, &corpus, &["--export-json", base.to_str().unwrap()]]);
    compare(dir.path(), &[&batched], &strs(&args)).success();
    for round in 0..3 {
        let today = dir.path().join(format!("today{round}.json"));
        let args = with(&[
            &GATED,
            &corpus,
            &THRESHOLD,
            &["--baseline", base.to_str().unwrap()],
            &["--export-json", today.to_str().unwrap()],
        ]);
        compare(dir.path(), &[&batched], &strs(&args))
            .success()
            .stdout(predicate::str::contains("pass: batched"))
            .stdout(predicate::str::contains("Welch p"));
        let c = json(&today);
        let verdict = &c["profiles"][0]["verdict"];
        assert_eq!(verdict["status"], "pass", "round {round}: {verdict}");
        assert!(verdict["runs"][0].as_u64().unwrap() >= 4);
        assert!(verdict["welch"]["p_less"].is_number());
    }
}

#[test]
fn a_really_slowed_profile_fails_the_gate_with_its_p_value() {
    let dir = tempfile::tempdir().unwrap();
    let [_, batched, _] = profiles(dir.path());
    let corpus = gated_corpus(dir.path());
    let corpus = strs(&corpus);
    let base = dir.path().join("base.json");
    let args = with(&[&GATED, &corpus, &["--export-json", base.to_str().unwrap()]]);
    compare(dir.path(), &[&batched], &strs(&args)).success();
    // The same name, now one node0 chunk per request and one worker: slow for real.
    let slowed_dir = dir.path().join("slowed");
    std::fs::create_dir(&slowed_dir).unwrap();
    let slowed = slowed_dir.join("batched.yaml");
    std::fs::write(
        &slowed,
        "inherits: baseline\ntraining:\n  samples: 12\n  chunk_sizes: [5, 7, 9]\n  node0_batch: 1\n  workers: 1\n",
    )
    .unwrap();
    let today = dir.path().join("today.json");
    let args = with(&[
        &GATED,
        &corpus,
        &THRESHOLD,
        &["--baseline", base.to_str().unwrap()],
        &["--export-json", today.to_str().unwrap()],
    ]);
    compare(dir.path(), &[slowed.to_str().unwrap()], &strs(&args))
        .code(3)
        .stderr(predicate::str::contains("REGRESSION batched"))
        .stderr(predicate::str::contains("Welch p"));
    let verdict = json(&today)["profiles"][0]["verdict"].clone();
    assert_eq!(verdict["status"], "regressed");
    assert!(
        verdict["speed_change"].as_f64().unwrap() < -0.2,
        "{verdict}"
    );
    assert!(
        verdict["welch"]["p_less"].as_f64().unwrap() < 0.05,
        "{verdict}"
    );
}

#[test]
fn runs_too_short_or_on_other_samples_are_inconclusive_not_judged() {
    let dir = tempfile::tempdir().unwrap();
    let [one, _, _] = profiles(dir.path());
    let short = ["--runs", "3", "--min-time", "0s"];
    let base = dir.path().join("base.json");
    let args = with(&[&short, &["--export-json", base.to_str().unwrap()]]);
    compare(dir.path(), &[&one], &strs(&args)).success();
    // 12 samples per run last a small fraction of a second: too short to time.
    let today = dir.path().join("today.json");
    let args = with(&[
        &short,
        &["--baseline", base.to_str().unwrap()],
        &["--export-json", today.to_str().unwrap()],
    ]);
    compare(dir.path(), &[&one], &strs(&args))
        .success()
        .stdout(predicate::str::contains("inconclusive: one-by-one"));
    let verdict = json(&today)["profiles"][0]["verdict"].clone();
    assert_eq!(verdict["status"], "inconclusive", "{verdict}");
    assert!(
        verdict["unjudged"][0]
            .as_str()
            .unwrap()
            .contains("under 0.5 s"),
        "{verdict}"
    );
    // Other samples than the baseline's: no digest is called changed.
    let args = with(&[
        &short,
        &["--samples", "10"],
        &["--baseline", base.to_str().unwrap()],
        &["--export-json", today.to_str().unwrap()],
    ]);
    compare(dir.path(), &[&one], &strs(&args)).success();
    let verdict = json(&today)["profiles"][0]["verdict"].clone();
    assert_eq!(verdict["status"], "inconclusive", "{verdict}");
    assert_eq!(verdict["changed_nodes"], serde_json::json!([]), "{verdict}");
    assert!(
        verdict["unjudged"][0]
            .as_str()
            .unwrap()
            .contains("trained 10 samples each where the baseline's trained 12"),
        "{verdict}"
    );
    // As many samples, but other rows: not a changed KB either; and -q still says it.
    let args = with(&[
        &short,
        &["--skip", "10", "-q"],
        &["--baseline", base.to_str().unwrap()],
        &["--export-json", today.to_str().unwrap()],
    ]);
    compare(dir.path(), &[&one], &strs(&args))
        .success()
        .stderr(predicate::str::contains("INCONCLUSIVE one-by-one"))
        .stderr(predicate::str::contains("training.skip 10 vs 0"));
    let verdict = json(&today)["profiles"][0]["verdict"].clone();
    assert_eq!(verdict["status"], "inconclusive", "{verdict}");
    assert_eq!(verdict["changed_nodes"], serde_json::json!([]), "{verdict}");
}

#[test]
fn a_changed_knowledge_base_fails_the_gate_even_at_full_speed() {
    let dir = tempfile::tempdir().unwrap();
    let [one, _, _] = profiles(dir.path());
    let base = dir.path().join("base.json");
    let args = with(&[&QUICK, &["--export-json", base.to_str().unwrap()]]);
    compare(dir.path(), &[&one], &strs(&args)).success();
    let mut changed = json(&base);
    changed["profiles"][0]["nodes"][1]["digest"] = Value::from("0".repeat(40));
    let changed_path = dir.path().join("changed.json");
    std::fs::write(&changed_path, serde_json::to_string(&changed).unwrap()).unwrap();
    let args = with(&[&QUICK, &["--baseline", changed_path.to_str().unwrap()]]);
    compare(dir.path(), &[&one], &strs(&args))
        .code(3)
        .stderr(predicate::str::contains("node1"))
        // One run a side: the speed could not be tested, and the output says so.
        .stdout(predicate::str::contains("not tested").or(predicate::str::contains("1 vs 1")));
}

#[test]
fn runs_continue_until_the_least_count_and_time_are_met_after_whole_warmup_runs() {
    let dir = tempfile::tempdir().unwrap();
    let [one, _, _] = profiles(dir.path());
    let out = dir.path().join("c.json");
    compare(
        dir.path(),
        &[&one],
        &[
            "--runs",
            "2",
            "--min-time",
            "0s",
            "--warmup",
            "1",
            "--export-json",
            out.to_str().unwrap(),
        ],
    )
    .success()
    .stderr(predicate::str::contains("warm-up run 1/1"));
    let c = json(&out);
    assert_eq!(c["profiles"][0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(c["profiles"][0]["samples_per_second"]["n"], 2);
    // A minimum time far beyond one run asks for more runs, up to --max-runs.
    compare(
        dir.path(),
        &[&one],
        &[
            "--runs",
            "1",
            "--min-time",
            "1h",
            "--max-runs",
            "3",
            "--export-json",
            out.to_str().unwrap(),
        ],
    )
    .success()
    .stderr(predicate::str::contains("--max-runs 3 reached after"));
    let c = json(&out);
    assert_eq!(c["profiles"][0]["runs"].as_array().unwrap().len(), 3);
    assert_eq!(c["profiles"][0]["max_runs_reached"]["max_runs"], 3);
    let warnings = c["profiles"][0]["warnings"].to_string();
    assert!(
        warnings.contains("short of the 3600.00 s asked (--min-time, report.min_time)"),
        "{warnings}"
    );
}

/// On a stack shared by every run (`--reuse-stack`), each run and its warm-up samples
/// train nodes of their own: the KB read back after each run is exactly what that run
/// learned (a run on the previous runs' nodes would read back their learns too).
#[test]
fn each_run_on_a_shared_stack_reads_back_exactly_its_own_kb() {
    let dir = tempfile::tempdir().unwrap();
    let [one, batched, _] = profiles(dir.path());
    let out = dir.path().join("shared.json");
    compare(
        dir.path(),
        &[&one, &batched],
        &[
            "--runs",
            "2",
            "--min-time",
            "0s",
            "--reuse-stack",
            "--warmup-samples",
            "3",
            "--export-json",
            out.to_str().unwrap(),
        ],
    )
    .success()
    .stderr(predicate::str::contains("each equal to the client's tally"));
    let c = json(&out);
    for p in c["profiles"].as_array().unwrap() {
        let read = &p["correctness"]["read_back"];
        assert_eq!(read["source"], "engine", "{read}");
        assert_eq!(read["mismatches"], serde_json::json!([]), "{}", p["name"]);
        assert_eq!(p["correctness"]["repeats_agree"], true, "{}", p["name"]);
        assert_eq!(
            p["nodes"][0]["node"], "node0",
            "records name the profile's nodes"
        );
    }
    assert_eq!(c["profiles"][1]["correctness"]["status"], "same");
    // The records written carry the KB check and the latency histograms, as their
    // schema says.
    let schema = json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/run-record.schema.json"));
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let records: Vec<PathBuf> = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("record.json"))
        .collect();
    assert_eq!(records.len(), 4, "two runs of two profiles: {records:?}");
    for path in records {
        let record = json(&path);
        let errors: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        assert_eq!(record["kb_check"]["source"], "engine");
        let latency = &record["calls"]["latency"];
        let counts = latency["histogram"]["counts"].as_array().unwrap();
        let total: u64 = counts.iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(
            total,
            latency["samples"].as_u64().unwrap(),
            "every answered request is in a bucket"
        );
    }
}

#[test]
fn a_scan_over_workers_charts_one_point_per_value() {
    let dir = tempfile::tempdir().unwrap();
    let [_, batched, _] = profiles(dir.path());
    let html = dir.path().join("scan.html");
    let out = dir.path().join("scan.json");
    let args = with(&[
        &QUICK,
        &["--scan", "training.workers=1..2,4"],
        &["--export-html", html.to_str().unwrap()],
        &["--export-json", out.to_str().unwrap()],
    ]);
    compare(dir.path(), &[&batched], &strs(&args))
        .success()
        .stdout(predicate::str::contains("batched@workers=4"));
    let c = json(&out);
    assert_eq!(c["scan"]["setting"], "training.workers");
    assert_eq!(c["scan"]["values"], serde_json::json!(["1", "2", "4"]));
    let workers: Vec<u64> = c["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["resolved"]["training"]["workers"].as_u64().unwrap())
        .collect();
    assert_eq!(workers, [1, 2, 4], "each value really ran");
    let page = std::fs::read_to_string(&html).unwrap();
    let chart = &page[page.find("id=\"chart-scan\"").expect("a scan chart")..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert_eq!(
        chart.matches("class=\"point\"").count(),
        3,
        "one point per value"
    );
    assert!(page.contains("Scan of training.workers"));
    // The settings table says what varied and that it came from --scan.
    assert!(
        page.contains("--scan training.workers"),
        "the source of each value"
    );
    // Two profiles and a scan, or a fixed key: refused before training.
    let two = with(&[&QUICK, &["--scan", "training.workers=1,2"]]);
    compare(dir.path(), &[&batched, &batched], &strs(&two)).code(2);
    let fixed = with(&[&QUICK, &["--scan", "training.samples=1,2"]]);
    compare(dir.path(), &[&batched], &strs(&fixed))
        .code(2)
        .stderr(predicate::str::contains("cannot be scanned"));
}

#[test]
fn report_rerenders_saved_results_without_training() {
    let dir = tempfile::tempdir().unwrap();
    let [one, batched, _] = profiles(dir.path());
    let saved = dir.path().join("saved.json");
    let args = with(&[&QUICK, &["--export-json", saved.to_str().unwrap()]]);
    compare(dir.path(), &[&one, &batched], &strs(&args)).success();
    let html = dir.path().join("again.html");
    let mut cmd = katotune();
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
    let mut cmd = katotune();
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
    compare(dir.path(), &[&one], &["--confidence", "40%"])
        .code(2)
        .stderr(predicate::str::contains("--confidence"));
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

#[test]
fn a_node_one_profile_lacks_is_absent_not_a_different_kb() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, sizes: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        let text = format!("inherits: quick\ntraining:\n  samples: 3\n  chunk_sizes: {sizes}\n");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    // node3 learns one pattern per sample (the sample's last names); node4 above it
    // only ever gets one name per sample, a pattern KATO never stores: idle.
    let four = write("four", "[5, 7, 9, 5000]");
    let three = write("three", "[5, 7, 9]");
    let five = write("five", "[5, 7, 9, 5000, 5000]");
    let out = dir.path().join("out");
    let once = ["--runs", "1", "--min-time", "0s"];
    let assert = compare(&out, &[&four, &five], &once).success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("same KB"), "{stdout}");
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
    compare(&out, &[&four, &three], &once)
        .code(katotune::exit::KB_MISMATCH)
        .stdout(predicate::str::contains("(node3 absent)"))
        .stdout(predicate::str::contains(
            "KB: three has no node3 (not in its hierarchy); four learned 3 names there",
        ));
}
