//! The KATO-shaped docker stack (profile `docker-stores`) on images built here:
//! `katotune up` brings Redis, ClickHouse and katotune's engine (in KATO's place) up,
//! both stores answer on the loopback ports `up` prints, with the time each service
//! took; Redis and ClickHouse keep one KB whole across `down`/`up` (`kb status`
//! digests equal); a second `run` is refused and `--fresh` removes only the profile's
//! nodes; stores that disagree and a misconfigured Redis are reported (`up`,
//! `doctor`); `down --volumes` removes everything the stack created.
//!
//! Needs a Docker engine, the test images (`scripts/test-images.sh`) and a static
//! katotune (`make test` builds it and sets `KATOTUNE_STATIC_BINARY`). Without them
//! the test says why and skips; under CI (env `CI` set) it fails instead.

mod docker_support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use assert_cmd::Command;
use katotune::profile;
use katotune::stack::docker::{DockerBackend, DockerError};
use katotune::stack::{self, stores, template, StackError, StoreUrls};

use docker_support::{
    backend_or_skip, plan, publish, sleeper, sleeper_image, stack_name, Bystander, ImageGuard,
    StackGuard,
};

use docker_support::store_stack_prerequisites as prerequisites;

/// A profile file of the test's own (its own stack name) on `docker-stores`, with
/// katotune's engine image built under `tag` in KATO's place.
fn profile_file(dir: &Path, tag: &str) -> String {
    let path = dir.join(format!("stores-e2e-{}.yaml", std::process::id()));
    let yaml = format!(
        "inherits: docker-stores\nstack:\n  images:\n    kato: {tag}\n    engine: {tag}\n\
         health:\n  timeout: 240s\nreport:\n  output_dir: {}\n",
        dir.join("out").display()
    );
    std::fs::write(&path, yaml).expect("write the test profile");
    path.display().to_string()
}

fn katotune(args: &[&str]) -> String {
    let out = Command::cargo_bin("katotune")
        .unwrap()
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run katotune");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "katotune {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `up`'s "  redis: URL" style lines.
fn printed_stores(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.trim().split_once(": "))
        .filter(|(key, _)| ["redis", "clickhouse", "service name"].contains(key))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// One inline Redis command over plain TCP; the raw reply.
fn redis(url: &str, command: &str) -> String {
    let address = url.strip_prefix("redis://").expect("a redis:// URL");
    let mut conn = std::net::TcpStream::connect(address).expect("connect to Redis");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    conn.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut reply = vec![0u8; 512];
    let n = conn.read(&mut reply).expect("Redis answers");
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

async fn clickhouse(url: &str, sql: &str) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .body(sql.to_string())
        .send()
        .await
        .expect("ClickHouse answers");
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{sql}: {status} {text}");
    text
}

async fn stack_resources(backend: &DockerBackend, stack: &str) -> (usize, usize, usize) {
    let filter = HashMap::from([(
        "label".to_string(),
        vec![format!("io.katotune.stack={stack}")],
    )]);
    let docker = backend.docker();
    let networks = docker
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::default()
                .filters(&filter)
                .build(),
        ))
        .await
        .unwrap();
    let volumes = docker
        .list_volumes(Some(
            bollard::query_parameters::ListVolumesOptionsBuilder::default()
                .filters(&filter)
                .build(),
        ))
        .await
        .unwrap();
    (
        backend.status(Some(stack)).await.unwrap().len(),
        networks.len(),
        volumes.volumes.unwrap_or_default().len(),
    )
}

/// `katotune ARGS`: exit code, stdout, stderr (whatever the outcome).
fn katotune_any(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("katotune")
        .unwrap()
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run katotune");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pattern of `kb` in both stores, as KATO leaves it: the ClickHouse row and the
/// Redis frequency.
async fn seed(stores: &StoreUrls, kb: &str, name: &str, frequency: u64) {
    clickhouse(
        &stores.clickhouse,
        &format!(
            "INSERT INTO kato.patterns_data (kb_id, name, pattern_data, length) \
             VALUES ('{kb}', '{name}', [['a'], ['b']], 2)"
        ),
    )
    .await;
    assert_eq!(
        redis(
            &stores.redis,
            &format!("SET {kb}:frequency:{name} {frequency}")
        ),
        "+OK\r\n"
    );
}

/// `kb status` of the stores, per KB id: (patterns, digest).
fn kb_status(stores: &StoreUrls) -> HashMap<String, (u64, String)> {
    let (code, out, err) = katotune_any(&[
        "--format",
        "json",
        "kb",
        "status",
        "stores",
        "--redis",
        &stores.redis,
        "--clickhouse",
        &stores.clickhouse,
    ]);
    assert_eq!(code, 0, "kb status: {out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("kb status JSON");
    doc["kbs"]
        .as_array()
        .expect("kbs")
        .iter()
        .map(|kb| {
            let id = kb["kb_id"].as_str().unwrap().to_string();
            let digest = kb["digest"].as_str().unwrap().to_string();
            (id, (kb["patterns"].as_u64().unwrap(), digest))
        })
        .collect()
}

/// One stack for every assertion (each docker stack costs CI minutes): up prints its
/// stores and how long each service took; the KB survives down/up whole; a second
/// run is refused; --fresh removes only the profile's nodes; the probe leaves no
/// session; stores that disagree are reported at up; doctor fails a misconfigured
/// Redis; down --volumes removes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kato_shaped_stack_keeps_its_kb_whole_and_says_what_is_wrong() {
    let Some((backend, binary)) = prerequisites("docker stores").await else {
        return;
    };
    let tag = format!("katotune-engine:stores-{}", std::process::id());
    let _image = ImageGuard(tag.clone());
    katotune::stack::image::build_engine_image(backend.docker(), &binary, &tag)
        .await
        .expect("build the engine image");
    let dir = tempfile::tempdir().unwrap();
    let file = profile_file(dir.path(), &tag);
    let loaded = profile::load(&file, &[])
        .expect("the test profile loads")
        .profile;
    let stack_name = template::stack_name(&loaded);
    let _guard = StackGuard(vec![stack_name.clone()]);

    let up = katotune(&["up", &file]);
    let timing = up
        .lines()
        .find(|l| l.trim().starts_with("ready after:"))
        .unwrap_or_else(|| panic!("up prints how long each service took:\n{up}"));
    for service in ["clickhouse", "redis", "kato", "probe"] {
        assert!(timing.contains(&format!("{service} ")), "{timing}");
    }
    let printed = printed_stores(&up);
    let stores: StoreUrls = stack::stores_of(&loaded)
        .await
        .expect("stores of the stack");
    assert!(stores.redis.starts_with("redis://127.0.0.1:"), "{stores:?}");
    assert!(
        stores.clickhouse.starts_with("http://127.0.0.1:"),
        "{stores:?}"
    );
    assert_eq!(stores.service_name, "kato");
    assert_eq!(
        printed.get("redis"),
        Some(&stores.redis),
        "up prints the stores"
    );
    assert_eq!(printed.get("clickhouse"), Some(&stores.clickhouse));
    assert_eq!(printed.get("service name"), Some(&stores.service_name));
    let policy = redis(&stores.redis, "CONFIG GET maxmemory-policy");
    assert!(
        policy.contains("noeviction"),
        "katotune's redis.conf: {policy}"
    );
    let aof = redis(&stores.redis, "CONFIG GET appendonly");
    assert!(aof.contains("yes"), "Redis persists: {aof}");
    let columns = clickhouse(
        &stores.clickhouse,
        "SELECT name FROM system.columns WHERE database = 'kato' AND table = 'patterns_data'",
    )
    .await;
    for column in [
        "kb_id",
        "pattern_data",
        "minhash_sig",
        "lsh_bands",
        "token_set",
    ] {
        assert!(
            columns.lines().any(|c| c == column),
            "init SQL ran: {columns}"
        );
    }
    let kato = printed_kato_url(&up);
    let sessions: serde_json::Value = reqwest::get(format!("{kato}/sessions/count"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sessions["active_session_count"], 0,
        "the probe left a session"
    );

    // Two of the profile's nodes and one KB of someone else's, in both stores.
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    seed(&stores, "node0_kato", &a, 3).await;
    seed(&stores, "node1_kato", &b, 2).await;
    seed(&stores, "other_kato", &a, 5).await;
    let before = kb_status(&stores);
    assert_eq!(before.len(), 3, "{before:?}");

    // down keeps both stores' volumes; the next up serves the same KB, whole.
    let down = katotune(&["down", &file]);
    assert!(
        down.contains("removed 3 container(s), 1 network(s), 0 volume(s)"),
        "{down}"
    );
    assert!(
        down.contains(&format!(
            "keeps volumes {stack_name}-clickhouse-data, {stack_name}-redis-data"
        )),
        "down lists what it keeps: {down}"
    );
    assert_eq!(stack_resources(&backend, &stack_name).await, (0, 0, 2));
    katotune(&["up", &file]);
    let stores = stack::stores_of(&loaded).await.expect("stores again");
    assert_eq!(kb_status(&stores), before, "down/up kept every KB whole");

    // A run into nodes that hold data is refused, like the embedded backend's.
    let (code, _, err) = katotune_any(&["run", &file, "--samples", "1"]);
    assert_eq!(code, 2, "refused as bad input: {err}");
    assert!(
        err.contains("node0_kato") && err.contains("--resume") && err.contains("--fresh"),
        "{err}"
    );

    // --fresh removes the profile's nodes and nothing else.
    let (code, _, err) = katotune_any(&["run", &file, "--samples", "1", "--fresh"]);
    assert_eq!(code, 0, "run --fresh: {err}");
    assert!(err.contains("--fresh: removed node0_kato"), "{err}");
    let after = kb_status(&stores);
    assert_eq!(
        after.get("other_kato"),
        before.get("other_kato"),
        "{after:?}"
    );
    assert!(
        !after.contains_key("node0_kato") && !after.contains_key("node1_kato"),
        "{after:?}"
    );

    // What a readiness probe left behind is katotune's own: KATO inserts ClickHouse
    // rows asynchronously, so one can outlive the probe's clear-all. up removes it
    // instead of calling the stores disagreeing.
    for command in [
        "SET katotune_probe_0badf00d_kato:global:total_unique_patterns 1",
        "SET katotune_probe_0badf00d_kato:frequency:ghost 1",
    ] {
        assert_eq!(redis(&stores.redis, command), "+OK\r\n", "{command}");
    }
    let (code, _, err) = katotune_any(&["up", &file]);
    assert_eq!(code, 0, "a probe's leftover is no disagreement: {err}");
    assert_eq!(
        redis(
            &stores.redis,
            "EXISTS katotune_probe_0badf00d_kato:frequency:ghost"
        ),
        ":0\r\n",
        "up removed the probe's leftover"
    );

    // A frequency without its row: up says the stores disagree, and how to fix it.
    assert_eq!(
        redis(&stores.redis, "SET other_kato:frequency:ghost 1"),
        "+OK\r\n"
    );
    let (code, _, err) = katotune_any(&["up", &file]);
    assert_eq!(code, katotune::exit::STORE_FAILED, "{err}");
    assert!(
        err.contains("disagree") && err.contains("1 Redis frequencies have no ClickHouse row"),
        "{err}"
    );
    assert!(err.contains("--fresh"), "says the fix: {err}");

    // doctor on a Redis that evicts and forgets.
    for command in [
        "CONFIG SET maxmemory-policy allkeys-lru",
        "CONFIG SET appendonly no",
        "CONFIG SET save \"\"",
        "XADD stm:global * event_type observe processor_id node0_kato data {}",
    ] {
        let answer = redis(&stores.redis, command);
        assert!(
            answer.starts_with('+') || answer.starts_with('$'),
            "{command}: {answer}"
        );
    }
    let (code, out, _) = katotune_any(&["doctor", &file, "--sample", "5"]);
    assert_eq!(code, 1, "doctor fails a misconfigured Redis:\n{out}");
    for verdict in [
        "FAIL redis eviction",
        "FAIL redis persistence",
        "FAIL stores agree",
        "ok   clickhouse schema",
        "WARN redis streams: 1 STM streams hold 1 entries",
    ] {
        assert!(out.contains(verdict), "doctor says {verdict}:\n{out}");
    }

    // down --volumes removes everything the stack created.
    katotune(&["down", &file, "--volumes"]);
    assert_eq!(stack_resources(&backend, &stack_name).await, (0, 0, 0));
    let err = stack::stores_of(&loaded)
        .await
        .expect_err("no stack, no stores");
    assert!(err.to_string().contains("katotune apply"), "{err}");
}

/// The "... is ready at URL" line of `up`.
fn printed_kato_url(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            l.split_once(" is ready at ")
                .map(|(_, url)| url.trim().to_string())
        })
        .unwrap_or_else(|| panic!("up prints the URL:\n{stdout}"))
}

/// A stack shaped like the `kato` template's (redis, clickhouse, kato) made of the
/// sleeper test image, each publishing its port 8000 on loopback.
fn sleeper_stores_plan(stack: &str) -> katotune::stack::plan::StackPlan {
    let mut services = Vec::new();
    for (service, env) in [
        ("redis", vec![]),
        ("clickhouse", vec![]),
        ("kato", vec![("SERVICE_NAME", "svc-under-test")]),
    ] {
        let mut spec = sleeper(stack, service, &env);
        publish(&mut spec, None);
        services.push(spec);
    }
    let mut plan = plan(stack, services);
    plan.api_service = "kato".into();
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_are_read_only_from_the_containers_katotune_labelled_for_the_stack() {
    let Some(backend) = backend_or_skip("stores of a stack").await else {
        return;
    };
    let image = sleeper_image(&backend).await;
    let stack = stack_name("stores-owner");
    let _guard = StackGuard(vec![stack.clone()]);
    let plan = sleeper_stores_plan(&stack);

    // A container katotune did not create, under the name the stack's Redis would have.
    let squatter = format!("{stack}-redis");
    let bystander = Bystander(squatter.clone());
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&squatter)
        .build();
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.into()),
        ..Default::default()
    };
    backend
        .docker()
        .create_container(Some(options), body)
        .await
        .expect("unlabelled container");
    let err = stores::of_plan(&backend, &plan)
        .await
        .expect_err("an unlabelled container is not the stack's Redis");
    assert!(
        matches!(err, StackError::Docker(DockerError::NameTaken { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("`{squatter}`")), "{err}");
    drop(bystander);

    backend.apply(&plan, "run-1").await.expect("apply");
    let found = stores::of_plan(&backend, &plan).await.expect("stores");
    let status = backend.status(Some(&stack)).await.unwrap();
    let port_of = |service: &str| {
        let c = status.iter().find(|c| c.service == service).unwrap();
        c.ports.iter().find(|p| p.container == 8000).unwrap().host
    };
    assert_eq!(
        found,
        StoreUrls {
            redis: format!("redis://127.0.0.1:{}", port_of("redis")),
            clickhouse: format!("http://127.0.0.1:{}", port_of("clickhouse")),
            service_name: "svc-under-test".into(),
        }
    );

    // A stopped store is reported, not guessed at.
    backend
        .docker()
        .stop_container(
            &format!("{stack}-clickhouse"),
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    let err = stores::of_plan(&backend, &plan).await.expect_err("stopped");
    assert!(err.to_string().contains("katotune apply"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_lists_what_it_removes_and_leaves_alone_what_katotune_did_not_create() {
    let Some(backend) = backend_or_skip("down by record").await else {
        return;
    };
    let image = sleeper_image(&backend).await;
    let stack = stack_name("down-record");
    let _guard = StackGuard(vec![stack.clone()]);
    backend
        .apply(&plan(&stack, vec![sleeper(&stack, "api", &[])]), "run-1")
        .await
        .expect("apply");
    // Someone else's container wearing every katotune label of the stack.
    let stranger = format!("{stack}-stranger");
    let _stranger = Bystander(stranger.clone());
    let labels = HashMap::from([
        ("io.katotune.stack".to_string(), stack.clone()),
        ("io.katotune.service".to_string(), "api".to_string()),
        ("io.katotune.run-id".to_string(), "run-1".to_string()),
    ]);
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&stranger)
        .build();
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.into()),
        labels: Some(labels),
        ..Default::default()
    };
    backend
        .docker()
        .create_container(Some(options), body)
        .await
        .expect("labelled container");

    // Without a terminal, --all removes nothing and asks for --yes (it only lists).
    let (code, out, err) = katotune_any(&["down", "--all"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(
        out.contains(&format!("{stack}: removes containers {stack}-api")),
        "{out}"
    );
    assert_eq!(backend.status(Some(&stack)).await.unwrap().len(), 2);

    let out = katotune(&["down", "--stack", &stack]);
    assert!(
        out.contains(&format!("{stack}: removes containers {stack}-api")),
        "{out}"
    );
    assert!(out.contains(&format!("leaves alone {stranger}")), "{out}");
    let left: Vec<String> = backend
        .status(Some(&stack))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(left, vec![stranger.clone()], "only the stranger is left");
}
