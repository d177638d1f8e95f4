//! What the benches share.

use std::path::{Path, PathBuf};

/// The 1,189 KJV chapters (`../shared/corpus/kjv-chapters.jsonl` beside the checkout,
/// or env `KATOTUNE_KJV_CHAPTERS`); the path may not exist (the caller says so).
pub fn kjv_chapters() -> PathBuf {
    if let Ok(p) = std::env::var("KATOTUNE_KJV_CHAPTERS") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [root.join("../shared"), root.join("../../shared")]
        .into_iter()
        .map(|s| s.join("corpus/kjv-chapters.jsonl"))
        .find(|p| p.exists())
        .unwrap_or_else(|| root.join("../shared/corpus/kjv-chapters.jsonl"))
}
