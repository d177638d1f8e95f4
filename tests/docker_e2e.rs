//! The docker backend end to end on the real engine, with katotune's own engine image
//! built from a static katotune binary (`make test` builds it and sets
//! `KATOTUNE_STATIC_BINARY`). Skipped with a printed reason when no engine answers.

mod docker_support;

use std::path::PathBuf;
use std::time::Duration;

use katotune::engine::{self, EngineConfig};
use katotune::profile::schema::{Backend, Template};
use katotune::profile::Profile;
use katotune::stack::docker::{ContainerChange, DockerBackend};
use katotune::stack::{self, image, probe, template, KbStart, StackError};
use katotune::train::plan::TrainPlan;
use katotune::train::record::{BackendInfo, RunRecord, RunStatus};
use katotune::train::runner::{self, RunOptions, Target};
use tokio_util::sync::CancellationToken;

use docker_support::{backend_or_skip, container_labels_and_env, ImageGuard, StackGuard};

/// The static katotune the engine image is built from.
fn static_binary() -> PathBuf {
    let path = std::env::var_os("KATOTUNE_STATIC_BINARY").map(PathBuf::from).expect(
        "KATOTUNE_STATIC_BINARY is not set: run `make test`, which builds a static katotune and sets it",
    );
    assert!(
        path.is_file(),
        "KATOTUNE_STATIC_BINARY={} does not exist",
        path.display()
    );
    path
}

/// Builds the engine image under a tag of this test's own (Docker's build cache makes
/// the second and third builds instant).
async fn engine_image(backend: &DockerBackend, test: &str) -> (String, ImageGuard) {
    let tag = format!("katotune-engine:e2e-{test}-{}", std::process::id());
    image::build_engine_image(backend.docker(), &static_binary(), &tag)
        .await
        .expect("build the engine image");
    (tag.clone(), ImageGuard(tag))
}

fn docker_profile(name: &str, tag: &str, out: &std::path::Path) -> Profile {
    let mut p = Profile {
        name: format!("{name}-{}", std::process::id()),
        ..Profile::default()
    };
    p.stack.backend = Backend::Docker;
    p.stack.template = Template::Embedded;
    p.stack.images.engine = tag.to_string();
    p.stack.tuning.batch_size = Some(10_000);
    p.stack.tuning.connection_pool_size = Some(50);
    p.health.timeout = Duration::from_secs(60);
    p.training.samples = Some(30);
    p.training.chunk_sizes = vec![5, 7, 9];
    p.training.node0_batch = 50;
    p.training.workers = 2;
    p.report.output_dir = out.to_path_buf();
    p
}

fn options(out: &std::path::Path, resume: bool) -> RunOptions {
    RunOptions {
        run_id: "e2e".into(),
        resume,
        journal_path: out.join("journal.json"),
        cancel: CancellationToken::new(),
        drain_deadline: Duration::from_secs(30),
        progress_bar: false,
        digests_from_kb: false,
    }
}

async fn train(p: &Profile, url: &str, opts: &RunOptions) -> RunRecord {
    let target = Target {
        url: url.into(),
        replicas: Vec::new(),
        backend: BackendInfo {
            kind: "test".into(),
            url: url.into(),
            server: String::new(),
            transport: Default::default(),
        },
        engine: None,
    };
    runner::run(&TrainPlan::from(p), &target, opts)
        .await
        .expect("run starts")
}

fn digests(r: &RunRecord) -> Vec<String> {
    r.levels.iter().map(|l| l.kb.digest.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_image_is_applied_tuned_trains_like_in_process_and_goes_away_cleanly() {
    let Some(backend) = backend_or_skip("docker end to end").await else {
        return;
    };
    let (tag, _image) = engine_image(&backend, "train").await;
    let out = tempfile::tempdir().unwrap();
    let p = docker_profile("e2e-train", &tag, out.path());
    let stack_name = template::stack_name(&p);
    let _guard = StackGuard(vec![stack_name.clone()]);

    let handle = stack::up(&p, KbStart::Continue, "run-1", &CancellationToken::new())
        .await
        .expect("stack up");
    let container = format!("{stack_name}-engine");
    let (labels, env) = container_labels_and_env(&backend, &container).await;
    assert_eq!(labels.get("io.katotune.stack"), Some(&stack_name));
    assert_eq!(labels.get("io.katotune.profile"), Some(&p.name));
    assert!(labels.contains_key("io.katotune.config-hash"));
    assert!(
        env.contains(&"CONNECTION_POOL_SIZE=50".to_string()),
        "{env:?}"
    );
    assert!(
        env.contains(&"KATO_BATCH_SIZE=10000".to_string()),
        "{env:?}"
    );
    assert!(
        handle.url.starts_with("http://127.0.0.1:"),
        "published on loopback: {}",
        handle.url
    );
    probe::ready(
        &handle.url,
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .await
    .expect("ready");

    let in_docker = train(&p, &handle.url, &options(out.path(), false)).await;
    assert_eq!(
        in_docker.status,
        RunStatus::Completed,
        "{:?}",
        in_docker.stop_reason
    );
    let local = engine::start(EngineConfig::default()).await.unwrap();
    let local_out = out.path().join("local");
    let in_process = train(&p, &local.url(), &options(&local_out, false)).await;
    local.shutdown().await;
    assert_eq!(
        digests(&in_docker),
        digests(&in_process),
        "same KB in the container as in-process"
    );

    // A changed knob recreates the engine container and nothing else.
    let mut tuned = p.clone();
    tuned.stack.tuning.batch_size = Some(5_000);
    let plan = template::render(&tuned, "run-2").unwrap();
    let report = backend.apply(&plan, "run-2").await.unwrap();
    assert_eq!(
        report.change_of(&container),
        Some(ContainerChange::Recreated)
    );
    assert!(!report.network_created && report.volumes_created.is_empty());
    let again = backend.apply(&plan, "run-2").await.unwrap();
    assert!(again.is_unchanged(), "a second apply does nothing");

    handle.down(false).await;
    assert!(
        backend.status(Some(&stack_name)).await.unwrap().is_empty(),
        "down removed the stack"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_exits_at_start_fails_with_its_logs() {
    let Some(backend) = backend_or_skip("docker end to end").await else {
        return;
    };
    let (tag, _image) = engine_image(&backend, "crash").await;
    let out = tempfile::tempdir().unwrap();
    let mut p = docker_profile("e2e-crash", &tag, out.path());
    // Under the binary itself: a file, so no folder can be made there.
    p.stack
        .env
        .insert("KATOTUNE_ENGINE_DB".into(), "/katotune/kb.sqlite".into());
    let _guard = StackGuard(vec![template::stack_name(&p)]);
    let err = match stack::up(&p, KbStart::Continue, "run-1", &CancellationToken::new()).await {
        Ok(_) => panic!("an engine that cannot open its database must not come up"),
        Err(e) => e,
    };
    assert!(matches!(err, StackError::Docker(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/katotune/kb.sqlite"),
        "the error carries the container's log: {text}"
    );
    assert!(
        backend
            .status(Some(&template::stack_name(&p)))
            .await
            .unwrap()
            .is_empty(),
        "what this invocation created was removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_container_is_reported_and_the_run_resumes_when_it_is_back() {
    let Some(backend) = backend_or_skip("docker end to end").await else {
        return;
    };
    let (tag, _image) = engine_image(&backend, "kill").await;
    let out = tempfile::tempdir().unwrap();
    let mut p = docker_profile("e2e-kill", &tag, out.path());
    let corpus = out.path().join("corpus.jsonl");
    let chapters = std::fs::read_to_string("data/kjv-100.jsonl").unwrap();
    std::fs::write(&corpus, chapters.repeat(4)).unwrap();
    p.training.dataset.path = corpus;
    p.training.samples = Some(400);
    p.training.node0_batch = 1;
    p.training.workers = 1;
    let stack_name = template::stack_name(&p);
    let _guard = StackGuard(vec![stack_name.clone()]);
    let handle = stack::up(&p, KbStart::Continue, "run-1", &CancellationToken::new())
        .await
        .expect("stack up");
    // While training, give up on a vanished server after 3 s.
    p.health.timeout = Duration::from_secs(3);
    let container = format!("{stack_name}-engine");
    let killer = {
        let backend = backend.clone();
        let container = container.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            backend
                .docker()
                .kill_container(
                    &container,
                    None::<bollard::query_parameters::KillContainerOptions>,
                )
                .await
                .expect("kill the engine");
        })
    };
    let first = train(&p, &handle.url, &options(out.path(), false)).await;
    killer.await.unwrap();
    assert_eq!(
        first.status,
        RunStatus::Failed,
        "the run stops when the server stays away"
    );
    let reason = first
        .stop_reason
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        reason.contains("did not come back")
            || reason.contains("at risk")
            || reason.contains("failed"),
        "{reason}"
    );
    assert!(first.samples.done < 400);

    // The stack comes back (apply starts the stopped container) and the run resumes.
    let plan = template::render(&p, "run-2").unwrap();
    let report = backend.apply(&plan, "run-2").await.unwrap();
    assert_eq!(report.change_of(&container), Some(ContainerChange::Started));
    backend
        .wait_healthy(&plan, Duration::from_secs(60))
        .await
        .unwrap();
    let url = backend.api_endpoint(&plan).await.unwrap();
    let second = train(&p, &url, &options(out.path(), true)).await;
    assert_eq!(
        second.status,
        RunStatus::Completed,
        "{:?}",
        second.stop_reason
    );
    let at_risk = (first.samples.at_risk.len() + second.samples.at_risk.len()) as u64;
    assert_eq!(
        first.samples.done + second.samples.done + at_risk,
        400,
        "every sample accounted for once"
    );
    handle.down(false).await;
}
