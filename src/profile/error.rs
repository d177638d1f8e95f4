//! Everything that can go wrong loading a profile, each saying what, where and what to do.

use std::path::PathBuf;

use super::validate::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile `{name}` not found (looked in: {}){}; shipped profiles are: {}",
        searched.join(", "),
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default(),
        shipped.join(", "))]
    NotFound {
        name: String,
        searched: Vec<String>,
        shipped: Vec<String>,
        /// The shipped or local profile name closest to `name`, when one is close.
        suggestion: Option<String>,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid UTF-8 (first bad byte at offset {offset}); save it as UTF-8", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{file}{}: {message}", match (line, column) { (Some(l), Some(c)) => format!(":{l}:{c}"), _ => String::new() })]
    Yaml {
        file: String,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    #[error(
        "{file}: a profile must be a YAML mapping of sections (stack, health, training, report)"
    )]
    NotAMapping { file: String },
    #[error("{child} inherits `{parent}`, which does not exist (looked in: {})", searched.join(", "))]
    UnknownParent {
        child: String,
        parent: String,
        searched: Vec<String>,
    },
    #[error("inheritance cycle: {}", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
    #[error("{} problem{} in the profile:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}
