//! The profile commands as a user runs them: exit codes and the messages they print.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn katotune() -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env_remove("KATOTUNE_TRAINING__WORKERS")
        .env("NO_COLOR", "1");
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn shipped_profiles_all_validate() {
    let mut cmd = katotune();
    cmd.args(["profiles", "validate"]);
    for entry in std::fs::read_dir("profiles").unwrap() {
        cmd.arg(entry.unwrap().path());
    }
    cmd.assert().success().stdout(predicate::str::contains(
        "ok    profiles/phase3-parallel.yaml",
    ));
}

#[test]
fn pool_size_200_is_refused_with_field_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        "inherits: baseline\nstack:\n  tuning:\n    connection_pool_size: 200\n",
    );
    katotune()
        .args(["profiles", "validate", &f])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "stack.tuning.connection_pool_size",
        ))
        .stdout(predicate::str::contains("1-100"))
        .stdout(predicate::str::contains(":4:"));
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yaml",
        "inherits: baseline\ntraining:\n  chunk_size: [5, 7]\n  workers: lots\nstack:\n  tuning:\n    request_timeout: 500s\n",
    );
    katotune()
        .args(["profiles", "validate", &f])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("did you mean `chunk_sizes`"))
        .stdout(predicate::str::contains("training.workers"))
        .stdout(predicate::str::contains("`lots` is not allowed here"));
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "bad.yaml", "training:\n  workers: [1\n");
    katotune()
        .args(["profiles", "show", &f])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.yaml:2:"))
        .stderr(predicate::str::contains("malformed YAML"));
}

#[test]
fn invalid_utf8_profile_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin.yaml");
    std::fs::write(&path, b"description: caf\xe9\n").unwrap();
    katotune()
        .args(["profiles", "show", path.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not valid UTF-8"));
}

#[test]
fn inheritance_cycles_and_unknown_parents_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", "inherits: b\n");
    write(dir.path(), "b.yaml", "inherits: a\n");
    katotune()
        .args(["profiles", "show", &a])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("inheritance cycle"));
    let o = write(dir.path(), "o.yaml", "inherits: nowhere\n");
    katotune()
        .args(["profiles", "show", &o])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "inherits `nowhere`, which does not exist",
        ));
}

#[test]
fn missing_profile_and_missing_dataset_say_so() {
    katotune()
        .args(["profiles", "show", "no-such-profile"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not found"))
        .stderr(predicate::str::contains("baseline"));
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "d.yaml",
        "inherits: baseline\ntraining:\n  dataset:\n    path: nowhere/x.jsonl\n",
    );
    katotune()
        .args(["profiles", "validate", &f])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("nowhere/x.jsonl does not exist"));
}

#[test]
fn explain_shows_inherited_values_and_their_sources() {
    katotune()
        .args([
            "profiles",
            "show",
            "phase3-parallel",
            "--explain",
            "--node0-batch",
            "25",
        ])
        .env("KATOTUNE_TRAINING__SAMPLES", "7")
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(
                r"stack.tuning.connection_pool_size\s+50\s+profiles/phase2-tuned.yaml",
            )
            .unwrap(),
        )
        .stdout(
            predicate::str::is_match(r"training.workers\s+4\s+profiles/phase3-parallel.yaml")
                .unwrap(),
        )
        .stdout(
            predicate::str::is_match(r"training.node0_batch\s+25\s+flag --node0-batch").unwrap(),
        )
        .stdout(
            predicate::str::is_match(r"training.samples\s+7\s+KATOTUNE_TRAINING__SAMPLES").unwrap(),
        )
        .stdout(
            predicate::str::is_match(
                r"training.chunk_sizes\s+\[5,7,9,11,13,17\]\s+profiles/baseline.yaml",
            )
            .unwrap(),
        );
}

#[test]
fn ignored_knobs_warn_once_on_a_real_kato_target() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "k.yaml",
        "inherits: docker-kato\nstack:\n  tuning:\n    batch_size: 10000\n",
    );
    let out = katotune()
        .args(["profiles", "validate", &f])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("KATO_BATCH_SIZE").count(), 1, "{text}");
    assert!(text.contains("training.node0_batch"), "{text}");
}

#[test]
fn render_prints_the_tuned_kato_stack_and_masks_secrets() {
    katotune()
        .args([
            "render",
            "phase2-tuned",
            "--set",
            "stack.env.CLICKHOUSE_PASSWORD=hunter2",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("CONNECTION_POOL_SIZE: \"50\""))
        .stdout(predicate::str::contains("KATO_BATCH_SIZE: \"10000\""))
        .stdout(predicate::str::contains("REQUEST_TIMEOUT: \"120\""))
        .stdout(predicate::str::contains("REDIS_ENABLED: \"true\""))
        .stdout(predicate::str::contains(
            "io.katotune.stack: katotune-phase2-tuned",
        ))
        .stdout(predicate::str::contains("host_ip: \"127.0.0.1\""))
        .stdout(predicate::str::contains("hunter2").not());
    katotune()
        .args([
            "render",
            "phase2-tuned",
            "--output",
            "compose",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"condition\": \"service_healthy\"",
        ));
}

#[test]
fn bad_set_flag_is_bad_input() {
    katotune()
        .args(["profiles", "show", "baseline", "--set", "nonsense"])
        .assert()
        .code(2);
}

#[test]
fn a_local_profile_inherits_the_shipped_profile_of_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let own = "inherits: baseline\ntraining:\n  workers: 3\n";
    write(dir.path(), "baseline.yaml", own);
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    write(&dir.path().join("profiles"), "baseline.yaml", own);
    for name in ["./baseline.yaml", "baseline.yaml", "baseline"] {
        let out = katotune()
            .current_dir(dir.path())
            .args(["profiles", "show", name, "--explain"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8(out).unwrap();
        let line = |key: &str| {
            let found = text.lines().find(|l| l.starts_with(&format!("{key} ")));
            found
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        // The file's own value, over the shipped parent's values.
        assert_eq!(line("training.workers")[1], "3", "{name}: {text}");
        assert!(line("training.workers")[2].ends_with("baseline.yaml"));
        assert_eq!(
            line("training.node0_batch")[1..],
            ["1", "shipped:baseline"],
            "{name}: {text}"
        );
    }
    // A profile with no shipped namesake still names itself as searched, not a cycle.
    write(dir.path(), "mine.yaml", "inherits: mine\n");
    katotune()
        .current_dir(dir.path())
        .args(["profiles", "show", "mine.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mine.yaml (the profile itself)"))
        .stderr(predicate::str::contains("cycle").not());
}

#[test]
fn render_of_a_profile_that_never_uses_docker_says_so() {
    katotune()
        .args(["render", "baseline"])
        .assert()
        .success()
        .stdout(predicate::str::contains("io.katotune.stack: katotune-baseline"))
        .stderr(predicate::str::contains(
            "profile baseline uses the embedded backend, so `run` and `compare` never start this docker stack",
        ));
    katotune()
        .args(["render", "docker-kato"])
        .assert()
        .success()
        .stderr(predicate::str::contains("never start").not());
}
