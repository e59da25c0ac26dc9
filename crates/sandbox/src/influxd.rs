//! A real InfluxDB 1.x (`influxd` from Debian's `influxdb` package) in a temp dir.

use crate::http;
use crate::port::free_port;
use crate::process::{require, ServerProcess};
use crate::start::{wait_ready, with_port_retries, StartError};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const INSTALL_HINT: &str = "apt-get install influxdb";
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct InfluxServer {
    dir: tempfile::TempDir,
    port: u16,
    rpc_port: u16,
    process: Option<ServerProcess>,
}

impl InfluxServer {
    /// Start without authentication.
    pub fn start() -> Result<Self> {
        Self::start_on(false, free_port)
    }

    /// Start with authentication on and an admin user `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Result<Self> {
        let s = Self::start_on(true, free_port)?;
        // With auth on and no users, InfluxDB 1.x allows exactly this statement.
        let q = format!("CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES");
        let status = Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", "-XPOST"])
            .arg(format!("{}/query", s.url()))
            .args(["--data-urlencode", &format!("q={q}")])
            .status()
            .context("running curl to create the InfluxDB admin user")?;
        anyhow::ensure!(status.success(), "creating the InfluxDB admin user failed");
        Ok(s)
    }

    /// Start on ports drawn from `ports` (HTTP, then RPC), drawing new ones when influxd finds
    /// one taken. The harness's own tests hand it a taken port first; everyone else wants
    /// [`InfluxServer::start`].
    pub fn start_on(auth: bool, mut ports: impl FnMut() -> u16) -> Result<Self> {
        require("influxd", INSTALL_HINT)?;
        with_port_retries("influxd", || {
            let dir = tempfile::Builder::new()
                .prefix("pwsync-influxd-")
                .tempdir()?;
            let mut s = InfluxServer {
                dir,
                port: ports(),
                rpc_port: ports(),
                process: None,
            };
            s.write_config(auth)?;
            s.spawn()?;
            Ok(s)
        })
    }

    fn write_config(&self, auth: bool) -> Result<()> {
        let d = self.dir.path().display();
        let (port, rpc) = (self.port, self.rpc_port);
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  auth-enabled = {auth}\n  log-enabled = false\n\
             [logging]\n  level = \"warn\"\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n"
        );
        std::fs::write(self.dir.path().join("influxdb.conf"), conf)?;
        Ok(())
    }

    /// Start influxd on this server's config; ready once it owns both ports and answers `/ping`
    /// as InfluxDB (204 with its `X-Influxdb-Version` header).
    fn spawn(&mut self) -> Result<(), StartError> {
        let conf = self.dir.path().join("influxdb.conf");
        let log = self.log_path();
        let mut p = ServerProcess::spawn(
            "influxd",
            Command::new(require("influxd", INSTALL_HINT)?)
                .arg("-config")
                .arg(&conf),
            &log,
        )?;
        let port = self.port;
        wait_ready(
            &mut p,
            &[self.port, self.rpc_port],
            &log,
            START_TIMEOUT,
            || answers_ping(port),
        )?;
        self.process = Some(p);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().map(|p| p.pid()).unwrap_or(0)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("influxd.log")
    }

    /// Stop by PID, keeping the data (an outage).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Start again on the same port with the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().map_err(StartError::into_anyhow)
    }
}

/// Whether InfluxDB answers `/ping` on `port`: 204 and the version header only InfluxDB sends.
pub fn answers_ping(port: u16) -> bool {
    http::get(port, "/ping", Duration::from_secs(2))
        .is_some_and(|r| r.status == 204 && r.header("X-Influxdb-Version").is_some())
}
