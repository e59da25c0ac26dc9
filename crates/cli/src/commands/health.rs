//! `pwsync health`: exit 0 while `serve` publishes, 1 when its last successful poll is stale
//! (the container image's HEALTHCHECK; see [`pwsync_daemon::heartbeat`]).

use anyhow::{bail, Context, Result};
use pwsync_daemon::heartbeat::{self, Heartbeat};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// The most seconds since `serve`'s last successful poll (default: 3 polls + 30 s).
    #[arg(long)]
    pub max_age: Option<u64>,
    /// `serve`'s state directory (default: PWSYNC_STATE_DIR, STATE_DIRECTORY, ~/.local/state/pwsync).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

pub fn run(args: HealthArgs) -> Result<ExitCode> {
    let dir = args
        .state_dir
        .or_else(heartbeat::state_dir)
        .context("no state directory: set PWSYNC_STATE_DIR to serve's")?;
    let beat = heartbeat::read(&dir)?;
    let age = chrono::Utc::now().timestamp() - beat.last_poll;
    let limit = args.max_age.unwrap_or_else(|| beat.max_age_secs());
    check(&beat, age, limit)?;
    println!("ok: last successful poll {age} s ago (limit {limit} s)");
    Ok(ExitCode::SUCCESS)
}

fn check(beat: &Heartbeat, age: i64, limit: u64) -> Result<()> {
    // Before its first successful poll, serve says what it waits for (a broker or a database
    // that is not there yet): unhealthy at once, with the reason.
    if let (0, Some(what)) = (beat.last_poll, &beat.waiting) {
        bail!("starting: serve is waiting for {what}; it retries by itself, see serve's log");
    }
    if age > limit as i64 {
        if let Some(what) = &beat.waiting {
            bail!(
                "stale: serve's last successful poll was {age} s ago (limit {limit} s); it is waiting for {what}"
            );
        }
        bail!(
            "stale: serve's last successful poll was {age} s ago (limit {limit} s, polls every {} s): \
             InfluxDB or the MQTT broker is unreachable or serve is stuck; see serve's log",
            beat.interval_secs
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_only_past_the_limit() {
        let mut beat = Heartbeat {
            last_poll: 1,
            interval_secs: 60,
            waiting: None,
        };
        assert!(check(&beat, 210, 210).is_ok());
        let e = check(&beat, 211, 210).unwrap_err().to_string();
        assert!(
            e.starts_with("stale: serve's last successful poll was 211 s ago"),
            "{e}"
        );
        beat.waiting = Some("InfluxDB at http://db:8086: database 'powerwall' not found".into());
        assert!(
            check(&beat, 60, 210).is_ok(),
            "one failed poll is not yet an alarm"
        );
        let e = check(&beat, 211, 210).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "it is waiting for InfluxDB at http://db:8086: database 'powerwall' not found"
            ),
            "{e}"
        );
        beat.last_poll = 0;
        let e = check(&beat, 0, 210).unwrap_err().to_string();
        assert!(
            e.starts_with("starting: serve is waiting for InfluxDB at"),
            "{e}"
        );
    }
}
