//! A real Mosquitto broker on a free loopback port, its config and data in a temp dir, stopped
//! by PID.

use crate::process::StartError;
use crate::process::{free_port, require, wait_ready, with_port_retries, Missing, ServerProcess};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Mosquitto {
    process: ServerProcess,
    port: u16,
    /// The mqtts listener and the CA certificate that signed its certificate, when started
    /// with [`Mosquitto::start_with_tls`].
    tls: Option<(u16, PathBuf)>,
    dir: tempfile::TempDir,
}

/// A listener's TLS files: a CA and a certificate it signed for 127.0.0.1 and localhost.
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Mosquitto {
    /// The broker binary, or why it is missing.
    pub fn available() -> Result<std::path::PathBuf, Missing> {
        require("mosquitto", "apt-get install mosquitto")
    }

    /// Anonymous access.
    pub fn start() -> Result<Mosquitto> {
        Self::start_inner(None, false)
    }

    /// Only `user` with `password` may connect.
    pub fn start_with_login(user: &str, password: &str) -> Result<Mosquitto> {
        Self::start_inner(Some((user, password)), false)
    }

    /// Anonymous access on a plain listener and on an mqtts listener whose certificate a CA
    /// made for the test signed (see [`Mosquitto::tls_url`], [`Mosquitto::ca_file`]).
    pub fn start_with_tls() -> Result<Mosquitto> {
        Self::start_inner(None, true)
    }

    fn start_inner(login: Option<(&str, &str)>, tls: bool) -> Result<Mosquitto> {
        let bin = Self::available()?;
        let dir = tempfile::Builder::new()
            .prefix("pwsync-mosquitto-")
            .tempdir()?;
        let mut common = String::from("persistence false\n");
        match login {
            None => common.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.path().join("passwd");
                let passwd = require("mosquitto_passwd", "apt-get install mosquitto")?;
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
                common.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        let tls_files = if tls {
            Some(make_tls_files(&dir.path().join("tls"))?)
        } else {
            None
        };
        let (process, port, tls) = with_port_retries("mosquitto", || {
            let port = free_port();
            let mut conf = format!("listener {port} 127.0.0.1\n{common}");
            let mut ports = vec![port];
            let tls = match &tls_files {
                Some(files) => {
                    let tls_port = free_port();
                    // Started as root, mosquitto loads certificates after changing to its own
                    // user, which cannot read this temp dir; `user root` keeps it (ignored when
                    // not root).
                    conf.insert_str(0, "user root\n");
                    conf.push_str(&format!(
                        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                        files.ca.display(),
                        files.cert.display(),
                        files.key.display()
                    ));
                    ports.push(tls_port);
                    Some((tls_port, files.ca.clone()))
                }
                None => None,
            };
            let path = dir.path().join("mosquitto.conf");
            std::fs::write(&path, conf)?;
            let log = dir.path().join("mosquitto.log");
            let mut process =
                ServerProcess::spawn("mosquitto", Command::new(&bin).arg("-c").arg(&path), &log)?;
            wait_ready(&mut process, &ports, &log, START_TIMEOUT, || {
                answers_connack(port)
            })?;
            Ok::<_, StartError>((process, port, tls))
        })?;
        Ok(Mosquitto {
            process,
            port,
            tls,
            dir,
        })
    }

    /// `mqtts://127.0.0.1:<port>` of the TLS listener.
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(port, _)| format!("mqtts://127.0.0.1:{port}"))
    }

    /// The PEM file of the CA that signed the TLS listener's certificate.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|(_, ca)| ca.as_path())
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

    /// Start again with the same configuration on the same ports (a broker that comes up
    /// later, or comes back after an outage). Retained messages are gone: persistence is off.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let bin = Self::available()?;
        let conf = self.dir.path().join("mosquitto.conf");
        let log = self.dir.path().join("mosquitto.log");
        let mut process =
            ServerProcess::spawn("mosquitto", Command::new(&bin).arg("-c").arg(&conf), &log)?;
        let mut ports = vec![self.port];
        ports.extend(self.tls.as_ref().map(|(p, _)| *p));
        let port = self.port;
        wait_ready(&mut process, &ports, &log, START_TIMEOUT, || {
            answers_connack(port)
        })
        .map_err(StartError::into_anyhow)?;
        self.process = process;
        Ok(())
    }
}

/// Whether an MQTT broker on `port` answers a CONNECT (MQTT 3.1.1, clean session) with a
/// CONNACK, accepted or not: the broker speaking, not just something listening.
pub fn answers_connack(port: u16) -> bool {
    const CLIENT_ID: &[u8] = b"pwsync-harness-probe";
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut connect = vec![0x10, (12 + CLIENT_ID.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10]);
    connect.extend_from_slice(&[0, CLIENT_ID.len() as u8]);
    connect.extend_from_slice(CLIENT_ID);
    let mut connack = [0u8; 4];
    let answered = s.write_all(&connect).is_ok()
        && s.read_exact(&mut connack).is_ok()
        && connack[..2] == [0x20, 0x02];
    let _ = s.write_all(&[0xE0, 0x00]); // DISCONNECT
    answered
}

/// A self-signed CA in `dir` (`ca.pem`, `ca.key`), as `openssl` makes one.
pub fn make_ca(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let ca = dir.join("ca.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pwsync test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        path_str(&dir.join("ca.key"))?,
        "-out",
        path_str(&ca)?,
    ])?;
    Ok(ca)
}

fn make_tls_files(dir: &Path) -> Result<TlsFiles> {
    let ca = make_ca(dir)?;
    let (key, csr, cert, ext) = (
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
        dir.join("server.ext"),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        path_str(&key)?,
        "-out",
        path_str(&csr)?,
    ])?;
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-CAcreateserial",
        "-in",
        path_str(&csr)?,
        "-CA",
        path_str(&ca)?,
        "-CAkey",
        path_str(&dir.join("ca.key"))?,
        "-extfile",
        path_str(&ext)?,
        "-out",
        path_str(&cert)?,
    ])?;
    Ok(TlsFiles { ca, cert, key })
}

fn openssl(args: &[&str]) -> Result<()> {
    let bin = require("openssl", "apt-get install openssl").map_err(|m| anyhow::anyhow!("{m}"))?;
    let out = Command::new(bin).args(args).output().context("openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 temp path")
}
