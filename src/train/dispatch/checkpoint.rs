//! Checkpoints: the moment staged samples become done.
//!
//! With a barrier (katotune's engine), the dispatcher stops feeding, lets in-flight
//! samples finish, stages their rows in the row log under a label, asks the server to
//! commit under that label, and only then counts them and marks them done. A server
//! that restarted in between is rolled back to its file; if the label did not reach
//! it, the staged samples are trained again. A write error stops the run.

use std::time::Duration;

use super::{
    Dispatcher, Event, RunStatus, Staged, CHECKPOINT_SPACING_FACTOR, MAX_AT_RISK,
    MAX_CHECKPOINT_SPACING, MIN_CHECKPOINT_SPACING,
};
use crate::train::durable::Committed;
use crate::train::journal::RowState;
use crate::train::outcome::StopReason;

impl Dispatcher<'_> {
    /// Makes the staged samples durable and counts them (see the module docs).
    pub(super) async fn checkpoint(&mut self) {
        self.checkpoint_due = false;
        if self.staged.is_empty() {
            return;
        }
        if self.barrier.is_none() {
            self.confirm_staged();
            self.save_journal();
            return;
        }
        self.checkpoints += 1;
        let started = std::time::Instant::now();
        let label = format!("{}/{}/{}", self.opts.run_id, self.session, self.checkpoints);
        let rows: Vec<(u64, RowState)> = self
            .staged
            .iter()
            .map(|s| {
                let state = match s.outcome {
                    Ok(_) => RowState::Done,
                    Err(_) => RowState::AtRisk,
                };
                (s.sample.row, state)
            })
            .collect();
        let Some(barrier) = self.barrier.as_mut() else {
            return;
        };
        if let Err(error) = self.ledger.stage(&label, rows).await {
            // Without its rows on disk a resume could not tell these samples were done:
            // nothing is committed, and the engine forgets them, or the release at the
            // end would commit them and a resume would learn them twice.
            if let Err(e) = barrier.discard().await {
                tracing::warn!(
                    "could not roll the knowledge base back to its last checkpoint: {e}"
                );
            }
            self.staged.clear();
            self.stop(RunStatus::Failed, StopReason::NotDurable { error });
            return;
        }
        match barrier.commit(&label).await {
            Ok(Committed::Durable | Committed::Restarted { landed: true }) => {
                let samples = self.staged.len();
                self.confirm_staged();
                self.emit(&Event::Checkpoint {
                    label: &label,
                    samples,
                });
            }
            Ok(Committed::Restarted { landed: false }) => {
                tracing::warn!(
                    "the server restarted and lost the {} samples finished since the last \
                     checkpoint; training them again",
                    self.staged.len()
                );
                let lost = std::mem::take(&mut self.staged);
                self.emit(&Event::Requeued {
                    samples: lost.len() as u64,
                });
                self.redo.extend(lost.into_iter().map(|s| s.sample));
            }
            Err(e) => {
                self.staged.clear();
                self.stop(
                    RunStatus::Failed,
                    StopReason::NotDurable {
                        error: e.to_string(),
                    },
                );
            }
        }
        self.save_journal();
        self.space_checkpoints(started);
    }

    /// Counts the time this checkpoint kept the workers from training and spaces the
    /// next one by how long its commit took (see [`CHECKPOINT_SPACING_FACTOR`]).
    fn space_checkpoints(&mut self, started: std::time::Instant) {
        let waited_from = self.due_since.take().unwrap_or(started).min(started);
        self.checkpoint_wait += waited_from.elapsed();
        self.checkpoint_spacing = spacing_after(started.elapsed());
        self.last_checkpoint = std::time::Instant::now();
    }

    /// Counts the staged samples: they are as durable as the server can make them.
    pub(super) fn confirm_staged(&mut self) {
        for Staged { sample, outcome } in std::mem::take(&mut self.staged) {
            match outcome {
                Ok(result) => self.emit(&Event::Done {
                    sample: &sample,
                    result: &result,
                }),
                Err(issue) => {
                    self.emit(&Event::AtRisk { issue: &issue });
                    if self.record.samples.at_risk.len() > MAX_AT_RISK {
                        let last = issue.reason;
                        self.stop(
                            RunStatus::Failed,
                            StopReason::TooManyAtRisk {
                                limit: MAX_AT_RISK,
                                last,
                            },
                        );
                    }
                }
            }
            self.frontier.completed(sample.row);
        }
    }

    /// The last checkpoint of the run, then lets the server write behind again.
    pub(super) async fn finish_checkpoints(&mut self) {
        if self.barrier.is_none() {
            return;
        }
        self.checkpoint().await;
        let Some(barrier) = &self.barrier else {
            return;
        };
        if let Err(e) = barrier.release().await {
            tracing::warn!(
                "could not release the knowledge base's checkpoint hold ({e}); every sample \
                 marked done is stored, and the next run on this knowledge base takes the \
                 hold over"
            );
        }
    }
}

/// The least time until the next checkpoint after one that took `took`:
/// [`CHECKPOINT_SPACING_FACTOR`] times it, within [`MIN_CHECKPOINT_SPACING`] and
/// [`MAX_CHECKPOINT_SPACING`].
fn spacing_after(took: Duration) -> Duration {
    took.saturating_mul(CHECKPOINT_SPACING_FACTOR)
        .clamp(MIN_CHECKPOINT_SPACING, MAX_CHECKPOINT_SPACING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_spaced_so_waiting_for_them_is_a_tenth_of_the_run() {
        let ms = Duration::from_millis;
        // Quick checkpoints: no more than one a second.
        assert_eq!(spacing_after(ms(20)), MIN_CHECKPOINT_SPACING);
        // A slow commit (a knowledge base past the page cache): nine times as long
        // training between, so the run waits a tenth of its time.
        assert_eq!(spacing_after(ms(300)), ms(2_700));
        // Never so far apart that a crash loses more than the cap.
        assert_eq!(
            spacing_after(Duration::from_secs(4)),
            MAX_CHECKPOINT_SPACING
        );
    }
}
