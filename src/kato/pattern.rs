//! KATO's naming rules: pattern names and knowledge-base ids.
//!
//! A pattern's name is the SHA-1 of CPython 3.10's `str()` of its event list, with the
//! symbols of each event sorted by code point (API.md section 3). Everything katotune
//! learns, and every digest it reports, depends on this being byte-exact, so the
//! renderer below follows `unicode_repr` in CPython's `Objects/unicodeobject.c` rule
//! by rule and is checked against the 55 vectors in `tests/data/hash-vectors.json`.

use sha1::{Digest, Sha1};

use super::py310_table::NONPRINTABLE;

/// Prefix KATO puts in front of a pattern's hex digest on the wire.
pub const PATTERN_PREFIX: &str = "PTRN|";

/// Whether CPython 3.10's `str.isprintable()` is false for `c` (for `c >= U+0080`).
fn is_nonprintable(c: char) -> bool {
    let cp = c as u32;
    NONPRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Appends Python's `repr()` of `s` to `out`.
pub fn push_py_repr(out: &mut String, s: &str) {
    use std::fmt::Write;
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            _ if c == quote || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            _ if (c as u32) < 0x7f => out.push(c),
            _ if !is_nonprintable(c) => out.push(c),
            _ => {
                let cp = c as u32;
                let _ = if cp <= 0xff {
                    write!(out, "\\x{cp:02x}")
                } else if cp <= 0xffff {
                    write!(out, "\\u{cp:04x}")
                } else {
                    write!(out, "\\U{cp:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Appends Python's `str()` of a list of lists of strings to `out`.
pub fn push_events_repr<E, S>(out: &mut String, events: &[E])
where
    E: AsRef<[S]>,
    S: AsRef<str>,
{
    out.push('[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        for (j, symbol) in event.as_ref().iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            push_py_repr(out, symbol.as_ref());
        }
        out.push(']');
    }
    out.push(']');
}

/// The exact text KATO hashes for `events` (events must already be normalized).
pub fn events_repr<E, S>(events: &[E]) -> String
where
    E: AsRef<[S]>,
    S: AsRef<str>,
{
    let mut out = String::new();
    push_events_repr(&mut out, events);
    out
}

/// Sorts one event's symbols by code point, as KATO does on observe.
///
/// Rust orders `str` by UTF-8 bytes, which equals code-point order for valid text.
pub fn normalize_event(symbols: &mut [String]) {
    symbols.sort_unstable();
}

/// Lowercase hex SHA-1 of normalized `events`: the bare name KATO stores.
pub fn pattern_hash<E, S>(events: &[E]) -> String
where
    E: AsRef<[S]>,
    S: AsRef<str>,
{
    let mut text = String::new();
    hash_into(&mut text, events)
}

/// Like [`pattern_hash`], reusing `scratch` for the rendered text (hot path of the engine).
pub fn hash_into<E, S>(scratch: &mut String, events: &[E]) -> String
where
    E: AsRef<[S]>,
    S: AsRef<str>,
{
    scratch.clear();
    push_events_repr(scratch, events);
    hex::encode(Sha1::digest(scratch.as_bytes()))
}

/// `PTRN|` + [`pattern_hash`]: the name as the API returns it.
pub fn wire_name<E, S>(events: &[E]) -> String
where
    E: AsRef<[S]>,
    S: AsRef<str>,
{
    format!("{PATTERN_PREFIX}{}", pattern_hash(events))
}

/// Appends Python's `str()` of `symbols` observed one per event: `[['a'], ['b']]`.
pub fn push_singleton_events_repr<S: AsRef<str>>(out: &mut String, symbols: &[S]) {
    out.push('[');
    for (i, symbol) in symbols.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        push_py_repr(out, symbol.as_ref());
        out.push(']');
    }
    out.push(']');
}

/// Checks the names a server returns against KATO's naming rule, for groups observed
/// one symbol per event (how katotune trains every level).
///
/// The check renders into a reused buffer and compares the 20 SHA-1 bytes with the
/// server's hex, so it allocates nothing per name.
#[derive(Debug, Default)]
pub struct NameCheck {
    scratch: String,
}

impl NameCheck {
    /// Whether `got` is the name KATO gives `symbols` observed one per event: `PTRN|`
    /// and the lowercase hex SHA-1 for 2 or more symbols; for fewer, KATO stores nothing
    /// and `got` must be null or empty.
    pub fn matches<S: AsRef<str>>(&mut self, symbols: &[S], got: Option<&str>) -> bool {
        let got = got.filter(|g| !g.is_empty());
        if symbols.len() < 2 {
            return got.is_none();
        }
        let Some(hex) = got.and_then(|g| g.strip_prefix(PATTERN_PREFIX)) else {
            return false;
        };
        let lower_hex = hex.len() == 40
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut theirs = [0u8; 20];
        if !lower_hex || hex::decode_to_slice(hex, &mut theirs).is_err() {
            return false;
        }
        self.scratch.clear();
        push_singleton_events_repr(&mut self.scratch, symbols);
        let ours: [u8; 20] = Sha1::digest(self.scratch.as_bytes()).into();
        ours == theirs
    }

    /// The name KATO's rule gives `symbols` observed one per event (`None` under 2
    /// symbols). Allocates: for error messages.
    pub fn expected<S: AsRef<str>>(symbols: &[S]) -> Option<String> {
        if symbols.len() < 2 {
            return None;
        }
        let mut text = String::new();
        push_singleton_events_repr(&mut text, symbols);
        Some(format!(
            "{PATTERN_PREFIX}{}",
            hex::encode(Sha1::digest(text.as_bytes()))
        ))
    }
}

/// Strips `PTRN|` (or its URL-encoded form) from a pattern id, as `GET /pattern` accepts.
pub fn bare_hash(id: &str) -> &str {
    id.strip_prefix(PATTERN_PREFIX)
        .or_else(|| id.strip_prefix("PTRN%7C"))
        .or_else(|| id.strip_prefix("PTRN%7c"))
        .unwrap_or(id)
}

/// Total number of symbols across events: KATO stores a pattern only when this is >= 2.
pub fn symbol_count<E, S>(events: &[E]) -> usize
where
    E: AsRef<[S]>,
{
    events.iter().map(|e| e.as_ref().len()).sum()
}

/// The knowledge-base id KATO derives from a node id (API.md section 2.2).
pub fn kb_id(node_id: &str, service_name: &str) -> String {
    const SPECIAL: &[char] = &[
        '/', '\\', '.', '"', '$', '*', '<', '>', ':', '|', '?', '-', ' ',
    ];
    let node: String = node_id
        .chars()
        .map(|c| if SPECIAL.contains(&c) { '_' } else { c })
        .collect();
    let service = service_name.replace('-', "_");
    let full = format!("{node}_{service}");
    if full.chars().count() <= 60 {
        return full;
    }
    let digest = hex::encode(md5::Md5::digest(full.as_bytes()));
    let suffix = format!("_{}_{}", service, &digest[..8]);
    let keep = 60usize.saturating_sub(suffix.chars().count());
    let head: String = node.chars().take(keep).collect();
    format!("{head}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_choice_follows_python() {
        let r = |s: &str| {
            let mut o = String::new();
            push_py_repr(&mut o, s);
            o
        };
        assert_eq!(r("a"), "'a'");
        assert_eq!(r("'s"), "\"'s\"");
        assert_eq!(r("\""), "'\"'");
        assert_eq!(r("'\""), "'\\'\"'");
        assert_eq!(r("\\"), "'\\\\'");
        assert_eq!(r("\u{a0}"), "'\\xa0'");
        assert_eq!(r("\u{200d}"), "'\\u200d'");
        assert_eq!(r("\u{e0001}"), "'\\U000e0001'");
        assert_eq!(r("Ġ"), "'Ġ'");
    }

    #[test]
    fn name_check_accepts_the_rule_and_nothing_else() {
        let symbols = ["Ġthe", "'s", "cat"];
        let events: Vec<Vec<&str>> = symbols.iter().map(|s| vec![*s]).collect();
        let right = wire_name(&events);
        assert_eq!(
            NameCheck::expected(&symbols).as_deref(),
            Some(right.as_str())
        );
        let mut check = NameCheck::default();
        assert!(check.matches(&symbols, Some(&right)));
        assert!(!check.matches(&symbols, Some(&right.to_uppercase())));
        assert!(!check.matches(&symbols, Some(&wire_name(&[vec!["cat", "the"]]))));
        assert!(!check.matches(&symbols, None));
        assert!(!check.matches(&symbols, Some("")));
        assert!(!check.matches(&symbols, Some(&right[5..])));
        assert!(check.matches(&["alone"], None));
        assert!(check.matches(&["alone"], Some("")));
        assert!(!check.matches(&["alone"], Some(&right)));
    }

    #[test]
    fn kb_ids_match_the_server() {
        assert_eq!(kb_id("node0", "kato"), "node0_kato");
        assert_eq!(kb_id("node-0", "kato"), "node_0_kato");
        assert_eq!(kb_id("node.0", "my-svc"), "node_0_my_svc");
        let long = kb_id(&"n".repeat(80), "kato");
        assert!(long.chars().count() <= 60, "{long}");
    }
}
