//! `--format json` on every command that prints data, each document checked
//! against its schema in `schema/`.

use assert_cmd::Command;
use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = format!("{}/schema/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs katotune with `--format json`, checks the exit code, and returns stdout
/// parsed as JSON.
fn json_of(args: &[&str], code: i32) -> Value {
    let out = Command::cargo_bin("katotune")
        .unwrap()
        .arg("--format")
        .arg("json")
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

fn assert_valid(schema_name: &str, doc: &Value) {
    let schema = schema(schema_name);
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema_name}:\n{}", errors.join("\n"));
}

#[test]
fn profiles_knobs_prints_json_matching_its_schema() {
    let doc = json_of(&["profiles", "knobs"], 0);
    assert_valid("knobs.schema.json", &doc);
    let one_of = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["domain"]["kind"] == "one-of")
        .expect("a knob with a fixed set of words");
    assert!(one_of["domain"]["values"].as_array().unwrap().len() > 1);
}

#[test]
fn profiles_validate_prints_one_verdict_per_profile() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "inherits: quick\ntraining:\n  wokrers: 2\n").unwrap();
    let doc = json_of(&["profiles", "validate", "quick", bad.to_str().unwrap()], 2);
    assert_valid("validation.schema.json", &doc);
    assert_eq!(doc[0]["ok"], true);
    assert_eq!(doc[1]["ok"], false);
    assert!(doc[1]["problems"][0]
        .as_str()
        .unwrap()
        .contains("did you mean `workers`"));
}

#[test]
fn profiles_list_prints_json_matching_its_schema() {
    let doc = json_of(&["profiles", "list"], 0);
    assert_valid("profiles-list.schema.json", &doc);
    assert!(doc.as_array().unwrap().iter().any(|p| p["name"] == "quick"));
}

#[test]
fn report_prints_the_comparison_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    Command::cargo_bin("katotune")
        .unwrap()
        .args(["-q", "run", "quick", "--set"])
        .arg(format!("report.output_dir={}", out.display()))
        .assert()
        .success();
    let record = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().contains("journal")
        })
        .unwrap();
    let doc = json_of(&["report", record.to_str().unwrap()], 0);
    assert_valid("comparison.schema.json", &doc);
    assert_eq!(doc["profiles"][0]["name"], "quick");
}

#[test]
fn profiles_list_calls_only_a_broken_profile_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("profiles");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(
        local.join("mine.yaml"),
        "inherits: quick\ntraining:\n  workers: 2\n",
    )
    .unwrap();
    std::fs::write(local.join("broken.yaml"), "inherits: quick\ntraining: [\n").unwrap();
    let out = Command::cargo_bin("katotune")
        .unwrap()
        .current_dir(dir.path())
        .args(["--format", "json", "profiles", "list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_valid("profiles-list.schema.json", &doc);
    let description = |name: &str| {
        doc.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {doc}"))["description"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(description("quick").starts_with("Smoke test"), "{doc}");
    // Valid, without a description of its own (inherits does not pass one on).
    assert_eq!(description("mine"), "(no description)");
    assert!(description("broken").contains("unreadable"), "{doc}");
}
