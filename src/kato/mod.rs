//! Speaking KATO: the naming rule, the API types and the HTTP client.

pub mod api;
pub mod client;
pub mod error;
pub mod latency_histogram;
pub mod metrics;
pub mod pattern;
mod py310_table;
