//! Shared pieces of the docker backend tests: a tiny `FROM scratch` test image built
//! from `examples/sleeper.rs`, stack plans made of it, and guards that remove every
//! test resource even when a test fails.

// Each test file that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bollard::query_parameters::DownloadFromContainerOptionsBuilder;
use futures::TryStreamExt;
use katotune::stack::docker::DockerBackend;
use katotune::stack::image::{build_scratch_image, ContextFile};
use katotune::stack::plan::{labels, ContainerSpec, HealthSpec, PortSpec, StackPlan};
use sha1::{Digest, Sha1};
use tokio::sync::OnceCell;

/// The test image's tag.
pub const SLEEPER_IMAGE: &str = "katotune-test-sleeper:latest";

/// Connects to the engine, or prints why the test is skipped. Under CI (env `CI`
/// set) a missing engine fails the test instead: CI must run it.
pub async fn backend_or_skip(test: &str) -> Option<DockerBackend> {
    match DockerBackend::connect().await {
        Ok(backend) => Some(backend.with_pull_timeout(Duration::from_secs(20))),
        Err(err) => {
            skip_unless_ci(test, &format!("no Docker engine answers ({err})"));
            None
        }
    }
}

/// Prints why a test is skipped; panics instead when env `CI` is set.
/// The test images of profile `docker-stores` (`scripts/test-images.sh` builds them).
pub const STORE_TEST_IMAGES: [&str; 2] = [
    "katotune-test-redis:latest",
    "katotune-test-clickhouse:latest",
];

/// What a test on the KATO-shaped stack needs that it cannot make itself (the engine,
/// the store test images, a static katotune), or why it must skip (fail under CI).
pub async fn store_stack_prerequisites(test: &str) -> Option<(DockerBackend, PathBuf)> {
    let backend = backend_or_skip(test).await?;
    for image in STORE_TEST_IMAGES {
        if !backend.image_exists(image).await.expect("inspect image") {
            let why = format!("{image} is missing; build it with `scripts/test-images.sh`");
            skip_unless_ci(test, &why);
            return None;
        }
    }
    let Some(binary) = std::env::var_os("KATOTUNE_STATIC_BINARY").map(PathBuf::from) else {
        let why =
            "KATOTUNE_STATIC_BINARY is not set (`make test` builds a static katotune and sets it)";
        skip_unless_ci(test, why);
        return None;
    };
    assert!(
        binary.is_file(),
        "KATOTUNE_STATIC_BINARY={} does not exist",
        binary.display()
    );
    Some((backend, binary))
}

pub fn skip_unless_ci(test: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test} cannot run under CI: {why}");
    }
    eprintln!("skipping {test}: {why}");
}

/// Compiles the sleeper as a static executable (std only, about a second).
pub fn sleeper_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sleeper-static");
            let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/sleeper.rs");
            let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
            let status = std::process::Command::new(rustc)
                .args([
                    "-C",
                    "target-feature=+crt-static",
                    "-C",
                    "opt-level=s",
                    "-C",
                    "strip=symbols",
                ])
                .args([
                    "--target",
                    "x86_64-unknown-linux-gnu",
                    "--edition",
                    "2021",
                    "-o",
                ])
                .arg(&out)
                .arg(&source)
                .status()
                .expect("run rustc for the sleeper");
            assert!(
                status.success(),
                "rustc could not build {}",
                source.display()
            );
            out
        })
        .clone()
}

/// Builds the test image once per test process.
pub async fn sleeper_image(backend: &DockerBackend) -> &'static str {
    static BUILT: OnceCell<()> = OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let contents = std::fs::read(sleeper_binary()).expect("read sleeper");
            let files = [ContextFile {
                path: "sleeper".into(),
                contents,
                mode: 0o755,
            }];
            let dockerfile = "FROM scratch\nCOPY sleeper /sleeper\nLABEL io.katotune.test=sleeper\nENTRYPOINT [\"/sleeper\"]\n";
            build_scratch_image(backend.docker(), SLEEPER_IMAGE, dockerfile, &files)
                .await
                .expect("build the sleeper test image");
        })
        .await;
    SLEEPER_IMAGE
}

/// A unique stack name for one test.
pub fn stack_name(test: &str) -> String {
    format!("kt-test-{test}-{}", std::process::id())
}

/// A sleeper container: serves HTTP on 8000 and is healthy once it answers.
pub fn sleeper(stack: &str, service: &str, env: &[(&str, &str)]) -> ContainerSpec {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config_hash = hex::encode(Sha1::digest(format!("{service}{env:?}").as_bytes()));
    ContainerSpec {
        service: service.into(),
        name: format!("{stack}-{service}"),
        image: SLEEPER_IMAGE.into(),
        entrypoint: None,
        cmd: None,
        env,
        secret_env: vec![],
        ports: vec![],
        health: Some(HealthSpec {
            test: vec!["CMD".into(), "/sleeper".into(), "health".into()],
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_period: Duration::ZERO,
        }),
        mounts: vec![],
        files: vec![],
        depends_on: vec![],
        memory_bytes: None,
        // As render writes it; apply's own run id must win.
        labels: BTreeMap::from([(labels::RUN_ID.into(), "rendered-run".into())]),
        config_hash,
    }
}

/// Publishes the sleeper's port 8000 on loopback (`None`: Docker picks the port).
pub fn publish(spec: &mut ContainerSpec, host: Option<u16>) {
    spec.ports.push(PortSpec {
        container: 8000,
        host,
        host_ip: "127.0.0.1".into(),
    });
}

/// Recomputes a container's config hash after a test changed it.
pub fn rehash(spec: &mut ContainerSpec) {
    spec.config_hash = hex::encode(Sha1::digest(
        format!("{}{:?}", spec.service, spec.env).as_bytes(),
    ));
}

/// A plan whose API is the first container.
pub fn plan(stack: &str, containers: Vec<ContainerSpec>) -> StackPlan {
    StackPlan {
        stack: stack.into(),
        profile: "test-profile".into(),
        template: "test".into(),
        network: format!("{stack}-net"),
        volumes: vec![],
        api_service: containers
            .first()
            .map(|c| c.service.clone())
            .unwrap_or_default(),
        replicas: vec![],
        labels: BTreeMap::from([(labels::STACK.into(), stack.into())]),
        containers,
    }
}

/// Removes a stack (containers, network, volumes) when dropped, even on panic.
pub struct StackGuard(pub Vec<String>);

impl Drop for StackGuard {
    fn drop(&mut self) {
        let stacks = std::mem::take(&mut self.0);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("cleanup runtime");
            runtime.block_on(async {
                let Ok(backend) = DockerBackend::connect().await else {
                    return;
                };
                for stack in stacks {
                    if let Err(err) = backend.down(&stack, true).await {
                        eprintln!("cleanup of stack {stack} failed: {err}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A container's labels and env as the engine reports them.
pub async fn container_labels_and_env(
    backend: &DockerBackend,
    name: &str,
) -> (HashMap<String, String>, Vec<String>) {
    let found = backend
        .docker()
        .inspect_container(name, None)
        .await
        .expect("inspect");
    let config = found.config.expect("config");
    (
        config.labels.unwrap_or_default(),
        config.env.unwrap_or_default(),
    )
}

/// The contents of one file inside a container.
pub async fn read_file_in(backend: &DockerBackend, container: &str, path: &str) -> String {
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let chunks: Vec<_> = backend
        .docker()
        .download_from_container(container, Some(options))
        .try_collect()
        .await
        .expect("download file");
    let bytes: Vec<u8> = chunks.concat();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entry = archive
        .entries()
        .expect("tar")
        .next()
        .expect("one file")
        .expect("entry");
    let mut text = String::new();
    entry.read_to_string(&mut text).expect("utf-8 file");
    text
}

/// Removes the unlabelled container and network of the `down` test.
pub struct Bystander(pub String);

impl Drop for Bystander {
    fn drop(&mut self) {
        let name = self.0.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("cleanup runtime");
            runtime.block_on(async {
                let Ok(backend) = DockerBackend::connect().await else {
                    return;
                };
                let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build();
                let _ = backend
                    .docker()
                    .remove_container(&name, Some(options))
                    .await;
                let _ = backend.docker().remove_network(&name).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Removes an image when dropped, even on panic (declare it before a stack guard, so
/// the stack's containers go first).
pub struct ImageGuard(pub String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let tag = self.0.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("cleanup runtime");
            runtime.block_on(async {
                let Ok(backend) = DockerBackend::connect().await else {
                    return;
                };
                let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .build();
                let _ = backend
                    .docker()
                    .remove_image(&tag, Some(options), None)
                    .await;
            });
        });
        let _ = cleanup.join();
    }
}
