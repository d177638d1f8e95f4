//! Request and response bodies of the KATO HTTP API (API.md section 2).
//!
//! The client sends and parses these; the embedded engine parses and answers with the
//! same types, so the two cannot drift apart. Field names are KATO's own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `stm_mode` of a session: what auto-learn does with STM after it learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum StmMode {
    /// Learn the whole STM, then empty it.
    #[default]
    Clear,
    /// Learn the whole STM, then keep its last `max_pattern_length - 1` events.
    Rolling,
}

/// The session config katotune sends explicitly on every training session.
///
/// Only keys KATO honours on observe/learn are typed; anything else a user adds to a
/// profile's `session_config` travels in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Auto-learn threshold in events; 0 turns auto-learn off.
    pub max_pattern_length: u32,
    /// What auto-learn leaves in STM.
    pub stm_mode: StmMode,
    /// Must be false for training (API.md section 8).
    pub process_predictions: bool,
    /// Echoed by KATO; sorting really follows the server-wide `SORT_SYMBOLS`.
    pub sort_symbols: bool,
    /// Other keys, passed through untouched.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_pattern_length: 0,
            stm_mode: StmMode::Clear,
            process_predictions: false,
            sort_symbols: true,
            extra: BTreeMap::new(),
        }
    }
}

/// `POST /sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSession {
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// Answer to create and `GET /sessions/{sid}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub node_id: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub ttl_seconds: Option<f64>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub session_config: Value,
}

/// One observation: a single STM event when `strings` is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    #[serde(default)]
    pub strings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vectors: Vec<Vec<f64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub emotives: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
}

impl Observation {
    /// An observation of one symbol: how training sends every token and every name.
    pub fn symbol(s: impl Into<String>) -> Self {
        Self {
            strings: vec![s.into()],
            ..Self::default()
        }
    }
}

/// Answer to `POST /sessions/{sid}/observe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObserveResult {
    pub status: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub processor_id: Option<String>,
    pub stm_length: usize,
    pub time: u64,
    #[serde(default)]
    pub unique_id: Option<String>,
    #[serde(default)]
    pub auto_learned_pattern: Option<String>,
    /// Set only by katotune's engine when its STM capacity changed what was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stm_capacity_note: Option<String>,
}

/// `POST /sessions/{sid}/observe-sequence`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObserveSequence {
    pub observations: Vec<Observation>,
    #[serde(default)]
    pub learn_after_each: bool,
    #[serde(default)]
    pub learn_at_end: bool,
    #[serde(default)]
    pub clear_stm_between: bool,
}

/// An observe-sequence body that borrows its symbols: serialized straight from the
/// trainer's shared token strings, so no token is copied on its way to the wire. The
/// JSON is the same as [`ObserveSequence`] with one-symbol observations.
#[derive(Debug, Serialize)]
pub struct SymbolSequence<'a> {
    pub observations: Vec<SymbolObservation<'a>>,
    pub learn_after_each: bool,
    pub learn_at_end: bool,
    pub clear_stm_between: bool,
}

/// One observation of one symbol, with the metadata it carries (if any).
#[derive(Debug, Serialize)]
pub struct SymbolObservation<'a> {
    pub strings: [&'a str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> SymbolSequence<'a> {
    /// One observation per symbol, `metadata` on the first.
    pub fn new<S: AsRef<str> + 'a>(
        symbols: impl IntoIterator<Item = &'a S>,
        metadata: Option<&'a serde_json::Map<String, Value>>,
    ) -> Self {
        let mut observations: Vec<SymbolObservation<'a>> = symbols
            .into_iter()
            .map(|s| SymbolObservation {
                strings: [s.as_ref()],
                metadata: None,
            })
            .collect();
        if let Some(first) = observations.first_mut() {
            first.metadata = metadata.filter(|m| !m.is_empty());
        }
        Self {
            observations,
            learn_after_each: false,
            learn_at_end: false,
            clear_stm_between: false,
        }
    }
}

impl SymbolSequence<'_> {
    /// The same request as an owned [`ObserveSequence`], for a server called in-process
    /// (what the JSON of this sequence parses to).
    pub fn to_owned_sequence(&self) -> ObserveSequence {
        let observations = self
            .observations
            .iter()
            .map(|o| Observation {
                strings: vec![o.strings[0].to_owned()],
                metadata: o.metadata.cloned().unwrap_or_default(),
                ..Observation::default()
            })
            .collect();
        ObserveSequence {
            observations,
            learn_after_each: self.learn_after_each,
            learn_at_end: self.learn_at_end,
            clear_stm_between: self.clear_stm_between,
        }
    }
}

/// One entry of `results` in an observe-sequence answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceStep {
    pub status: String,
    pub sequence_position: usize,
    pub stm_length: usize,
    pub time: u64,
    #[serde(default)]
    pub unique_id: Option<String>,
    #[serde(default)]
    pub auto_learned_pattern: Option<String>,
}

/// Answer to observe-sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceResult {
    pub status: String,
    #[serde(default)]
    pub processor_id: Option<String>,
    pub observations_processed: usize,
    pub initial_stm_length: usize,
    pub final_stm_length: usize,
    #[serde(default)]
    pub results: Vec<SequenceStep>,
    #[serde(default)]
    pub auto_learned_patterns: Vec<String>,
    #[serde(default)]
    pub final_learned_pattern: Option<String>,
    #[serde(default)]
    pub isolated: bool,
    /// Set only by katotune's engine when its STM capacity changed what was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stm_capacity_note: Option<String>,
}

/// Answer to `POST /sessions/{sid}/learn`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnResult {
    pub status: String,
    pub pattern_name: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub processor_id: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer to `GET /sessions/{sid}/stm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StmResult {
    pub stm: Vec<Vec<String>>,
    pub session_id: String,
    pub length: usize,
}

/// A stored pattern, as `GET /pattern/{id}` returns it when found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPattern {
    pub name: String,
    pub pattern_data: Vec<Vec<String>>,
    pub length: usize,
    pub frequency: u64,
    #[serde(default)]
    pub emotives: Vec<Value>,
    #[serde(default)]
    pub metadata: BTreeMap<String, Vec<String>>,
}

/// Inner object of a `GET /pattern` answer: `status` is `okay` or `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatternLookup {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<StoredPattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Answer to `GET /pattern/{id}?node_id=...` (always HTTP 200, even when not found).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatternResult {
    pub pattern: PatternLookup,
    pub node_id: String,
}

/// Answer to `GET /health` (always HTTP 200 on the real server).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub uptime_seconds: Option<f64>,
    #[serde(default)]
    pub active_sessions: Option<u64>,
}
