//! Profiles and flags in the user's words: YAML strings stay strings, errors say
//! what was written and what to do, `samples: all`, shipped profiles from anywhere.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn katotune() -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

fn profile(dir: &Path, yaml: &str) -> String {
    let path = dir.join("p.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

fn show(yaml: &str) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    let path = profile(dir.path(), yaml);
    katotune()
        .args(["profiles", "show", "--format", "json", &path])
        .assert()
}

fn shown(yaml: &str) -> serde_json::Value {
    let out = show(yaml).success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn plain_scalars_in_text_fields_stay_the_text_written() {
    let p = shown(
        "inherits: quick\nname: NO\ndescription: 1.10\nstack:\n  service_name: off\n  env: {MAX_PATTERN_LENGTH: 10}\ntraining:\n  node_prefix: no\n",
    );
    assert_eq!(p["name"], "NO");
    assert_eq!(p["description"], "1.10");
    assert_eq!(p["stack"]["service_name"], "off");
    assert_eq!(p["stack"]["env"]["MAX_PATTERN_LENGTH"], "10");
    assert_eq!(p["training"]["node_prefix"], "no");
}

#[test]
fn env_values_are_text_as_written_and_env_typos_get_a_suggestion() {
    let out = katotune()
        .env("KATOTUNE_STACK__ENV__MAX_PATTERN_LENGTH", "10")
        .env("KATOTUNE_DESCRIPTION", "1.10")
        .args(["profiles", "show", "--format", "json", "quick"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let p: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(p["stack"]["env"]["MAX_PATTERN_LENGTH"], "10");
    assert_eq!(p["description"], "1.10");
    katotune()
        .env("KATOTUNE_TRAINING__WOKRERS", "4")
        .args(["profiles", "show", "quick"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KATOTUNE_TRAINING__WOKRERS"))
        .stderr(predicate::str::contains("did you mean `workers`"));
}

#[test]
fn a_set_typo_gets_a_suggestion_and_an_empty_set_says_so() {
    katotune()
        .args(["profiles", "show", "quick", "--set", "training.wokrers=4"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean `workers`"));
    katotune()
        .args(["profiles", "show", "quick", "--set", "training.workers="])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--set training.workers= has no value",
        ))
        .stderr(predicate::str::contains("unit").not());
}

#[test]
fn wrong_values_say_what_was_written_and_what_is_allowed() {
    show("inherits: quick\ntraining:\n  workers: \"four\"\n")
        .code(2)
        .stderr(predicate::str::contains(
            "`four` is not allowed here: this takes a whole number",
        ))
        .stderr(predicate::str::contains("usize").not());
    show("training:\n  workers: 4\n  workers: 5\n")
        .code(2)
        .stderr(predicate::str::contains(
            "p.yaml:3:3: key `workers` appears twice",
        ))
        .stderr(predicate::str::contains("DuplicateKeyPolicy").not());
    show("training:\n\tworkers: 4\n")
        .code(2)
        .stderr(predicate::str::contains("replace the tab with spaces"));
    // A number where a word is expected gets the words, not the Rust enum's name.
    show("inherits: quick\nstack:\n  transport: 7\n")
        .code(2)
        .stderr(predicate::str::contains(
            "`7` is not allowed here: this takes one of auto, http",
        ))
        .stderr(predicate::str::contains("TransportChoice").not());
    show("inherits: quick\nreport:\n  formats: [json, 7]\n")
        .code(2)
        .stderr(predicate::str::contains(
            "`7` is not allowed here: this takes one of json",
        ))
        .stderr(predicate::str::contains("ReportFormat").not());
}

#[test]
fn samples_flag_explains_negative_and_accepts_all() {
    for args in [&["--samples=-1"][..], &["--samples", "-1"][..]] {
        katotune()
            .args(["profiles", "show", "quick"])
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("`-1` is not a number of samples"))
            .stderr(predicate::str::contains("invalid digit").not())
            .stderr(predicate::str::contains("-- -1").not());
    }
    // The same values through `--set` are quoted back with what is allowed.
    for (value, written) in [("-1", "`-1`"), ("1.5", "`1.5`"), ("true", "`true`")] {
        katotune()
            .args(["profiles", "show", "quick", "--set"])
            .arg(format!("training.samples={value}"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "{written} is not allowed here: this takes a whole number of samples"
            )))
            .stderr(predicate::str::contains("untagged enum").not());
    }
    let out = katotune()
        .args([
            "profiles",
            "show",
            "--format",
            "json",
            "quick",
            "--samples",
            "all",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let p: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(p["training"]["samples"].is_null(), "all = no cap");
    assert!(shown("inherits: quick\ntraining:\n  samples: all\n")["training"]["samples"].is_null());
}

#[test]
fn shipped_profiles_show_and_run_from_any_directory_and_name_the_cap() {
    let elsewhere = tempfile::tempdir().unwrap();
    let cache = elsewhere.path().join("cache");
    katotune()
        .current_dir(elsewhere.path())
        .args(["profiles", "show", "baseline"])
        .assert()
        .success();
    katotune()
        .current_dir(elsewhere.path())
        .env("XDG_CACHE_HOME", &cache)
        .args(["run", "quick"])
        .assert()
        .success()
        .stderr(predicate::str::contains("quick completed: 20 samples"))
        .stderr(predicate::str::contains(
            "stopped at the sample cap: training.samples = 20 (set by shipped:quick)",
        ));
}

#[test]
fn kb_status_of_an_external_profile_says_how_to_read_either_kind_of_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = profile(
        dir.path(),
        "inherits: quick\nstack:\n  backend: external\n  url: http://127.0.0.1:9\n",
    );
    katotune()
        .args(["kb", "status", &path])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--redis URL --clickhouse URL"))
        .stderr(predicate::str::contains(
            "katotune kb status FILE --record RECORD",
        ));
}

#[test]
fn a_mistyped_profile_name_gets_a_suggestion() {
    katotune()
        .args(["profiles", "show", "quik"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean `quick`?"));
    katotune()
        .args(["profiles", "show", "zzzzzz"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean").not());
}
