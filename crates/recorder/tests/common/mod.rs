//! Recorder databases whose schema a real Home Assistant made, on all three engines.
//!
//! HA (the release `PWSYNC_TEST_HA` names, see `pwsync_testkit::ha_chroot`; by default the venv
//! scripts/ensure-ha.sh makes: `PWSYNC_HA_VENV`, default
//! `${XDG_CACHE_HOME:-~/.cache}/pwsync/ha-2025.4.4`) runs once per
//! engine against an empty database, creates its schema and stops cleanly; the result is
//! cached under the target dir (SQLite: the file; MariaDB/PostgreSQL: a dump of HA's database,
//! with its AUTO_INCREMENT counters and identity sequences) and every test gets a fresh copy on
//! its own server.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use pwsync_recorder::{Engine, HaStatus, RecorderDb, RecorderOptions};
use pwsync_testkit::ha_chroot;
use pwsync_testkit::process::{owns_listener, wait_until_handles_sigterm};
use pwsync_testkit::sqlservers::{MariaDbServer, PostgresServer, DATABASE};
use pwsync_testkit::{free_port, Missing, ServerProcess};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The HA release under test (`PWSYNC_TEST_HA`).
pub fn tested() -> ha_chroot::TestedHa {
    ha_chroot::selected()
}

/// The HA venv's `hass` (a host path; for a release in a Debian root, the one inside it), or
/// why it is missing.
pub fn hass_bin() -> Result<PathBuf, Missing> {
    if tested().chroot_suite.is_some() {
        return ha_chroot::ensure_root(tested()).map(|venv| venv.join("bin/hass"));
    }
    let venv = std::env::var_os("PWSYNC_HA_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                })
                .join(format!("pwsync/ha-{}", ha_chroot::NATIVE.version))
        });
    let hass = venv.join("bin/hass");
    if hass.is_file() {
        Ok(hass)
    } else {
        Err(Missing {
            binary: hass.display().to_string(),
            install_hint: "bash scripts/ensure-ha.sh".to_string(),
        })
    }
}

/// Make sure HA's venv has the Python driver HA needs for a `db_url` (`pymysql` for MariaDB,
/// `psycopg2` for PostgreSQL), pinned by HA's own constraints where it pins them.
pub fn ensure_driver(hass: &Path, module: &str, package: &str) -> Result<()> {
    let python = hass.with_file_name("python");
    let venv_python = || venv_command(hass, "bin/python", &[]);
    let have = venv_python()
        .args(["-c", &format!("import {module}")])
        .status()?
        .success();
    if have {
        return Ok(());
    }
    let constraints = venv_python()
        .args([
            "-c",
            "import homeassistant, os; print(os.path.join(os.path.dirname(homeassistant.__file__), 'package_constraints.txt'))",
        ])
        .output()?;
    let constraints = String::from_utf8_lossy(&constraints.stdout)
        .trim()
        .to_string();
    let ok = venv_python()
        .args(["-m", "pip", "install", "-q", "-c", &constraints, package])
        .status()?
        .success();
    if !ok {
        bail!("pip install {package} into {} failed", python.display());
    }
    Ok(())
}

/// A command running the venv's `program` (relative to the venv) of `hass`, on the host or in
/// the release's Debian root with `dirs` visible.
pub fn venv_command(hass: &Path, program: &str, dirs: &[&Path]) -> Command {
    let venv = hass
        .parent()
        .and_then(Path::parent)
        .expect("hass is venv/bin/hass");
    ha_chroot::venv_command(venv, program, dirs)
}

pub use pwsync_testkit::or_skip;
/// A real Home Assistant on loopback with `recorder: db_url`, stopped (SIGTERM) on drop.
pub struct Hass {
    process: ServerProcess,
    port: u16,
    /// Epoch seconds just before the start.
    started_at: f64,
    pub config_dir: tempfile::TempDir,
}

impl Hass {
    pub fn start(hass: &Path, db_url: &str) -> Result<Hass> {
        let config_dir = tempfile::Builder::new().prefix("pwsync-hass-").tempdir()?;
        let port = free_port();
        let (http, http_storage) = ha_chroot::http_config(tested(), port);
        if let Some((name, contents)) = http_storage {
            let storage = config_dir.path().join(".storage");
            std::fs::create_dir_all(&storage)?;
            std::fs::write(storage.join(name), contents)?;
        }
        std::fs::write(
            config_dir.path().join("configuration.yaml"),
            format!(
                "homeassistant:\n  name: pwsync-recorder-test\n  time_zone: Europe/Berlin\n  \
                 unit_system: metric\n  latitude: 52.5\n  longitude: 13.4\n  elevation: 34\n  \
                 country: DE\n  currency: EUR\n\
                 {http}\
                 recorder:\n  db_url: \"{db_url}\"\n  commit_interval: 1\n\
                 logger:\n  default: warning\n"
            ),
        )?;
        let started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64()
            - 1.0;
        // A SQLite file lives in its own temp dir, which HA in a Debian root must see too.
        let sqlite_dir = db_url
            .strip_prefix("sqlite:///")
            .and_then(|p| Path::new(p).parent().map(Path::to_path_buf));
        let mut dirs = vec![config_dir.path()];
        dirs.extend(sqlite_dir.as_deref());
        let mut cmd = venv_command(hass, "bin/hass", &dirs);
        cmd.arg("-c").arg(config_dir.path());
        let process = ServerProcess::spawn("hass", &mut cmd, &config_dir.path().join("hass.out"))?;
        Ok(Hass {
            process,
            port,
            started_at,
            config_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.config_dir.path().join("hass.out")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Wait until HA has fully started (its `homeassistant_started` event is in the database)
    /// and is seen running on it. Stopped before that, HA leaves its recorder run open, as a
    /// crash would.
    pub async fn wait_running(&mut self, url: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.process.child_mut().try_wait() {
                bail!("hass exited ({status}):\n{}", self.log_tail());
            }
            // Its own listener: another process may hold a port we picked (issue 17).
            let http_up = owns_listener(self.pid(), self.port);
            if http_up && self.started(url).await && Self::seen_running(url).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "hass did not open the recorder database:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn started(&self, url: &str) -> bool {
        sqlx::any::install_default_drivers();
        let Ok(pool) = AnyPoolOptions::new().max_connections(1).connect(url).await else {
            return false;
        };
        let sql = format!(
            "SELECT COUNT(*) FROM events e JOIN event_types t ON e.event_type_id = t.event_type_id \
             WHERE t.event_type = 'homeassistant_started' AND e.time_fired_ts >= {}",
            self.started_at
        );
        let n: Result<i64, _> = sqlx::query_scalar(&sql).fetch_one(&pool).await;
        pool.close().await;
        matches!(n, Ok(n) if n > 0)
    }

    async fn seen_running(url: &str) -> bool {
        let options = RecorderOptions {
            read_only: true,
            ..Default::default()
        };
        let Ok(db) = RecorderDb::open_with(url, options).await else {
            return false;
        };
        let status = db.ha_status().await;
        db.close().await;
        matches!(status, Ok(HaStatus::Running { .. }))
    }

    /// SIGTERM and wait: HA closes its recorder run and checkpoints SQLite. Returns HA's exit
    /// status and the end of its log, for a test to show when HA did not stop as expected.
    pub fn stop(&mut self) -> String {
        let t0 = Instant::now();
        let handled = wait_until_handles_sigterm(self.pid(), Duration::from_secs(120));
        let status = self.process.stop_within(Duration::from_secs(120));
        format!(
            "hass stopped after {:.1} s ({status}; it handled SIGTERM: {handled}); its log \
             ends:\n{}",
            t0.elapsed().as_secs_f64(),
            self.log_tail()
        )
    }
}

/// HA's log fails the test that ran it when it warns about what pwsync touches
/// (`pwsync_testkit::ha_log`); checked once HA is done, at drop.
impl Drop for Hass {
    fn drop(&mut self) {
        let log = self.config_dir.path().join("hass.out");
        // These tests start HA on copies of a database whose last recorder run a killed HA left
        // open (the unclean-shutdown cases are what they test), so HA says it cannot validate a
        // clean shutdown: expected here, a finding anywhere else.
        let expected = ["could not validate that the sqlite3 database"];
        if let Err(m) = pwsync_testkit::ha_log::check(&log, &expected) {
            if !std::thread::panicking() {
                panic!("{m}");
            }
        }
    }
}

/// Make a cached fixture once (per process; concurrent processes race harmlessly: the file
/// appears by rename).
static CACHE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("recorder-fixtures-ha-{}", tested().version))
}

async fn cached<F, Fut>(name: &str, make: F) -> Result<PathBuf>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let path = cache_dir().join(name);
    let _guard = CACHE_LOCK.lock().await;
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir())?;
    let tmp = cache_dir().join(format!("{name}.tmp{}", std::process::id()));
    make(tmp.clone())
        .await
        .with_context(|| format!("making fixture {name}"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Run HA against `url` until its schema exists, stop it, and check it stopped cleanly.
async fn let_ha_create_schema(hass: &Path, ha_url: &str, url: &str) -> Result<()> {
    let mut ha = Hass::start(hass, ha_url)?;
    ha.wait_running(url).await?;
    let stopped = ha.stop();
    let db = RecorderDb::open(url).await?;
    let status = db.ha_status().await?;
    db.close().await;
    if status != HaStatus::Stopped {
        bail!("HA did not stop cleanly: {status:?}; {stopped}");
    }
    Ok(())
}

/// The SQLite recorder database HA creates, cached.
pub async fn reference_sqlite(hass: &Path) -> Result<PathBuf> {
    cached("home-assistant_v2.db", |out| async move {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("home-assistant_v2.db");
        let url = format!("sqlite://{}", db.display());
        let_ha_create_schema(hass, &format!("sqlite:///{}", db.display()), &url).await?;
        std::fs::copy(&db, &out)?;
        Ok(())
    })
    .await
}

pub enum Server {
    None,
    MariaDb(MariaDbServer),
    Postgres(PostgresServer),
}

/// A fresh recorder database with HA's schema, on its own server (or file).
pub struct Fixture {
    pub engine: Engine,
    pub url: String,
    pub server: Server,
    /// SQLite: the database file.
    pub path: Option<PathBuf>,
    pub dir: tempfile::TempDir,
    pub hass: PathBuf,
}

impl Fixture {
    pub async fn sqlite() -> Option<Fixture> {
        let hass = or_skip(hass_bin())?;
        let reference = reference_sqlite(&hass).await.unwrap();
        let dir = tempfile::Builder::new()
            .prefix("pwsync-recorder-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("home-assistant_v2.db");
        std::fs::copy(&reference, &path).unwrap();
        Some(Fixture {
            engine: Engine::Sqlite,
            url: format!("sqlite://{}", path.display()),
            server: Server::None,
            path: Some(path),
            dir,
            hass,
        })
    }

    pub async fn mariadb() -> Option<Fixture> {
        let hass = or_skip(hass_bin())?;
        or_skip(MariaDbServer::available())?;
        ensure_driver(&hass, "pymysql", "pymysql").unwrap();
        let h = &hass;
        let dump = cached("mariadb.sql", |out| async move {
            let server = MariaDbServer::start()?;
            let_ha_create_schema(h, &server.ha_db_url(), &server.url()).await?;
            std::fs::write(&out, server.dump(DATABASE)?)?;
            Ok(())
        })
        .await
        .unwrap();
        let server = MariaDbServer::start().unwrap();
        server
            .restore(DATABASE, &std::fs::read(dump).unwrap())
            .unwrap();
        Some(Fixture {
            engine: Engine::MySql,
            url: server.url(),
            server: Server::MariaDb(server),
            path: None,
            dir: tempfile::tempdir().unwrap(),
            hass,
        })
    }

    pub async fn postgres() -> Option<Fixture> {
        let hass = or_skip(hass_bin())?;
        or_skip(PostgresServer::available())?;
        ensure_driver(&hass, "psycopg2", "psycopg2-binary").unwrap();
        let h = &hass;
        let dump = cached("postgres.sql", |out| async move {
            let server = PostgresServer::start()?;
            let_ha_create_schema(h, &server.ha_db_url(), &server.url()).await?;
            std::fs::write(&out, server.dump(DATABASE)?)?;
            Ok(())
        })
        .await
        .unwrap();
        let server = PostgresServer::start().unwrap();
        server
            .restore(DATABASE, &std::fs::read(dump).unwrap())
            .unwrap();
        Some(Fixture {
            engine: Engine::Postgres,
            url: server.url(),
            server: Server::Postgres(server),
            path: None,
            dir: tempfile::tempdir().unwrap(),
            hass,
        })
    }

    /// HA's own `db_url` for this database.
    pub fn ha_db_url(&self) -> String {
        match &self.server {
            Server::None => format!("sqlite:///{}", self.path.as_ref().unwrap().display()),
            Server::MariaDb(s) => s.ha_db_url(),
            Server::Postgres(s) => s.ha_db_url(),
        }
    }

    pub async fn open(&self) -> RecorderDb {
        RecorderDb::open(&self.url).await.unwrap()
    }

    pub async fn open_with(&self, options: RecorderOptions) -> RecorderDb {
        RecorderDb::open_with(&self.url, options).await.unwrap()
    }

    /// A raw connection for test setup and inspection, beside pwsync's own.
    pub async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .unwrap()
    }

    /// Run statements (no parameters) on a raw connection.
    pub async fn exec(&self, sql: &str) {
        let pool = self.raw().await;
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// Everything about the statistics tables a write could change: per table the row count,
    /// the highest id and sums over every value column.
    pub async fn fingerprint(&self) -> Vec<String> {
        let pool = self.raw().await;
        let mut out = Vec::new();
        let r = sqlx::query("SELECT COUNT(*), MAX(id) FROM statistics_meta")
            .fetch_one(&pool)
            .await
            .unwrap();
        out.push(format!(
            "statistics_meta: n={} max_id={:?}",
            r.try_get::<i64, _>(0).unwrap(),
            r.try_get::<Option<i64>, _>(1).unwrap(),
        ));
        for table in ["statistics", "statistics_short_term"] {
            let sql = format!(
                "SELECT COUNT(*), MAX(id), SUM(state), SUM(sum), SUM(start_ts), SUM(created_ts) FROM {table}"
            );
            let r = sqlx::query(&sql).fetch_one(&pool).await.unwrap();
            out.push(format!(
                "{table}: n={} max_id={:?} state={:?} sum={:?} start={:?} created={:?}",
                r.try_get::<i64, _>(0).unwrap(),
                r.try_get::<Option<i64>, _>(1).unwrap(),
                r.try_get::<Option<f64>, _>(2).unwrap(),
                r.try_get::<Option<f64>, _>(3).unwrap(),
                r.try_get::<Option<f64>, _>(4).unwrap(),
                r.try_get::<Option<f64>, _>(5).unwrap(),
            ));
        }
        pool.close().await;
        out
    }

    /// MariaDB/PostgreSQL: wait until the server lists no session on the test database. A
    /// closed connection leaves the server's list a moment later (longer on a loaded machine),
    /// and pwsync counts every session it sees as someone using the database. Watched from a
    /// connection to another database, which pwsync does not count.
    pub async fn wait_for_no_sessions(&self) {
        const PATIENCE: Duration = Duration::from_secs(60);
        // One row per session, described, so a timeout names who held on. MariaDB's LONGTEXT
        // reaches sqlx's Any driver as BLOB; a bounded CHAR decodes as a string.
        let (watch_url, sessions) = match &self.server {
            Server::None => return,
            Server::MariaDb(s) => (
                s.url_for("information_schema"),
                format!(
                    "SELECT CAST(CONCAT_WS(' ', ID, USER, HOST, COMMAND, TIME, STATE, INFO) \
                     AS CHAR(500)) FROM information_schema.PROCESSLIST WHERE DB = '{DATABASE}'"
                ),
            ),
            Server::Postgres(s) => (
                s.url_for("postgres"),
                format!(
                    "SELECT concat_ws(' ', pid, usename, application_name, state, query) \
                     FROM pg_stat_activity WHERE datname = '{DATABASE}'"
                ),
            ),
        };
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&watch_url)
            .await
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let who: Vec<String> = sqlx::query_scalar(&sessions)
                .fetch_all(&pool)
                .await
                .unwrap();
            if who.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} sessions still use {DATABASE} after {PATIENCE:?}: {who:?}; sockets: {}",
                who.len(),
                String::from_utf8_lossy(
                    &std::process::Command::new("ss")
                        .args(["-tnpa"])
                        .output()
                        .map(|o| o.stdout)
                        .unwrap_or_default()
                )
                .lines()
                .filter(|l| who
                    .iter()
                    .any(|w| w.split(' ').nth(2).is_some_and(|h| l.contains(h))))
                .collect::<Vec<_>>()
                .join(" | ")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pool.close().await;
    }

    /// Count rows matching `sql` (a `SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &str) -> i64 {
        let pool = self.raw().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

/// sha256 of a file.
pub fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    format!("{:x}", Sha256::digest(bytes))
}
