//! The embedded KATO-compatible server: katotune's default backend.
//!
//! It speaks KATO 3.10.1's HTTP API (sessions, observe, observe-sequence, learn, STM,
//! config, patterns) with the same shapes, status codes, learning semantics and pattern
//! names, and keeps every node's knowledge base in one SQLite file (see [`store`] for
//! the schema) with a bounded memory cache (`KATOTUNE_ENGINE_CACHE_MB`, see [`kb`]). It answers `GET /predictions` with 501:
//! it does not compute predictions. Beyond KATO it honours the seed knobs for real
//! ([`EngineLimits`]) and serves katotune's own routes: `GET /katotune/kb/{node_id}`
//! (names and frequencies) and `POST /katotune/checkpoint` (the durability barrier, see
//! [`store`]).
//!
//! [`start`] runs it inside the caller's runtime on a loopback port; [`serve`] runs it
//! until a shutdown future completes. Both flush the database on the way out. The
//! routes are thin wrappers around typed operations (`ops.rs`, `checkpoint.rs`), which
//! a trainer in the same process calls directly through [`EngineHandle`]
//! ([`RunningEngine::handle`]): the in-process fast path, same code and same limits.
//!
//! Where it knowingly differs from KATO 3.10.1:
//! - no predictions (`GET /predictions` is 501) and no vector observations (400);
//! - sessions live in memory and end with the process (the KB persists);
//! - bodies are parsed as JSON whatever their `Content-Type`;
//! - no `/openapi.json`, `/docs`, metrics, symbol or WebSocket routes;
//! - `/status` adds an `engine` object (limits, knob counters, database state).

mod body;
mod checkpoint;
mod flush;
mod handle;
pub mod kb;
mod kb_delta;
mod kb_disk;
mod kb_listing;
mod limits;
mod ops;
pub mod pending;
pub(crate) mod pyvalue;
mod reply;
mod routes;
pub mod session;
mod session_config;
mod session_routes;
mod sessions;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{CheckpointAsk, CheckpointReply};
pub use handle::{EngineHandle, LiveSession};
pub use limits::{Admission, EngineLimits, DEFAULT_STM_CAPACITY};
pub use ops::OpError;

use kb::KnowledgeBases;
use limits::{Gates, LimitCounters};
use pending::{MemoryBudget, PendingChanges, DEFAULT_CACHE_MB};
use sessions::Sessions;
use store::Store;

/// How the engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The SQLite file; `None` keeps everything in memory (ephemeral).
    pub db_path: Option<PathBuf>,
    /// KATO's `SERVICE_NAME`: the suffix of every KB id.
    pub service_name: String,
    /// Default session TTL (`SESSION_TTL`).
    pub session_ttl: Duration,
    /// The knobs.
    pub limits: EngineLimits,
    /// Memory for the knowledge bases in MiB (`KATOTUNE_ENGINE_CACHE_MB`): a quarter
    /// SQLite's page cache, the rest changes not yet written; beyond it learns wait for
    /// the writer, and an engine without a file moves its patterns to a temporary one.
    pub cache_mb: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: None,
            service_name: "kato".into(),
            session_ttl: Duration::from_secs(3600),
            limits: EngineLimits::default(),
            cache_mb: DEFAULT_CACHE_MB,
        }
    }
}

/// The environment variable of [`EngineConfig::cache_mb`].
pub const CACHE_VAR: &str = "KATOTUNE_ENGINE_CACHE_MB";

/// Why the engine could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An environment variable held something unusable.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Config {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (pick another address or port)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The database file could not be opened, read or written.
    #[error("knowledge-base database {path}: {source} (check the path and its permissions)")]
    Store {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Another live process has the database file open.
    #[error(transparent)]
    Locked(#[from] crate::lock::LockError),
    /// Some other I/O failure.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn parse_var<T: std::str::FromStr>(
    name: &'static str,
    value: Option<String>,
    reason: &'static str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>, EngineError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<T>() {
        Ok(parsed) if valid(&parsed) => Ok(Some(parsed)),
        _ => Err(EngineError::Config {
            name,
            value,
            reason,
        }),
    }
}

impl EngineConfig {
    /// The defaults overridden by KATO's environment names (`SESSION_TTL`, `SERVICE_NAME`,
    /// `KATO_BATCH_SIZE`, `CONNECTION_POOL_SIZE`, `REQUEST_TIMEOUT`, `STM_CAPACITY`,
    /// `KATO_LIMIT_CONCURRENCY`), `KATOTUNE_ENGINE_DB` (unset, empty or `:memory:` =
    /// ephemeral) and `KATOTUNE_ENGINE_CACHE_MB` (the knowledge bases' memory budget in
    /// MiB, default [`DEFAULT_CACHE_MB`]).
    pub fn from_env() -> Result<Self, EngineError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`EngineConfig::from_env`], reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, EngineError> {
        let positive = "must be a whole number of at least 1";
        let mut config = Self::default();
        if let Some(ttl) =
            parse_var::<u64>("SESSION_TTL", var("SESSION_TTL"), positive, |t| *t > 0)?
        {
            config.session_ttl = Duration::from_secs(ttl);
        }
        if let Some(name) = var("SERVICE_NAME").filter(|n| !n.is_empty()) {
            config.service_name = name;
        }
        let limits = &mut config.limits;
        limits.batch_size = parse_var("KATO_BATCH_SIZE", var("KATO_BATCH_SIZE"), positive, |n| {
            *n > 0
        })?;
        limits.connection_pool_size = parse_var(
            "CONNECTION_POOL_SIZE",
            var("CONNECTION_POOL_SIZE"),
            positive,
            |n| *n > 0,
        )?;
        limits.request_timeout = parse_var::<f64>(
            "REQUEST_TIMEOUT",
            var("REQUEST_TIMEOUT"),
            "must be a number of seconds above 0",
            |s| s.is_finite() && *s > 0.0 && *s < 1.0e9,
        )?
        .map(Duration::from_secs_f64);
        if let Some(cap) = parse_var("STM_CAPACITY", var("STM_CAPACITY"), positive, |n| *n > 0)? {
            limits.stm_capacity = cap;
        }
        limits.limit_concurrency = parse_var(
            "KATO_LIMIT_CONCURRENCY",
            var("KATO_LIMIT_CONCURRENCY"),
            positive,
            |n| *n > 0,
        )?;
        if let Some(mb) = parse_var(
            CACHE_VAR,
            var(CACHE_VAR),
            "must be a whole number of MiB from 1 to 16777216 (default 256)",
            |n: &usize| (1..=1 << 24).contains(n),
        )? {
            config.cache_mb = mb;
        }
        config.db_path = var("KATOTUNE_ENGINE_DB")
            .filter(|p| !p.is_empty() && p != ":memory:")
            .map(PathBuf::from);
        Ok(config)
    }
}

/// Everything the handlers share.
pub(crate) struct Engine {
    config: EngineConfig,
    sessions: Sessions,
    kbs: Arc<KnowledgeBases>,
    store: Option<Store>,
    gates: Gates,
    counters: LimitCounters,
    started: Instant,
    started_unix: f64,
    /// Random per start: a checkpoint client sees from it that the server restarted.
    instance: String,
    /// The run holding commits for its checkpoints, and when it last asked anything.
    hold_owner: std::sync::Mutex<Option<(String, Instant)>>,
}

impl Engine {
    fn open(config: EngineConfig, lock: Option<crate::lock::RunLock>) -> Result<Self, EngineError> {
        let budget = MemoryBudget::from_mb(config.cache_mb);
        let (kbs, store) = match &config.db_path {
            Some(path) => {
                let pending = Arc::new(PendingChanges::with_budget(budget));
                let kbs = Arc::new(KnowledgeBases::new(Some(Arc::clone(&pending))));
                let store = Store::open(path, Arc::clone(&kbs), pending, lock)?;
                (kbs, Some(store))
            }
            None => (Arc::new(KnowledgeBases::ephemeral(budget)), None),
        };
        Ok(Self {
            gates: Gates::new(&config.limits),
            config,
            sessions: Sessions::default(),
            kbs,
            store,
            counters: LimitCounters::default(),
            started: Instant::now(),
            started_unix: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            instance: format!("{:016x}", rand::random::<u64>()),
            hold_owner: std::sync::Mutex::new(None),
        })
    }
}

/// An engine serving in the background; dropping it stops serving (shutdown also flushes).
pub struct RunningEngine {
    /// Where it listens.
    pub addr: SocketAddr,
    engine: Arc<Engine>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningEngine {
    /// `http://ADDR`, the base URL a KATO client uses.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The engine callable in-process, without HTTP (see [`EngineHandle`]).
    pub fn handle(&self) -> EngineHandle {
        EngineHandle::new(Arc::clone(&self.engine))
    }

    /// The database file, if the engine persists.
    pub fn db_path(&self) -> Option<&std::path::Path> {
        self.engine.store.as_ref().map(Store::path)
    }

    /// Stops serving, waits for requests in flight (at most 10 s) and flushes the database.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(10), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        let engine = Arc::clone(&self.engine);
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(store) = &engine.store {
                store.close();
            }
            engine.kbs.close();
        })
        .await;
    }
}

impl Drop for RunningEngine {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the engine on `config.bind` inside the current tokio runtime. A persistent
/// database is locked (`<db>.lock`): a file another live process has open is refused.
pub async fn start(config: EngineConfig) -> Result<RunningEngine, EngineError> {
    start_locked(config, None).await
}

/// Like [`start`], with the database's lock already taken by the caller (who may have
/// replaced the file under it).
pub async fn start_locked(
    config: EngineConfig,
    lock: Option<crate::lock::RunLock>,
) -> Result<RunningEngine, EngineError> {
    let bind = config.bind;
    let engine = tokio::task::spawn_blocking(move || Engine::open(config, lock))
        .await
        .map_err(|e| EngineError::Io {
            what: "opening the knowledge base".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let engine = Arc::new(engine);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| EngineError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EngineError::Bind { addr: bind, source })?;
    let stop = CancellationToken::new();
    let app = routes::router(Arc::clone(&engine));
    let task = tokio::spawn({
        let (stop, engine) = (stop.clone(), Arc::clone(&engine));
        async move {
            let sweeper = tokio::spawn(sweep_sessions(engine, stop.clone()));
            let shutdown = stop.clone().cancelled_owned();
            // Small request/answer exchanges (one observe at a time) must not wait on Nagle.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "embedded KATO engine stopped serving");
            }
            sweeper.abort();
        }
    });
    Ok(RunningEngine {
        addr,
        engine,
        stop,
        task: Some(task),
    })
}

/// Runs the engine until `shutdown` completes, then flushes the database.
pub async fn serve(
    config: EngineConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EngineError> {
    let running = start(config).await?;
    tracing::info!(url = %running.url(), "embedded KATO engine listening");
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// Forgets expired sessions now and then, so abandoned ones do not pile up.
async fn sweep_sessions(engine: Arc<Engine>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => { engine.sessions.sweep(); }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_set_the_knobs_and_bad_values_name_the_variable() {
        let vars = |name: &str| {
            let value = match name {
                "SESSION_TTL" => "120",
                "KATO_BATCH_SIZE" => "10000",
                "REQUEST_TIMEOUT" => "2.5",
                "STM_CAPACITY" => "50",
                "KATOTUNE_ENGINE_DB" => ":memory:",
                _ => return None,
            };
            Some(value.to_owned())
        };
        let config = EngineConfig::from_vars(vars).expect("valid");
        assert_eq!(config.session_ttl, Duration::from_secs(120));
        assert_eq!(config.limits.batch_size, Some(10_000));
        assert_eq!(
            config.limits.request_timeout,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(config.limits.stm_capacity, 50);
        assert_eq!(config.limits.connection_pool_size, None);
        assert_eq!(config.db_path, None);
        let bad =
            EngineConfig::from_vars(|n| (n == "CONNECTION_POOL_SIZE").then(|| "0".to_owned()));
        let message = bad.expect_err("0 is not a pool size").to_string();
        assert!(message.contains("CONNECTION_POOL_SIZE"), "{message}");
    }
}
