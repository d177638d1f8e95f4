//! `stack.replicas`: the docker plan of N KATO containers on one Redis and one
//! ClickHouse, the profile rules around it, and the trainer's routing: each worker's
//! sessions on one replica, workers spread round-robin, and the same knowledge base
//! as one server.
//!
//! The routing test puts N recording proxies on loopback in front of one in-process
//! engine, as N KATO replicas share one Redis and one ClickHouse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use katotune::engine::{self, EngineConfig};
use katotune::kato::metrics::Endpoint;
use katotune::profile::schema::{Backend, Port};
use katotune::profile::{self, validate, FlagOverride, Profile};
use katotune::stack::plan::labels;
use katotune::stack::template;
use katotune::train::plan::TrainPlan;
use katotune::train::record::{BackendInfo, RunRecord, Transport};
use katotune::train::runner::{self, RunOptions, Target};

fn docker_kato(replicas: u32) -> Profile {
    let flag = FlagOverride {
        flag: "--set stack.replicas".into(),
        path: "stack.replicas".into(),
        value: replicas.into(),
    };
    profile::load("docker-kato", &[flag])
        .expect("loads")
        .profile
}

#[test]
fn three_replicas_are_three_kato_containers_on_one_redis_and_one_clickhouse() {
    let mut p = docker_kato(3);
    p.stack.port = Port::Fixed(18000);
    let plan = template::render(&p, "t").unwrap();
    let services: Vec<&str> = plan.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(
        services,
        ["clickhouse", "redis", "kato", "kato-2", "kato-3"]
    );
    assert_eq!(plan.replicas, ["kato", "kato-2", "kato-3"]);
    let kato = plan.api_containers();
    let names: Vec<&str> = kato.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "katotune-docker-kato-kato",
            "katotune-docker-kato-kato-2",
            "katotune-docker-kato-kato-3"
        ]
    );
    let ports: Vec<Option<u16>> = kato.iter().map(|c| c.ports[0].host).collect();
    assert_eq!(ports, [Some(18000), Some(18001), Some(18002)]);
    for (i, c) in kato.iter().enumerate() {
        assert_eq!(
            c.env, kato[0].env,
            "every replica gets the same environment"
        );
        assert_eq!(c.env["REDIS_URL"], "redis://redis:6379");
        assert_eq!(c.env["KATO_WORKERS"], "4", "the profile's tuning");
        assert_eq!(c.depends_on, ["clickhouse", "redis"]);
        assert_eq!(c.labels[labels::REPLICA], (i + 1).to_string());
        assert_eq!(c.labels[labels::SERVICE], c.service);
        assert_eq!(c.labels[labels::CONFIG_HASH], c.config_hash);
    }
    let hashes: BTreeSet<&str> = kato.iter().map(|c| c.config_hash.as_str()).collect();
    assert_eq!(hashes.len(), 3, "each replica is its own container");
    let mut one = docker_kato(1);
    one.stack.port = Port::Fixed(18000);
    let single = template::render(&one, "t").unwrap();
    assert_eq!(
        single.api_containers()[0].config_hash,
        kato[0].config_hash,
        "growing a stack keeps its first KATO container as it is"
    );
    let compose = template::to_compose(&plan);
    for service in ["kato", "kato-2", "kato-3", "redis", "clickhouse"] {
        assert!(compose["services"].get(service).is_some(), "{service}");
    }
}

#[test]
fn automatic_ports_stay_automatic_for_every_replica() {
    let plan = template::render(&docker_kato(2), "t").unwrap();
    let hosts: Vec<Option<u16>> = plan
        .api_containers()
        .iter()
        .map(|c| c.ports[0].host)
        .collect();
    assert_eq!(hosts, [None, None], "Docker picks a free port for each");
}

#[test]
fn replicas_outside_1_to_16_or_of_the_engine_image_are_refused() {
    let problem = |p: &Profile| {
        validate::problems(p)
            .into_iter()
            .find(|pr| pr.path == "stack.replicas")
            .map(|pr| pr.message)
    };
    let mut p = docker_kato(1);
    assert_eq!(problem(&p), None);
    for bad in [0, 17] {
        p.stack.replicas = bad;
        assert!(problem(&p).unwrap().contains("1-16"), "{bad}");
    }
    p.stack.replicas = 4;
    p.stack.port = Port::Fixed(65534);
    assert!(problem(&p).unwrap().contains("65537"));
    for engine_profile in ["docker-engine", "docker-stores"] {
        let mut p = profile::load(engine_profile, &[]).unwrap().profile;
        p.stack.replicas = 2;
        let message = problem(&p).expect("refused");
        assert!(message.contains("split the knowledge base"), "{message}");
    }
    let loaded = profile::load(
        "docker-engine",
        &[FlagOverride {
            flag: "--set stack.replicas".into(),
            path: "stack.replicas".into(),
            value: 2.into(),
        }],
    );
    let Err(err) = loaded else {
        panic!("a load refuses it too")
    };
    assert!(err.to_string().contains("stack.replicas"), "{err}");
}

#[test]
fn replicas_that_cannot_work_are_a_warning() {
    let mut p = docker_kato(3);
    p.training.workers = 3;
    assert!(validate::warnings(&p)
        .iter()
        .all(|w| !w.contains("replicas")));
    p.training.workers = 1;
    let idle = validate::warnings(&p);
    assert!(
        idle.iter().any(|w| w.contains("2 replicas get no worker")),
        "{idle:?}"
    );
    p.stack.backend = Backend::Embedded;
    assert!(validate::problems(&p).is_empty());
    let warned = validate::warnings(&p);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("stack.replicas (3)") && w.contains("one engine")),
        "{warned:?}"
    );
}

/// Which replica saw which session: (replica, session id, created here).
type Seen = Arc<Mutex<Vec<(usize, String, bool)>>>;

#[derive(Clone)]
struct Replica {
    index: usize,
    upstream: String,
    http: reqwest::Client,
    seen: Seen,
}

/// Forwards a request to the engine and notes its session: the id KATO answered a
/// `POST /sessions` with, or the one in a `/sessions/{id}/...` path.
async fn forward(State(r): State<Replica>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let answer = r
        .http
        .request(method.clone(), format!("{}{path}", r.upstream))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("the engine answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let bytes = answer.bytes().await.expect("a body");
    let created = method == Method::POST && uri.path() == "/sessions";
    let session = match created {
        true => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["session_id"].as_str().map(str::to_string)),
        false => uri
            .path()
            .strip_prefix("/sessions/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string),
    };
    if let Some(id) = session {
        r.seen.lock().unwrap().push((r.index, id, created));
    }
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

async fn proxy(index: usize, upstream: &str, seen: &Seen) -> String {
    let state = Replica {
        index,
        upstream: upstream.to_string(),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        seen: seen.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn training(workers: usize, out: &std::path::Path) -> Profile {
    let mut p = Profile {
        name: format!("replicas-w{workers}"),
        ..Profile::default()
    };
    p.training.samples = Some(12);
    p.training.workers = workers;
    p.training.node0_batch = 8;
    p.training.chunk_sizes = vec![5, 7, 9];
    p.report.output_dir = out.to_path_buf();
    p
}

async fn train(p: &Profile, urls: Vec<String>, out: &std::path::Path) -> RunRecord {
    let target = Target {
        url: urls[0].clone(),
        backend: BackendInfo {
            kind: "embedded".into(),
            url: urls[0].clone(),
            server: String::new(),
            transport: Transport::Http,
        },
        replicas: urls,
        engine: None,
    };
    let mut opts = RunOptions::quiet("replicas", out.join(format!("{}.journal", p.name)));
    opts.drain_deadline = Duration::from_secs(30);
    runner::run(&TrainPlan::from(p), &target, &opts)
        .await
        .expect("the run starts")
}

/// Trains over `replicas` proxies of one engine and checks the routing; returns the
/// record and the workers each replica served.
async fn routed_run(workers: usize, replicas: usize) -> (RunRecord, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine::start(EngineConfig::default()).await.unwrap();
    let seen: Seen = Arc::default();
    let mut urls = Vec::new();
    for i in 0..replicas {
        urls.push(proxy(i, &engine.url(), &seen).await);
    }
    let p = training(workers, dir.path());
    let record = train(&p, urls, dir.path()).await;
    engine.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    let mut where_seen: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut created = vec![0usize; replicas];
    for (replica, id, made) in &seen {
        where_seen.entry(id.as_str()).or_default().insert(*replica);
        created[*replica] += usize::from(*made);
    }
    for (id, at) in &where_seen {
        assert_eq!(at.len(), 1, "session {id} went to replicas {at:?}");
    }
    let total: usize = created.iter().sum();
    assert_eq!(
        total % workers,
        0,
        "each worker makes the same sessions: {created:?}"
    );
    let per_worker = total / workers;
    let served = created.iter().map(|c| c / per_worker).collect();
    let counted = record.calls.endpoints[&Endpoint::CreateSession].calls;
    assert_eq!(
        counted, total as u64,
        "the record counts every replica's calls"
    );
    (record, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_keeps_its_sessions_on_one_replica_and_workers_spread_evenly() {
    let (two, served) = routed_run(4, 2).await;
    assert_eq!(served, [2, 2]);
    let (three, served) = routed_run(4, 3).await;
    assert_eq!(served, [2, 1, 1]);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine::start(EngineConfig::default()).await.unwrap();
    let one = train(&training(1, dir.path()), vec![engine.url()], dir.path()).await;
    engine.shutdown().await;
    assert_eq!(one.samples.done, 12);
    for record in [&two, &three] {
        assert_eq!(record.samples.done, 12);
        for (a, b) in record.levels.iter().zip(&one.levels) {
            assert_eq!(
                a.kb, b.kb,
                "{}: replicas learn what one server learns",
                a.node
            );
        }
    }
}
