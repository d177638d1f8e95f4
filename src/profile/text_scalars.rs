//! YAML strings stay strings: a plain scalar in a text field is that text, exactly
//! as written (YAML 1.2), even when it looks like a number or a YAML 1.1 boolean
//! (`node_prefix: no`, `name: NO`, `description: 1.10`, `stack.env: {X: 10}`).
//!
//! A layer is parsed once into a generic value, which guesses types; the text
//! fields are then read a second time straight into strings (serde-saphyr keeps a
//! scalar's source text when the target is a string) and put back over the guesses.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The profile's text fields, each read as the text written.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Texts {
    name: Option<String>,
    description: Option<String>,
    inherits: Option<String>,
    stack: Option<StackTexts>,
    training: Option<TrainingTexts>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StackTexts {
    url: Option<String>,
    host: Option<String>,
    service_name: Option<String>,
    images: Option<BTreeMap<String, String>>,
    env: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TrainingTexts {
    node_prefix: Option<String>,
    dataset: Option<DatasetTexts>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DatasetTexts {
    text_field: Option<String>,
    split: Option<String>,
}

/// Puts the text as written back into `value`'s text fields; `yaml` is the layer's
/// source. A field that is not a scalar (a list, a mapping) is left for the schema
/// to refuse with its own message.
pub(super) fn keep_text_as_written(yaml: &str, value: &mut Value) {
    let Ok(texts) = serde_saphyr::from_str::<Texts>(yaml) else {
        // Some text field holds a non-scalar; try the fields one section at a time
        // is not worth it: the schema error names the field.
        return;
    };
    let mut put = |path: &[&str], text: Option<String>| {
        if let Some(text) = text {
            set(value, path, Value::String(text));
        }
    };
    put(&["name"], texts.name);
    put(&["description"], texts.description);
    put(&["inherits"], texts.inherits);
    if let Some(stack) = texts.stack {
        put(&["stack", "url"], stack.url);
        put(&["stack", "host"], stack.host);
        put(&["stack", "service_name"], stack.service_name);
        for (key, text) in stack.images.unwrap_or_default() {
            put(&["stack", "images", &key], Some(text));
        }
        for (key, text) in stack.env.unwrap_or_default() {
            put(&["stack", "env", &key], Some(text));
        }
    }
    if let Some(training) = texts.training {
        put(&["training", "node_prefix"], training.node_prefix);
        if let Some(d) = training.dataset {
            put(&["training", "dataset", "text_field"], d.text_field);
            put(&["training", "dataset", "split"], d.split);
        }
    }
}

/// Replaces the value at `path` when it is there and is a number or boolean.
fn set(value: &mut Value, path: &[&str], text: Value) {
    let mut at = value;
    for key in path {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if matches!(at, Value::Number(_) | Value::Bool(_)) {
        *at = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_in_text_fields_keep_their_text() {
        let yaml = "name: NO\ndescription: 1.10\nstack:\n  service_name: off\n  env: {MAX_PATTERN_LENGTH: 10, FLAG: yes}\n  port: 8000\ntraining:\n  node_prefix: no\n  workers: 4\n";
        let mut value: Value = serde_saphyr::from_str(yaml).unwrap();
        keep_text_as_written(yaml, &mut value);
        assert_eq!(value["name"], "NO");
        assert_eq!(value["description"], "1.10");
        assert_eq!(value["stack"]["service_name"], "off");
        assert_eq!(value["stack"]["env"]["MAX_PATTERN_LENGTH"], "10");
        assert_eq!(value["stack"]["env"]["FLAG"], "yes");
        assert_eq!(value["training"]["node_prefix"], "no");
        // Numbers stay numbers where the schema wants numbers.
        assert_eq!(value["stack"]["port"], 8000);
        assert_eq!(value["training"]["workers"], 4);
    }
}
