//! A real InfluxDB 1.x (`influxd` from Debian's `influxdb` package) in a temp dir.

use crate::process::{free_port, require, wait_for_port, ServerProcess};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct InfluxServer {
    dir: tempfile::TempDir,
    port: u16,
    process: Option<ServerProcess>,
}

impl InfluxServer {
    /// Start without authentication.
    pub fn start() -> Result<Self> {
        Self::start_inner(false)
    }

    /// Start with authentication on and an admin user `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Result<Self> {
        let s = Self::start_inner(true)?;
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

    fn start_inner(auth: bool) -> Result<Self> {
        require("influxd", "apt-get install influxdb")?;
        let dir = tempfile::Builder::new()
            .prefix("pwsync-influxd-")
            .tempdir()?;
        let port = free_port();
        let rpc = free_port();
        let d = dir.path().display();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  auth-enabled = {auth}\n  log-enabled = false\n\
             [logging]\n  level = \"warn\"\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n"
        );
        std::fs::write(dir.path().join("influxdb.conf"), conf)?;
        let mut s = InfluxServer {
            dir,
            port,
            process: None,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let conf = self.dir.path().join("influxdb.conf");
        let mut p = ServerProcess::spawn(
            "influxd",
            Command::new(require("influxd", "apt-get install influxdb")?)
                .arg("-config")
                .arg(&conf),
            &self.dir.path().join("influxd.log"),
        )?;
        wait_for_port(self.port, Duration::from_secs(30), p.child_mut(), "influxd")?;
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
        self.spawn()
    }
}
