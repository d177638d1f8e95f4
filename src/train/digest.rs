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

/// Names learned at one node, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTally {
    counts: HashMap<String, u64>,
    learns: u64,
}

impl NodeTally {
    /// Records one learn that returned `name` (empty names are not patterns).
    pub fn record(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        self.learns += 1;
        match self.counts.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(name.to_string(), 1);
            }
        }
    }

    /// Adds another tally of the same node.
    pub fn merge(&mut self, other: &NodeTally) {
        self.learns += other.learns;
        for (name, n) in &other.counts {
            match self.counts.get_mut(name.as_str()) {
                Some(total) => *total += n,
                None => {
                    self.counts.insert(name.clone(), *n);
                }
            }
        }
    }

    /// Learns recorded (names with multiplicity).
    pub fn learns(&self) -> u64 {
        self.learns
    }

    /// The frozen summary for the run record.
    pub fn digest(&self) -> KbDigest {
        let sorted: BTreeMap<&str, u64> =
            self.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut hasher = Sha1::new();
        for (name, n) in &sorted {
            hasher.update(name.as_bytes());
            hasher.update(b" ");
            hasher.update(n.to_string().as_bytes());
            hasher.update(b"\n");
        }
        KbDigest {
            digest: hex::encode(hasher.finalize()),
            learns: self.learns,
            distinct: sorted.len() as u64,
        }
    }

    /// Name counts, sorted by name (for explaining differences).
    pub fn sorted_counts(&self) -> BTreeMap<String, u64> {
        self.counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
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

/// Digest of name counts read back from a server (same rule as [`NodeTally::digest`]).
pub fn digest_of(counts: &BTreeMap<String, u64>) -> String {
    digest_counts(counts).digest
}

/// The whole [`KbDigest`] of name counts (`PTRN|<hex>` to times learned): the digest,
/// learns (the counts summed) and distinct names.
pub fn digest_counts(counts: &BTreeMap<String, u64>) -> KbDigest {
    let mut tally = NodeTally::default();
    for (name, n) in counts {
        tally.counts.insert(name.clone(), *n);
        tally.learns += n;
    }
    tally.digest()
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
}
