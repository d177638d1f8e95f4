//! `katotune render PROFILE --output kubernetes` as an operator meets it: the YAML
//! stream parses back, document by document, into the Kubernetes API types; every
//! Service and workload selects its own pods; every mount has its volume; the KATO
//! Deployment, the stores' StatefulSets and the training Jobs carry what the profile
//! says; secrets never appear; bad flags exit 2. Where PyPI's `kubernetes-validate`
//! is installed (`.ci/run` installs it), the stream is also checked against the
//! Kubernetes OpenAPI schemas of 1.33, 1.35 and 1.37 in strict mode.

use std::collections::BTreeMap;
use std::path::PathBuf;

use assert_cmd::Command;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, PodTemplateSpec, Service,
};
use katotune::profile::{self, FlagOverride, Profile};
use katotune::stack::kubernetes::{self, shard_kb_path, KubeOptions, Manifest};
use katotune::stack::template;
use serde_json::Value;

fn katotune() -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// The stdout of a successful `katotune render ... --output kubernetes ARGS`.
fn render(profile: &str, args: &[&str]) -> String {
    let out = katotune()
        .args(["render", profile, "--output", "kubernetes"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One parsed object of the stream.
enum Object {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    Claim(PersistentVolumeClaim),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    Job(Job),
}

/// Every document of the stream as (kind, name, raw, typed object): each one must
/// deserialize into the API type its `kind` names.
fn objects(yaml: &str) -> Vec<(String, String, Value, Object)> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml).expect("a YAML stream");
    docs.into_iter()
        .map(|doc| {
            let kind = doc["kind"].as_str().expect("a kind").to_string();
            let name = doc["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_string();
            let typed = |v: &Value| -> Object {
                let v = v.clone();
                let parsed = match kind.as_str() {
                    "Namespace" => serde_json::from_value(v).map(Object::Namespace),
                    "ConfigMap" => serde_json::from_value(v).map(Object::ConfigMap),
                    "PersistentVolumeClaim" => serde_json::from_value(v).map(Object::Claim),
                    "Service" => serde_json::from_value(v).map(Object::Service),
                    "StatefulSet" => serde_json::from_value(v).map(Object::StatefulSet),
                    "Deployment" => serde_json::from_value(v).map(Object::Deployment),
                    "Job" => serde_json::from_value(v).map(Object::Job),
                    other => panic!("unexpected kind {other}"),
                };
                parsed.unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
            };
            let object = typed(&doc);
            (kind, name, doc, object)
        })
        .collect()
}

fn find<'a>(all: &'a [(String, String, Value, Object)], kind: &str, name: &str) -> &'a Object {
    &all.iter()
        .find(|(k, n, _, _)| k == kind && n == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .3
}

fn pod_of(object: &Object) -> Option<&PodTemplateSpec> {
    match object {
        Object::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
        Object::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
        Object::Job(j) => j.spec.as_ref().map(|s| &s.template),
        _ => None,
    }
}

fn args_of(c: &Container) -> Vec<&str> {
    c.args.iter().flatten().map(String::as_str).collect()
}

fn with_replicas(name: &str, replicas: u32) -> Profile {
    let flag = FlagOverride {
        flag: "--set stack.replicas".into(),
        path: "stack.replicas".into(),
        value: replicas.into(),
    };
    profile::load(name, &[flag]).unwrap().profile
}

#[test]
fn the_stack_and_training_parse_back_as_kubernetes_objects() {
    let yaml = render(
        "docker-kato",
        &["--shards", "3", "--set", "stack.replicas=3"],
    );
    let all = objects(&yaml);
    let order: Vec<(&str, &str)> = all
        .iter()
        .map(|(k, n, _, _)| (k.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("Namespace", "katotune-docker-kato"),
            ("ConfigMap", "clickhouse-files"),
            ("Service", "clickhouse"),
            ("StatefulSet", "clickhouse"),
            ("ConfigMap", "redis-files"),
            ("Service", "redis"),
            ("StatefulSet", "redis"),
            ("Service", "kato"),
            ("Deployment", "kato"),
            ("ConfigMap", "katotune-profile"),
            ("PersistentVolumeClaim", "katotune-work"),
            ("Job", "train"),
            ("Job", "merge-load"),
        ]
    );
    for (kind, name, raw, _) in &all {
        let labels = &raw["metadata"]["labels"];
        assert_eq!(
            labels["io.katotune.stack"], "katotune-docker-kato",
            "{kind} {name}"
        );
        assert_eq!(
            labels["io.katotune.profile"], "docker-kato",
            "{kind} {name}"
        );
        if kind != "Namespace" {
            assert_eq!(
                raw["metadata"]["namespace"], "katotune-docker-kato",
                "{kind} {name}"
            );
        }
    }
    let Object::Deployment(kato) = find(&all, "Deployment", "kato") else {
        unreachable!()
    };
    let spec = kato.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3), "stack.replicas");
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("kato:latest"));
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some("/health"));
    }
    let env: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    let plan = template::render(&with_replicas("docker-kato", 3), "t").unwrap();
    let docker_env: BTreeMap<&str, &str> = plan.api_containers()[0]
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env, docker_env,
        "the same environment the docker backend sets"
    );
    let Object::Service(svc) = find(&all, "Service", "kato") else {
        unreachable!()
    };
    let svc = svc.spec.as_ref().unwrap();
    assert_eq!(svc.session_affinity.as_deref(), Some("ClientIP"));
    assert_eq!(svc.ports.as_ref().unwrap()[0].port, 8000);
    for store in ["redis", "clickhouse"] {
        let Object::StatefulSet(set) = find(&all, "StatefulSet", store) else {
            unreachable!()
        };
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.service_name.as_deref(), Some(store));
        let claims = spec.volume_claim_templates.as_ref().expect("claims");
        assert_eq!(
            claims[0].metadata.name.as_deref(),
            Some(&*format!("{store}-data"))
        );
        let Object::Service(headless) = find(&all, "Service", store) else {
            unreachable!()
        };
        assert_eq!(
            headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );
        let c = &spec.template.spec.as_ref().unwrap().containers[0];
        assert!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.exec.as_ref())
                .is_some(),
            "{store}"
        );
    }
    let Object::ConfigMap(files) = find(&all, "ConfigMap", "redis-files") else {
        unreachable!()
    };
    assert_eq!(
        files.data.as_ref().unwrap()["redis.conf"],
        include_str!("../templates/kato/redis.conf"),
        "KATO's Redis configuration as the docker stack copies it"
    );
    let Object::ConfigMap(files) = find(&all, "ConfigMap", "clickhouse-files") else {
        unreachable!()
    };
    assert_eq!(
        files.data.as_ref().unwrap()["init.sql"],
        include_str!("../templates/kato/init.sql")
    );
    let Object::Namespace(ns) = find(&all, "Namespace", "katotune-docker-kato") else {
        unreachable!()
    };
    assert!(ns
        .metadata
        .labels
        .as_ref()
        .unwrap()
        .contains_key("io.katotune.stack"));
    let Object::Claim(work) = find(&all, "PersistentVolumeClaim", "katotune-work") else {
        unreachable!()
    };
    let work = work.spec.as_ref().unwrap();
    assert_eq!(
        work.access_modes.as_deref(),
        Some(&["ReadWriteMany".to_string()][..]),
        "every shard pod and the final Job share it"
    );
    check_jobs(&all, 3);
    check_wiring(&all);
}

fn check_jobs(all: &[(String, String, Value, Object)], shards: i32) {
    let Object::Job(train) = find(all, "Job", "train") else {
        unreachable!()
    };
    let spec = train.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(
        (spec.completions, spec.parallelism),
        (Some(shards), Some(shards))
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("katotune-engine:latest"));
    let args = args_of(c);
    let shard = format!("$(JOB_COMPLETION_INDEX)/{shards}");
    assert!(
        args.windows(2).any(|w| w == ["--shard", shard.as_str()]),
        "{args:?}"
    );
    assert_eq!(args[..2], ["run", "/etc/katotune/profile.yaml"]);
    let Object::Job(load) = find(all, "Job", "merge-load") else {
        unreachable!()
    };
    let spec = load.spec.as_ref().unwrap();
    assert_eq!(spec.suspend, Some(true), "it waits for the operator");
    let pod = spec.template.spec.as_ref().unwrap();
    let merge = args_of(&pod.init_containers.as_ref().unwrap()[0]);
    let shard_files: Vec<String> = (0..shards)
        .map(|i| shard_kb_path("docker-kato", i as u32, shards as u32))
        .collect();
    assert_eq!(merge[..2], ["kb", "merge"]);
    assert_eq!(merge[2..2 + shard_files.len()], shard_files);
    let load = args_of(&pod.containers[0]);
    for expected in [
        "--into",
        "stores",
        "redis://redis:6379",
        "http://clickhouse:8123",
    ] {
        assert!(load.contains(&expected), "{expected} in {load:?}");
    }
    let out = merge.iter().position(|a| *a == "-o").expect("-o OUT");
    assert_eq!(load[2], merge[out + 1], "it loads what the merge wrote");
}

/// Every workload's pods match its selector and its Service's; every mount names a
/// volume or claim of the pod; every ConfigMap and claim a pod names exists.
fn check_wiring(all: &[(String, String, Value, Object)]) {
    let names = |kind: &str| -> Vec<&str> {
        all.iter()
            .filter(|(k, ..)| k == kind)
            .map(|(_, n, ..)| n.as_str())
            .collect()
    };
    for (kind, name, raw, object) in all {
        let Some(pod) = pod_of(object) else { continue };
        let labels = pod.metadata.as_ref().unwrap().labels.clone().unwrap();
        let selects = |selector: &Value| {
            selector
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        };
        if kind != "Job" {
            assert!(
                selects(&raw["spec"]["selector"]["matchLabels"]),
                "{kind} {name}"
            );
        }
        if let Some(Object::Service(s)) = all
            .iter()
            .find(|(k, n, ..)| k == "Service" && n == name)
            .map(|o| &o.3)
        {
            let selector =
                serde_json::to_value(s.spec.as_ref().unwrap().selector.as_ref()).unwrap();
            assert!(
                selects(&selector),
                "Service {name} selects {kind} {name}'s pods"
            );
        }
        let spec = pod.spec.as_ref().unwrap();
        let mut volumes: Vec<String> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        if let Object::StatefulSet(set) = object {
            let claims = set
                .spec
                .as_ref()
                .unwrap()
                .volume_claim_templates
                .iter()
                .flatten();
            volumes.extend(claims.filter_map(|c| c.metadata.name.clone()));
        }
        for v in spec.volumes.iter().flatten() {
            if let Some(cm) = &v.config_map {
                assert!(
                    names("ConfigMap").contains(&cm.name.as_str()),
                    "{kind} {name}: {}",
                    cm.name
                );
            }
            if let Some(claim) = &v.persistent_volume_claim {
                assert!(names("PersistentVolumeClaim").contains(&claim.claim_name.as_str()));
            }
        }
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for mount in containers.flat_map(|c| c.volume_mounts.iter().flatten()) {
            assert!(
                volumes.contains(&mount.name),
                "{kind} {name} mounts {}",
                mount.name
            );
        }
    }
}

#[test]
fn the_pods_train_the_same_profile_on_the_engine_into_a_kb_file() {
    let quick = profile::load("quick", &[]).unwrap().profile;
    assert!(
        quick.stack.ephemeral,
        "quick keeps its KB in memory, which a shard cannot"
    );
    let manifests = kubernetes::render(&quick, &KubeOptions::default()).unwrap();
    let text = manifests
        .iter()
        .find_map(|m| match m {
            Manifest::ConfigMap(cm) if cm.metadata.name.as_deref() == Some("katotune-profile") => {
                cm.data.as_ref().map(|d| d["profile.yaml"].clone())
            }
            _ => None,
        })
        .expect("the profile ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profile.yaml");
    std::fs::write(&file, text).unwrap();
    let pod = profile::load(file.to_str().unwrap(), &[])
        .expect("loads back")
        .profile;
    assert_eq!(pod.name, "quick");
    assert_eq!(
        pod.stack.backend,
        katotune::profile::schema::Backend::Embedded
    );
    assert!(!pod.stack.ephemeral && pod.stack.kb_file.is_none());
    assert_eq!(pod.report.output_dir, PathBuf::from("shards"));
    assert_eq!(
        pod.learning_hash(),
        quick.learning_hash(),
        "the same training"
    );
}

#[test]
fn secret_environment_comes_from_a_secret_and_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secretive.yaml");
    std::fs::write(
        &file,
        "inherits: docker-kato\nstack:\n  env:\n    CLICKHOUSE_PASSWORD: hunter2\n",
    )
    .unwrap();
    let yaml = render(file.to_str().unwrap(), &[]);
    assert!(!yaml.contains("hunter2"), "{yaml}");
    let all = objects(&yaml);
    let Object::Deployment(kato) = find(&all, "Deployment", "kato") else {
        unreachable!()
    };
    let c = &kato
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let var = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "CLICKHOUSE_PASSWORD")
        .unwrap();
    let from = var
        .value_from
        .as_ref()
        .and_then(|f| f.secret_key_ref.as_ref())
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("katotune-secrets", "CLICKHOUSE_PASSWORD")
    );
    assert!(
        yaml.contains("Secret katotune-secrets"),
        "the header says to create it"
    );
}

#[test]
fn unusable_flags_and_stacks_without_stores_exit_2_saying_what_to_do() {
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "docker-kato",
                "--output",
                "kubernetes",
                "--namespace",
                "Bad_NS",
            ],
            "--namespace",
        ),
        (
            &["docker-kato", "--output", "kubernetes", "--shards", "0"],
            "1 to 1000 shards",
        ),
        (
            &[
                "docker-kato",
                "--output",
                "kubernetes",
                "--volume-size",
                "ten",
            ],
            "10Gi",
        ),
        (
            &["docker-kato", "--shards", "2"],
            "applies to `--output kubernetes` only",
        ),
        (
            &["docker-engine", "--output", "kubernetes"],
            "stack.template: kato",
        ),
    ];
    for (args, says) in cases {
        let out = katotune().arg("render").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed");
    }
}

#[test]
fn json_output_is_one_kubernetes_list() {
    let out = katotune()
        .args([
            "--format",
            "json",
            "render",
            "docker-kato",
            "--output",
            "kubernetes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 13);
}

#[test]
fn docker_kato_manifests_snapshot() {
    let yaml = render("docker-kato", &["--shards", "2"]);
    insta::assert_snapshot!("docker_kato_kubernetes", yaml);
}

/// `kubernetes-validate` from PyPI: `$KATOTUNE_KUBERNETES_VALIDATE`, default
/// `/tmp/k8svenv/bin/kubernetes-validate` (what `.ci/run` installs).
fn validator() -> Option<PathBuf> {
    let path: PathBuf = std::env::var("KATOTUNE_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "/tmp/k8svenv/bin/kubernetes-validate".into())
        .into();
    if path.exists() {
        return Some(path);
    }
    let what = format!(
        "{} is missing (pip install kubernetes-validate)",
        path.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("manifests_pass_the_kubernetes_openapi_schemas: {what}; CI must provide it (.ci/run installs it)");
    }
    eprintln!("skipping manifests_pass_the_kubernetes_openapi_schemas: {what}");
    None
}

#[test]
fn manifests_pass_the_kubernetes_openapi_schemas() {
    let Some(validate) = validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kato.yaml");
    std::fs::write(
        &file,
        render(
            "docker-kato",
            &["--shards", "4", "--set", "stack.replicas=2"],
        ),
    )
    .unwrap();
    for version in ["1.33.0", "1.35.0", "1.37.0"] {
        let out = std::process::Command::new(&validate)
            .args(["--strict", "-k", version])
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "Kubernetes {version}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            said.matches("passed for resource").count(),
            13,
            "Kubernetes {version}: {said}"
        );
    }
}
