//! `kb load` into a real Redis and ClickHouse engine leaves exactly what the real KATO
//! 3.10.1 left after the same learns: `../shared/kato/storage/kjv5-baseline.json`
//! (5 KJV samples on the baseline profile), every key and every row.

mod kb_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use katotune::engine::{self, EngineConfig};
use katotune::kb::location::{self, Location};
use katotune::kb::stores::load::{LoadMode, LoadOptions};
use katotune::profile::Profile;
use katotune::train::plan::TrainPlan;
use katotune::train::runner::{self, RunOptions, Target};
use serde_json::{json, Value};

fn golden() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path: PathBuf = root
        .ancestors()
        .map(|d| d.join("shared/kato/storage/kjv5-baseline.json"))
        .find(|p| p.is_file())
        .expect("the golden dumps (shared/kato/storage) beside the checkout");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Trains the golden's 5 samples on the engine into `db`.
fn train(db: &Path, out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let baseline = root.join("profiles/baseline.yaml");
    let mut profile: Profile = katotune::profile::load(baseline.to_str().unwrap(), &[])
        .unwrap()
        .profile;
    profile.training.dataset.path = root.join("data/kjv-100.jsonl");
    profile.training.samples = Some(5);
    profile.report.output_dir = out.to_path_buf();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = EngineConfig {
            db_path: Some(db.to_path_buf()),
            ..EngineConfig::default()
        };
        let engine = engine::start(config).await.unwrap();
        let url = engine.url();
        let target = Target::embedded(url);
        let opts = RunOptions::quiet("golden", out.join("journal.json"));
        runner::run(&TrainPlan::from(&profile), &target, &opts)
            .await
            .unwrap();
        engine.shutdown().await;
    });
}

/// Every `node*` key of the Redis at `url` in the golden's form.
fn redis_image(url: &str) -> BTreeMap<String, Value> {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("node*").query(&mut con).unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
        let value = match kind.as_str() {
            "string" => {
                let text: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            }
            "hash" => {
                let h: BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
                json!(h)
            }
            "set" => {
                let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query(&mut con).unwrap();
                m.sort();
                json!(m)
            }
            other => panic!("{key}: unexpected type {other}"),
        };
        out.insert(key, json!({"type": kind, "value": value}));
    }
    out
}

fn clickhouse_rows(url: &str) -> Vec<Value> {
    let q = "SELECT kb_id, name, pattern_data, length, arraySort(token_set) AS token_set, \
             token_count, minhash_sig, lsh_bands, first_token, last_token FROM kato.patterns_data \
             WHERE kb_id LIKE 'node%' ORDER BY kb_id, name \
             SETTINGS output_format_json_quote_64bit_integers = 0 FORMAT JSONEachRow";
    let text = reqwest::blocking::Client::new()
        .post(url)
        .body(q)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_loaded_kb_is_what_kato_stored_key_by_key_and_row_by_row() {
    let Some(s) = kb_support::start("a_loaded_kb_is_what_kato_stored", "noeviction") else {
        return;
    };
    let expected = golden();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kb.sqlite");
    train(&db, dir.path());
    let opts = LoadOptions {
        mode: LoadMode::Fresh,
        resume: false,
        allow_eviction: false,
        batch: 100,
        source: "golden".into(),
    };
    location::load(
        &Location::EngineFile(db),
        &Location::Stores(s.urls.clone()),
        "kato",
        &opts,
    )
    .unwrap();

    let ours = redis_image(&s.urls.redis);
    let theirs: BTreeMap<String, Value> =
        serde_json::from_value(expected["redis"].clone()).unwrap();
    let mut diff: Vec<String> = theirs
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: KATO {v}, loaded {:?}", ours.get(k)))
        .collect();
    diff.extend(
        ours.keys()
            .filter(|k| !theirs.contains_key(*k))
            .map(|k| format!("extra key {k}")),
    );
    assert!(
        diff.is_empty(),
        "{} Redis differences:\n{}",
        diff.len(),
        diff[..diff.len().min(10)].join("\n")
    );

    let rows = clickhouse_rows(&s.urls.clickhouse);
    let want = expected["clickhouse"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (ours, theirs) in rows.iter().zip(want) {
        assert_eq!(ours, theirs, "row {}", theirs["name"]);
    }
}
