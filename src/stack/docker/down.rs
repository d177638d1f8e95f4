//! `down`: remove one stack's containers, then its network, then (if asked) its
//! volumes; only resources labelled `io.katotune.stack=<stack>` are touched.

use std::collections::HashMap;

use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};

use super::error::is_not_found;
use super::{DockerBackend, DockerError, DownReport};
use crate::stack::plan::labels;

/// Seconds a container gets to stop on SIGTERM before Docker kills it.
const STOP_GRACE_SECONDS: i32 = 10;

impl DockerBackend {
    /// Removes every resource labelled with this stack: containers (forced, with
    /// their anonymous volumes), then networks, then named volumes when `volumes`.
    pub async fn down(&self, stack: &str, volumes: bool) -> Result<DownReport, DockerError> {
        let mut report = DownReport {
            stack: stack.to_string(),
            ..Default::default()
        };
        for summary in self.stack_containers(Some(stack)).await? {
            let Some(id) = summary.id else { continue };
            let name = summary
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.clone());
            self.stop_gracefully(&id).await;
            self.remove_container(&id).await?;
            report.containers.push(name);
        }
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={stack}", labels::STACK)],
        )]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(DockerError::api("list networks of stack", stack))?;
        for network in networks {
            let Some(name) = network.name else { continue };
            match self.docker.remove_network(&name).await {
                Err(err) if !is_not_found(&err) => {
                    return Err(DockerError::api("remove network", &name)(err))
                }
                _ => report.networks.push(name),
            }
        }
        if volumes {
            report.volumes = self.remove_volumes(stack, &filters).await?;
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

    async fn remove_volumes(
        &self,
        stack: &str,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<String>, DockerError> {
        let options = ListVolumesOptionsBuilder::default()
            .filters(filters)
            .build();
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(DockerError::api("list volumes of stack", stack))?;
        let mut removed = Vec::new();
        for volume in listed.volumes.unwrap_or_default() {
            match self
                .docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Err(err) if !is_not_found(&err) => {
                    return Err(DockerError::api("remove volume", &volume.name)(err))
                }
                _ => removed.push(volume.name),
            }
        }
        Ok(removed)
    }
}
