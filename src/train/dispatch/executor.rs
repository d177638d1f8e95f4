//! The executor: workers that only run samples. Each takes the next sample from one
//! multi-consumer channel (`async-channel`: no lock is held while a worker trains) and
//! sends back the outcome; ordering, durability and accounting are the dispatcher's.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::train::worker::{PreparedSample, SampleFailure, SampleResult, Worker};

/// A finished sample and what became of it.
pub(crate) type Outcome = (Arc<PreparedSample>, Result<SampleResult, SampleFailure>);

/// Running workers and the channel that feeds them.
pub(crate) struct Executor {
    work: Option<async_channel::Sender<Arc<PreparedSample>>>,
    handles: Vec<JoinHandle<()>>,
}

impl Executor {
    /// Starts one task per worker; outcomes arrive on the returned receiver, which
    /// closes once every worker has stopped.
    pub(crate) fn start(workers: Vec<Worker>) -> (Self, mpsc::Receiver<Outcome>) {
        let capacity = workers.len().max(1);
        let (work_tx, work_rx) = async_channel::bounded::<Arc<PreparedSample>>(capacity);
        let (out_tx, out_rx) = mpsc::channel::<Outcome>(capacity * 2);
        let handles = workers
            .into_iter()
            .map(|mut worker| {
                let rx = work_rx.clone();
                let tx = out_tx.clone();
                tokio::spawn(async move {
                    while let Ok(sample) = rx.recv().await {
                        let result = worker.train(&sample).await;
                        if tx.send((sample, result)).await.is_err() {
                            break;
                        }
                    }
                    worker.close().await;
                })
            })
            .collect();
        let executor = Self {
            work: Some(work_tx),
            handles,
        };
        (executor, out_rx)
    }

    /// Whether samples may still be submitted.
    pub(crate) fn is_open(&self) -> bool {
        self.work.is_some()
    }

    /// Hands a sample to the next free worker (waits while all are busy and the channel
    /// is full); false once closed.
    pub(crate) async fn submit(&self, sample: Arc<PreparedSample>) -> bool {
        match &self.work {
            Some(work) => work.send(sample).await.is_ok(),
            None => false,
        }
    }

    /// No more samples: workers finish what they have and stop.
    pub(crate) fn close(&mut self) {
        self.work = None;
    }

    /// Stops every worker now (the Ctrl-C deadline passed).
    pub(crate) fn abort(&self) {
        for h in &self.handles {
            h.abort();
        }
    }

    /// Waits until every worker has stopped.
    pub(crate) async fn join(mut self) {
        self.work = None;
        for h in std::mem::take(&mut self.handles) {
            let _ = h.await;
        }
    }
}
