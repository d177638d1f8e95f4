//! Where KATO runs: the embedded engine, a Docker stack, or an external URL.
//!
//! [`up`] brings a profile's KATO up and [`ready`] waits until it really works: `/health`
//! answers *and* a probe learns a pattern whose name equals the one katotune computes
//! (KATO's `/health` says 200 even when ClickHouse is down, API.md 2.1).

pub mod compose;
pub mod docker;
pub mod doctor;
pub mod guard;
pub mod image;
pub mod kb_guard;
pub mod kb_read;
pub mod kubernetes;
pub mod plan;
pub mod probe;
pub mod run_nodes;
pub mod stores;
pub mod template;

use std::path::PathBuf;

use crate::engine::{self, EngineConfig, RunningEngine};
use crate::profile::schema::{Backend, Port};
use crate::profile::Profile;
use crate::train::record::{BackendInfo, Transport};
use crate::train::runner::Target;

pub use guard::StackGuard;
pub use stores::{stores_of, StoreUrls};

/// A KATO that is up, and how to take it down again.
pub struct StackHandle {
    pub url: String,
    pub backend: BackendInfo,
    /// Every KATO replica's base URL, `url` first (one entry but for a docker stack
    /// with `stack.replicas` above 1).
    pub replicas: Vec<String>,
    /// Redis and ClickHouse of a docker KATO stack or of an external KATO whose stores
    /// katotune was told about (`None` otherwise).
    stores: Option<StoreUrls>,
    running: Running,
}

enum Running {
    Embedded(RunningEngine),
    External,
    Docker {
        backend: docker::DockerBackend,
        stack: String,
        /// Whether this invocation created the stack (only then is it taken down).
        created: bool,
        /// Remove its volumes too when taking it down ([`Lifetime::Disposable`]).
        disposable: bool,
    },
}

/// Which stack `up` brings up on the docker backend, and what `down` removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Lifetime {
    /// The profile's own stack (`katotune-<profile>`): it may already run, and `down`
    /// keeps its volumes, so its knowledge base lives on.
    #[default]
    Profile,
    /// A stack of its own named `stack`, whose volumes `down` removes with it: a clean
    /// knowledge base that nothing else sees (one per `compare` run). Other backends
    /// ignore it.
    Disposable { stack: String },
}

/// Why a stack could not be brought up or made ready.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot start the embedded engine: {0}")]
    Engine(#[from] engine::EngineError),
    #[error(
        "{} already holds a knowledge base from an earlier run; continue it with --resume, \
         replace it with --fresh, or set stack.kb_file / stack.ephemeral",
        .0.display()
    )]
    KbExists(PathBuf),
    #[error("cannot remove the old knowledge base {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the stack is not ready: {0}")]
    NotReady(String),
    #[error(transparent)]
    Docker(#[from] docker::DockerError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error("interrupted while bringing the stack up; what this run created was removed")]
    Interrupted,
    #[error(
        "stack `{stack}` (template `{template}`) has no Redis and ClickHouse to hold a \
         knowledge base; use a profile with `stack.template: kato`"
    )]
    NoStores { stack: String, template: String },
    #[error(transparent)]
    Store(crate::kb::stores::StoreError),
    #[error(
        "the knowledge base in the stack's stores already holds data for {}; continue it \
         with --resume, or replace those nodes (only them) with --fresh",
        .0.join(", ")
    )]
    KbInStores(Vec<String>),
    /// A katotune engine serving as the external KATO holds data on the profile's nodes.
    #[error(
        "the knowledge base on the server at {url} already holds data for {}; continue \
         it with --resume, or replace those nodes (only them) with --fresh",
        .nodes.join(", ")
    )]
    KbOnServer { url: String, nodes: Vec<String> },
    /// `--fresh` could not remove a node of the profile on the external server.
    #[error("--fresh could not remove node {node} on the server at {url}: {why}")]
    NodeNotRemoved {
        url: String,
        node: String,
        why: String,
    },
    #[error(
        "the stack's Redis and ClickHouse disagree: {}; {}",
        .0.iter().map(kb_guard::Disagreement::describe).collect::<Vec<_>>().join("; "),
        kb_guard::DISAGREE_FIX
    )]
    StoresDisagree(Vec<kb_guard::Disagreement>),
}

/// How to treat an embedded knowledge base left by an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KbStart {
    /// Refuse to start if it holds data (the default for a fresh run).
    RequireEmpty,
    /// Keep it and continue (resume).
    Continue,
    /// Delete it first (`--fresh`).
    Replace,
}

/// The embedded engine's knowledge-base file for `profile`, unless it is ephemeral.
pub fn kb_file(profile: &Profile) -> Option<PathBuf> {
    if profile.stack.ephemeral {
        return None;
    }
    Some(profile.stack.kb_file.clone().unwrap_or_else(|| {
        profile
            .report
            .output_dir
            .join(format!("{}.kato.db", profile.name))
    }))
}

/// Engine settings from a profile: the same environment names KATO reads.
pub fn engine_config(profile: &Profile) -> Result<EngineConfig, StackError> {
    let env = profile.server_env();
    let mut config = EngineConfig::from_vars(|name| {
        env.get(name)
            .cloned()
            .or_else(|| (name == "SERVICE_NAME").then(|| profile.stack.service_name.clone()))
    })?;
    let port = match profile.stack.port {
        Port::Auto => 0,
        Port::Fixed(p) => p,
    };
    let host: std::net::IpAddr = profile
        .stack
        .host
        .parse()
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    config.bind = std::net::SocketAddr::new(host, port);
    config.db_path = kb_file(profile);
    Ok(config)
}

/// Brings the profile's KATO up. A Ctrl-C (`cancel`) while a docker stack is being
/// applied removes what this invocation created.
pub async fn up(
    profile: &Profile,
    kb: KbStart,
    run_id: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<StackHandle, StackError> {
    up_as(profile, kb, run_id, cancel, &Lifetime::Profile).await
}

/// [`up`] with the docker stack's [`Lifetime`].
pub async fn up_as(
    profile: &Profile,
    kb: KbStart,
    run_id: &str,
    cancel: &tokio_util::sync::CancellationToken,
    lifetime: &Lifetime,
) -> Result<StackHandle, StackError> {
    match profile.stack.backend {
        Backend::Embedded => {
            let config = engine_config(profile)?;
            // Locked before anything is replaced: `--fresh` never deletes a file another
            // live run has open.
            let mut lock = None;
            if let Some(path) = &config.db_path {
                let lock_file = crate::lock::lock_path(path);
                lock = Some(
                    crate::lock::RunLock::acquire(&lock_file, "knowledge base")
                        .map_err(engine::EngineError::from)?,
                );
                prepare_kb_file(path, kb)?;
            }
            let engine = engine::start_locked(config, lock).await?;
            let Target {
                url,
                backend,
                replicas,
                ..
            } = Target::embedded(engine.url());
            Ok(StackHandle {
                backend,
                url,
                replicas,
                stores: None,
                running: Running::Embedded(engine),
            })
        }
        Backend::External => {
            let url = profile.stack.url.clone().unwrap_or_default();
            let stores = external_stores(profile);
            match &stores {
                Some(found) => guard_stores(profile, found, kb).await?,
                None => guard_engine_server(profile, &url, kb).await?,
            }
            Ok(StackHandle {
                backend: BackendInfo {
                    kind: "external".into(),
                    url: url.clone(),
                    server: String::new(),
                    transport: Transport::Http,
                },
                replicas: vec![url.clone()],
                url,
                stores,
                running: Running::External,
            })
        }
        Backend::Docker => up_docker(profile, kb, run_id, cancel, lifetime).await,
    }
}

async fn up_docker(
    profile: &Profile,
    kb: KbStart,
    run_id: &str,
    cancel: &tokio_util::sync::CancellationToken,
    lifetime: &Lifetime,
) -> Result<StackHandle, StackError> {
    let (plan, disposable) = match lifetime {
        Lifetime::Profile => (template::render(profile, run_id)?, false),
        Lifetime::Disposable { stack } => (template::render_as(profile, run_id, stack)?, true),
    };
    let backend = docker::DockerBackend::connect().await?;
    let existed = !backend.status(Some(&plan.stack)).await?.is_empty();
    let bring_up = async {
        // `apply` logs each container's change once (INFO, shown with -v).
        let report = backend.apply(&plan, run_id).await?;
        let times = backend.wait_healthy(&plan, profile.health.timeout).await?;
        crate::app::output::note(format_args!(
            "{}: services ready after {}",
            plan.stack,
            docker::describe_times(&times, &report)
        ));
        let urls = backend.api_endpoints(&plan).await?;
        let stores = match stores::has_stores(&plan) {
            true => Some(stores::of_plan(&backend, &plan).await?),
            false => None,
        };
        if let Some(found) = &stores {
            guard_stores(profile, found, kb).await?;
        }
        Ok::<_, StackError>((urls, stores))
    };
    let (replicas, stores) = tokio::select! {
        result = bring_up => match result {
            Ok(found) => found,
            Err(e) => {
                if !existed {
                    let _ = backend.down(&plan.stack, disposable).await;
                }
                return Err(e);
            }
        },
        _ = cancel.cancelled() => {
            if !existed {
                let _ = backend.down(&plan.stack, disposable).await;
            }
            return Err(StackError::Interrupted);
        }
    };
    let image = plan
        .containers
        .iter()
        .find(|c| c.service == plan.api_service)
        .map(|c| c.image.clone())
        .unwrap_or_default();
    let url = replicas[0].clone();
    let shape = match replicas.len() {
        1 => String::new(),
        n => format!(", {n} replicas"),
    };
    Ok(StackHandle {
        backend: BackendInfo {
            kind: "docker".into(),
            url: url.clone(),
            server: format!("{} ({} template{shape})", image, plan.template),
            transport: Transport::Http,
        },
        url,
        replicas,
        stores,
        running: Running::Docker {
            backend,
            stack: plan.stack,
            created: !existed,
            disposable,
        },
    })
}

/// The KB ids of the profile's nodes under `service_name` (KATO's rule, API.md 2.2).
pub fn profile_kb_ids(profile: &Profile, service_name: &str) -> Vec<String> {
    (0..profile.training.chunk_sizes.len())
        .map(|level| crate::kato::pattern::kb_id(&profile.node_id(level), service_name))
        .collect()
}

/// The stores of an external KATO, when katotune is told where they are (env
/// `KATOTUNE_REDIS_URL` and `KATOTUNE_CLICKHOUSE_URL`, as for the `kb` commands); the
/// KB ids use the profile's `stack.service_name`. Without both, nothing is checked.
pub fn external_stores(profile: &Profile) -> Option<StoreUrls> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(StoreUrls {
        redis: var("KATOTUNE_REDIS_URL")?,
        clickhouse: var("KATOTUNE_CLICKHOUSE_URL")?,
        service_name: profile.stack.service_name.clone(),
    })
}

/// The stores rule for an external server without named stores that is a katotune
/// engine (it answers `GET /katotune/kb/{node}`; a real KATO answers 404 and is checked
/// only through `KATOTUNE_REDIS_URL`/`KATOTUNE_CLICKHOUSE_URL`): a fresh run refuses
/// nodes of the profile that hold patterns, `--fresh` removes exactly those nodes
/// (clear-all, then the engine's checkpoint), `--resume` keeps them. A server that
/// cannot be reached is left to the readiness check.
async fn guard_engine_server(profile: &Profile, url: &str, kb: KbStart) -> Result<(), StackError> {
    if kb == KbStart::Continue {
        return Ok(());
    }
    let nodes: Vec<String> = (0..profile.training.chunk_sizes.len())
        .map(|level| profile.node_id(level))
        .collect();
    let holding = run_nodes::holding_patterns(url, &nodes).await;
    let Some(holding) = holding.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    if kb == KbStart::RequireEmpty {
        return Err(StackError::KbOnServer {
            url: crate::secret::mask_url(url),
            nodes: holding,
        });
    }
    if let Some((node, why)) = run_nodes::remove_nodes(url, &holding)
        .await
        .into_iter()
        .next()
    {
        return Err(StackError::NodeNotRemoved {
            url: crate::secret::mask_url(url),
            node,
            why,
        });
    }
    for node in holding {
        crate::app::output::note(format_args!("--fresh: removed node {node} on the server"));
    }
    Ok(())
}

/// [`kb_guard::guard`] on a blocking thread; says what `--fresh` removed. `up` calls
/// it with [`KbStart::Continue`]: probe leftovers removed, disagreeing stores refused.
pub(crate) async fn guard_stores(
    profile: &Profile,
    found: &StoreUrls,
    kb: KbStart,
) -> Result<(), StackError> {
    let urls = found.for_kb();
    let ids = profile_kb_ids(profile, &found.service_name);
    let report = tokio::task::spawn_blocking(move || kb_guard::guard(&urls, &ids, kb))
        .await
        .map_err(|e| StackError::NotReady(format!("the store check stopped: {e}")))??;
    for (kb_id, rows, keys) in report.removed {
        crate::app::output::note(format_args!(
            "--fresh: removed {kb_id} ({rows} ClickHouse rows, {keys} Redis keys)"
        ));
    }
    if !report.probes_removed.is_empty() {
        tracing::info!(kbs = ?report.probes_removed, "removed what earlier readiness probes left in the stores");
    }
    Ok(())
}

fn prepare_kb_file(path: &std::path::Path, kb: KbStart) -> Result<(), StackError> {
    let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    match (kb, exists) {
        (KbStart::RequireEmpty, true) if crate::kb::engine_file::holds_knowledge(path) => {
            Err(StackError::KbExists(path.to_path_buf()))
        }
        (KbStart::Replace, true) => {
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                match std::fs::remove_file(&file) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StackError::Remove {
                            path: file,
                            source: e,
                        })
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        _ => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StackError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            Ok(())
        }
    }
}

impl StackHandle {
    /// The engine, when this stack is katotune's engine running in this process (the
    /// trainer may then call it without HTTP).
    pub fn engine(&self) -> Option<engine::EngineHandle> {
        match &self.running {
            Running::Embedded(engine) => Some(engine.handle()),
            _ => None,
        }
    }

    /// Where katotune reaches the stack's knowledge-base stores: a docker stack of
    /// the `kato` template has them, an external KATO when `KATOTUNE_REDIS_URL` and
    /// `KATOTUNE_CLICKHOUSE_URL` name them ([`external_stores`]), other stacks not.
    pub fn stores(&self) -> Option<&StoreUrls> {
        self.stores.as_ref()
    }

    /// The last 50 log lines of each container, for a readiness failure (docker only).
    pub async fn log_tails(&self) -> String {
        let Running::Docker { backend, stack, .. } = &self.running else {
            return String::new();
        };
        let mut out = String::new();
        for c in backend.status(Some(stack)).await.unwrap_or_default() {
            let lines = backend.tail_logs(&c.name, 50).await.unwrap_or_default();
            out.push_str(&format!(
                "\n--- {} ({}) ---\n{}",
                c.name,
                c.state,
                lines.join("\n")
            ));
        }
        out
    }

    /// Takes down what `up` started (the embedded engine flushes its knowledge base).
    /// A docker stack is removed only if this invocation created it and `keep` is off;
    /// a disposable one with its volumes.
    pub async fn down(self, keep: bool) {
        match self.running {
            Running::Embedded(engine) => engine.shutdown().await,
            Running::External => {}
            Running::Docker {
                backend,
                stack,
                created,
                disposable,
            } => {
                if keep || !created {
                    tracing::info!("leaving stack {stack} running (`katotune down` removes it)");
                } else if let Err(e) = backend.down(&stack, disposable).await {
                    tracing::error!("could not take stack {stack} down: {e}");
                }
            }
        }
    }
}
