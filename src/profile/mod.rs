//! Tuning profiles: the YAML schema, loading with `inherits` and precedence, the knob
//! table, validation and `--explain`.

pub mod duration;
pub mod error;
pub mod explain;
pub mod keys;
pub mod knobs;
pub mod load;
pub mod schema;
pub mod validate;

pub use error::ProfileError;
pub use load::{load, FlagOverride, Loaded};
pub use schema::Profile;
