//! Python's `str()` of a JSON value, which KATO uses to reduce metadata values to text
//! (`3` becomes `"3"`, `true` becomes `"True"`, a list becomes `"[1, 'a']"`).

use std::fmt::Write;

use serde_json::{Number, Value};

use crate::kato::pattern::push_py_repr;

/// Appends `str(value)` as CPython 3.10 prints it.
pub fn push_py_str(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        other => push_py_value_repr(out, other),
    }
}

/// Appends `repr(value)`: strings quoted, containers recursively.
fn push_py_value_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => push_py_number(out, n),
        Value::String(s) => push_py_repr(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_py_value_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_py_repr(out, key);
                out.push_str(": ");
                push_py_value_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// Integers as-is; floats as Python's shortest repr (`1.0`, `0.1`, `1e+16`, `inf`).
fn push_py_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    let Some(f) = n.as_f64() else {
        let _ = write!(out, "{n}");
        return;
    };
    push_py_float(out, f);
}

/// CPython's `float.__repr__`: shortest round-trip digits, exponent form outside 1e-4..1e16.
pub fn push_py_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        out.push_str(&plain);
        if !plain.contains('.') {
            out.push_str(".0");
        }
    } else {
        out.push_str(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: Value) -> String {
        let mut out = String::new();
        push_py_str(&mut out, &v);
        out
    }

    #[test]
    fn values_print_like_python_str() {
        assert_eq!(s(json!("A")), "A");
        assert_eq!(s(json!(3)), "3");
        assert_eq!(s(json!(3.0)), "3.0");
        assert_eq!(s(json!(0.1)), "0.1");
        assert_eq!(s(json!(1e16)), "1e+16");
        assert_eq!(s(json!(1.5e-5)), "1.5e-05");
        assert_eq!(s(json!(123456.5)), "123456.5");
        assert_eq!(s(json!(true)), "True");
        assert_eq!(s(json!(null)), "None");
        assert_eq!(s(json!([1, "a", "it's"])), "[1, 'a', \"it's\"]");
        assert_eq!(s(json!({"k": [false]})), "{'k': [False]}");
    }
}
