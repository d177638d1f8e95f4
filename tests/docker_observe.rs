//! Watching and removing docker stacks on the real Docker engine: failures carry
//! the stack's logs, `status` and `logs` see every stack, `down` removes one stack
//! and nothing else. Skipped (with a printed reason) when no engine answers.

mod docker_support;

use std::time::Duration;

use katotune::stack::docker::DockerError;

use docker_support::*;

const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_container_that_exits_at_start_fails_with_its_exit_code_and_the_stack_logs() {
    let Some(backend) = backend_or_skip("crash").await else {
        return;
    };
    sleeper_image(&backend).await;
    let stack = stack_name("crash");
    let _guard = StackGuard(vec![stack.clone()]);
    let mut crash = sleeper(
        &stack,
        "crash",
        &[("SLEEPER_EXIT", "3"), ("SLEEPER_TOKEN", "hunter2-secret")],
    );
    crash.secret_env = vec!["SLEEPER_TOKEN".into()];
    // No health check: it counts as ready while it runs, so only watching it keeps
    // its exit from being missed.
    crash.health = None;
    // Started only once `steady` is healthy, so its log has its start-up line.
    crash.depends_on = vec!["steady".into()];
    let plan = plan(&stack, vec![sleeper(&stack, "steady", &[]), crash]);
    backend.apply(&plan, "run-1").await.expect("apply");

    let err = backend
        .wait_healthy(&plan, HEALTH_TIMEOUT)
        .await
        .expect_err("crash must fail the wait");
    assert!(
        matches!(err, DockerError::ContainerExited { exit_code: 3, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(&format!("`{stack}-crash`")), "{message}");
    assert!(
        message.contains("crash | sleeper: giving up with exit code 3"),
        "{message}"
    );
    assert!(
        message.contains("steady | sleeper: listening on port 8000"),
        "{message}"
    );
    assert!(message.contains("token is ***"), "{message}");
    assert!(
        !message.contains("hunter2-secret"),
        "secret leaked: {message}"
    );

    let mut lines = Vec::new();
    backend
        .logs(&stack, 50, false, |line| lines.push(line))
        .await
        .expect("logs");
    assert!(
        lines.contains(&"crash | sleeper: token is ***".to_string()),
        "{lines:?}"
    );
    let tail = backend
        .tail_logs(&format!("{stack}-crash"), 50)
        .await
        .expect("tail");
    assert!(
        !tail.join("\n").contains("hunter2-secret"),
        "secret leaked: {tail:?}"
    );
}

#[tokio::test]
async fn down_removes_every_resource_of_the_stack_and_nothing_else() {
    let Some(backend) = backend_or_skip("down").await else {
        return;
    };
    let image = sleeper_image(&backend).await;
    let (doomed, kept) = (stack_name("down-a"), stack_name("down-b"));
    let _guard = StackGuard(vec![doomed.clone(), kept.clone()]);
    let bystander = format!("{doomed}-bystander");
    let _bystander = Bystander(bystander.clone());
    let docker = backend.docker();
    docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: bystander.clone(),
            ..Default::default()
        })
        .await
        .expect("unlabelled network");
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
        .name(&bystander)
        .build();
    let body = bollard::models::ContainerCreateBody {
        image: Some(image.into()),
        ..Default::default()
    };
    docker
        .create_container(Some(options), body)
        .await
        .expect("unlabelled container");

    let mut doomed_plan = plan(&doomed, vec![sleeper(&doomed, "api", &[])]);
    doomed_plan.volumes = vec![format!("{doomed}-data")];
    doomed_plan.containers[0]
        .mounts
        .push(katotune::stack::plan::MountSpec {
            volume: format!("{doomed}-data"),
            target: "/data".into(),
        });
    backend
        .apply(&doomed_plan, "run-a")
        .await
        .expect("apply doomed");
    backend
        .apply(&plan(&kept, vec![sleeper(&kept, "api", &[])]), "run-b")
        .await
        .expect("apply kept");

    let report = backend.down(&doomed, true).await.expect("down");
    assert_eq!(report.containers, vec![format!("{doomed}-api")]);
    assert_eq!(report.networks, vec![format!("{doomed}-net")]);
    assert_eq!(report.volumes, vec![format!("{doomed}-data")]);
    assert!(backend
        .status(Some(&doomed))
        .await
        .expect("status")
        .is_empty());
    assert!(docker
        .inspect_network(&format!("{doomed}-net"), None)
        .await
        .is_err());
    assert_eq!(backend.status(Some(&kept)).await.expect("status").len(), 1);
    docker
        .inspect_container(&bystander, None)
        .await
        .expect("unlabelled container survives");
    docker
        .inspect_network(&bystander, None)
        .await
        .expect("unlabelled network survives");
}

#[tokio::test]
async fn status_lists_containers_of_every_stack_and_logs_name_their_service() {
    let Some(backend) = backend_or_skip("status").await else {
        return;
    };
    sleeper_image(&backend).await;
    let (current, stale) = (stack_name("status-now"), stack_name("status-stale"));
    let _guard = StackGuard(vec![current.clone(), stale.clone()]);
    let mut api = sleeper(&current, "api", &[]);
    publish(&mut api, None);
    let current_plan = plan(&current, vec![api]);
    backend
        .apply(&current_plan, "run-now")
        .await
        .expect("apply current");
    backend
        .apply(&plan(&stale, vec![sleeper(&stale, "kato", &[])]), "run-old")
        .await
        .expect("apply stale");

    let all = backend.status(None).await.expect("status of all stacks");
    let mine: Vec<_> = all
        .iter()
        .filter(|c| c.stack == current || c.stack == stale)
        .collect();
    assert_eq!(mine.len(), 2, "{all:?}");
    let old = mine
        .iter()
        .find(|c| c.stack == stale)
        .expect("stale stack listed");
    assert_eq!(
        (old.service.as_str(), old.run_id.as_str()),
        ("kato", "run-old")
    );
    assert_eq!(old.profile, "test-profile");
    assert_eq!(old.state, "running");
    let now = backend
        .status(Some(&current))
        .await
        .expect("status of one stack");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].image, docker_support::SLEEPER_IMAGE);
    assert_eq!(now[0].ports.len(), 1);
    assert_eq!(now[0].ports[0].container, 8000);
    assert!(now[0].created.is_some());

    // Healthy means it answered, so its start-up line is in the log.
    backend
        .wait_healthy(&current_plan, HEALTH_TIMEOUT)
        .await
        .expect("healthy");
    let mut lines = Vec::new();
    backend
        .logs(&current, 10, false, |line| lines.push(line))
        .await
        .expect("logs");
    assert!(
        lines.contains(&"api | sleeper: listening on port 8000".to_string()),
        "{lines:?}"
    );
}
