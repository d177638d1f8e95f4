use std::io::Cursor;

use super::*;

fn pattern(kb: &str, name_byte: char, freq: u64) -> PatternEntry {
    PatternEntry {
        kb_id: kb.into(),
        name: std::iter::repeat_n(name_byte, 40).collect(),
        events: vec![vec!["a".into(), "b".into()], vec!["c\t\"é".into()]],
        frequency: freq,
        emotives: vec![BTreeMap::from([("joy".to_string(), 0.25)])],
        metadata: BTreeMap::from([("book".to_string(), BTreeSet::from(["Gen".to_string()]))]),
    }
}

fn write_dump(items: &[DumpItem]) -> Vec<u8> {
    let header = DumpHeader::new("kato", vec!["node0_kato".into(), "node1_kato".into()]);
    let mut out = Vec::new();
    let mut w = DumpWriter::new(&mut out, Path::new("mem.jsonl"), &header).unwrap();
    for it in items {
        w.write(it).unwrap();
    }
    assert_eq!(w.finish().unwrap(), (2, 1));
    out
}

fn items() -> Vec<DumpItem> {
    vec![
        DumpItem::Pattern(pattern("node0_kato", 'a', 3)),
        DumpItem::Pattern(pattern("node1_kato", 'b', 1)),
        DumpItem::Affinity(AffinityEntry {
            kb_id: "node0_kato".into(),
            symbol: "a".into(),
            sums: BTreeMap::from([("joy".to_string(), "0.75".to_string())]),
        }),
    ]
}

fn read_all(bytes: &[u8]) -> Result<Vec<DumpItem>, DumpError> {
    DumpReader::new(Cursor::new(bytes), Path::new("d.jsonl"))?.collect()
}

#[test]
fn a_written_dump_reads_back_equal_with_its_header() {
    let bytes = write_dump(&items());
    let reader = DumpReader::new(Cursor::new(&bytes[..]), Path::new("d.jsonl")).unwrap();
    assert_eq!(reader.header().service_name, "kato");
    assert_eq!(reader.header().format_version, FORMAT_VERSION);
    assert_eq!(read_all(&bytes).unwrap(), items());
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.lines().nth(1).unwrap().contains(r#""node":"node0""#));
}

#[test]
fn a_cut_dump_is_reported_as_truncated() {
    let bytes = write_dump(&items());
    let text = String::from_utf8(bytes).unwrap();
    let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    let err = read_all(cut.as_bytes()).unwrap_err();
    assert!(matches!(err, DumpError::Truncated { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("cut short"));
}

#[test]
fn a_corrupt_line_names_its_line_number() {
    let text = String::from_utf8(write_dump(&items())).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = r#"{"type":"pattern","kb_id":"node1_kato","name":"#;
    let err = read_all(lines.join("\n").as_bytes()).unwrap_err();
    assert!(
        err.to_string().starts_with("d.jsonl:3: not a dump record"),
        "{err}"
    );
}

#[test]
fn a_lost_line_is_caught_by_the_end_counts() {
    let text = String::from_utf8(write_dump(&items())).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| l)
        .collect();
    let err = read_all(kept.join("\n").as_bytes()).unwrap_err();
    assert!(err.to_string().contains("lines were lost"), "{err}");
}

#[test]
fn another_format_version_or_naming_rule_is_refused_with_advice() {
    let text = String::from_utf8(write_dump(&items())).unwrap();
    let v2 = text.replacen(r#""format_version":1"#, r#""format_version":2"#, 1);
    let err = read_all(v2.as_bytes()).unwrap_err().to_string();
    assert!(
        err.contains("d.jsonl:1: dump format version 2") && err.contains("dump the source"),
        "{err}"
    );
    let rule = text.replacen(NAMING_RULE, "kato-4/blake3", 1);
    let err = read_all(rule.as_bytes()).unwrap_err().to_string();
    assert!(
        err.contains("naming rule `kato-4/blake3`") && err.contains("retrain"),
        "{err}"
    );
}

#[test]
fn a_bad_pattern_name_or_unlisted_kb_is_refused() {
    let text = String::from_utf8(write_dump(&items())).unwrap();
    let short = text.replacen(&"a".repeat(40), "abc", 1);
    assert!(read_all(short.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("not a bare 40-hex"));
    let other = text.replacen(r#""kb_id":"node1_kato""#, r#""kb_id":"node9_kato""#, 1);
    assert!(read_all(other.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("node9_kato"));
}

#[test]
fn node_is_the_kb_id_without_the_service_suffix() {
    assert_eq!(node_of("node0_kato", "kato"), "node0");
    assert_eq!(node_of("n_my_svc", "my-svc"), "n");
    assert_eq!(node_of("weird", "kato"), "weird");
}
