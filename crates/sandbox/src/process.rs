//! Server processes: finding a server's binary, and a guard that stops the process by PID.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Find `binary` on PATH or at an absolute path. Tests hand the result to `pwsync-testkit`'s
/// `or_skip`: a skip outside CI, a failure in CI.
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
