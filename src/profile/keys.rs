//! Unknown-key detection over raw YAML, so every misspelt key in every file of an
//! `inherits` chain is reported in one pass, with the closest valid key.

use serde_json::Value;

use super::schema::Profile;
use super::validate::Problem;

/// Maps whose keys are the user's own (anything goes).
const OPEN_MAPS: &[&str] = &["stack.env", "training.session.config"];

/// Returns `value` without unknown keys, and one problem per unknown key.
pub fn unknown_keys(value: &Value) -> (Value, Vec<Problem>) {
    let schema = serde_json::to_value(Profile::default()).unwrap_or(Value::Null);
    let mut problems = Vec::new();
    let cleaned = walk(value, &schema, "", &mut problems);
    (cleaned, problems)
}

fn walk(value: &Value, schema: &Value, path: &str, problems: &mut Vec<Problem>) -> Value {
    let (Value::Object(map), Value::Object(known)) = (value, schema) else {
        return value.clone();
    };
    if OPEN_MAPS.contains(&path) {
        return value.clone();
    }
    let mut out = serde_json::Map::new();
    for (key, child) in map {
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match known.get(key) {
            Some(child_schema) => {
                out.insert(
                    key.clone(),
                    walk(child, child_schema, &child_path, problems),
                );
            }
            None => problems.push(Problem {
                source: None,
                path: child_path,
                line: None,
                message: unknown_message(key, known.keys().map(String::as_str)),
            }),
        }
    }
    Value::Object(out)
}

/// The candidate closest to `word` (Jaro-Winkler similarity, `strsim`), when it is
/// close enough (0.75) to be what was meant.
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|v| (strsim::jaro_winkler(word, v), *v))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score >= 0.75)
        .map(|(_, v)| v)
}

fn unknown_message<'a>(key: &str, valid: impl Iterator<Item = &'a str>) -> String {
    let valid: Vec<&str> = valid.collect();
    match closest(key, &valid) {
        Some(v) => format!("unknown key `{key}`: did you mean `{v}`?"),
        None => format!(
            "unknown key `{key}`: valid keys here are {}",
            valid.join(", ")
        ),
    }
}

/// 1-based line of the first `key:` in `text` (best effort, for messages).
pub fn find_line(text: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    text.lines()
        .position(|line| {
            let t = line.trim_start().trim_start_matches("- ");
            t.strip_prefix(key)
                .or_else(|| t.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_get_the_closest_suggestion() {
        let v: Value = serde_json::json!({"training": {"chunk_size": [5, 7], "workers": 2}, "stack": {"env": {"ANY": "x"}}});
        let (cleaned, problems) = unknown_keys(&v);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "training.chunk_size");
        assert!(
            problems[0].message.contains("did you mean `chunk_sizes`"),
            "{}",
            problems[0].message
        );
        assert_eq!(cleaned["training"]["workers"], 2);
        assert_eq!(cleaned["stack"]["env"]["ANY"], "x");
    }

    #[test]
    fn lines_are_found_for_nested_keys() {
        let text = "stack:\n  tuning:\n    connection_pool_size: 200\n";
        assert_eq!(find_line(text, "connection_pool_size"), Some(3));
        assert_eq!(find_line(text, "missing"), None);
    }
}
