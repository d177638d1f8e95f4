//! The reader thread: raw rows in, prepared samples out, in row order.
//!
//! It reads the corpus lazily, applies the filter, tokenizes and cuts each sample into
//! node0 chunks, and hands them over a bounded channel, so memory stays flat. In a
//! sharded run it also numbers the samples and passes on only the shard's (see
//! [`super::shard`]); the other rows go to the dispatcher as settled, so the journal's
//! row still moves past them.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dataset::cap::TextCap;
use super::dataset::{passes_reference_filter, BadSample, Dataset, RawSample};
use super::segment::{Segmentation, Segmenter};
use super::shard::{Place, ShardCursor};
use super::tokenizer::Gpt2Tokenizer;
use super::worker::PreparedSample;
use crate::terms::SampleFilter;

/// One row's fate, as the reader reports it.
pub(super) enum Feed {
    Sample(PreparedSample),
    Filtered(u64),
    /// Settled by an earlier run (resume).
    Settled(u64),
    Bad(BadSample),
}

/// The reader thread's work: rows in, prepared samples out, in row order.
pub(super) struct Reader {
    pub(super) tokenizer: Gpt2Tokenizer,
    pub(super) segmenter: Segmenter,
    pub(super) filter: SampleFilter,
    /// Samples still to train; `None` = the whole corpus.
    pub(super) remaining: Option<u64>,
    /// Rows an earlier run already settled.
    pub(super) skip: HashSet<u64>,
    /// A sharded run: numbers the samples and says which are this shard's (it reads
    /// from `training.skip`; the cap is the cursor's, not `remaining`).
    pub(super) shard: Option<ShardCursor>,
}

impl Reader {
    pub(super) fn spawn(
        mut self,
        mut dataset: Dataset,
        capacity: usize,
        stop: CancellationToken,
    ) -> mpsc::Receiver<Feed> {
        if let Some(cap) = self.text_cap() {
            dataset.cap_paragraphs(cap);
        }
        let (tx, rx) = mpsc::channel(capacity.max(2));
        std::thread::spawn(move || {
            for item in dataset {
                let capped = self.shard.as_ref().is_some_and(ShardCursor::exhausted);
                if stop.is_cancelled() || self.remaining == Some(0) || capped {
                    break;
                }
                let feed = match item {
                    Err(bad) => {
                        let fatal = bad.is_fatal();
                        let Some(feed) = self.route_unreadable(bad) else {
                            continue;
                        };
                        if tx.blocking_send(feed).is_err() || fatal {
                            break;
                        }
                        continue;
                    }
                    Ok(raw) => match self.prepare(raw) {
                        Some(feed) => feed,
                        None => continue,
                    },
                };
                if tx.blocking_send(feed).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// An unreadable row: reported (`Bad`), or, in a sharded run, settled when another
    /// shard counts it, or nothing when an earlier session already passed it.
    fn route_unreadable(&self, bad: BadSample) -> Option<Feed> {
        let place = (self.shard.as_ref())
            .map_or(Place::Mine, |c| c.place_unreadable(bad.row, bad.is_fatal()));
        match place {
            Place::Earlier => None,
            Place::Elsewhere => Some(Feed::Settled(bad.row)),
            Place::Mine => Some(Feed::Bad(bad)),
        }
    }

    /// Path A's paragraph cap, for the dataset to apply while reading (path B trains
    /// every token, so it has none).
    fn text_cap(&self) -> Option<TextCap> {
        if self.segmenter.segmentation() != Segmentation::Paragraphs {
            return None;
        }
        let tokenizer = self.tokenizer.clone();
        Some(TextCap::new(
            self.segmenter.paragraph_token_cap(),
            tokenizer.longest_token_bytes(),
            Arc::new(move |text: &str| tokenizer.count(text) as u64),
        ))
    }

    fn prepare(&mut self, raw: RawSample) -> Option<Feed> {
        let sample = self.filter == SampleFilter::None || passes_reference_filter(&raw.text);
        match self
            .shard
            .as_mut()
            .map(|c| c.place_readable(raw.row, sample))
        {
            Some(Place::Earlier) => return None,
            Some(Place::Elsewhere) => return Some(Feed::Settled(raw.row)),
            Some(Place::Mine) | None => {}
        }
        if self.skip.contains(&raw.row) {
            return Some(Feed::Settled(raw.row));
        }
        if !sample {
            return Some(Feed::Filtered(raw.row));
        }
        let tokenizer = &self.tokenizer;
        let mut plan = self
            .segmenter
            .plan(&raw.text, &|text: &str| tokenizer.tokenize(text));
        // Tokens the reader dropped past the cap count as the segmenter's cut would.
        plan.counts.tokens += raw.tokens_cut;
        plan.counts.tokens_over_cap += raw.tokens_cut;
        self.remaining = self.remaining.map(|n| n - 1);
        Some(Feed::Sample(PreparedSample {
            row: raw.row,
            origin: raw.origin,
            segments: plan.counts,
            chunks: plan.chunks,
            metadata: raw.metadata,
        }))
    }
}
