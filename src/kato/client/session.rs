//! The session handle the client's calls update, and the caller's replay permission.

use serde_json::Value;

use crate::kato::api::{CreateSession, SessionConfig};
use crate::kato::error::{CallSite, ErrorKind, KatoError};
use crate::kato::metrics::Endpoint;

/// Whether a session call may be sent again on a brand-new session if KATO lost the
/// old one. Only the caller knows, so every such call says it explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The call depends on what the lost session held (e.g. STM built by earlier
    /// observes): return `SessionNotFound` and leave the handle alone.
    Never,
    /// The call starts from an empty STM and carries everything it needs (e.g. a whole
    /// chunk with `learn_at_end`): recreate the session and send it there.
    OnFreshSession,
}

/// A KATO session as katotune uses it: the id can change when the client recreates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub(crate) id: String,
    pub(crate) node_id: String,
    pub(crate) config: SessionConfig,
    pub(crate) ttl_seconds: Option<u64>,
    pub(crate) recreations: u32,
}

impl Session {
    /// A handle for a session that already exists (e.g. created by another process).
    pub fn resume(
        id: impl Into<String>,
        node_id: impl Into<String>,
        config: SessionConfig,
        ttl_seconds: Option<u64>,
    ) -> Self {
        Self {
            id: id.into(),
            node_id: node_id.into(),
            config,
            ttl_seconds,
            recreations: 0,
        }
    }

    /// The current session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The node (and so the KB) of the session.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The config the session was created (or last updated) with.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The TTL asked for at creation; `None` means the server default.
    pub fn ttl_seconds(&self) -> Option<u64> {
        self.ttl_seconds
    }

    /// How many times the client recreated this session.
    pub fn recreations(&self) -> u32 {
        self.recreations
    }

    /// The `POST /sessions` body for this handle's node, config and TTL (the config sent
    /// explicitly, whole), and that config as JSON to check what the server took.
    pub(crate) fn create_request(
        &self,
        site: &CallSite,
    ) -> Result<(CreateSession, Value), KatoError> {
        let config = serde_json::to_value(&self.config).map_err(|err| {
            let reason = err.to_string();
            KatoError::new(site.clone(), ErrorKind::Encode { reason })
        })?;
        let request = CreateSession {
            node_id: self.node_id.clone(),
            config: Some(config.clone()),
            ttl_seconds: self
                .ttl_seconds
                .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            metadata: None,
        };
        Ok((request, config))
    }

    pub(crate) fn site(&self, endpoint: Endpoint) -> CallSite {
        CallSite {
            endpoint,
            node_id: Some(self.node_id.clone()),
            session_id: Some(self.id.clone()),
        }
    }
}
