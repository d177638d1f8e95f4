//! train (being built).

pub mod hierarchy;
pub mod segment;
