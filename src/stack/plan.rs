//! The stack plan: every container, network and volume a docker stack needs, fully
//! resolved from a profile and a template, before anything touches Docker.
//!
//! `katotune render` prints it; the docker backend applies it. Keeping it a plain
//! value means render, apply and the tests all look at the same thing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Label keys every katotune-made resource carries.
pub mod labels {
    /// Marks a resource as katotune's and names its stack.
    pub const STACK: &str = "io.katotune.stack";
    /// The profile the stack was applied from.
    pub const PROFILE: &str = "io.katotune.profile";
    /// Hash of one container's resolved config; a change means "recreate".
    pub const CONFIG_HASH: &str = "io.katotune.config-hash";
    /// The invocation (run id) that created the resource.
    pub const RUN_ID: &str = "io.katotune.run-id";
    /// The service name inside the stack (kato, redis, clickhouse, engine...).
    pub const SERVICE: &str = "io.katotune.service";
    /// Which KATO replica a container is, `1` to `stack.replicas` (API containers only).
    pub const REPLICA: &str = "io.katotune.replica";
}

/// A whole stack as it should exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackPlan {
    /// Stack name, also the value of the `io.katotune.stack` label.
    pub stack: String,
    /// Profile name the plan was rendered from.
    pub profile: String,
    /// Template the plan was rendered from (`kato` or `embedded`).
    pub template: String,
    /// The private network every container joins.
    pub network: String,
    /// Named volumes (data that `down --volumes` removes).
    pub volumes: Vec<String>,
    /// Containers in start order (dependencies first).
    pub containers: Vec<ContainerSpec>,
    /// The service whose HTTP API training talks to (its first replica).
    pub api_service: String,
    /// Services of every replica of the API service, `api_service` first (`kato`,
    /// `kato-2`, ...); empty in plans written before replicas, meaning `api_service`
    /// alone.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Labels shared by every resource (stack, profile, run id).
    pub labels: BTreeMap<String, String>,
}

impl StackPlan {
    /// The containers serving KATO's API, replica 1 first.
    pub fn api_containers(&self) -> Vec<&ContainerSpec> {
        let wanted = |service: &str| match self.replicas.is_empty() {
            true => service == self.api_service,
            false => self.replicas.iter().any(|r| r == service),
        };
        let mut found: Vec<&ContainerSpec> = self
            .containers
            .iter()
            .filter(|c| wanted(&c.service))
            .collect();
        found.sort_by_key(|c| self.replicas.iter().position(|r| *r == c.service));
        found
    }
}

/// One container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Service name inside the stack (`kato`, `redis`, ...); also its network alias.
    pub service: String,
    /// Container name (`<stack>-<service>`).
    pub name: String,
    pub image: String,
    /// Overrides the image's entrypoint when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Overrides the image's command when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// Environment keys whose values are secrets: never printed, shown as `***`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
    /// Files copied into the container after create and before start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    /// Services that must be healthy before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Memory limit in bytes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// All labels, including `io.katotune.config-hash`.
    pub labels: BTreeMap<String, String>,
    /// Hash over everything above that defines the container (not the run id).
    pub config_hash: String,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortSpec {
    pub container: u16,
    /// Host port; `None` lets Docker pick a free one (`port: auto`).
    pub host: Option<u16>,
    /// Host address; `127.0.0.1` unless the profile says otherwise.
    pub host_ip: String,
}

/// A Docker health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSpec {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    #[serde(with = "crate::profile::duration::required")]
    pub interval: Duration,
    #[serde(with = "crate::profile::duration::required")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(with = "crate::profile::duration::required")]
    pub start_period: Duration,
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub volume: String,
    pub target: String,
}

/// A file placed into a container before it starts (configs such as init.sql).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}
