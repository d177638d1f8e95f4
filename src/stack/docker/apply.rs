//! `apply`: create what is missing, recreate what changed, start what is stopped,
//! and leave everything else alone, so a second apply of the same plan is a no-op.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthConfig, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};

use super::error::{is_not_found, DockerError};
use super::observe::SECRET_ENV_LABEL;
use super::{AppliedContainer, ApplyReport, ContainerChange, DockerBackend};
use crate::stack::plan::{labels, ContainerSpec, HealthSpec, StackPlan};

impl DockerBackend {
    /// Makes the plan real: creates the labelled network and volumes if missing; for
    /// each container (in plan order) creates it if missing, recreates it only when
    /// its `io.katotune.config-hash` label differs, starts it if stopped, and leaves
    /// it alone otherwise. Files are copied in after create and before start; a
    /// container starts only once its `depends_on` services are healthy.
    pub async fn apply(&self, plan: &StackPlan, run_id: &str) -> Result<ApplyReport, DockerError> {
        check_plan(plan)?;
        self.ensure_images(plan).await?;
        let shared = resource_labels(plan, run_id);
        let network_created = self.ensure_network(plan, &shared).await?;
        let mut volumes_created = Vec::new();
        for volume in &plan.volumes {
            if self.ensure_volume(plan, volume, &shared).await? {
                volumes_created.push(volume.clone());
            }
        }
        let mut containers = Vec::new();
        for spec in &plan.containers {
            let change = self.ensure_container(plan, spec, &shared).await?;
            // The one log line per container on every docker path (`apply`, `up`, `run`).
            tracing::info!("{}: {}", spec.name, change.words());
            containers.push(AppliedContainer {
                name: spec.name.clone(),
                service: spec.service.clone(),
                change,
            });
        }
        let replicas_removed = self.remove_surplus_replicas(plan).await?;
        Ok(ApplyReport {
            stack: plan.stack.clone(),
            containers,
            network_created,
            volumes_created,
            replicas_removed,
        })
    }

    async fn ensure_network(
        &self,
        plan: &StackPlan,
        shared: &HashMap<String, String>,
    ) -> Result<bool, DockerError> {
        match self.docker.inspect_network(&plan.network, None).await {
            Ok(found) => {
                check_owner("network", &plan.network, plan, found.labels.as_ref())?;
                Ok(false)
            }
            Err(err) if is_not_found(&err) => {
                let request = NetworkCreateRequest {
                    name: plan.network.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(shared.clone()),
                    ..Default::default()
                };
                self.docker
                    .create_network(request)
                    .await
                    .map_err(DockerError::api("create network", &plan.network))?;
                Ok(true)
            }
            Err(err) => Err(DockerError::api("inspect network", &plan.network)(err)),
        }
    }

    async fn ensure_volume(
        &self,
        plan: &StackPlan,
        volume: &str,
        shared: &HashMap<String, String>,
    ) -> Result<bool, DockerError> {
        match self.docker.inspect_volume(volume).await {
            Ok(found) => {
                check_owner("volume", volume, plan, Some(&found.labels))?;
                Ok(false)
            }
            Err(err) if is_not_found(&err) => {
                let request = VolumeCreateRequest {
                    name: Some(volume.to_string()),
                    labels: Some(shared.clone()),
                    ..Default::default()
                };
                self.docker
                    .create_volume(request)
                    .await
                    .map_err(DockerError::api("create volume", volume))?;
                if let Err(e) = super::record::remember_volume(&plan.stack, volume) {
                    tracing::warn!("could not record volume {volume}: {e}; `down --volumes` will leave it alone");
                }
                Ok(true)
            }
            Err(err) => Err(DockerError::api("inspect volume", volume)(err)),
        }
    }

    async fn ensure_container(
        &self,
        plan: &StackPlan,
        spec: &ContainerSpec,
        shared: &HashMap<String, String>,
    ) -> Result<ContainerChange, DockerError> {
        let Some(found) = self.inspect_if_exists(&spec.name).await? else {
            self.create_and_start(plan, spec, shared).await?;
            return Ok(ContainerChange::Created);
        };
        let found_labels = found.config.as_ref().and_then(|c| c.labels.as_ref());
        check_owner("container", &spec.name, plan, found_labels)?;
        let found_hash = found_labels.and_then(|l| l.get(labels::CONFIG_HASH));
        if found_hash != Some(&spec.config_hash) {
            self.remove_container(&spec.name).await?;
            self.create_and_start(plan, spec, shared).await?;
            return Ok(ContainerChange::Recreated);
        }
        let running = found.state.as_ref().and_then(|s| s.running) == Some(true);
        if running {
            return Ok(ContainerChange::Unchanged);
        }
        self.start(plan, spec, false).await?;
        Ok(ContainerChange::Started)
    }

    /// Inspects a container, `None` when it does not exist.
    pub(crate) async fn inspect_if_exists(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.docker.inspect_container(name, None).await {
            Ok(found) => Ok(Some(found)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(DockerError::api("inspect container", name)(err)),
        }
    }

    pub(crate) async fn remove_container(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Err(err) if !is_not_found(&err) => Err(DockerError::api("remove container", name)(err)),
            _ => Ok(()),
        }
    }

    async fn create_and_start(
        &self,
        plan: &StackPlan,
        spec: &ContainerSpec,
        shared: &HashMap<String, String>,
    ) -> Result<(), DockerError> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), create_body(plan, spec, shared))
            .await
            .map_err(DockerError::api("create container", &spec.name))?;
        if let Err(e) = super::record::remember(&plan.stack, &spec.name, &created.id) {
            tracing::warn!(
                "could not record container {} in {}: {e}; `katotune down` will leave it alone",
                spec.name,
                super::record::state_dir().display()
            );
        }
        self.copy_files(spec).await?;
        self.start(plan, spec, true).await
    }

    /// Starts a container once its dependencies are healthy. A container created by
    /// this apply that cannot start is removed again, so a retry starts clean.
    async fn start(
        &self,
        plan: &StackPlan,
        spec: &ContainerSpec,
        fresh: bool,
    ) -> Result<(), DockerError> {
        let deps: Vec<&ContainerSpec> = plan
            .containers
            .iter()
            .filter(|c| spec.depends_on.contains(&c.service))
            .collect();
        if !deps.is_empty() {
            self.wait_for(plan, &deps, self.dependency_timeout).await?;
        }
        let Err(err) = self.docker.start_container(&spec.name, None).await else {
            return Ok(());
        };
        if fresh {
            let _ = self.remove_container(&spec.name).await;
        }
        let message = err.to_string();
        if let Some(port) = port_in_use(&message) {
            return Err(DockerError::PortInUse {
                port,
                container: spec.name.clone(),
            });
        }
        Err(DockerError::api("start container", &spec.name)(err))
    }

    async fn copy_files(&self, spec: &ContainerSpec) -> Result<(), DockerError> {
        if spec.files.is_empty() {
            return Ok(());
        }
        let archive = super::files::archive(spec).map_err(|source| DockerError::Io {
            path: format!("files of container `{}`", spec.name),
            source,
        })?;
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path("/")
            .build();
        self.docker
            .upload_to_container(
                &spec.name,
                Some(options),
                bollard::body_full(archive.into()),
            )
            .await
            .map_err(DockerError::api("copy files into container", &spec.name))
    }
}

/// Labels every resource of the stack carries.
fn resource_labels(plan: &StackPlan, run_id: &str) -> HashMap<String, String> {
    let mut shared: HashMap<String, String> = plan.labels.clone().into_iter().collect();
    shared.insert(labels::STACK.into(), plan.stack.clone());
    shared.insert(labels::PROFILE.into(), plan.profile.clone());
    shared.insert(labels::RUN_ID.into(), run_id.into());
    shared
}

/// Refuses to adopt a resource that is not labelled as part of this stack.
fn check_owner(
    kind: &'static str,
    name: &str,
    plan: &StackPlan,
    found: Option<&HashMap<String, String>>,
) -> Result<(), DockerError> {
    let stack = found.and_then(|l| l.get(labels::STACK));
    if stack == Some(&plan.stack) {
        return Ok(());
    }
    Err(DockerError::NameTaken {
        kind,
        name: name.to_string(),
        stack: plan.stack.clone(),
    })
}

fn check_plan(plan: &StackPlan) -> Result<(), DockerError> {
    let bad = |problem: String| DockerError::BadPlan {
        stack: plan.stack.clone(),
        problem,
    };
    if !plan
        .containers
        .iter()
        .any(|c| c.service == plan.api_service)
    {
        return Err(bad(format!(
            "api_service `{}` is not one of its containers",
            plan.api_service
        )));
    }
    for (index, spec) in plan.containers.iter().enumerate() {
        for dep in &spec.depends_on {
            if !plan.containers[..index].iter().any(|c| &c.service == dep) {
                return Err(bad(format!(
                    "`{}` depends on `{dep}`, which is not an earlier container of the plan",
                    spec.service
                )));
            }
        }
    }
    Ok(())
}

fn create_body(
    plan: &StackPlan,
    spec: &ContainerSpec,
    shared: &HashMap<String, String>,
) -> ContainerCreateBody {
    // The plan's labels first, then this apply's (its run id wins).
    let mut all_labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    all_labels.extend(shared.clone());
    all_labels.insert(labels::SERVICE.into(), spec.service.clone());
    all_labels.insert(labels::CONFIG_HASH.into(), spec.config_hash.clone());
    all_labels.insert(SECRET_ENV_LABEL.into(), spec.secret_env.join(","));
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            let binding = PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: p.host.map(|h| h.to_string()),
            };
            (format!("{}/tcp", p.container), Some(vec![binding]))
        })
        .collect();
    let endpoint = EndpointSettings {
        aliases: Some(vec![spec.service.clone()]),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: spec.cmd.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(all_labels),
        exposed_ports: Some(bindings.keys().cloned().collect()),
        healthcheck: spec.health.as_ref().map(health_config),
        host_config: Some(HostConfig {
            network_mode: Some(plan.network.clone()),
            port_bindings: Some(bindings),
            binds: Some(
                spec.mounts
                    .iter()
                    .map(|m| format!("{}:{}", m.volume, m.target))
                    .collect(),
            ),
            memory: spec.memory_bytes.and_then(|m| i64::try_from(m).ok()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(plan.network.clone(), endpoint)])),
        }),
        ..Default::default()
    }
}

fn health_config(health: &HealthSpec) -> HealthConfig {
    let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    HealthConfig {
        test: Some(health.test.clone()),
        interval: Some(nanos(health.interval)),
        timeout: Some(nanos(health.timeout)),
        retries: Some(i64::from(health.retries)),
        start_period: Some(nanos(health.start_period)),
        start_interval: None,
    }
}

/// The host port from Docker's "address already in use" / "port is already
/// allocated" start errors, if that is what the error is.
fn port_in_use(message: &str) -> Option<String> {
    if !message.contains("address already in use") && !message.contains("port is already allocated")
    {
        return None;
    }
    let port = message
        .split(|c: char| c.is_whitespace())
        .filter_map(|word| word.trim_end_matches(':').rsplit_once(':'))
        .map(|(_, port)| port)
        .find(|port| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
    Some(port.unwrap_or("(unknown)").to_string())
}

#[cfg(test)]
mod tests {
    use super::port_in_use;

    #[test]
    fn port_in_use_names_the_port_from_both_docker_wordings() {
        let proxy = "driver failed programming external connectivity on endpoint x (abc): \
                     Error starting userland proxy: listen tcp4 127.0.0.1:54913: bind: address already in use";
        assert_eq!(port_in_use(proxy).as_deref(), Some("54913"));
        let allocated = "driver failed programming external connectivity on endpoint x (abc): \
                         Bind for 127.0.0.1:8000 failed: port is already allocated";
        assert_eq!(port_in_use(allocated).as_deref(), Some("8000"));
        assert_eq!(port_in_use("no such image"), None);
    }
}
