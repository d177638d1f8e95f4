//! The KB loader against a real Redis and a real ClickHouse engine (see `kb_support`):
//! what is loaded reads back equal, and targets are guarded.

mod kb_support;

use std::collections::{BTreeMap, BTreeSet};

use katotune::kato::pattern::pattern_hash;
use katotune::kb::dump::DumpItem;
use katotune::kb::stores::load::{load, LoadMode, LoadOptions, LoadRefused};
use katotune::kb::stores::{StoreError, Stores};
use katotune::kb::{AffinityEntry, PatternEntry};

fn entry(kb: &str, words: &[&str], frequency: u64) -> PatternEntry {
    let events: Vec<Vec<String>> = words
        .chunks(2)
        .map(|c| {
            let mut e: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            e.sort();
            e
        })
        .collect();
    PatternEntry {
        kb_id: kb.into(),
        name: pattern_hash(&events),
        events,
        frequency,
        emotives: vec![BTreeMap::from([("joy".to_string(), 0.5)])],
        metadata: BTreeMap::from([("book".to_string(), BTreeSet::from(["Gen".to_string()]))]),
    }
}

fn kb_items(kb: &str, n: usize) -> Vec<DumpItem> {
    let mut out: Vec<DumpItem> = (0..n)
        .map(|i| {
            let (a, b, c) = (
                format!("w{i}"),
                format!("w{}", i + 1),
                "tab\t\"quote".to_string(),
            );
            DumpItem::Pattern(entry(kb, &[&a, &b, &c], 1 + (i as u64 % 3)))
        })
        .collect();
    out.push(DumpItem::Affinity(AffinityEntry {
        kb_id: kb.into(),
        symbol: "w1".into(),
        sums: BTreeMap::from([("joy".to_string(), "1.5".to_string())]),
    }));
    out
}

fn opts(mode: LoadMode) -> LoadOptions {
    LoadOptions {
        mode,
        resume: false,
        allow_eviction: false,
        batch: 7,
        source: "test".into(),
    }
}

fn run_load(
    stores: &mut Stores,
    kbs: &[&str],
    items: &[DumpItem],
    o: &LoadOptions,
) -> anyhow::Result<()> {
    let ids: Vec<String> = kbs.iter().map(|s| s.to_string()).collect();
    load(stores, &ids, items.iter().cloned().map(Ok), o).map(drop)
}

fn read_back(stores: &mut Stores, kb: &str) -> (Vec<PatternEntry>, Vec<AffinityEntry>) {
    let mut patterns = Vec::new();
    stores
        .read_patterns::<StoreError>(kb, |p| {
            patterns.push(p);
            Ok(())
        })
        .unwrap();
    let mut affinity = Vec::new();
    stores.read_affinity(kb, |a| affinity.push(a)).unwrap();
    (patterns, affinity)
}

fn sorted_patterns(items: &[DumpItem]) -> Vec<PatternEntry> {
    let mut v: Vec<PatternEntry> = items
        .iter()
        .filter_map(|i| match i {
            DumpItem::Pattern(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[test]
fn loaded_patterns_and_affinity_read_back_equal() {
    let Some(s) = kb_support::start("loaded_patterns_and_affinity_read_back_equal", "noeviction")
    else {
        return;
    };
    let mut stores = Stores::connect(&s.urls).unwrap();
    let items = kb_items("node0_kato", 25);
    run_load(&mut stores, &["node0_kato"], &items, &opts(LoadMode::Fresh)).unwrap();
    let (patterns, affinity) = read_back(&mut stores, "node0_kato");
    assert_eq!(patterns, sorted_patterns(&items));
    assert_eq!(affinity.len(), 1);
    assert_eq!(affinity[0].sums["joy"], "1.5");
    let stats = stores.stats("node0_kato").unwrap();
    assert_eq!(
        (stats.patterns, stats.learns),
        (25, (0..25).map(|i| 1 + i % 3).sum())
    );
    assert_eq!(stats.symbols, 27, "w0..w25 and the quoted tab symbol");
    assert!(stats.interrupted_load.is_none());
    assert!(
        stores.redis.markers().unwrap().is_empty(),
        "the load marker is removed"
    );
}

#[test]
fn a_non_empty_target_is_refused_and_merge_adds_frequencies() {
    let Some(s) = kb_support::start("a_non_empty_target_is_refused", "noeviction") else {
        return;
    };
    let mut stores = Stores::connect(&s.urls).unwrap();
    let items = kb_items("node0_kato", 10);
    run_load(&mut stores, &["node0_kato"], &items, &opts(LoadMode::Fresh)).unwrap();
    let before = stores.stats("node0_kato").unwrap();
    let err = run_load(&mut stores, &["node0_kato"], &items, &opts(LoadMode::Fresh)).unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(LoadRefused::NotEmpty { .. })),
        "{err:#}"
    );
    assert!(err.to_string().contains("--merge"));
    assert_eq!(
        stores.stats("node0_kato").unwrap(),
        before,
        "nothing written"
    );

    run_load(&mut stores, &["node0_kato"], &items, &opts(LoadMode::Merge)).unwrap();
    let after = stores.stats("node0_kato").unwrap();
    assert_eq!(after.patterns, before.patterns);
    assert_eq!(after.learns, 2 * before.learns);
    assert_eq!(
        stores.clickhouse.count("node0_kato").unwrap(),
        10,
        "no duplicate rows"
    );
    let (patterns, affinity) = read_back(&mut stores, "node0_kato");
    assert!(
        patterns.iter().all(|p| p.emotives.len() == 2),
        "emotive windows append"
    );
    assert_eq!(
        affinity[0].sums["joy"], "3",
        "affinity sums add as HINCRBYFLOAT does"
    );
}

#[test]
fn replace_touches_only_its_own_kbs() {
    let Some(s) = kb_support::start("replace_touches_only_its_own_kbs", "noeviction") else {
        return;
    };
    let mut stores = Stores::connect(&s.urls).unwrap();
    let foreign = kb_items("node7_other", 4);
    run_load(
        &mut stores,
        &["node7_other"],
        &foreign,
        &opts(LoadMode::Fresh),
    )
    .unwrap();
    let foreign_before = stores.stats("node7_other").unwrap();
    let mut raw = redis::Client::open(s.urls.redis.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET")
        .arg("node0_kato_not_mine")
        .arg("x")
        .exec(&mut raw)
        .unwrap();
    run_load(
        &mut stores,
        &["node0_kato"],
        &kb_items("node0_kato", 12),
        &opts(LoadMode::Fresh),
    )
    .unwrap();
    run_load(
        &mut stores,
        &["node0_kato"],
        &kb_items("node0_kato", 5),
        &opts(LoadMode::Replace),
    )
    .unwrap();
    assert_eq!(stores.stats("node0_kato").unwrap().patterns, 5);
    assert_eq!(stores.clickhouse.count("node0_kato").unwrap(), 5);
    assert_eq!(
        stores.stats("node7_other").unwrap(),
        foreign_before,
        "the foreign KB survives"
    );
    let kept: Option<String> = redis::cmd("GET")
        .arg("node0_kato_not_mine")
        .query(&mut raw)
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("x"),
        "a key outside `node0_kato:*` survives"
    );
}

#[test]
fn an_evicting_redis_is_refused_unless_allowed() {
    let Some(s) = kb_support::start("an_evicting_redis_is_refused", "allkeys-lru") else {
        return;
    };
    let mut stores = Stores::connect(&s.urls).unwrap();
    let items = kb_items("node0_kato", 3);
    let err = run_load(&mut stores, &["node0_kato"], &items, &opts(LoadMode::Fresh)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("allkeys-lru")
            && msg.contains("noeviction")
            && msg.contains("--allow-eviction"),
        "{msg}"
    );
    assert!(stores.kb_is_empty("node0_kato").unwrap());
    let mut o = opts(LoadMode::Fresh);
    o.allow_eviction = true;
    run_load(&mut stores, &["node0_kato"], &items, &o).unwrap();
    assert_eq!(stores.stats("node0_kato").unwrap().patterns, 3);
}

#[test]
fn unreachable_stores_and_a_missing_table_are_named() {
    let Some(s) = kb_support::start("unreachable_stores", "noeviction") else {
        return;
    };
    let mut urls = s.urls.clone();
    urls.redis = "redis://:hunter2@127.0.0.1:1".into();
    let err = Stores::connect(&urls).err().unwrap().to_string();
    assert!(
        err.contains("cannot reach Redis at redis://:***@127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
    let stores = Stores::connect(&s.urls).unwrap();
    let q = "DROP TABLE kato.patterns_data";
    reqwest::blocking::Client::new()
        .post(format!(
            "{}/?query={}",
            s.urls.clickhouse,
            q.replace(' ', "%20")
        ))
        .send()
        .unwrap();
    drop(stores);
    let err = Stores::connect(&s.urls).err().unwrap().to_string();
    assert!(err.contains("has no table kato.patterns_data"), "{err}");
}
