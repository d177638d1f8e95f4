//! The merge on small knowledge bases built here: sums, unions, what is refused as
//! inexact, order across pages, and dumps as inputs and output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::kb::dump::{DumpItem, DumpWriter};
use crate::kb::engine_file::{read_engine_file, EngineFileError, EngineFileWriter};
use crate::kb::sorted_source::{DumpSource, EngineFileSource};

fn pattern(kb: &str, n: u32, frequency: u64) -> PatternEntry {
    PatternEntry {
        kb_id: kb.into(),
        name: format!("{n:040x}"),
        events: vec![vec![format!("s{n}")], vec!["t".into()]],
        frequency,
        emotives: Vec::new(),
        metadata: BTreeMap::new(),
    }
}

fn engine_file(path: &Path, patterns: &[PatternEntry], affinity: &[AffinityEntry]) {
    let mut w = EngineFileWriter::open(path).unwrap();
    for p in patterns {
        w.add_pattern(p, false).unwrap();
    }
    for a in affinity {
        w.add_affinity(a, false).unwrap();
    }
    w.finish().unwrap();
}

fn read_back(path: &Path) -> (Vec<PatternEntry>, Vec<AffinityEntry>) {
    let (mut ps, mut afs) = (Vec::new(), Vec::new());
    let keep = |p| {
        ps.push(p);
        Ok(())
    };
    read_engine_file::<EngineFileError>(path, keep, |a| {
        afs.push(a);
        Ok(())
    })
    .unwrap();
    (ps, afs)
}

fn merge_files(
    inputs: &[&Path],
    out: &Path,
    opts: MergeOptions,
) -> Result<MergeReport, MergeError> {
    let mut sources: Vec<Box<dyn SortedSource>> = inputs
        .iter()
        .map(|p| Box::new(EngineFileSource::open(p).unwrap()) as Box<dyn SortedSource>)
        .collect();
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let mut sink = EngineFileSink::create(out).unwrap();
    match merge(&mut sources, &names, &mut sink, opts) {
        Ok(report) => {
            sink.finish().unwrap();
            Ok(report)
        }
        Err(e) => {
            sink.discard();
            Err(e)
        }
    }
}

fn sums(kb: &str, symbol: &str, pairs: &[(&str, &str)]) -> AffinityEntry {
    AffinityEntry {
        kb_id: kb.into(),
        symbol: symbol.into(),
        sums: pairs
            .iter()
            .map(|(e, s)| (e.to_string(), s.to_string()))
            .collect(),
    }
}

#[test]
fn frequencies_add_metadata_unites_and_a_lone_emotive_window_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        dir.path().join("a.db"),
        dir.path().join("b.db"),
        dir.path().join("m.db"),
    );
    let mut shared_a = pattern("node0_kato", 7, 2);
    shared_a
        .metadata
        .insert("book".into(), BTreeSet::from(["Genesis".into()]));
    shared_a.emotives = vec![BTreeMap::from([("joy".to_string(), 0.5)])];
    let mut shared_b = pattern("node0_kato", 7, 3);
    shared_b.metadata.insert(
        "book".into(),
        BTreeSet::from(["Exodus".into(), "Genesis".into()]),
    );
    engine_file(
        &a,
        &[shared_a.clone(), pattern("node0_kato", 1, 1)],
        &[sums("node0_kato", "s7", &[("joy", "0.5")])],
    );
    engine_file(
        &b,
        &[shared_b, pattern("node1_kato", 2, 4)],
        &[sums("node0_kato", "s7", &[("calm", "1.25")])],
    );
    let report = merge_files(&[&a, &b], &out, MergeOptions::default()).unwrap();
    let (patterns, affinity) = read_back(&out);
    let merged = patterns.iter().find(|p| p.name == shared_a.name).unwrap();
    assert_eq!(merged.frequency, 5);
    assert_eq!(
        merged.metadata["book"],
        BTreeSet::from(["Exodus".into(), "Genesis".into()])
    );
    assert_eq!(
        merged.emotives, shared_a.emotives,
        "one input's window is exact"
    );
    assert_eq!(patterns.len(), 3);
    assert_eq!(
        affinity,
        vec![sums(
            "node0_kato",
            "s7",
            &[("calm", "1.25"), ("joy", "0.5")]
        )]
    );
    let learns: Vec<(String, u64, u64)> = report
        .kbs
        .iter()
        .map(|k| (k.kb_id.clone(), k.learns, k.shared))
        .collect();
    assert_eq!(
        learns,
        [("node0_kato".into(), 6, 1), ("node1_kato".into(), 4, 0)]
    );
    assert_eq!((report.inexact_emotives, report.inexact_sums), (0, 0));
}

#[test]
fn emotives_and_sums_from_several_inputs_are_refused_unless_combined_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        dir.path().join("a.db"),
        dir.path().join("b.db"),
        dir.path().join("m.db"),
    );
    let with = |v: f64, f| {
        let mut p = pattern("node0_kato", 9, f);
        p.emotives = (0..3)
            .map(|i| BTreeMap::from([("joy".to_string(), v + f64::from(i))]))
            .collect();
        p
    };
    engine_file(
        &a,
        &[with(1.0, 3)],
        &[sums("node0_kato", "s9", &[("joy", "0.1")])],
    );
    engine_file(
        &b,
        &[with(10.0, 3)],
        &[sums("node0_kato", "s9", &[("joy", "0.2")])],
    );
    let err = merge_files(&[&a, &b], &out, MergeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("carries emotives") && err.contains("--combine-emotives"),
        "{err}"
    );
    assert!(
        !out.exists() && !partial_path_of(&out).exists(),
        "nothing is left behind"
    );
    let report = merge_files(
        &[&a, &b],
        &out,
        MergeOptions {
            combine_emotives: true,
        },
    )
    .unwrap();
    assert_eq!((report.inexact_emotives, report.inexact_sums), (1, 1));
    let (patterns, affinity) = read_back(&out);
    let joys: Vec<f64> = patterns[0].emotives.iter().map(|e| e["joy"]).collect();
    assert_eq!(
        joys,
        [2.0, 3.0, 10.0, 11.0, 12.0],
        "input order, last 5 kept"
    );
    let added = crate::kb::redis_float::hincrbyfloat(Some("0.1"), "0.2").unwrap();
    assert_eq!(
        affinity[0].sums["joy"], added,
        "Redis arithmetic, input order"
    );
}

fn partial_path_of(out: &Path) -> std::path::PathBuf {
    sinks::partial_path(out)
}

#[test]
fn inputs_larger_than_a_page_merge_to_the_digest_of_their_sum() {
    use crate::kb::sorted_source::PAGE;
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..3).map(|i| dir.path().join(format!("{i}.db"))).collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (i, path) in paths.iter().enumerate() {
        // Overlapping ranges, each longer than two pages.
        let patterns: Vec<PatternEntry> = (0..(2 * PAGE as u32 + 100))
            .map(|n| pattern("node0_kato", n * (i as u32 + 1), i as u64 + 1))
            .collect();
        for p in &patterns {
            *expected.entry(format!("PTRN|{}", p.name)).or_default() += p.frequency;
        }
        engine_file(path, &patterns, &[]);
    }
    let out = dir.path().join("m.db");
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let report = merge_files(&refs, &out, MergeOptions::default()).unwrap();
    let digest = crate::train::digest::digest_of(&expected);
    assert_eq!(report.kbs[0].digest, digest);
    assert_eq!(report.kbs[0].patterns, expected.len() as u64);
    let stats = crate::kb::location::stats(&crate::kb::location::Location::EngineFile(out), "kato")
        .unwrap();
    assert_eq!(
        stats[0].digest, digest,
        "kb status reads the same digest from the file"
    );
}

#[test]
fn a_name_with_other_events_in_another_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        dir.path().join("a.db"),
        dir.path().join("b.db"),
        dir.path().join("m.db"),
    );
    let mut other = pattern("node0_kato", 3, 1);
    other.events = vec![vec!["zzz".into()]];
    engine_file(&a, &[pattern("node0_kato", 3, 1)], &[]);
    engine_file(&b, &[other], &[]);
    let err = merge_files(&[&a, &b], &out, MergeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("different events") && err.contains("a.db") && err.contains("b.db"),
        "{err}"
    );
}

fn dump(path: &Path, items: &[DumpItem]) {
    let file = std::fs::File::create(path).unwrap();
    let header = crate::kb::dump::DumpHeader::new("kato", vec!["node0_kato".into()]);
    let mut w = DumpWriter::new(std::io::BufWriter::new(file), path, &header).unwrap();
    for item in items {
        w.write(item).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn dumps_merge_in_order_and_a_dump_out_of_order_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.jsonl"),
        dir.path().join("b.jsonl"),
        dir.path().join("c.jsonl"),
    );
    let p = |n, f| DumpItem::Pattern(pattern("node0_kato", n, f));
    dump(
        &a,
        &[
            p(1, 1),
            p(4, 2),
            DumpItem::Affinity(sums("node0_kato", "s1", &[("joy", "1")])),
        ],
    );
    dump(&b, &[p(2, 1), p(4, 1)]);
    dump(&c, &[p(5, 1), p(3, 1)]);
    let open = |path: &Path| Box::new(DumpSource::open(path).unwrap()) as Box<dyn SortedSource>;
    let names = vec!["a".to_string(), "b".to_string()];
    let out = dir.path().join("m.jsonl");
    let mut sink = DumpSink::create(&out, "kato", vec!["node0_kato".into()]).unwrap();
    let report = merge(
        &mut [open(&a), open(&b)],
        &names,
        &mut sink,
        MergeOptions::default(),
    )
    .unwrap();
    sink.finish().unwrap();
    assert_eq!(
        (
            report.kbs[0].patterns,
            report.kbs[0].learns,
            report.affinity_sums
        ),
        (3, 5, 1)
    );
    let mut merged = DumpSource::open(&out).unwrap();
    let mut got = Vec::new();
    while let Some(p) = merged.next_pattern().unwrap() {
        got.push((p.name, p.frequency));
    }
    assert_eq!(
        got,
        [
            (format!("{:040x}", 1), 1),
            (format!("{:040x}", 2), 1),
            (format!("{:040x}", 4), 3)
        ]
    );
    let mut sink = DumpSink::create(&dir.path().join("n.jsonl"), "kato", Vec::new()).unwrap();
    let names = vec!["a".to_string(), "c.jsonl".to_string()];
    let err = merge(
        &mut [open(&a), open(&c)],
        &names,
        &mut sink,
        MergeOptions::default(),
    )
    .unwrap_err()
    .to_string();
    sink.discard();
    assert!(
        err.contains("c.jsonl") && err.contains("out of merge order"),
        "{err}"
    );
    assert!(err.contains("kb load DUMP --into FILE.kato.db"), "{err}");
}
