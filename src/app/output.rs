//! The one output layer: data to standard output, remarks to standard error, both
//! with secrets masked, remarks silenced by `-q`, and a closed pipe ending the
//! command quietly instead of a panic.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences [`note`] for the rest of the process (`-q`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A remark for the person at the terminal (standard error), unless `-q`.
pub fn note(text: impl std::fmt::Display) {
    if !is_quiet() {
        let text = text.to_string();
        let text = crate::secret::mask_text(&text);
        let mut err = std::io::stderr().lock();
        // Standard error gone: nothing useful is left to tell anyone.
        let _ = writeln!(err, "{text}");
    }
}

/// Writes `text` (data: a table, a document, JSON) to standard output, secrets
/// masked. A reader that went away (`| head`) ends the process with exit 0, the
/// way `cat` and `ls` behave, since everything it wanted was written.
pub fn data(text: impl std::fmt::Display) {
    let text = text.to_string();
    let text = crate::secret::mask_text(&text);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        closed_or_failed(e);
    }
}

/// What to do when writing to standard output failed: a closed pipe exits 0
/// quietly; any other failure is reported with the run-failed code.
pub fn closed_or_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(crate::exit::OK);
    }
    let _ = writeln!(
        std::io::stderr(),
        "error: cannot write to standard output: {e}"
    );
    std::process::exit(crate::exit::RUN_FAILED);
}

/// The name a user writes for `value` in a profile (its serde name, e.g. `embedded`
/// for `Backend::Embedded`), so labels never show Rust spellings.
pub fn user_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
