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
        alert(text);
    }
}

/// A remark that `-q` does not silence (standard error, secrets masked): why a
/// command's work stopped short, which a quiet script still needs to log.
pub fn alert(text: impl std::fmt::Display) {
    let text = text.to_string();
    let text = crate::secret::mask_text(&text);
    let mut err = std::io::stderr().lock();
    // Standard error gone: nothing useful is left to tell anyone.
    let _ = writeln!(err, "{text}");
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

/// The log level `-q` and `-v` ask for: `error` with `-q`, else `warn` by default,
/// `debug` with `-v`, `trace` with `-vv`. INFO lines are progress chatter, shown only
/// with `-v` (they are DEBUG's neighbours, not the default's).
pub fn log_level(quiet: bool, verbose: u8) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        _ => "trace",
    }
}

/// The one log subscriber of the process: events at `level` or above (or as the
/// `KATOTUNE_LOG` directives in `directives` say), each written once through `writer`
/// without time or target. `main` installs it as the global default; tests install it
/// around a closure to see what a user would see.
pub fn log_subscriber<W>(
    level: &str,
    directives: Option<&str>,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::EnvFilter;
    let filter = directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    /// What the user sees when `apply` logs a container change and a warning.
    fn logged(quiet: bool, verbose: u8, directives: Option<&str>) -> String {
        let out = Captured::default();
        let subscriber = log_subscriber(log_level(quiet, verbose), directives, false, out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("katotune-kato-kato: created");
            tracing::warn!("Redis may evict keys");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn info_lines_show_only_with_verbose_and_each_event_once() {
        let default = logged(false, 0, None);
        assert!(!default.contains("INFO"), "{default}");
        assert_eq!(
            default.matches("Redis may evict keys").count(),
            1,
            "{default}"
        );
        let verbose = logged(false, 1, None);
        assert_eq!(
            verbose.matches("katotune-kato-kato: created").count(),
            1,
            "{verbose}"
        );
        assert!(logged(true, 0, None).is_empty());
        // KATOTUNE_LOG decides when set; a malformed one falls back to the flags.
        assert!(logged(false, 0, Some("info")).contains("INFO"));
        assert!(!logged(false, 0, Some("=!bad[")).contains("INFO"));
    }
}
