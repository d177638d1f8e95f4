//! How a run ended, as types a script can read from the run record: why it stopped
//! ([`StopReason`]), whether the knowledge base can be trusted ([`KbTrust`]), and the
//! exit code both imply ([`RunRecord::exit_code`]); and why one sample did not finish
//! ([`SampleError`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::record::{RunRecord, RunStatus};
use crate::exit;
use crate::kato::error::KatoError;

/// Why a run stopped before the end of its corpus.
///
/// In the run record it is an object tagged by `kind`, e.g.
/// `{"kind": "wrong-name", "row": 12, "origin": "corpus.jsonl:13", "node": "node1",
/// "expected": "PTRN|…", "got": null}`. Records written before the reasons were typed
/// hold a plain string; it reads back as [`StopReason::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StopReason {
    /// Ctrl-C or SIGTERM: feeding stopped and in-flight samples were given time to finish.
    Interrupted,
    /// A row of the corpus could not be used (exit 2).
    BadData {
        row: u64,
        /// `file:line` (or `file:row N`).
        origin: String,
        /// What is wrong with the row.
        reason: String,
        /// What to do about it, when there is something.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// A sample failed before any of its learns reached the server.
    SampleFailed {
        row: u64,
        origin: String,
        error: String,
    },
    /// Too many samples ended at risk: something is wrong with the server or network.
    TooManyAtRisk {
        /// The tolerated number.
        limit: usize,
        /// The last at-risk sample's error.
        last: String,
    },
    /// The server named a pattern differently from KATO's naming rule: what it stores
    /// cannot be compared with anything else (the record's `kb_trust` is `untrusted`).
    WrongName {
        row: u64,
        origin: String,
        /// The node that answered.
        node: String,
        /// The name katotune computed (`None`: the rule stores nothing for fewer than 2
        /// symbols).
        expected: Option<String>,
        /// The name the server returned (`None`: null or empty).
        got: Option<String>,
    },
    /// Finished samples could not be made durable (a write error such as a full disk, in
    /// the knowledge-base file or the row log, or a server that went away at a
    /// checkpoint); `--resume` retrains them.
    NotDurable { error: String },
    /// A reason stored as text by an older katotune.
    Other { message: String },
}

impl StopReason {
    /// The process exit code of a run that stopped for this reason (README table).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Interrupted => exit::INTERRUPTED,
            Self::BadData { .. } => exit::BAD_INPUT,
            Self::SampleFailed { .. }
            | Self::TooManyAtRisk { .. }
            | Self::WrongName { .. }
            | Self::NotDurable { .. }
            | Self::Other { .. } => exit::RUN_FAILED,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interrupted => {
                f.write_str("interrupted (Ctrl-C): in-flight samples were allowed to finish")
            }
            Self::BadData {
                origin,
                reason,
                hint,
                ..
            } => {
                write!(f, "bad data at {origin}: {reason}")?;
                match hint {
                    Some(h) => write!(f, " ({h})"),
                    None => Ok(()),
                }
            }
            Self::SampleFailed { origin, error, .. } => {
                write!(f, "sample {origin} failed: {error}")
            }
            Self::TooManyAtRisk { limit, last } => {
                write!(f, "more than {limit} samples at risk; last: {last}")
            }
            Self::WrongName {
                row,
                origin,
                node,
                expected,
                got,
            } => write!(
                f,
                "sample {origin} (row {row}): node {node} returned the pattern name {} where \
                 KATO's naming rule gives {}; this server names patterns differently (another \
                 KATO version, or SORT_SYMBOLS=false), so its knowledge base cannot be trusted \
                 or compared",
                got.as_deref().unwrap_or("null"),
                expected
                    .as_deref()
                    .unwrap_or("no name (fewer than 2 symbols)"),
            ),
            Self::NotDurable { error } => write!(
                f,
                "{error}; the samples finished since the last checkpoint are not marked \
                 done: fix the cause (a full disk: free space where the knowledge-base file \
                 and the journal are), then `--resume` trains them again"
            ),
            Self::Other { message } => f.write_str(message),
        }
    }
}

/// Reads a stop reason written either as a tagged object or, by an older katotune, as
/// a string.
pub(super) fn read_stop_reason<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<StopReason>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Typed(StopReason),
        Text(String),
    }
    Ok(match Option::<Stored>::deserialize(d)? {
        None => None,
        Some(Stored::Typed(r)) => Some(r),
        Some(Stored::Text(message)) => Some(StopReason::Other { message }),
    })
}

/// Whether the names a run was given back can be trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KbTrust {
    /// Every name the server returned was the one katotune computed.
    Verified,
    /// A name differed (see the stop reason): the KB holds patterns under names no
    /// other KATO would give them.
    Untrusted,
    /// Written by an older katotune, which did not check names.
    #[default]
    Unchecked,
}

impl RunRecord {
    /// The process exit code this run means (README table): 0 clean, 6 completed
    /// with samples at risk, 130 interrupted, else the stop reason's code.
    pub fn exit_code(&self) -> i32 {
        match (self.status, &self.stop_reason) {
            (RunStatus::Completed, _) if !self.samples.at_risk.is_empty() => exit::SAMPLES_AT_RISK,
            (RunStatus::Completed, _) => exit::OK,
            (RunStatus::Interrupted, _) => exit::INTERRUPTED,
            (RunStatus::Failed, Some(reason)) => reason.exit_code(),
            (RunStatus::Failed, None) => exit::RUN_FAILED,
        }
    }
}

/// Why a sample did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A KATO call failed.
    #[error(transparent)]
    Kato(#[from] KatoError),
    /// The server returned a pattern name KATO's naming rule does not give.
    #[error("node {} returned the pattern name {} where KATO's naming rule gives {}", .0.node, .0.got.as_deref().unwrap_or("null"), .0.expected.as_deref().unwrap_or("no name"))]
    WrongName(WrongName),
}

impl SampleError {
    /// Whether the failed call may have changed the KB (a wrong name was stored).
    pub fn may_have_applied(&self) -> bool {
        match self {
            Self::Kato(e) => e.may_have_applied(),
            Self::WrongName(_) => true,
        }
    }
}

/// A name the server returned that differs from the one katotune computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongName {
    /// The node that answered.
    pub node: String,
    /// KATO's rule: `None` when fewer than 2 symbols make no pattern.
    pub expected: Option<String>,
    /// The server's answer: `None` when null or empty.
    pub got: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_text_reasons_and_new_tagged_ones_both_read() {
        #[derive(Deserialize)]
        struct R {
            #[serde(default, deserialize_with = "read_stop_reason")]
            r: Option<StopReason>,
        }
        let old: R = serde_json::from_str(r#"{"r": "bad data at x:1: no text"}"#).unwrap();
        assert_eq!(
            old.r,
            Some(StopReason::Other {
                message: "bad data at x:1: no text".into()
            })
        );
        let new: R = serde_json::from_str(r#"{"r": {"kind": "interrupted"}}"#).unwrap();
        assert_eq!(new.r, Some(StopReason::Interrupted));
        let none: R = serde_json::from_str("{}").unwrap();
        assert_eq!(none.r, None);
    }
}
