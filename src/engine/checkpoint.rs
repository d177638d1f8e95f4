//! katotune's durability barrier (not a KATO route) as a typed operation: what
//! `POST /katotune/checkpoint` does, and what the trainer calls directly when the engine
//! runs in its own process (see `train::durable`).
//!
//! The ask picks the operation: nothing commits everything acknowledged so far (`label`
//! records a label with it); `hold: true` makes commits wait for checkpoints (with
//! `rollback`, after forgetting what an earlier holder left uncommitted; an engine
//! nobody held commits what other clients learned instead); `hold: false` commits and
//! releases. `instance` makes any of them refuse ([`OpError::Conflict`], nothing done)
//! when this engine is not that instance (it restarted); `owner` names the run, and one
//! run at a time may hold the engine.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ops::OpError;
use super::store::CheckpointOp;
use super::Engine;

/// How long a run's hold keeps other runs from taking the engine over.
const HOLD_LEASE: Duration = Duration::from_secs(600);

/// One checkpoint request; the JSON body of `POST /katotune/checkpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointAsk {
    /// `Some(true)` holds commits for checkpoints, `Some(false)` releases; `None` commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<bool>,
    /// With `hold: true`: forget what an earlier hold left uncommitted (reload the
    /// file). An engine that was not held commits its changes instead: they are other
    /// clients' learns, not a run's partial work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// With a commit: the label stored with it (a resume reads it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Refuse unless this engine is that instance (it did not restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The run asking (its journal path); another run's hold is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The answer once the state is on disk (the 200 body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointReply {
    /// Random per engine start: a different one means the engine restarted.
    pub instance: String,
    /// False for an in-memory engine: nothing to hold or commit.
    pub persistent: bool,
    /// Whether commits now wait for checkpoints.
    pub held: bool,
    /// The label of the last committed checkpoint, if any.
    pub label: Option<String>,
}

impl Engine {
    /// Carries out `ask` and waits for the database writer (blocking: call it off the
    /// async threads). [`OpError::Conflict`] for another instance or another run's
    /// hold, [`OpError::StoreFailed`] when the file could not be written.
    pub(crate) fn checkpoint(&self, ask: CheckpointAsk) -> Result<CheckpointReply, OpError> {
        let instance = self.instance.clone();
        if ask.instance.as_ref().is_some_and(|i| *i != instance) {
            return Err(OpError::Conflict(format!(
                "this engine restarted: it is instance {instance}, not the one asked for"
            )));
        }
        // An in-memory engine has nothing to hold: no run owns it.
        let Some(store) = &self.store else {
            return Ok(CheckpointReply {
                instance,
                persistent: false,
                held: false,
                label: None,
            });
        };
        self.check_owner(ask.owner.as_deref(), ask.hold == Some(true))
            .map_err(OpError::Conflict)?;
        if ask.hold == Some(false) {
            // Released: the next run may hold at once, without waiting out the lease.
            *self.hold_owner.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        let op = match ask.hold {
            Some(true) => CheckpointOp::Hold {
                rollback: ask.rollback,
            },
            Some(false) => CheckpointOp::Release,
            None => CheckpointOp::Commit { label: ask.label },
        };
        let state = store.checkpoint(op).map_err(OpError::StoreFailed)?;
        Ok(CheckpointReply {
            instance,
            persistent: true,
            held: state.held,
            label: state.label,
        })
    }

    /// One run at a time holds commits: a hold by another `owner` is refused while the
    /// holder was active within [`HOLD_LEASE`] (it would roll the holder's work back); a
    /// commit or release by a run that is no longer the holder is refused too.
    fn check_owner(&self, owner: Option<&str>, hold: bool) -> Result<(), String> {
        let Some(owner) = owner else {
            return Ok(());
        };
        let mut slot = self.hold_owner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((holder, seen)) = slot.as_ref() {
            if holder != owner && (!hold || seen.elapsed() < HOLD_LEASE) {
                return Err(format!(
                    "the knowledge base is held for checkpoints by another katotune run \
                     ({holder}, active {}s ago); run one training at a time against this server",
                    seen.elapsed().as_secs()
                ));
            }
        }
        *slot = Some((owner.to_string(), Instant::now()));
        Ok(())
    }
}
