//! Python's `json.dumps` with its defaults, byte for byte, for the JSON strings KATO
//! keeps in Redis (`emotives:<name>`, `metadata:<name>`; KATO `redis_writer.py`,
//! `write_metadata`).
//!
//! Defaults that matter: `", "` and `": "` separators, `ensure_ascii=True` (every
//! character outside printable ASCII becomes `\uXXXX`, astral ones as a surrogate
//! pair, lowercase hex), floats as `float.__repr__` (`NaN`/`Infinity` for the
//! non-finite ones), keys in the map's own order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Appends `json.dumps(text)`.
pub fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Appends `json.dumps(value)` for a float.
pub fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        crate::engine::pyvalue::push_py_float(out, value);
    }
}

/// `json.dumps` of an emotive window: a list of `{name: float}` dicts.
pub fn emotives(window: &[BTreeMap<String, f64>]) -> String {
    let mut out = String::from("[");
    for (i, dict) in window.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('{');
        for (j, (key, value)) in dict.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            push_str(&mut out, key);
            out.push_str(": ");
            push_float(&mut out, *value);
        }
        out.push('}');
    }
    out.push(']');
    out
}

/// `json.dumps` of pattern metadata: `{key: [sorted unique strings]}`.
pub fn metadata(map: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut out = String::from("{");
    for (i, (key, values)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str(&mut out, key);
        out.push_str(": [");
        for (j, value) in values.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            push_str(&mut out, value);
        }
        out.push(']');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_python_ensure_ascii() {
        // python3 -c 'import json; print(json.dumps("é\t\"\\🫠\x7f x"))'
        let mut out = String::new();
        push_str(&mut out, "é\t\"\\🫠\u{7f} x");
        assert_eq!(out, r#""\u00e9\t\"\\\ud83e\udee0\u007f x""#);
    }

    #[test]
    fn windows_and_metadata_use_python_separators_and_reprs() {
        let window = vec![
            BTreeMap::from([
                ("joy".to_owned(), 0.6000000000000001),
                ("fear".to_owned(), 5.5),
            ]),
            BTreeMap::new(),
            BTreeMap::from([("big".to_owned(), 1e16), ("one".to_owned(), 1.0)]),
        ];
        assert_eq!(
            emotives(&window),
            r#"[{"fear": 5.5, "joy": 0.6000000000000001}, {}, {"big": 1e+16, "one": 1.0}]"#
        );
        let meta = BTreeMap::from([(
            "n".to_owned(),
            BTreeSet::from(["0".to_owned(), "1".to_owned()]),
        )]);
        assert_eq!(metadata(&meta), r#"{"n": ["0", "1"]}"#);
        assert_eq!(metadata(&BTreeMap::new()), "{}");
        assert_eq!(emotives(&[]), "[]");
    }
}
