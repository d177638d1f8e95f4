//! Request bodies: fast typed parsing, and FastAPI's 422 answers when that fails.
//!
//! A well-formed body goes straight into the `kato::api` type. Anything else takes a slow
//! path that parses a JSON value, walks it against the field schema the real server
//! declares, and answers 422 `{"detail":[{"type","loc","msg","input"}...]}` like
//! FastAPI and pydantic 2 do, or accepts it after pydantic's lax conversions
//! (`"true"` and `1` as booleans, `"3"` as a number, `2.0` as an integer).

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// A field type of a request schema.
pub enum Ty {
    Str,
    Float,
    Int,
    Bool,
    Any,
    Optional(&'static Ty),
    List(&'static Ty),
    Dict(&'static Ty),
    Model(&'static [Field]),
}

/// One field of a model: name, type, and whether it must be present.
pub struct Field(pub &'static str, pub Ty, pub bool);

const STR_LIST: Ty = Ty::List(&Ty::Str);
const FLOAT_LIST: Ty = Ty::List(&Ty::Float);

/// `ObservationData` of the real server.
pub const OBSERVATION: Ty = Ty::Model(&[
    Field("strings", STR_LIST, false),
    Field("vectors", Ty::List(&FLOAT_LIST), false),
    Field("emotives", Ty::Dict(&Ty::Float), false),
    Field("metadata", Ty::Dict(&Ty::Any), false),
    Field("unique_id", Ty::Optional(&Ty::Str), false),
]);

/// The observe-sequence body.
pub const OBSERVE_SEQUENCE: Ty = Ty::Model(&[
    Field("observations", Ty::List(&OBSERVATION), true),
    Field("learn_after_each", Ty::Bool, false),
    Field("learn_at_end", Ty::Bool, false),
    Field("clear_stm_between", Ty::Bool, false),
]);

/// The create-session body.
pub const CREATE_SESSION: Ty = Ty::Model(&[
    Field("node_id", Ty::Str, true),
    Field("config", Ty::Optional(&Ty::Dict(&Ty::Any)), false),
    Field("ttl_seconds", Ty::Optional(&Ty::Int), false),
    Field("metadata", Ty::Optional(&Ty::Dict(&Ty::Any)), false),
]);

/// A config update: any JSON object.
pub const CONFIG_UPDATE: Ty = Ty::Dict(&Ty::Any);

/// One 422 entry.
fn entry(kind: &str, loc: &[Value], msg: &str, input: &Value) -> Value {
    json!({"type": kind, "loc": loc, "msg": msg, "input": input})
}

/// Parses `bytes` as `T`, or returns the 422 `detail` list the real server would send.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], schema: &Ty) -> Result<T, Vec<Value>> {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        return Ok(value);
    }
    let body = [Value::from("body")];
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![entry(
            "missing",
            &body,
            "Field required",
            &Value::Null,
        )]);
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(error) => {
            let position = byte_offset(bytes, error.line(), error.column());
            let mut item = entry(
                "json_invalid",
                &[body[0].clone(), Value::from(position)],
                "JSON decode error",
                &json!({}),
            );
            item["ctx"] = json!({"error": error.to_string()});
            return Err(vec![item]);
        }
    };
    let mut errors = Vec::new();
    let coerced = check(value, schema, &mut body.to_vec(), &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_json::from_value(coerced).map_err(|error| {
        vec![entry(
            "value_error",
            &body,
            &error.to_string(),
            &Value::Null,
        )]
    })
}

/// Byte offset of a 1-based line and column, as Python's `JSONDecodeError.pos`.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// Validates `value` against `ty`; returns it with pydantic's lax conversions applied.
fn check(value: Value, ty: &Ty, loc: &mut Vec<Value>, errors: &mut Vec<Value>) -> Value {
    let ty = match ty {
        Ty::List(inner) => return check_list(value, inner, loc, errors),
        Ty::Dict(inner) => return check_dict(value, inner, loc, errors),
        Ty::Model(fields) => return check_model(value, fields, loc, errors),
        Ty::Any => return value,
        Ty::Optional(_) if value.is_null() => return value,
        Ty::Optional(inner) => return check(value, inner, loc, errors),
        other => other,
    };
    let mut fail = |kind: &str, msg: &str, value: &Value| type_error(errors, loc, kind, msg, value);
    match ty {
        Ty::Str => match value {
            Value::String(_) => value,
            other => fail("string_type", "Input should be a valid string", &other),
        },
        Ty::Bool => match lax_bool(&value) {
            Some(b) => Value::Bool(b),
            None if value.is_string() => fail(
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
                &value,
            ),
            None => fail("bool_type", "Input should be a valid boolean", &value),
        },
        Ty::Float => match lax_float(&value) {
            Some(f) => Value::from(f),
            None if value.is_string() => fail(
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
                &value,
            ),
            None => fail("float_type", "Input should be a valid number", &value),
        },
        Ty::Int => match lax_int(&value) {
            Ok(i) => Value::from(i),
            Err((kind, msg)) => fail(kind, msg, &value),
        },
        _ => value,
    }
}

fn type_error(
    errors: &mut Vec<Value>,
    loc: &[Value],
    kind: &str,
    msg: &str,
    value: &Value,
) -> Value {
    errors.push(entry(kind, loc, msg, value));
    Value::Null
}

fn check_list(value: Value, inner: &Ty, loc: &mut Vec<Value>, errors: &mut Vec<Value>) -> Value {
    let Value::Array(items) = value else {
        return type_error(
            errors,
            loc,
            "list_type",
            "Input should be a valid list",
            &value,
        );
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        loc.push(Value::from(i));
        out.push(check(item, inner, loc, errors));
        loc.pop();
    }
    Value::Array(out)
}

fn check_dict(value: Value, inner: &Ty, loc: &mut Vec<Value>, errors: &mut Vec<Value>) -> Value {
    let Value::Object(map) = value else {
        return type_error(
            errors,
            loc,
            "dict_type",
            "Input should be a valid dictionary",
            &value,
        );
    };
    let mut out = Map::new();
    for (key, item) in map {
        loc.push(Value::from(key.clone()));
        let checked = check(item, inner, loc, errors);
        loc.pop();
        out.insert(key, checked);
    }
    Value::Object(out)
}

fn check_model(
    value: Value,
    fields: &[Field],
    loc: &mut Vec<Value>,
    errors: &mut Vec<Value>,
) -> Value {
    let Value::Object(mut map) = value else {
        let msg = "Input should be a valid dictionary or object to extract fields from";
        return type_error(errors, loc, "model_attributes_type", msg, &value);
    };
    let whole = Value::Object(map.clone());
    let mut out = Map::new();
    for Field(name, ty, required) in fields {
        loc.push(Value::from(*name));
        match map.remove(*name) {
            Some(value) => {
                out.insert((*name).to_owned(), check(value, ty, loc, errors));
            }
            None if *required => errors.push(entry("missing", loc, "Field required", &whole)),
            None => {}
        }
        loc.pop();
    }
    Value::Object(out)
}

fn lax_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f == 0.0 {
                Some(false)
            } else if f == 1.0 {
                Some(true)
            } else {
                None
            }
        }
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

fn lax_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lax_int(value: &Value) -> Result<i64, (&'static str, &'static str)> {
    const NOT_INT: (&str, &str) = ("int_type", "Input should be a valid integer");
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            (None, Some(_)) => Err((
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            )),
            _ => Err(NOT_INT),
        },
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s.trim().parse().map_err(|_| {
            (
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        }),
        _ => Err(NOT_INT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kato::api::{CreateSession, ObserveSequence};

    #[test]
    fn missing_node_id_names_the_field() {
        let err = parse::<CreateSession>(b"{}", &CREATE_SESSION).unwrap_err();
        assert_eq!(err[0]["type"], "missing");
        assert_eq!(err[0]["loc"], json!(["body", "node_id"]));
    }

    #[test]
    fn wrong_symbol_type_points_at_the_item() {
        let body = br#"{"observations":[{"strings":["a", 3]}]}"#;
        let err = parse::<ObserveSequence>(body, &OBSERVE_SEQUENCE).unwrap_err();
        assert_eq!(
            err[0]["loc"],
            json!(["body", "observations", 0, "strings", 1])
        );
        assert_eq!(err[0]["type"], "string_type");
    }

    #[test]
    fn lax_values_are_accepted_like_pydantic() {
        let body =
            br#"{"observations":[{"strings":["a"],"emotives":{"joy":"2"}}],"learn_at_end":"yes"}"#;
        let seq = parse::<ObserveSequence>(body, &OBSERVE_SEQUENCE).unwrap();
        assert!(seq.learn_at_end);
        assert_eq!(seq.observations[0].emotives["joy"], 2.0);
    }

    #[test]
    fn broken_json_and_empty_bodies_are_422_entries() {
        let err = parse::<ObserveSequence>(b"{\"observations\": [", &OBSERVE_SEQUENCE).unwrap_err();
        assert_eq!(err[0]["type"], "json_invalid");
        let err = parse::<ObserveSequence>(b"", &OBSERVE_SEQUENCE).unwrap_err();
        assert_eq!(err[0]["loc"], json!(["body"]));
        let err = parse::<ObserveSequence>(
            b"{\"observations\":[{\"strings\":[\"\xff\"]}]}",
            &OBSERVE_SEQUENCE,
        );
        assert!(err.is_err());
    }
}
