//! The docker backend against the real Docker engine, with a tiny `FROM scratch`
//! test image. Skipped (with a printed reason) when no engine answers.

mod docker_support;

use std::time::Duration;

use katotune::stack::docker::{ContainerChange, DockerBackend, DockerError};
use katotune::stack::plan::{labels, FileSpec};

use docker_support::*;

const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn apply_creates_a_labelled_stack_that_serves_and_a_second_apply_changes_nothing() {
    let Some(backend) = backend_or_skip("apply").await else {
        return;
    };
    sleeper_image(&backend).await;
    let stack = stack_name("apply");
    let _guard = StackGuard(vec![stack.clone()]);
    let mut api = sleeper(&stack, "api", &[("KATO_WORKERS", "4")]);
    publish(&mut api, None);
    api.depends_on = vec!["db".into()];
    api.files.push(FileSpec {
        path: "/conf/init.sql".into(),
        contents: "CREATE TABLE kato;".into(),
        mode: 0o644,
    });
    let db = sleeper(&stack, "db", &[]);
    let mut plan = plan(&stack, vec![db, api]);
    plan.api_service = "api".into();

    let report = backend.apply(&plan, "run-1").await.expect("first apply");
    assert!(report.network_created);
    assert_eq!(
        report.change_of(&format!("{stack}-db")),
        Some(ContainerChange::Created)
    );
    assert_eq!(
        report.change_of(&format!("{stack}-api")),
        Some(ContainerChange::Created)
    );

    let (found_labels, env) = container_labels_and_env(&backend, &format!("{stack}-api")).await;
    assert_eq!(found_labels.get(labels::STACK), Some(&stack));
    assert_eq!(
        found_labels.get(labels::SERVICE).map(String::as_str),
        Some("api")
    );
    assert_eq!(
        found_labels.get(labels::RUN_ID).map(String::as_str),
        Some("run-1")
    );
    assert_eq!(
        found_labels.get(labels::CONFIG_HASH),
        Some(&plan.containers[1].config_hash)
    );
    assert!(env.contains(&"KATO_WORKERS=4".to_string()), "env: {env:?}");
    let network = backend
        .docker()
        .inspect_network(&plan.network, None)
        .await
        .expect("network");
    assert_eq!(
        network.labels.unwrap_or_default().get(labels::STACK),
        Some(&stack)
    );
    assert_eq!(
        read_file_in(&backend, &format!("{stack}-api"), "/conf/init.sql").await,
        "CREATE TABLE kato;"
    );

    backend
        .wait_healthy(&plan, HEALTH_TIMEOUT)
        .await
        .expect("stack healthy");
    let endpoint = backend.api_endpoint(&plan).await.expect("endpoint");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let answer = reqwest::get(format!("{endpoint}/health"))
        .await
        .expect("GET /health");
    assert_eq!(answer.status(), 200);

    let again = backend.apply(&plan, "run-2").await.expect("second apply");
    assert!(
        again.is_unchanged(),
        "second apply changed something: {again:?}"
    );
}

#[tokio::test]
async fn changing_one_containers_env_recreates_only_that_container() {
    let Some(backend) = backend_or_skip("recreate").await else {
        return;
    };
    sleeper_image(&backend).await;
    let stack = stack_name("recreate");
    let _guard = StackGuard(vec![stack.clone()]);
    let mut plan = plan(
        &stack,
        vec![
            sleeper(&stack, "api", &[("SESSION_TTL", "3600")]),
            sleeper(&stack, "cache", &[]),
        ],
    );
    backend.apply(&plan, "run-1").await.expect("first apply");

    plan.containers[0]
        .env
        .insert("SESSION_TTL".into(), "60".into());
    rehash(&mut plan.containers[0]);
    let report = backend
        .apply(&plan, "run-2")
        .await
        .expect("apply with new env");
    assert_eq!(
        report.change_of(&format!("{stack}-api")),
        Some(ContainerChange::Recreated)
    );
    assert_eq!(
        report.change_of(&format!("{stack}-cache")),
        Some(ContainerChange::Unchanged)
    );
    let (_, env) = container_labels_and_env(&backend, &format!("{stack}-api")).await;
    assert!(env.contains(&"SESSION_TTL=60".to_string()), "env: {env:?}");

    backend
        .docker()
        .stop_container(&format!("{stack}-cache"), None)
        .await
        .expect("stop");
    let report = backend
        .apply(&plan, "run-3")
        .await
        .expect("apply after stop");
    assert_eq!(
        report.change_of(&format!("{stack}-cache")),
        Some(ContainerChange::Started)
    );
    assert_eq!(
        report.change_of(&format!("{stack}-api")),
        Some(ContainerChange::Unchanged)
    );
}

#[tokio::test]
async fn a_taken_host_port_fails_naming_the_port_and_suggesting_auto() {
    let Some(backend) = backend_or_skip("port").await else {
        return;
    };
    sleeper_image(&backend).await;
    let stack = stack_name("port");
    let _guard = StackGuard(vec![stack.clone()]);
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = holder.local_addr().expect("addr").port();
    let mut api = sleeper(&stack, "api", &[]);
    publish(&mut api, Some(port));

    let err = backend
        .apply(&plan(&stack, vec![api]), "run-1")
        .await
        .expect_err("port is taken");
    let message = err.to_string();
    assert!(matches!(err, DockerError::PortInUse { .. }), "{message}");
    assert!(message.contains(&port.to_string()), "{message}");
    assert!(message.contains("port: auto"), "{message}");
    assert!(
        backend
            .status(Some(&stack))
            .await
            .expect("status")
            .is_empty(),
        "failed container left behind"
    );
}

#[tokio::test]
async fn missing_images_fail_fast_all_named_with_how_to_get_them_and_nothing_created() {
    let Some(backend) = backend_or_skip("missing-image").await else {
        return;
    };
    sleeper_image(&backend).await;
    let stack = stack_name("missing-image");
    let _guard = StackGuard(vec![stack.clone()]);
    let mut kato = sleeper(&stack, "kato", &[]);
    kato.image = "kato-katotune-test-absent:never".into();
    let mut engine = sleeper(&stack, "engine", &[]);
    engine.image = "katotune-absent-engine:never".into();
    let present = sleeper(&stack, "redis", &[]);

    let err = backend
        .apply(&plan(&stack, vec![present, kato, engine]), "run-1")
        .await
        .expect_err("no such images");
    let message = err.to_string();
    let DockerError::ImagesMissing { missing, .. } = &err else {
        panic!("wrong error: {message}");
    };
    let images: Vec<&str> = missing.iter().map(|m| m.image.as_str()).collect();
    assert_eq!(
        images,
        [
            "kato-katotune-test-absent:never",
            "katotune-absent-engine:never"
        ]
    );
    assert!(message.contains("in a KATO checkout"), "{message}");
    assert!(message.contains("katotune image build"), "{message}");
    assert!(message.contains("docker load"), "{message}");
    assert!(
        backend
            .status(Some(&stack))
            .await
            .expect("status")
            .is_empty(),
        "{message}"
    );
}

#[tokio::test]
async fn connecting_to_an_engine_that_is_not_there_says_what_to_do() {
    let err = DockerBackend::connect_to("unix:///nonexistent/katotune-test.sock")
        .await
        .expect_err("no engine there");
    assert!(matches!(err, DockerError::NoEngine { .. }), "{err}");
    assert!(err.to_string().contains("backend: embedded"), "{err}");
}

#[tokio::test]
async fn apply_refuses_to_take_over_a_container_that_is_not_part_of_the_stack() {
    let Some(backend) = backend_or_skip("name-taken").await else {
        return;
    };
    let image = sleeper_image(&backend).await;
    let stack = stack_name("name-taken");
    let _guard = StackGuard(vec![stack.clone()]);
    let squatter = format!("{stack}-api");
    let _squatter = Bystander(squatter.clone());
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&squatter)
        .build();
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.into()),
        ..Default::default()
    };
    let created = backend
        .docker()
        .create_container(Some(options), body)
        .await
        .expect("unlabelled container");

    let err = backend
        .apply(&plan(&stack, vec![sleeper(&stack, "api", &[])]), "run-1")
        .await
        .expect_err("name is taken");
    assert!(matches!(err, DockerError::NameTaken { .. }), "{err}");
    assert!(err.to_string().contains(&format!("`{squatter}`")), "{err}");
    let found = backend
        .docker()
        .inspect_container(&squatter, None)
        .await
        .expect("still there");
    assert_eq!(
        found.id.as_deref(),
        Some(created.id.as_str()),
        "the squatter was replaced"
    );
}
