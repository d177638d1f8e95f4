//! Checkpoints: the moment staged samples become done.
//!
//! With a barrier (katotune's engine), the dispatcher stops feeding, lets in-flight
//! samples finish, stages their rows in the row log under a label, asks the server to
//! commit under that label, and only then counts them and marks them done. The server
//! answers the commit at its cut (everything learned so far is taken into it), so
//! feeding resumes at once while the server syncs; the samples are marked done when
//! [`Barrier::durable`](crate::train::durable::Barrier::durable) says the commit is on
//! disk. One commit is under way at a time: a checkpoint that falls due before the last
//! one is durable waits for it. A server that restarted in between is rolled back to
//! its file; if the label did not reach it, the staged samples are trained again, and
//! so are the samples trained since its cut. A write error stops the run.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{
    Dispatcher, Event, RunStatus, Staged, CHECKPOINT_SPACING_FACTOR, MAX_AT_RISK,
    MAX_CHECKPOINT_SPACING, MIN_CHECKPOINT_SPACING,
};
use crate::train::durable::{Committed, DurableError};
use crate::train::journal::RowState;
use crate::train::outcome::StopReason;

/// A commit the server is syncing while the workers train on.
pub(super) struct Committing {
    label: String,
    /// The samples it makes durable.
    staged: Vec<Staged>,
    /// When its checkpoint began (its duration spaces the next one).
    started: Instant,
    /// The server's answer: `true` once on disk, `false` if it restarted meanwhile.
    answer: Answer,
}

enum Answer {
    Waiting(JoinHandle<Result<bool, DurableError>>),
    Ready(Result<bool, DurableError>),
}

/// The answer of the commit under way, once it comes (never, without one).
pub(super) async fn commit_answer(
    committing: &mut Option<Committing>,
) -> Result<bool, DurableError> {
    match committing.as_mut().map(|c| &mut c.answer) {
        Some(Answer::Waiting(handle)) => joined(handle.await),
        _ => std::future::pending().await,
    }
}

fn joined(
    answer: Result<Result<bool, DurableError>, tokio::task::JoinError>,
) -> Result<bool, DurableError> {
    answer.unwrap_or_else(|e| Err(DurableError::Store(format!("waiting for the commit: {e}"))))
}

impl Dispatcher<'_> {
    /// Makes the staged samples durable and counts them (see the module docs).
    pub(super) async fn checkpoint(&mut self) {
        self.checkpoint_due = false;
        if self.barrier.is_none() {
            if !self.staged.is_empty() {
                self.confirm_staged();
                self.save_journal();
            }
            return;
        }
        let started = Instant::now();
        self.settle_commit().await;
        if self.staged.is_empty() {
            self.count_wait(started);
            return;
        }
        self.checkpoints += 1;
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
            self.count_wait(started);
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        match barrier.commit(&label).await {
            Ok(Committed::Committing) => {
                let answer = Answer::Waiting(tokio::spawn(barrier.durable(&label)));
                self.committing = Some(Committing {
                    label,
                    staged,
                    started,
                    answer,
                });
            }
            answer => self.settled(&label, staged, started, answer),
        }
        self.count_wait(started);
    }

    /// Takes the answer of the commit under way while samples train. On disk: its
    /// samples are done now. Anything else (a restart, an error) is settled at the next
    /// checkpoint, which falls due at once, so that nothing is in flight meanwhile.
    pub(super) fn commit_answered(&mut self, answer: Result<bool, DurableError>) {
        if matches!(answer, Ok(true)) {
            if let Some(c) = self.committing.take() {
                self.settled(&c.label, c.staged, c.started, Ok(Committed::Durable));
            }
            return;
        }
        if let Some(c) = self.committing.as_mut() {
            c.answer = Answer::Ready(answer);
        }
        self.checkpoint_due = true;
        self.due_since.get_or_insert_with(Instant::now);
    }

    /// Waits for the commit under way, if any, and settles its samples. A restart
    /// rolls the server back to its file, so the samples trained since the cut (all
    /// staged: call this with nothing in flight) are trained again too.
    async fn settle_commit(&mut self) {
        let Some(c) = self.committing.take() else {
            return;
        };
        let answer = match c.answer {
            Answer::Waiting(handle) => joined(handle.await),
            Answer::Ready(answer) => answer,
        };
        let outcome = match answer {
            Ok(true) => Ok(Committed::Durable),
            Err(e) => Err(e),
            Ok(false) => match self.barrier.as_mut() {
                Some(barrier) => barrier.recover(&c.label).await,
                None => Ok(Committed::Durable),
            },
        };
        if matches!(outcome, Ok(Committed::Restarted { .. })) && !self.staged.is_empty() {
            let lost = std::mem::take(&mut self.staged);
            tracing::warn!(
                "the server restarted and lost the {} samples finished since the last \
                 checkpoint's cut; training them again",
                lost.len()
            );
            self.emit(&Event::Requeued {
                samples: lost.len() as u64,
            });
            self.redo.extend(lost.into_iter().map(|s| s.sample));
        }
        self.settled(&c.label, c.staged, c.started, outcome);
    }

    /// Counts, retrains or fails `staged` by the outcome of their commit, saves the
    /// journal and spaces the next checkpoint by how long this one took.
    fn settled(
        &mut self,
        label: &str,
        staged: Vec<Staged>,
        started: Instant,
        outcome: Result<Committed, DurableError>,
    ) {
        match outcome {
            Ok(Committed::Durable | Committed::Restarted { landed: true }) => {
                let samples = staged.len();
                self.confirm(staged);
                self.emit(&Event::Checkpoint { label, samples });
            }
            Ok(Committed::Restarted { landed: false }) => {
                tracing::warn!(
                    "the server restarted and lost the {} samples finished since the last \
                     checkpoint; training them again",
                    staged.len()
                );
                self.emit(&Event::Requeued {
                    samples: staged.len() as u64,
                });
                self.redo.extend(staged.into_iter().map(|s| s.sample));
            }
            // Not asked for: `commit` answers `Committing` only to be awaited.
            Ok(Committed::Committing) => {}
            Err(e) => {
                self.stop(
                    RunStatus::Failed,
                    StopReason::NotDurable {
                        error: e.to_string(),
                    },
                );
            }
        }
        self.save_journal();
        self.checkpoint_spacing = spacing_after(started.elapsed());
    }

    /// Counts the time the workers stood still for this checkpoint: from when it fell
    /// due (or began) until feeding resumes now.
    fn count_wait(&mut self, started: Instant) {
        let waited_from = self.due_since.take().unwrap_or(started).min(started);
        self.checkpoint_wait += waited_from.elapsed();
        self.last_checkpoint = Instant::now();
    }

    /// Counts the staged samples: they are as durable as the server can make them.
    pub(super) fn confirm_staged(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        self.confirm(staged);
    }

    /// Counts `staged`: done, or at risk.
    fn confirm(&mut self, staged: Vec<Staged>) {
        for Staged { sample, outcome } in staged {
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
        self.settle_commit().await;
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
            spacing_after(Duration::from_secs(3)),
            MAX_CHECKPOINT_SPACING
        );
    }
}
