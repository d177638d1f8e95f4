//! What it takes to reproduce a comparison: katotune's version and revision, the
//! host, the dataset and when it ran. Backends and resolved profiles are per profile.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use sysinfo::System;

use super::model::ProfileRuns;
use crate::train::dataset::DatasetIdentity;

/// Where and with what a comparison ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproMeta {
    /// katotune's package version.
    pub katotune_version: String,
    /// Short git revision of katotune's source, or `unknown`.
    pub git_revision: String,
    /// The machine katotune ran on.
    pub host: HostInfo,
    /// The corpus every profile trained on (the reference's, when they differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetIdentity>,
    /// When the first profile started (RFC 3339).
    pub started_at: String,
    /// When the last profile finished (RFC 3339).
    pub finished_at: String,
    /// The host's 1-minute load average when the comparison started (`compare` only;
    /// `None` where the system does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average_at_start: Option<f64>,
}

/// The machine katotune ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// CPU brand string, e.g. `AMD EPYC 7B13`.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Physical cores, when the system says.
    #[serde(default)]
    pub physical_cores: Option<usize>,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Operating system and version, e.g. `Linux (Debian GNU/Linux 12)`.
    pub os: String,
}

impl ReproMeta {
    /// Describes this process's katotune and host, for a run between the two times.
    /// The dataset is filled in by [`Comparison::build`](super::Comparison::build)
    /// from the run records when it is `None`.
    pub fn capture(started_at: impl Into<String>, finished_at: impl Into<String>) -> Self {
        Self {
            katotune_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision(),
            host: HostInfo::capture(),
            dataset: None,
            started_at: started_at.into(),
            finished_at: finished_at.into(),
            load_average_at_start: None,
        }
    }
}

impl ReproMeta {
    /// For run records rendered again (`katotune report`): the first start and last
    /// finish of the records and the katotune version that wrote the last one. Run
    /// records do not carry the host, so this machine is described instead.
    pub fn from_records(inputs: &[ProfileRuns]) -> Self {
        let records = || inputs.iter().flat_map(|i| &i.records);
        // RFC 3339 times in one zone sort as text.
        let started = records().map(|r| r.started_at.clone()).min();
        let finished = records().map(|r| r.finished_at.clone()).max();
        let mut meta = Self::capture(started.unwrap_or_default(), finished.unwrap_or_default());
        if let Some(version) = records().last().map(|r| r.katotune_version.clone()) {
            meta.katotune_version = version;
        }
        meta
    }
}

/// The 1-minute load average now (Linux and macOS), `None` elsewhere.
pub fn load_average() -> Option<f64> {
    let one = System::load_average().ok()?.one;
    (one.is_finite() && one >= 0.0 && cfg!(unix)).then_some(one)
}

impl HostInfo {
    /// Reads the CPU, memory and OS of this machine; unknown parts say `unknown`.
    pub fn capture() -> Self {
        let unknown = || "unknown".to_string();
        let (cpu, cores, memory_bytes) = match System::new() {
            Ok(mut system) => {
                system.refresh_cpu_all();
                system.refresh_memory();
                let cpu = system
                    .cpus()
                    .first()
                    .map(|c| c.brand().trim().to_string())
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(unknown);
                (cpu, system.cpus().len(), system.total_memory())
            }
            Err(_) => (unknown(), 0, 0),
        };
        Self {
            cpu,
            cores,
            physical_cores: System::physical_core_count().ok(),
            memory_bytes,
            os: System::long_os_version().unwrap_or_else(|_| unknown()),
        }
    }

    /// `AMD EPYC 7B13, 2 cores, 7.8 GiB, Linux (Debian GNU/Linux 12)`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} cores, {:.1} GiB, {}",
            self.cpu,
            self.cores,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.os
        )
    }
}

/// katotune's source revision.
///
/// A build can pin it with `KATOTUNE_GIT_REVISION` (release and CI builds); otherwise
/// it is asked of git in the source tree the binary was built from, which is right for
/// `cargo run` and `cargo install --path`. The user's working directory is not used:
/// it is their project, not katotune's.
fn git_revision() -> String {
    if let Some(pinned) = option_env!("KATOTUNE_GIT_REVISION") {
        return pinned.to_string();
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !source.exists() {
        return "unknown".into();
    }
    Command::new("git")
        .arg("-C")
        .arg(source)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_describes_this_machine_and_build() {
        let meta = ReproMeta::capture("2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z");
        assert_eq!(meta.katotune_version, env!("CARGO_PKG_VERSION"));
        assert!(!meta.git_revision.is_empty());
        assert!(meta.host.cores >= 1, "{:?}", meta.host);
        assert!(meta.host.memory_bytes > 0, "{:?}", meta.host);
        assert!(meta.host.describe().contains("cores"));
    }
}
