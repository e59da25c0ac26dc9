//! HA's own log as a test result: a WARNING or ERROR about anything pwsync touches (its
//! entities, statistics, MQTT discovery, the recorder) fails the test that ran HA, on every
//! release the harness runs (a deprecation there is next release's breakage).
//!
//! Checked when an instance stops or is dropped, and, for an instance kept in a `static` (never
//! dropped), when the test binary exits (see [`watch_until_exit`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Words that make a log entry pwsync's concern (matched case-insensitively against its first
/// line: logger name and message; not the traceback, whose file paths name the venv, which lies
/// under `~/.cache/pwsync`).
const CONCERNS: &[&str] = &[
    "recorder",
    "statistic",
    "mqtt",
    "discovery",
    "mean_type",
    "unit_class",
    "pwsync",
    "powerwall",
    "sensor.pw_",
];

/// Loggers whose entries are unrelated to pwsync even when they mention a concern, and why.
/// (Entries that mention no concern are never checked: e.g. `assist_pipeline`, which a full
/// `default_config` would set up and which fails without g++ in the forky root; the harness does
/// not load it, and pwsync does not use it.)
const IGNORED: &[(&str, &str)] = &[];

/// One log entry: its first line (`2026-12-02 03:40:00.123 WARNING (MainThread) [logger] …`)
/// and the lines that continue it (a traceback).
fn entries(log: &str) -> Vec<String> {
    let starts_entry = |l: &str| {
        l.len() > 10 && l.as_bytes()[..4].iter().all(u8::is_ascii_digit) && &l[4..5] == "-"
    };
    let mut out: Vec<String> = Vec::new();
    for line in log.lines() {
        match out.last_mut() {
            Some(e) if !starts_entry(line) => {
                e.push('\n');
                e.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

fn level_and_logger(entry: &str) -> Option<(&str, &str)> {
    let first = entry.lines().next()?;
    let level = [" WARNING ", " ERROR ", " CRITICAL "]
        .into_iter()
        .find(|l| first.contains(l))?;
    let logger = first
        .split_once(" [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(l, _)| l)
        .unwrap_or("");
    Some((level.trim(), logger))
}

/// The WARNING/ERROR entries of `log` that concern pwsync, except those containing one of
/// `expected` (what a test provokes on purpose, e.g. a broker it stops).
pub fn offending(log: &str, expected: &[&str]) -> Vec<String> {
    entries(log)
        .into_iter()
        .filter(|e| {
            let Some((_, logger)) = level_and_logger(e) else {
                return false;
            };
            let lower = e.lines().next().unwrap_or("").to_lowercase();
            CONCERNS.iter().any(|c| lower.contains(c))
                && !IGNORED.iter().any(|(l, _)| logger.starts_with(l))
                && !expected.iter().any(|x| e.contains(x))
        })
        .collect()
}

/// `Err` (one message listing them) when HA's log at `path` has [`offending`] entries, other
/// than those `expected` here or announced for `path` with [`expect`].
pub fn check(path: &Path, expected: &[&str]) -> Result<(), String> {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let announced: Vec<String> = EXPECTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, x)| x.clone())
        .collect();
    let expected: Vec<&str> = expected
        .iter()
        .copied()
        .chain(announced.iter().map(String::as_str))
        .collect();
    let bad = offending(&log, &expected);
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "Home Assistant logged {} warning(s)/error(s) about what pwsync touches ({}):\n{}",
        bad.len(),
        path.display(),
        bad.join("\n")
    ))
}

/// Logs of instances that are still running, checked at exit.
static WATCHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Entries a test provokes on purpose, by log: every later [`check`] of that log lets them pass.
static EXPECTED: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

/// Check the log at `path` when the process exits normally, unless [`unwatch`]ed first: an
/// instance kept in a `static` is never dropped. A failing check turns the exit status into 1
/// (the test binary fails; its tests already reported ok, so the message says why).
pub fn watch_until_exit(path: &Path) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function; it only reads files and prints.
        unsafe { libc::atexit(check_at_exit) };
    });
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

/// Let entries containing `pattern` pass every later check of the log at `path` (at stop, at
/// drop, at exit): for a test that provokes them.
pub fn expect(path: &Path, pattern: &str) {
    EXPECTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path.to_path_buf(), pattern.to_string()));
}

/// Stop watching `path` (its owner checked it).
pub fn unwatch(path: &Path) {
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

extern "C" fn check_at_exit() {
    let watched = std::mem::take(&mut *WATCHED.lock().unwrap_or_else(|e| e.into_inner()));
    let mut failed = false;
    for path in watched {
        if let Err(m) = check(&path, &[]) {
            eprintln!("error: {m}");
            failed = true;
        }
    }
    if failed {
        // SAFETY: ends the process at once; we are already exiting.
        unsafe { libc::_exit(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-02 03:40:00.100 WARNING (MainThread) [homeassistant.components.mqtt.discovery] Deprecated object_id in sensor.pw_home_usage
2026-12-02 03:40:00.200 ERROR (Recorder) [homeassistant.components.recorder.core] Error saving events
Traceback (most recent call last):
  File \"x.py\", line 1
2026-12-02 03:40:00.300 WARNING (MainThread) [homeassistant.components.cloud] Cloud is offline
2026-12-02 03:40:00.350 ERROR (ImportExecutor_0) [homeassistant.components.camera.img_util] Error loading libturbojpeg
Traceback (most recent call last):
  File \"/root/.cache/pwsync/ha-2025.4.4/lib/python3.13/site-packages/turbojpeg.py\", line 300
2026-12-02 03:40:00.400 INFO (MainThread) [homeassistant.components.recorder] Recorder started
2026-12-02 03:40:00.500 ERROR (MainThread) [homeassistant.components.mqtt.client] Disconnected from MQTT server 127.0.0.1:1883 (7)
";

    #[test]
    fn warnings_and_errors_about_pwsync_are_offending_other_noise_is_not() {
        let bad = offending(LOG, &[]);
        assert_eq!(bad.len(), 3, "{bad:#?}");
        assert!(bad[0].contains("object_id"));
        assert!(
            bad[1].contains("Traceback"),
            "the traceback stays with its entry"
        );
        assert!(bad[2].contains("Disconnected"));
        let bad = offending(LOG, &["Disconnected from MQTT server"]);
        assert_eq!(bad.len(), 2);
    }
}
