//! Starting and stopping the `hass` process: the launcher, the wait for its HTTP server, the
//! clean stop.

use super::install::venv_python;
use super::{START_TIMEOUT, STOP_TIMEOUT};
use crate::process::{wait_ready, wait_until_handles_sigterm, ServerProcess, StartError};
use anyhow::{anyhow, bail, Result};
use pwsync_sandbox::http;
use pwsync_sandbox::start::tail;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The launcher: HA's own `main()`, plus a thread that sends HA a SIGTERM (a clean stop) when
/// the process that started it is gone, so no HA outlives its test binary (an instance kept in
/// a `static` is never dropped: it stops, and removes its temp dir, when the test binary exits).
pub(super) const LAUNCHER: &str = r#"
import os, select, shutil, signal, sys, threading
parent = int(sys.argv.pop(1))
tmp = sys.argv.pop(1)
def watch():
    while os.getppid() == parent:
        # A relative timeout: time.sleep's absolute monotonic deadline fails (EINVAL) under
        # libfaketime, which a test may run HA with.
        select.select([], [], [], 0.5)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, name="pwsync-parent-watch", daemon=True).start()
sys.argv[0] = "hass"
from homeassistant.__main__ import main
code = main()
if os.getppid() != parent:
    # Orphaned (e.g. an instance shared through a static): nobody else removes the temp dir.
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(code)
"#;

pub(super) fn log_tail(dir: &Path, n: usize) -> String {
    file_tail(&dir.join("hass.out"), n)
}

/// The last `n` lines of the file at `path` (empty when it cannot be read).
pub(super) fn file_tail(path: &Path, n: usize) -> String {
    tail(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

/// Start `hass` for the config in `dir/config` through the launcher and wait until it owns
/// `port` and answers `/api/onboarding` there (its HTTP server listens once the startup
/// integrations are set up). A port someone else took is a [`StartError::PortTaken`].
pub(super) fn spawn_hass(
    venv: &Path,
    dir: &Path,
    port: u16,
    env: &[(String, String)],
) -> Result<ServerProcess, StartError> {
    let mut cmd = venv_python(&venv.join("bin/python"), &[dir]);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.arg(dir.join("launcher.py"))
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg("-c")
        .arg(dir.join("config"));
    let log = dir.join("hass.out");
    let mut process = ServerProcess::spawn("hass", &mut cmd, &log)?;
    crate::ha_log::watch_until_exit(&log);
    wait_ready(&mut process, &[port], &log, START_TIMEOUT, || {
        answers_onboarding(port)
    })?;
    Ok(process)
}

/// Whether HA answers on `port`: `/api/onboarding` (no login needed) lists its steps.
pub fn answers_onboarding(port: u16) -> bool {
    http::get(port, "/api/onboarding", Duration::from_secs(5))
        .is_some_and(|r| r.status == 200 && r.body.contains("\"step\""))
}

/// SIGTERM and wait for a clean exit; SIGKILL (and an error) after [`STOP_TIMEOUT`].
pub(super) fn stop_hass(mut process: ServerProcess, dir: &Path) -> Result<Duration> {
    let t0 = Instant::now();
    if !wait_until_handles_sigterm(process.pid(), STOP_TIMEOUT) {
        tracing::warn!("hass never installed its SIGTERM handler; stopping it anyway");
    }
    let pid = process.pid().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    while t0.elapsed() < STOP_TIMEOUT {
        if let Some(status) = process.child_mut().try_wait()? {
            // Reaped: forget the guard so it does not signal the (now free) PID again.
            std::mem::forget(process);
            tracing::info!(secs = t0.elapsed().as_secs_f64(), %status, "Home Assistant stopped");
            crate::ha_log::unwatch(&dir.join("hass.out"));
            crate::ha_log::check(&dir.join("hass.out"), &[]).map_err(|m| anyhow!(m))?;
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    process.stop();
    bail!(
        "hass did not stop within {STOP_TIMEOUT:?} and was killed:\n{}",
        log_tail(dir, 20)
    )
}
