//! `katotune run` and `katotune serve`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{load_profile, BadInput, CliError, CliResult};
use crate::cli::{RunArgs, ServeArgs};
use crate::exit;
use crate::profile::Profile;
use crate::secret::Redacted;
use crate::stack::{self, KbStart, StackGuard};
use crate::train::plan::TrainPlan;
use crate::train::record::RunRecord;
use crate::train::runner::{self, RunOptions};
use crate::train::shard::Shard;

/// A fresh run id: UTC time plus a random suffix.
pub fn new_run_id() -> String {
    format!(
        "{}-{:04x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    )
}

/// Where a profile's resume journal lives.
///
/// A journal belongs to one knowledge base: with `stack.kb_file` set it sits beside
/// that file (`<kb_file>.journal.json`), so a resume never continues one KB with
/// another's progress (which would skip samples or learn them twice); otherwise it is
/// `<report.output_dir>/<profile>.journal.json`, beside the default KB file. A shard
/// (`run --shard`, whose KB file is already the shard's) keeps its journal beside its
/// KB file, or, in memory, at the whole run's journal with `.shard-I-of-N` put in.
pub fn journal_path(profile: &Profile, shard: Option<Shard>) -> PathBuf {
    match &profile.stack.kb_file {
        Some(file) if !profile.stack.ephemeral => {
            let mut name = file.file_name().unwrap_or_default().to_os_string();
            name.push(".journal.json");
            file.with_file_name(name)
        }
        _ => {
            let path = (profile.report.output_dir).join(format!("{}.journal.json", profile.name));
            shard.map_or_else(|| path.clone(), |s| s.suffixed(&path))
        }
    }
}

/// Writes the run's report in every `report.formats` besides JSON (the record is
/// the JSON), next to the record with the same name: `quick-<run id>.csv`...
fn write_report_formats(profile: &Profile, record: &std::path::Path) -> CliResult<()> {
    use crate::profile::schema::ReportFormat;
    use crate::report::load::{load_inputs, Inputs};
    let others: Vec<ReportFormat> = (profile.report.formats.iter())
        .copied()
        .filter(|f| *f != ReportFormat::Json)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let Inputs::Runs(runs) = load_inputs(&[record]).map_err(|e| BadInput(e.to_string()))? else {
        return Ok(());
    };
    let meta = crate::report::ReproMeta::from_records(&runs);
    let comparison = crate::report::Comparison::build(runs, 0, None, None, meta);
    let dir = record.parent().unwrap_or(std::path::Path::new("."));
    let stem = record.file_stem().unwrap_or_default().to_string_lossy();
    let exports = crate::report::export::ExportSet::in_dir(dir, &stem, &others);
    exports.write(&comparison)?;
    for (format, path) in exports.targets() {
        noteln!(
            "wrote {}: {}",
            super::output::user_name(format),
            path.display()
        );
    }
    Ok(())
}

/// Before anything starts, for `--resume`: refuses a knowledge base that did not
/// outlive the last run (in memory), and says when the journal's run already
/// finished (`Some(message)`), so nothing is started for nothing.
fn nothing_to_resume(profile: &Profile, shard: Option<Shard>) -> CliResult<Option<String>> {
    let s = &profile.stack;
    if s.ephemeral && s.backend == crate::profile::schema::Backend::Embedded {
        return Err(CliError::bad_input(
            "--resume needs the knowledge base of the run it continues, but this profile keeps it in memory (stack.ephemeral: true), so it is gone; set stack.ephemeral=false (and stack.kb_file) for runs you want to resume, or run without --resume",
        ));
    }
    let path = journal_path(profile, shard);
    let journal = match crate::train::journal::Journal::load(&path) {
        Ok(journal) => journal,
        // No journal yet: the run resumes from its row log, or says there is nothing.
        Err(crate::train::journal::JournalError::Missing { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // A journal of other settings or another dataset is refused here as the run would
    // refuse it, never read as "already finished".
    let mut dataset = crate::train::dataset::Dataset::open(&super::plan::dataset_spec(profile))?;
    journal.check(&path, &profile.learning_hash(), &dataset.identity(), shard)?;
    if let Some(cap) = plan_target(profile, shard).filter(|cap| journal.samples_done >= *cap) {
        let cap = match shard {
            Some(s) => format!("shard {s}'s share of the training.samples cap ({cap})"),
            None => format!("the training.samples cap ({cap})"),
        };
        return Ok(Some(format!(
            "nothing to resume: the run in {} already trained {} samples, {cap}; raise it (--samples N or all) to train more",
            path.display(),
            journal.samples_done
        )));
    }
    let skipped = dataset.skip_rows(journal.next_row)?;
    if skipped < journal.next_row || dataset.next().is_none() {
        return Ok(Some(format!(
            "nothing to resume: the run in {} already read the whole dataset ({} samples trained)",
            path.display(),
            journal.samples_done
        )));
    }
    Ok(None)
}

/// Cancels `token` on the first Ctrl-C or SIGTERM (saying `stopping`) and exits at
/// once on the second.
pub fn install_ctrl_c(token: CancellationToken, stopping: &'static str) {
    tokio::spawn(async move {
        let mut signals = StopSignals::new();
        if let Some(name) = signals.next().await {
            eprintln!("\nstopping on {name}: {stopping} (Ctrl-C again to quit at once)");
            token.cancel();
            if signals.next().await.is_some() {
                eprintln!("quitting at once");
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
}

/// The signals that ask katotune to stop: Ctrl-C (SIGINT) and SIGTERM, what `kill`,
/// `docker stop` and Kubernetes send before they kill. Both stop the same way.
pub struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Listens from now on (SIGTERM's default, dying at once, is replaced).
    pub fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| tracing::warn!("cannot listen for SIGTERM: {e}"))
                .ok(),
        }
    }

    /// The next stop signal's name; `None` when none can be received.
    pub async fn next(&mut self) -> Option<&'static str> {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            return tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|()| "Ctrl-C"),
                r = term.recv() => r.map(|()| "SIGTERM"),
            };
        }
        tokio::signal::ctrl_c().await.ok().map(|()| "Ctrl-C")
    }
}

impl Default for StopSignals {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn run(args: RunArgs, global: &crate::cli::GlobalArgs) -> CliResult<i32> {
    let mut overrides = args.overrides.clone();
    if let Some(policy) = &args.on_bad_sample {
        overrides
            .set
            .push(format!("training.on_bad_sample={policy}"));
    }
    let loaded = load_profile(&args.profile, &overrides)?;
    let cap_source = loaded
        .figment
        .find_metadata("training.samples")
        .map(|m| crate::profile::explain::describe_source(m, &["training", "samples"]));
    let mut profile = loaded.profile;
    let into = args.into.clone().or_else(|| profile.deliver.into.clone());
    if let Some(shard) = args.shard {
        if args.resume {
            super::shard::refuse_other_spec(&profile, Some(shard))?;
        }
        super::shard::apply(&mut profile, shard, into.as_deref())?;
    } else if args.resume {
        super::shard::refuse_other_spec(&profile, None)?;
    }
    if let Some(into) = into {
        profile.deliver.finalize |= args.finalize;
        return super::deliver::run_into(args, profile, &into, global).await;
    }
    let cancel = CancellationToken::new();
    install_ctrl_c(cancel.clone(), "finishing in-flight samples");
    let kb = match (args.resume, args.fresh) {
        (true, _) => KbStart::Continue,
        (_, true) => KbStart::Replace,
        _ => KbStart::RequireEmpty,
    };
    if args.resume {
        if let Some(done) = nothing_to_resume(&profile, args.shard)? {
            noteln!("{done}");
            return Ok(exit::OK);
        }
    }
    let run_id = new_run_id();
    let shard = args.shard;
    let record = train_once(&profile, shard, kb, &run_id, args.resume, args.keep, cancel).await?;
    let path = (args.record).unwrap_or_else(|| super::shard::record_path(&profile, shard, &run_id));
    write_record(&record, &path)?;
    write_report_formats(&profile, &path)?;
    if global.format == crate::cli::OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&Redacted(&record))?);
    }
    match record.needs_attention() {
        // A run that stopped or trained nothing says why even under -q.
        true => super::output::alert(record.summary().trim_end()),
        false => noteln!("{}", record.summary().trim_end()),
    }
    noteln!("run record: {}", path.display());
    if let (Some(cap), Some(share)) = (profile.training.samples, plan_target(&profile, shard)) {
        if record.samples.done >= share
            && record.status == crate::train::record::RunStatus::Completed
        {
            noteln!(
                "stopped at the sample cap: training.samples = {cap} (set by {}); --samples all trains every sample",
                cap_source.as_deref().unwrap_or("default")
            );
        }
    }
    Ok(record.exit_code())
}

/// The samples a run of `profile` (or of one shard of it) trains over all its resumes.
fn plan_target(profile: &Profile, shard: Option<Shard>) -> Option<u64> {
    TrainPlan::from(profile).with_shard(shard).sample_target()
}

/// Brings the stack up, waits until ready, trains (all of `profile`, or one shard of
/// it), and takes the stack down.
pub async fn train_once(
    profile: &Profile,
    shard: Option<Shard>,
    kb: KbStart,
    run_id: &str,
    resume: bool,
    keep: bool,
    cancel: CancellationToken,
) -> CliResult<RunRecord> {
    let plan = TrainPlan::from(profile).with_shard(shard);
    for note in runner::check_dataset(&plan.dataset).map_err(|e| BadInput(e.to_string()))? {
        super::output::note(note);
    }
    // One live run per journal (and, taken by the stack, per knowledge base).
    let journal = journal_path(profile, shard);
    let _lock = crate::lock::RunLock::acquire(&crate::lock::lock_path(&journal), "resume journal")?;
    refuse_unresumable_kb(profile, kb, &journal)?;
    let stack = StackGuard::up(profile, kb, run_id, keep, &cancel).await?;
    let target = stack.target();
    let opts = RunOptions {
        run_id: run_id.to_string(),
        resume,
        journal_path: journal_path(profile, shard),
        cancel,
        drain_deadline: Duration::from_secs(30),
        progress_bar: std::io::stderr().is_terminal(),
        // The record's digests come from the KB itself: no name tally grows with it.
        digests_from_kb: true,
    };
    Ok(stack.scope(runner::run(&plan, &target, &opts)).await?)
}

/// A KB that holds data but has neither journal nor row log cannot be resumed: say so
/// here, so `run` never advises a `--resume` that would then find nothing.
fn refuse_unresumable_kb(
    profile: &Profile,
    kb: KbStart,
    journal: &std::path::Path,
) -> CliResult<()> {
    let Some(file) = stack::kb_file(profile) else {
        return Ok(());
    };
    let holds_data = crate::kb::engine_file::holds_knowledge(&file);
    let log = crate::train::journal::RowLog::path_for(journal);
    let resumable = journal.exists() || std::fs::metadata(&log).is_ok_and(|m| m.len() > 0);
    if kb == KbStart::RequireEmpty
        && holds_data
        && !resumable
        && profile.stack.backend == crate::profile::schema::Backend::Embedded
    {
        return Err(BadInput(format!(
            "{} already holds a knowledge base, but there is no resume journal ({}) or row log \
             for it, so it cannot be continued; replace it with --fresh, or set stack.kb_file / \
             stack.ephemeral",
            file.display(),
            journal.display()
        ))
        .into());
    }
    Ok(())
}

/// Writes a run record atomically, its secrets masked.
pub fn write_record(record: &RunRecord, path: &std::path::Path) -> CliResult<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&Redacted(record))?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub async fn serve(args: ServeArgs) -> CliResult<i32> {
    let mut config = crate::engine::EngineConfig::from_env()?;
    let host: std::net::IpAddr = args
        .host
        .parse()
        .map_err(|_| BadInput(format!("--host `{}` is not an IP address", args.host)))?;
    config.bind = std::net::SocketAddr::new(host, args.port);
    config.db_path = if args.ephemeral {
        None
    } else {
        args.db.clone().or(config.db_path)
    };
    let store = config
        .db_path
        .as_ref()
        .map_or("in memory (ephemeral)".to_string(), |p| {
            p.display().to_string()
        });
    let cancel = CancellationToken::new();
    install_ctrl_c(cancel.clone(), "flushing the knowledge base");
    let engine = crate::engine::start(config).await?;
    eprintln!(
        "katotune engine listening on {} (knowledge base: {store})",
        engine.url()
    );
    // Ctrl-C or SIGTERM (`docker stop`) cancels; the engine then writes what it holds.
    cancel.cancelled().await;
    engine.shutdown().await;
    Ok(exit::OK)
}
