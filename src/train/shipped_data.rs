//! The corpus the shipped profiles train on, shipped inside the binary, so
//! `katotune run quick` works from any directory after `cargo install`.

use std::path::{Path, PathBuf};

/// The path the shipped profiles name (relative, as written in `profiles/`).
pub const SHIPPED_PATH: &str = "data/kjv-100.jsonl";

/// The first 100 verses of the King James Bible, as JSON Lines (`data/README.md`).
const SHIPPED_CORPUS: &[u8] = include_bytes!("../../data/kjv-100.jsonl");

/// Where the dataset at `path` is read from: `path` itself when it exists;
/// for the shipped path when it does not (another working directory), a copy of
/// the shipped corpus in the user's cache directory, written on first use.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    if path.exists() || path != Path::new(SHIPPED_PATH) {
        return Ok(path.to_path_buf());
    }
    let dir = cache_dir().join("katotune").join(env!("CARGO_PKG_VERSION"));
    let copy = dir.join("kjv-100.jsonl");
    let current = std::fs::metadata(&copy).is_ok_and(|m| m.len() == SHIPPED_CORPUS.len() as u64);
    if !current {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("kjv-100.jsonl.{}.tmp", std::process::id()));
        std::fs::write(&tmp, SHIPPED_CORPUS)?;
        std::fs::rename(&tmp, &copy)?;
    }
    Ok(copy)
}

/// `$XDG_CACHE_HOME`, else `$HOME/.cache`, else the temporary directory.
fn cache_dir() -> PathBuf {
    let from = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CACHE_HOME")
        .or_else(|| from("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}
