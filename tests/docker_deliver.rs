//! `katotune run PROFILE --into TARGET` end to end: the engine trains, the KB is loaded
//! into a KATO-shaped docker stack's Redis and ClickHouse (images built here from Debian
//! packages; katotune's engine image stands in for KATO, which has no image), read back,
//! and its per-node digests equal the run record's; the stack keeps serving, a second
//! delivery into the same nodes is refused before training, and `deliver.mode: replace`
//! starts the nodes over. (An evicting Redis is refused by the same check as `kb load`'s:
//! tests/kb_stores.rs.)
//!
//! Needs Docker, the test images and a static katotune (see tests/docker_stores.rs);
//! skips visibly without them, fails under CI.

mod docker_support;

use std::path::Path;

use assert_cmd::Command;
use katotune::profile;
use katotune::stack::template;
use serde_json::Value;

use docker_support::{store_stack_prerequisites, ImageGuard, StackGuard};

fn katotune(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("katotune")
        .unwrap()
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run katotune")
}

fn shown(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The target (docker-stores on this test's engine image) and a small training profile
/// whose KB lives in a file.
fn profiles(dir: &Path, tag: &str) -> (String, String) {
    let out = dir.join("out");
    let target = dir.join(format!("deliver-target-{}.yaml", std::process::id()));
    std::fs::write(
        &target,
        format!(
            "inherits: docker-stores\nstack:\n  images:\n    kato: {tag}\n    engine: {tag}\n\
             health:\n  timeout: 240s\nreport:\n  output_dir: {}\n",
            out.display()
        ),
    )
    .unwrap();
    let train = dir.join("deliver-train.yaml");
    std::fs::write(
        &train,
        format!(
            "inherits: quick\nstack:\n  ephemeral: false\ntraining:\n  samples: 12\n\
             report:\n  output_dir: {}\n",
            out.display()
        ),
    )
    .unwrap();
    (target.display().to_string(), train.display().to_string())
}

/// Runs katotune and expects a refusal (exit 8) whose output says `says`.
fn refused(args: &[&str], says: &str) {
    let out = katotune(args);
    let text = shown(&out);
    assert_eq!(
        out.status.code(),
        Some(katotune::exit::KB_REFUSED),
        "{text}"
    );
    assert!(text.contains(says), "{args:?} should say `{says}`: {text}");
}

/// The run record `run --format json` printed.
fn record(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", shown(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_into_a_stack_loads_the_kb_its_stores_hold_exactly_and_refuses_to_mix() {
    let Some((backend, binary)) = store_stack_prerequisites("run --into").await else {
        return;
    };
    let tag = format!("katotune-engine:deliver-{}", std::process::id());
    let _image = ImageGuard(tag.clone());
    katotune::stack::image::build_engine_image(backend.docker(), &binary, &tag)
        .await
        .expect("build the engine image");
    let dir = tempfile::tempdir().unwrap();
    let (target, train) = profiles(dir.path(), &tag);
    let loaded = profile::load(&target, &[]).unwrap().profile;
    let _stack = StackGuard(vec![template::stack_name(&loaded)]);

    // A delivery that must succeed: its output, with the run record it printed.
    let deliver = |more: &[&str]| {
        let mut args = vec!["--format", "json", "run", &train, "--into", &target];
        args.extend_from_slice(&["--allow-eviction", "--fresh"]);
        args.extend_from_slice(more);
        let out = katotune(&args);
        assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
        let rec = record(&out);
        (out, rec)
    };
    let (delivered, rec) = deliver(&[]);
    let delivery = &rec["delivery"];
    assert_eq!(delivery["verified"], Value::Bool(true), "{delivery}");
    for level in rec["levels"].as_array().unwrap() {
        let kb = format!("{}_kato", level["node"].as_str().unwrap());
        assert_eq!(
            delivery["digests"][&kb], level["kb"]["digest"],
            "{kb}: the stores hold what the run learned"
        );
        assert!(
            delivery["patterns"][&kb].as_u64().unwrap() > 0,
            "{kb} loaded"
        );
    }
    assert!(
        delivery["digests"].get("katotune_probe_kato").is_none(),
        "the engine's readiness probe KB is not delivered"
    );

    // The stack kept serving: kb status reads its stores and agrees with the record.
    let record_file = dir.path().join("delivered.json");
    std::fs::write(&record_file, &delivered.stdout).unwrap();
    let status = katotune(&[
        "kb",
        "status",
        &target,
        "--record",
        record_file.to_str().unwrap(),
    ]);
    assert_eq!(status.status.code(), Some(0), "{}", shown(&status));
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(text.matches("matches the run record").count(), 3, "{text}");

    // Delivering again into the same nodes is refused before training.
    let again = [
        "run",
        &train,
        "--into",
        &target,
        "--allow-eviction",
        "--fresh",
    ];
    refused(&again, "nothing was trained");

    // replace: the nodes start over and hold exactly one run's KB again.
    let (_, again) = deliver(&["--set", "deliver.mode=replace"]);
    assert_eq!(again["delivery"]["digests"], delivery["digests"]);
    assert_eq!(again["delivery"]["verified"], Value::Bool(true));
}
