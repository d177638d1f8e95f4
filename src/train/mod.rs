//! Training: from a corpus to KATO patterns.
//!
//! `dataset` reads corpora lazily, `tokenizer` turns text into GPT-2 token strings,
//! `segment` cuts a sample into node0 chunks, and `hierarchy` carries pattern names up
//! the levels (pure, no I/O). `runner` trains a [`plan::TrainPlan`] (derived from a
//! profile by `app`; nothing here reads a profile), optionally one [`shard`] of it.

pub mod dataset;
pub mod digest;
mod dispatch;
pub mod durable;
pub mod hierarchy;
pub mod journal;
pub mod kb_check;
pub mod link;
pub mod outcome;
pub mod plan;
pub mod progress;
mod reader;
pub mod record;
pub mod runner;
pub mod segment;
pub mod shard;
pub mod shipped_data;
pub mod target;
pub mod tokenizer;
pub mod worker;
