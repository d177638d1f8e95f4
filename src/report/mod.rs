//! Reports: the comparison of profiles (speed, correctness, settings, regression
//! gate) and its exporters (terminal table, JSON, CSV, Markdown, HTML).
//!
//! [`Comparison::build`] is pure: it turns run records into one document. The
//! exporters only render that document, so any saved comparison or set of run
//! records can be rendered again without training ([`load_inputs`]).

pub mod correctness;
pub mod differences;
pub mod export;
pub mod load;
pub mod meta;
pub mod model;
pub mod read_back;
pub mod regression;
pub mod relative_speed;
pub mod settings;
pub mod stats;
pub mod summary;
pub mod warnings;

pub use export::{ExportError, ExportSet, Exporter};
pub use load::{load_inputs, Inputs, LoadError};
pub use meta::{HostInfo, ReproMeta};
pub use model::{Comparison, ProfileRuns, ProfileSummary, ScanAxis, SCHEMA_VERSION};
pub use regression::{GateRule, Verdict, VerdictStatus, DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD};
pub use relative_speed::Relative;
pub use stats::Spread;
