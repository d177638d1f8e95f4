//! The one error type of every command: what failed, and which documented exit code
//! that means.
//!
//! The kind is fixed where the error is made, from its type (a profile error is bad
//! input, a Docker error a stack failure...), so the exit code is one exhaustive
//! `match` and never depends on walking a chain of causes or on message text.

use std::fmt;

use crate::exit;
use crate::kb::stores::StoreError;
use crate::profile::ProfileError;
use crate::stack::docker::DockerError;
use crate::stack::template::TemplateError;
use crate::stack::StackError;
use crate::train::dataset::DatasetError;
use crate::train::journal::JournalError;
use crate::train::runner::RunError;

/// What kind of failure an error is; it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A profile, flag, file or dataset that cannot be used (exit 2).
    BadInput,
    /// The stack could not be brought up or did not become ready (exit 4).
    StackFailed,
    /// Anything else that was attempted and failed (exit 1).
    RunFailed,
    /// KATO's Redis or ClickHouse could not be reached or failed (exit 7).
    StoreFailed,
    /// A load target was refused before anything was written (exit 8).
    KbRefused,
}

/// A command's failure: its kind and the error with its context chain.
#[derive(Debug)]
pub struct CliError {
    failure: Failure,
    error: anyhow::Error,
}

/// The result of a command.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// An error of the given kind.
    pub fn new(failure: Failure, error: impl Into<anyhow::Error>) -> Self {
        Self {
            failure,
            error: error.into(),
        }
    }

    /// Bad input described by `message`.
    pub fn bad_input(message: impl fmt::Display) -> Self {
        Self::new(Failure::BadInput, anyhow::anyhow!("{message}"))
    }

    /// The same failure with `context` in front of its message.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Self {
        Self {
            failure: self.failure,
            error: self.error.context(context),
        }
    }

    /// The error with its context chain (its typed root stays downcastable).
    pub fn into_inner(self) -> anyhow::Error {
        self.error
    }

    /// What kind of failure this is.
    pub fn failure(&self) -> Failure {
        self.failure
    }

    /// The exit code of this failure (README table).
    pub fn exit_code(&self) -> i32 {
        match self.failure {
            Failure::BadInput => exit::BAD_INPUT,
            Failure::StackFailed => exit::STACK_FAILED,
            Failure::RunFailed => exit::RUN_FAILED,
            Failure::StoreFailed => exit::STORE_FAILED,
            Failure::KbRefused => exit::KB_REFUSED,
        }
    }
}

/// The whole chain (`outer: inner: ...`), with secrets masked.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:#}", self.error);
        f.write_str(&crate::secret::mask_text(&text))
    }
}

macro_rules! failure_from {
    ($failure:expr => $($ty:ty),+) => {
        $(impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                Self::new($failure, e)
            }
        })+
    };
}

failure_from!(Failure::BadInput => super::BadInput, ProfileError, DatasetError, JournalError);
failure_from!(Failure::StackFailed => DockerError, TemplateError);
failure_from!(
    Failure::BadInput =>
    crate::kb::dump::DumpError,
    crate::kb::engine_file::EngineFileError
);
failure_from!(Failure::KbRefused => crate::kb::stores::load::LoadRefused);

impl CliError {
    /// A `kb` command's failure, by the typed error at its root (anyhow's `downcast`
    /// sees through the context the kb layer adds; nothing else is inspected).
    pub fn from_kb(e: anyhow::Error) -> Self {
        use crate::kb::stores::{load::LoadRefused, StoreError};
        let failure = if e.downcast_ref::<LoadRefused>().is_some() {
            Failure::KbRefused
        } else if let Some(store) = e.downcast_ref::<StoreError>() {
            match store {
                StoreError::Eviction { .. } => Failure::KbRefused,
                _ => Failure::StoreFailed,
            }
        } else if e.downcast_ref::<crate::kb::dump::DumpError>().is_some()
            || e.downcast_ref::<crate::kb::engine_file::EngineFileError>()
                .is_some()
            || e.downcast_ref::<super::BadInput>().is_some()
            || e.downcast_ref::<crate::profile::ProfileError>().is_some()
        {
            Failure::BadInput
        } else if e.downcast_ref::<StackError>().is_some()
            || e.downcast_ref::<DockerError>().is_some()
        {
            Failure::StackFailed
        } else {
            Failure::RunFailed
        };
        Self::new(failure, e)
    }
}
failure_from!(
    Failure::RunFailed =>
    crate::kato::error::KatoError,
    crate::report::export::ExportError,
    crate::engine::EngineError,
    // Another live run holds the KB or journal (the message names it).
    crate::lock::LockError,
    serde_json::Error,
    std::io::Error,
    // Errors without a type of their own are failures of what was attempted.
    anyhow::Error
);

impl From<StackError> for CliError {
    fn from(e: StackError) -> Self {
        let failure = match e {
            StackError::KbExists(_) | StackError::KbInStores(_) => Failure::BadInput,
            StackError::Store(_) | StackError::StoresDisagree(_) => Failure::StoreFailed,
            _ => Failure::StackFailed,
        };
        Self::new(failure, e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let failure = match e {
            StoreError::Eviction { .. } => Failure::KbRefused,
            _ => Failure::StoreFailed,
        };
        Self::new(failure, e)
    }
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        let failure = match e {
            RunError::Dataset(_) | RunError::Journal(_) => Failure::BadInput,
            RunError::Tokenizer(_)
            | RunError::Start { .. }
            | RunError::Client(_)
            | RunError::Durable(_) => {
                Failure::RunFailed
            }
        };
        Self::new(failure, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_code_and_secrets_are_masked() {
        let e = CliError::from(super::super::BadInput("flag".into()));
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        let e = CliError::from(anyhow::anyhow!("could not reach http://u:pw-123@h:1/"))
            .context("health");
        assert_eq!(e.exit_code(), exit::RUN_FAILED);
        assert_eq!(e.to_string(), "health: could not reach http://u:***@h:1/");
    }
}
