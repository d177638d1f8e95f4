use super::*;
use serde_json::json;

fn entry(
    frequency: u64,
    emotives: Vec<BTreeMap<String, f64>>,
    meta: &[(&str, &str)],
) -> PatternEntry {
    let mut metadata: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, v) in meta {
        metadata
            .entry((*k).to_owned())
            .or_default()
            .insert((*v).to_owned());
    }
    PatternEntry {
        kb_id: "n_kato".into(),
        name: "ab".into(),
        events: vec![vec!["a".into(), "b".into()], vec!["a".into()]],
        frequency,
        emotives,
        metadata,
    }
}

fn joy(v: f64) -> BTreeMap<String, f64> {
    BTreeMap::from([("joy".to_owned(), v)])
}

fn image(writes: &[RedisWrite]) -> Value {
    let mut image = StoreImage::default();
    image.apply_all(writes).expect("redis accepts");
    image.to_golden_json()["redis"].clone()
}

use serde_json::Value;

#[test]
fn a_new_pattern_learned_three_times_counts_like_kato() {
    let redis = image(&pattern_writes(
        &entry(3, vec![joy(1.0)], &[("k", "v")]),
        None,
    ));
    assert_eq!(redis["n_kato:frequency:ab"]["value"], json!(3));
    assert_eq!(
        redis["n_kato:symbols:freq"]["value"],
        json!({"a": "6", "b": "3"})
    );
    assert_eq!(
        redis["n_kato:symbols:pmf"]["value"],
        json!({"a": "1", "b": "1"})
    );
    assert_eq!(redis["n_kato:symbol_to_patterns:a"]["value"], json!(["ab"]));
    assert_eq!(
        redis["n_kato:global:total_symbols_in_patterns_frequencies"]["value"],
        json!(9)
    );
    // KATO counts a pattern once here, however often it was learned.
    assert_eq!(
        redis["n_kato:global:total_pattern_frequencies"]["value"],
        json!(1)
    );
    assert_eq!(
        redis["n_kato:global:total_unique_patterns"]["value"],
        json!(1)
    );
    assert_eq!(redis["n_kato:emotives:ab"]["value"], json!([{"joy": 1.0}]));
    assert_eq!(redis["n_kato:metadata:ab"]["value"], json!({"k": ["v"]}));
}

#[test]
fn merging_adds_counts_unites_metadata_and_rolls_the_window() {
    let first = entry(
        2,
        (0..4).map(|i| joy(f64::from(i))).collect(),
        &[("k", "v")],
    );
    let mut writes = pattern_writes(&first, None);
    let prior = PriorPattern {
        frequency: 2,
        emotives: first.emotives.clone(),
        metadata: first.metadata.clone(),
    };
    let second = entry(1, vec![joy(10.0), joy(11.0)], &[("k", "w")]);
    writes.extend(pattern_writes(&second, Some(&prior)));
    let redis = image(&writes);
    assert_eq!(redis["n_kato:frequency:ab"]["value"], json!(3));
    assert_eq!(
        redis["n_kato:emotives:ab"]["value"],
        json!([{"joy": 1.0}, {"joy": 2.0}, {"joy": 3.0}, {"joy": 10.0}, {"joy": 11.0}])
    );
    assert_eq!(
        redis["n_kato:metadata:ab"]["value"],
        json!({"k": ["v", "w"]})
    );
    assert_eq!(
        redis["n_kato:symbols:freq"]["value"],
        json!({"a": "6", "b": "3"})
    );
    assert_eq!(
        redis["n_kato:symbols:pmf"]["value"],
        json!({"a": "1", "b": "1"})
    );
    assert_eq!(
        redis["n_kato:global:total_unique_patterns"]["value"],
        json!(1)
    );
    assert_eq!(
        redis["n_kato:global:total_symbols_in_patterns_frequencies"]["value"],
        json!(9)
    );
}

#[test]
fn affinity_sets_or_adds_in_redis_arithmetic() {
    let a = AffinityEntry {
        kb_id: "n_kato".into(),
        symbol: "a".into(),
        sums: BTreeMap::from([("joy".to_owned(), "4.55".to_owned())]),
    };
    let mut writes = affinity_writes(&a, false);
    assert_eq!(
        image(&writes)["n_kato:affinity:a"]["value"],
        json!({"joy": "4.55"})
    );
    writes.extend(affinity_writes(&a, true));
    assert_eq!(
        image(&writes)["n_kato:affinity:a"]["value"],
        json!({"joy": "9.1"})
    );
}

#[test]
fn the_clickhouse_row_describes_the_pattern() {
    let row = clickhouse_row(&entry(1, vec![], &[]));
    assert_eq!(row.length, 3);
    assert_eq!(row.token_set, vec!["a", "b"]);
    assert_eq!(row.token_count, 2);
    assert_eq!(
        (row.first_token.as_str(), row.last_token.as_str()),
        ("a", "a")
    );
    assert_eq!(row.minhash_sig, minhash::signature(["a", "b", "a"]));
    assert_eq!(row.lsh_bands.len(), minhash::BANDS);
}

#[test]
fn redis_refusals_leave_the_image_unchanged() {
    let mut image = StoreImage::default();
    image
        .apply(&RedisWrite::Set {
            key: "k".into(),
            value: "x".into(),
        })
        .expect("set");
    let before = image.clone();
    let hset = RedisWrite::HSet {
        key: "k".into(),
        field: "f".into(),
        value: "1".into(),
    };
    assert!(matches!(
        image.apply(&hset),
        Err(StoreImageError::WrongType { .. })
    ));
    let incr = RedisWrite::IncrBy {
        key: "k".into(),
        by: 1,
    };
    assert!(matches!(
        image.apply(&incr),
        Err(StoreImageError::NotAnInteger { .. })
    ));
    let float = RedisWrite::HIncrByFloat {
        key: "h".into(),
        field: "f".into(),
        by: "nan".into(),
    };
    assert!(matches!(
        image.apply(&float),
        Err(StoreImageError::Float { .. })
    ));
    assert_eq!(image, before);
}
