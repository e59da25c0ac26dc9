//! Which Home Assistant the tests run against, and how a release newer than the host's Python
//! can run runs: in a Debian root, under chroot.
//!
//! `PWSYNC_TEST_HA` picks the release (default [`NATIVE`], 2025.4.4): every end-to-end suite
//! runs unchanged against either.
//! - 2025.4.4 runs from a venv on the host's pyenv Python 3.13.0 (`scripts/ensure-ha.sh`).
//! - 2026.11.0 needs Python ≥ 3.14.2, so it runs from `/venv` inside a Debian forky root that
//!   `scripts/ensure-ha-chroot.sh` makes with debootstrap (cached under
//!   `~/.cache/pwsync/forky-ha-2026.11.0`). Each process started in the root gets a private
//!   mount namespace (`unshare --mount`): `/proc`, `/dev`, `/sys`, a fresh tmpfs on `/tmp`, and
//!   the host directories it needs (the config dir, a SQLite file's dir) bind-mounted at the
//!   same paths, so tests read HA's files where they are on the host. The mounts exist only
//!   while the process runs and vanish with it, however it ends: nothing to unmount, nothing
//!   left behind. `unshare`, `sh` and `chroot` each `exec` the next, so the PID a test holds is
//!   Python's own and a SIGTERM reaches HA. The network is shared: loopback works both ways.

use crate::process::Missing;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the HA release the tests run against.
pub const VERSION_ENV: &str = "PWSYNC_TEST_HA";

/// An HA release the tests run against, and what it does that tests check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestedHa {
    pub version: &'static str,
    /// The recorder schema version this release creates (read from the database it made in
    /// the test: `schema_changes`).
    pub schema_version: i32,
    /// `None`: a venv on the host; `Some(suite)`: `/venv` in a Debian root of that suite.
    pub chroot_suite: Option<&'static str>,
    /// HTTP is configured in `.storage/http` (HA 2026.8+). Such a release imports an `http:`
    /// block of `configuration.yaml` once as a *pending* config, reverts it after 5 minutes
    /// unless someone confirms it, and restarts, which without a supervisor is an exit.
    pub http_in_storage: bool,
}

/// The newest HA that installs on the host's Python 3.13.0.
pub const NATIVE: TestedHa = TestedHa {
    version: "2025.4.4",
    schema_version: 50,
    chroot_suite: None,
    http_in_storage: false,
};

/// The newest HA release, in a Debian forky root (Python 3.14).
pub const FORKY: TestedHa = TestedHa {
    version: "2026.11.0",
    schema_version: 53,
    chroot_suite: Some("forky"),
    http_in_storage: true,
};

/// Every release the harness can run, oldest first.
pub const TESTED: [TestedHa; 2] = [NATIVE, FORKY];

/// The release `PWSYNC_TEST_HA` names (default [`NATIVE`]). An unknown value panics: a typo
/// must not quietly test the default instead.
pub fn selected() -> TestedHa {
    let Some(v) = std::env::var_os(VERSION_ENV) else {
        return NATIVE;
    };
    let v = v.to_string_lossy();
    TESTED
        .into_iter()
        .find(|t| t.version == v.trim())
        .unwrap_or_else(|| {
            panic!(
                "{VERSION_ENV}={v} is not a release the harness runs; use one of {:?}",
                TESTED.map(|t| t.version)
            )
        })
}

/// The Debian root of a chroot release: `$PWSYNC_HA_CHROOT`, else
/// `${XDG_CACHE_HOME:-~/.cache}/pwsync/<suite>-ha-<version>` (where
/// `scripts/ensure-ha-chroot.sh` makes it).
pub fn root_dir(ha: TestedHa) -> Option<PathBuf> {
    let suite = ha.chroot_suite?;
    if let Some(r) = std::env::var_os("PWSYNC_HA_CHROOT") {
        return Some(PathBuf::from(r));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    Some(cache.join(format!("pwsync/{suite}-ha-{}", ha.version)))
}

/// The venv inside the root, as a host path; `Err` says how to make it. The root is only ever
/// renamed into place complete, so `hass` being there means it is ready.
pub fn ensure_root(ha: TestedHa) -> Result<PathBuf, Missing> {
    let root = root_dir(ha).expect("a chroot release");
    let venv = root.join("venv");
    if venv.join("bin/hass").exists() {
        return Ok(venv);
    }
    Err(Missing {
        binary: format!("homeassistant=={} in {}", ha.version, venv.display()),
        install_hint: "bash scripts/ensure-ha-chroot.sh (as root)".to_string(),
    })
}

/// The root `venv` lies in, when it is the venv of a chroot release.
pub fn root_of_venv(venv: &Path) -> Option<PathBuf> {
    TESTED
        .into_iter()
        .filter_map(root_dir)
        .find(|root| venv == root.join("venv") && root.join("etc/debian_version").is_file())
}

/// How to make `ha` listen on `127.0.0.1:port`: the `configuration.yaml` block, and the
/// `.storage` file `(name, contents)` where the release keeps HTTP settings there.
pub fn http_config(ha: TestedHa, port: u16) -> (String, Option<(String, String)>) {
    if !ha.http_in_storage {
        let yaml = format!("http:\n  server_host: 127.0.0.1\n  server_port: {port}\n");
        return (yaml, None);
    }
    // HA's `HTTPConfigStore` (components/http/config.py, storage version 3.1): a confirmed
    // (`stable`) config with the schema's defaults, nothing pending, and the YAML migration
    // marked done so HA neither imports nor stages anything.
    let stable = serde_json::json!({
        "server_host": ["127.0.0.1"],
        "server_port": port,
        "cors_allowed_origins": ["https://cast.home-assistant.io"],
        "login_attempts_threshold": -1,
        "ip_ban_enabled": true,
        "ssl_profile": "intermediate_v6",
        "use_x_frame_options": true,
        "created_at": "2026-01-01T00:00:00+00:00",
        "error": null,
        "error_message": null,
    });
    let store = serde_json::json!({
        "version": 3,
        "minor_version": 1,
        "key": "http",
        "data": {"stable": stable, "pending": null, "yaml_migration_done": true},
    });
    (String::new(), Some(("http".to_string(), store.to_string())))
}

/// Entered by `sh` in a fresh private mount namespace: mount what a process inside needs,
/// then become it (`exec`), keeping the PID.
const ENTER: &str = r#"set -e
root=$1; shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs pwsync-tmp "$root/tmp"
while [ "$1" != -- ]; do
    mkdir -p "$root$1"
    mount --bind "$1" "$root$1"
    shift
done
shift
exec chroot "$root" "$@"
"#;

/// A command running `program` (a path inside the root, e.g. `/venv/bin/hass`) in `root`,
/// with each of `dirs` (absolute host paths) visible at the same path inside. The caller adds
/// the program's arguments; the environment passes through.
pub fn command(root: &Path, program: &Path, dirs: &[&Path]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(ENTER)
        .arg("pwsync-enter")
        .arg(root)
        .args(dirs)
        .arg("--")
        .arg(program);
    cmd
}

/// A command running the venv's `program` (relative to the venv, e.g. `bin/python`), on the
/// host or in the chroot the venv belongs to, with `dirs` visible.
pub fn venv_command(venv: &Path, program: &str, dirs: &[&Path]) -> Command {
    match root_of_venv(venv) {
        Some(root) => command(&root, &Path::new("/venv").join(program), dirs),
        None => Command::new(venv.join(program)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chroot_command_keeps_the_pid_and_sees_only_what_it_was_given() {
        let Some(root) = root_dir(FORKY).filter(|r| r.join("venv/bin/python").exists()) else {
            eprintln!("skipping: no forky root (bash scripts/ensure-ha-chroot.sh)");
            return;
        };
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("x"), "from the host").unwrap();
        let mut cmd = command(&root, Path::new("/venv/bin/python"), &[shared.path()]);
        let script = format!(
            "import os, sys; print(os.getpid()); print(open('{}/x').read()); \
             print(sys.version_info[:2])",
            shared.path().display()
        );
        let child = cmd
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let out = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], pid.to_string(), "the PID held is Python's");
        assert_eq!(lines[1], "from the host");
        assert_eq!(lines[2], "(3, 14)");
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(
            !mounts.contains(&root.display().to_string()),
            "mounts leaked to the host"
        );
    }
}
