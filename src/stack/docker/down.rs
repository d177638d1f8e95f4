//! `down`: remove one stack's containers, then its network, then (if asked) its
//! volumes. A container or volume is removed only when it carries the stack's label
//! (`io.katotune.stack=<stack>`) *and* katotune's record on this machine names it
//! ([`super::record`]); anything else labelled for the stack is listed and left alone.

use std::collections::HashMap;

use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};
use serde::Serialize;

use super::error::is_not_found;
use super::{record, DockerBackend, DockerError, DownReport};
use crate::stack::plan::labels;

/// Seconds a container gets to stop on SIGTERM before Docker kills it.
const STOP_GRACE_SECONDS: i32 = 10;

/// What `down` of one stack would remove, and what it would leave alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DownPlan {
    pub stack: String,
    /// Containers katotune created (labelled and recorded): (name, id).
    pub containers: Vec<(String, String)>,
    pub networks: Vec<String>,
    /// Volumes katotune created (labelled and recorded), sorted by name.
    pub volumes: Vec<String>,
    /// Labelled for the stack, but not in katotune's record: never removed.
    pub strangers: Vec<String>,
    /// Ids of the containers that keep data on a named volume: stopped gracefully
    /// before removal so they flush it (the rest are removed at once).
    pub holding_data: Vec<String>,
}

impl DownPlan {
    /// Whether there is nothing of this stack at all.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
            && self.strangers.is_empty()
    }
}

impl DockerBackend {
    /// Removes what katotune created for this stack (see [`DockerBackend::plan_down`]):
    /// containers (stopped with a grace period, then removed with their anonymous
    /// volumes), then networks, then named volumes when `volumes`.
    pub async fn down(&self, stack: &str, volumes: bool) -> Result<DownReport, DockerError> {
        let plan = self.plan_down(stack).await?;
        self.execute_down(&plan, volumes).await
    }

    /// Lists what `down` would remove from `stack`, and what it would leave alone.
    pub async fn plan_down(&self, stack: &str) -> Result<DownPlan, DockerError> {
        let recorded = record::load(stack);
        let mut plan = DownPlan {
            stack: stack.to_string(),
            ..Default::default()
        };
        for summary in self.stack_containers(Some(stack)).await? {
            let Some(id) = summary.id else { continue };
            let on_volume = summary
                .mounts
                .iter()
                .flatten()
                .any(|m| m.name.as_deref().is_some_and(|n| !n.is_empty()));
            let name = summary
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.clone());
            match recorded.created(&name, &id) {
                true => {
                    if on_volume {
                        plan.holding_data.push(id.clone());
                    }
                    plan.containers.push((name, id))
                }
                false => plan.strangers.push(name),
            }
        }
        let filters = stack_filter(stack);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(DockerError::api("list networks of stack", stack))?;
        plan.networks = networks.into_iter().filter_map(|n| n.name).collect();
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(DockerError::api("list volumes of stack", stack))?;
        for volume in listed.volumes.unwrap_or_default() {
            match recorded.volumes.contains(&volume.name) {
                true => plan.volumes.push(volume.name),
                false => plan.strangers.push(format!("volume {}", volume.name)),
            }
        }
        // Docker lists in no stated order; what `down` prints must not change
        // from one call to the next.
        plan.networks.sort();
        plan.volumes.sort();
        plan.strangers.sort();
        Ok(plan)
    }

    /// Removes what `plan` lists (volumes only when `volumes`), never its strangers;
    /// when strangers are left, the network stays too (they may use it).
    pub async fn execute_down(
        &self,
        plan: &DownPlan,
        volumes: bool,
    ) -> Result<DownReport, DockerError> {
        let mut report = DownReport {
            stack: plan.stack.clone(),
            ..Default::default()
        };
        for (name, id) in &plan.containers {
            if plan.holding_data.contains(id) {
                self.stop_gracefully(id).await;
            }
            self.remove_container(id).await?;
            report.containers.push(name.clone());
        }
        if plan.strangers.is_empty() {
            for name in &plan.networks {
                match self.docker.remove_network(name).await {
                    Err(err) if !is_not_found(&err) => {
                        return Err(DockerError::api("remove network", name)(err))
                    }
                    _ => report.networks.push(name.clone()),
                }
            }
        }
        if volumes {
            for name in &plan.volumes {
                self.remove_volume(name).await?;
                report.volumes.push(name.clone());
            }
        }
        if let Err(e) = record::forget(&plan.stack, &report.containers, &report.volumes) {
            tracing::warn!("could not update katotune's record of {}: {e}", plan.stack);
        }
        Ok(report)
    }

    /// `docker stop` with a grace period, so the stores flush (Redis writes its
    /// append-only file on SIGTERM; a forced removal would kill it and lose up to a
    /// second of writes). Failures are left to the forced removal that follows.
    async fn stop_gracefully(&self, id: &str) {
        let options = bollard::query_parameters::StopContainerOptionsBuilder::default()
            .t(STOP_GRACE_SECONDS)
            .build();
        let _ = self.docker.stop_container(id, Some(options)).await;
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        let removed = self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await;
        match removed {
            Err(err) if !is_not_found(&err) => Err(DockerError::api("remove volume", name)(err)),
            _ => Ok(()),
        }
    }
}

fn stack_filter(stack: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{}={stack}", labels::STACK)],
    )])
}
