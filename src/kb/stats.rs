//! What `katotune kb status` prints per knowledge base, computed from a stream of
//! patterns in name order, in bounded memory.
//!
//! The digest is the run record's (`crate::train::digest`): SHA-1 over the sorted
//! `PTRN|<name> <frequency>` lines, so a KB's digest read from any store equals the
//! digest of the run that taught it.

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::kato::pattern::PATTERN_PREFIX;

/// One KB's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KbStats {
    /// The KB id.
    pub kb_id: String,
    /// Stored patterns.
    pub patterns: u64,
    /// Sum of their frequencies (learns that stored a pattern).
    pub learns: u64,
    /// Distinct symbols over all patterns.
    pub symbols: u64,
    /// The run record's KB digest.
    pub digest: String,
    /// An unfinished `kb load` into this KB, if any (what the marker says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted_load: Option<String>,
}

/// Feeds patterns in ascending bare-name order; [`StatsBuilder::finish`] gives the stats.
pub struct StatsBuilder {
    kb_id: String,
    hasher: Sha1,
    patterns: u64,
    learns: u64,
    last: Option<String>,
}

/// A pattern arrived out of name order (the digest needs sorted names).
#[derive(Debug, thiserror::Error)]
#[error("{kb}: pattern {name} came after {after}: names must be read in sorted order")]
pub struct OutOfOrder {
    kb: String,
    name: String,
    after: String,
}

impl StatsBuilder {
    /// An empty tally for `kb_id`.
    pub fn new(kb_id: &str) -> Self {
        StatsBuilder {
            kb_id: kb_id.to_string(),
            hasher: Sha1::new(),
            patterns: 0,
            learns: 0,
            last: None,
        }
    }

    /// The KB id being summarised.
    pub fn kb_id(&self) -> &str {
        &self.kb_id
    }

    /// Adds one pattern (bare hex `name`, learned `frequency` times).
    pub fn add(&mut self, name: &str, frequency: u64) -> Result<(), OutOfOrder> {
        if let Some(last) = &self.last {
            if name <= last.as_str() {
                return Err(OutOfOrder {
                    kb: self.kb_id.clone(),
                    name: name.into(),
                    after: last.clone(),
                });
            }
        }
        self.hasher.update(PATTERN_PREFIX.as_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update(b" ");
        self.hasher.update(frequency.to_string().as_bytes());
        self.hasher.update(b"\n");
        self.patterns += 1;
        self.learns += frequency;
        self.last = Some(name.to_string());
        Ok(())
    }

    /// The stats, with the distinct-symbol count the caller measured.
    pub fn finish(self, symbols: u64, interrupted_load: Option<String>) -> KbStats {
        KbStats {
            kb_id: self.kb_id,
            patterns: self.patterns,
            learns: self.learns,
            symbols,
            digest: hex::encode(self.hasher.finalize()),
            interrupted_load,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::train::digest::digest_of;

    #[test]
    fn the_streamed_digest_is_the_run_records_digest() {
        let names = [
            ("0a".repeat(20), 3u64),
            ("1b".repeat(20), 1),
            ("ff".repeat(20), 2),
        ];
        let mut b = StatsBuilder::new("node0_kato");
        let mut record = BTreeMap::new();
        for (n, f) in &names {
            b.add(n, *f).unwrap();
            record.insert(format!("PTRN|{n}"), *f);
        }
        let stats = b.finish(7, None);
        assert_eq!(stats.digest, digest_of(&record));
        assert_eq!((stats.patterns, stats.learns, stats.symbols), (3, 6, 7));
    }

    #[test]
    fn names_out_of_order_are_refused() {
        let mut b = StatsBuilder::new("k");
        b.add("bb", 1).unwrap();
        assert!(b.add("aa", 1).is_err());
    }
}
