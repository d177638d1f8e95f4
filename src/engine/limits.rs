//! The four seed knobs and uvicorn's concurrency limit, honoured for real.
//!
//! KATO 3.10 reads none of `KATO_BATCH_SIZE`, `STM_CAPACITY`, `CONNECTION_POOL_SIZE` or
//! `REQUEST_TIMEOUT` (API.md section 5.3); this engine gives each one an effect a client
//! can see, and never silently, over HTTP (the middleware here) and in-process
//! ([`Admission`]) alike:
//!
//! | knob | effect beyond it |
//! |---|---|
//! | `limit_concurrency` | 503 `text/plain` "Service Unavailable", like uvicorn |
//! | `connection_pool_size` | 503 JSON detail on session and pattern routes, at once |
//! | `request_timeout` | 504 JSON detail; the request's changes are discarded |
//! | `batch_size` | 413 JSON detail when an observe-sequence carries more |
//! | `stm_capacity` | STM trimmed from the front at the end of a request, reported |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ops::OpError;
use super::reply::op_error;
use super::Engine;

/// KATO's hard-coded STM cap, the default of `stm_capacity`.
pub const DEFAULT_STM_CAPACITY: usize = 1000;

/// Resource limits of the engine; `None` means no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineLimits {
    /// Most observations one observe-sequence may carry (`KATO_BATCH_SIZE`).
    pub batch_size: Option<usize>,
    /// Most session and pattern requests served at once (`CONNECTION_POOL_SIZE`).
    pub connection_pool_size: Option<usize>,
    /// Deadline of each request (`REQUEST_TIMEOUT`, seconds).
    pub request_timeout: Option<Duration>,
    /// Most events one session's STM keeps between requests (`STM_CAPACITY`).
    pub stm_capacity: usize,
    /// Most requests in flight at all (`KATO_LIMIT_CONCURRENCY`).
    pub limit_concurrency: Option<usize>,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            batch_size: None,
            connection_pool_size: None,
            request_timeout: None,
            stm_capacity: DEFAULT_STM_CAPACITY,
            limit_concurrency: None,
        }
    }
}

/// The deadline of the current request, for handlers that check it while they work.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// What the knobs did, for `/status`.
#[derive(Default)]
pub struct LimitCounters {
    /// STM events dropped by `stm_capacity`.
    pub stm_events_dropped: AtomicU64,
    /// Requests whose STM was trimmed.
    pub stm_trims: AtomicU64,
    /// 413 answers.
    pub batch_rejections: AtomicU64,
    /// 503 answers from `connection_pool_size`.
    pub pool_rejections: AtomicU64,
    /// 503 answers from `limit_concurrency`.
    pub concurrency_rejections: AtomicU64,
    /// 504 answers.
    pub timeouts: AtomicU64,
}

impl LimitCounters {
    /// A JSON summary.
    pub fn to_json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "stm_events_dropped": get(&self.stm_events_dropped),
            "stm_trims": get(&self.stm_trims),
            "batch_rejections": get(&self.batch_rejections),
            "pool_rejections": get(&self.pool_rejections),
            "concurrency_rejections": get(&self.concurrency_rejections),
            "timeouts": get(&self.timeouts),
        })
    }
}

/// The semaphores behind the two concurrency knobs.
pub struct Gates {
    concurrency: Option<Arc<Semaphore>>,
    pool: Option<Arc<Semaphore>>,
}

impl Gates {
    /// Gates for `limits`.
    pub fn new(limits: &EngineLimits) -> Self {
        let gate = |n: Option<usize>| n.map(|n| Arc::new(Semaphore::new(n)));
        Self {
            concurrency: gate(limits.limit_concurrency),
            pool: gate(limits.connection_pool_size),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// `limit_concurrency`: beyond it, uvicorn's plain 503.
pub async fn limit_concurrency(
    State(engine): State<Arc<Engine>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(gate) = &engine.gates.concurrency else {
        return next.run(req).await;
    };
    let Ok(_permit) = Arc::clone(gate).try_acquire_owned() else {
        bump(&engine.counters.concurrency_rejections);
        return op_error(&OpError::Overloaded);
    };
    next.run(req).await
}

/// `request_timeout`: 504 when the whole request (body read included) takes longer.
pub async fn request_timeout(
    State(engine): State<Arc<Engine>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(limit) = engine.config.limits.request_timeout else {
        return next.run(req).await;
    };
    req.extensions_mut()
        .insert(Deadline(Instant::now() + limit));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => op_error(&timed_out(&engine, limit)),
    }
}

/// Counts a 504 and gives its error; also for operations that notice the deadline
/// while working.
pub fn timed_out(engine: &Engine, limit: Duration) -> OpError {
    bump(&engine.counters.timeouts);
    OpError::TimedOut { limit }
}

/// `connection_pool_size`: session and pattern requests beyond it get a JSON 503 at once.
pub async fn connection_pool(
    State(engine): State<Arc<Engine>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(pool) = &engine.gates.pool else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if !(path.starts_with("/sessions") || path.starts_with("/pattern")) {
        return next.run(req).await;
    }
    let Ok(_permit) = Arc::clone(pool).try_acquire_owned() else {
        return op_error(&pool_busy(&engine));
    };
    next.run(req).await
}

/// Counts a pool rejection and gives its error.
fn pool_busy(engine: &Engine) -> OpError {
    bump(&engine.counters.pool_rejections);
    OpError::PoolBusy {
        size: engine.config.limits.connection_pool_size.unwrap_or(0),
    }
}

/// Counts a 413 and gives the error for an observe-sequence longer than `batch_size`.
pub fn too_many_observations(engine: &Engine, count: usize, limit: usize) -> OpError {
    bump(&engine.counters.batch_rejections);
    OpError::TooManyObservations { count, limit }
}

/// What an in-process call holds while it runs, as the HTTP middleware grants a
/// request: a `limit_concurrency` and a `connection_pool_size` permit (when those are
/// set), and its `request_timeout` deadline. Dropping it frees the permits.
#[derive(Debug)]
pub struct Admission {
    _concurrency: Option<OwnedSemaphorePermit>,
    _pool: Option<OwnedSemaphorePermit>,
    /// When the call must be done (`request_timeout`), if the engine has a deadline.
    pub deadline: Option<Instant>,
}

impl Engine {
    /// Admits one session call made in-process through the same gates an HTTP request
    /// passes: [`OpError::Overloaded`] beyond `limit_concurrency`, [`OpError::PoolBusy`]
    /// beyond `connection_pool_size`, counted as the middleware counts them.
    pub(crate) fn admit(&self) -> Result<Admission, OpError> {
        let take = |gate: &Option<Arc<Semaphore>>| match gate {
            None => Ok(None),
            Some(gate) => Arc::clone(gate).try_acquire_owned().map(Some),
        };
        let concurrency = take(&self.gates.concurrency).map_err(|_| {
            bump(&self.counters.concurrency_rejections);
            OpError::Overloaded
        })?;
        let pool = take(&self.gates.pool).map_err(|_| pool_busy(self))?;
        Ok(Admission {
            _concurrency: concurrency,
            _pool: pool,
            deadline: self
                .config
                .limits
                .request_timeout
                .map(|t| Instant::now() + t),
        })
    }
}

/// Counts a trim and returns the note the observe answer carries, if anything was dropped.
pub fn stm_note(engine: &Engine, dropped: usize) -> Option<String> {
    if dropped == 0 {
        return None;
    }
    engine
        .counters
        .stm_events_dropped
        .fetch_add(dropped as u64, Ordering::Relaxed);
    bump(&engine.counters.stm_trims);
    Some(format!(
        "STM held more than stm_capacity = {} events (STM_CAPACITY); the oldest {dropped} were dropped",
        engine.config.limits.stm_capacity
    ))
}
