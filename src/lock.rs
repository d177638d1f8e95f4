//! Advisory file locks: one live process per knowledge base and per resume journal.
//!
//! A lock is an exclusive `flock` on a small file beside the thing it guards
//! (`<kb>.lock`, `<journal>.lock`) taken with the standard library's `File::try_lock`
//! (Rust 1.89; no crate needed). The file holds the owner's pid and command line, so a
//! refusal can name the other process. The kernel drops the lock when its process
//! dies, however it dies, so a lock left by a dead process is simply taken over (and
//! said so); nothing is ever deleted on the strength of a pid that may be reused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error(
        "the {what} {} is in use by another katotune process ({owner}); wait for it to finish \
         or stop it, then try again",
        guarded.display()
    )]
    Held {
        what: &'static str,
        guarded: PathBuf,
        owner: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file for `guarded`: `<guarded>.lock`.
pub fn lock_path(guarded: &Path) -> PathBuf {
    let mut name = guarded.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock at `path` (see [`lock_path`]) for a `what` (named in errors),
    /// or refuses at once when another live process holds it.
    pub fn acquire(path: &Path, what: &'static str) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let guarded = PathBuf::from(path.to_string_lossy().trim_end_matches(".lock"));
                return Err(LockError::Held {
                    what,
                    guarded,
                    owner: owner_of(&mut file),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let previous = owner_text(&mut file);
        if !previous.is_empty() {
            tracing::warn!(
                "taking over {} from a process that is no longer running ({})",
                path.display(),
                one_line(&previous)
            );
        }
        let me = format!(
            "pid {}\ncommand {}\nsince {}\n",
            std::process::id(),
            shown_command(std::env::args()),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // An empty file tells the next owner that this one finished cleanly.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn owner_text(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    text.trim().to_string()
}

/// The live process that holds the lock of `guarded` (see [`lock_path`]), as its lock
/// file describes it ("pid 12, command katotune run ..., since ..."), found without
/// taking any lock (a status query must never make a starting run fail): the file
/// names a pid whose command line (`/proc/PID/cmdline`) is still the one recorded.
/// `None` when the file is missing or empty (its holder finished cleanly) or names a
/// process that is gone (killed: the next owner takes the lock over).
pub fn live_holder(guarded: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock_path(guarded)).ok()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(str::to_owned))
    };
    let pid = field("pid ")?;
    let command = field("command ")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let running = cmdline
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned());
    (shown_command(running) == command).then(|| one_line(&text))
}

/// A command line as a lock file records it and messages show it: arguments joined by
/// spaces, with secrets masked (`KEY=VALUE` where the key names one, URL passwords;
/// see [`crate::secret`]), since other users' commands are printed to this one.
fn shown_command(args: impl Iterator<Item = String>) -> String {
    let shown: Vec<String> = args
        .map(|arg| match arg.split_once('=') {
            Some((key, _)) if crate::secret::is_secret_key(key) => {
                format!("{key}={}", crate::secret::MASK)
            }
            _ => crate::secret::mask_text(&arg).into_owned(),
        })
        .collect();
    shown.join(" ")
}

/// A lock file's lines as one: "pid 12, command ..., since ...".
fn one_line(text: &str) -> String {
    text.trim().replace('\n', ", ")
}

/// The holder as its file describes it (it may still be writing: try a few times).
fn owner_of(file: &mut File) -> String {
    for _ in 0..20 {
        let text = owner_text(file);
        if !text.is_empty() {
            return one_line(&text);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "pid unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_owner_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("kb.db"));
        let first = RunLock::acquire(&path, "knowledge base").unwrap();
        let refused = RunLock::acquire(&path, "knowledge base").unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("kb.db"), "{message}");
        drop(first);
        RunLock::acquire(&path, "knowledge base").expect("free again");
    }

    #[test]
    fn the_live_holder_is_named_and_a_finished_or_dead_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path().join("kb.db");
        assert_eq!(live_holder(&kb), None, "no lock file");
        let lock = RunLock::acquire(&lock_path(&kb), "knowledge base").unwrap();
        let holder = live_holder(&kb).expect("this process holds it");
        assert!(
            holder.starts_with(&format!("pid {}, command ", std::process::id())),
            "{holder}"
        );
        drop(lock);
        assert_eq!(live_holder(&kb), None, "released cleanly");
        // What a killed holder leaves: its pid, no longer running that command.
        std::fs::write(
            lock_path(&kb),
            "pid 4194304\ncommand katotune run quick\nsince 2026-01-01T00:00:00Z\n",
        )
        .unwrap();
        assert_eq!(live_holder(&kb), None, "a dead holder");
    }

    #[test]
    fn a_recorded_command_masks_secrets() {
        let args = [
            "katotune",
            "run",
            "quick",
            "--set",
            "stack.clickhouse_password=hunter22",
            "--redis",
            "redis://:s3cret-pass@127.0.0.1:6379/0",
        ];
        let shown = shown_command(args.iter().map(|a| a.to_string()));
        assert!(
            !shown.contains("hunter22") && !shown.contains("s3cret-pass"),
            "{shown}"
        );
        assert!(shown.contains("stack.clickhouse_password=***"), "{shown}");
        assert!(shown.contains("redis://:***@127.0.0.1:6379/0"), "{shown}");
    }
}
