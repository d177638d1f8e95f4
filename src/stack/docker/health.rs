//! Waiting for a stack to be ready, and finding its API: poll inspect with backoff
//! until every container runs (and is healthy where it has a check); a container
//! that exits or turns unhealthy fails at once, with the logs of the whole stack.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use tokio::time::Instant;

use super::observe::mask;
use super::{DockerBackend, DockerError};
use crate::stack::plan::{ContainerSpec, StackPlan};

/// Log lines per container shown when a stack fails to start.
const FAILURE_LOG_LINES: usize = 50;
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);

/// Where one container stands on the way to ready.
enum Readiness {
    Ready,
    Waiting,
    /// Running, and Docker has not run its health check yet (`starting`).
    Starting,
    Exited {
        exit_code: i64,
        error: String,
    },
    Unhealthy {
        last_check: String,
    },
    Missing,
}

impl DockerBackend {
    /// Waits until every container of the plan runs, and is healthy where it defines
    /// a health check. Fails early when one exits or turns unhealthy, and after
    /// `timeout` otherwise; the error carries the last 50 log lines of every
    /// container of the stack (secret values masked).
    ///
    /// Returns, per container in plan order, how long it took from its start to
    /// ready. A container Docker still calls `starting` is ready once katotune's own
    /// run of its health check passes (see [`super::check`]).
    pub async fn wait_healthy(
        &self,
        plan: &StackPlan,
        timeout: Duration,
    ) -> Result<Vec<ServiceReady>, DockerError> {
        let all: Vec<&ContainerSpec> = plan.containers.iter().collect();
        self.wait_for(plan, &all, timeout).await
    }

    /// Waits for some containers of the plan (all of them, or one's dependencies).
    /// Every container is checked on every poll, and all must be ready on two polls
    /// in a row, so one that exits right after starting is not taken for ready.
    pub(super) async fn wait_for(
        &self,
        plan: &StackPlan,
        containers: &[&ContainerSpec],
        timeout: Duration,
    ) -> Result<Vec<ServiceReady>, DockerError> {
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        let mut ready_before = false;
        let mut times: Vec<Option<ServiceReady>> = vec![None; containers.len()];
        loop {
            let mut pending = Vec::new();
            for (spec, time) in containers.iter().zip(times.iter_mut()) {
                let (state, started_at) = self.readiness(&spec.name).await?;
                let ready = match state {
                    Readiness::Ready => true,
                    Readiness::Starting => match &spec.health {
                        Some(h) => self.own_check(&spec.name, h).await,
                        None => false,
                    },
                    Readiness::Waiting => false,
                    failed => return Err(self.failure(plan, spec, failed).await),
                };
                if !ready {
                    pending.push(spec.name.as_str());
                    *time = None;
                } else if time.is_none() {
                    *time = Some(ServiceReady::now(&spec.service, started_at));
                }
            }
            if pending.is_empty() && ready_before {
                return Ok(times.into_iter().flatten().collect());
            }
            ready_before = pending.is_empty();
            if started.elapsed() >= timeout {
                return Err(DockerError::HealthTimeout {
                    stack: plan.stack.clone(),
                    waited: humantime::format_duration(timeout).to_string(),
                    pending: pending.join(", "),
                    logs: self.stack_logs(plan).await,
                });
            }
            let pause_now = if ready_before { FIRST_POLL } else { pause };
            tokio::time::sleep(pause_now.min(timeout.saturating_sub(started.elapsed()))).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    async fn readiness(&self, name: &str) -> Result<(Readiness, Option<String>), DockerError> {
        Ok(match self.inspect_if_exists(name).await? {
            None => (Readiness::Missing, None),
            Some(found) => {
                let started_at = found.state.as_ref().and_then(|s| s.started_at.clone());
                (readiness_of(&found), started_at)
            }
        })
    }

    async fn failure(
        &self,
        plan: &StackPlan,
        spec: &ContainerSpec,
        state: Readiness,
    ) -> DockerError {
        let container = spec.name.clone();
        let stack = plan.stack.clone();
        match state {
            Readiness::Exited { exit_code, error } => DockerError::ContainerExited {
                container,
                stack,
                exit_code,
                error,
                logs: self.stack_logs(plan).await,
            },
            Readiness::Unhealthy { last_check } => DockerError::Unhealthy {
                container,
                stack,
                last_check: redact(plan, &last_check),
                logs: self.stack_logs(plan).await,
            },
            _ => DockerError::NotApplied { container, stack },
        }
    }

    /// The last log lines of every container of the stack, each prefixed with its
    /// service, secret values masked.
    pub(super) async fn stack_logs(&self, plan: &StackPlan) -> String {
        let mut text = String::new();
        for spec in &plan.containers {
            let lines = match self.tail_logs(&spec.name, FAILURE_LOG_LINES).await {
                Ok(lines) if lines.is_empty() => vec!["(no output)".to_string()],
                Ok(lines) => lines,
                Err(err) => vec![format!("(no logs: {err})")],
            };
            for line in lines {
                text.push_str(&format!("  {} | {}\n", spec.service, redact(plan, &line)));
            }
        }
        text
    }

    /// The HTTP address of the plan's API service (its first replica), from the
    /// host port Docker published for it: `http://127.0.0.1:<port>`.
    pub async fn api_endpoint(&self, plan: &StackPlan) -> Result<String, DockerError> {
        let mut all = self.api_endpoints(plan).await?;
        Ok(all.remove(0))
    }

    /// The HTTP address of every KATO replica of the plan, replica 1 first; never
    /// empty.
    pub async fn api_endpoints(&self, plan: &StackPlan) -> Result<Vec<String>, DockerError> {
        let no_port = |service: &str| DockerError::NoPublishedPort {
            service: service.to_string(),
            stack: plan.stack.clone(),
            port: "(none)".into(),
        };
        let replicas = plan.api_containers();
        if replicas.is_empty() {
            return Err(no_port(&plan.api_service));
        }
        let mut urls = Vec::with_capacity(replicas.len());
        for spec in replicas {
            let port = spec.ports.first().ok_or_else(|| no_port(&spec.service))?;
            let address = self
                .published_address(plan, &spec.service, port.container)
                .await?;
            urls.push(format!("http://{address}"));
        }
        Ok(urls)
    }
}

fn readiness_of(found: &ContainerInspectResponse) -> Readiness {
    let Some(state) = found.state.as_ref() else {
        return Readiness::Waiting;
    };
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => {}
        Some(ContainerStateStatusEnum::CREATED) => return Readiness::Missing,
        Some(ContainerStateStatusEnum::EXITED)
        | Some(ContainerStateStatusEnum::DEAD)
        | Some(ContainerStateStatusEnum::REMOVING) => {
            let error = state.error.as_deref().filter(|e| !e.is_empty());
            return Readiness::Exited {
                exit_code: state.exit_code.unwrap_or(-1),
                error: error.map(|e| format!(" ({e})")).unwrap_or_default(),
            };
        }
        _ => return Readiness::Waiting,
    }
    let Some(health) = state.health.as_ref() else {
        return Readiness::Ready;
    };
    match health.status {
        Some(HealthStatusEnum::HEALTHY) | Some(HealthStatusEnum::NONE) | None => Readiness::Ready,
        Some(HealthStatusEnum::STARTING) => Readiness::Starting,
        Some(HealthStatusEnum::UNHEALTHY) => Readiness::Unhealthy {
            last_check: health
                .log
                .as_ref()
                .and_then(|log| log.last())
                .and_then(|check| check.output.clone())
                .map(|out| out.trim().to_string())
                .filter(|out| !out.is_empty())
                .unwrap_or_else(|| "no output".into()),
        },
        _ => Readiness::Waiting,
    }
}

/// How long one service took from its container's start to ready.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServiceReady {
    /// The plan's service name (`redis`, `clickhouse`, `kato`).
    pub service: String,
    /// From the container's start (Docker's `StartedAt`) to the poll that found it
    /// ready; `None` when the engine gave no start time.
    pub after: Option<Duration>,
}

/// `redis 0.6 s, clickhouse 2.1 s, kato 3.4 s` (each from its own start to ready);
/// a service whose container `report` found unchanged and running says `kato (already
/// running)` instead, since its start time is the container's age, not a wait.
pub fn describe_times(times: &[ServiceReady], report: &super::ApplyReport) -> String {
    let untouched = |service: &str| {
        report
            .containers
            .iter()
            .any(|c| c.service == service && c.change == super::ContainerChange::Unchanged)
    };
    times
        .iter()
        .map(|t| match t.after {
            _ if untouched(&t.service) => format!("{} (already running)", t.service),
            Some(d) => format!("{} {:.1} s", t.service, d.as_secs_f64()),
            None => format!("{} (no start time)", t.service),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl ServiceReady {
    fn now(service: &str, started_at: Option<String>) -> Self {
        let after = started_at
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            });
        ServiceReady {
            service: service.to_string(),
            after,
        }
    }
}

/// Masks every secret env value of the plan in a line of text.
pub(super) fn redact(plan: &StackPlan, text: &str) -> String {
    let secrets: Vec<String> = plan
        .containers
        .iter()
        .flat_map(|spec| {
            spec.secret_env
                .iter()
                .filter_map(|key| spec.env.get(key).cloned())
        })
        .collect();
    mask(text, &secrets)
}
