//! Scaling a stack down: KATO replicas katotune made that the plan no longer has
//! (`stack.replicas` was lowered) are removed by `apply`.

use super::{DockerBackend, DockerError};
use crate::stack::plan::{labels, StackPlan};

impl DockerBackend {
    /// Removes KATO replicas of this stack that the plan no longer has: containers
    /// with the stack's and the replica label that katotune's record says it created
    /// (a stranger is left alone, as `down` leaves it). They hold no data.
    pub(super) async fn remove_surplus_replicas(
        &self,
        plan: &StackPlan,
    ) -> Result<Vec<String>, DockerError> {
        let recorded = super::record::load(&plan.stack);
        let mut removed = Vec::new();
        for found in self.stack_containers(Some(&plan.stack)).await? {
            let is_replica = found
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(labels::REPLICA));
            let (Some(id), Some(name)) = (found.id, found.names.and_then(|n| n.into_iter().next()))
            else {
                continue;
            };
            let name = name.trim_start_matches('/').to_string();
            let planned = plan.containers.iter().any(|c| c.name == name);
            if is_replica && !planned && recorded.created(&name, &id) {
                self.remove_container(&id).await?;
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            if let Err(e) = super::record::forget(&plan.stack, &removed, &[]) {
                tracing::warn!("could not update katotune's record of {}: {e}", plan.stack);
            }
        }
        Ok(removed)
    }
}
