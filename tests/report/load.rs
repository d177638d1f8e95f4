//! `katotune report`: saved run records or a saved comparison, rendered again.

use std::path::PathBuf;

use katotune::report::export::json::JsonExporter;
use katotune::report::{load_inputs, Comparison, Exporter, Inputs, LoadError, ReproMeta};

use super::fixture;

fn save(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

#[test]
fn run_records_group_by_profile_and_their_repeats_build_the_same_numbers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut paths = Vec::new();
    for input in fixture::inputs() {
        for record in &input.records {
            let text = serde_json::to_string_pretty(record).expect("record serializes");
            paths.push(save(&dir, &format!("{}.json", record.run_id), &text));
        }
    }
    let Inputs::Runs(runs) = load_inputs(&paths).expect("records load") else {
        panic!("run records load as runs");
    };
    let names: Vec<&str> = runs.iter().map(|r| r.profile.name.as_str()).collect();
    assert_eq!(names, ["baseline", "phase3-parallel", "broken-batch"]);
    assert_eq!(runs[0].records.len(), 3);
    assert!(runs.iter().all(|r| r.kb.is_empty()));
    let meta = ReproMeta::from_records(&runs);
    assert_eq!(
        (meta.started_at.as_str(), meta.finished_at.as_str()),
        ("2026-11-27T05:01:00Z", "2026-11-27T05:03:30Z")
    );
    let rebuilt = Comparison::build(runs, 0, None, None, meta);
    let original = fixture::comparison();
    assert_eq!(
        rebuilt.profiles[1].samples_per_second,
        original.profiles[1].samples_per_second
    );
    let d = &rebuilt.profiles[2].correctness.differences[0];
    assert_eq!(
        (d.node.as_str(), d.names_differing),
        ("node1", None),
        "names are not in records"
    );
}

#[test]
fn a_saved_comparison_loads_back_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = fixture::comparison();
    let bytes = JsonExporter.render(&c).expect("json");
    let path = save(
        &dir,
        "compare.json",
        &String::from_utf8(bytes).expect("utf-8"),
    );
    match load_inputs(&[path]).expect("comparison loads") {
        Inputs::Comparison(loaded) => assert_eq!(*loaded, c),
        Inputs::Runs(_) => panic!("a comparison loads as a comparison"),
    }
}

#[test]
fn bad_inputs_say_which_file_and_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.json");
    let err = load_inputs(&[&missing]).expect_err("missing");
    assert!(matches!(err, LoadError::Unreadable { .. }));
    assert!(err.to_string().contains("nope.json"), "{err}");

    let broken = save(&dir, "broken.json", "{ not json");
    let err = load_inputs(&[&broken]).expect_err("invalid");
    assert!(matches!(err, LoadError::InvalidJson { .. }));
    assert!(
        err.to_string().contains("broken.json is not valid JSON"),
        "{err}"
    );

    let other = save(&dir, "other.json", r#"{"hello": "world"}"#);
    let err = load_inputs(&[&other]).expect_err("neither");
    let message = err.to_string();
    assert!(
        message.contains("other.json is neither a katotune run record nor a comparison")
            && message.contains("--export-json"),
        "{message}"
    );

    let half = save(&dir, "half.json", r#"{"run_id": "x", "levels": []}"#);
    let err = load_inputs(&[&half]).expect_err("incomplete record");
    assert!(
        err.to_string()
            .contains("half.json looks like a run record"),
        "{err}"
    );

    let none: [PathBuf; 0] = [];
    assert!(matches!(load_inputs(&none), Err(LoadError::NoInputs)));
}

#[test]
fn a_comparison_cannot_be_mixed_with_records_or_come_from_the_future() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = fixture::comparison();
    let comparison = save(&dir, "c.json", &serde_json::to_string(&c).expect("json"));
    let record = save(
        &dir,
        "r.json",
        &serde_json::to_string(&fixture::inputs()[0].records[0]).expect("json"),
    );
    let err = load_inputs(&[&record, &comparison]).expect_err("mixed");
    assert!(matches!(err, LoadError::Mixed { .. }), "{err}");
    let mut future = serde_json::to_value(&c).expect("json");
    future["schema_version"] = 99.into();
    let future = save(&dir, "future.json", &future.to_string());
    let err = load_inputs(&[&future]).expect_err("newer");
    assert!(err.to_string().contains("newer katotune"), "{err}");
}
