//! Checkpoints: the moment staged samples become done.
//!
//! With a barrier (katotune's engine), the dispatcher stops feeding, lets in-flight
//! samples finish, stages their rows in the row log under a label, asks the server to
//! commit under that label, and only then counts them and marks them done. A server
//! that restarted in between is rolled back to its file; if the label did not reach
//! it, the staged samples are trained again. A write error stops the run.

use super::{RunState, RunStatus, Staged, MAX_AT_RISK};
use crate::train::durable::Committed;
use crate::train::journal::RowState;
use crate::train::outcome::StopReason;

impl RunState<'_> {
    /// Makes the staged samples durable and counts them (see the module docs).
    pub(super) async fn checkpoint(&mut self) {
        self.checkpoint_due = false;
        if self.staged.is_empty() {
            return;
        }
        let Some(barrier) = self.barrier.as_mut() else {
            self.confirm_staged();
            self.save_journal();
            return;
        };
        self.checkpoints += 1;
        self.last_checkpoint = std::time::Instant::now();
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
        self.row_log.stage(&label, &rows);
        match barrier.commit(&label).await {
            Ok(Committed::Durable | Committed::Restarted { landed: true }) => self.confirm_staged(),
            Ok(Committed::Restarted { landed: false }) => {
                tracing::warn!(
                    "the server restarted and lost the {} samples finished since the last \
                     checkpoint; training them again",
                    self.staged.len()
                );
                for Staged { sample, .. } in std::mem::take(&mut self.staged) {
                    self.redo.push_back(sample);
                }
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
    }

    /// Counts the staged samples: they are as durable as the server can make them.
    pub(super) fn confirm_staged(&mut self) {
        for Staged { sample, outcome } in std::mem::take(&mut self.staged) {
            match outcome {
                Ok(r) => {
                    for (total, t) in self.tallies.iter_mut().zip(r.tallies) {
                        total.merge(t);
                    }
                    for (total, c) in self.counts.iter_mut().zip(&r.counts) {
                        total.add(c);
                    }
                    self.tokens += sample.tokens;
                    self.samples.done += 1;
                    self.row_log.record(sample.row, RowState::Done);
                }
                Err(issue) => {
                    self.journal.at_risk_rows.push(sample.row);
                    self.row_log.record(sample.row, RowState::AtRisk);
                    let last = issue.reason.clone();
                    self.samples.at_risk.push(issue);
                    if self.samples.at_risk.len() > MAX_AT_RISK {
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
        if let Some(barrier) = &self.barrier {
            if let Err(e) = barrier.release().await {
                tracing::warn!("could not release the knowledge base's checkpoint hold: {e}");
            }
        }
    }
}
