//! A stack's knowledge base in KATO's stores, checked before anything trains into it:
//! the two stores must agree (every ClickHouse row has its Redis frequency and every
//! frequency its row), and a run that did not ask to continue or replace must find the
//! profile's nodes empty, as the embedded backend's `RequireEmpty` does with its file.
//!
//! KATO keeps a pattern's events in ClickHouse (`kato.patterns_data`, partition
//! `kb_id`) and its frequency in Redis (`<kb_id>:frequency:<name>`), KATO
//! `kato/storage/redis_writer.py`; when one store outlives the other, KATO logs "found
//! in ClickHouse but missing frequency" and restarts counts at 1.

use serde::Serialize;

use super::{KbStart, StackError};
use crate::kb::stores::redis_store::glob_escape as glob_escape_kb;
use crate::kb::stores::{self, StoreError, Stores};

/// One KB whose stores disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    /// The KB id (`<node>_<SERVICE_NAME>`).
    pub kb_id: String,
    /// ClickHouse rows of the KB.
    pub rows: u64,
    /// Rows whose `<kb>:frequency:<name>` key is missing in Redis.
    pub rows_without_frequency: u64,
    /// `<kb>:frequency:*` keys in Redis.
    pub frequencies: u64,
}

impl Disagreement {
    /// What is wrong, in the user's words.
    pub fn describe(&self) -> String {
        let with = self.rows - self.rows_without_frequency;
        let mut parts = Vec::new();
        if self.rows_without_frequency > 0 {
            parts.push(format!(
                "{} of {} ClickHouse rows have no Redis frequency",
                self.rows_without_frequency, self.rows
            ));
        }
        if self.frequencies > with {
            parts.push(format!(
                "{} Redis frequencies have no ClickHouse row",
                self.frequencies - with
            ));
        }
        format!("{}: {}", self.kb_id, parts.join(", "))
    }
}

/// What [`guard`] did to the profile's KBs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardReport {
    /// KBs removed by `--fresh`: (KB id, ClickHouse rows, Redis keys).
    pub removed: Vec<(String, u64, u64)>,
    /// Readiness probes' KBs found and removed ([`remove_probe_leftovers`]).
    pub probes_removed: Vec<String>,
}

/// Whether `kb` is a readiness probe's own KB (`katotune_probe_<random>_<service>`,
/// [`super::probe::PROBE_NODE`]): katotune's, never the user's.
pub fn is_probe_kb(kb: &str) -> bool {
    kb.starts_with(&format!("{}_", super::probe::PROBE_NODE))
}

/// Removes what readiness probes left in the stores (KBs [`is_probe_kb`] names) and
/// returns their ids. The probe deletes its KB with `clear-all`, but KATO inserts
/// ClickHouse rows asynchronously (`async_insert=1, wait_for_async_insert=0`, KATO's
/// clickhouse_writer.py), so on a real ClickHouse server a row can land after the
/// partition was dropped.
///
/// Blocking. Errors: a store that cannot be reached or written.
pub fn remove_probe_leftovers(stores: &mut Stores) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    for kb in stores.kb_ids()?.into_iter().filter(|kb| is_probe_kb(kb)) {
        stores.remove_kb(&kb)?;
        removed.push(kb);
    }
    Ok(removed)
}

/// Every KB of the stores whose ClickHouse rows and Redis frequencies disagree
/// (probe leftovers aside: [`remove_probe_leftovers`] removes those).
///
/// Blocking: call it on a blocking thread. Errors: a store that cannot be reached or
/// read ([`StoreError`]).
pub fn disagreements(stores: &mut Stores) -> Result<Vec<Disagreement>, StoreError> {
    let mut out = Vec::new();
    for kb in stores.kb_ids()?.into_iter().filter(|kb| !is_probe_kb(kb)) {
        let found = check_kb(stores, &kb)?;
        let agree = found.rows_without_frequency == 0
            && found.frequencies == found.rows - found.rows_without_frequency;
        if !agree {
            out.push(found);
        }
    }
    Ok(out)
}

fn check_kb(stores: &mut Stores, kb: &str) -> Result<Disagreement, StoreError> {
    let mut rows = 0u64;
    let mut missing = 0u64;
    stores.scan_patterns(kb, |page| {
        rows += page.len() as u64;
        missing += page.iter().filter(|(_, _, meta)| meta.is_none()).count() as u64;
        Ok::<(), StoreError>(())
    })?;
    let frequencies = stores
        .redis
        .count_keys(&format!("{}:frequency:*", glob_escape_kb(kb)))?;
    Ok(Disagreement {
        kb_id: kb.to_string(),
        rows,
        rows_without_frequency: missing,
        frequencies,
    })
}

/// Checks the stores before a run trains into `kb_ids` (the profile's nodes):
/// stores that disagree are refused whatever `start` says (except that `--fresh`
/// removes the profile's own disagreeing KBs); `RequireEmpty` refuses KBs that hold
/// data; `Replace` removes exactly `kb_ids` (ClickHouse partition and `<kb>:*` keys)
/// and nothing else.
///
/// Blocking: call it on a blocking thread.
pub fn guard(
    urls: &stores::StoreUrls,
    kb_ids: &[String],
    start: KbStart,
) -> Result<GuardReport, StackError> {
    let mut stores = Stores::connect(urls).map_err(StackError::Store)?;
    let mut report = GuardReport {
        probes_removed: remove_probe_leftovers(&mut stores).map_err(StackError::Store)?,
        ..GuardReport::default()
    };
    if start == KbStart::Replace {
        for kb in kb_ids {
            if !stores.kb_is_empty(kb).map_err(StackError::Store)? {
                let (rows, keys) = stores.remove_kb(kb).map_err(StackError::Store)?;
                report.removed.push((kb.clone(), rows, keys));
            }
        }
    }
    let bad = disagreements(&mut stores).map_err(StackError::Store)?;
    if !bad.is_empty() {
        return Err(StackError::StoresDisagree(bad));
    }
    if start == KbStart::RequireEmpty {
        let mut holding = Vec::new();
        for kb in kb_ids {
            if !stores.kb_is_empty(kb).map_err(StackError::Store)? {
                holding.push(kb.clone());
            }
        }
        if !holding.is_empty() {
            return Err(StackError::KbInStores(holding));
        }
    }
    Ok(report)
}

/// The fix for stores that disagree, for messages.
pub const DISAGREE_FIX: &str = "the stores outlived each other (a Redis without persistence, \
    or a volume removed by hand); rerun with --fresh to remove the profile's nodes and \
    train again, or remove the KB with `katotune kb reset`, or restore both stores from a \
    `katotune kb dump`";
