//! The session registry: ids, sliding TTL expiry, and each session's locked state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

use super::kb::NodeKb;
use super::session::SessionState;
use super::session_config::auto_learn;

/// What one session holds behind its lock.
pub struct SessionData {
    /// STM, time and accumulators.
    pub state: SessionState,
    /// The effective config (session overrides merged over the server defaults).
    pub config: Map<String, Value>,
}

impl SessionData {
    /// Replaces the effective config and the auto-learn settings derived from it.
    pub fn set_config(&mut self, config: Map<String, Value>) {
        let (mpl, mode) = auto_learn(&config);
        self.state.max_pattern_length = mpl;
        self.state.stm_mode = mode;
        self.config = config;
    }
}

/// One live session.
pub struct Session {
    /// `session-<32 hex>-<unix ms>`.
    pub id: String,
    /// The node id as the client sent it.
    pub node_id: String,
    /// The node's knowledge base.
    pub kb: Arc<NodeKb>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The TTL every access slides the expiry by.
    pub ttl: Duration,
    expires_at_ms: AtomicI64,
    data: Mutex<SessionData>,
}

impl Session {
    /// Locks the session's state; requests on one session run one at a time.
    pub fn lock(&self) -> MutexGuard<'_, SessionData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the session expires unless touched again.
    pub fn expires_at(&self) -> DateTime<Utc> {
        let ms = self.expires_at_ms.load(Ordering::Relaxed);
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or_else(Utc::now)
    }

    /// Moves the expiry to `now + ttl`.
    pub fn extend_by(&self, ttl: Duration) {
        let ms = Utc::now()
            .timestamp_millis()
            .saturating_add(duration_ms(ttl));
        self.expires_at_ms.store(ms, Ordering::Relaxed);
    }

    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.load(Ordering::Relaxed) <= now_ms
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// KATO's timestamp format: `2026-11-27T03:26:41.581248Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Every live session by id.
#[derive(Default)]
pub struct Sessions {
    by_id: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Creates a session on `kb` with `config` as its effective config.
    pub fn create(
        &self,
        node_id: &str,
        kb: Arc<NodeKb>,
        ttl: Duration,
        config: Map<String, Value>,
    ) -> Arc<Session> {
        let created_at = Utc::now();
        let id = format!(
            "session-{:032x}-{}",
            rand::random::<u128>(),
            created_at.timestamp_millis()
        );
        let mut data = SessionData {
            state: SessionState::default(),
            config: Map::new(),
        };
        data.set_config(config);
        let session = Arc::new(Session {
            id: id.clone(),
            node_id: node_id.to_owned(),
            kb,
            created_at,
            ttl,
            expires_at_ms: AtomicI64::new(
                created_at
                    .timestamp_millis()
                    .saturating_add(duration_ms(ttl)),
            ),
            data: Mutex::new(data),
        });
        self.write().insert(id, Arc::clone(&session));
        session
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Session>>> {
        self.by_id.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A live session; `touch` slides its expiry as KATO's auto-extend does.
    pub fn get(&self, id: &str, touch: bool) -> Option<Arc<Session>> {
        let session = self
            .by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()?;
        if session.expired(Utc::now().timestamp_millis()) {
            self.write().remove(id);
            return None;
        }
        if touch {
            session.extend_by(session.ttl);
        }
        Some(session)
    }

    /// `(exists, expired)` for `/exists`, without extending the TTL.
    pub fn exists(&self, id: &str) -> (bool, bool) {
        let now = Utc::now().timestamp_millis();
        let map = self.by_id.read().unwrap_or_else(|e| e.into_inner());
        match map.get(id) {
            Some(s) if s.expired(now) => (false, true),
            Some(_) => (true, false),
            None => (false, false),
        }
    }

    /// Removes a session; false when it did not exist.
    pub fn remove(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
    }

    /// Drops expired sessions; returns how many live ones remain.
    pub fn sweep(&self) -> usize {
        let now = Utc::now().timestamp_millis();
        let mut map = self.write();
        map.retain(|_, s| !s.expired(now));
        map.len()
    }

    /// Live sessions per node id.
    pub fn per_node(&self) -> HashMap<String, usize> {
        let now = Utc::now().timestamp_millis();
        let map = self.by_id.read().unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for s in map.values().filter(|s| !s.expired(now)) {
            *out.entry(s.node_id.clone()).or_insert(0) += 1;
        }
        out
    }
}
