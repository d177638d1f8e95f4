//! What differs between the compared profiles: every resolved setting, client
//! (`training.*`, `health.*`) and server (`stack.*`), whose value is not the same in
//! all of them, with the layer each value came from (a profile file, a flag, an
//! environment variable or the default; see `profile::explain`). Secrets are masked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ProfileSummary;

/// One setting that differs, with each profile's value in comparison order. (Its key
/// is in `setting`: a field named `key` is masked as a secret in exports.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingDifference {
    /// Dotted key, e.g. `training.node0_batch` or `stack.tuning.batch_size`.
    pub setting: String,
    /// `client` (`training.*`, `health.*`) or `server` (`stack.*`).
    pub side: String,
    /// One per profile, in the comparison's order.
    pub values: Vec<SettingValue>,
}

/// One profile's value of a differing setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingValue {
    /// The value as JSON text (`50`, `"auto"`), or `unset` (absent or null).
    pub value: String,
    /// Where it came from: a file path, `flag --set`, an env var, `default`, or
    /// `recorded` when the comparison was rebuilt from run records.
    pub source: String,
}

/// Top-level sections that do not change what is measured (where reports go).
const IGNORED: [&str; 4] = ["name", "description", "inherits", "report"];

/// Every setting of `profiles` whose resolved value is not the same in all of them;
/// empty with fewer than two profiles.
pub fn differing_settings(profiles: &[ProfileSummary]) -> Vec<SettingDifference> {
    if profiles.len() < 2 {
        return Vec::new();
    }
    let flat: Vec<BTreeMap<String, Value>> = profiles.iter().map(flatten).collect();
    let mut keys: Vec<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            let first = flat[0].get(*k);
            flat.iter().any(|m| m.get(*k) != first)
        })
        .map(|key| SettingDifference {
            setting: key.clone(),
            side: if key.starts_with("stack.") {
                "server"
            } else {
                "client"
            }
            .to_string(),
            values: profiles
                .iter()
                .zip(&flat)
                .map(|(p, m)| SettingValue {
                    value: match m.get(key) {
                        None | Some(Value::Null) => "unset".into(),
                        Some(v) => v.to_string(),
                    },
                    source: p
                        .sources
                        .get(key)
                        .cloned()
                        .unwrap_or_else(|| "recorded".into()),
                })
                .collect(),
        })
        .collect()
}

/// The resolved profile as dotted keys, secrets masked, ignored sections left out.
fn flatten(p: &ProfileSummary) -> BTreeMap<String, Value> {
    let mut value = serde_json::to_value(&p.resolved).unwrap_or(Value::Null);
    crate::secret::redact_json(&mut value);
    let mut out = BTreeMap::new();
    crate::profile::explain::leaves(&value, String::new(), &mut |key, leaf| {
        out.insert(key, leaf.clone());
    });
    out.retain(|k, _| !IGNORED.contains(&k.split('.').next().unwrap_or_default()));
    out
}
