//! A knowledge base in KATO's store form: the Redis writes and the ClickHouse row that
//! KATO 3.10.1 leaves behind when it learns a pattern (pure, no I/O).
//!
//! Sources: KATO `kato/informatics/knowledge_base.py` (`learnPattern`,
//! `_update_symbol_affinity`), `kato/storage/redis_writer.py` (`write_metadata`,
//! `batch_update_symbol_stats`, `batch_update_symbol_affinity`) and
//! `kato/storage/clickhouse_writer.py` (`_prepare_row`); the golden dumps in
//! `../shared/kato/storage/` show the result. Learning a pattern `n` times leaves:
//!
//! - `<kb>:frequency:<name>` = n; `<kb>:emotives:<name>` = the last 5 emotive dicts and
//!   `<kb>:metadata:<name>` = `{key: [sorted unique strings]}`, both as Python's
//!   `json.dumps` writes them (see [`super::py_json`]);
//! - per symbol, `symbols:freq` += occurrences × n, `symbol_to_patterns:<symbol>` ∋ name,
//!   and `symbols:pmf` += 1 (only when the pattern is new);
//! - `global:total_symbols_in_patterns_frequencies` += length × n, and
//!   `global:total_pattern_frequencies` and `global:total_unique_patterns` += 1 only
//!   when the pattern is new (KATO's quirk: the first is not a sum of frequencies).
//!
//! Affinity is per symbol, not per pattern, so it travels as [`AffinityEntry`].
//!
//! One difference in bytes, none in content: the portable model keeps emotive and
//! metadata keys sorted, so the JSON strings list them sorted, where KATO keeps the
//! order an observation sent them in (and, after a relearn, Python set order for
//! metadata keys). Every reader parses these strings, KATO included.

use std::collections::{BTreeMap, BTreeSet};

use super::{minhash, py_json, AffinityEntry, PatternEntry};

pub use super::store_image::{StoreImage, StoreImageError};

/// Emotive dicts KATO keeps per pattern (its `PERSISTENCE` default).
pub const EMOTIVE_WINDOW: usize = 5;

/// One Redis command, as KATO's writers send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisWrite {
    /// `SET key value`.
    Set { key: String, value: String },
    /// `INCRBY key by`.
    IncrBy { key: String, by: i64 },
    /// `HINCRBY key field by`.
    HIncrBy { key: String, field: String, by: i64 },
    /// `HINCRBYFLOAT key field by`; `by` is the increment's text as sent.
    HIncrByFloat {
        key: String,
        field: String,
        by: String,
    },
    /// `HSET key field value`.
    HSet {
        key: String,
        field: String,
        value: String,
    },
    /// `SADD key member`.
    SAdd { key: String, member: String },
}

/// What the target already holds for a pattern (None = new pattern).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriorPattern {
    /// Its stored frequency.
    pub frequency: u64,
    /// Its stored emotive window, oldest first.
    pub emotives: Vec<BTreeMap<String, f64>>,
    /// Its stored metadata.
    pub metadata: BTreeMap<String, BTreeSet<String>>,
}

/// One `kato.patterns_data` row without its timestamps (KATO `_prepare_row`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternRow {
    /// The KB id.
    pub kb_id: String,
    /// Bare 40-hex name.
    pub name: String,
    /// The events.
    pub pattern_data: Vec<Vec<String>>,
    /// Total symbol count.
    pub length: u32,
    /// Distinct symbols, in first-seen order (KATO writes Python set order, which
    /// varies between processes; readers must treat it as a set).
    pub token_set: Vec<String>,
    /// Number of distinct symbols.
    pub token_count: u32,
    /// 100 MinHash values (see [`minhash::signature`]).
    pub minhash_sig: Vec<u32>,
    /// 20 LSH band hashes (see [`minhash::lsh_bands`]).
    pub lsh_bands: Vec<u64>,
    /// First symbol of the first event (`""` if none).
    pub first_token: String,
    /// Last symbol of the last event (`""` if none).
    pub last_token: String,
}

fn key(kb_id: &str, family: &str, name: &str) -> String {
    format!("{kb_id}:{family}:{name}")
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Each distinct symbol with its occurrences, in first-seen order (Python `Counter`).
fn symbol_counts(events: &[Vec<String>]) -> Vec<(&str, u64)> {
    let mut order: Vec<(&str, u64)> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for symbol in events.iter().flatten() {
        match index.get(symbol.as_str()) {
            Some(&i) => order[i].1 += 1,
            None => {
                index.insert(symbol, order.len());
                order.push((symbol, 1));
            }
        }
    }
    order
}

/// The Redis writes that leave the target as if KATO had learned `p` `p.frequency`
/// times on top of `prior` (None = the pattern is new to the target).
///
/// With a prior (a `--merge` load) the frequency adds, the emotive window is the prior
/// one followed by `p`'s, trimmed to the last [`EMOTIVE_WINDOW`], metadata values
/// unite, symbol frequencies and the symbol total add, and `pmf` and the two pattern
/// counters stay as they are, as a relearn leaves them.
pub fn pattern_writes(p: &PatternEntry, prior: Option<&PriorPattern>) -> Vec<RedisWrite> {
    let kb = p.kb_id.as_str();
    let mut writes = Vec::new();
    let (emotives, metadata) = match prior {
        None => {
            writes.push(RedisWrite::Set {
                key: key(kb, "frequency", &p.name),
                value: p.frequency.to_string(),
            });
            (window(&[], &p.emotives), p.metadata.clone())
        }
        Some(prior) => {
            writes.push(RedisWrite::IncrBy {
                key: key(kb, "frequency", &p.name),
                by: saturating_i64(p.frequency),
            });
            let mut metadata = prior.metadata.clone();
            for (k, values) in &p.metadata {
                metadata
                    .entry(k.clone())
                    .or_default()
                    .extend(values.iter().cloned());
            }
            (window(&prior.emotives, &p.emotives), metadata)
        }
    };
    writes.push(RedisWrite::Set {
        key: key(kb, "emotives", &p.name),
        value: py_json::emotives(&emotives),
    });
    writes.push(RedisWrite::Set {
        key: key(kb, "metadata", &p.name),
        value: py_json::metadata(&metadata),
    });
    symbol_writes(p, prior.is_none(), &mut writes);
    writes
}

/// `prior` then `new`, keeping the last [`EMOTIVE_WINDOW`] dicts.
fn window(
    prior: &[BTreeMap<String, f64>],
    new: &[BTreeMap<String, f64>],
) -> Vec<BTreeMap<String, f64>> {
    let all: Vec<_> = prior.iter().chain(new).cloned().collect();
    let skip = all.len().saturating_sub(EMOTIVE_WINDOW);
    all[skip..].to_vec()
}

/// Symbol statistics and global counters (KATO `batch_update_symbol_stats`).
fn symbol_writes(p: &PatternEntry, is_new: bool, writes: &mut Vec<RedisWrite>) {
    let kb = p.kb_id.as_str();
    let freq_key = format!("{kb}:symbols:freq");
    let pmf_key = format!("{kb}:symbols:pmf");
    for (symbol, count) in symbol_counts(&p.events) {
        writes.push(RedisWrite::HIncrBy {
            key: freq_key.clone(),
            field: symbol.to_owned(),
            by: saturating_i64(count.saturating_mul(p.frequency)),
        });
        writes.push(RedisWrite::SAdd {
            key: key(kb, "symbol_to_patterns", symbol),
            member: p.name.clone(),
        });
        if is_new {
            writes.push(RedisWrite::HIncrBy {
                key: pmf_key.clone(),
                field: symbol.to_owned(),
                by: 1,
            });
        }
    }
    let length = u64::try_from(p.events.iter().map(Vec::len).sum::<usize>()).unwrap_or(u64::MAX);
    writes.push(RedisWrite::IncrBy {
        key: format!("{kb}:global:total_symbols_in_patterns_frequencies"),
        by: saturating_i64(length.saturating_mul(p.frequency)),
    });
    if is_new {
        for counter in ["total_pattern_frequencies", "total_unique_patterns"] {
            writes.push(RedisWrite::IncrBy {
                key: format!("{kb}:global:{counter}"),
                by: 1,
            });
        }
    }
}

/// The Redis writes for one symbol's affinity: `HSET` of each sum's text, or with
/// `merge` (a target that may already hold sums) `HINCRBYFLOAT` by that text, so the
/// two sums add in Redis's own arithmetic.
pub fn affinity_writes(a: &AffinityEntry, merge: bool) -> Vec<RedisWrite> {
    let affinity_key = key(&a.kb_id, "affinity", &a.symbol);
    a.sums
        .iter()
        .map(|(field, text)| {
            if merge {
                RedisWrite::HIncrByFloat {
                    key: affinity_key.clone(),
                    field: field.clone(),
                    by: text.clone(),
                }
            } else {
                RedisWrite::HSet {
                    key: affinity_key.clone(),
                    field: field.clone(),
                    value: text.clone(),
                }
            }
        })
        .collect()
}

/// The `kato.patterns_data` row KATO writes when `p` is first learned.
pub fn clickhouse_row(p: &PatternEntry) -> PatternRow {
    let flat = || p.events.iter().flatten().map(String::as_str);
    let minhash_sig = minhash::signature(flat());
    let lsh_bands = minhash::lsh_bands(&minhash_sig);
    let mut seen = BTreeSet::new();
    let token_set: Vec<String> = flat()
        .filter(|s| seen.insert(*s))
        .map(str::to_owned)
        .collect();
    let first_token = p
        .events
        .first()
        .and_then(|e| e.first())
        .cloned()
        .unwrap_or_default();
    let last_token = p
        .events
        .last()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_default();
    PatternRow {
        kb_id: p.kb_id.clone(),
        name: p.name.clone(),
        pattern_data: p.events.clone(),
        length: u32::try_from(flat().count()).unwrap_or(u32::MAX),
        token_count: u32::try_from(token_set.len()).unwrap_or(u32::MAX),
        token_set,
        minhash_sig,
        lsh_bands,
        first_token,
        last_token,
    }
}

#[cfg(test)]
#[path = "kato_form_tests.rs"]
mod tests;
