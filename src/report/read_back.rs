//! Where a profile's KB digests come from, and every node whose KB as read back after
//! a run is not what the client tallied from the server's answers (see
//! [`crate::train::kb_check`]). The KB column and the correctness check compare the
//! digests read back; this says from where, and which runs disagree with themselves.

use serde::{Deserialize, Serialize};

use crate::train::digest::KbDigest;
use crate::train::kb_check::KbSource;
use crate::train::record::RunRecord;

/// The read-back of one profile's measured runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadBackSummary {
    /// Where the last run's KB was read (`stores`, `engine`, `client-tally`).
    pub source: KbSource,
    /// Why that source.
    pub note: String,
    /// Every node of any measured run whose KB as read back is not the client's tally.
    #[serde(default)]
    pub mismatches: Vec<TallyMismatch>,
}

/// One node of one run whose stored KB is not what the server's answers said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TallyMismatch {
    /// The measured run, from 1.
    pub run: u32,
    /// The profile's node id.
    pub node: String,
    /// The KB that was read.
    pub kb_id: String,
    /// The KB as read back.
    pub kb: KbDigest,
    /// The client's tally.
    pub tally: KbDigest,
}

impl ReadBackSummary {
    /// The read-back of `records` (`None` when no record carries a KB check, as in
    /// records of `katotune run` or written before record version 2).
    pub fn of(records: &[RunRecord]) -> Option<ReadBackSummary> {
        let last = records.iter().rev().find_map(|r| r.kb_check.as_ref())?;
        let mismatches = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.kb_check.as_ref()?)))
            .flat_map(|(i, check)| {
                check.mismatches().map(move |n| TallyMismatch {
                    run: i as u32 + 1,
                    node: n.node.clone(),
                    kb_id: n.kb_id.clone(),
                    kb: n.kb.clone(),
                    tally: n.tally.clone(),
                })
            })
            .collect();
        Some(ReadBackSummary {
            source: last.source,
            note: last.note.clone(),
            mismatches,
        })
    }

    /// One word for table cells: `stores`, `engine`, `tally`.
    pub fn short(&self) -> &'static str {
        match self.source {
            KbSource::Stores => "stores",
            KbSource::Engine => "engine",
            KbSource::ClientTally => "tally",
        }
    }

    /// The nodes that disagree, each once, in first-seen order.
    pub fn mismatched_nodes(&self) -> Vec<&str> {
        let mut nodes: Vec<&str> = Vec::new();
        for m in &self.mismatches {
            if !nodes.contains(&m.node.as_str()) {
                nodes.push(&m.node);
            }
        }
        nodes
    }
}
