//! Process guards and ports shared by every server harness (from `pwsync-sandbox`), the skip
//! policy of the tests, and what tests read about a running process.

use anyhow::{bail, Context, Result};
pub use pwsync_sandbox::port::{free_port, owns_listener};
pub use pwsync_sandbox::process::{require, Missing, ServerProcess};
pub use pwsync_sandbox::start::{wait_ready, with_port_retries, StartError};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run a client command to completion (pip, mariadb-install-db, psql, id …): its stdout on
/// success, its exit status and stderr in the error.
pub fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    stdout_of(out, what)
}

/// [`run`] feeding `input` on stdin (a dump to restore, SQL to a client).
pub fn run_with_input(cmd: &mut Command, input: &[u8], what: &str) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {what}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("stdin writer panicked"))?
        .with_context(|| format!("feeding {what}"))?;
    stdout_of(out, what)
}

/// A finished client's stdout, or an error with its exit status and stderr.
fn stdout_of(out: std::process::Output, what: &str) -> Result<Vec<u8>> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The one skip policy of the tests: `Some(value)`; `None` when the server is not installed and
/// `CI` is unset (saying which server and which package installs it); a panic when `CI` is set
/// (nothing may skip there) or when the error is anything but [`Missing`] (an installed server
/// that fails to start is a failure, never a skip).
///
/// Takes what an `available()`, `require` or `start` returns: a [`Missing`], or an
/// `anyhow::Error` that holds one.
pub fn or_skip<T, E: Into<anyhow::Error>>(r: Result<T, E>) -> Option<T> {
    let e = match r {
        Ok(v) => return Some(v),
        Err(e) => e.into(),
    };
    match e.downcast_ref::<Missing>() {
        Some(m) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: {m}");
            None
        }
        Some(m) => panic!("{m} (CI is set, so nothing may skip)"),
        None => panic!("{e:#}"),
    }
}

/// Whether process `pid` has its own handler for SIGTERM (bit 15 of `SigCgt` in
/// `/proc/<pid>/status`).
pub fn handles_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
}

/// Wait up to `limit` until `pid` handles SIGTERM; whether it does. Home Assistant installs
/// its handler only once its start has finished, after it is already seen running (its
/// `homeassistant_started` event recorded, its API answering): a SIGTERM before that kills it
/// on the spot and leaves its recorder run open, as a crash would.
/// Gives up at once when the process has exited (gone, or a zombie not yet reaped).
pub fn wait_until_handles_sigterm(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if handles_sigterm(pid) {
            return true;
        }
        if Instant::now() >= deadline || has_exited(pid) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|state| state.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// CPU time (user + system, seconds) a running process has used, from `/proc/<pid>/stat`;
/// 0 when it cannot be read. For benchmarks that attribute time to pwsync, HA and InfluxDB.
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn shell(script: &str) -> std::process::Child {
        Command::new("sh").arg("-c").arg(script).spawn().unwrap()
    }

    #[test]
    fn a_sigterm_handler_is_seen_only_where_one_is_installed() {
        let mut plain = Command::new("sleep").arg("30").spawn().unwrap();
        let mut trapping = shell("trap 'exit 0' TERM; while :; do sleep 0.05; done");
        let trapped = wait_until_handles_sigterm(trapping.id(), Duration::from_secs(5));
        let plain_handles = handles_sigterm(plain.id());
        for child in [&mut plain, &mut trapping] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(trapped, "sh with a TERM trap handles SIGTERM");
        assert!(!plain_handles, "sleep leaves SIGTERM at its default");
        assert!(!handles_sigterm(u32::MAX), "no such process");
        let t0 = Instant::now();
        assert!(!wait_until_handles_sigterm(
            plain.id(),
            Duration::from_secs(30)
        ));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "an exited process is not waited for"
        );
    }
}
