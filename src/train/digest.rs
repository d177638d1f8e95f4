//! Knowledge-base digests: what a run taught each node, independent of order.
//!
//! Pattern names are content hashes, so two runs over the same samples with the same
//! segmentation must learn the same multiset of names per node, whatever their batch
//! size, workers or backend. A [`KbDigest`] is that multiset: every returned name with
//! how many times it was learned. Its `digest` string is a SHA-1 over the sorted
//! `name count` lines, so equal multisets give equal strings and nothing else does.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::kato::pattern::PATTERN_PREFIX;

/// Names learned at one node, with counts.
///
/// A run keeps one entry per distinct name for its whole length (millions on a long
/// run), so names of KATO's form, `PTRN|` and 40 lowercase hex digits, are kept as
/// their 20 bytes: about a third of the memory of the text. Any other name a server
/// returns is kept as it came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTally {
    hashed: HashMap<[u8; 20], u64>,
    other: HashMap<String, u64>,
    learns: u64,
}

/// The 20 bytes of a `PTRN|<40 lowercase hex>` name; `None` for any other text (which
/// would not spell the same name again from its bytes).
fn compact(name: &str) -> Option<[u8; 20]> {
    let hex_digits = name.strip_prefix(PATTERN_PREFIX)?;
    if hex_digits.len() != 40
        || !hex_digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex_digits, &mut out).ok()?;
    Some(out)
}

/// `PTRN|` and the lowercase hex of `digest`, without allocating.
fn spelled(digest: &[u8; 20]) -> [u8; 45] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 45];
    out[..5].copy_from_slice(PATTERN_PREFIX.as_bytes());
    for (i, b) in digest.iter().enumerate() {
        out[5 + 2 * i] = DIGITS[usize::from(b >> 4)];
        out[6 + 2 * i] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

impl NodeTally {
    /// Records one learn that returned `name` (empty names are not patterns).
    pub fn record(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        self.add(name, 1);
    }

    fn add(&mut self, name: &str, n: u64) {
        self.learns += n;
        if let Some(digest) = compact(name) {
            *self.hashed.entry(digest).or_insert(0) += n;
            return;
        }
        match self.other.get_mut(name) {
            Some(total) => *total += n,
            None => {
                self.other.insert(name.to_string(), n);
            }
        }
    }

    /// Adds another tally of the same node.
    pub fn merge(&mut self, other: &NodeTally) {
        self.learns += other.learns;
        for (digest, n) in &other.hashed {
            *self.hashed.entry(*digest).or_insert(0) += n;
        }
        for (name, n) in &other.other {
            *self.other.entry(name.clone()).or_insert(0) += n;
        }
    }

    /// Counts one learn that returned `name` without keeping the name: what a run
    /// tallies when the knowledge base gives the digests (a map entry per name
    /// otherwise, about 10 KB per chapter-sized sample, held until its checkpoint).
    pub fn count(&mut self, name: &str) {
        if !name.is_empty() {
            self.learns += 1;
        }
    }

    /// Learns recorded (names with multiplicity).
    pub fn learns(&self) -> u64 {
        self.learns
    }

    /// Every name's bytes with its count, in name order (the two kinds merged).
    fn visit_sorted(&self, mut visit: impl FnMut(&[u8], u64)) {
        let mut hashed: Vec<(&[u8; 20], u64)> = self.hashed.iter().map(|(d, n)| (d, *n)).collect();
        hashed.sort_unstable();
        let mut other: Vec<(&str, u64)> =
            self.other.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        other.sort_unstable();
        let mut rest = other.into_iter().peekable();
        for (digest, n) in hashed {
            let name = spelled(digest);
            while let Some((text, m)) = rest.next_if(|(text, _)| text.as_bytes() < &name[..]) {
                visit(text.as_bytes(), m);
            }
            visit(&name, n);
        }
        for (text, m) in rest {
            visit(text.as_bytes(), m);
        }
    }

    /// The frozen summary for the run record.
    pub fn digest(&self) -> KbDigest {
        let mut digest = DigestBuilder::default();
        self.visit_sorted(|name, n| digest.add(name, n));
        digest.finish()
    }

    /// Name counts, sorted by name (for explaining differences).
    pub fn sorted_counts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        self.visit_sorted(|name, n| {
            out.insert(String::from_utf8_lossy(name).into_owned(), n);
        });
        out
    }
}

/// One node's digest as the run record carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KbDigest {
    /// SHA-1 over the sorted `name count` lines.
    pub digest: String,
    /// Learns that stored a pattern (names with multiplicity).
    pub learns: u64,
    /// Distinct pattern names.
    pub distinct: u64,
}

/// A [`KbDigest`] built from names given once each, in name order (bytewise), with
/// their counts: a knowledge base's listing streams through it without being held.
#[derive(Default)]
pub struct DigestBuilder {
    hasher: Sha1,
    learns: u64,
    distinct: u64,
}

impl DigestBuilder {
    /// Adds the line `name count`; names must come in increasing byte order.
    pub fn add(&mut self, name: &[u8], count: u64) {
        self.distinct += 1;
        self.learns += count;
        self.hasher.update(name);
        self.hasher.update(b" ");
        self.hasher.update(count.to_string().as_bytes());
        self.hasher.update(b"\n");
    }

    /// The digest of the names added.
    pub fn finish(self) -> KbDigest {
        KbDigest {
            digest: hex::encode(self.hasher.finalize()),
            learns: self.learns,
            distinct: self.distinct,
        }
    }
}

/// Digest of name counts read back from a server (same rule as [`NodeTally::digest`]).
pub fn digest_of(counts: &BTreeMap<String, u64>) -> String {
    digest_counts(counts).digest
}

/// The whole [`KbDigest`] of name counts (`PTRN|<hex>` to times learned): the digest,
/// learns (the counts summed) and distinct names.
pub fn digest_counts(counts: &BTreeMap<String, u64>) -> KbDigest {
    let mut digest = DigestBuilder::default();
    for (name, n) in counts {
        digest.add(name.as_bytes(), *n);
    }
    digest.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_but_multiplicity_does() {
        let mut a = NodeTally::default();
        let mut b = NodeTally::default();
        for n in ["x", "y", "x"] {
            a.record(n);
        }
        for n in ["y", "x", "x", ""] {
            b.record(n);
        }
        assert_eq!(a.digest(), b.digest());
        b.record("x");
        assert_ne!(a.digest().digest, b.digest().digest);
        assert_eq!(b.digest().distinct, 2);
    }

    /// The digest is over the names' text in name order, however each name is kept:
    /// KATO-form names (kept as bytes) and others (uppercase hex, foreign prefixes)
    /// interleave exactly as sorted text would.
    #[test]
    fn compact_and_textual_names_digest_as_their_sorted_text() {
        let names = [
            format!("PTRN|{}", "0a".repeat(20)),
            format!("PTRN|{}", "0A".repeat(20)),
            format!("PTRN|{}", "ff".repeat(20)),
            "PTRN|short".to_string(),
            "ABC".to_string(),
            format!("PTRN|{}", "0a".repeat(20)),
            "zzz".to_string(),
        ];
        let mut tally = NodeTally::default();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for name in &names {
            tally.record(name);
            *counts.entry(name.clone()).or_default() += 1;
        }
        assert_eq!(tally.sorted_counts(), counts);
        let mut hasher = Sha1::new();
        for (name, n) in &counts {
            hasher.update(format!("{name} {n}\n").as_bytes());
        }
        let digest = tally.digest();
        assert_eq!(digest.digest, hex::encode(hasher.finalize()));
        assert_eq!((digest.learns, digest.distinct), (7, 6));
        assert_eq!(tally.hashed.len(), 2, "KATO-form names are kept as bytes");
        let mut merged = NodeTally::default();
        merged.merge(&tally);
        merged.merge(&tally);
        assert_eq!(merged.digest().learns, 14);
        assert_eq!(merged.sorted_counts()["zzz"], 2);
    }
}
