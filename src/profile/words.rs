//! Errors in the user's words: what the parser or deserializer said, retold as
//! what was written, what is allowed there, and what to do, without Rust type
//! names (`usize`, `unit`) or library settings (`DuplicateKeyPolicy`).

use figment::error::{Actual, Kind};

/// A YAML syntax error retold: duplicate keys and tab indentation get the fix.
pub(super) fn yaml_message(raw: &str) -> String {
    let raw = raw.trim();
    // serde-saphyr prefixes "error: line L column C: "; the location is said already.
    let text = match raw.find(": ").filter(|_| raw.starts_with("error: line")) {
        Some(_) => raw.splitn(3, ": ").nth(2).unwrap_or(raw),
        None => raw,
    };
    if let Some(rest) = text.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("key `{key}` appears twice in the same mapping; keep one of them");
    }
    if text.contains("tabs disallowed") || text.contains("tab") && text.contains("indent") {
        return "a tab is used for indentation; YAML indents with spaces only: replace the tab with spaces".into();
    }
    format!("malformed YAML: {text}")
}

/// What a whole-number or other expected type means to a user.
fn allowed(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number".into(),
        "i64" | "i32" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "a borrowed string" => "text".into(),
        other => other.to_string(),
    }
}

/// What was written, as the user wrote it.
fn written(actual: &Actual) -> String {
    match actual {
        Actual::Unit => "an empty value".into(),
        Actual::Str(s) => format!("`{s}`"),
        Actual::Bool(b) => format!("`{b}`"),
        Actual::Unsigned(n) => format!("`{n}`"),
        Actual::Signed(n) => format!("`{n}`"),
        Actual::Float(n) => format!("`{n}`"),
        Actual::Char(c) => format!("`{c}`"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

/// A deserialization error retold for the key it is about; `words` are the values an
/// enum key allows (serde names only the enum's Rust type when it gets a number).
pub(super) fn value_message(kind: &Kind, words: Option<&[String]>) -> String {
    match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let allowed = match words {
                Some(words) => format!("one of {}", words.join(", ")),
                None => allowed(expected),
            };
            let quote = matches!(
                actual,
                Actual::Bool(_) | Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_)
            );
            if allowed == "text" && quote {
                return format!(
                    "{} was read as a number or boolean, but this is text: quote it (\"{}\")",
                    written(actual),
                    written(actual).trim_matches('`')
                );
            }
            format!(
                "{} is not allowed here: this takes {allowed}",
                written(actual)
            )
        }
        Kind::UnknownVariant(value, variants) => format!(
            "`{value}` is not allowed here: this takes one of {}",
            variants.join(", ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_was_written_and_what_is_allowed() {
        let four = Kind::InvalidType(Actual::Str("four".into()), "usize".into());
        assert_eq!(
            value_message(&four, None),
            "`four` is not allowed here: this takes a whole number"
        );
        let empty = Kind::InvalidType(Actual::Unit, "usize".into());
        assert!(value_message(&empty, None).starts_with("an empty value is not allowed"));
        let number = Kind::InvalidType(Actual::Float(1.5), "a string".into());
        assert!(value_message(&number, None).contains("quote it"));
        let seven = Kind::InvalidType(Actual::Unsigned(7), "enum TransportChoice".into());
        let words = ["auto".to_string(), "http".to_string()];
        assert_eq!(
            value_message(&seven, Some(&words)),
            "`7` is not allowed here: this takes one of auto, http"
        );
        let dup = yaml_message("error: line 3 column 3: duplicate mapping key: workers, set DuplicateKeyPolicy in Options if acceptable");
        assert_eq!(
            dup,
            "key `workers` appears twice in the same mapping; keep one of them"
        );
        let tab = yaml_message(
            "error: line 2 column 2: tabs disallowed within this context (block indentation)",
        );
        assert!(tab.contains("spaces"));
    }
}
