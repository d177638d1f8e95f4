//! `schema/comparison.schema.json` describes the JSON export exactly: a built
//! comparison validates, and an export that drifts from it does not.

use serde_json::Value;

use katotune::report::Comparison;

use super::fixture;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/comparison.schema.json");
    let text = std::fs::read_to_string(path).expect("the schema file exists");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn errors(instance: &Value) -> Vec<String> {
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn gated() -> Comparison {
    let baseline = fixture::comparison();
    let mut inputs = fixture::inputs();
    inputs[1].kb.clear();
    Comparison::build(inputs, 0, Some(&baseline), Some(0.1), fixture::meta())
}

#[test]
fn the_schema_is_a_valid_json_schema() {
    let schema = schema();
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("schema/comparison.schema.json is not a valid JSON Schema: {e}");
    }
}

#[test]
fn built_comparisons_validate_against_the_schema() {
    for c in [fixture::comparison(), gated()] {
        let json = serde_json::to_value(&c).expect("serializes");
        let errors = errors(&json);
        assert!(
            errors.is_empty(),
            "export does not match the schema:\n{}",
            errors.join("\n")
        );
    }
    let mut one = fixture::inputs();
    one.truncate(1);
    one[0].records.truncate(1);
    let single = Comparison::build(one, 0, None, None, fixture::meta());
    let errors = errors(&serde_json::to_value(&single).expect("serializes"));
    assert!(errors.is_empty(), "single run:\n{}", errors.join("\n"));
}

#[test]
fn an_export_that_drifts_from_the_schema_fails() {
    let json = serde_json::to_value(fixture::comparison()).expect("serializes");
    let mut renamed = json.clone();
    let profile = renamed["profiles"][0].as_object_mut().expect("object");
    let spread = profile.remove("samples_per_second").expect("field");
    profile.insert("samples_per_sec".into(), spread);
    assert!(!errors(&renamed).is_empty(), "a renamed field must fail");

    let mut retyped = json.clone();
    retyped["profiles"][1]["correctness"]["status"] = "maybe".into();
    assert!(!errors(&retyped).is_empty(), "an unknown status must fail");

    let mut missing = json;
    missing["meta"]
        .as_object_mut()
        .expect("object")
        .remove("host");
    assert!(!errors(&missing).is_empty(), "a missing field must fail");
}

fn record_errors(instance: &Value) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/run-record.schema.json");
    let text = std::fs::read_to_string(path).expect("the run-record schema exists");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn run_records_validate_against_their_schema_and_drift_fails() {
    for input in fixture::inputs() {
        for record in &input.records {
            let json = serde_json::to_value(record).expect("serializes");
            let errors = record_errors(&json);
            assert!(
                errors.is_empty(),
                "{}:\n{}",
                record.run_id,
                errors.join("\n")
            );
        }
    }
    let record = &fixture::inputs()[0].records[0];
    let json = serde_json::to_value(record).expect("serializes");
    assert_eq!(json["version"], 2);
    let mut renamed = json.clone();
    let latency = &mut renamed["calls"]["endpoints"]["learn"]["latency"]["histogram"];
    let counts = latency
        .as_object_mut()
        .expect("a histogram")
        .remove("counts");
    latency["buckets"] = counts.expect("counts");
    assert!(
        !record_errors(&renamed).is_empty(),
        "a renamed histogram field"
    );
    let mut bad_source = json.clone();
    bad_source["kb_check"]["source"] = "guess".into();
    assert!(
        !record_errors(&bad_source).is_empty(),
        "an unknown KB source"
    );
    // A version 1 record (no histograms, no KB check) still validates.
    let mut old = json;
    old["version"] = 1.into();
    old.as_object_mut().expect("object").remove("kb_check");
    for endpoint in old["calls"]["endpoints"]
        .as_object_mut()
        .expect("map")
        .values_mut()
    {
        endpoint["latency"]
            .as_object_mut()
            .expect("latency")
            .remove("histogram");
    }
    assert!(record_errors(&old).is_empty(), "{:?}", record_errors(&old));
}
