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
use crate::stack::kubernetes::KubeError;
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
    /// Another live katotune process holds the KB or journal (exit 9).
    InUse,
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
            Failure::InUse => exit::IN_USE,
        }
    }
}

/// The whole chain (`outer: inner: ...`), with secrets masked. A cause whose text the
/// message already holds (an error that prints its `#[from]` source, as `"cannot start
/// the engine: {0}"` does) is not repeated.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        for cause in self.error.chain() {
            let part = cause.to_string();
            if text.contains(&part) {
                continue;
            }
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        f.write_str(&crate::secret::mask_text(&text))
    }
}

/// Whether `e` is, or wraps, a lock another live process holds (the engine and the
/// stack carry the lock error inside their own, without a source link to it).
fn lock_held(e: &(dyn std::error::Error + 'static)) -> bool {
    use crate::engine::EngineError;
    use crate::lock::LockError;
    let engine_held = |e: &EngineError| matches!(e, EngineError::Locked(LockError::Held { .. }));
    matches!(e.downcast_ref::<LockError>(), Some(LockError::Held { .. }))
        || e.downcast_ref::<EngineError>().is_some_and(engine_held)
        || matches!(
            e.downcast_ref::<StackError>(),
            Some(StackError::Engine(inner)) if engine_held(inner)
        )
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
        use crate::kb::merge::MergeError;
        use crate::kb::stores::{load::LoadRefused, StoreError};
        let failure = if e.chain().any(lock_held) {
            Failure::InUse
        } else if e.downcast_ref::<LoadRefused>().is_some() {
            Failure::KbRefused
        } else if let Some(merge) = e.downcast_ref::<MergeError>() {
            match merge {
                MergeError::OutputExists { .. } => Failure::KbRefused,
                MergeError::Write { .. } => Failure::RunFailed,
                _ => Failure::BadInput,
            }
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
    serde_json::Error,
    std::io::Error,
    // Errors without a type of their own are failures of what was attempted.
    anyhow::Error
);

/// Another live run holds the KB or journal (the message names it): exit 9.
impl From<crate::lock::LockError> for CliError {
    fn from(e: crate::lock::LockError) -> Self {
        let failure = if lock_held(&e) {
            Failure::InUse
        } else {
            Failure::RunFailed
        };
        Self::new(failure, e)
    }
}

impl From<crate::engine::EngineError> for CliError {
    fn from(e: crate::engine::EngineError) -> Self {
        let failure = if lock_held(&e) {
            Failure::InUse
        } else if matches!(e, crate::engine::EngineError::Config { .. }) {
            Failure::BadInput
        } else {
            Failure::RunFailed
        };
        Self::new(failure, e)
    }
}

impl From<StackError> for CliError {
    fn from(e: StackError) -> Self {
        let failure = match e {
            _ if lock_held(&e) => Failure::InUse,
            StackError::KbExists(_) | StackError::KbInStores(_) | StackError::KbOnServer { .. } => {
                Failure::BadInput
            }
            // A server setting of the profile (`stack.env`, `stack.tuning`) the engine
            // cannot use is the user's input, not a stack that failed.
            StackError::Engine(crate::engine::EngineError::Config { .. }) => Failure::BadInput,
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

impl From<KubeError> for CliError {
    fn from(e: KubeError) -> Self {
        let failure = match e {
            KubeError::Template(_) => Failure::StackFailed,
            KubeError::Yaml(_) => Failure::RunFailed,
            KubeError::BadName { .. }
            | KubeError::BadShards(_)
            | KubeError::BadSize(_)
            | KubeError::BadLabel { .. }
            | KubeError::NoStores { .. } => Failure::BadInput,
        };
        Self::new(failure, e)
    }
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        let failure = match e {
            RunError::Dataset(_) | RunError::Journal(_) => Failure::BadInput,
            // Another run holds the server's checkpoints: nothing was trained.
            RunError::Durable(crate::train::durable::DurableError::Held(_)) => Failure::InUse,
            RunError::Tokenizer(_)
            | RunError::Start { .. }
            | RunError::Client(_)
            | RunError::Durable(_) => Failure::RunFailed,
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

    #[test]
    fn a_held_lock_is_in_use_and_a_cause_the_message_holds_is_not_repeated() {
        let held = || crate::lock::LockError::Held {
            what: "knowledge base",
            guarded: "kb.db".into(),
            owner: "pid 42, command katotune run quick".into(),
        };
        let e = CliError::from(StackError::Engine(crate::engine::EngineError::Locked(
            held(),
        )));
        assert_eq!(e.exit_code(), exit::IN_USE);
        let text = e.to_string();
        assert_eq!(
            text.matches("is in use by another katotune process")
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains("pid 42"), "{text}");
        assert_eq!(CliError::from(held()).exit_code(), exit::IN_USE);
        let checkpoints = RunError::Durable(crate::train::durable::DurableError::Held(
            "held for checkpoints by another katotune run".into(),
        ));
        assert_eq!(CliError::from(checkpoints).exit_code(), exit::IN_USE);
        let kb = CliError::from_kb(anyhow::Error::from(held()).context("kb load"));
        assert_eq!(kb.exit_code(), exit::IN_USE);
    }
}
