//! `katotune doctor PROFILE`: verdicts with fixes (see [`crate::stack::doctor`]).

use super::{load_profile, print_data, CliResult};
use crate::cli::{DoctorArgs, GlobalArgs, OutputFormat};
use crate::exit;
use crate::profile::schema::Backend;
use crate::profile::Profile;
use crate::stack::doctor::{self, Level, RunGrowth, Verdict};

pub async fn doctor(args: DoctorArgs, global: &GlobalArgs) -> CliResult<i32> {
    let profile = load_profile(&args.profile, &args.overrides)?.profile;
    let (mut verdicts, growth) = corpus_checks(&profile, args.sample).await?;
    verdicts.extend(doctor::knob_verdicts(&profile));
    if profile.target() == crate::profile::validate::Target::Kato {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        verdicts.extend(doctor::server_verdicts(&profile, cores));
    }
    verdicts.extend(store_checks(&profile, growth).await);
    if global.format == OutputFormat::Json {
        print_data(&verdicts, global)?;
    } else {
        print_verdicts(&profile.name, &verdicts);
    }
    Ok(match verdicts.iter().any(|v| v.level == Level::Fail) {
        true => exit::RUN_FAILED,
        false => exit::OK,
    })
}

/// Level verdicts, and what the whole run will add to Redis (estimated).
async fn corpus_checks(
    profile: &Profile,
    sample: u64,
) -> CliResult<(Vec<Verdict>, Option<RunGrowth>)> {
    let p = profile.clone();
    let est = tokio::task::spawn_blocking(move || {
        doctor::estimate_corpus(&p, &super::plan::dataset_spec(&p), sample)
    })
    .await
    .map_err(anyhow::Error::from)??;
    let mut verdicts = doctor::level_verdicts(profile, &est);
    let (per_sample, observations_per_sample) = match est.sampled {
        0 => (0.0, 0.0),
        n => (
            est.patterns.iter().sum::<u64>() as f64 / n as f64,
            est.observations as f64 / n as f64,
        ),
    };
    let samples = match profile.training.samples {
        Some(n) => n,
        None => {
            let p = profile.clone();
            tokio::task::spawn_blocking(move || {
                doctor::count_samples(&super::plan::dataset_spec(&p))
            })
            .await
            .map_err(anyhow::Error::from)??
        }
    };
    let patterns = (per_sample * samples as f64).ceil() as u64;
    verdicts.push(Verdict {
        level: Level::Ok,
        check: "corpus".into(),
        finding: format!(
            "{samples} samples, about {per_sample:.0} patterns each over all levels (from {} sampled): about {patterns} patterns",
            est.sampled
        ),
        fix: String::new(),
    });
    let growth = RunGrowth {
        kb_bytes: match est.sampled {
            0 => 0,
            n => {
                let per_level: Vec<u64> = est
                    .patterns
                    .iter()
                    .map(|p| (*p as f64 * samples as f64 / n as f64).ceil() as u64)
                    .collect();
                doctor::redis_kb_bytes(&per_level)
            }
        },
        observations: (observations_per_sample * samples as f64).ceil() as u64,
    };
    Ok((verdicts, Some(growth)))
}

async fn store_checks(profile: &Profile, growth: Option<RunGrowth>) -> Vec<Verdict> {
    if profile.stack.backend != Backend::Docker {
        return vec![];
    }
    match crate::stack::stores_of(profile).await {
        Ok(found) => {
            let urls = found.for_kb();
            tokio::task::spawn_blocking(move || doctor::store_verdicts(&urls, growth))
                .await
                .unwrap_or_default()
        }
        Err(crate::stack::StackError::NoStores { .. }) => vec![],
        Err(e) => vec![Verdict {
            level: Level::Warn,
            check: "stores".into(),
            finding: format!("the stack's stores were not checked: {e}"),
            fix: "bring the stack up with `katotune up PROFILE` and run doctor again".into(),
        }],
    }
}

fn print_verdicts(name: &str, verdicts: &[Verdict]) {
    println!("doctor {name}:");
    for v in verdicts {
        let tag = match v.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{tag} {}: {}", v.check, v.finding);
        if !v.fix.is_empty() {
            println!("     fix: {}", v.fix);
        }
    }
}
