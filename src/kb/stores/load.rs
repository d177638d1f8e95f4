//! Loading a knowledge base into KATO's stores, streaming, in atomic batches.
//!
//! Before anything is written every target KB is checked: Redis must not evict
//! (`allkeys-*`), a KB that holds data is refused unless `--merge` or `--replace`, and a
//! KB with a marker from a cut load is refused unless `--resume` or `--replace`. Then
//! each KB gets a marker (`katotune:load:<kb>`: source, mode, start time, patterns and
//! affinity entries done). Each batch is one ClickHouse insert followed by one Redis
//! transaction that also advances the marker, so the marker always counts exactly the
//! records whose Redis keys are in. `--resume` skips that many records of each KB in
//! the same source (sources are read in a fixed order) and leaves out ClickHouse rows
//! a cut batch had already inserted. The markers go when the load ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{sync_channel, SyncSender};

use anyhow::{Context, Result};

use super::{StoreError, Stores};
use crate::kb::dump::DumpItem;
use crate::kb::kato_form::{self, PriorPattern, RedisWrite};
use crate::kb::{AffinityEntry, PatternEntry};

/// Records per batch (one ClickHouse insert and one Redis transaction).
pub const DEFAULT_BATCH: usize = 5000;

/// What to do with target KBs that already hold data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Refuse a KB that holds anything.
    Fresh,
    /// Add to it as learning the same patterns again would.
    Merge,
    /// Remove the KB (partition, keys, marker) first.
    Replace,
}

impl LoadMode {
    fn as_str(self) -> &'static str {
        match self {
            LoadMode::Fresh => "fresh",
            LoadMode::Merge => "merge",
            LoadMode::Replace => "replace",
        }
    }
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Fresh, merge or replace.
    pub mode: LoadMode,
    /// Finish a cut load of the same source.
    pub resume: bool,
    /// Load into a Redis whose policy may evict keys.
    pub allow_eviction: bool,
    /// Records per batch.
    pub batch: usize,
    /// The source as the user named it (kept in the marker, checked on resume).
    pub source: String,
}

/// A load that cannot start; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum LoadRefused {
    #[error(
        "{kb} already holds a knowledge base: pass --merge to add to it, or --replace to \
         remove it first (only {kb} is removed)"
    )]
    NotEmpty { kb: String },
    #[error("{kb}: {note}")]
    Interrupted { kb: String, note: String },
    #[error("{kb} holds data but no unfinished load: nothing to resume; use --merge or --replace")]
    NothingToResume { kb: String },
    #[error(
        "{kb}: the cut load was from `{was}`, not `{now}`: resume with the same source, or \
         pass --replace to start over"
    )]
    OtherSource {
        kb: String,
        was: String,
        now: String,
    },
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Per KB: (patterns, affinity entries) written by this invocation.
    pub written: BTreeMap<String, (u64, u64)>,
    /// Per KB: (patterns, affinity entries) skipped because a cut load had written them.
    pub resumed_after: BTreeMap<String, (u64, u64)>,
    /// Per KB removed first (`--replace`): (ClickHouse rows, Redis keys).
    pub removed: BTreeMap<String, (u64, u64)>,
    /// Seconds spent preparing writes, in ClickHouse inserts, and in Redis transactions.
    pub seconds: (f64, f64, f64),
    /// Redis commands sent (after folding).
    pub redis_commands: u64,
}

/// Loads `items` (records of the KBs `kb_ids`) into `stores`.
///
/// Two stages overlap: this thread reads, prepares and inserts a batch's ClickHouse
/// rows while a second Redis connection commits the previous batch's transaction.
/// A batch's rows are always in before its transaction, which is what `--resume`
/// relies on.
pub fn load(
    stores: &mut Stores,
    kb_ids: &[String],
    items: impl Iterator<Item = Result<DumpItem>>,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    stores.redis.check_eviction(opts.allow_eviction)?;
    let mut report = LoadReport::default();
    let skip = prepare(stores, kb_ids, opts, &mut report)?;
    let mut committer = stores.redis.another()?;
    let (tx, rx) = sync_channel::<Commit>(1);
    std::thread::scope(|scope| -> Result<()> {
        let writer = scope.spawn(move || -> Result<(f64, u64), StoreError> {
            let (mut busy, mut commands) = (0.0, 0);
            for (writes, marker) in rx {
                let t = std::time::Instant::now();
                commands += committer.apply(writes, &marker)? as u64;
                busy += t.elapsed().as_secs_f64();
            }
            Ok((busy, commands))
        });
        let fed = feed(stores, kb_ids, items, opts, &skip, &mut report, &tx);
        drop(tx);
        let committed = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the Redis writer panicked"))?;
        (report.seconds.2, report.redis_commands) = committed?;
        fed
    })
    .context(
        "the load stopped part-way; the batches written are kept and marked (see `katotune \
         kb status`): load the same source again with --resume, or start over with --replace",
    )?;
    for kb in kb_ids {
        stores.redis.clear_marker(kb)?;
    }
    report.resumed_after = skip.into_iter().collect();
    Ok(report)
}

/// A batch's Redis writes and the marker advances that commit with them.
type Commit = (Vec<RedisWrite>, Vec<(String, &'static str, i64)>);

fn feed(
    stores: &mut Stores,
    kb_ids: &[String],
    items: impl Iterator<Item = Result<DumpItem>>,
    opts: &LoadOptions,
    skip: &HashMap<String, (u64, u64)>,
    report: &mut LoadReport,
    tx: &SyncSender<Commit>,
) -> Result<()> {
    let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
    let mut batch = Batch::default();
    let send = |stores: &mut Stores, batch: Batch, report: &mut LoadReport| -> Result<()> {
        let commit = write_batch(stores, batch, opts, report)?;
        // A closed channel means the writer failed: its error is returned by `load`.
        let _ = tx.send(commit);
        Ok(())
    };
    for item in items {
        let item = item?;
        let kb = item.kb_id().to_string();
        if !kb_ids.contains(&kb) {
            anyhow::bail!("the source holds KB {kb}, which it did not list first");
        }
        let count = seen.entry(kb.clone()).or_default();
        let limit = skip.get(&kb).copied().unwrap_or_default();
        let skipped = match &item {
            DumpItem::Pattern(_) => bump(&mut count.0, limit.0),
            DumpItem::Affinity(_) => bump(&mut count.1, limit.1),
        };
        if skipped {
            continue;
        }
        batch.push(item);
        if batch.len() >= opts.batch {
            send(stores, std::mem::take(&mut batch), report)?;
        }
    }
    send(stores, batch, report)
}

/// Counts one record; true when it is among the first `limit` (already loaded).
fn bump(count: &mut u64, limit: u64) -> bool {
    *count += 1;
    *count <= limit
}

/// Checks every KB, then removes (`--replace`) and marks them. Returns per KB the
/// records a resumed load skips.
fn prepare(
    stores: &mut Stores,
    kb_ids: &[String],
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<HashMap<String, (u64, u64)>> {
    let markers = stores.redis.markers()?;
    let mut skip = HashMap::new();
    let mut fresh_marker = Vec::new();
    for kb in kb_ids {
        let marker = markers.get(kb);
        match (marker, opts.resume) {
            (Some(m), true) => {
                let was = m.get("source").cloned().unwrap_or_default();
                if was != opts.source {
                    let (kb, now) = (kb.clone(), opts.source.clone());
                    return Err(LoadRefused::OtherSource { kb, was, now }.into());
                }
                let done = |f: &str| m.get(f).and_then(|v| v.parse().ok()).unwrap_or(0u64);
                skip.insert(kb.clone(), (done("patterns_done"), done("affinity_done")));
                continue;
            }
            (Some(m), false) if opts.mode != LoadMode::Replace => {
                let note = super::read::describe_marker(m);
                return Err(LoadRefused::Interrupted {
                    kb: kb.clone(),
                    note,
                }
                .into());
            }
            (None, true) if !stores.kb_is_empty(kb)? => {
                return Err(LoadRefused::NothingToResume { kb: kb.clone() }.into());
            }
            _ => {}
        }
        if opts.mode == LoadMode::Fresh && !opts.resume && !stores.kb_is_empty(kb)? {
            return Err(LoadRefused::NotEmpty { kb: kb.clone() }.into());
        }
        fresh_marker.push(kb.clone());
    }
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for kb in fresh_marker {
        if opts.mode == LoadMode::Replace {
            report.removed.insert(kb.clone(), stores.remove_kb(&kb)?);
        }
        let fields = [
            ("source", opts.source.clone()),
            ("mode", opts.mode.as_str().to_string()),
            ("started", started.clone()),
            ("patterns_done", "0".into()),
            ("affinity_done", "0".into()),
        ];
        stores.redis.set_marker(&kb, &fields)?;
    }
    Ok(skip)
}

#[derive(Default)]
struct Batch {
    patterns: BTreeMap<String, Vec<PatternEntry>>,
    affinity: BTreeMap<String, Vec<AffinityEntry>>,
    len: usize,
}

impl Batch {
    fn push(&mut self, item: DumpItem) {
        self.len += 1;
        match item {
            DumpItem::Pattern(p) => self.patterns.entry(p.kb_id.clone()).or_default().push(p),
            DumpItem::Affinity(a) => self.affinity.entry(a.kb_id.clone()).or_default().push(a),
        }
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// Prepares a batch and inserts its ClickHouse rows; returns its Redis transaction.
fn write_batch(
    stores: &mut Stores,
    batch: Batch,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<Commit> {
    let t0 = std::time::Instant::now();
    let merge = opts.mode == LoadMode::Merge;
    let mut writes: Vec<RedisWrite> = Vec::new();
    let mut rows = Vec::new();
    let mut marker: Vec<(String, &'static str, i64)> = Vec::new();
    for (kb, patterns) in &batch.patterns {
        let names: Vec<&str> = patterns.iter().map(|p| p.name.as_str()).collect();
        let priors: Vec<Option<PriorPattern>> = if merge {
            stores.redis.patterns(kb, &names)?
        } else {
            vec![None; names.len()]
        };
        let in_ch: HashSet<String> = if opts.resume {
            stores.clickhouse.existing(kb, &names)?
        } else {
            HashSet::new()
        };
        for (p, prior) in patterns.iter().zip(&priors) {
            if prior.is_none() && !in_ch.contains(&p.name) {
                rows.push(kato_form::clickhouse_row(p));
            }
            writes.extend(kato_form::pattern_writes(p, prior.as_ref()));
        }
        marker.push((kb.clone(), "patterns_done", patterns.len() as i64));
        report.written.entry(kb.clone()).or_default().0 += patterns.len() as u64;
    }
    for (kb, entries) in &batch.affinity {
        for a in entries {
            writes.extend(kato_form::affinity_writes(a, merge));
        }
        marker.push((kb.clone(), "affinity_done", entries.len() as i64));
        report.written.entry(kb.clone()).or_default().1 += entries.len() as u64;
    }
    let t1 = std::time::Instant::now();
    stores.clickhouse.insert(&rows)?;
    report.seconds.0 += (t1 - t0).as_secs_f64();
    report.seconds.1 += t1.elapsed().as_secs_f64();
    Ok((writes, marker))
}
