//! Training: from a corpus to KATO patterns.
//!
//! `dataset` reads corpora lazily, `tokenizer` turns text into GPT-2 token strings,
//! `segment` cuts a sample into node0 chunks, and `hierarchy` carries pattern names up
//! the levels (pure, no I/O).

pub mod dataset;
pub mod digest;
mod dispatch;
pub mod durable;
pub mod hierarchy;
pub mod journal;
pub mod outcome;
pub mod progress;
mod reader;
pub mod record;
pub mod runner;
pub mod segment;
pub mod shipped_data;
pub mod target;
pub mod tokenizer;
pub mod worker;
