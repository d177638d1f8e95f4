//! Per-session config: the server defaults, KATO's validation rules (API.md section 2.4)
//! and the effective config a session echoes back.

use serde_json::{json, Map, Value};

use crate::kato::api::StmMode;

const INDEXERS: &[&str] = &["VI", "LSH", "ANNOY", "FAISS"];
const RANK_SORT_ALGOS: &[&str] = &[
    "potential",
    "similarity",
    "evidence",
    "confidence",
    "snr",
    "fragmentation",
    "frequency",
    "normalized_entropy",
    "global_normalized_entropy",
    "itfdf_similarity",
    "confluence",
    "predictive_information",
    "bayesian_posterior",
    "bayesian_prior",
    "bayesian_likelihood",
    "tfidf_score",
    "weighted_similarity",
    "weighted_evidence",
    "weighted_confidence",
    "weighted_snr",
];

/// Keys a session config may set beyond the defaults (stored, never validated).
const EXTRA_KEYS: &[&str] = &["fuzzy_token_threshold"];

/// The server defaults, in the order KATO lists `session_config`.
pub fn server_defaults() -> Map<String, Value> {
    let value = json!({
        "max_pattern_length": 0, "persistence": 5, "recall_threshold": 0.1,
        "indexer_type": "VI", "max_predictions": 100, "sort_symbols": true,
        "process_predictions": true, "use_token_matching": true, "stm_mode": "CLEAR",
        "rank_sort_algo": "potential", "filter_pipeline": [], "length_min_ratio": 0.5,
        "length_max_ratio": 2.0, "jaccard_threshold": 0.3, "jaccard_min_overlap": 2,
        "minhash_threshold": 0.7, "minhash_bands": 20, "minhash_rows": 5,
        "minhash_num_hashes": 100, "bloom_false_positive_rate": 0.01,
        "max_candidates_per_stage": 100000, "enable_filter_metrics": true
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Python's `isinstance(v, int)`: bools count, `2.0` does not.
fn as_py_int(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn as_py_number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// The validation errors of `updates`, keyed by field, in KATO's check order.
pub fn validate(updates: &Map<String, Value>) -> Map<String, Value> {
    let mut errors = Map::new();
    let mut rule = |key: &str, ok: fn(&Value) -> bool, msg: String| {
        if let Some(v) = updates.get(key) {
            if !ok(v) {
                errors.insert(key.to_owned(), Value::from(msg));
            }
        }
    };
    rule(
        "recall_threshold",
        |v| as_py_number(v).is_some_and(|f| (0.0..=1.0).contains(&f)),
        "Must be a number between 0.0 and 1.0".into(),
    );
    rule(
        "persistence",
        |v| as_py_int(v).is_some_and(|i| (1..=100).contains(&i)),
        "Must be an integer between 1 and 100".into(),
    );
    rule(
        "max_pattern_length",
        |v| as_py_int(v).is_some_and(|i| i >= 0),
        "Must be a non-negative integer".into(),
    );
    rule(
        "max_predictions",
        |v| as_py_int(v).is_some_and(|i| (1..=10_000).contains(&i)),
        "Must be an integer between 1 and 10000".into(),
    );
    rule(
        "indexer_type",
        |v| v.as_str().is_some_and(|s| INDEXERS.contains(&s)),
        format!("Must be one of {}", INDEXERS.join(", ")),
    );
    for key in ["process_predictions", "use_token_matching"] {
        rule(key, Value::is_boolean, "Must be a boolean".into());
    }
    rule(
        "rank_sort_algo",
        |v| v.as_str().is_some_and(|s| RANK_SORT_ALGOS.contains(&s)),
        format!("Must be one of {}", RANK_SORT_ALGOS.join(", ")),
    );
    errors
}

/// Applies validated `updates` to `effective`: unknown keys are ignored, an invalid
/// `stm_mode` becomes CLEAR, booleans given as `max_pattern_length` become integers,
/// and `use_token_matching` alone is copied into `sort_symbols`.
pub fn apply(effective: &mut Map<String, Value>, updates: &Map<String, Value>) {
    for (key, value) in updates {
        if !effective.contains_key(key) && !EXTRA_KEYS.contains(&key.as_str()) {
            continue;
        }
        let value = match key.as_str() {
            "stm_mode" => match value.as_str() {
                Some("ROLLING") => Value::from("ROLLING"),
                _ => Value::from("CLEAR"),
            },
            "max_pattern_length" | "persistence" | "max_predictions" => {
                as_py_int(value).map_or_else(|| value.clone(), Value::from)
            }
            _ => value.clone(),
        };
        effective.insert(key.clone(), value);
    }
    if let (Some(v), false) = (
        updates.get("use_token_matching"),
        updates.contains_key("sort_symbols"),
    ) {
        effective.insert("sort_symbols".into(), v.clone());
    }
}

/// The auto-learn settings the observe path needs.
pub fn auto_learn(effective: &Map<String, Value>) -> (usize, StmMode) {
    let mpl = effective
        .get("max_pattern_length")
        .and_then(as_py_int)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0);
    let mode = match effective.get("stm_mode").and_then(Value::as_str) {
        Some("ROLLING") => StmMode::Rolling,
        _ => StmMode::Clear,
    };
    (mpl, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn invalid_values_are_reported_in_kato_order() {
        let errors = validate(&map(json!({
            "max_pattern_length": 2.0, "persistence": 0, "recall_threshold": 3
        })));
        let keys: Vec<_> = errors.keys().cloned().collect();
        assert_eq!(
            keys,
            ["recall_threshold", "persistence", "max_pattern_length"]
        );
    }

    #[test]
    fn true_passes_as_one_and_bad_stm_mode_becomes_clear() {
        let updates = map(json!({"max_pattern_length": true, "stm_mode": "SIDEWAYS", "nope": 1}));
        assert!(validate(&updates).is_empty());
        let mut effective = server_defaults();
        apply(&mut effective, &updates);
        assert_eq!(auto_learn(&effective), (1, StmMode::Clear));
        assert!(!effective.contains_key("nope"));
    }
}
