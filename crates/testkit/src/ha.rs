//! A real, headless Home Assistant core on loopback, for tests and benchmarks.
//!
//! HA runs from a venv with `homeassistant==2025.4.4` on pyenv's Python 3.13.0 ([`ensure_venv`]
//! makes it once, under a file lock, and pre-installs what HA would otherwise download at its
//! first start). Each [`HaInstance`] has its own config dir in a temp dir, listens on a free
//! loopback port, has an owner user made through the onboarding API and a long-lived access
//! token, and is stopped by its PID when dropped (HA also stops itself when the process that
//! started it exits, so a crashed test binary leaves no HA behind).
//!
//! Measured on the 2-core dev machine, venv in place: start to core RUNNING with the owner user
//! and token ~2 s, restart ~2.3 s, clean stop ~0.5 s (but up to 10 s while a websocket client
//! that does not answer HA's close frame is connected: see [`HaInstance::stop_async`]).
//! A fresh venv (`pip install homeassistant==2025.4.4` and the pre-installed requirements) takes
//! a few minutes and ~800 MB.

use crate::process::{free_port, wait_until_handles_sigterm, Missing, ServerProcess};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

/// The HA release the tests run against: the newest that installs on Python 3.13.0.
pub const HA_VERSION: &str = "2025.4.4";
/// Components whose PyPI requirements are pre-installed into the venv.
const PREINSTALLED_COMPONENTS: [&str; 3] = ["frontend", "recorder", "mqtt"];
/// Written into the venv once it is complete.
const READY_MARKER: &str = ".pwsync-ready";
const INSTALL_HINT: &str = "cargo run -p pwsync-testkit --example ensure_ha";
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const USERNAME: &str = "pwsync";
const PASSWORD: &str = "pwsync-test-password";

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
    match ensure_venv() {
        Ok(v) => Some(v),
        Err(m) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: {m}");
            None
        }
        Err(m) => panic!("{m} (CI is set, so nothing may skip)"),
    }
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
fn venv_python(python: &Path, dirs: &[&Path]) -> Command {
    let venv = python.parent().and_then(Path::parent).unwrap_or(python);
    crate::ha_chroot::venv_command(venv, "bin/python", dirs)
}

fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// An exclusive `flock` on a file, released on drop (and by the kernel if the process dies).
struct FileLock(File);

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock> {
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

/// How to configure an instance.
#[derive(Debug, Clone)]
pub struct HaOptions {
    /// HA's `time_zone` (IANA name).
    pub time_zone: String,
    /// `recorder: db_url`; `None` = SQLite `home-assistant_v2.db` in the config dir.
    /// `mysql://` is rewritten to `mysql+pymysql://`; the MariaDB/PostgreSQL driver is
    /// pip-installed into the venv when missing.
    pub recorder_db_url: Option<String>,
    /// Add the MQTT integration for this broker (through the config-flow REST API).
    pub mqtt_broker: Option<(String, u16)>,
    /// Files written into `config/.storage/` before the first start, `(name, contents)`,
    /// e.g. a pre-seeded `core.entity_registry`.
    pub storage_files: Vec<(String, String)>,
    /// A SQLite recorder database copied to `config/home-assistant_v2.db` before the first start
    /// (e.g. a [`reference_sqlite_db`] with rows seeded). Ignored with `recorder_db_url`.
    pub sqlite_db: Option<PathBuf>,
    /// YAML appended to `configuration.yaml` (e.g. `template:` sensors).
    pub extra_config: String,
    /// Run HA's wall clock this many seconds off the real one (libfaketime; the monotonic clock
    /// stays real): a test can put HA a minute before an hour boundary to see it compile.
    pub clock_offset_secs: Option<i64>,
}

impl Default for HaOptions {
    fn default() -> Self {
        HaOptions {
            time_zone: "America/Los_Angeles".to_string(),
            recorder_db_url: None,
            mqtt_broker: None,
            storage_files: Vec::new(),
            sqlite_db: None,
            extra_config: String::new(),
            clock_offset_secs: None,
        }
    }
}

impl HaOptions {
    pub fn with_time_zone(mut self, tz: &str) -> Self {
        self.time_zone = tz.to_string();
        self
    }
}

/// A running Home Assistant with an owner user and a long-lived admin token.
pub struct HaInstance {
    process: Option<ServerProcess>,
    /// The temp dir (config, log, launcher); `None` only while dropping.
    tmp: Option<TempDir>,
    dir: PathBuf,
    venv: PathBuf,
    port: u16,
    token: String,
    version: String,
    opts: HaOptions,
}

/// The launcher: HA's own `main()`, plus a thread that sends HA a SIGTERM (a clean stop) when
/// the process that started it is gone, so no HA outlives its test binary (an instance kept in
/// a `static` is never dropped: it stops, and removes its temp dir, when the test binary exits).
const LAUNCHER: &str = r#"
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

impl HaInstance {
    /// Start HA, onboard the owner user, mint a long-lived token and wait until the core is
    /// RUNNING. Blocking (runs its own small async runtime on a helper thread, so it may be
    /// called from inside a tokio test).
    pub fn start(opts: HaOptions) -> Result<HaInstance> {
        let venv = ensure_venv().map_err(|m| anyhow!("{m}"))?;
        let t0 = Instant::now();
        let mut opts = opts;
        if let Some(url) = opts.recorder_db_url.as_mut() {
            if let Some(rest) = url.strip_prefix("mysql://") {
                *url = format!("mysql+pymysql://{rest}");
            }
            if url.starts_with("mysql") {
                ensure_python_module(&venv, "pymysql", "pymysql")?;
            } else if url.starts_with("postgresql") {
                ensure_python_module(&venv, "psycopg2", "psycopg2-binary")?;
            }
        }
        let dir = tempfile::Builder::new().prefix("pwsync-ha-").tempdir()?;
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join(".storage"))?;
        let port = free_port();
        std::fs::write(
            config.join("configuration.yaml"),
            configuration_yaml(&opts, port),
        )?;
        if let (_, Some((name, contents))) =
            crate::ha_chroot::http_config(crate::ha_chroot::selected(), port)
        {
            std::fs::write(config.join(".storage").join(name), contents)?;
        }
        for (name, contents) in &opts.storage_files {
            std::fs::write(config.join(".storage").join(name), contents)
                .with_context(|| format!("writing .storage/{name}"))?;
        }
        if let (Some(db), None) = (&opts.sqlite_db, &opts.recorder_db_url) {
            std::fs::copy(db, config.join("home-assistant_v2.db"))
                .with_context(|| format!("copying {}", db.display()))?;
        }
        std::fs::write(dir.path().join("launcher.py"), LAUNCHER)?;
        let mut ha = HaInstance {
            process: None,
            dir: dir.path().to_path_buf(),
            tmp: Some(dir),
            venv,
            port,
            token: String::new(),
            version: String::new(),
            opts,
        };
        ha.spawn()?;
        let (token, version) = ha.block_on(onboard_and_wait(ha.url()))?;
        ha.token = token;
        ha.version = version;
        if let Some((host, port)) = ha.opts.mqtt_broker.clone() {
            ha.block_on(add_mqtt(ha.url(), ha.token.clone(), host, port))?;
        }
        tracing::info!(
            url = %ha.url(),
            pid = ha.pid(),
            secs = t0.elapsed().as_secs_f64(),
            "Home Assistant {} running",
            ha.version
        );
        Ok(ha)
    }

    fn spawn(&mut self) -> Result<()> {
        self.process = Some(spawn_hass(
            &self.venv,
            &self.dir,
            self.port,
            &clock_env(&self.opts)?,
        )?);
        Ok(())
    }

    /// Run a future to completion on a private runtime in a helper thread.
    fn block_on<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(fut)
        })
        .join()
        .map_err(|_| anyhow!("HA harness thread panicked"))?
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:<port>/api/websocket`
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/api/websocket", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The owner's long-lived access token (an admin token).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// HA's version as it reports it (`get_config`).
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn options(&self) -> &HaOptions {
        &self.opts
    }

    /// The SQLite recorder file (meaningful without `recorder_db_url`).
    pub fn db_path(&self) -> PathBuf {
        self.config_dir().join("home-assistant_v2.db")
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The venv HA runs from (its `bin/python` has sqlite3 and HA's packages).
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// HA's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The last `n` lines of HA's console output.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.dir, n)
    }

    /// Stop HA cleanly (SIGTERM; HA closes its recorder run and the database) and wait for it.
    /// Fails if HA had to be killed. HA waits up to 10 s for open websocket connections to
    /// close: from async code whose runtime holds such connections, use
    /// [`HaInstance::stop_async`], which lets the runtime answer HA's close frames meanwhile.
    pub fn stop(&mut self) -> Result<Duration> {
        match self.process.take() {
            Some(process) => stop_hass(process, &self.dir),
            None => Ok(Duration::ZERO),
        }
    }

    /// [`HaInstance::stop`] on tokio's blocking pool.
    pub async fn stop_async(&mut self) -> Result<Duration> {
        let Some(process) = self.process.take() else {
            return Ok(Duration::ZERO);
        };
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || stop_hass(process, &dir)).await?
    }

    /// Stop cleanly and start again with the same config dir, port and token.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// [`HaInstance::restart`] for async code (see [`HaInstance::stop_async`]).
    pub async fn restart_async(&mut self) -> Result<()> {
        self.stop_async().await?;
        if self.process.is_some() {
            bail!("hass is running");
        }
        let (venv, dir, port) = (self.venv.clone(), self.dir.clone(), self.port);
        let env = clock_env(&self.opts)?;
        let process =
            tokio::task::spawn_blocking(move || spawn_hass(&venv, &dir, port, &env)).await??;
        self.process = Some(process);
        self.version = wait_running(self.ws_url(), self.token.clone()).await?;
        Ok(())
    }

    /// Start again after [`HaInstance::stop`] (same config dir, port and token).
    pub fn start_again(&mut self) -> Result<()> {
        if self.process.is_some() {
            bail!("hass is running");
        }
        self.spawn()?;
        let version = self.block_on(wait_running(self.ws_url(), self.token.clone()))?;
        self.version = version;
        Ok(())
    }
}

fn log_tail(dir: &Path, n: usize) -> String {
    let log = std::fs::read_to_string(dir.join("hass.out")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Start `hass` for the config in `dir/config` through the launcher and wait until its HTTP
/// server listens (it does once the startup integrations are set up).
/// libfaketime's library (Debian package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The environment that shifts HA's wall clock, when asked for.
fn clock_env(opts: &HaOptions) -> Result<Vec<(String, String)>> {
    let Some(offset) = opts.clock_offset_secs else {
        return Ok(Vec::new());
    };
    if !Path::new(LIBFAKETIME).is_file() {
        bail!("{LIBFAKETIME} is missing: apt-get install faketime");
    }
    Ok(vec![
        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
        ("FAKETIME".into(), format!("{offset:+}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        // File times stay real, and Python writes no bytecode: with faked mtimes it would
        // rewrite the venv's .pyc files under other HA instances of the same test binary.
        ("NO_FAKE_STAT".into(), "1".into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ])
}

fn spawn_hass(
    venv: &Path,
    dir: &Path,
    port: u16,
    env: &[(String, String)],
) -> Result<ServerProcess> {
    let mut cmd = venv_python(&venv.join("bin/python"), &[dir]);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.arg(dir.join("launcher.py"))
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg("-c")
        .arg(dir.join("config"));
    let mut process = ServerProcess::spawn("hass", &mut cmd, &dir.join("hass.out"))?;
    crate::ha_log::watch_until_exit(&dir.join("hass.out"), &[]);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(process);
        }
        if let Some(status) = process.child_mut().try_wait()? {
            bail!("hass exited ({status}):\n{}", log_tail(dir, 30));
        }
        if Instant::now() > deadline {
            bail!(
                "hass did not listen on port {port} within {START_TIMEOUT:?}:\n{}",
                log_tail(dir, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM and wait for a clean exit; SIGKILL (and an error) after [`STOP_TIMEOUT`].
fn stop_hass(mut process: ServerProcess, dir: &Path) -> Result<Duration> {
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

/// Dropping a running instance stops HA on a helper thread, which removes the temp dir once HA
/// has exited: a drop at the end of an async test must not block the runtime that still holds
/// websocket connections (HA waits up to 10 s for them). Call [`HaInstance::stop`] first to
/// wait for the stop (e.g. to read the database afterwards).
impl Drop for HaInstance {
    fn drop(&mut self) {
        let tmp = self.tmp.take();
        if let Some(process) = self.process.take() {
            let dir = self.dir.clone();
            // Checked here, not after the stop below, which a test does not wait for.
            let log = dir.join("hass.out");
            crate::ha_log::unwatch(&log);
            let checked = crate::ha_log::check(&log, &[]);
            std::thread::spawn(move || {
                if let Err(e) = stop_hass(process, &dir) {
                    tracing::warn!("{e:#}");
                }
                drop(tmp);
            });
            if let Err(m) = checked {
                if !std::thread::panicking() {
                    panic!("{m}");
                }
            }
        }
    }
}

fn configuration_yaml(opts: &HaOptions, port: u16) -> String {
    let db_url = opts
        .recorder_db_url
        .as_ref()
        .map(|u| format!("  db_url: \"{u}\"\n"))
        .unwrap_or_default();
    // No default_config: it pulls integrations that want the network (cloud, zeroconf, ...).
    format!(
        "homeassistant:\n  name: pwsync-test\n  latitude: 37.77\n  longitude: -122.42\n  \
         elevation: 10\n  unit_system: metric\n  time_zone: \"{tz}\"\n  currency: USD\n  \
         country: US\n\
         {http}\
         recorder:\n  commit_interval: 1\n{db_url}\
         logger:\n  default: warning\n{extra}\n",
        tz = opts.time_zone,
        http = crate::ha_chroot::http_config(crate::ha_chroot::selected(), port).0,
        extra = opts.extra_config,
    )
}

fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Onboard the owner (once per config dir), mint a long-lived token, wait for RUNNING.
/// Returns (token, version).
async fn onboard_and_wait(base: String) -> Result<(String, String)> {
    let client = http()?;
    let client_id = format!("{base}/");
    let resp = client
        .post(format!("{base}/api/onboarding/users"))
        .json(&json!({
            "client_id": client_id,
            "name": "pwsync",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        }))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("onboarding the owner failed: {status} {body}");
    }
    let code = body["auth_code"]
        .as_str()
        .context("onboarding reply has no auth_code")?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("client_id", &client_id)
        .finish();
    let resp = client
        .post(format!("{base}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let access = body["access_token"]
        .as_str()
        .with_context(|| format!("/auth/token failed: {status} {body}"))?;
    let ws_url = format!("{}/api/websocket", base.replacen("http", "ws", 1));
    let mut ws = Ws::connect(&ws_url, access).await?;
    let token = ws
        .call(json!({
            "type": "auth/long_lived_access_token",
            "client_name": "pwsync-tests",
            "lifespan": 3650,
        }))
        .await?;
    let token = token
        .as_str()
        .context("long-lived token reply is not a string")?
        .to_string();
    drop(ws);
    let version = wait_running(ws_url, token.clone()).await?;
    Ok((token, version))
}

/// Wait until `get_config` says RUNNING; returns HA's version.
async fn wait_running(ws_url: String, token: String) -> Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut ws = loop {
        match Ws::connect(&ws_url, &token).await {
            Ok(ws) => break ws,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    loop {
        let config = ws.call(json!({"type": "get_config"})).await?;
        if config["state"] == "RUNNING" {
            return Ok(config["version"].as_str().unwrap_or_default().to_string());
        }
        if Instant::now() > deadline {
            bail!("HA's core did not reach RUNNING: {}", config["state"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Add the MQTT integration through the config-flow REST API.
async fn add_mqtt(base: String, token: String, host: String, port: u16) -> Result<()> {
    let client = http()?;
    let flow: Value = client
        .post(format!("{base}/api/config/config_entries/flow"))
        .bearer_auth(&token)
        .json(&json!({"handler": "mqtt", "show_advanced_options": false}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let flow_id = flow["flow_id"]
        .as_str()
        .with_context(|| format!("mqtt config flow did not start: {flow}"))?;
    let mut input = json!({"broker": host, "port": port});
    // Newer releases (2026.11) group TLS and transport in a required `other_settings` section.
    let fields = flow["data_schema"].as_array().into_iter().flatten();
    if fields.into_iter().any(|f| f["name"] == "other_settings") {
        input["protocol"] = json!("5");
        input["other_settings"] =
            json!({"set_client_cert": false, "set_ca_cert": "off", "transport": "tcp"});
    }
    let done: Value = client
        .post(format!("{base}/api/config/config_entries/flow/{flow_id}"))
        .bearer_auth(&token)
        .json(&input)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if done["type"] != "create_entry" {
        bail!("adding the MQTT integration failed: {done}");
    }
    Ok(())
}

/// Just enough of HA's websocket API for the harness (the product's client is `pwsync-ha`).
struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Ws {
    async fn connect(url: &str, token: &str) -> Result<Ws> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        let mut ws = Ws { stream, next_id: 1 };
        let hello = ws.recv().await?;
        if hello["type"] != "auth_required" {
            bail!("unexpected first message: {hello}");
        }
        ws.send(json!({"type": "auth", "access_token": token}))
            .await?;
        let reply = ws.recv().await?;
        if reply["type"] != "auth_ok" {
            bail!("HA refused the token: {reply}");
        }
        Ok(ws)
    }

    async fn send(&mut self, v: Value) -> Result<()> {
        self.stream.send(Message::Text(v.to_string())).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Value> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(Message::Close(_))) | None => bail!("HA closed the websocket"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn call(&mut self, mut msg: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        msg["id"] = json!(id);
        let what = msg["type"].clone();
        self.send(msg).await?;
        loop {
            let reply = self.recv().await?;
            if reply["id"] == json!(id) && reply["type"] == "result" {
                if reply["success"] == true {
                    return Ok(reply["result"].clone());
                }
                bail!("{what} failed: {}", reply["error"]);
            }
        }
    }
}

/// A fresh copy of a recorder SQLite database, in its own temp dir (removed on drop).
pub struct TempDb {
    _dir: TempDir,
    path: PathBuf,
}

impl TempDb {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDb {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDb {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The cached recorder database a real HA 2025.4.4 made (schema version 50, a closed recorder
/// run), made on first use: HA is started on an empty config, waits until the recorder wrote
/// its `schema_changes`, and is stopped cleanly. Cached under the venv, shared by processes.
pub fn reference_sqlite_db_file() -> Result<PathBuf> {
    let venv = ensure_venv().map_err(|m| anyhow!("{m}"))?;
    let dir = venv.join("pwsync-fixtures");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("home-assistant_v2.db");
    if path.is_file() {
        return Ok(path);
    }
    let _lock = FileLock::acquire(&dir.join("reference.lock"))?;
    if path.is_file() {
        return Ok(path);
    }
    let t0 = Instant::now();
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone("UTC"))?;
    let db = ha.db_path();
    let deadline = Instant::now() + START_TIMEOUT;
    while sqlite_query(&ha.venv, &db, "SELECT count(*) FROM schema_changes")
        .map(|r| r.trim() == "0")
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            bail!(
                "HA did not create its recorder schema:\n{}",
                ha.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ha.stop()?;
    let open_runs = sqlite_query(
        &ha.venv,
        &db,
        "SELECT count(*) FROM recorder_runs WHERE \"end\" IS NULL",
    )?;
    if open_runs.trim() != "0" {
        bail!("HA left its recorder run open (not a clean stop)");
    }
    if db.with_extension("db-wal").exists() {
        bail!("HA left a SQLite WAL file behind (not a clean stop)");
    }
    let tmp = dir.join(format!("home-assistant_v2.db.tmp{}", std::process::id()));
    std::fs::copy(&db, &tmp)?;
    std::fs::rename(&tmp, &path)?;
    tracing::info!(
        secs = t0.elapsed().as_secs_f64(),
        "reference recorder DB made"
    );
    Ok(path)
}

/// A fresh temp copy of [`reference_sqlite_db_file`].
pub fn reference_sqlite_db() -> Result<TempDb> {
    let src = reference_sqlite_db_file()?;
    let dir = tempfile::Builder::new().prefix("pwsync-ha-db-").tempdir()?;
    let path = dir.path().join("home-assistant_v2.db");
    std::fs::copy(&src, &path)?;
    Ok(TempDb { _dir: dir, path })
}

/// Run SQL on a SQLite file with the venv's Python (`sqlite3` module; HA's venv always has it).
/// Statements separated by `;` run in one transaction; the rows of the last one come back as
/// lines of `|`-separated values.
pub fn sqlite_query(venv: &Path, db: &Path, sql: &str) -> Result<String> {
    const SCRIPT: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
stmts = [s for s in sys.argv[2].split(";") if s.strip()]
rows = []
with con:
    for s in stmts:
        rows = con.execute(s).fetchall()
con.close()
print("\n".join("|".join("" if v is None else str(v) for v in r) for r in rows))
"#;
    let dir = db.parent().unwrap_or(Path::new("/"));
    let out = run(
        venv_python(&venv.join("bin/python"), &[dir])
            .args(["-c", SCRIPT])
            .arg(db)
            .arg(sql),
        "sqlite query",
    )?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
