//! `katotune apply|up|down|status|logs|image build`: the docker stack by hand.

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::{load_profile, print_data, run::new_run_id, CliError, CliResult};
use crate::cli::{
    DownArgs, GlobalArgs, ImageBuildArgs, LogsArgs, OutputFormat, StackArgs, StatusArgs,
};
use crate::exit;
use crate::profile::schema::Backend;
use crate::stack::docker::{ContainerChange, DockerBackend};
use crate::stack::{image, probe, stores, template};

fn docker_profile(args: &StackArgs) -> CliResult<crate::profile::Profile> {
    let profile = load_profile(&args.profile, &args.overrides)?.profile;
    if profile.stack.backend != Backend::Docker {
        tracing::warn!(
            "profile {} uses the {:?} backend; applying its docker stack anyway (template {:?})",
            profile.name,
            profile.stack.backend,
            profile.stack.template
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
            docker.wait_healthy(&plan, profile.health.timeout).await?;
            let url = docker.api_endpoint(&plan).await?;
            probe::ready(&url, profile.health.timeout, profile.health.interval).await?;
            println!(
                "{} is ready at {}",
                plan.stack,
                crate::secret::mask_url(&url)
            );
            if stores::has_stores(&plan) {
                let found = stores::of_plan(&docker, &plan).await?;
                println!("  redis: {}", crate::secret::mask_url(&found.redis));
                println!(
                    "  clickhouse: {}",
                    crate::secret::mask_url(&found.clickhouse)
                );
                println!("  service name: {}", found.service_name);
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
        println!("{}: nothing to do, every container is up to date", stack);
    } else {
        for c in &report.containers {
            let what = match c.change {
                ContainerChange::Created => "created",
                ContainerChange::Recreated => "recreated (config changed)",
                ContainerChange::Started => "started",
                ContainerChange::Unchanged => "unchanged",
            };
            println!("{}: {what}", c.name);
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
    for stack in stacks {
        let r = docker.down(&stack, args.volumes).await?;
        if r.containers.is_empty() && r.networks.is_empty() && r.volumes.is_empty() {
            println!("{stack}: nothing to remove");
        } else {
            println!(
                "{stack}: removed {} container(s), {} network(s), {} volume(s)",
                r.containers.len(),
                r.networks.len(),
                r.volumes.len()
            );
        }
    }
    Ok(exit::OK)
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
        println!("no katotune containers");
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
    println!("{table}");
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
            |line| println!("{line}"),
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
    println!(
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
