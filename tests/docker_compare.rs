//! `katotune compare` on the KATO-shaped docker stack (profile `docker-stores`, images
//! built here, katotune's engine in KATO's place): every run gets a disposable stack of
//! its own (`katotune-<profile>-cmp-<id>`, its own volumes), its KB is read back from
//! the engine that holds it (the stack's Redis and ClickHouse stay empty, and the
//! report says why), and afterwards nothing of those stacks is left, while the
//! profile's own stack, brought up before, keeps running untouched.
//!
//! Needs Docker, the test images and a static katotune (see tests/docker_stores.rs);
//! skips visibly without them, fails under CI.

mod docker_support;

use std::collections::HashMap;
use std::path::Path;

use assert_cmd::Command;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder};
use katotune::profile;
use katotune::stack::docker::DockerBackend;
use katotune::stack::plan::labels;
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

/// A profile on `docker-stores` with this test's engine image and a short training.
fn profile_file(dir: &Path, tag: &str) -> String {
    let path = dir.join(format!("compare-stores-{}.yaml", std::process::id()));
    let yaml = format!(
        "inherits: docker-stores\nstack:\n  images:\n    kato: {tag}\n    engine: {tag}\n\
         health:\n  timeout: 240s\ntraining:\n  samples: 4\n  chunk_sizes: [5, 7, 9]\n\
         report:\n  output_dir: {}\n",
        dir.join("out").display()
    );
    std::fs::write(&path, yaml).expect("write the test profile");
    path.display().to_string()
}

/// Every container (name to id) and volume carrying the profile's label, by stack.
async fn labelled(
    backend: &DockerBackend,
    profile: &str,
) -> (HashMap<String, Vec<String>>, HashMap<String, Vec<String>>) {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={profile}", labels::PROFILE)],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let mut containers: HashMap<String, Vec<String>> = HashMap::new();
    for c in backend
        .docker()
        .list_containers(Some(options))
        .await
        .unwrap()
    {
        let stack = c.labels.unwrap_or_default()[labels::STACK].clone();
        containers
            .entry(stack)
            .or_default()
            .push(c.id.unwrap_or_default());
    }
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let mut volumes: HashMap<String, Vec<String>> = HashMap::new();
    let listed = backend.docker().list_volumes(Some(options)).await.unwrap();
    for v in listed.volumes.unwrap_or_default() {
        let stack = v.labels.get(labels::STACK).cloned().unwrap_or_default();
        volumes.entry(stack).or_default().push(v.name);
    }
    for ids in containers.values_mut().chain(volumes.values_mut()) {
        ids.sort();
    }
    (containers, volumes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_gives_every_run_a_disposable_stack_and_reads_its_kb_back() {
    let Some((backend, binary)) = store_stack_prerequisites("compare on docker-stores").await
    else {
        return;
    };
    let tag = format!("katotune-engine:compare-{}", std::process::id());
    let _image = ImageGuard(tag.clone());
    katotune::stack::image::build_engine_image(backend.docker(), &binary, &tag)
        .await
        .expect("build the engine image");
    let dir = tempfile::tempdir().unwrap();
    let file = profile_file(dir.path(), &tag);
    let loaded = profile::load(&file, &[]).unwrap().profile;
    let own_stack = template::stack_name(&loaded);
    let _stack = StackGuard(vec![own_stack.clone()]);

    // The user's own stack of the profile, up before the comparison.
    let up = tokio::task::spawn_blocking({
        let file = file.clone();
        move || katotune(&["up", &file])
    })
    .await
    .unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", shown(&up));
    let before = labelled(&backend, &loaded.name).await;
    assert_eq!(before.0.keys().collect::<Vec<_>>(), [&own_stack]);

    let export = dir.path().join("compare.json");
    let out = tokio::task::spawn_blocking({
        let (file, export) = (file.clone(), export.display().to_string());
        move || {
            katotune(&[
                "compare",
                &file,
                "--runs",
                "2",
                "--min-time",
                "0s",
                "--export-json",
                &export,
            ])
        }
    })
    .await
    .unwrap();
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("-cmp-"),
        "each run names its own stack: {text}"
    );

    let c: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    let p = &c["profiles"][0];
    assert_eq!(p["runs"].as_array().unwrap().len(), 2);
    let read = &p["correctness"]["read_back"];
    assert_eq!(read["source"], "engine", "{read}");
    assert!(
        read["note"].as_str().unwrap().contains("in KATO's place"),
        "the report says why the stores are not read: {read}"
    );
    assert_eq!(read["mismatches"], serde_json::json!([]));
    assert_eq!(
        p["correctness"]["repeats_agree"], true,
        "each run started from an empty KB"
    );
    assert!(p["nodes"][0]["learns"].as_u64().unwrap() > 0);

    // Nothing of the runs' stacks is left; the user's stack is exactly as it was.
    let after = labelled(&backend, &loaded.name).await;
    assert_eq!(
        after, before,
        "only the profile's own stack remains, untouched"
    );
}
