//! The training Jobs of `render --output kubernetes`, carried out here as their pods
//! would: every shard's `katotune run` with `$(JOB_COMPLETION_INDEX)` put in, in a
//! working directory of its own like the pods' `/work` (the shipped corpus read from
//! the cache, as in a pod), then the final Job's merge and load into a real Redis and
//! the ClickHouse engine standing in for the stack's Services. The stores must then
//! hold exactly what one unsharded run of the same profile learns.

mod kb_support;

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn katotune(cache: &Path) -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1").env("XDG_CACHE_HOME", cache);
    cmd
}

/// The `args` of container `name` in the rendered object `kind`/`object`.
fn args(items: &[Value], object: &str, container: &str) -> Vec<String> {
    let job = items
        .iter()
        .find(|i| i["kind"] == "Job" && i["metadata"]["name"] == object)
        .unwrap_or_else(|| panic!("no Job {object}"));
    let pod = &job["spec"]["template"]["spec"];
    let all = pod["containers"]
        .as_array()
        .into_iter()
        .chain(pod["initContainers"].as_array())
        .flatten();
    let found = all
        .into_iter()
        .find(|c| c["name"] == container)
        .unwrap_or_else(|| panic!("no container {container} in {object}"));
    serde_json::from_value(found["args"].clone()).unwrap()
}

#[test]
fn the_jobs_train_every_shard_merge_and_load_what_one_run_learns() {
    let test = "the_jobs_train_every_shard_merge_and_load_what_one_run_learns";
    let Some(stores) = kb_support::start(test, "noeviction") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (work, cache) = (dir.path().join("work"), dir.path().join("cache"));
    std::fs::create_dir_all(&work).unwrap();
    let out = katotune(&cache)
        .args([
            "--format",
            "json",
            "render",
            "quick",
            "--output",
            "kubernetes",
        ])
        .args(["--shards", "3", "--samples", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap().clone();
    let profile = items
        .iter()
        .find(|i| i["metadata"]["name"] == "katotune-profile")
        .map(|cm| cm["data"]["profile.yaml"].as_str().unwrap().to_string())
        .expect("the profile ConfigMap");
    let profile_file = dir.path().join("profile.yaml");
    std::fs::write(&profile_file, profile).unwrap();
    let pod_args = |args: Vec<String>, index: Option<u32>| -> Vec<String> {
        args.into_iter()
            .map(|a| a.replace("/etc/katotune/profile.yaml", profile_file.to_str().unwrap()))
            .map(|a| match index {
                Some(i) => a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()),
                None => a,
            })
            .map(|a| a.replace("redis://redis:6379", &stores.urls.redis))
            .map(|a| a.replace("http://clickhouse:8123", &stores.urls.clickhouse))
            .collect()
    };
    for index in 0..3 {
        let train = pod_args(args(&items, "train", "train"), Some(index));
        let run = katotune(&cache)
            .current_dir(&work)
            .args(&train)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "shard {index}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    for step in ["merge", "load"] {
        let step_args = pod_args(args(&items, "merge-load", step), None);
        let ran = katotune(&cache)
            .current_dir(&work)
            .args(&step_args)
            .output()
            .unwrap();
        assert!(
            ran.status.success(),
            "{step}: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
    }
    let whole = dir.path().join("whole");
    let record = whole.join("record.json");
    let run = katotune(&cache)
        .current_dir(dir.path())
        .args(["run", "quick", "--samples", "10", "--record"])
        .arg(&record)
        .arg("--set")
        .arg(format!("report.output_dir={}", whole.display()))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let status = katotune(&cache)
        .args(["kb", "status", "stores", "--redis", &stores.urls.redis])
        .args(["--clickhouse", &stores.urls.clickhouse, "--record"])
        .arg(&record)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(said.matches("matches the run record").count(), 3, "{said}");
}
