//! katotune: tune, provision and benchmark KATO training stacks.
//!
//! The binary is a thin shell over this library: `profile` loads and validates YAML
//! tuning profiles, `stack` brings a KATO up (embedded, Docker or external), `train`
//! runs hierarchical training through the `kato` client, `engine` is the embedded
//! KATO-compatible server, and `report` turns run records into tables and files.
//! `terms` holds the few enums a profile names and the trainer acts on, so that
//! `profile` and `train` never import each other (`app` derives a `train::plan::TrainPlan`
//! from a profile).

pub mod app;
pub mod cli;
pub mod engine;
pub mod exit;
pub mod kato;
pub mod kb;
pub mod lock;
pub mod profile;
pub mod report;
pub mod secret;
pub mod stack;
pub mod terms;
pub mod train;
