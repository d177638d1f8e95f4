//! Tuning profiles: the YAML schema, loading with `inherits` and precedence, the knob
//! table, validation and `--explain`.

pub mod duration;
mod env_layer;
pub mod error;
pub mod explain;
pub mod keys;
pub mod knobs;
pub mod load;
pub mod schema;
mod text_scalars;
pub mod validate;
mod words;

pub use error::ProfileError;
pub use load::{load, FlagOverride, Loaded};
pub use schema::Profile;

/// Whether `key` (`training.node_prefix`) is a text field, whose value is the text
/// as written even when it looks like a number or a boolean.
pub fn is_text_key(key: &str) -> bool {
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    env_layer::is_text_path(&path)
}
