//! `katotune apply|up|down|status|logs|image build`: the docker stack by hand.

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::{load_profile, print_data, run::new_run_id, CliError, CliResult};
use crate::cli::{
    DownArgs, GlobalArgs, ImageBuildArgs, LogsArgs, OutputFormat, StackArgs, StatusArgs,
};
use crate::exit;
use crate::profile::schema::Backend;
use crate::stack::docker::{describe_times, DockerBackend};
use crate::stack::{image, stores, template};

fn docker_profile(args: &StackArgs) -> CliResult<crate::profile::Profile> {
    let profile = load_profile(&args.profile, &args.overrides)?.profile;
    if profile.stack.backend != Backend::Docker {
        tracing::warn!(
            "profile {} uses the {} backend; applying its docker stack anyway (template {})",
            profile.name,
            super::output::user_name(&profile.stack.backend),
            super::output::user_name(&profile.stack.template)
        );
    }
    Ok(profile)
}

pub async fn apply(args: StackArgs, wait: bool) -> CliResult<i32> {
    let profile = docker_profile(&args)?;
    let run_id = new_run_id();
    let plan = template::render(&profile, &run_id)?;
    let docker = DockerBackend::connect().await?;
    let existed = !docker.status(Some(&plan.stack)).await?.is_empty();
    let cancel = tokio_util::sync::CancellationToken::new();
    super::run::install_ctrl_c(cancel.clone(), "removing what this invocation created");
    let work = async {
        let report = docker.apply(&plan, &run_id).await?;
        report_changes(&plan.stack, &report);
        if wait {
            let times = docker.wait_healthy(&plan, profile.health.timeout).await?;
            let urls = docker.api_endpoints(&plan).await?;
            let probe_started = std::time::Instant::now();
            crate::stack::guard::ready_everywhere(&urls, &profile).await?;
            let shown: Vec<String> = urls.iter().map(|u| crate::secret::mask_url(u)).collect();
            outln!("{} is ready at {}", plan.stack, shown.join(", "));
            outln!(
                "  ready after: {}; probe {:.1} s",
                describe_times(&times, &report),
                probe_started.elapsed().as_secs_f64()
            );
            if stores::has_stores(&plan) {
                let found = stores::of_plan(&docker, &plan).await?;
                outln!("  redis: {}", crate::secret::mask_url(&found.redis));
                outln!(
                    "  clickhouse: {}",
                    crate::secret::mask_url(&found.clickhouse)
                );
                outln!("  service name: {}", found.service_name);
                // What readiness probes left is removed; stores that disagree are
                // reported with the fix (the stack stays up). The data on the
                // profile's nodes is `run`'s business, so nothing else is checked.
                crate::stack::guard_stores(&profile, &found, crate::stack::KbStart::Continue)
                    .await?;
            }
        }
        Ok::<(), CliError>(())
    };
    tokio::select! {
        result = work => result.map(|()| exit::OK),
        _ = cancel.cancelled() => {
            if !existed && !args.keep {
                docker.down(&plan.stack, false).await?;
                eprintln!("interrupted: removed {}, which this invocation had started to create", plan.stack);
            }
            Ok(exit::INTERRUPTED)
        }
    }
}

fn report_changes(stack: &str, report: &crate::stack::docker::ApplyReport) {
    if report.is_unchanged() {
        outln!("{}: nothing to do, every container is up to date", stack);
    } else {
        for c in &report.containers {
            outln!("{}: {}", c.name, c.change.words());
        }
        for name in &report.replicas_removed {
            outln!("{name}: removed (stack.replicas is lower now)");
        }
    }
}

pub async fn down(args: DownArgs) -> CliResult<i32> {
    let docker = DockerBackend::connect().await?;
    let stacks: Vec<String> = match (&args.profile, &args.stack, args.all) {
        (Some(p), _, _) => {
            let profile = load_profile(p, &Default::default())?.profile;
            vec![template::stack_name(&profile)]
        }
        (_, Some(s), _) => vec![s.clone()],
        _ => {
            let mut all: Vec<String> = docker
                .status(None)
                .await?
                .into_iter()
                .map(|c| c.stack)
                .collect();
            all.sort();
            all.dedup();
            all
        }
    };
    if stacks.is_empty() {
        println!("no katotune stack has containers on this Docker engine: nothing to remove");
        return Ok(exit::OK);
    }
    let mut plans = Vec::new();
    for stack in &stacks {
        plans.push(docker.plan_down(stack).await?);
    }
    for plan in &plans {
        print_down_plan(plan, args.volumes);
    }
    if args.all && !args.yes && plans.iter().any(|p| !p.containers.is_empty()) {
        confirm_all(plans.len())?;
    }
    for plan in &plans {
        if plan.containers.is_empty() && plan.networks.is_empty() && plan.volumes.is_empty() {
            continue;
        }
        let r = docker.execute_down(plan, args.volumes).await?;
        println!(
            "{}: removed {} container(s), {} network(s), {} volume(s)",
            plan.stack,
            r.containers.len(),
            r.networks.len(),
            r.volumes.len()
        );
    }
    Ok(exit::OK)
}

/// `STACK: removes containers a, b; network n; keeps volumes v (...)`, and what is
/// left alone because katotune did not record creating it.
fn print_down_plan(plan: &crate::stack::docker::DownPlan, volumes: bool) {
    if plan.is_empty() {
        println!("{}: nothing to remove", plan.stack);
        return;
    }
    let names: Vec<&str> = plan.containers.iter().map(|(n, _)| n.as_str()).collect();
    let mut parts = vec![format!("containers {}", list(&names))];
    if plan.strangers.is_empty() {
        parts.push(format!("network {}", list(&plan.networks)));
    }
    match volumes {
        true => parts.push(format!("volumes {}", list(&plan.volumes))),
        false if !plan.volumes.is_empty() => parts.push(format!(
            "keeps volumes {} (their data; --volumes removes them)",
            list(&plan.volumes)
        )),
        false => {}
    }
    println!("{}: removes {}", plan.stack, parts.join("; "));
    if !plan.strangers.is_empty() {
        println!(
            "{}: leaves alone {}: labelled for this stack, but katotune has no record of \
             creating them here ({}); remove them with `docker rm -f` / `docker volume rm` \
             if they are yours",
            plan.stack,
            plan.strangers.join(", "),
            crate::stack::docker::record::state_dir().display()
        );
    }
}

fn list<S: AsRef<str>>(names: &[S]) -> String {
    match names.is_empty() {
        true => "(none)".into(),
        false => names
            .iter()
            .map(|n| n.as_ref())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `down --all` asks on a terminal, and needs `--yes` without one.
fn confirm_all(stacks: usize) -> CliResult<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(super::BadInput(format!(
            "down --all would remove the {stacks} stack(s) listed above; pass --yes to do it \
             without a terminal"
        ))
        .into());
    }
    print!("remove the {stacks} stack(s) listed above? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes") {
        true => Ok(()),
        false => Err(super::BadInput("down --all: nothing removed (not confirmed)".into()).into()),
    }
}

pub async fn status(args: StatusArgs, global: &GlobalArgs) -> CliResult<i32> {
    let stack = match &args.profile {
        Some(p) => Some(template::stack_name(
            &load_profile(p, &Default::default())?.profile,
        )),
        None => None,
    };
    let docker = DockerBackend::connect().await?;
    let containers = docker.status(stack.as_deref()).await?;
    if global.format == OutputFormat::Json {
        print_data(&containers, global)?;
        return Ok(exit::OK);
    }
    if containers.is_empty() {
        outln!("no katotune containers");
        return Ok(exit::OK);
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header([
        "stack", "service", "state", "health", "ports", "run id", "image",
    ]);
    for c in containers {
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}", p.host_ip, p.host, p.container))
            .collect();
        table.add_row([
            c.stack,
            c.service,
            c.state,
            c.health.unwrap_or_else(|| "-".into()),
            ports.join(" "),
            c.run_id,
            c.image,
        ]);
    }
    outln!("{table}");
    Ok(exit::OK)
}

pub async fn logs(args: LogsArgs) -> CliResult<i32> {
    let profile = load_profile(&args.profile, &Default::default())?.profile;
    let docker = DockerBackend::connect().await?;
    docker
        .logs(
            &template::stack_name(&profile),
            args.tail,
            args.follow,
            |line| outln!("{line}"),
        )
        .await?;
    Ok(exit::OK)
}

pub async fn image_build(args: ImageBuildArgs) -> CliResult<i32> {
    let binary = match args.binary {
        Some(b) => b,
        None => static_binary()?,
    };
    let docker = DockerBackend::connect().await?;
    let info = image::build_engine_image(docker.docker(), &binary, &args.tag).await?;
    outln!(
        "built {} ({}, {} bytes) from {}",
        info.tag,
        info.id,
        info.size_bytes,
        binary.display()
    );
    Ok(exit::OK)
}

/// This binary when it is static; otherwise a static build from the checkout.
fn static_binary() -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe().context("cannot find the running katotune binary")?;
    if std::fs::read(&me).is_ok_and(|b| image::is_static_executable(&b)) {
        return Ok(me);
    }
    let target = std::path::PathBuf::from("target/static");
    eprintln!(
        "building a static katotune (a few minutes): {}",
        image::static_build_command_line()
    );
    let status = image::static_binary_build_command(&target)
        .status()
        .context("cannot run cargo; pass --binary with a static katotune build")?;
    if !status.success() {
        anyhow::bail!("the static build failed; pass --binary with a static katotune build");
    }
    Ok(image::static_binary_path(&target))
}
