//! Process guards and ports shared by every server harness.

use anyhow::{bail, Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration, child: &mut Child, name: &str) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited before it listened on port {port}: {status}");
        }
        if Instant::now() > deadline {
            bail!("{name} did not listen on port {port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server binary that is not installed.
#[derive(Debug)]
pub struct Missing {
    pub binary: String,
    pub install_hint: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not installed ({})",
            self.binary, self.install_hint
        )
    }
}

impl std::error::Error for Missing {}

/// Find `binary` on PATH or at an absolute path. Outside CI a test may skip on `Err`;
/// in CI (`CI` set) a missing server is a failure, so tests should call [`require`]'s result
/// through `expect` when `std::env::var_os("CI").is_some()`.
pub fn require(binary: &str, install_hint: &str) -> Result<std::path::PathBuf, Missing> {
    let p = Path::new(binary);
    if p.is_absolute() && p.exists() {
        return Ok(p.to_path_buf());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(binary))
        .find(|c| c.is_file())
        .ok_or_else(|| Missing {
            binary: binary.to_string(),
            install_hint: install_hint.to_string(),
        })
}

/// A child server process, killed (SIGTERM, then SIGKILL) by PID on drop.
pub struct ServerProcess {
    pub name: String,
    child: Option<Child>,
}

impl ServerProcess {
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(ServerProcess {
            name: name.to_string(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("process already stopped")
    }

    /// Stop the process by its PID: SIGTERM, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(10));
    }

    /// SIGTERM, then SIGKILL if the process has not exited after `grace` (a loaded machine can
    /// make a clean shutdown slow; a kill leaves state behind that later checks trip over).
    /// Returns how it ended, for messages.
    pub fn stop_within(&mut self, grace: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".to_string();
        };
        let pid = child.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return format!("exited: {status}; SIGTERM sent: {term:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        format!("killed after {grace:?}; SIGTERM sent: {term:?}")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Some(value)`, or `None` (with a message) to skip a test whose server is not installed, but
/// only outside CI: with `CI` set a missing server fails the test.
pub fn or_skip<T>(r: Result<T, Missing>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(m) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: {m}");
            None
        }
        Err(m) => panic!("{m} (CI is set, so nothing may skip)"),
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
