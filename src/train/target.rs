//! Where a run trains: the server's URL, what it is, its KATO replicas (with the rule
//! that gives each worker one replica), and katotune's engine when it runs in this
//! process.

use super::record::{BackendInfo, Transport};
use crate::engine::{EngineHandle, RunningEngine};

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of the server (replica 1 when there are several).
    pub url: String,
    pub backend: BackendInfo,
    /// Base URLs of every KATO replica behind one knowledge base (`stack.replicas`),
    /// `url` first; empty means `url` alone. Each worker's sessions stay on one replica
    /// ([`replica_of_worker`]).
    pub replicas: Vec<String>,
    /// katotune's engine, when it runs in this process: the trainer may call it
    /// directly (see `train::link`).
    pub engine: Option<EngineHandle>,
}

impl Target {
    /// katotune's engine at `url` (started in-process or by `katotune serve`), reached
    /// over HTTP.
    pub fn embedded(url: String) -> Self {
        Self {
            backend: BackendInfo {
                kind: "embedded".into(),
                url: url.clone(),
                server: format!("katotune-engine {}", env!("CARGO_PKG_VERSION")),
                transport: Transport::Http,
            },
            replicas: vec![url.clone()],
            url,
            engine: None,
        }
    }

    /// katotune's engine started in this process: called directly unless the profile
    /// says `stack.transport: http` (its URL stays for that, and for `/health`).
    pub fn in_process(engine: &RunningEngine) -> Self {
        Self {
            engine: Some(engine.handle()),
            ..Self::embedded(engine.url())
        }
    }

    /// Every replica's base URL, `url` first (at least one).
    pub fn urls(&self) -> Vec<String> {
        match self.replicas.is_empty() {
            true => vec![self.url.clone()],
            false => self.replicas.clone(),
        }
    }
}

/// The replica (0-based) that worker `worker` (0-based) sends all its sessions to:
/// round-robin, so `W` workers spread over `R` replicas differ by at most one per
/// replica. KATO's session locks are per process (API.md 7), so one worker's calls
/// never go to two replicas.
pub fn replica_of_worker(worker: usize, replicas: usize) -> usize {
    worker % replicas.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_go_round_robin_over_replicas() {
        let spread = |workers: usize, replicas: usize| {
            let mut per = vec![0; replicas];
            for w in 0..workers {
                per[replica_of_worker(w, replicas)] += 1;
            }
            per
        };
        assert_eq!(spread(4, 2), [2, 2]);
        assert_eq!(spread(5, 2), [3, 2]);
        assert_eq!(spread(2, 3), [1, 1, 0]);
        assert_eq!(spread(3, 1), [3]);
        assert_eq!(
            replica_of_worker(7, 0),
            0,
            "no replicas means the one server"
        );
    }
}
