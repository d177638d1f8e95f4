//! katotune's own run of a container's health check, so readiness does not wait out
//! Docker's first `interval`.
//!
//! Docker runs a container's first health check one `interval` after it starts (30 s
//! for KATO's and ClickHouse's checks), and only engines with API 1.44 or later
//! (Docker 25) know `start_interval`. While Docker still says `starting`, katotune
//! runs the container's *own* check command inside it (`docker exec`, the same
//! command, the same timeout): the check keeps its meaning and answers within a poll
//! of the service being ready. Docker's status catches up at its next interval.

use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::StreamExt;

use super::DockerBackend;
use crate::stack::plan::HealthSpec;

/// The command a health check's `test` runs, as `docker exec` takes it; `None` for
/// `NONE` or an empty test. Source: Docker's HEALTHCHECK forms (`CMD`, `CMD-SHELL`).
pub fn exec_command(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((form, args)) if form == "CMD" && !args.is_empty() => Some(args.to_vec()),
        Some((form, args)) if form == "CMD-SHELL" && !args.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), args.join(" ")])
        }
        _ => None,
    }
}

impl DockerBackend {
    /// Runs `health`'s check inside `container`; true when it exits 0 within the
    /// check's timeout. Any failure (no shell, exec refused, timeout) is "not yet".
    pub(super) async fn own_check(&self, container: &str, health: &HealthSpec) -> bool {
        let Some(cmd) = exec_command(&health.test) else {
            return false;
        };
        let timeout = health.timeout.max(Duration::from_secs(1));
        tokio::time::timeout(timeout, self.exec_status(container, cmd))
            .await
            .ok()
            .flatten()
            == Some(0)
    }

    async fn exec_status(&self, container: &str, cmd: Vec<String>) -> Option<i64> {
        let config = ExecConfig {
            cmd: Some(cmd),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self.docker.create_exec(container, config).await.ok()?;
        let started = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .ok()?;
        if let StartExecResults::Attached { mut output, .. } = started {
            while output.next().await.is_some() {}
        }
        self.docker.inspect_exec(&created.id).await.ok()?.exit_code
    }
}

#[cfg(test)]
mod tests {
    use super::exec_command;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn both_health_check_forms_become_the_command_docker_would_run() {
        assert_eq!(
            exec_command(&s(&["CMD", "redis-cli", "ping"])),
            Some(s(&["redis-cli", "ping"]))
        );
        assert_eq!(
            exec_command(&s(&["CMD-SHELL", "clickhouse-client --query 'SELECT 1'"])),
            Some(s(&[
                "/bin/sh",
                "-c",
                "clickhouse-client --query 'SELECT 1'"
            ]))
        );
        assert_eq!(exec_command(&s(&["NONE"])), None);
        assert_eq!(exec_command(&s(&["CMD"])), None);
    }
}
