//! Building katotune's FROM scratch engine image on the real Docker engine.
//! Skipped (with a printed reason) when no engine answers.

mod docker_support;

use katotune::stack::docker::DockerError;
use katotune::stack::image::{build_engine_image, ENGINE_IMAGE_LABEL};

use docker_support::{backend_or_skip, sleeper_binary, ImageGuard};

#[tokio::test]
async fn engine_image_runs_katotune_serve_and_checks_itself_with_katotune_health() {
    let Some(backend) = backend_or_skip("engine image").await else {
        return;
    };
    let tag = format!("katotune-test-engine:{}", std::process::id());
    let _guard = ImageGuard(tag.clone());
    // Any static executable will do to check the image's shape; the sleeper is one.
    let info = build_engine_image(backend.docker(), &sleeper_binary(), &tag)
        .await
        .expect("build engine image");

    assert!(backend.image_exists(&tag).await.expect("inspect"));
    let health: Vec<&str> = info
        .healthcheck
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(
        health,
        [
            "CMD",
            "/katotune",
            "health",
            "--url",
            "http://127.0.0.1:8000"
        ]
    );
    let entrypoint: Vec<&str> = info
        .entrypoint
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(
        entrypoint,
        ["/katotune", "serve", "--host", "0.0.0.0", "--port", "8000"]
    );
    assert_eq!(
        info.labels.get(ENGINE_IMAGE_LABEL).map(String::as_str),
        Some("engine")
    );
}

#[tokio::test]
async fn a_dynamically_linked_binary_is_refused_with_the_static_build_command() {
    let Some(backend) = backend_or_skip("engine image").await else {
        return;
    };
    let dynamic = std::env::current_exe().expect("test binary");
    let err = build_engine_image(backend.docker(), &dynamic, "katotune-test-never:built")
        .await
        .expect_err("a dynamic binary cannot run FROM scratch");
    assert!(matches!(err, DockerError::Build { .. }), "{err}");
    assert!(err.to_string().contains("+crt-static"), "{err}");
    assert!(!backend
        .image_exists("katotune-test-never:built")
        .await
        .expect("inspect"));
}

/// The real thing, when a static katotune build is at hand: set
/// `KATOTUNE_STATIC_BINARY` to it (see `katotune::stack::image::static_binary_path`).
/// The `embedded` template's plan is applied as rendered, and the engine must learn.
#[tokio::test]
async fn engine_image_from_a_static_katotune_build_runs_the_embedded_template() {
    let Some(binary) = std::env::var_os("KATOTUNE_STATIC_BINARY") else {
        eprintln!("skipping: set KATOTUNE_STATIC_BINARY to a static katotune build to run this");
        return;
    };
    let Some(backend) = backend_or_skip("engine image").await else {
        return;
    };
    let tag = format!("katotune-test-engine-real:{}", std::process::id());
    let _image = ImageGuard(tag.clone());
    build_engine_image(backend.docker(), std::path::Path::new(&binary), &tag)
        .await
        .expect("build engine image");
    let mut profile = katotune::profile::Profile {
        name: docker_support::stack_name("engine"),
        ..Default::default()
    };
    profile.stack.template = katotune::profile::schema::Template::Embedded;
    profile.stack.images.engine = tag.clone();
    let plan = katotune::stack::template::render(&profile, "run-1").expect("render");
    let _stack = docker_support::StackGuard(vec![plan.stack.clone()]);

    backend.apply(&plan, "run-1").await.expect("apply");
    let wait = std::time::Duration::from_secs(60);
    backend
        .wait_healthy(&plan, wait)
        .await
        .expect("engine healthy");
    let endpoint = backend.api_endpoint(&plan).await.expect("endpoint");
    let interval = std::time::Duration::from_millis(200);
    katotune::stack::probe::ready(&endpoint, wait, interval)
        .await
        .expect("the engine in the container learns and names patterns");
}
