//! Training: where the text comes from and how it becomes KATO's symbols.
//!
//! `dataset` reads corpora lazily (JSON Lines, plain text, text directories,
//! Hugging Face style Parquet) and `tokenizer` turns each text into GPT-2 token
//! strings, the symbols KATO learns.

pub mod dataset;
pub mod tokenizer;
