//! The docker backend: makes a [`StackPlan`](crate::stack::plan::StackPlan) real
//! through the Docker Engine API (bollard), and watches, lists and removes what it
//! made.
//!
//! Every network, volume and container it creates carries the plan's labels
//! (`io.katotune.stack` and friends), and `down` removes only what carries the
//! stack's label, so katotune never touches anything else on the engine.

mod apply;
mod check;
mod down;
mod error;
mod files;
mod health;
mod observe;
mod published;
mod pull;
pub mod record;
mod surplus;

use std::time::Duration;

use bollard::Docker;
use serde::Serialize;

pub use down::DownPlan;
pub use error::{DockerError, MissingImage};
pub use health::{describe_times, ServiceReady};
pub use observe::{ContainerStatus, PublishedPort};

/// How long `connect` waits for the engine to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a Docker engine that applies and manages katotune stacks.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    docker: Docker,
    dependency_timeout: Duration,
    pull_timeout: Duration,
}

/// What `apply` did to one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerChange {
    /// It did not exist and was created and started.
    Created,
    /// Its config hash changed, so it was removed and created again.
    Recreated,
    /// It existed unchanged but was stopped, so it was started.
    Started,
    /// It existed, unchanged and running.
    Unchanged,
}

impl ContainerChange {
    /// What happened, in the words `apply` prints: `created`, `recreated (config
    /// changed)`, `started`, `unchanged`.
    pub fn words(self) -> &'static str {
        match self {
            ContainerChange::Created => "created",
            ContainerChange::Recreated => "recreated (config changed)",
            ContainerChange::Started => "started",
            ContainerChange::Unchanged => "unchanged",
        }
    }
}

/// The outcome of `apply`, one entry per container in plan order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyReport {
    pub stack: String,
    pub containers: Vec<AppliedContainer>,
    /// Whether the network was created by this apply.
    pub network_created: bool,
    /// Volumes created by this apply.
    pub volumes_created: Vec<String>,
    /// KATO replicas katotune had created that the plan no longer has (the profile
    /// lowered `stack.replicas`), removed by this apply.
    pub replicas_removed: Vec<String>,
}

impl ApplyReport {
    /// True when nothing had to change.
    pub fn is_unchanged(&self) -> bool {
        !self.network_created
            && self.volumes_created.is_empty()
            && self.replicas_removed.is_empty()
            && self
                .containers
                .iter()
                .all(|c| c.change == ContainerChange::Unchanged)
    }

    /// What happened to the named container, if the plan had it.
    pub fn change_of(&self, container: &str) -> Option<ContainerChange> {
        self.containers
            .iter()
            .find(|c| c.name == container)
            .map(|c| c.change)
    }
}

/// One container in an [`ApplyReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedContainer {
    pub name: String,
    pub service: String,
    pub change: ContainerChange,
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DownReport {
    pub stack: String,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl DockerBackend {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket) and agrees
    /// on an API version, so older engines such as 20.10 work.
    pub async fn connect() -> Result<Self, DockerError> {
        let docker = Docker::connect_with_defaults();
        Self::negotiate(docker.map_err(|e| DockerError::NoEngine {
            detail: e.to_string(),
        })?)
        .await
    }

    /// Connects to the engine at `host` (`unix:///var/run/docker.sock`,
    /// `tcp://HOST:PORT`, ...).
    pub async fn connect_to(host: &str) -> Result<Self, DockerError> {
        let docker = Docker::connect_with_host(host);
        Self::negotiate(docker.map_err(|e| DockerError::NoEngine {
            detail: format!("{host}: {e}"),
        })?)
        .await
    }

    async fn negotiate(docker: Docker) -> Result<Self, DockerError> {
        let no_engine = |detail: String| DockerError::NoEngine { detail };
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| no_engine(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| no_engine(e.to_string()))?;
        Ok(Self::from_docker(docker))
    }

    /// Wraps an already connected client.
    pub fn from_docker(docker: Docker) -> Self {
        Self {
            docker,
            dependency_timeout: Duration::from_secs(180),
            pull_timeout: Duration::from_secs(60),
        }
    }

    /// How long `apply` waits for a container's `depends_on` services to be healthy.
    pub fn with_dependency_timeout(mut self, timeout: Duration) -> Self {
        self.dependency_timeout = timeout;
        self
    }

    /// How long `apply` may spend pulling one missing image before giving up.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// The underlying bollard client (for image builds).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Whether the engine has the image locally.
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(err) if error::is_not_found(&err) => Ok(false),
            Err(err) => Err(DockerError::api("inspect image", image)(err)),
        }
    }
}
