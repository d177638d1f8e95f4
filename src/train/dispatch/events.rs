//! What happens to samples while a run goes on, and who listens.
//!
//! The dispatcher decides; it then emits an [`Event`] to every subscriber (the ledger,
//! the record builder, the progress display), as nextest's runner does with its
//! reporters. A subscriber only keeps its own account: it never decides anything.

use std::sync::Arc;

use crate::train::link::KatoLink;
use crate::train::progress::ProgressDisplay;
use crate::train::record::SampleIssue;
use crate::train::worker::{PreparedSample, SampleResult};

/// One thing that happened to a row or to the run.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// The filter dropped the row.
    Filtered,
    /// An unreadable row was skipped (`on_bad_sample: skip`).
    Skipped { issue: &'a SampleIssue },
    /// The sample is about to go to a worker (its first request may follow at once).
    Started { row: u64 },
    /// A worker finished the sample (trained, or settled as at risk); it counts once a
    /// checkpoint has made it durable.
    Finished,
    /// Samples finished since the last checkpoint were lost with a restarted server and
    /// go back to training.
    Requeued { samples: u64 },
    /// The sample was trained to the end and is durable.
    Done {
        sample: &'a Arc<PreparedSample>,
        result: &'a SampleResult,
    },
    /// The sample's learns may have reached the server partly or twice.
    AtRisk { issue: &'a SampleIssue },
    /// The sample failed before changing anything (trained again on resume).
    Failed { issue: &'a SampleIssue },
    /// A checkpoint made `samples` staged samples durable under `label`.
    Checkpoint { label: &'a str, samples: usize },
}

/// A subscriber to the run's events.
pub(crate) trait Reporter {
    fn on(&mut self, event: &Event<'_>);
}

/// The progress display as a subscriber: counts finished samples (durable or staged)
/// and samples at risk.
pub(crate) struct ProgressReporter {
    display: ProgressDisplay,
    settled: u64,
    at_risk: u64,
}

impl ProgressReporter {
    pub(crate) fn new(display: ProgressDisplay) -> Self {
        Self {
            display,
            settled: 0,
            at_risk: 0,
        }
    }

    /// Refreshes the display (rate-limited by the display itself).
    pub(crate) fn tick(&mut self, client: &KatoLink) {
        self.display.tick(self.settled, self.at_risk, || {
            client.metrics_snapshot().latency.p95_ms
        });
    }

    pub(crate) fn finish(&self) {
        self.display.finish();
    }
}

impl Reporter for ProgressReporter {
    fn on(&mut self, event: &Event<'_>) {
        match event {
            Event::Finished => self.settled += 1,
            Event::Requeued { samples } => self.settled = self.settled.saturating_sub(*samples),
            Event::AtRisk { .. } => self.at_risk += 1,
            Event::Checkpoint { label, samples } => {
                tracing::debug!("checkpoint {label}: {samples} samples durable");
            }
            _ => {}
        }
    }
}
