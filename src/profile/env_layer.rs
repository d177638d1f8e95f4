//! `KATOTUNE_*` environment variables as one layer of a profile: read in the
//! profile's words (text fields keep the text as written, other values are read as
//! YAML scalars are), and checked for misspelt keys like a file is.

use figment::value::{Dict, Map};
use figment::{Metadata, Provider};
use serde_json::Value;

use super::keys::unknown_keys;
use super::load::ENV_PREFIX;
use super::validate::Problem;

/// The sections an environment variable may set.
const SECTIONS: &[&str] = &["stack", "health", "training", "report", "deliver"];

/// Text fields: a value set for one of these is its text, never a number or boolean.
pub(crate) fn is_text_path(path: &[String]) -> bool {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(
        p.as_slice(),
        ["name" | "description" | "inherits"]
            | ["stack", "url" | "host" | "service_name" | "kb_file"]
            | ["stack", "images" | "env", _]
            | ["training", "node_prefix"]
            | ["training", "dataset", "path" | "text_field" | "split"]
            | ["report", "output_dir"]
    )
}

/// The layer built from `vars` (name, value): the profile keys they set, and one
/// problem per unknown key, with the closest valid key.
pub(super) fn env_layer(vars: impl Iterator<Item = (String, String)>) -> (Value, Vec<Problem>) {
    let mut root = Value::Object(Default::default());
    let mut names = Vec::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // Keys are the profile's (lower case), except names under `stack.env`,
        // which are the server's own and keep their case.
        let mut path: Vec<String> = rest.split("__").map(str::to_string).collect();
        let own = if path.len() > 2
            && path[..2]
                .iter()
                .map(|k| k.to_ascii_lowercase())
                .eq(["stack", "env"])
        {
            2
        } else {
            path.len()
        };
        for key in &mut path[..own] {
            *key = key.to_ascii_lowercase();
        }
        let in_profile =
            SECTIONS.contains(&path[0].as_str()) && path.len() > 1 || path == ["description"];
        if !in_profile || path.iter().any(String::is_empty) {
            continue;
        }
        let value = if is_text_path(&path) {
            Value::String(raw)
        } else {
            serde_saphyr::from_str::<Value>(&raw).unwrap_or(Value::String(raw))
        };
        insert(&mut root, &path, value);
        names.push((path.join("."), name));
    }
    let (cleaned, mut problems) = unknown_keys(&root);
    for p in &mut problems {
        p.source = names
            .iter()
            .find(|(path, _)| path == &p.path || path.starts_with(&format!("{}.", p.path)))
            .map(|(_, name)| name.clone());
    }
    (cleaned, problems)
}

fn insert(root: &mut Value, path: &[String], value: Value) {
    let mut at = root;
    for key in &path[..path.len() - 1] {
        let map = at.as_object_mut().expect("built from objects");
        at = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Default::default()));
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.insert(path[path.len() - 1].clone(), value);
    }
}

/// The environment layer as a figment provider; its name makes `profiles show
/// --explain` name the variable behind each value.
pub(super) struct EnvProvider(pub(super) Value);

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variables")
    }

    fn data(&self) -> Result<Map<figment::Profile, Dict>, figment::Error> {
        figment::providers::Serialized::defaults(&self.0).data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn env_values_are_text_in_text_fields_and_typos_get_a_suggestion() {
        let (value, problems) = env_layer(vars(&[
            ("KATOTUNE_STACK__ENV__MAX_PATTERN_LENGTH", "10"),
            ("KATOTUNE_DESCRIPTION", "1.10"),
            ("KATOTUNE_TRAINING__WORKERS", "4"),
            ("KATOTUNE_TRAINING__WOKRERS", "4"),
            ("KATOTUNE_LOG", "debug"),
        ]));
        assert_eq!(value["stack"]["env"]["MAX_PATTERN_LENGTH"], "10");
        assert_eq!(value["description"], "1.10");
        assert_eq!(value["training"]["workers"], 4);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].source.as_deref(),
            Some("KATOTUNE_TRAINING__WOKRERS")
        );
        assert!(problems[0].message.contains("did you mean `workers`"));
    }
}
