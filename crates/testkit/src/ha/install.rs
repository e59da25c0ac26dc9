//! The HA venv: made once under a file lock, with what HA would download at its first start.

use super::HA_VERSION;
pub(super) use crate::process::run;
use crate::process::Missing;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Components whose PyPI requirements are pre-installed into the venv.
const PREINSTALLED_COMPONENTS: [&str; 3] = ["frontend", "recorder", "mqtt"];
/// Written into the venv once it is complete.
const READY_MARKER: &str = ".pwsync-ready";
const INSTALL_HINT: &str = "cargo run -p pwsync-testkit --example ensure_ha";

/// Where the venv lives: `$PWSYNC_HA_VENV`, else `${XDG_CACHE_HOME:-~/.cache}/pwsync/ha-2025.4.4`
/// (the same place `scripts/ensure-ha.sh` uses).
pub fn venv_dir() -> PathBuf {
    if let Some(v) = std::env::var_os("PWSYNC_HA_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"));
    cache.join(format!("pwsync/ha-{HA_VERSION}"))
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
}

/// The interpreter the venv is made with: `$PWSYNC_HA_PYTHON`, else
/// `$(pyenv root)/versions/3.13.0/bin/python`, else `~/.pyenv/versions/3.13.0/bin/python`.
pub fn base_python() -> PathBuf {
    if let Some(p) = std::env::var_os("PWSYNC_HA_PYTHON") {
        return PathBuf::from(p);
    }
    let from_pyenv = Command::new("pyenv")
        .arg("root")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .map(|root| root.join("versions/3.13.0/bin/python"))
        .filter(|p| p.is_file());
    from_pyenv.unwrap_or_else(|| home().join(".pyenv/versions/3.13.0/bin/python"))
}

/// `Some(venv)`, or `None` (after saying why) when HA cannot be installed and `CI` is unset.
/// With `CI` set a missing HA is a failure: this panics.
pub fn venv_or_skip() -> Option<PathBuf> {
    crate::or_skip(ensure_venv())
}

/// The HA venv, made if missing: `python -m venv`, `pip install homeassistant==2025.4.4`, then
/// the requirements of the frontend, recorder and mqtt components pinned by HA's own
/// `package_constraints.txt`, so HA's first start downloads nothing. Idempotent and safe to call
/// from parallel tests and processes (a file lock beside the venv). Fast once the venv is marked
/// ready. `Err` says why HA cannot be installed here.
pub fn ensure_venv() -> Result<PathBuf, Missing> {
    // PWSYNC_TEST_HA: a release newer than the host's Python runs from a Debian root.
    let tested = crate::ha_chroot::selected();
    if tested.chroot_suite.is_some() {
        return crate::ha_chroot::ensure_root(tested);
    }
    let venv = venv_dir();
    if venv.join(READY_MARKER).is_file() && venv.join("bin/hass").is_file() {
        return Ok(venv);
    }
    install_venv(&venv).map_err(|e| Missing {
        binary: format!("homeassistant=={HA_VERSION} in {}", venv.display()),
        install_hint: format!("{e:#}; run `{INSTALL_HINT}`"),
    })?;
    Ok(venv)
}

fn install_venv(venv: &Path) -> Result<()> {
    let parent = venv.parent().context("venv path has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let _lock = FileLock::acquire(&venv.with_extension("lock"))?;
    if venv.join(READY_MARKER).is_file() && venv.join("bin/hass").is_file() {
        return Ok(()); // another process finished while we waited
    }
    let python = venv.join("bin/python");
    let t0 = Instant::now();
    if !venv.join("bin/hass").is_file() {
        let base = base_python();
        if !base.is_file() {
            bail!(
                "no Python 3.13.0 at {} (set PWSYNC_HA_PYTHON)",
                base.display()
            );
        }
        tracing::info!(venv = %venv.display(), "creating the HA venv (takes a few minutes)");
        run(
            Command::new(&base).arg("-m").arg("venv").arg(venv),
            "python -m venv",
        )?;
        pip(&python, &["install", "-q", "--upgrade", "pip"])?;
        pip(
            &python,
            &["install", "-q", &format!("homeassistant=={HA_VERSION}")],
        )?;
    }
    let site = ha_package_dir(&python)?;
    let mut reqs = Vec::new();
    for component in PREINSTALLED_COMPONENTS {
        let manifest = site.join(format!("components/{component}/manifest.json"));
        let m: Value = serde_json::from_slice(
            &std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?,
        )?;
        for r in m["requirements"].as_array().into_iter().flatten() {
            reqs.push(
                r.as_str()
                    .context("requirement is not a string")?
                    .to_string(),
            );
        }
    }
    let constraints = site.join("package_constraints.txt");
    let mut args = vec![
        "install".to_string(),
        "-q".into(),
        "--disable-pip-version-check".into(),
        "-c".into(),
        constraints.display().to_string(),
    ];
    args.extend(reqs.iter().cloned());
    pip(
        &python,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    std::fs::write(
        venv.join(READY_MARKER),
        format!("homeassistant=={HA_VERSION}\n{}\n", reqs.join("\n")),
    )?;
    tracing::info!(venv = %venv.display(), secs = t0.elapsed().as_secs_f64(), "HA venv ready");
    Ok(())
}

/// The installed `homeassistant` package directory.
fn ha_package_dir(python: &Path) -> Result<PathBuf> {
    let out = run(
        venv_python(python, &[]).args([
            "-c",
            "import homeassistant, os; print(os.path.dirname(homeassistant.__file__))",
        ]),
        "locating the homeassistant package",
    )?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim()))
}

fn pip(python: &Path, args: &[&str]) -> Result<()> {
    run(
        venv_python(python, &[]).arg("-m").arg("pip").args(args),
        &format!("pip {}", args.join(" ")),
    )
    .map(|_| ())
}

/// Make sure `module` imports in the venv, else pip-install `package` (pinned by HA's
/// constraints where HA pins it). Used for the recorder's MariaDB/PostgreSQL drivers.
pub fn ensure_python_module(venv: &Path, module: &str, package: &str) -> Result<()> {
    let python = venv.join("bin/python");
    let imports = |python: &Path| {
        venv_python(python, &[])
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if imports(&python) {
        return Ok(());
    }
    let _lock = FileLock::acquire(&venv.with_extension("lock"))?;
    if imports(&python) {
        return Ok(());
    }
    let constraints = ha_package_dir(&python)?.join("package_constraints.txt");
    pip(
        &python,
        &[
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            &constraints.display().to_string(),
            package,
        ],
    )
}

/// A command running a venv's `bin/python` (given as its host path), on the host or, for a
/// release in a Debian root, inside it with `dirs` visible (see [`crate::ha_chroot`]).
pub(super) fn venv_python(python: &Path, dirs: &[&Path]) -> Command {
    let venv = python.parent().and_then(Path::parent).unwrap_or(python);
    crate::ha_chroot::venv_command(venv, "bin/python", dirs)
}

/// An exclusive `flock` on a file, released on drop (and by the kernel if the process dies).
pub(super) struct FileLock(File);

impl FileLock {
    pub(super) fn acquire(path: &Path) -> Result<FileLock> {
        use std::os::fd::AsRawFd;
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            bail!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
