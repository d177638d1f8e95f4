//! The `katotune` binary: parse flags, set up logging, run, map errors to exit codes.

use clap::Parser;
use katotune::app;
use katotune::cli::{Cli, ColorChoice, Command};

/// mimalloc instead of glibc's malloc: training allocates and frees many small strings
/// per token and per pattern, and glibc's consolidation and free-list work took about a
/// fifth of the in-process fast path's time (`perf` on `cargo bench --bench fast_path`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    app::output::set_quiet(cli.global.quiet);
    init_logging(&cli);
    let runtime = match runtime(&cli) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(katotune::exit::RUN_FAILED);
        }
    };
    let code = match runtime.block_on(app::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            // `CliError`'s Display is the whole cause chain, secrets masked.
            eprintln!("error: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}

/// The async runtime; `katotune serve` sizes it by `KATO_WORKERS`, as KATO sizes uvicorn.
fn runtime(cli: &Cli) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(cli.command, Command::Serve(_)) {
        if let Some(n) = std::env::var("KATO_WORKERS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            builder.worker_threads(n.clamp(1, 64));
        }
    }
    builder.build()
}

fn init_logging(cli: &Cli) {
    let ansi = match cli.global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
        }
    };
    let level = app::output::log_level(cli.global.quiet, cli.global.verbose);
    let directives = std::env::var("KATOTUNE_LOG")
        .ok()
        .filter(|d| !d.trim().is_empty());
    let subscriber = app::output::log_subscriber(
        level,
        directives.as_deref(),
        ansi,
        katotune::secret::MaskedStderr,
    );
    // Installed once, before anything logs (with the `log` crate's records routed
    // through it); a second install would be refused, so no event is written twice.
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber);
}
