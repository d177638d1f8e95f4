//! `profiles show --explain`: every resolved value with the layer it came from.

use figment::{Figment, Metadata, Source};
use serde::Serialize;
use serde_json::Value;

use super::schema::Profile;

/// One resolved value and its origin.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    pub key: String,
    pub value: Value,
    /// `default`, a file path, `shipped:NAME`, an env var name, or `flag --x`.
    pub source: String,
}

/// Names the layer behind `meta` for the value at `keys`.
pub fn describe_source(meta: &Metadata, keys: &[&str]) -> String {
    match &meta.source {
        Some(Source::File(path)) => path.display().to_string(),
        _ if meta.name.contains("environment") => {
            let upper: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("{}{}", super::load::ENV_PREFIX, upper.join("__"))
        }
        _ if meta.name.contains("::") => "default".into(),
        _ => meta.name.to_string(),
    }
}

/// Every leaf of `profile` with its source, in document order; secrets are masked
/// (`crate::secret`).
pub fn explain(profile: &Profile, figment: &Figment) -> Vec<Origin> {
    let mut value = serde_json::to_value(profile).unwrap_or(Value::Null);
    crate::secret::redact_json(&mut value);
    let mut out = Vec::new();
    leaves(&value, String::new(), &mut |key, v| {
        let keys: Vec<&str> = key.split('.').collect();
        let source = figment
            .find_metadata(&key)
            .map(|m| describe_source(m, &keys))
            .unwrap_or_else(|| "default".into());
        out.push(Origin {
            key,
            value: v.clone(),
            source,
        });
    });
    out
}

/// Visits every leaf of `value` with its dotted path (`stack.tuning.workers`); an empty
/// map counts as a leaf.
pub(crate) fn leaves(value: &Value, path: String, visit: &mut dyn FnMut(String, &Value)) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(v, p, visit);
            }
        }
        _ => visit(path, value),
    }
}
