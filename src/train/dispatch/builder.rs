//! The record builder: a subscriber that adds up what durable samples taught, and at
//! the end turns it into the run record.

use super::events::{Event, Reporter};
use crate::kato::metrics::MetricsSnapshot;
use crate::train::dataset::DatasetIdentity;
use crate::train::digest::NodeTally;
use crate::train::hierarchy::{min_node0_chunks, receptive_field, LevelCounts, TailPolicy};
use crate::train::outcome::{KbTrust, StopReason};
use crate::train::plan::TrainPlan;
use crate::train::record::{
    DurabilityInfo, LevelRecord, RunRecord, RunStatus, SampleCounts, RECORD_VERSION,
};
use crate::train::runner::{now, Target};
use crate::train::segment::SegmentCounts;

/// Tallies, counts and sample outcomes of the durable samples.
pub(crate) struct RecordBuilder {
    /// Per node: every learned name with its count, or learns only (`keep_names`
    /// false: the digests come from the knowledge base, and the workers tallied
    /// counts only, see `Worker::start`).
    tallies: Vec<NodeTally>,
    keep_names: bool,
    counts: Vec<LevelCounts>,
    pub(crate) samples: SampleCounts,
    /// How the done samples' texts were segmented (its `tokens` are the record's).
    segmentation: SegmentCounts,
    /// Samples whose training ended in this session (done, at risk, or trained but
    /// not made durable because the run stopped): every client call was made by one.
    trained: u64,
}

/// How the run ended, as the dispatcher decided it.
pub(crate) struct Verdict {
    pub(crate) status: RunStatus,
    pub(crate) stop_reason: Option<StopReason>,
    pub(crate) kb_trust: KbTrust,
}

/// Everything about the run the builder does not count itself.
pub(crate) struct RunFacts<'p> {
    pub(crate) plan: &'p TrainPlan,
    pub(crate) target: &'p Target,
    pub(crate) run_id: String,
    pub(crate) resumed: bool,
    pub(crate) dataset: DatasetIdentity,
    pub(crate) started_at: String,
    /// Seconds.
    pub(crate) wall: f64,
    pub(crate) calls: MetricsSnapshot,
    pub(crate) durability: DurabilityInfo,
}

impl RecordBuilder {
    pub(crate) fn new(levels: usize, keep_names: bool) -> Self {
        Self {
            tallies: vec![NodeTally::default(); levels],
            keep_names,
            counts: vec![LevelCounts::default(); levels],
            samples: SampleCounts::default(),
            segmentation: SegmentCounts::default(),
            trained: 0,
        }
    }

    /// Whether the tallies hold every learned name.
    pub(crate) fn keeps_names(&self) -> bool {
        self.keep_names
    }

    /// Samples settled in this session: done or at risk.
    pub(crate) fn settled(&self) -> u64 {
        self.samples.done + self.samples.at_risk.len() as u64
    }

    /// The run record, and the tallies it was built from.
    pub(crate) fn into_record(
        self,
        verdict: Verdict,
        facts: RunFacts<'_>,
    ) -> (RunRecord, Vec<NodeTally>) {
        let RunFacts {
            plan, calls, wall, ..
        } = facts;
        // Per sample trained, durable or not: a run that stopped before its samples
        // were stored made their calls all the same. With no sample trained there is
        // no per-sample figure: the map stays empty (n/a), rather than dividing by a
        // made-up one.
        let trained = self.trained as f64;
        let calls_per_sample = calls
            .endpoints
            .iter()
            .filter(|_| trained > 0.0)
            .map(|(e, s)| (e.label().to_string(), s.calls as f64 / trained))
            .collect();
        let levels = level_records(plan, &self.tallies, &self.counts);
        let record = RunRecord {
            version: RECORD_VERSION,
            katotune_version: env!("CARGO_PKG_VERSION").into(),
            run_id: facts.run_id,
            status: verdict.status,
            stop_reason: verdict.stop_reason,
            kb_trust: verdict.kb_trust,
            profile: plan.profile.clone(),
            shard: plan.shard,
            backend: facts.target.backend.clone(),
            dataset: facts.dataset,
            started_at: facts.started_at,
            finished_at: now(),
            wall_seconds: wall,
            resumed: facts.resumed,
            samples_per_second: self.samples.done as f64 / wall.max(1e-9),
            tokens_per_second: self.segmentation.tokens as f64 / wall.max(1e-9),
            samples: self.samples,
            tokens: self.segmentation.tokens,
            calls_per_sample,
            calls,
            segmentation: self.segmentation,
            levels,
            durability: facts.durability,
            delivery: None,
            kb_check: None,
        };
        (record, self.tallies)
    }
}

impl Reporter for RecordBuilder {
    fn on(&mut self, event: &Event<'_>) {
        match event {
            Event::Filtered => self.samples.filtered += 1,
            Event::Finished => self.trained += 1,
            Event::Skipped { issue } => self.samples.skipped.push((*issue).clone()),
            Event::Done { sample, result } => {
                for (total, t) in self.tallies.iter_mut().zip(&result.tallies) {
                    total.merge(t);
                }
                for (total, c) in self.counts.iter_mut().zip(&result.counts) {
                    total.add(c);
                }
                self.segmentation.add(&sample.segments);
                self.samples.done += 1;
            }
            Event::AtRisk { issue } => self.samples.at_risk.push((*issue).clone()),
            Event::Failed { issue } => self.samples.failed.push((*issue).clone()),
            _ => {}
        }
    }
}

fn level_records(
    plan: &TrainPlan,
    tallies: &[NodeTally],
    counts: &[LevelCounts],
) -> Vec<LevelRecord> {
    let sizes = plan.chunk_sizes();
    let anything = tallies.iter().any(|t| t.learns() > 0);
    (0..sizes.len())
        .map(|level| {
            let kb = tallies[level].digest();
            let field = receptive_field(sizes, level);
            let idle = tallies[level].learns() == 0;
            let note = (idle && anything).then(|| idle_level_note(sizes, level));
            LevelRecord {
                node: plan.node_ids()[level].clone(),
                chunk_size: sizes[level],
                requests: if level == 0 {
                    tallies[0].learns() + counts[0].empty
                } else {
                    counts[level].requests
                },
                dropped: counts.get(level).map_or(0, |c| c.dropped),
                receptive_field: field,
                kb,
                note,
            }
        })
        .collect()
}

/// Why a level learned nothing: no sample was long enough to give it two names.
fn idle_level_note(sizes: &[usize], level: usize) -> String {
    let field = receptive_field(sizes, level);
    match min_node0_chunks(&sizes[1..], level, TailPolicy::LearnIfAtLeastTwo) {
        Some(chunks) => format!(
            "learned nothing: a sample needs about {} tokens ({chunks} node0 chunks) to give this level \
             the 2 names it learns from; a full pattern here spans {field} tokens",
            chunks * sizes[0] as u64
        ),
        None => format!("learned nothing: a full pattern here spans {field} tokens"),
    }
}
