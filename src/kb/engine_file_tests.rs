use super::*;

fn pattern(kb: &str, name: &str, frequency: u64, joys: &[f64], meta: &str) -> PatternEntry {
    PatternEntry {
        kb_id: kb.into(),
        name: name.into(),
        events: vec![vec!["a".into(), "b".into()], vec!["c".into()]],
        frequency,
        emotives: joys
            .iter()
            .map(|j| BTreeMap::from([("joy".to_owned(), *j)]))
            .collect(),
        metadata: BTreeMap::from([("k".to_owned(), BTreeSet::from([meta.to_owned()]))]),
    }
}

fn affinity(kb: &str, symbol: &str, sum: &str) -> AffinityEntry {
    AffinityEntry {
        kb_id: kb.into(),
        symbol: symbol.into(),
        sums: BTreeMap::from([("joy".to_owned(), sum.to_owned())]),
    }
}

fn read_all(path: &Path) -> (Vec<PatternEntry>, Vec<AffinityEntry>) {
    let (mut patterns, mut affinities) = (Vec::new(), Vec::new());
    read_engine_file::<EngineFileError>(
        path,
        |p| {
            patterns.push(p);
            Ok(())
        },
        |a| {
            affinities.push(a);
            Ok(())
        },
    )
    .expect("file reads");
    (patterns, affinities)
}

#[test]
fn a_written_file_reads_back_sorted_by_kb_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.sqlite");
    let mut writer = EngineFileWriter::open(&path).unwrap();
    let entries = [
        pattern("node1_kato", "aa", 1, &[], "x"),
        pattern("node0_kato", "ff", 2, &[0.5], "y"),
        pattern("node0_kato", "0b", 3, &[], "z"),
    ];
    for p in &entries {
        assert!(writer.add_pattern(p, false).unwrap());
    }
    writer
        .add_affinity(&affinity("node0_kato", "b", "1.5"), false)
        .unwrap();
    writer
        .add_affinity(&affinity("node0_kato", "a", "2"), false)
        .unwrap();
    writer.finish().unwrap();
    let (patterns, affinities) = read_all(&path);
    assert_eq!(
        patterns,
        vec![entries[2].clone(), entries[1].clone(), entries[0].clone()]
    );
    let symbols: Vec<&str> = affinities.iter().map(|a| a.symbol.as_str()).collect();
    assert_eq!(symbols, ["a", "b"]);
}

#[test]
fn merging_adds_as_relearning_would_and_replacing_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.sqlite");
    let mut writer = EngineFileWriter::open(&path).unwrap();
    writer
        .add_pattern(
            &pattern("n_kato", "aa", 2, &[1.0, 2.0, 3.0, 4.0], "v"),
            false,
        )
        .unwrap();
    writer
        .add_affinity(&affinity("n_kato", "a", "4.55"), false)
        .unwrap();
    let relearned = writer
        .add_pattern(&pattern("n_kato", "aa", 1, &[5.0, 6.0], "w"), true)
        .unwrap();
    assert!(!relearned, "the pattern was already there");
    writer
        .add_affinity(&affinity("n_kato", "a", "4.55"), true)
        .unwrap();
    writer
        .add_pattern(&pattern("n_kato", "bb", 1, &[], "v"), false)
        .unwrap();
    writer
        .add_pattern(&pattern("n_kato", "bb", 4, &[], "w"), false)
        .unwrap();
    writer.finish().unwrap();
    let (patterns, affinities) = read_all(&path);
    assert_eq!(patterns[0].frequency, 3);
    let joys: Vec<f64> = patterns[0].emotives.iter().map(|e| e["joy"]).collect();
    assert_eq!(joys, [2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        patterns[0].metadata["k"],
        BTreeSet::from(["v".to_owned(), "w".to_owned()])
    );
    assert_eq!(patterns[1], pattern("n_kato", "bb", 4, &[], "w"));
    assert_eq!(affinities[0].sums["joy"], "9.1");
}

#[test]
fn removing_a_kb_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.sqlite");
    let mut writer = EngineFileWriter::open(&path).unwrap();
    writer
        .add_pattern(&pattern("node0_kato", "aa", 1, &[], "v"), false)
        .unwrap();
    writer
        .add_pattern(&pattern("node1_kato", "aa", 1, &[], "v"), false)
        .unwrap();
    writer
        .add_affinity(&affinity("node0_kato", "a", "1"), false)
        .unwrap();
    assert_eq!(writer.remove_kb("node0_kato").unwrap(), 1);
    writer.finish().unwrap();
    let (patterns, affinities) = read_all(&path);
    assert_eq!(patterns.len(), 1);
    assert_eq!(patterns[0].kb_id, "node1_kato");
    assert!(affinities.is_empty());
}

#[test]
fn a_version_1_file_reads_without_affinity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE patterns (kb_id TEXT NOT NULL, name TEXT NOT NULL, pattern_data TEXT NOT NULL,
            length INTEGER NOT NULL, frequency INTEGER NOT NULL, emotives TEXT NOT NULL,
            metadata TEXT NOT NULL, PRIMARY KEY (kb_id, name)) WITHOUT ROWID;
         INSERT INTO patterns VALUES ('n_kato', 'aa', '[[\"a\"],[\"b\"]]', 2, 7, '[]', '{}');",
    )
    .unwrap();
    drop(conn);
    let (patterns, affinities) = read_all(&path);
    assert_eq!(patterns.len(), 1);
    assert_eq!(patterns[0].frequency, 7);
    assert!(affinities.is_empty());
}

#[test]
fn a_damaged_row_is_reported_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb.sqlite");
    EngineFileWriter::open(&path).unwrap().finish().unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO patterns VALUES ('n_kato', 'aa', 'not json', 2, 1, '[]', '{}')",
        [],
    )
    .unwrap();
    drop(conn);
    let result = read_engine_file::<EngineFileError>(&path, |_| Ok(()), |_| Ok(()));
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("n_kato/aa") && message.contains("pattern_data"),
        "{message}"
    );
}
