//! [`HaInstance`]: a running HA with an owner user and a token, its start, restart and stop.

use super::clock::clock_env;
use super::install::{ensure_python_module, ensure_venv};
use super::mqtt::add_mqtt;
use super::onboard::{onboard_and_wait, wait_running, TOKEN_CLIENT_NAME};
use super::options::{configuration_yaml, HaOptions};
use super::process::{file_tail, log_tail, spawn_hass, stop_hass, LAUNCHER};
use crate::process::{free_port, with_port_retries, ServerProcess, StartError};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const PREVIOUS_LOG: &str = "hass.previous.out";

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

impl HaInstance {
    /// Start HA, onboard the owner user, mint a long-lived token and wait until the core is
    /// RUNNING. Blocking (runs its own small async runtime on a helper thread, so it may be
    /// called from inside a tokio test).
    pub fn start(opts: HaOptions) -> Result<HaInstance> {
        let venv = ensure_venv()?;
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
        let mut ha = with_port_retries("hass", || Self::launch(&venv, &opts))?;
        let (token, version) = ha.block_on(onboard_and_wait(ha.url()))?;
        ha.token = token;
        ha.version = version;
        ha.wait_token_saved()?;
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

    /// The start path, one attempt: a fresh config dir for `opts` on a new port, `hass`
    /// launched from `venv` on it and answering (not yet onboarded). A port someone else took
    /// is a [`StartError::PortTaken`], and the attempt's dir is dropped with it.
    fn launch(venv: &Path, opts: &HaOptions) -> Result<HaInstance, StartError> {
        let dir = tempfile::Builder::new().prefix("pwsync-ha-").tempdir()?;
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join(".storage"))?;
        let port = free_port();
        std::fs::write(
            config.join("configuration.yaml"),
            configuration_yaml(opts, port),
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
            let copy = config.join("home-assistant_v2.db");
            std::fs::copy(db, &copy).with_context(|| format!("copying {}", db.display()))?;
            mark_recent_clean_stop(venv, &copy)?;
        }
        std::fs::write(dir.path().join("launcher.py"), LAUNCHER)?;
        let mut ha = HaInstance {
            process: None,
            dir: dir.path().to_path_buf(),
            tmp: Some(dir),
            venv: venv.to_path_buf(),
            port,
            token: String::new(),
            version: String::new(),
            opts: opts.clone(),
        };
        ha.spawn()?;
        Ok(ha)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
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

    /// Shift HA's wall clock by `offset` seconds from the next (re)start on (libfaketime; see
    /// [`HaOptions::clock_offset_secs`]): a test moves HA to just before an hour boundary to see
    /// it compile that hour.
    pub fn set_clock_offset(&mut self, offset: Option<i64>) {
        self.opts.clock_offset_secs = offset;
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
        self.keep_previous_log();
        let (venv, dir, port) = (self.venv.clone(), self.dir.clone(), self.port);
        let env = clock_env(&self.opts)?;
        let process = tokio::task::spawn_blocking(move || spawn_hass(&venv, &dir, port, &env))
            .await?
            .map_err(StartError::into_anyhow)?;
        self.process = Some(process);
        self.version = wait_running(self.ws_url(), self.token.clone())
            .await
            .map_err(|e| self.restart_failure(e))?;
        Ok(())
    }

    /// Wait until HA has written the new token to `.storage/auth` (it saves its auth store
    /// 1 s after a change, and otherwise only at a clean stop): a real owner's token has long
    /// been on disk, and a test that restarts HA at once must not depend on the stop's final
    /// write. A CI run once saw a restarted HA 2026.11 refuse a token minted 0.3 s before the
    /// stop.
    fn wait_token_saved(&self) -> Result<()> {
        let path = self.auth_store();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let saved = std::fs::read_to_string(&path).unwrap_or_default();
            if saved.contains(TOKEN_CLIENT_NAME) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "HA did not save its new token to {} within 30 s:\n{}",
                    path.display(),
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// HA's auth store: users and refresh tokens, the long-lived token among them.
    fn auth_store(&self) -> PathBuf {
        self.config_dir().join(".storage/auth")
    }

    /// The stopped HA's log, kept beside the one the next start truncates.
    fn keep_previous_log(&self) {
        let _ = std::fs::rename(self.dir.join("hass.out"), self.dir.join(PREVIOUS_LOG));
    }

    /// A restarted HA that refuses the token it accepted before the stop: what its auth store
    /// holds and what it logged, for the test's failure message.
    fn restart_failure(&self, e: anyhow::Error) -> anyhow::Error {
        let auth = std::fs::read_to_string(self.auth_store());
        let auth = match auth {
            Ok(text) => format!(
                ".storage/auth has {} bytes, {} refresh tokens, pwsync-tests' token {}",
                text.len(),
                text.matches("\"jwt_key\"").count(),
                if text.contains(TOKEN_CLIENT_NAME) {
                    "present"
                } else {
                    "ABSENT"
                }
            ),
            Err(err) => format!(".storage/auth unreadable: {err}"),
        };
        anyhow!(
            "{e:#}\n{auth}\nthe stopped HA's log ends:\n{}\nthe restarted HA's log:\n{}",
            file_tail(&self.dir.join(PREVIOUS_LOG), 30),
            self.log_tail(60)
        )
    }

    /// Start again after [`HaInstance::stop`] (same config dir, port and token).
    pub fn start_again(&mut self) -> Result<()> {
        if self.process.is_some() {
            bail!("hass is running");
        }
        self.keep_previous_log();
        self.spawn().map_err(StartError::into_anyhow)?;
        let version = self
            .block_on(wait_running(self.ws_url(), self.token.clone()))
            .map_err(|e| self.restart_failure(e))?;
        self.version = version;
        Ok(())
    }
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

/// A seeded database stands in for one HA has just stopped: HA counts a closed run that ended
/// more than 10 minutes ago as an unclean shutdown (and logs a recorder warning, which fails the
/// test), so the last run's end, when it has one, is set to now. A run left open stays open.
fn mark_recent_clean_stop(venv: &Path, db: &Path) -> Result<()> {
    super::sqlite::sqlite_query(
        venv,
        db,
        "UPDATE recorder_runs SET \"end\" = strftime('%Y-%m-%d %H:%M:%f', 'now') \
         WHERE \"end\" IS NOT NULL AND run_id = (SELECT max(run_id) FROM recorder_runs)",
    )
    .map(|_| ())
}
