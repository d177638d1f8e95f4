//! One session's working memory and KATO's observe/learn algorithm (API.md sections 3.4-4.3).
//!
//! This is pure: a request runs against a [`SessionState`] and yields the patterns it
//! decided to learn as [`Learned`] values, which the engine then stores in the node's
//! knowledge base in one go. Nothing here reads the knowledge base, because with
//! predictions off KATO's observe and learn never depend on it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use crate::kato::api::{Observation, ObserveSequence, SequenceResult, SequenceStep, StmMode};
use crate::kato::pattern::{normalize_event, push_events_repr, PATTERN_PREFIX};

use super::pyvalue::push_py_str;

/// Server-wide emotive window per pattern (KATO's `PERSISTENCE`, default 5).
pub const PERSISTENCE: usize = 5;
/// KATO keeps at most this many entries in each accumulator.
pub const ACCUMULATOR_CAP: usize = 1000;

/// A pattern a session decided to learn; the engine adds it to the node's knowledge base.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    /// Raw SHA-1 of the events' Python repr.
    pub digest: [u8; 20],
    /// The events, already sorted per event.
    pub events: Vec<Vec<String>>,
    /// Emotive dicts handed over by an explicit learn, at most [`PERSISTENCE`].
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Metadata reduced to sorted unique `str(value)` per key.
    pub metadata: BTreeMap<String, BTreeSet<String>>,
    /// The average of every emotive dict in the accumulator, which KATO adds to each
    /// symbol's affinity (KATO `metrics.py` `average_emotives`, `knowledge_base.py`
    /// `_update_symbol_affinity`); empty when the learn carried no emotives.
    pub averaged_emotives: BTreeMap<String, f64>,
}

/// What one observe did, as the observe response reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObserveStep {
    /// STM events after any auto-learn.
    pub stm_length: usize,
    /// The session's time counter after this observe.
    pub time: u64,
    /// `PTRN|...` of a stored auto-learned pattern.
    pub auto_learned: Option<String>,
}

/// The request ran past its deadline; the caller discards the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlinePassed;

/// A session's short-term memory, time counter and accumulators.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// Events in arrival order; symbols sorted inside each event.
    pub stm: Vec<Vec<String>>,
    /// Observes since creation or the last clear-stm.
    pub time: u64,
    /// Non-empty emotive dicts of every observe since the last clear-stm.
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Non-empty metadata dicts of every observe since the last clear-stm.
    pub metadata: Vec<Map<String, Value>>,
    /// Auto-learn threshold in events; 0 = off.
    pub max_pattern_length: usize,
    /// What auto-learn leaves in STM.
    pub stm_mode: StmMode,
    scratch: String,
}

/// `PTRN|` + lowercase hex of `digest`.
pub fn wire_name_of(digest: &[u8; 20]) -> String {
    let mut out = String::with_capacity(45);
    out.push_str(PATTERN_PREFIX);
    push_hex(&mut out, digest);
    out
}

/// Appends lowercase hex of `bytes` (a hot path: `format!` is several times slower).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

impl SessionState {
    /// A fresh session with the given auto-learn settings.
    pub fn new(max_pattern_length: usize, stm_mode: StmMode) -> Self {
        Self {
            max_pattern_length,
            stm_mode,
            ..Self::default()
        }
    }

    /// Observes one item: appends its event, accumulates, then checks auto-learn.
    pub fn observe(&mut self, obs: Observation, learned: &mut Vec<Learned>) -> ObserveStep {
        self.time += 1;
        let Observation {
            mut strings,
            emotives,
            metadata,
            ..
        } = obs;
        if !strings.is_empty() {
            normalize_event(&mut strings);
            self.stm.push(strings);
        }
        if !emotives.is_empty() {
            self.emotives.push(emotives);
        }
        if !metadata.is_empty() {
            self.metadata.push(metadata);
        }
        let auto_learned = self.auto_learn(learned);
        ObserveStep {
            stm_length: self.stm.len(),
            time: self.time,
            auto_learned,
        }
    }

    /// Auto-learn at `max_pattern_length` events: CLEAR empties STM, ROLLING keeps a window.
    fn auto_learn(&mut self, learned: &mut Vec<Learned>) -> Option<String> {
        let mpl = self.max_pattern_length;
        if mpl == 0 || self.stm.is_empty() || self.stm.len() < mpl {
            return None;
        }
        let events = match self.stm_mode {
            StmMode::Clear => std::mem::replace(&mut self.stm, Vec::with_capacity(mpl)),
            StmMode::Rolling => {
                let events = self.stm.clone();
                let keep_from = self.stm.len() - (mpl - 1);
                self.stm.drain(..keep_from);
                events
            }
        };
        self.store(
            events,
            Vec::new(),
            BTreeMap::new(),
            BTreeMap::new(),
            learned,
        )
    }

    /// Names `events` and queues them for storage when they hold at least 2 symbols.
    fn store(
        &mut self,
        events: Vec<Vec<String>>,
        emotives: Vec<BTreeMap<String, f64>>,
        metadata: BTreeMap<String, BTreeSet<String>>,
        averaged_emotives: BTreeMap<String, f64>,
        learned: &mut Vec<Learned>,
    ) -> Option<String> {
        if events.iter().map(Vec::len).sum::<usize>() < 2 {
            return None;
        }
        self.scratch.clear();
        push_events_repr(&mut self.scratch, &events);
        let digest: [u8; 20] = Sha1::digest(self.scratch.as_bytes()).into();
        let name = wire_name_of(&digest);
        learned.push(Learned {
            digest,
            events,
            emotives,
            metadata,
            averaged_emotives,
        });
        Some(name)
    }

    /// An explicit learn (`/learn`, `learn_after_each`, `learn_at_end`): the whole STM with
    /// the accumulators, then STM is emptied. Returns the wire name, or `""` when fewer
    /// than 2 symbols made nothing worth storing. The caller rejects an empty STM first.
    pub fn learn(&mut self, learned: &mut Vec<Learned>) -> String {
        let events = std::mem::take(&mut self.stm);
        let skip = self.emotives.len().saturating_sub(PERSISTENCE);
        let emotives = self.emotives[skip..].to_vec();
        let metadata = reduce_metadata(&self.metadata);
        let averaged = average_emotives(&self.emotives);
        self.store(events, emotives, metadata, averaged, learned)
            .unwrap_or_default()
    }

    /// clear-stm: STM, accumulators and time all go back to zero.
    pub fn clear_stm(&mut self) {
        self.stm.clear();
        self.emotives.clear();
        self.metadata.clear();
        self.time = 0;
    }

    /// Trims STM to its last `capacity` events (and the accumulators to theirs), as KATO
    /// does when it saves a session. Returns how many STM events were dropped.
    pub fn trim_to_capacity(&mut self, capacity: usize) -> usize {
        if self.emotives.len() > ACCUMULATOR_CAP {
            self.emotives.drain(..self.emotives.len() - ACCUMULATOR_CAP);
        }
        if self.metadata.len() > ACCUMULATOR_CAP {
            self.metadata.drain(..self.metadata.len() - ACCUMULATOR_CAP);
        }
        let dropped = self.stm.len().saturating_sub(capacity);
        self.stm.drain(..dropped);
        dropped
    }

    /// observe-sequence, step by step as API.md section 4.3 describes.
    ///
    /// `deadline` is checked between observations; when it passes, the state is left
    /// half-way and the caller must restore it from a copy.
    pub fn observe_sequence(
        &mut self,
        req: ObserveSequence,
        processor_id: &str,
        deadline: Option<Instant>,
        learned: &mut Vec<Learned>,
    ) -> Result<SequenceResult, DeadlinePassed> {
        let initial_stm_length = self.stm.len();
        let count = req.observations.len();
        let mut results = Vec::with_capacity(count);
        let mut names = Vec::new();
        let mut ids = ObservationIds::new();
        for (i, obs) in req.observations.into_iter().enumerate() {
            if i % 64 == 63 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(DeadlinePassed);
            }
            if req.clear_stm_between && i > 0 {
                self.stm.clear();
            }
            let unique_id = obs.unique_id.clone().unwrap_or_else(|| ids.next_id());
            let step = self.observe(obs, learned);
            if req.learn_after_each && !self.stm.is_empty() {
                names.push(self.learn(learned));
            }
            if let Some(name) = &step.auto_learned {
                names.push(name.clone());
            }
            results.push(SequenceStep {
                status: "okay".into(),
                sequence_position: i,
                stm_length: self.stm.len(),
                time: step.time,
                unique_id: Some(unique_id),
                auto_learned_pattern: step.auto_learned,
            });
        }
        let mut final_learned_pattern = None;
        if req.learn_at_end && !self.stm.is_empty() {
            let name = self.learn(learned);
            names.push(name.clone());
            final_learned_pattern = Some(name);
        }
        Ok(SequenceResult {
            status: "completed".into(),
            processor_id: Some(processor_id.to_owned()),
            observations_processed: count,
            initial_stm_length,
            final_stm_length: self.stm.len(),
            results,
            auto_learned_patterns: names,
            final_learned_pattern,
            isolated: req.clear_stm_between,
            stm_capacity_note: None,
        })
    }
}

/// `{key: sorted unique str(value)}` over every metadata dict of the accumulator.
pub fn reduce_metadata(dicts: &[Map<String, Value>]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for dict in dicts {
        for (key, value) in dict {
            let mut text = String::new();
            push_py_str(&mut text, value);
            out.entry(key.clone()).or_default().insert(text);
        }
    }
    out
}

/// Per emotive, the mean of its values over the dicts that hold it, as KATO's
/// `average_emotives` computes it (`sum(values) / len(values)`, summed in order).
pub fn average_emotives(dicts: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<&str, (f64, u32)> = BTreeMap::new();
    for dict in dicts {
        for (name, value) in dict {
            let (sum, count) = sums.entry(name).or_insert((0.0, 0));
            *sum += value;
            *count += 1;
        }
    }
    sums.into_iter()
        .map(|(name, (sum, count))| (name.to_owned(), sum / f64::from(count)))
        .collect()
}

/// Generates `seq-obs-<32 hex>` ids cheaply: one random base per request plus a counter.
pub struct ObservationIds {
    base: u128,
    n: u64,
}

impl ObservationIds {
    /// A fresh random base.
    pub fn new() -> Self {
        Self {
            base: rand::random(),
            n: 0,
        }
    }

    /// The next id; unique within the request and random across requests.
    pub fn next_id(&mut self) -> String {
        self.n += 1;
        let id = self.base ^ u128::from(self.n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut out = String::with_capacity(40);
        out.push_str("seq-obs-");
        push_hex(&mut out, &id.to_be_bytes());
        out
    }
}

impl Default for ObservationIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
