//! What katotune created, recorded on this machine: one JSON file per stack naming
//! each container it created and that container's id. `down` removes a container only
//! when it carries the stack's labels *and* this record names it with the same id,
//! so a container someone labelled by hand (labels are free to set) is left alone.
//!
//! Where: `$KATOTUNE_STATE_DIR`, else `$XDG_STATE_HOME/katotune`, else
//! `~/.local/state/katotune`; the files are `stacks/<stack>.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The containers katotune created for one stack: name to container id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackRecord {
    pub stack: String,
    pub containers: BTreeMap<String, String>,
    /// Named volumes katotune created for the stack.
    #[serde(default)]
    pub volumes: BTreeSet<String>,
}

/// The directory holding katotune's records.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KATOTUNE_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("katotune");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/katotune"),
        None => std::env::temp_dir().join("katotune-state"),
    }
}

fn path(stack: &str) -> PathBuf {
    state_dir().join("stacks").join(format!("{stack}.json"))
}

/// The record of `stack` (empty when katotune never recorded it here).
pub fn load(stack: &str) -> StackRecord {
    std::fs::read(path(stack))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| StackRecord {
            stack: stack.to_string(),
            ..StackRecord::default()
        })
}

fn save(record: &StackRecord) -> std::io::Result<()> {
    let file = path(&record.stack);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if record.containers.is_empty() && record.volumes.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let tmp = file.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(&tmp, &file)
}

/// Records that katotune created container `name` (id `id`) for `stack`.
pub fn remember(stack: &str, name: &str, id: &str) -> std::io::Result<()> {
    let mut record = load(stack);
    record.containers.insert(name.to_string(), id.to_string());
    save(&record)
}

/// Records that katotune created volume `name` for `stack`.
pub fn remember_volume(stack: &str, name: &str) -> std::io::Result<()> {
    let mut record = load(stack);
    record.volumes.insert(name.to_string());
    save(&record)
}

/// Drops removed containers and volumes from the record of `stack`.
pub fn forget(stack: &str, containers: &[String], volumes: &[String]) -> std::io::Result<()> {
    let mut record = load(stack);
    for name in containers {
        record.containers.remove(name);
    }
    for name in volumes {
        record.volumes.remove(name);
    }
    save(&record)
}

impl StackRecord {
    /// Whether katotune recorded creating container `name` with this `id`.
    pub fn created(&self, name: &str, id: &str) -> bool {
        self.containers
            .get(name)
            .is_some_and(|recorded| recorded == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_recorded_name_with_the_same_id_counts_as_created() {
        let record = StackRecord {
            stack: "s".into(),
            containers: BTreeMap::from([("s-redis".to_string(), "abc".to_string())]),
            volumes: BTreeSet::new(),
        };
        assert!(record.created("s-redis", "abc"));
        assert!(
            !record.created("s-redis", "other-id"),
            "same name, another container"
        );
        assert!(!record.created("s-kato", "abc"));
    }
}
