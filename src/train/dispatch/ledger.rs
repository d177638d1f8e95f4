//! The ledger: the only owner of the resume journal and the row log.
//!
//! It subscribes to the run's events and keeps the journal's lists; every write goes
//! to a dedicated thread (never a tokio worker thread) in order. The thread batches row
//! lines and hands them to the operating system whenever its queue runs dry, so they
//! survive a `kill -9` within moments; a checkpoint's staged rows are synced to disk
//! before [`Ledger::stage`] returns, which keeps the barrier's order: staged rows on
//! disk, then the server's commit, then the done marks (see `checkpoint.rs`).

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::events::{Event, Reporter};
use crate::train::journal::{Journal, RowLog, RowState};
use crate::train::runner::now;

enum Write {
    Row(u64, RowState),
    /// Rows a labelled checkpoint is about to commit; answered once synced, or with
    /// the write error.
    Stage {
        label: String,
        rows: Vec<(u64, RowState)>,
        synced: oneshot::Sender<Result<(), String>>,
    },
    Journal(Box<Journal>),
    /// Answered once everything before it reached the operating system.
    Flush(oneshot::Sender<()>),
}

/// The journal and the row log of one run.
pub(crate) struct Ledger {
    journal: Journal,
    writes: Option<mpsc::Sender<Write>>,
    thread: Option<JoinHandle<()>>,
}

impl Ledger {
    /// Takes over the journal (saved at `journal_path`) and the open row log.
    pub(crate) fn new(journal: Journal, journal_path: PathBuf, row_log: RowLog) -> Self {
        let (tx, rx) = mpsc::channel();
        let path = journal_path;
        let thread = std::thread::Builder::new()
            .name("katotune-ledger".into())
            .spawn(move || write_loop(row_log, &path, &rx))
            .expect("a thread can be spawned");
        Self {
            journal,
            writes: Some(tx),
            thread: Some(thread),
        }
    }

    fn send(&self, write: Write) {
        if let Some(tx) = &self.writes {
            if tx.send(write).is_err() {
                tracing::error!("the row log writer stopped; the resume journal may be behind");
            }
        }
    }

    /// Waits until every row line so far has reached the operating system (a sample's
    /// `S` line before its first request, on a server without a barrier).
    pub(crate) async fn flushed(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Write::Flush(tx));
        let _ = rx.await;
    }

    /// Writes and syncs the rows a checkpoint labelled `label` is about to commit.
    ///
    /// # Errors
    /// The row log could not be written and synced (a full disk), or its writer
    /// stopped: the checkpoint must not commit.
    pub(crate) async fn stage(
        &self,
        label: &str,
        rows: Vec<(u64, RowState)>,
    ) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::Stage {
            label: label.to_string(),
            rows,
            synced: tx,
        });
        rx.await
            .unwrap_or_else(|_| Err("the row log writer stopped".to_string()))
    }

    /// Saves the journal (atomically, on the writer thread): reading resumes at
    /// `next_row`; `samples_done` counts every session of the run.
    pub(crate) fn save(&mut self, next_row: u64, samples_done: u64, run_id: &str) {
        self.journal.next_row = next_row;
        self.journal.samples_done = samples_done;
        self.journal.updated_at = now();
        self.journal.run_id = run_id.to_string();
        self.send(Write::Journal(Box::new(self.journal.clone())));
    }

    /// Writes everything still queued and stops the writer thread.
    pub(crate) async fn finish(&mut self) {
        self.writes = None;
        if let Some(thread) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the row log writer failed; the resume journal may be behind");
            }
        }
    }
}

impl Reporter for Ledger {
    fn on(&mut self, event: &Event<'_>) {
        match event {
            Event::Started { row } => self.send(Write::Row(*row, RowState::Started)),
            Event::Done { sample, .. } => self.send(Write::Row(sample.row, RowState::Done)),
            Event::AtRisk { issue } => {
                self.journal.at_risk_rows.push(issue.row);
                self.send(Write::Row(issue.row, RowState::AtRisk));
            }
            Event::Failed { issue } => self.send(Write::Row(issue.row, RowState::Failed)),
            Event::Skipped { issue } => self.journal.skipped_rows.push(issue.row),
            _ => {}
        }
    }
}

/// The writer thread: applies writes in order, flushing whenever the queue runs dry.
fn write_loop(mut log: RowLog, journal_path: &std::path::Path, rx: &mpsc::Receiver<Write>) {
    let mut waiting = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(write) = next {
            match write {
                Write::Row(row, state) => log.record(row, state),
                Write::Stage {
                    label,
                    rows,
                    synced,
                } => {
                    let _ = synced.send(log.stage(&label, &rows));
                }
                Write::Journal(journal) => {
                    log.flush();
                    if let Err(e) = journal.save(journal_path) {
                        tracing::error!("{e}");
                    }
                }
                Write::Flush(done) => waiting.push(done),
            }
            next = rx.try_recv().ok();
        }
        log.flush();
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    log.flush();
}
