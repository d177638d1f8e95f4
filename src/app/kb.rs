//! `katotune kb ...`: knowledge bases as artifacts. Resolves TARGET words to places
//! ([`Location`]) and prints what the library did; the work runs on a blocking thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::{load_profile, BadInput};
use crate::cli::{
    GlobalArgs, KbCommand, KbDiffArgs, KbDumpArgs, KbLoadArgs, KbResetArgs, KbStatusArgs,
    OutputFormat, ProfileOverrides, StoreFlags,
};
use crate::exit;
use crate::kato::pattern::kb_id;
use crate::kb::dump::{DumpHeader, DumpWriter};
use crate::kb::location::{self, Location};
use crate::kb::stats::KbStats;
use crate::kb::stores::load::{LoadMode, LoadOptions, LoadReport};
use crate::kb::stores::StoreUrls;
use crate::profile::schema::Backend;
use crate::profile::Profile;
use crate::train::record::RunRecord;

/// Runs one `kb` subcommand.
pub async fn run(cmd: KbCommand, global: &GlobalArgs) -> super::error::CliResult<i32> {
    run_kb(cmd, global)
        .await
        .map_err(super::error::CliError::from_kb)
}

async fn run_kb(cmd: KbCommand, global: &GlobalArgs) -> Result<i32> {
    let format = global.format;
    let work = tokio::task::spawn_blocking(move || match cmd {
        KbCommand::Status(a) => status(a, format),
        KbCommand::Dump(a) => dump(a),
        KbCommand::Load(a) => load(a),
        KbCommand::Diff(a) => diff(a, format),
        KbCommand::Reset(a) => reset(a),
        KbCommand::Merge(a) => super::kb_merge::merge(a, format),
    });
    let mut signals = super::run::StopSignals::new();
    tokio::select! {
        done = work => done.context("the kb command's thread failed")?,
        Some(_) = signals.next() => {
            eprintln!(
                "interrupted: a load leaves its marker (see `katotune kb status`); finish it \
                 with `kb load ... --resume`, or redo it with --replace"
            );
            Ok(exit::INTERRUPTED)
        }
    }
}

/// A resolved TARGET: where, with which service name, and the profile if one was named.
pub(super) struct Resolved {
    pub(super) location: Location,
    pub(super) service_name: String,
    pub(super) profile: Option<Profile>,
}

/// The store URLs of a docker profile's running stack.
///
/// The docker backend publishes Redis and ClickHouse on host ports; this is where a
/// stack-aware caller fills them in. Until it does, the user passes them.
pub fn docker_store_urls(profile: &Profile) -> Result<StoreUrls, BadInput> {
    let found =
        tokio::runtime::Handle::current().block_on(crate::stack::stores::stores_of(profile));
    found.map_err(|e| {
        BadInput(format!(
            "profile `{}`: cannot find its docker stack's Redis and ClickHouse ({e}); bring \
             the stack up with `katotune up {}`, or pass --redis URL --clickhouse URL",
            profile.name, profile.name
        ))
    })
}

fn store_urls(flags: &StoreFlags, service_name: &str) -> Result<StoreUrls, BadInput> {
    match (&flags.redis, &flags.clickhouse) {
        (Some(r), Some(c)) => Ok(StoreUrls {
            redis: r.clone(),
            clickhouse: c.clone(),
            service_name: service_name.to_string(),
        }),
        _ => Err(BadInput(
            "no target: name an engine KB file or a profile, or give KATO's stores with both \
             --redis URL and --clickhouse URL"
                .into(),
        )),
    }
}

/// Whether `path` is a dump (starts with `{`) rather than an engine file.
fn is_dump(path: &Path) -> bool {
    use std::io::Read;
    let mut first = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut first))
        .map(|()| first[0] == b'{')
        .unwrap_or(false)
}

fn looks_like_path(word: &str) -> bool {
    word.contains('/')
        || word.ends_with(".db")
        || word.ends_with(".jsonl")
        || word.ends_with(".sqlite")
}

/// Turns a TARGET word (or none) into a place.
pub(super) fn resolve(word: Option<&str>, flags: &StoreFlags) -> Result<Resolved> {
    let flag_service = flags.service_name.clone();
    let service = || flag_service.clone().unwrap_or_else(|| "kato".into());
    let word = match word {
        None | Some("stores") => {
            let urls = store_urls(flags, &service())?;
            return Ok(Resolved {
                service_name: urls.service_name.clone(),
                location: Location::Stores(urls),
                profile: None,
            });
        }
        Some(w) => w,
    };
    let path = PathBuf::from(word);
    let profile_file = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if !profile_file && (path.is_file() || (!path.exists() && looks_like_path(word))) {
        let location = if is_dump(&path) {
            Location::Dump(path)
        } else {
            Location::EngineFile(path)
        };
        return Ok(Resolved {
            location,
            service_name: service(),
            profile: None,
        });
    }
    let loaded = load_profile(word, &ProfileOverrides::default())
        .map_err(super::error::CliError::into_inner)?;
    of_profile(loaded.profile, &format!("profile `{word}`"), flags)
}

/// Where `profile` keeps its KBs (`what` names it in messages: a profile or a record).
fn of_profile(profile: Profile, what: &str, flags: &StoreFlags) -> Result<Resolved> {
    let service_name = flags
        .service_name
        .clone()
        .unwrap_or_else(|| profile.stack.service_name.clone());
    let location = if flags.redis.is_some() || flags.clickhouse.is_some() {
        Location::Stores(store_urls(flags, &service_name)?)
    } else {
        match profile.stack.backend {
            Backend::Embedded => match crate::stack::kb_file(&profile) {
                Some(p) => Location::EngineFile(p),
                None => {
                    return Err(BadInput(format!(
                        "{what} keeps its KB in memory only (stack.ephemeral): \
                         nothing to read; set stack.kb_file"
                    ))
                    .into())
                }
            },
            Backend::Docker => Location::Stores(docker_store_urls(&profile)?),
            Backend::External => {
                return Err(BadInput(format!(
                    "{what} uses an external server whose stores katotune does not \
                     know: for KATO pass --redis URL --clickhouse URL; for `katotune \
                     serve` name its knowledge-base file (`katotune kb status FILE \
                     --record RECORD`, also while it serves)"
                ))
                .into())
            }
        }
    };
    Ok(Resolved {
        location,
        service_name,
        profile: Some(profile),
    })
}

fn status(a: KbStatusArgs, format: OutputFormat) -> Result<i32> {
    let record = a.record.as_deref().map(read_record).transpose()?;
    let no_stores = a.stores.redis.is_none() && a.stores.clickhouse.is_none();
    let r = match (&a.target, &record) {
        (None, Some(rec)) if no_stores => of_record(rec, &a.stores)?,
        _ => resolve(a.target.as_deref(), &a.stores)?,
    };
    let stats = location::stats(&r.location, &r.service_name)?;
    let record = record.map(|rec| record_digests(&rec, &r.service_name));
    let checks: Vec<Option<bool>> = stats
        .iter()
        .map(|s| {
            let rec = record.as_ref()?;
            rec.get(&s.kb_id).map(|d| d == &s.digest)
        })
        .collect();
    let mismatch = record.as_ref().is_some_and(|rec| {
        rec.iter()
            .any(|(kb, d)| !stats.iter().any(|s| &s.kb_id == kb && &s.digest == d))
    });
    let in_use_by = match &r.location {
        Location::EngineFile(file) => crate::lock::live_holder(file),
        _ => None,
    };
    if format == OutputFormat::Json {
        let kbs: Vec<_> = stats
            .iter()
            .zip(&checks)
            .map(|(s, c)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(ok) = c {
                    v["matches_record"] = json!(ok);
                }
                v
            })
            .collect();
        let mut doc = json!({"target": r.location.to_string(), "kbs": kbs});
        if let Some(holder) = &in_use_by {
            doc["in_use_by"] = json!(holder);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_status(&r.location, &stats, &checks, record.as_ref());
        if let Some(holder) = &in_use_by {
            println!(
                "  in use by another katotune process ({holder}): these figures are what it \
                 has committed so far (for a training run, its last checkpoint); what it \
                 learned since is not in the file yet"
            );
        }
    }
    Ok(if mismatch {
        exit::KB_MISMATCH
    } else {
        exit::OK
    })
}

fn print_status(
    loc: &Location,
    stats: &[KbStats],
    checks: &[Option<bool>],
    record: Option<&BTreeMap<String, String>>,
) {
    println!("{loc}");
    if stats.is_empty() {
        println!("  no knowledge bases");
    }
    for (s, check) in stats.iter().zip(checks) {
        println!(
            "  {}: {} patterns, {} learns, {} symbols, digest {}",
            s.kb_id, s.patterns, s.learns, s.symbols, s.digest
        );
        match check {
            Some(true) => println!("    matches the run record"),
            Some(false) => println!("    DIFFERS from the run record"),
            None if record.is_some() => println!("    not in the run record"),
            None => {}
        }
        if let Some(note) = &s.interrupted_load {
            println!("    INTERRUPTED LOAD: {note}");
        }
    }
    for kb in record.into_iter().flat_map(|r| r.keys()) {
        if !stats.iter().any(|s| &s.kb_id == kb) {
            println!("  {kb}: in the run record but not here");
        }
    }
}

/// A run record read from `path`, with the path it came from.
struct RecordFile {
    path: PathBuf,
    record: RunRecord,
}

fn read_record(path: &Path) -> Result<RecordFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the run record {}", path.display()))?;
    let record = serde_json::from_str(&text)
        .map_err(|e| BadInput(format!("{}: not a run record: {e}", path.display())))?;
    Ok(RecordFile {
        path: path.to_path_buf(),
        record,
    })
}

/// The KBs the record's run trained: its resolved profile's KB file or stores. A
/// relative KB file is relative to where the run started, which the record does not
/// keep, so a missing one says how to name it.
fn of_record(rec: &RecordFile, flags: &StoreFlags) -> Result<Resolved> {
    let what = format!("the run record {}", rec.path.display());
    let profile: Profile =
        serde_json::from_value(rec.record.profile.resolved.clone()).map_err(|e| {
            BadInput(format!(
                "{what} holds a resolved profile this katotune cannot read ({e}); pass the KB \
                 as TARGET"
            ))
        })?;
    let r = of_profile(profile, &what, flags)?;
    if let Location::EngineFile(file) = &r.location {
        if !file.is_file() {
            return Err(BadInput(format!(
                "{what} names the KB file {}, which is not there (relative paths are from \
                 the directory the run started in); pass the KB file as TARGET",
                file.display()
            ))
            .into());
        }
    }
    noteln!("reading {}, the KB of {what}", r.location);
    Ok(r)
}

/// KB id to digest from a run record's levels.
fn record_digests(rec: &RecordFile, service_name: &str) -> BTreeMap<String, String> {
    rec.record
        .levels
        .iter()
        .filter(|l| l.kb.distinct > 0)
        .map(|l| (kb_id(&l.node, service_name), l.kb.digest.clone()))
        .collect()
}

fn dump(a: KbDumpArgs) -> Result<i32> {
    let r = resolve(a.target.as_deref(), &a.stores)?;
    let (info, stream) = location::open_source(&r.location, &r.service_name)?;
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(BadInput(format!(
                "-o {}: the folder {} does not exist; create it, or write the dump elsewhere",
                a.output.display(),
                dir.display()
            ))
            .into());
        }
    }
    let partial = partial_path(&a.output);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let header = DumpHeader::new(&info.service_name, info.kb_ids.clone());
    let mut w = DumpWriter::new(out, &a.output, &header)?;
    for item in stream {
        w.write(&item?)?;
    }
    let (patterns, affinity) = w.finish()?;
    std::fs::rename(&partial, &a.output).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            a.output.display()
        )
    })?;
    println!(
        "dumped {patterns} patterns and {affinity} affinity entries of {} KBs from {} to {}",
        info.kb_ids.len(),
        r.location,
        a.output.display()
    );
    Ok(exit::OK)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn load(a: KbLoadArgs) -> Result<i32> {
    // The store flags name the target, unless the source is the word `stores`.
    let source_flags = if a.source == "stores" {
        a.stores.clone()
    } else {
        StoreFlags::default()
    };
    let source = resolve(Some(&a.source), &source_flags)?;
    let mut target_flags = a.stores.clone();
    if target_flags.service_name.is_none() {
        target_flags.service_name = Some(source.service_name.clone());
    }
    let target = resolve(a.into.as_deref(), &target_flags)?;
    let mode = match (a.merge, a.replace) {
        (true, _) => LoadMode::Merge,
        (_, true) => LoadMode::Replace,
        _ => LoadMode::Fresh,
    };
    let opts = LoadOptions {
        mode,
        resume: a.resume,
        allow_eviction: a.allow_eviction,
        batch: a.batch as usize,
        source: source.location.to_string(),
    };
    let started = std::time::Instant::now();
    let report = location::load(
        &source.location,
        &target.location,
        &source.service_name,
        &opts,
    )?;
    print_load(&report, &target.location, started.elapsed().as_secs_f64());
    Ok(exit::OK)
}

fn print_load(report: &LoadReport, target: &Location, seconds: f64) {
    for (kb, (rows, keys)) in &report.removed {
        println!("removed {kb} first: {rows} patterns, {keys} keys");
    }
    let mut total = 0;
    for (kb, (p, a)) in &report.written {
        total += p;
        let resumed = report
            .resumed_after
            .get(kb)
            .filter(|(p, a)| p + a > 0)
            .map(|(p, a)| format!(" (resumed after {p} patterns and {a} affinity entries)"))
            .unwrap_or_default();
        println!("loaded {kb}: {p} patterns, {a} affinity entries{resumed}");
    }
    let rate = if seconds > 0.0 {
        total as f64 / seconds
    } else {
        0.0
    };
    println!("into {target} in {seconds:.2} s ({rate:.0} patterns/s)");
}

fn diff(a: KbDiffArgs, format: OutputFormat) -> Result<i32> {
    let ra = resolve(Some(&a.a), &a.stores)?;
    let rb = resolve(Some(&a.b), &a.stores)?;
    let left = location::name_counts(&ra.location, &ra.service_name)?;
    let right = location::name_counts(&rb.location, &rb.service_name)?;
    let report = crate::kb::diff::compare(&left, &right, a.examples);
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("A = {}\nB = {}", ra.location, rb.location);
        print!("{}", report.text());
    }
    Ok(if report.same() {
        exit::OK
    } else {
        exit::KB_MISMATCH
    })
}

fn reset(a: KbResetArgs) -> Result<i32> {
    let r = resolve(a.target.as_deref(), &a.stores)?;
    let nodes: Vec<String> =
        match (&r.profile, a.nodes.is_empty()) {
            (_, false) => a.nodes.clone(),
            (Some(p), true) => (0..p.training.chunk_sizes.len())
                .map(|l| p.node_id(l))
                .collect(),
            (None, true) => return Err(BadInput(
                "name the nodes to remove with --node N (repeatable); only a profile has defaults"
                    .into(),
            )
            .into()),
        };
    let kbs: Vec<String> = nodes.iter().map(|n| kb_id(n, &r.service_name)).collect();
    for (kb, what) in location::remove(&r.location, &kbs)? {
        match what {
            Some(what) => println!("removed {kb} from {}: {what}", r.location),
            None => println!("{kb} is not in {}: nothing to remove", r.location),
        }
    }
    Ok(exit::OK)
}
