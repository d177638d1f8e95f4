//! Knowledge bases as portable artifacts: one model of "what a KB holds", whatever
//! holds it (the engine's SQLite file, a dump, or KATO's own Redis and ClickHouse).
//!
//! A knowledge base is a set of patterns per KB id (`<node>_<SERVICE_NAME>`, see
//! [`crate::kato::pattern::kb_id`]) plus, per KB, the running per-symbol emotive sums
//! KATO calls affinity. Everything else KATO stores (symbol frequencies, pattern
//! member frequencies, symbol-to-pattern sets, the three global counters, the
//! ClickHouse row's MinHash and LSH columns) follows from those two, so they are all
//! a portable KB needs to carry. Facts: `../shared/kato/storage/README.md`, KATO 3.10.1
//! `kato/informatics/knowledge_base.py` (`learnPattern`) and `kato/storage/redis_writer.py`.
//!
//! - [`kato_form`]: a pattern and an affinity entry as the Redis writes and the
//!   ClickHouse row KATO leaves, with [`store_image::StoreImage`] to replay them;
//! - [`redis_float`], [`minhash`], [`py_json`]: the exact arithmetic and formats behind
//!   them (Redis `HINCRBYFLOAT` text, datasketch MinHash and LSH, Python `json.dumps`);
//! - [`engine_file`]: the embedded engine's SQLite file as a stream of entries;
//! - [`dump`]: the portable dump file; [`stores`]: KATO's Redis and ClickHouse read and
//!   written; [`location`]: any of those as a source or target; [`stats`] and [`diff`]:
//!   what `kb status` and `kb diff` compute;
//! - [`merge`]: knowledge bases added up as one run would have learned them (`kb
//!   merge`), reading inputs in key order through [`sorted_source`].

pub mod diff;
pub mod dump;
pub mod engine_file;
pub mod kato_form;
pub mod location;
pub mod merge;
pub mod minhash;
mod minhash_perm;
pub mod py_json;
pub mod redis_float;
pub mod sorted_source;
pub mod stats;
pub mod store_image;
pub mod stores;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One stored pattern of one knowledge base, as KATO keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternEntry {
    /// The KB id, `<node>_<SERVICE_NAME>` (e.g. `node0_kato`).
    pub kb_id: String,
    /// Bare 40-hex SHA-1 name, as KATO stores it (no `PTRN|`).
    pub name: String,
    /// The events, symbols sorted inside each event (API.md 3.2).
    pub events: Vec<Vec<String>>,
    /// Times learned (KATO's `frequency:<name>`), at least 1.
    pub frequency: u64,
    /// The last `PERSISTENCE` (5) emotive dicts, oldest first (KATO's rolling window).
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Per key, the sorted unique `str()` of every value ever attached.
    pub metadata: BTreeMap<String, BTreeSet<String>>,
}

/// One symbol's affinity in one knowledge base: per emotive, the running sum of the
/// averaged emotives of every learn that held the symbol, written as Redis writes the
/// result of `HINCRBYFLOAT` (e.g. `"4.55"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffinityEntry {
    /// The KB id.
    pub kb_id: String,
    /// The symbol.
    pub symbol: String,
    /// Emotive name to the sum as Redis's text.
    pub sums: BTreeMap<String, String>,
}
