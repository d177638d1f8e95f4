//! Speaking KATO: the naming rule, the API types and the HTTP client.

pub mod api;
pub mod pattern;
mod py310_table;
