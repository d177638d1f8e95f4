//! The dispatcher's decisions about single rows: what the reader hands over, what a
//! worker brings back, and why the run stops.

use std::sync::Arc;

use super::executor::{Executor, Outcome};
use super::{Dispatcher, Event, Staged};
use crate::terms::OnBadSample;
use crate::train::outcome::{KbTrust, StopReason};
use crate::train::reader::Feed;
use crate::train::record::{RunStatus, SampleIssue};
use crate::train::worker::SampleError;

impl Dispatcher<'_> {
    /// Takes one item from the reader; false stops feeding.
    pub(super) async fn accept(&mut self, item: Feed, executor: &Executor) -> bool {
        match item {
            Feed::Filtered(row) => {
                self.emit(&Event::Filtered);
                self.frontier.settled(row);
                true
            }
            Feed::Settled(row) => {
                self.frontier.settled(row);
                true
            }
            Feed::Bad(bad) => {
                let issue = SampleIssue {
                    row: bad.row,
                    origin: bad.origin.clone(),
                    reason: bad.reason.to_string(),
                };
                if self.on_bad_sample == OnBadSample::Skip && !bad.is_fatal() {
                    tracing::warn!("skipping {bad}");
                    self.emit(&Event::Skipped { issue: &issue });
                    self.frontier.settled(bad.row);
                    true
                } else {
                    let hint = (!bad.is_fatal()).then(|| {
                        "set training.on_bad_sample: skip to go on past bad rows".to_string()
                    });
                    let reason = StopReason::BadData {
                        row: bad.row,
                        origin: issue.origin,
                        reason: issue.reason,
                        hint,
                    };
                    self.stop(RunStatus::Failed, reason);
                    false
                }
            }
            Feed::Sample(sample) => {
                if !executor.is_open() {
                    return false;
                }
                let sample = Arc::new(sample);
                self.frontier.dispatched(sample.row);
                self.emit(&Event::Started { row: sample.row });
                if self.barrier.is_none() {
                    // Without a barrier, the `S` line is what tells a resume that this
                    // row may be half-way: it must be written before the first request.
                    self.ledger.flushed().await;
                }
                self.in_flight.insert(sample.row, sample.clone());
                executor.submit(sample).await
            }
        }
    }

    /// Takes a worker's outcome: staged (trained or at risk), or the run stops.
    pub(super) fn settle(&mut self, (sample, result): Outcome) {
        self.in_flight.remove(&sample.row);
        let outcome = match result {
            Ok(r) => Ok(r),
            Err(failure) => {
                let issue = SampleIssue {
                    row: sample.row,
                    origin: sample.origin.clone(),
                    reason: failure.error.to_string(),
                };
                if let SampleError::WrongName(wrong) = failure.error {
                    tracing::error!(
                        "sample {} taught the server a wrongly named pattern",
                        sample.origin
                    );
                    self.verdict.kb_trust = KbTrust::Untrusted;
                    let reason = StopReason::WrongName {
                        row: sample.row,
                        origin: sample.origin.clone(),
                        node: wrong.node,
                        expected: wrong.expected,
                        got: wrong.got,
                    };
                    self.stop(RunStatus::Failed, reason);
                    Err(issue)
                } else if failure.at_risk {
                    tracing::error!(
                        "sample {} is at risk (its learns may have reached KATO partly): {}",
                        sample.origin,
                        failure.error
                    );
                    Err(issue)
                } else {
                    self.emit(&Event::Failed { issue: &issue });
                    let reason = StopReason::SampleFailed {
                        row: sample.row,
                        origin: sample.origin.clone(),
                        error: failure.error.to_string(),
                    };
                    self.stop(RunStatus::Failed, reason);
                    return;
                }
            }
        };
        self.emit(&Event::Finished);
        self.staged.push(Staged { sample, outcome });
        if self.barrier.is_some() {
            self.checkpoint_due |= self.staged.len() as u64 >= self.checkpoint_every
                && self.last_checkpoint.elapsed() >= self.checkpoint_spacing;
            if self.checkpoint_due && self.due_since.is_none() {
                self.due_since = Some(std::time::Instant::now());
            }
            return;
        }
        // No barrier: what the server acknowledged is all there is to know.
        self.confirm_staged();
        if self.record.settled().is_multiple_of(self.checkpoint_every) {
            self.save_journal();
        }
    }

    /// The Ctrl-C deadline passed: samples still training are settled as at risk.
    pub(super) fn abandon_in_flight(&mut self) {
        for (row, sample) in std::mem::take(&mut self.in_flight) {
            let issue = SampleIssue {
                row,
                origin: sample.origin.clone(),
                reason: "abandoned at the Ctrl-C deadline while training".into(),
            };
            self.emit(&Event::Finished);
            self.staged.push(Staged {
                sample,
                outcome: Err(issue),
            });
        }
        if self.barrier.is_none() {
            self.confirm_staged();
        }
    }

    /// Records why the run stops; the first reason wins, except that a wrong name
    /// (the KB cannot be trusted) wins over anything else.
    pub(super) fn stop(&mut self, status: RunStatus, reason: StopReason) {
        let wrong = |r: &StopReason| matches!(r, StopReason::WrongName { .. });
        let overrides = wrong(&reason) && !self.verdict.stop_reason.as_ref().is_some_and(wrong);
        if self.verdict.status == RunStatus::Completed || overrides {
            self.verdict.status = status;
            self.verdict.stop_reason = Some(reason);
        }
    }
}
