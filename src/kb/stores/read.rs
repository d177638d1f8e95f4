//! Reading a knowledge base back out of KATO's stores, a page at a time: names and
//! events from `kato.patterns_data` (by name), frequency, emotives and metadata from
//! Redis, affinity hashes by `SCAN`.

use std::collections::BTreeMap;

use super::{StoreError, Stores};
use crate::kb::kato_form::PriorPattern;
use crate::kb::stats::{KbStats, StatsBuilder};
use crate::kb::{AffinityEntry, PatternEntry};

/// Patterns per ClickHouse page (and Redis pipeline) when reading.
pub const READ_PAGE: usize = 5000;

/// One stored pattern as found: the row, and its Redis keys if they exist.
pub type FoundPattern = (String, Vec<Vec<String>>, Option<PriorPattern>);

impl Stores {
    /// Every pattern of `kb`, in name order, a page at a time, to `each`.
    pub fn scan_patterns<E: From<StoreError>>(
        &mut self,
        kb: &str,
        mut each: impl FnMut(Vec<FoundPattern>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut after = String::new();
        loop {
            let page = self.clickhouse.page(kb, &after, READ_PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = last.clone();
            let names: Vec<&str> = page.iter().map(|(n, _)| n.as_str()).collect();
            let metas = self.redis.patterns(kb, &names)?;
            let full = page.len() == READ_PAGE;
            let found = page
                .into_iter()
                .zip(metas)
                .map(|((n, e), m)| (n, e, m))
                .collect();
            each(found)?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Every pattern of `kb` as a [`PatternEntry`]; a row without its Redis keys is an
    /// [`StoreError::Inconsistent`] error.
    pub fn read_patterns<E: From<StoreError>>(
        &mut self,
        kb: &str,
        mut each: impl FnMut(PatternEntry) -> Result<(), E>,
    ) -> Result<(), E> {
        let kb_id = kb.to_string();
        self.scan_patterns(kb, |page| {
            for (name, events, meta) in page {
                let Some(meta) = meta else {
                    return Err(E::from(StoreError::Inconsistent {
                        kb: kb_id.clone(),
                        detail: format!(
                            "pattern {name} has a ClickHouse row but no {kb_id}:frequency key \
                             (an interrupted load? see `katotune kb status`)"
                        ),
                    }));
                };
                each(PatternEntry {
                    kb_id: kb_id.clone(),
                    name,
                    events,
                    frequency: meta.frequency,
                    emotives: meta.emotives,
                    metadata: meta.metadata,
                })?;
            }
            Ok(())
        })
    }

    /// Every affinity entry of `kb`, a scanned batch at a time.
    pub fn read_affinity(
        &mut self,
        kb: &str,
        mut each: impl FnMut(AffinityEntry),
    ) -> Result<(), StoreError> {
        self.redis.affinity(kb, |batch| {
            for (symbol, sums) in batch {
                each(AffinityEntry {
                    kb_id: kb.to_string(),
                    symbol,
                    sums,
                });
            }
        })
    }

    /// `kb status` of one KB: counted from the rows and frequency keys, symbols from
    /// KATO's `symbols:freq` hash, and the load marker if one is left.
    pub fn stats(&mut self, kb: &str) -> Result<KbStats, StoreError> {
        let mut builder = StatsBuilder::new(kb);
        let mut missing = 0u64;
        self.scan_patterns(kb, |page| {
            for (name, _, meta) in page {
                match meta {
                    Some(m) => builder.add(&name, m.frequency),
                    None => {
                        missing += 1;
                        Ok(())
                    }
                }
                .map_err(|e| StoreError::Inconsistent {
                    kb: kb.to_string(),
                    detail: e.to_string(),
                })?;
            }
            Ok::<(), StoreError>(())
        })?;
        let symbols = self.redis.distinct_symbols(kb)?;
        let mut note = self.redis.marker(kb)?.as_ref().map(describe_marker);
        if missing > 0 && note.is_none() {
            note = Some(format!(
                "{missing} ClickHouse rows have no Redis keys: a load or learn was cut; \
                 reload with `kb load --replace`"
            ));
        }
        Ok(builder.finish(symbols, note))
    }
}

/// A marker in the user's words.
pub fn describe_marker(fields: &BTreeMap<String, String>) -> String {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("?");
    format!(
        "a load from {} started {} stopped after {} patterns and {} affinity entries; \
         finish it with `katotune kb load {} --into ... --resume` (or redo it with --replace)",
        get("source"),
        get("started"),
        get("patterns_done"),
        get("affinity_done"),
        get("source"),
    )
}
