//! pwsync: the binary edge. Parses flags, loads configuration, runs one command, maps the
//! outcome to an exit code. Everything below `commands` is thin; the work lives in the crates.

mod commands;
mod exit;
mod output;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "pwsync",
    version,
    about = "Powerwall-Dashboard InfluxDB → Home Assistant: live sensors, backfill, migration, check and repair",
    propagate_version = true
)]
struct Cli {
    /// Configuration file (default: ./pwsync.toml if present).
    #[arg(long, global = true, env = "PWSYNC_CONFIG")]
    config: Option<PathBuf>,
    /// More detail: -v info (the default of the serve daemon), -vv debug, -vvv trace (logs go to stderr).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Run as a Home Assistant add-on: options from /data/options.json, the broker from the
    /// Supervisor's services API, HA through the Supervisor's proxy (SUPERVISOR_TOKEN).
    #[arg(long, global = true, env = "PWSYNC_ADDON",
          value_parser = clap::builder::BoolishValueParser::new())]
    addon: bool,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon's log is what `docker logs` and the add-on's Log tab show: at its default
    // level it says that it connected, what it published and which jobs ran. `serve --once`
    // (from cron, whose mail is any output) stays quiet but for warnings and errors.
    let daemon = matches!(&cli.command, commands::Command::Serve(a) if !a.once && !a.uninstall);
    if !matches!(&cli.command, commands::Command::Serve(_)) {
        end_quietly_when_stdout_closes();
    }
    init_logging(cli.verbose.max(u8::from(daemon)));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return exit::report(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(commands::run(cli.command, cli.config.as_deref(), cli.addon)) {
        Ok(code) => code,
        Err(e) => exit::report(e),
    }
}

/// A reader that stops early (`pwsync check --json | head`) ends the command as it ends `cat`,
/// instead of a panic at the next `println!`. Only stdout and stderr can raise the signal:
/// socket writes (InfluxDB, HA, the broker, SQL) are sent with MSG_NOSIGNAL on Linux. `serve`
/// keeps Rust's default (ignored): a daemon outlives whoever read its output.
fn end_quietly_when_stdout_closes() {
    // SAFETY: called from `main` before the runtime (or anything else) starts a thread;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PWSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Libraries log what they send and receive at debug and trace: the websocket library the
    // auth frame with HA's token (as hex), HTTP clients headers with basic auth, MQTT the
    // CONNECT packet with its password, sqlx connection details. Only pwsync's own crates
    // log below warn, whatever PWSYNC_LOG or -v ask for.
    let libraries_quiet = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("pwsync", LevelFilter::TRACE);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour())
                .with_target(false)
                .with_filter(filter.and(libraries_quiet)),
        )
        .init();
}

/// Colour only for a person at a terminal who has not asked for none (`NO_COLOR`, no-color.org):
/// escape codes in `docker logs`, journald or a log file are noise.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
