//! Looking at stacks: `status` lists every katotune container (stale ones from
//! crashed runs included), `logs` streams a stack's logs, `tail_logs` reads the
//! last lines of one container.

use std::collections::HashMap;

use bollard::container::LogOutput;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt};
use serde::Serialize;

use super::{DockerBackend, DockerError};
use crate::stack::plan::labels;

/// Label naming a container's secret env keys, so its logs can be masked later
/// without the plan.
pub(super) const SECRET_ENV_LABEL: &str = "io.katotune.secret-env";

/// One katotune container as the engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    pub stack: String,
    pub service: String,
    pub profile: String,
    pub run_id: String,
    pub image: String,
    /// `created`, `running`, `exited`, ...
    pub state: String,
    /// `healthy`, `unhealthy` or `starting` for containers with a health check.
    pub health: Option<String>,
    pub ports: Vec<PublishedPort>,
    pub created: Option<DateTime<Utc>>,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub container: u16,
    pub host: u16,
    pub host_ip: String,
}

impl DockerBackend {
    /// Every katotune-labelled container, of one stack or of all stacks (so stale
    /// containers from crashed runs show up), sorted by stack then service.
    pub async fn status(&self, stack: Option<&str>) -> Result<Vec<ContainerStatus>, DockerError> {
        let summaries = self.stack_containers(stack).await?;
        let mut statuses: Vec<ContainerStatus> = summaries.into_iter().map(status_of).collect();
        statuses
            .sort_by(|a, b| (&a.stack, &a.service, &a.name).cmp(&(&b.stack, &b.service, &b.name)));
        Ok(statuses)
    }

    /// Containers carrying the stack label (any value when `stack` is `None`).
    pub(super) async fn stack_containers(
        &self,
        stack: Option<&str>,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = label_filter(stack);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(DockerError::api(
                "list containers of stack",
                stack.unwrap_or("(all)"),
            ))
    }

    /// Sends the logs of every container of the stack to `sink`, one line at a time,
    /// each prefixed with its service: the last `tail` lines, then new lines as they
    /// come when `follow` is set (until every container stops).
    pub async fn logs(
        &self,
        stack: &str,
        tail: usize,
        follow: bool,
        mut sink: impl FnMut(String),
    ) -> Result<(), DockerError> {
        let mut containers = self.status(Some(stack)).await?;
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut secrets = Vec::new();
        for container in &containers {
            secrets.extend(self.secret_values(&container.name).await?);
        }
        let streams = containers.into_iter().map(|c| {
            let prefix = c.service.clone();
            self.log_lines(&c.name, tail, follow)
                .map(move |line| line.map(|line| format!("{prefix} | {line}")))
                .boxed()
        });
        let mut merged = stream::select_all(streams);
        while let Some(line) = merged.next().await {
            sink(mask(&line?, &secrets));
        }
        Ok(())
    }

    /// The last `lines` log lines (stdout and stderr) of one container.
    pub async fn tail_logs(
        &self,
        container: &str,
        lines: usize,
    ) -> Result<Vec<String>, DockerError> {
        let mut all = Vec::new();
        let mut stream = self.log_lines(container, lines, false).boxed();
        while let Some(line) = stream.next().await {
            all.push(line?);
        }
        let keep = all.len().saturating_sub(lines);
        let secrets = self.secret_values(container).await?;
        Ok(all
            .split_off(keep)
            .iter()
            .map(|line| mask(line, &secrets))
            .collect())
    }

    /// The values of the container's secret env keys (named by its label).
    async fn secret_values(&self, container: &str) -> Result<Vec<String>, DockerError> {
        let Some(found) = self.inspect_if_exists(container).await? else {
            return Ok(Vec::new());
        };
        let config = found.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let keys: Vec<&str> = labels
            .get(SECRET_ENV_LABEL)
            .map(|keys| keys.split(',').filter(|k| !k.is_empty()).collect())
            .unwrap_or_default();
        let values = config
            .env
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| {
                let (key, value) = entry.split_once('=')?;
                (keys.contains(&key) && !value.is_empty()).then(|| value.to_string())
            });
        Ok(values.collect())
    }

    fn log_lines(
        &self,
        container: &str,
        tail: usize,
        follow: bool,
    ) -> impl Stream<Item = Result<String, DockerError>> + '_ {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.to_string())
            .build();
        let name = container.to_string();
        self.docker
            .logs(container, Some(options))
            .flat_map(move |chunk| {
                let lines: Vec<Result<String, DockerError>> = match chunk {
                    Ok(output) => text_of(output).lines().map(|l| Ok(l.to_string())).collect(),
                    Err(err) => vec![Err(DockerError::api("read logs of container", &name)(err))],
                };
                stream::iter(lines)
            })
    }
}

/// Replaces every secret value in the text with `***`.
pub(super) fn mask(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_string(), |clean, secret| {
            clean.replace(secret.as_str(), "***")
        })
}

fn text_of(output: LogOutput) -> String {
    String::from_utf8_lossy(&output.into_bytes()).into_owned()
}

fn label_filter(stack: Option<&str>) -> HashMap<String, Vec<String>> {
    let value = match stack {
        Some(stack) => format!("{}={stack}", labels::STACK),
        None => labels::STACK.to_string(),
    };
    HashMap::from([("label".to_string(), vec![value])])
}

fn status_of(summary: ContainerSummary) -> ContainerStatus {
    let labels = summary.labels.unwrap_or_default();
    let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
    let name = summary
        .names
        .and_then(|names| names.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let ports = summary
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some(PublishedPort {
                container: p.private_port,
                host: p.public_port?,
                host_ip: p.ip.unwrap_or_default(),
            })
        })
        .collect();
    ContainerStatus {
        name,
        stack: label(labels::STACK),
        service: label(labels::SERVICE),
        profile: label(labels::PROFILE),
        run_id: label(labels::RUN_ID),
        image: summary.image.unwrap_or_default(),
        state: summary.state.map(|s| s.to_string()).unwrap_or_default(),
        health: summary.status.as_deref().and_then(health_from_status),
        ports,
        created: summary
            .created
            .and_then(|secs| DateTime::from_timestamp(secs, 0)),
    }
}

/// Health from the engine's status text ("Up 5 seconds (healthy)"): older engines
/// do not report it separately in the container list.
fn health_from_status(status: &str) -> Option<String> {
    let inner = status.rsplit_once('(')?.1.strip_suffix(')')?;
    let health = inner.strip_prefix("health: ").unwrap_or(inner);
    matches!(health, "healthy" | "unhealthy" | "starting").then(|| health.to_string())
}

#[cfg(test)]
mod tests {
    use super::health_from_status;

    #[test]
    fn health_is_read_from_the_engine_status_text() {
        assert_eq!(
            health_from_status("Up 5 seconds (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(
            health_from_status("Up 2 minutes (unhealthy)").as_deref(),
            Some("unhealthy")
        );
        assert_eq!(health_from_status("Exited (3) 2 seconds ago"), None);
        assert_eq!(health_from_status("Up 5 seconds"), None);
    }
}
