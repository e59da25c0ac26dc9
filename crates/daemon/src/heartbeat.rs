//! `serve`'s heartbeat: the time of its last successful poll, in a file of its state directory,
//! so `pwsync health` (a container's HEALTHCHECK, a monitoring script) can tell a daemon that
//! still runs but no longer publishes (InfluxDB or the broker gone) from a working one.
//!
//! The state directory is `PWSYNC_STATE_DIR`, else systemd's `STATE_DIRECTORY` (set by the
//! unit's `StateDirectory=`), else `$HOME/.local/state/pwsync`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const FILE: &str = "heartbeat.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    /// Unix time of the last poll that published its values (0: none yet).
    pub last_poll: i64,
    /// `serve`'s poll interval: how often a fresh heartbeat is due.
    pub interval_secs: u64,
    /// What `serve` waits for since its last successful poll (a broker, InfluxDB, its
    /// database, HA), in words; `None` while it publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

impl Heartbeat {
    /// How old a heartbeat may be before the daemon counts as stuck: three polls (so one slow
    /// or failed poll is not yet an alarm) and half a minute for a slow InfluxDB.
    pub fn max_age_secs(&self) -> u64 {
        3 * self.interval_secs.max(1) + 30
    }
}

/// The state directory, when one can be named.
pub fn state_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("PWSYNC_STATE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when a unit names several.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return Some(PathBuf::from(first));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".local/state/pwsync"))
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Record a successful poll (write to a temp file, then rename: `health` never reads half a
/// file).
pub fn write(dir: &Path, beat: &Heartbeat) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(beat)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path_in(dir)).with_context(|| format!("renaming {}", tmp.display()))
}

pub fn read(dir: &Path) -> Result<Heartbeat> {
    let p = path_in(dir);
    let text = std::fs::read(&p).with_context(|| {
        format!(
            "no heartbeat at {}: serve has not published yet, or runs with another \
             PWSYNC_STATE_DIR",
            p.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a heartbeat", p.display()))
}

/// For `serve`: record a successful poll, warning (once) when the state directory is not
/// writable, since health checks would then report the daemon stuck.
pub struct Beater {
    dir: Option<PathBuf>,
    interval_secs: u64,
    last_poll: i64,
    warned: bool,
}

impl Beater {
    pub fn new(interval_secs: u64) -> Beater {
        let dir = state_dir();
        if dir.is_none() {
            tracing::warn!(
                "no state directory (set PWSYNC_STATE_DIR): `pwsync health` cannot see this daemon"
            );
        }
        Beater::at(dir, interval_secs)
    }

    /// A beater writing into `dir` (none: nowhere).
    pub fn at(dir: Option<PathBuf>, interval_secs: u64) -> Beater {
        Beater {
            dir,
            interval_secs,
            last_poll: 0,
            warned: false,
        }
    }

    /// A poll published its values.
    pub fn beat(&mut self, now: i64) {
        self.last_poll = now;
        self.record(None);
    }

    /// `serve` cannot publish: say what it waits for, keeping the last successful poll's time.
    pub fn waiting(&mut self, what: &str) {
        self.record(Some(what.to_string()));
    }

    fn record(&mut self, waiting: Option<String>) {
        let Some(dir) = &self.dir else { return };
        let beat = Heartbeat {
            last_poll: self.last_poll,
            interval_secs: self.interval_secs,
            waiting,
        };
        if let Err(e) = write(dir, &beat) {
            if !self.warned {
                tracing::warn!("cannot write the heartbeat: {e:#}");
                self.warned = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no heartbeat at"), "{e}");
        let beat = Heartbeat {
            last_poll: 1_700_000_000,
            interval_secs: 60,
            waiting: Some("the MQTT broker".into()),
        };
        write(&dir.path().join("sub"), &beat).unwrap();
        assert_eq!(read(&dir.path().join("sub")).unwrap(), beat);
        assert_eq!(beat.max_age_secs(), 210);
    }
}
