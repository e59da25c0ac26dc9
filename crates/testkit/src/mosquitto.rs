//! A real Mosquitto broker on a free loopback port, its config and data in a temp dir, stopped
//! by PID.

use crate::process::{free_port, require, wait_for_port, Missing, ServerProcess};
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Duration;

pub struct Mosquitto {
    process: ServerProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// The broker binary, or why it is missing.
    pub fn available() -> Result<std::path::PathBuf, Missing> {
        require("mosquitto", "apt-get install mosquitto")
    }

    /// Anonymous access.
    pub fn start() -> Result<Mosquitto> {
        Self::start_inner(None)
    }

    /// Only `user` with `password` may connect.
    pub fn start_with_login(user: &str, password: &str) -> Result<Mosquitto> {
        Self::start_inner(Some((user, password)))
    }

    fn start_inner(login: Option<(&str, &str)>) -> Result<Mosquitto> {
        let bin = Self::available().map_err(|m| anyhow::anyhow!("{m}"))?;
        let dir = tempfile::Builder::new()
            .prefix("pwsync-mosquitto-")
            .tempdir()?;
        let port = free_port();
        let mut conf = format!("listener {port} 127.0.0.1\npersistence false\n");
        match login {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let passwd = require("mosquitto_passwd", "apt-get install mosquitto")
                    .map_err(|m| anyhow::anyhow!("{m}"))?;
                let ok = Command::new(passwd)
                    .arg("-b")
                    .arg("-c")
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .context("mosquitto_passwd")?
                    .success();
                if !ok {
                    bail!("mosquitto_passwd failed");
                }
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf)?;
        let mut process = ServerProcess::spawn(
            "mosquitto",
            Command::new(bin).arg("-c").arg(&path),
            &dir.path().join("mosquitto.log"),
        )?;
        wait_for_port(
            port,
            Duration::from_secs(10),
            process.child_mut(),
            "mosquitto",
        )?;
        Ok(Mosquitto { process, port, dir })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}
