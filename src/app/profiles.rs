//! `katotune profiles list|show|validate`.

use serde::Serialize;

use super::{load_profile, print_data, CliResult};
use crate::cli::{GlobalArgs, OutputFormat, ProfilesCommand};
use crate::exit;
use crate::profile::{self, explain, load::SHIPPED};

pub fn run(cmd: ProfilesCommand, global: &GlobalArgs) -> CliResult<i32> {
    match cmd {
        ProfilesCommand::List => list(global),
        ProfilesCommand::Show(args) => {
            let loaded = load_profile(&args.profile, &args.overrides)?;
            if args.explain {
                let origins = explain::explain(&loaded.profile, &loaded.figment);
                if global.format == OutputFormat::Json {
                    outln!("{}", serde_json::to_string_pretty(&origins)?);
                } else {
                    let width = origins.iter().map(|o| o.key.len()).max().unwrap_or(0);
                    for o in origins {
                        outln!(
                            "{:width$}  {:<28}  {}",
                            o.key,
                            o.value.to_string(),
                            o.source
                        );
                    }
                }
            } else {
                print_data(&crate::secret::Redacted(&loaded.profile), global)?;
            }
            Ok(exit::OK)
        }
        ProfilesCommand::Validate { profiles } => validate(&profiles, global),
        ProfilesCommand::Knobs => {
            if global.format == OutputFormat::Json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(crate::profile::knobs::KNOBS)?
                );
            } else {
                out!("{}", crate::profile::knobs::markdown_table());
            }
            Ok(exit::OK)
        }
    }
}

#[derive(Serialize)]
struct Entry {
    name: String,
    origin: String,
    description: String,
}

fn list(global: &GlobalArgs) -> CliResult<i32> {
    let mut entries: Vec<Entry> = Vec::new();
    for path in profile::load::local_profile_files() {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Loaded whole, so only a profile that does not load is called unreadable (a
        // description describes its own profile: `inherits` does not pass it on).
        let description = match profile::load(&path.display().to_string(), &[]) {
            Ok(loaded) if loaded.profile.description.is_empty() => "(no description)".into(),
            Ok(loaded) => loaded.profile.description,
            Err(_) => "(unreadable: run `katotune profiles validate` on it)".into(),
        };
        entries.push(Entry {
            name,
            origin: path.display().to_string(),
            description,
        });
    }
    for (name, text) in SHIPPED {
        if entries.iter().any(|e| e.name == *name) {
            continue;
        }
        let description = serde_saphyr::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v.get("description")
                    .and_then(|d| d.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        entries.push(Entry {
            name: name.to_string(),
            origin: "shipped".into(),
            description,
        });
    }
    if global.format == OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(exit::OK);
    }
    let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let owidth = entries.iter().map(|e| e.origin.len()).max().unwrap_or(0);
    for e in entries {
        outln!("{:width$}  {:owidth$}  {}", e.name, e.origin, e.description);
    }
    Ok(exit::OK)
}

/// One profile's verdict, as `profiles validate --format json` prints it
/// (`schema/validation.schema.json`).
#[derive(Serialize)]
struct Verdict {
    profile: String,
    ok: bool,
    /// Each problem, as the text line says it.
    problems: Vec<String>,
    warnings: Vec<String>,
}

fn verdict(name: &str) -> Verdict {
    let mut v = Verdict {
        profile: name.to_string(),
        ok: false,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    match profile::load(name, &[]) {
        Ok(loaded) => {
            match crate::train::runner::check_dataset(&super::plan::dataset_spec(&loaded.profile)) {
                Ok(_) => {
                    v.ok = true;
                    v.warnings = loaded.warnings;
                }
                Err(e) => v.problems.push(format!("training.dataset.path: {e}")),
            }
        }
        Err(e) => v.problems.push(e.to_string()),
    }
    v
}

fn validate(profiles: &[String], global: &GlobalArgs) -> CliResult<i32> {
    let verdicts: Vec<Verdict> = profiles.iter().map(|n| verdict(n)).collect();
    if global.format == OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&verdicts)?);
    } else {
        for v in &verdicts {
            if v.ok {
                outln!("ok    {}", v.profile);
            } else {
                outln!("FAIL  {}: {}", v.profile, v.problems.join("; "));
            }
            for w in &v.warnings {
                outln!("      warning: {w}");
            }
        }
    }
    let failed = verdicts.iter().filter(|v| !v.ok).count();
    if failed > 0 {
        noteln!("{failed} of {} profiles have problems", profiles.len());
        return Ok(exit::BAD_INPUT);
    }
    Ok(exit::OK)
}
