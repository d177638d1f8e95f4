//! Keeping secrets out of everything katotune prints or writes.
//!
//! Two kinds of secret reach katotune: values of keys that name one
//! (`CLICKHOUSE_PASSWORD`, `API_TOKEN`, `SECRET_KEY`, ... see [`is_secret_key`]) and the
//! password of a URL's userinfo (`http://user:pass@host`). The run uses the real
//! values; every output shows [`MASK`] instead:
//!
//! - structured output (run records, `profiles show`, `render`, every export) goes
//!   through [`Redacted`] or [`redacted`], which mask by key and mask URLs in every
//!   string;
//! - free text (log lines, error messages) goes through [`mask_text`], which masks URL
//!   passwords and every value [`remember`]ed when a profile was loaded.

use std::borrow::Cow;
use std::sync::RwLock;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Remembered values shorter than this are not masked in free text: masking every `1`
/// or `ab` would garble the text and tell an onlooker the secret anyway.
const MIN_REMEMBERED_LEN: usize = 4;

/// Secret values met so far (from loaded profiles), masked wherever they appear.
static REMEMBERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether a key (environment name, config key) names a secret.
///
/// Case-insensitive: it contains `PASSWORD`, `PASSWD`, `SECRET` or `CREDENTIAL`, or
/// its last word (words split at anything not a letter or digit) ends with `TOKEN` or
/// `KEY` (`API_KEY`, `KATO_AUTHTOKEN`). Asking for the last word keeps settings such as
/// `tokens`, `paragraph_token_cap` and `sort_keys` readable.
pub fn is_secret_key(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    if ["PASSWORD", "PASSWD", "SECRET", "CREDENTIAL"]
        .iter()
        .any(|s| upper.contains(s))
    {
        return true;
    }
    let last = upper
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    last.ends_with("TOKEN") || last.ends_with("KEY")
}

/// `url` with the password of its userinfo replaced by [`MASK`] (parsed with the `url`
/// crate). Text that is not an absolute URL goes through [`mask_text`].
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some(MASK));
            mask_text(parsed.as_str()).into_owned()
        }
        _ => mask_text(url).into_owned(),
    }
}

/// Free text with every URL userinfo password and every remembered secret value
/// replaced by [`MASK`]. Borrows when there is nothing to mask.
///
/// URLs in prose may be followed by punctuation a URL parser would take in, so this
/// finds the authority itself: after `://`, up to whitespace, a quote, `/`, `?` or `#`;
/// the userinfo is what precedes its last `@`, the password what follows its first `:`.
pub fn mask_text(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains("://") {
        if let Some(masked) = mask_url_passwords(text) {
            out = Cow::Owned(masked);
        }
    }
    let remembered = REMEMBERED.read().unwrap_or_else(|e| e.into_inner());
    for secret in remembered.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

fn mask_url_passwords(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let start = at + 3;
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'`<>/?#".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority
            .rfind('@')
            .and_then(|a| authority[..a].find(':').map(|c| (c, a)))
        {
            Some((colon, at_sign)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at_sign..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Remembers a secret value so that [`mask_text`] masks it wherever it appears
/// (values shorter than 4 characters are not remembered).
pub fn remember(value: &str) {
    if value.chars().count() < MIN_REMEMBERED_LEN {
        return;
    }
    let mut list = REMEMBERED.write().unwrap_or_else(|e| e.into_inner());
    if !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

/// Remembers every secret in a JSON document: values of secret keys and URL passwords.
pub fn remember_all(value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if is_secret_key(k) => remember(s),
                    Value::Number(n) if is_secret_key(k) => remember(&n.to_string()),
                    _ => remember_all(v),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(remember_all),
        Value::String(s) if s.contains("://") => {
            if let Ok(url) = url::Url::parse(s) {
                if let Some(pw) = url.password() {
                    remember(pw);
                    // The password as the user typed it, if the parser re-encoded it.
                    if let Some((_, raw)) = s
                        .split_once("://")
                        .and_then(|(_, r)| r.split_once('@'))
                        .and_then(|(userinfo, _)| userinfo.split_once(':'))
                    {
                        remember(raw);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Masks a JSON document in place: scalar values of secret keys become [`MASK`], and
/// every other string goes through [`mask_text`].
pub fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let scalar = matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
                if scalar && is_secret_key(k) {
                    *v = Value::String(MASK.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(redact_json),
        Value::String(s) => {
            if let Cow::Owned(masked) = mask_text(s) {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// Serializes the wrapped value with its secrets masked (see [`redact_json`]).
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a, T>(pub &'a T);

impl<T: Serialize> Serialize for Redacted<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        redact_json(&mut value);
        value.serialize(serializer)
    }
}

/// A copy of `value` with its secrets masked, for code that walks typed data (the
/// exporters). Fails only if `T` does not read back what it wrote.
pub fn redacted<T: Serialize + DeserializeOwned>(value: &T) -> Result<T, serde_json::Error> {
    let mut json = serde_json::to_value(value)?;
    redact_json(&mut json);
    serde_json::from_value(json)
}

/// A `tracing` writer to stderr that masks each log event (see [`mask_text`]) before
/// it is written: the event is buffered whole, so a secret is never split.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MaskedStderr {
    type Writer = MaskedEvent;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedEvent(Vec::new())
    }
}

/// One log event on its way to stderr (written, masked, when dropped).
#[derive(Debug)]
pub struct MaskedEvent(Vec<u8>);

impl std::io::Write for MaskedEvent {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MaskedEvent {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::Write::write_all(&mut std::io::stderr(), mask_text(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised_but_counters_are_not() {
        for k in [
            "CLICKHOUSE_PASSWORD",
            "api_key",
            "ApiKey",
            "KATO_TOKEN",
            "githubtoken",
            "aws_secret_access_key",
            "db_passwd",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "tokens",
            "tokens_per_second",
            "paragraph_token_cap",
            "sort_keys",
            "key_path",
            "KATO_WORKERS",
            "url",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn url_passwords_are_masked_in_urls_and_prose() {
        assert_eq!(
            mask_url("http://user:s3cr3t@127.0.0.1:8000/x"),
            "http://user:***@127.0.0.1:8000/x"
        );
        assert_eq!(
            mask_text("could not reach http://u:p%40ss@h:1/health: refused"),
            "could not reach http://u:***@h:1/health: refused"
        );
        assert_eq!(
            mask_text("(\"http://a:b@c\") and https://d@e"),
            "(\"http://a:***@c\") and https://d@e"
        );
        assert!(matches!(
            mask_text("http://127.0.0.1:80/ plain"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_is_masked_by_key_and_by_url() {
        let mut v = serde_json::json!({
            "env": {"CLICKHOUSE_PASSWORD": "pw-value", "KATO_WORKERS": "4"},
            "url": "http://x:y@h",
            "tokens": 12,
        });
        redact_json(&mut v);
        assert_eq!(v["env"]["CLICKHOUSE_PASSWORD"], MASK);
        assert_eq!(v["env"]["KATO_WORKERS"], "4");
        assert_eq!(v["url"], "http://x:***@h");
        assert_eq!(v["tokens"], 12);
    }

    #[test]
    fn remembered_values_are_masked_in_free_text() {
        remember_all(&serde_json::json!({"MY_TOKEN": "tok-remembered-1"}));
        assert_eq!(mask_text("header tok-remembered-1 sent"), "header *** sent");
    }
}
