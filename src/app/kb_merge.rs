//! `katotune kb merge KB... -o OUT`: the reduce step after `run --shard`. Resolves the
//! inputs, refuses what cannot be merged before writing anything, runs the library's
//! merge ([`crate::kb::merge`]) and, when the inputs are every shard of one run, writes
//! the whole run's resume journal beside OUT so `run --resume` can continue it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::kb::resolve;
use super::BadInput;
use crate::cli::{KbMergeArgs, OutputFormat, StoreFlags};
use crate::exit;
use crate::kb::location::{engine_file_kb_ids, Location};
use crate::kb::merge::{
    merge as merge_kbs, DumpSink, EngineFileSink, MergeError, MergeOptions, MergeReport,
};
use crate::kb::sorted_source::{DumpSource, EngineFileSource, SortedSource};
use crate::lock::{lock_path, RunLock};
use crate::train::journal::{Journal, RowLog};

/// Where a merge goes, and what it holds while it runs.
struct Plan {
    inputs: Vec<PathBuf>,
    dumps: Vec<bool>,
    out: PathBuf,
    /// The resume journal that belongs to OUT (an engine file).
    journal: PathBuf,
    _locks: Vec<RunLock>,
}

/// Runs `kb merge`; see the module docs.
pub(super) fn merge(a: KbMergeArgs, format: OutputFormat) -> Result<i32> {
    let plan = plan(&a)?;
    let started = std::time::Instant::now();
    let opts = MergeOptions {
        combine_emotives: a.combine_emotives,
    };
    let report = write(&plan, opts)?;
    let journal = match plan.dumps.iter().any(|d| *d) || is_dump_path(&plan.out) {
        true => Err("dumps carry no resume journal".to_string()),
        false => merged_journal(&plan),
    };
    let seconds = started.elapsed().as_secs_f64();
    if format == OutputFormat::Json {
        let (path, note) = match &journal {
            Ok(p) => (Some(p.display().to_string()), None),
            Err(why) => (None, Some(why.clone())),
        };
        let doc = json!({"output": plan.out.display().to_string(), "inputs": plan.inputs.len(),
            "seconds": seconds, "report": report, "journal": path, "journal_note": note});
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_report(&plan, &report, &journal, seconds);
    }
    Ok(exit::OK)
}

/// The input files, and which of them are dumps.
fn resolve_inputs(words: &[String]) -> Result<(Vec<PathBuf>, Vec<bool>)> {
    let (mut inputs, mut dumps) = (Vec::new(), Vec::new());
    for word in words {
        let (path, dump) = match resolve(Some(word), &StoreFlags::default())?.location {
            Location::EngineFile(p) => (p, false),
            Location::Dump(p) => (p, true),
            Location::Stores(_) => {
                return Err(BadInput(format!(
                    "{word}: its KB is in KATO's stores, which are not read in merge order; \
                     load it into an engine file first (`katotune kb load {word} --into \
                     FILE.kato.db`) and merge that"
                ))
                .into())
            }
        };
        if !path.is_file() {
            return Err(BadInput(format!(
                "{word}: {} is not a file; give engine KB files (`run --shard` writes \
                 <kb>.shard-I-of-N.kato.db), dumps, or profiles whose KB is such a file",
                path.display()
            ))
            .into());
        }
        inputs.push(path);
        dumps.push(dump);
    }
    Ok((inputs, dumps))
}

/// Resolves and checks everything before anything is written.
fn plan(a: &KbMergeArgs) -> Result<Plan> {
    let (inputs, dumps) = resolve_inputs(&a.inputs)?;
    let out = a.output.clone();
    let same = |p: &Path| std::fs::canonicalize(p).ok() == std::fs::canonicalize(&out).ok();
    if let Some(input) = inputs.iter().find(|p| out.exists() && same(p)) {
        return Err(BadInput(format!(
            "-o {} is also an input ({}): the merge writes a new knowledge base; choose another -o",
            out.display(),
            input.display()
        ))
        .into());
    }
    if let Some(dir) = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return Err(BadInput(format!(
            "-o {}: the folder {} does not exist; create it, or write elsewhere",
            out.display(),
            dir.display()
        ))
        .into());
    }
    let journal = PathBuf::from(format!("{}.journal.json", out.display()));
    for existing in [&out, &journal] {
        if existing.exists() && !a.overwrite {
            return Err(MergeError::OutputExists {
                path: existing.clone(),
            }
            .into());
        }
    }
    let mut locks = Vec::new();
    for (path, dump) in inputs.iter().zip(&dumps) {
        if !dump {
            locks.push(RunLock::acquire(&lock_path(path), "knowledge base")?);
        }
    }
    locks.push(RunLock::acquire(&lock_path(&out), "knowledge base")?);
    Ok(Plan {
        inputs,
        dumps,
        out,
        journal,
        _locks: locks,
    })
}

/// Merges into OUT (built beside it, renamed when complete); on an error nothing is
/// left at OUT's name.
fn write(plan: &Plan, opts: MergeOptions) -> Result<MergeReport> {
    let mut sources: Vec<Box<dyn SortedSource>> = Vec::new();
    let (mut service, mut kb_ids) = (None::<String>, Vec::new());
    for (path, dump) in plan.inputs.iter().zip(&plan.dumps) {
        if *dump {
            let source = DumpSource::open(path)?;
            let header = source.header();
            match &service {
                Some(s) if *s != header.service_name => {
                    return Err(BadInput(format!(
                        "{}: its KB ids were made with service name `{}`, another input's with \
                         `{s}`: they are different knowledge bases, so they are not merged",
                        path.display(),
                        header.service_name
                    ))
                    .into())
                }
                _ => service = Some(header.service_name.clone()),
            }
            kb_ids.extend(header.kb_ids.iter().cloned());
            sources.push(Box::new(source));
        } else {
            kb_ids.extend(engine_file_kb_ids(path)?);
            sources.push(Box::new(EngineFileSource::open(path)?));
        }
    }
    kb_ids.sort();
    kb_ids.dedup();
    let names: Vec<String> = plan
        .inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if is_dump_path(&plan.out) {
        let service = service.unwrap_or_else(|| "kato".into());
        let mut sink = DumpSink::create(&plan.out, &service, kb_ids)?;
        match merge_kbs(&mut sources, &names, &mut sink, opts) {
            Ok(report) => sink.finish().map(|()| report).map_err(Into::into),
            Err(e) => {
                sink.discard();
                Err(e.into())
            }
        }
    } else {
        remove_journal(&plan.journal)?;
        let mut sink = EngineFileSink::create(&plan.out)?;
        match merge_kbs(&mut sources, &names, &mut sink, opts) {
            Ok(report) => sink.finish().map(|()| report).map_err(Into::into),
            Err(e) => {
                sink.discard();
                Err(e.into())
            }
        }
    }
}

/// Removes the journal and row log of a KB being replaced (they describe it, not the
/// merge).
fn remove_journal(journal: &Path) -> Result<()> {
    for file in [journal.to_path_buf(), RowLog::path_for(journal)] {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", file.display()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes the whole run's journal beside OUT when the inputs are every shard of one run
/// (see `train::shard::combine_journals`); otherwise says why not.
fn merged_journal(plan: &Plan) -> Result<PathBuf, String> {
    let mut journals = Vec::new();
    for input in &plan.inputs {
        let path = PathBuf::from(format!("{}.journal.json", input.display()));
        match Journal::load(&path) {
            Ok(j) => journals.push(j),
            Err(_) => {
                return Err(format!(
                    "{} has no readable resume journal beside it",
                    input.display()
                ))
            }
        }
    }
    let journal = crate::train::shard::combine_journals(&journals)?;
    journal.save(&plan.journal).map_err(|e| e.to_string())?;
    Ok(plan.journal.clone())
}

fn print_report(
    plan: &Plan,
    report: &MergeReport,
    journal: &Result<PathBuf, String>,
    seconds: f64,
) {
    let kind = if is_dump_path(&plan.out) {
        "dump"
    } else {
        "engine KB file"
    };
    outln!(
        "merged {} inputs into {kind} {} in {seconds:.2} s",
        plan.inputs.len(),
        plan.out.display()
    );
    if report.kbs.is_empty() {
        outln!("  no patterns");
    }
    for kb in &report.kbs {
        outln!(
            "  {}: {} patterns, {} learns ({} patterns in more than one input), digest {}",
            kb.kb_id,
            kb.patterns,
            kb.learns,
            kb.shared,
            kb.digest
        );
    }
    outln!("  {} affinity sums", report.affinity_sums);
    if report.inexact_emotives + report.inexact_sums > 0 {
        outln!(
            "  NOT EXACT: {} patterns' emotive windows and {} affinity sums came from several \
             inputs and were combined in input order (--combine-emotives); frequencies, \
             metadata and digests are exact",
            report.inexact_emotives,
            report.inexact_sums
        );
    }
    match journal {
        Ok(path) => noteln!(
            "resume journal: {} (the whole run's, from its shards); `katotune run PROFILE \
             --resume --set stack.kb_file={}` continues the run on the merged KB",
            path.display(),
            plan.out.display()
        ),
        Err(why) => noteln!("no resume journal beside {}: {why}", plan.out.display()),
    }
}

/// OUT is written as a dump when it ends in `.jsonl`.
fn is_dump_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
}
