//! Shards: a deterministic 1/N of a run's samples, so N machines (a Kubernetes Indexed
//! Job, say) can train one profile at once, each into its own knowledge base, and
//! `katotune kb merge` can add the N knowledge bases up to the one a single run learns.
//!
//! **The rule.** The run's samples are numbered 0, 1, 2, ... in corpus order: the rows
//! read from `training.skip` on that pass `training.filter`, which are exactly the
//! samples the unsharded run trains, in the order it reads them (`training.samples`
//! caps the numbers: only samples numbered below the cap are trained). Shard `I/N`
//! trains the samples whose number mod N is I. So every sample lands in exactly one
//! shard whatever N is, and shard sizes differ by at most one (10 samples in 3 shards:
//! 4, 3, 3). Numbering samples rather than raw rows keeps shards even when the filter
//! drops many rows, and makes the shards of a capped run cover exactly the capped run.
//!
//! Rows that are no sample (dropped by the filter, or unreadable and skipped) are
//! counted by shard `row mod N`, so the shards' records add up to the unsharded
//! record's counts. An unreadable row under `on_bad_sample: fail` stops only the shard
//! that counts it (rerun that shard with `--on-bad-sample skip`, or fix the row); a
//! fatal read error (the file is cut) stops every shard.
//!
//! A shard has its own journal, and a resumed shard numbers the samples again from
//! `training.skip` (reading, not training, the rows before its journal's row), so a
//! resume neither skips nor repeats a sample of its share.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::journal::Journal;

/// One shard of a run: `index` of `count`, 0-based (`0/4` ... `3/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, 0-based: 0 <= index < count.
    pub index: u32,
    /// How many shards the run is cut into, at least 1.
    pub count: u32,
}

/// A shard spec that is not `I/N` with 0 <= I < N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{given}` is not a shard: {why}; give I/N with whole numbers, 0 <= I < N \
     (0-based: 0/3, 1/3 and 2/3 are the three shards of N = 3, so a Kubernetes Indexed \
     Job passes $JOB_COMPLETION_INDEX/N)"
)]
pub struct ShardError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Shard {
    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`ShardError`] when `count` is 0 or `index` is not below it.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        let err = |why| ShardError {
            given: format!("{index}/{count}"),
            why,
        };
        match (index, count) {
            (_, 0) => Err(err("N must be 1 or more")),
            (i, n) if i >= n => Err(err("I must be below N (shards are numbered from 0)")),
            _ => Ok(Self { index, count }),
        }
    }

    /// Whether sample number `number` (see the module rule) is this shard's.
    pub fn owns_sample(&self, number: u64) -> bool {
        number % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether raw row `row`, when it is no sample (filtered, unreadable), is counted
    /// by this shard.
    pub fn owns_row(&self, row: u64) -> bool {
        row % u64::from(self.count) == u64::from(self.index)
    }

    /// How many of the samples numbered below `cap` are this shard's.
    pub fn share_of(&self, cap: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if cap <= i {
            0
        } else {
            (cap - i).div_ceil(n)
        }
    }

    /// The word that names this shard's files: `shard-I-of-N`.
    pub fn file_word(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }

    /// `path` with `.shard-I-of-N` before its extensions: `runs/quick.kato.db` becomes
    /// `runs/quick.shard-1-of-3.kato.db`, `kb` becomes `kb.shard-1-of-3`.
    pub fn suffixed(&self, path: &Path) -> PathBuf {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let (stem, rest) = match name.find('.').filter(|&at| at > 0) {
            Some(at) => name.split_at(at),
            None => (name.as_ref(), ""),
        };
        path.with_file_name(format!("{stem}.{}{rest}", self.file_word()))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| ShardError {
            given: s.to_string(),
            why,
        };
        let (i, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| err("there is no `/`"))?;
        let number = |t: &str| t.trim().parse::<u32>().ok();
        match (number(i), number(n)) {
            (Some(i), Some(n)) => Shard::new(i, n).map_err(|e| err(e.why)),
            _ => Err(err("I and N must be whole numbers")),
        }
    }
}

/// Where a row read by a sharded run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Before the journal's row: settled by an earlier session; nothing to report.
    Earlier,
    /// Another shard's sample or row: settled here without training.
    Elsewhere,
    /// This shard's: train it, count it as filtered, or report it as unreadable.
    Mine,
}

/// The reader's side of the rule: numbers the samples as they are read and says
/// whose each row is.
#[derive(Debug, Clone)]
pub(crate) struct ShardCursor {
    shard: Shard,
    /// The number the next sample gets.
    next_number: u64,
    /// Rows below this one were settled by earlier sessions of the shard.
    start_row: u64,
    /// Only samples numbered below this are trained (`training.samples`).
    cap: Option<u64>,
}

impl ShardCursor {
    /// A cursor for a read that starts at `training.skip` (sample number 0) and trains
    /// from `start_row` on.
    pub(crate) fn new(shard: Shard, start_row: u64, cap: Option<u64>) -> Self {
        Self {
            shard,
            next_number: 0,
            start_row,
            cap,
        }
    }

    /// Every sample below the cap has been numbered: stop reading.
    pub(crate) fn exhausted(&self) -> bool {
        self.cap.is_some_and(|cap| self.next_number >= cap)
    }

    /// Places a readable row; `sample` says whether it passed the filter (and so takes
    /// the next number).
    pub(crate) fn place_readable(&mut self, row: u64, sample: bool) -> Place {
        let number = self.next_number;
        if sample {
            self.next_number += 1;
        }
        let mine = if sample {
            self.shard.owns_sample(number)
        } else {
            self.shard.owns_row(row)
        };
        self.place(row, mine)
    }

    /// Places an unreadable row; a fatal one (the corpus cannot be read on) is every
    /// shard's.
    pub(crate) fn place_unreadable(&self, row: u64, fatal: bool) -> Place {
        if fatal {
            return Place::Mine;
        }
        self.place(row, self.shard.owns_row(row))
    }

    fn place(&self, row: u64, mine: bool) -> Place {
        match (row < self.start_row, mine) {
            (true, _) => Place::Earlier,
            (false, true) => Place::Mine,
            (false, false) => Place::Elsewhere,
        }
    }
}

/// The journal of the whole run, made from the journals of its N shards, so that a
/// knowledge base merged from them (`katotune kb merge`) can be continued by an
/// unsharded `katotune run --resume`.
///
/// Exact only when the journals are shards `0/N` ... `N-1/N` of one profile and dataset
/// and all stopped at the same raw row (each read its whole share): then the merged KB
/// holds exactly the samples an unsharded run reading up to that row learned. The
/// result has no shard, the summed `samples_done`, and every shard's at-risk and
/// skipped rows.
///
/// # Errors
/// Why the journals do not make one run's journal, in words for the user.
pub fn combine_journals(journals: &[Journal]) -> Result<Journal, String> {
    let first = journals.first().ok_or("no journals")?;
    let Some(count) = first.shard.map(|s| s.count) else {
        return Err("a journal is not a shard's (it has no shard)".into());
    };
    let mut seen = vec![false; count as usize];
    for j in journals {
        let shard = j
            .shard
            .ok_or("a journal is not a shard's (it has no shard)")?;
        if shard.count != count {
            return Err(format!(
                "shards of N = {count} and N = {} are mixed",
                shard.count
            ));
        }
        if std::mem::replace(&mut seen[shard.index as usize], true) {
            return Err(format!("shard {shard} is given twice"));
        }
        if j.learning_hash != first.learning_hash
            || j.dataset.fingerprint != first.dataset.fingerprint
        {
            return Err(format!(
                "shard {shard} was trained with other training settings or another dataset"
            ));
        }
        if j.next_row != first.next_row {
            return Err(format!(
                "shard {shard} stopped at row {} and shard {} at row {}: finish the shard \
                 that stopped first (`katotune run PROFILE --shard I/N --resume`), then merge",
                j.next_row,
                first.shard.map_or_else(String::new, |s| s.to_string()),
                first.next_row
            ));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("shard {missing}/{count} is missing"));
    }
    let rows = |pick: fn(&Journal) -> &Vec<u64>| {
        let mut all: Vec<u64> = journals
            .iter()
            .flat_map(|j| pick(j).iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    Ok(Journal {
        shard: None,
        samples_done: journals.iter().map(|j| j.samples_done).sum(),
        at_risk_rows: rows(|j| &j.at_risk_rows),
        skipped_rows: rows(|j| &j.skipped_rows),
        updated_at: super::runner::now(),
        ..first.clone()
    })
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
