//! Carrying out commands: each subcommand is one function returning an exit code.

/// `println!` through the output layer: data on standard output, secrets masked,
/// a closed pipe ending the command quietly ([`output::data`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::app::output::data(format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through the output layer ([`output::data`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::app::output::data(format_args!($($arg)*))
    };
}

/// `eprintln!` for remarks: silenced by `-q`, secrets masked ([`output::note`]).
macro_rules! noteln {
    ($($arg:tt)*) => {
        $crate::app::output::note(format_args!($($arg)*))
    };
}

mod compare;
mod deliver;
mod doctor;
mod error;
pub mod kb;
mod kb_merge;
mod measure;
mod measured_run;
pub mod output;
pub mod plan;
mod profiles;
mod render;
pub mod run;
mod scan;
mod shard;
mod stack;

use serde_json::Value;

pub use error::{CliError, CliResult, Failure};

use crate::cli::{Cli, Command, HealthArgs, ProfileOverrides};
use crate::exit;
use crate::profile::{self, FlagOverride};

/// Runs the parsed command line; the error (if any) carries its exit code
/// ([`CliError::exit_code`]).
pub async fn run(cli: Cli) -> CliResult<i32> {
    match cli.command {
        Command::Profiles(cmd) => profiles::run(cmd, &cli.global),
        Command::Render(args) => render::render(args, &cli.global),
        Command::Health(args) => health(args).await,
        Command::Run(args) => run::run(args, &cli.global).await,
        Command::Compare(args) => compare::compare(*args, &cli.global).await,
        Command::Report(args) => compare::report(args, &cli.global),
        Command::Apply(args) => stack::apply(args, false).await,
        Command::Up(args) => stack::apply(args, true).await,
        Command::Down(args) => stack::down(args).await,
        Command::Doctor(args) => doctor::doctor(args, &cli.global).await,
        Command::Status(args) => stack::status(args, &cli.global).await,
        Command::Logs(args) => stack::logs(args).await,
        Command::Image(crate::cli::ImageCommand::Build(args)) => stack::image_build(args).await,
        Command::Serve(args) => run::serve(args).await,
        Command::Kb(cmd) => kb::run(cmd, &cli.global).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "katotune", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(exit::OK)
        }
    }
}

/// A command-line value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Turns override flags into figment layers (highest precedence).
pub fn flag_overrides(o: &ProfileOverrides) -> Result<Vec<FlagOverride>, BadInput> {
    let mut out = Vec::new();
    let mut push = |flag: &str, path: &str, value: Value| {
        out.push(FlagOverride {
            flag: flag.into(),
            path: path.into(),
            value,
        })
    };
    if let Some(b) = &o.backend {
        push("--backend", "stack.backend", Value::from(b.clone()));
    }
    match o.samples {
        Some(crate::cli::SampleCount::Count(n)) => {
            push("--samples", "training.samples", Value::from(n))
        }
        Some(crate::cli::SampleCount::All) => push("--samples", "training.samples", "all".into()),
        None => {}
    }
    if let Some(v) = o.skip {
        push("--skip", "training.skip", Value::from(v));
    }
    if let Some(v) = o.workers {
        push("--workers", "training.workers", Value::from(v));
    }
    if let Some(v) = o.node0_batch {
        push("--node0-batch", "training.node0_batch", Value::from(v));
    }
    for item in &o.set {
        let (key, raw) = item.split_once('=').ok_or_else(|| {
            BadInput(format!(
                "--set `{item}`: write it as KEY=VALUE, e.g. training.workers=4"
            ))
        })?;
        let key = key.trim();
        if raw.trim().is_empty() {
            return Err(BadInput(format!(
                "--set {key}= has no value; write one after `=` (e.g. --set {key}=VALUE), or leave the flag out to keep the profile's value"
            )));
        }
        let value: Value = if profile::is_text_key(key) {
            Value::String(raw.to_string())
        } else {
            serde_saphyr::from_str(raw).map_err(|e| {
                BadInput(format!("--set {key}: `{raw}` is not a YAML value: {e}; quote text that holds `:` or `#`"))
            })?
        };
        push(&format!("--set {key}"), key, value);
    }
    Ok(out)
}

/// Loads a profile with overrides and prints its warnings once.
pub fn load_profile(name: &str, overrides: &ProfileOverrides) -> CliResult<profile::Loaded> {
    let flags = flag_overrides(overrides)?;
    let loaded = profile::load(name, &flags)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded)
}

/// Prints a data document as YAML (text) or JSON.
pub fn print_data(doc: &impl serde::Serialize, global: &crate::cli::GlobalArgs) -> CliResult<()> {
    match global.format {
        crate::cli::OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(doc)?),
        crate::cli::OutputFormat::Text => out!(
            "{}",
            serde_saphyr::to_string(doc).map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))?
        ),
    }
    Ok(())
}

async fn health(args: HealthArgs) -> CliResult<i32> {
    let timeout = profile::duration::parse(&args.timeout).map_err(BadInput)?;
    let client = crate::stack::probe::check_client(&args.url, timeout)?;
    let body = client.health().await?;
    outln!(
        "{} ({})",
        body.status,
        crate::secret::mask_url(client.base_url())
    );
    Ok(exit::OK)
}
