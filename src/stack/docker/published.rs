//! Finding what a running stack offers the host: the address Docker published for a
//! service's port, and a service's environment. Only containers that carry the
//! stack's labels are read, so a container katotune did not create is never taken
//! for part of a stack.

use bollard::models::ContainerInspectResponse;

use super::{DockerBackend, DockerError};
use crate::stack::plan::{labels, StackPlan};

impl DockerBackend {
    /// The running container of `service` in the plan's stack, as the engine reports
    /// it. Fails when it is missing or stopped, and when a container of that name
    /// does not carry this stack's `io.katotune.stack` and `io.katotune.service` labels.
    pub(crate) async fn stack_container(
        &self,
        plan: &StackPlan,
        service: &str,
    ) -> Result<ContainerInspectResponse, DockerError> {
        let spec = plan
            .containers
            .iter()
            .find(|c| c.service == service)
            .ok_or_else(|| DockerError::BadPlan {
                stack: plan.stack.clone(),
                problem: format!("it has no service `{service}`"),
            })?;
        let not_applied = || DockerError::NotApplied {
            container: spec.name.clone(),
            stack: plan.stack.clone(),
        };
        let found = self
            .inspect_if_exists(&spec.name)
            .await?
            .ok_or_else(not_applied)?;
        let found_labels = found.config.as_ref().and_then(|c| c.labels.as_ref());
        let label = |key: &str| found_labels.and_then(|l| l.get(key)).map(String::as_str);
        if label(labels::STACK) != Some(plan.stack.as_str())
            || label(labels::SERVICE) != Some(service)
        {
            return Err(DockerError::NameTaken {
                kind: "container",
                name: spec.name.clone(),
                stack: plan.stack.clone(),
            });
        }
        if found.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Err(not_applied());
        }
        Ok(found)
    }

    /// `HOST:PORT` on which Docker published `container_port` of the plan's `service`
    /// (HOST as a client dials it: `127.0.0.1` for a wildcard binding, `[..]` for IPv6).
    pub async fn published_address(
        &self,
        plan: &StackPlan,
        service: &str,
        container_port: u16,
    ) -> Result<String, DockerError> {
        let key = format!("{container_port}/tcp");
        let found = self.stack_container(plan, service).await?;
        let binding = found
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove(&key))
            .flatten()
            .and_then(|bindings| bindings.into_iter().find(|b| b.host_port.is_some()))
            .ok_or_else(|| DockerError::NoPublishedPort {
                service: service.to_string(),
                stack: plan.stack.clone(),
                port: key.clone(),
            })?;
        let host = match binding.host_ip.as_deref() {
            None | Some("") | Some("0.0.0.0") | Some("::") => "127.0.0.1".to_string(),
            Some(ip) if ip.contains(':') => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
        };
        Ok(format!("{host}:{}", binding.host_port.unwrap_or_default()))
    }

    /// The value of `key` in the environment of the plan's running `service`, `None`
    /// when it is not set.
    pub async fn service_env(
        &self,
        plan: &StackPlan,
        service: &str,
        key: &str,
    ) -> Result<Option<String>, DockerError> {
        let found = self.stack_container(plan, service).await?;
        let env = found.config.and_then(|c| c.env).unwrap_or_default();
        Ok(env.into_iter().find_map(|entry| {
            let (k, v) = entry.split_once('=')?;
            (k == key).then(|| v.to_string())
        }))
    }
}
