//! Small request and answer bodies only the client uses, and the checks on them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::transport::bad_response;
use crate::kato::api::SessionConfig;
use crate::kato::error::{CallSite, ErrorKind, KatoError};

/// Session config keys KATO honours on observe and learn: they must be the ones sent.
const CHECKED_CONFIG_KEYS: [&str; 3] = ["max_pattern_length", "stm_mode", "process_predictions"];

/// Answers that only carry a `status` worth checking (config update, clear-stm).
#[derive(Deserialize)]
pub(super) struct StatusAnswer {
    pub(super) status: String,
}

/// `POST /sessions/{sid}/config` body.
#[derive(Serialize)]
pub(super) struct ConfigUpdate<'a> {
    pub(super) config: &'a SessionConfig,
}

/// `GET /katotune/kb/{node_id}` answer of katotune's engine.
#[derive(Deserialize)]
pub(super) struct KbListing {
    pub(super) patterns: Vec<KbEntry>,
}

/// One pattern of a KB listing.
#[derive(Deserialize)]
pub(super) struct KbEntry {
    pub(super) name: String,
    pub(super) frequency: u64,
}

/// A 2xx whose `status` is not the documented one is not an answer we understand.
pub(super) fn expect_status(site: &CallSite, got: &str, want: &str) -> Result<(), KatoError> {
    if got == want {
        return Ok(());
    }
    let reason = format!("status is {got:?}, expected {want:?}");
    Err(bad_response(site, reason, ""))
}

/// KATO drops a whole invalid config silently (API.md 2.2): compare what it uses.
pub(super) fn check_config_taken(
    site: &CallSite,
    sent: &Value,
    effective: &Value,
) -> Result<(), KatoError> {
    for key in CHECKED_CONFIG_KEYS {
        let (Some(sent_value), Some(got)) = (sent.get(key), effective.get(key)) else {
            continue;
        };
        if sent_value != got {
            let kind = ErrorKind::ConfigIgnored {
                key,
                sent: sent_value.to_string(),
                got: got.to_string(),
            };
            return Err(KatoError::new(site.clone(), kind));
        }
    }
    Ok(())
}
