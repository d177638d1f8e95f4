//! Durations in profiles: `120s`, `500ms`, `1h 30m`, or a bare number of seconds
//! (so `REQUEST_TIMEOUT=120` style values read naturally from env vars too).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// Parses `120s`, `1m`, `1.5` (seconds) and `120` (seconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return seconds(secs);
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{t}` is not a duration ({e}): write it like `120s`, `500ms` or `2m`")
    })
}

fn seconds(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs >= 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "{secs} is not a duration: use a positive number of seconds or `120s`"
        ))
    }
}

/// How a duration is written back out.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn from_value(v: Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => parse(&s),
        Value::Number(n) => seconds(n.as_f64().unwrap_or(-1.0)),
        other => Err(format!("{other} is not a duration: write it like `120s`")),
    }
}

/// `#[serde(with = "duration::required")]`
pub mod required {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "duration::option")]`: `null` / absent means "server default".
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            v => from_value(v).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_bare_seconds() {
        assert_eq!(parse("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("120").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse("soon").unwrap_err().contains("120s"));
        assert!(parse("-3").is_err());
    }
}
