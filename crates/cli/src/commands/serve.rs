//! `pwsync serve`: the daemon's flags, handed to [`pwsync_daemon::run`].

use anyhow::Result;
use pwsync_config::Config;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// One poll, publish, and exit (for cron, and to check a set-up).
    #[arg(long)]
    pub once: bool,
    /// Remove pwsync's sensors from HA (empty retained configs and states) and exit.
    #[arg(long)]
    pub uninstall: bool,
    /// Seconds between polls (default: mqtt.poll_interval_secs).
    #[arg(long)]
    pub interval: Option<u64>,
}

/// Run the daemon; the panel's jobs run as this program, with the same configuration source.
pub async fn run(
    args: ServeArgs,
    cfg: &Config,
    config: Option<&Path>,
    addon: bool,
) -> Result<ExitCode> {
    let options = pwsync_daemon::Options {
        once: args.once,
        uninstall: args.uninstall,
        interval: args.interval,
    };
    let invocation = pwsync_daemon::Invocation {
        config: config.map(Path::to_path_buf),
        addon,
    };
    pwsync_daemon::run(options, cfg, invocation).await
}
