//! A start that counts only when the server we spawned is the one answering on its ports.
//!
//! Ports are picked before the server binds them (see [`crate::port`]): another process can
//! take one in between. Something answering on the port then proves nothing; the server we
//! spawned may have failed to bind and exited. So a start waits until the process is alive,
//! owns the listening socket of every port it was given, and answers its own protocol; when it
//! reports the address in use instead, the whole start is tried again on new ports.

use crate::port::owns_listener;
use crate::process::ServerProcess;
use std::path::Path;
use std::time::{Duration, Instant};

/// How many times a start is tried on new ports before its bind failure is an error.
pub const PORT_ATTEMPTS: usize = 5;

/// Why a start attempt failed.
#[derive(Debug)]
pub enum StartError {
    /// One of the ports was taken when the server bound it: worth another attempt on new ports.
    PortTaken(String),
    /// Anything else: a failure.
    Failed(anyhow::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::PortTaken(why) => f.write_str(why),
            StartError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Failed(e)
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Failed(e.into())
    }
}

impl From<crate::Missing> for StartError {
    fn from(m: crate::Missing) -> Self {
        StartError::Failed(m.into())
    }
}

impl StartError {
    /// As an error for callers that do not retry (a restart on the same port).
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            StartError::PortTaken(why) => anyhow::anyhow!(why),
            StartError::Failed(e) => e,
        }
    }
}

/// Run `attempt` (which picks its own fresh ports each time) until it succeeds, up to
/// [`PORT_ATTEMPTS`] times while it fails with [`StartError::PortTaken`].
pub fn with_port_retries<T>(
    name: &str,
    mut attempt: impl FnMut() -> Result<T, StartError>,
) -> anyhow::Result<T> {
    let mut taken = Vec::new();
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(StartError::PortTaken(why)) if taken.len() + 1 < PORT_ATTEMPTS => {
                tracing::info!("{name}: {why}; starting again on new ports");
                taken.push(why);
            }
            Err(StartError::PortTaken(why)) => {
                taken.push(why);
                anyhow::bail!(
                    "{name} found its port taken {PORT_ATTEMPTS} times in a row: {}",
                    taken.join("; ")
                );
            }
            Err(StartError::Failed(e)) => return Err(e),
        }
    }
}

/// Wait until `process` owns a listener on each of `ports` and `answers()` says it speaks its
/// protocol there. `log` is the process's output, read for "address already in use" (then
/// [`StartError::PortTaken`], whether the process exited on it or lives on without that
/// listener) and quoted in errors.
pub fn wait_ready(
    process: &mut ServerProcess,
    ports: &[u16],
    log: &Path,
    timeout: Duration,
    mut answers: impl FnMut() -> bool,
) -> Result<(), StartError> {
    let name = process.name.clone();
    let deadline = Instant::now() + timeout;
    loop {
        let exited = process.child_mut().try_wait()?;
        let output = std::fs::read_to_string(log).unwrap_or_default();
        if mentions_address_in_use(&output) {
            return Err(StartError::PortTaken(format!(
                "{name} could not bind one of ports {ports:?}: {}",
                tail(&output, 3)
            )));
        }
        if let Some(status) = exited {
            return Err(StartError::Failed(anyhow::anyhow!(
                "{name} exited ({status}) before it answered on port(s) {ports:?}:\n{}",
                tail(&output, 30)
            )));
        }
        let pid = process.pid();
        if ports.iter().all(|&p| owns_listener(pid, p)) && answers() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(StartError::Failed(anyhow::anyhow!(
                "{name} (pid {pid}) did not answer on port(s) {ports:?} within {timeout:?}:\n{}",
                tail(&output, 30)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every server here says it this way ("bind: address already in use", "Address already in
/// use", "[Errno 98] ... address already in use").
fn mentions_address_in_use(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::Command;

    fn sh(dir: &Path, script: &str) -> ServerProcess {
        ServerProcess::spawn(
            "fake",
            Command::new("sh").arg("-c").arg(script),
            &dir.join("fake.log"),
        )
        .unwrap()
    }

    /// The flake of issue 17: somebody else listens on the port our server was given, and our
    /// server never binds it. Connecting to the port succeeds; the start must not.
    #[test]
    fn a_listener_of_another_process_is_not_taken_for_our_server() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = foreign.local_addr().unwrap().port();
        let mut p = sh(dir.path(), "sleep 30");
        let r = wait_ready(
            &mut p,
            &[port],
            &dir.path().join("fake.log"),
            Duration::from_millis(500),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        assert!(matches!(r, Err(StartError::Failed(_))), "{r:?}");
    }

    #[test]
    fn a_bind_failure_is_a_port_taken_and_a_crash_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("fake.log");
        let mut p = sh(
            dir.path(),
            "echo 'listen tcp: bind: address already in use'; exit 1",
        );
        let r = wait_ready(&mut p, &[1], &log, Duration::from_secs(10), || true);
        assert!(matches!(r, Err(StartError::PortTaken(_))), "{r:?}");
        let mut p = sh(dir.path(), "echo 'no such config'; exit 1");
        let r = wait_ready(&mut p, &[1], &log, Duration::from_secs(10), || true);
        assert!(
            matches!(&r, Err(StartError::Failed(e)) if format!("{e}").contains("no such config")),
            "{r:?}"
        );
    }

    #[test]
    fn a_port_taken_is_retried_and_other_failures_are_not() {
        let mut calls = 0;
        let r = with_port_retries("fake", || {
            calls += 1;
            if calls < 3 {
                Err(StartError::PortTaken("taken".into()))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: anyhow::Result<()> = with_port_retries("fake", || {
            calls += 1;
            Err(StartError::PortTaken("taken".into()))
        });
        assert!(r.is_err());
        assert_eq!(calls, PORT_ATTEMPTS);
        let mut calls = 0;
        let r: anyhow::Result<()> = with_port_retries("fake", || {
            calls += 1;
            Err(anyhow::anyhow!("broken config").into())
        });
        assert!(r.unwrap_err().to_string().contains("broken config"));
        assert_eq!(calls, 1);
    }
}
