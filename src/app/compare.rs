//! `katotune compare` and `katotune report`: hyperfine for KATO training.
//!
//! Every profile trains the same samples (the reference profile's dataset, skip and
//! count), each run on a clean knowledge base: a fresh stack of its own (docker: with
//! its own volumes, removed after the run), or nodes of its own on a stack it does not
//! own (external, `--reuse-stack`), removed after the run; every node's KB is then
//! read back and checked against the client's tally. After `--warmup` whole
//! runs that are not counted, a profile runs until it has at least `--runs` runs
//! (`report.min_runs`, 3) and `--min-time` of measured wall time (`report.min_time`,
//! 3 s), at most `--max-runs`. Exports are rewritten after each profile, so a crash
//! keeps what was done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::measure::{measure_profile, RunContext, RunPlan};
use super::run::{install_ctrl_c, new_run_id};
use super::{load_profile, BadInput, CliResult};
use crate::cli::{ColorChoice, CompareArgs, ExportArgs, GlobalArgs, ReportArgs};
use crate::exit;
use crate::profile::schema::{Backend, ReportFormat};
use crate::profile::Profile;
use crate::report::export::table::TerminalTable;
use crate::report::export::ExportSet;
use crate::report::load::{load_inputs, Inputs};
use crate::report::regression::VerdictStatus;
use crate::report::{Comparison, GateRule, ProfileRuns, ReproMeta, ScanAxis};
use crate::stack::StackGuard;
use crate::train::record::{RunRecord, RunStatus};
use crate::train::runner::{self, now};

/// Parses `10%` or `0.1`.
pub fn parse_threshold(text: &str) -> Result<f64, BadInput> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(BadInput(format!(
            "--threshold `{text}`: write a percentage below 100%, like `10%`"
        ))),
    }
}

/// Parses `95%` or `0.95` (between 50 % and 100 %, both excluded).
pub fn parse_confidence(text: &str) -> Result<f64, BadInput> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(v) if v > 0.5 && v < 1.0 => Ok(v),
        _ => Err(BadInput(format!(
            "--confidence `{text}`: write a percentage between 50% and 100%, like `95%`"
        ))),
    }
}

fn export_set(args: &ExportArgs, defaults: Option<(&Path, &str, &[ReportFormat])>) -> ExportSet {
    let mut set = match defaults {
        Some((dir, stem, formats)) => ExportSet::in_dir(dir, stem, formats),
        None => ExportSet::new(),
    };
    let flags = [
        (ReportFormat::Json, &args.export_json),
        (ReportFormat::Csv, &args.export_csv),
        (ReportFormat::Markdown, &args.export_markdown),
        (ReportFormat::Html, &args.export_html),
    ];
    for (format, path) in flags {
        if let Some(path) = path {
            set.add(format, path.clone());
        }
    }
    set
}

fn load_baseline(path: &Option<PathBuf>) -> CliResult<Option<Comparison>> {
    let Some(path) = path else { return Ok(None) };
    match load_inputs(std::slice::from_ref(path)).map_err(|e| BadInput(e.to_string()))? {
        Inputs::Comparison(c) => Ok(Some(*c)),
        Inputs::Runs(_) => Err(BadInput(format!(
            "--baseline {}: this is a run record; give a comparison saved with --export-json",
            path.display()
        ))
        .into()),
    }
}

/// The samples every profile trains: the reference's dataset, skip and count.
fn align_samples(profiles: &mut [Profile], reference: usize) {
    let r = profiles[reference].training.clone();
    for p in profiles.iter_mut() {
        let t = &mut p.training;
        if t.dataset != r.dataset
            || t.skip != r.skip
            || t.samples != r.samples
            || t.filter != r.filter
        {
            tracing::warn!(
                "{}: training the reference's samples ({} from row {}) so the comparison is fair",
                p.name,
                r.dataset.path.display(),
                r.skip
            );
            t.dataset = r.dataset.clone();
            t.skip = r.skip;
            t.samples = r.samples;
            t.filter = r.filter;
        }
        if p.stack.backend == Backend::Embedded {
            // Every measured run starts from an empty knowledge base.
            p.stack.ephemeral = true;
        }
    }
}

pub async fn compare(args: CompareArgs, global: &GlobalArgs) -> CliResult<i32> {
    let rule = GateRule {
        threshold: parse_threshold(&args.threshold)?,
        confidence: parse_confidence(&args.confidence)?,
    };
    let (mut profiles, mut sources) = (Vec::new(), Vec::new());
    let scan = args
        .scan
        .as_deref()
        .map(super::scan::parse_scan)
        .transpose()?;
    if let Some(spec) = &scan {
        let [name] = args.profiles.as_slice() else {
            return Err(BadInput(format!(
                "--scan runs one profile across values; {} profiles were given",
                args.profiles.len()
            ))
            .into());
        };
        for (p, s) in super::scan::scan_profiles(name, &args.overrides, spec)? {
            profiles.push(p);
            sources.push(s);
        }
    }
    for name in args.profiles.iter().filter(|_| scan.is_none()) {
        let loaded = load_profile(name, &args.overrides)?;
        let origins = crate::profile::explain::explain(&loaded.profile, &loaded.figment);
        sources.push(
            origins
                .into_iter()
                .map(|o| (o.key, o.source))
                .collect::<BTreeMap<_, _>>(),
        );
        profiles.push(loaded.profile);
    }
    let reference = match &args.reference {
        None => 0,
        Some(r) => profiles
            .iter()
            .position(|p| &p.name == r)
            .or_else(|| args.profiles.iter().position(|n| n == r))
            .ok_or_else(|| {
                BadInput(format!(
                    "--reference {r} is not one of the compared profiles"
                ))
            })?,
    };
    align_samples(&mut profiles, reference);
    runner::check_dataset(&super::plan::dataset_spec(&profiles[reference]))
        .map_err(|e| BadInput(e.to_string()))?;
    let baseline = load_baseline(&args.baseline)?;
    let compare_id = new_run_id();
    let out_dir = profiles[reference]
        .report
        .output_dir
        .join(format!("compare-{compare_id}"));
    let formats = profiles[reference].report.formats.clone();
    let exports = export_set(&args.exports, Some((&out_dir, "comparison", &formats)));
    let cancel = CancellationToken::new();
    install_ctrl_c(
        cancel.clone(),
        "finishing in-flight samples, then exporting what was done",
    );
    let shared_stack = args.reuse_stack && profiles.windows(2).all(|w| w[0].stack == w[1].stack);
    if args.reuse_stack && !shared_stack {
        tracing::warn!("--reuse-stack: the profiles' stacks differ, so each gets its own");
    }
    let started_at = now();
    let mut done: Vec<ProfileRuns> = Vec::new();
    let mut comparison = None;
    let mut shared: Option<StackGuard> = None;
    // The exit code of the first run that did not complete.
    let mut stopped: Option<i32> = None;
    let total = profiles.len();
    let load_at_start = crate::report::meta::load_average();
    for (i, profile) in profiles.iter().enumerate() {
        let plan = RunPlan::of(&args, profile);
        let ctx = RunContext {
            label: format!("[{}/{total}] {}", i + 1, profile.name),
            prefix: if profiles[..i].iter().any(|p| p.name == profile.name) {
                format!("{}-{}", profile.name, i + 1)
            } else {
                profile.name.clone()
            },
            out_dir: &out_dir,
            warmup_samples: args.warmup_samples,
            cancel: &cancel,
        };
        let measured =
            measure_profile(profile, &plan, &ctx, shared_stack.then_some(&mut shared)).await;
        let measured = match measured {
            Ok(measured) => measured,
            Err(e) => {
                // A shared stack is taken down on the way out too (`--reuse-stack`).
                if let Some(guard) = shared.take() {
                    guard.finish().await;
                }
                return Err(e);
            }
        };
        let interrupted = measured
            .records
            .iter()
            .find(|r| r.status != RunStatus::Completed);
        let interrupted = interrupted.map(RunRecord::exit_code);
        stopped = stopped.or(interrupted);
        done.push(ProfileRuns {
            profile: profile.clone(),
            records: measured.records,
            kb: measured.kb,
            sources: sources[i].clone(),
            max_runs_reached: measured.max_runs_reached,
        });
        let mut meta = ReproMeta::capture(started_at.clone(), now());
        meta.load_average_at_start = load_at_start;
        let c = Comparison::build_with_rule(
            done.clone(),
            reference.min(done.len() - 1),
            baseline.as_ref(),
            rule,
            meta,
        )
        .with_scan(scan.as_ref().map(|s| ScanAxis {
            setting: s.key.clone(),
            values: s.values.clone(),
        }));
        exports.write(&c)?;
        comparison = Some(c);
        if interrupted.is_some() {
            noteln!(
                "{}: the run did not complete; stopping the comparison",
                profile.name
            );
            break;
        }
    }
    if let Some(handle) = shared {
        handle.finish().await;
    }
    let comparison = comparison.context("no profile was run")?;
    finish(global, &comparison, &exports, args.allow_kb_diff, stopped)
}

/// Prints the table and the verdicts; the exit code says what went wrong first.
fn finish(
    global: &GlobalArgs,
    c: &Comparison,
    exports: &ExportSet,
    allow_kb_diff: bool,
    stopped: Option<i32>,
) -> CliResult<i32> {
    print_comparison(global, c)?;
    for (path_format, path) in exports.targets() {
        noteln!(
            "wrote {}: {}",
            super::output::user_name(path_format),
            path.display()
        );
    }
    if let Some(code) = stopped {
        return Ok(code);
    }
    let regressions = c.regressions();
    for (profile, verdict) in &regressions {
        eprintln!(
            "REGRESSION {}: {}",
            profile.name,
            verdict.reasons.join("; ")
        );
    }
    if !regressions.is_empty() {
        return Ok(exit::REGRESSION);
    }
    if super::output::is_quiet() {
        // A gate that could not judge must not read as a pass in a quiet CI log.
        for p in &c.profiles {
            let Some(v) = &p.verdict else { continue };
            match v.status {
                VerdictStatus::Inconclusive => super::output::alert(format!(
                    "INCONCLUSIVE {}: {}",
                    p.name,
                    v.unjudged.join("; ")
                )),
                VerdictStatus::TooFewRuns => super::output::alert(format!(
                    "NOT TESTED {}: fewer than 2 completed runs on a side",
                    p.name
                )),
                VerdictStatus::NoBaseline => super::output::alert(format!(
                    "NO BASELINE {}: the baseline has no profile of this name",
                    p.name
                )),
                VerdictStatus::Pass | VerdictStatus::Regressed => {}
            }
        }
    }
    let failures = c.correctness_failures();
    for p in &failures {
        if let Some(read) = p
            .correctness
            .read_back
            .as_ref()
            .filter(|_| p.correctness.stores_disagree())
        {
            eprintln!(
                "KB MISMATCH {}: its KB read back {} is not what the server answered ({})",
                p.name,
                read.source.label(),
                read.mismatched_nodes().join(", ")
            );
        }
        if p.correctness.status.is_bad() || !p.correctness.repeats_agree {
            eprintln!(
                "KB DIFFERS {}: it learned a different knowledge base than {}",
                p.name, c.reference
            );
        }
    }
    if !failures.is_empty() && !allow_kb_diff {
        return Ok(exit::KB_MISMATCH);
    }
    if c.profiles.iter().any(|p| p.samples.failed > 0) {
        return Ok(exit::RUN_FAILED);
    }
    if c.profiles.iter().any(|p| p.samples.at_risk > 0) {
        return Ok(exit::SAMPLES_AT_RISK);
    }
    Ok(exit::OK)
}

pub fn report(args: ReportArgs, global: &GlobalArgs) -> CliResult<i32> {
    let comparison = match load_inputs(&args.inputs).map_err(|e| BadInput(e.to_string()))? {
        Inputs::Comparison(c) => *c,
        Inputs::Runs(runs) => {
            let reference = match &args.reference {
                None => 0,
                Some(r) => runs
                    .iter()
                    .position(|p| &p.profile.name == r)
                    .ok_or_else(|| BadInput(format!("--reference {r} is not among the records")))?,
            };
            let meta = ReproMeta::from_records(&runs);
            Comparison::build(runs, reference, None, None, meta)
        }
    };
    let exports = export_set(&args.exports, None);
    exports.write(&comparison)?;
    print_comparison(global, &comparison)?;
    for (path_format, path) in exports.targets() {
        noteln!(
            "wrote {}: {}",
            super::output::user_name(path_format),
            path.display()
        );
    }
    Ok(exit::OK)
}

/// The comparison on standard output: the document of
/// `schema/comparison.schema.json` with `--format json`, else the terminal table
/// (left out with `-q`; the exports still have it).
fn print_comparison(global: &GlobalArgs, c: &Comparison) -> CliResult<()> {
    if global.format == crate::cli::OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(c)?);
    } else if !super::output::is_quiet() {
        let table = TerminalTable {
            colour: colour_on(global),
            width: crate::report::export::table::terminal_width(),
        }
        .render_text(c);
        outln!("{table}");
    }
    Ok(())
}

/// Whether stdout gets colour: `--color`, else a terminal without `NO_COLOR`.
fn colour_on(global: &GlobalArgs) -> bool {
    match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}
