//! Where a knowledge base lives, and the operations every place supports: list its
//! KBs, stream its records, summarise, load into, remove. A place is an engine KB
//! file (SQLite, see [`super::engine_file`]), a dump (read only, see [`super::dump`]),
//! or KATO's stores (see [`super::stores`]).
//!
//! Records stream from a reader thread over a bounded channel, so reading (SQLite,
//! JSON parsing, ClickHouse pages) overlaps with writing and memory stays flat.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};

use super::dump::{DumpItem, DumpReader};
use super::engine_file::{read_engine_file, EngineFileWriter};
use super::stats::{KbStats, StatsBuilder};
use super::stores::load::{LoadMode, LoadOptions, LoadRefused, LoadReport};
use super::stores::{StoreUrls, Stores};

/// Records buffered between the reader thread and the writer.
const CHANNEL_DEPTH: usize = 16_384;

/// A place that holds knowledge bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded engine's SQLite file.
    EngineFile(PathBuf),
    /// A `katotune kb dump` file (a source only).
    Dump(PathBuf),
    /// KATO's Redis and ClickHouse.
    Stores(StoreUrls),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::EngineFile(p) => write!(f, "engine KB file {}", p.display()),
            Location::Dump(p) => write!(f, "dump {}", p.display()),
            Location::Stores(u) => write!(
                f,
                "KATO stores (Redis {}, ClickHouse {})",
                super::stores::redacted(&u.redis),
                super::stores::redacted(&u.clickhouse)
            ),
        }
    }
}

/// A stream of records from a reader thread; errors arrive in order.
pub struct ItemStream {
    rx: Receiver<Result<DumpItem>>,
    reader: Option<JoinHandle<()>>,
}

impl Iterator for ItemStream {
    type Item = Result<DumpItem>;
    fn next(&mut self) -> Option<Self::Item> {
        let next = self.rx.recv().ok();
        if next.is_none() {
            if let Some(h) = self.reader.take() {
                let _ = h.join();
            }
        }
        next
    }
}

type Emit<'a> = &'a mut dyn FnMut(DumpItem) -> Result<()>;

fn spawn_reader(read: impl FnOnce(Emit<'_>) -> Result<()> + Send + 'static) -> ItemStream {
    let (tx, rx) = sync_channel(CHANNEL_DEPTH);
    let reader = std::thread::spawn(move || {
        let items = tx.clone();
        let mut emit = |item| {
            items
                .send(Ok(item))
                .map_err(|_| anyhow!("the writer stopped reading"))
        };
        if let Err(e) = read(&mut emit) {
            let _ = tx.send(Err(e));
        }
    });
    ItemStream {
        rx,
        reader: Some(reader),
    }
}

/// KB ids and service name of a source, before its records.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// KATO's `SERVICE_NAME` the KB ids were made with.
    pub service_name: String,
    /// Every KB the source holds, sorted.
    pub kb_ids: Vec<String>,
}

/// KB ids in an engine file (patterns or affinity), sorted.
pub(crate) fn engine_file_kb_ids(path: &Path) -> Result<Vec<String>> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| {
        crate::app::BadInput(format!(
            "{}: cannot open it as an engine KB file ({e}); give the file `katotune run` \
             wrote (stack.kb_file) or `katotune serve --db` uses",
            path.display()
        ))
    })?;
    let has_affinity: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'affinity'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| {
            crate::app::BadInput(format!("{}: not an engine KB file ({e})", path.display()))
        })?;
    let sql = if has_affinity {
        "SELECT kb_id FROM patterns UNION SELECT kb_id FROM affinity ORDER BY 1"
    } else {
        "SELECT DISTINCT kb_id FROM patterns ORDER BY 1"
    };
    let mut stmt = conn.prepare(sql).map_err(|e| {
        crate::app::BadInput(format!("{}: not an engine KB file ({e})", path.display()))
    })?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Opens `loc` as a source: its KBs first, then its records on a reader thread.
pub fn open_source(loc: &Location, service_name: &str) -> Result<(SourceInfo, ItemStream)> {
    match loc {
        Location::Dump(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let reader = DumpReader::new(BufReader::with_capacity(1 << 20, file), path)?;
            let info = SourceInfo {
                service_name: reader.header().service_name.clone(),
                kb_ids: reader.header().kb_ids.clone(),
            };
            let stream = spawn_reader(move |emit| {
                for item in reader {
                    emit(item?)?;
                }
                Ok(())
            });
            Ok((info, stream))
        }
        Location::EngineFile(path) => {
            let kb_ids = engine_file_kb_ids(path)?;
            let path = path.clone();
            let stream = spawn_reader(move |emit| {
                let emit = std::cell::RefCell::new(emit);
                read_engine_file::<anyhow::Error>(
                    &path,
                    |p| (emit.borrow_mut())(DumpItem::Pattern(p)),
                    |a| (emit.borrow_mut())(DumpItem::Affinity(a)),
                )
            });
            let service_name = service_name.to_string();
            Ok((
                SourceInfo {
                    service_name,
                    kb_ids,
                },
                stream,
            ))
        }
        Location::Stores(urls) => {
            let mut stores = Stores::connect(urls)?;
            let kb_ids = stores.kb_ids()?;
            let info = SourceInfo {
                service_name: urls.service_name.clone(),
                kb_ids: kb_ids.clone(),
            };
            let stream = spawn_reader(move |emit| {
                for kb in &kb_ids {
                    stores.read_patterns::<anyhow::Error>(kb, |p| emit(DumpItem::Pattern(p)))?;
                    let mut affinity = Vec::new();
                    stores.read_affinity(kb, |a| affinity.push(a))?;
                    affinity.sort_by(|a, b| a.symbol.cmp(&b.symbol));
                    for a in affinity {
                        emit(DumpItem::Affinity(a))?;
                    }
                }
                Ok(())
            });
            Ok((info, stream))
        }
    }
}

/// `kb status` of every KB in `loc`.
pub fn stats(loc: &Location, service_name: &str) -> Result<Vec<KbStats>> {
    if let Location::Stores(urls) = loc {
        let mut stores = Stores::connect(urls)?;
        let ids = stores.kb_ids()?;
        return ids.iter().map(|kb| Ok(stores.stats(kb)?)).collect();
    }
    let (info, stream) = open_source(loc, service_name)?;
    let mut builders: BTreeMap<String, (StatsBuilder, BTreeSet<String>)> = BTreeMap::new();
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let sorted = matches!(loc, Location::EngineFile(_));
    for kb in &info.kb_ids {
        builders.insert(kb.clone(), (StatsBuilder::new(kb), BTreeSet::new()));
    }
    for item in stream {
        let DumpItem::Pattern(p) = item? else {
            continue;
        };
        let (b, symbols) = builders
            .get_mut(&p.kb_id)
            .ok_or_else(|| anyhow!("{loc}: KB {} was not listed first", p.kb_id))?;
        for s in p.events.iter().flatten() {
            if !symbols.contains(s) {
                symbols.insert(s.clone());
            }
        }
        if sorted {
            b.add(&p.name, p.frequency)?;
        } else {
            counts
                .entry(p.kb_id)
                .or_default()
                .insert(p.name, p.frequency);
        }
    }
    let mut out = Vec::new();
    for (kb, (mut b, symbols)) in builders {
        for (name, f) in counts.remove(&kb).unwrap_or_default() {
            b.add(&name, f)?;
        }
        out.push(b.finish(symbols.len() as u64, None));
    }
    Ok(out)
}

/// Per KB, every pattern name with its frequency (for `kb diff`; names only, not
/// patterns, are held).
pub fn name_counts(
    loc: &Location,
    service_name: &str,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let (info, stream) = open_source(loc, service_name)?;
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = info
        .kb_ids
        .iter()
        .map(|k| (k.clone(), BTreeMap::new()))
        .collect();
    for item in stream {
        if let DumpItem::Pattern(p) = item? {
            out.entry(p.kb_id).or_default().insert(p.name, p.frequency);
        }
    }
    Ok(out)
}

/// Removes `kb_ids` from `loc`; per KB, what was removed in words.
/// Per KB: what was removed, or `None` when the target did not hold it.
pub fn remove(loc: &Location, kb_ids: &[String]) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    match loc {
        Location::Dump(p) => anyhow::bail!(
            "{}: a dump is not changed in place; dump again without those KBs",
            p.display()
        ),
        Location::EngineFile(path) => {
            let mut w = EngineFileWriter::open(path)?;
            for kb in kb_ids {
                let n = w.remove_kb(kb)?;
                let what = (n > 0).then(|| format!("{n} patterns and their affinity"));
                out.push((kb.clone(), what));
            }
            w.finish()?;
        }
        Location::Stores(urls) => {
            let mut stores = Stores::connect(urls)?;
            for kb in kb_ids {
                let (rows, keys) = stores.remove_kb(kb)?;
                let what = (rows + keys > 0).then(|| {
                    format!(
                        "ClickHouse partition '{kb}' ({rows} rows) and {keys} Redis keys {kb}:*"
                    )
                });
                out.push((kb.clone(), what));
            }
        }
    }
    Ok(out)
}

/// Loads `source` into `target`.
pub fn load(
    source: &Location,
    target: &Location,
    service_name: &str,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let (info, stream) = open_source(source, service_name)?;
    match target {
        Location::Dump(p) => anyhow::bail!(
            "{}: a dump is written by `katotune kb dump`, not loaded into",
            p.display()
        ),
        Location::Stores(urls) => {
            if urls.service_name != info.service_name {
                tracing::warn!(
                    "the source's KB ids were made with service name `{}`, the target's is `{}`: \
                     KATO with SERVICE_NAME={} will not see them",
                    info.service_name,
                    urls.service_name,
                    urls.service_name
                );
            }
            let mut stores = Stores::connect(urls)?;
            super::stores::load::load(&mut stores, &info.kb_ids, stream, opts)
        }
        Location::EngineFile(path) => load_engine_file(path, &info, stream, opts),
    }
}

fn load_engine_file(
    path: &Path,
    info: &SourceInfo,
    stream: ItemStream,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    if opts.resume {
        anyhow::bail!(
            "{}: --resume applies to loads into KATO's stores; load into an engine file \
             again with --replace",
            path.display()
        );
    }
    let existing: Vec<String> = if path.exists() {
        engine_file_kb_ids(path)?
    } else {
        Vec::new()
    };
    let mut report = LoadReport::default();
    if opts.mode == LoadMode::Fresh {
        if let Some(kb) = info.kb_ids.iter().find(|k| existing.contains(k)) {
            return Err(LoadRefused::NotEmpty { kb: kb.clone() }.into());
        }
    }
    // A new file is built beside and renamed when complete, so a cut load leaves no
    // half-filled file behind; an existing file is changed in place.
    let fresh_file = !path.exists();
    let partial = path.with_extension("partial.db");
    let write_to = if fresh_file { partial.as_path() } else { path };
    if fresh_file {
        let _ = std::fs::remove_file(&partial);
    }
    let mut w = EngineFileWriter::open(write_to)?;
    if opts.mode == LoadMode::Replace {
        for kb in info.kb_ids.iter().filter(|k| existing.contains(k)) {
            report.removed.insert(kb.clone(), (w.remove_kb(kb)?, 0));
        }
    }
    let merge = opts.mode == LoadMode::Merge;
    let mut written: HashMap<String, (u64, u64)> = HashMap::new();
    for item in stream {
        match item? {
            DumpItem::Pattern(p) => {
                w.add_pattern(&p, merge)?;
                written.entry(p.kb_id).or_default().0 += 1;
            }
            DumpItem::Affinity(a) => {
                w.add_affinity(&a, merge)?;
                written.entry(a.kb_id).or_default().1 += 1;
            }
        }
    }
    w.finish()?;
    if fresh_file {
        std::fs::rename(&partial, path).with_context(|| {
            format!("cannot rename {} to {}", partial.display(), path.display())
        })?;
        for side in ["partial.db-wal", "partial.db-shm"] {
            let _ = std::fs::remove_file(path.with_extension(side));
        }
    }
    report.written = written.into_iter().collect();
    Ok(report)
}
