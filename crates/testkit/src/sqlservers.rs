//! MariaDB and PostgreSQL from Debian packages, each in its own temp dir on a free loopback
//! port, with a database `homeassistant` owned by a user with a password, stopped by PID on drop.
//!
//! Debian packages: `mariadb-server` (mariadbd, mariadb-install-db, mariadb, mariadb-dump) and
//! `postgresql` (initdb, postgres, psql, pg_dump under /usr/lib/postgresql/<major>/bin).
//! PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres` system
//! user (through `setpriv`, which execs, so the guarded PID is the server's) in a temp dir
//! chowned to it. mariadbd runs as the calling user (`--user=root` when that is root). Sockets
//! live in the temp dir, so parallel servers never collide.

use crate::process::{
    free_port, require, run, wait_ready, with_port_retries, Missing, ServerProcess, StartError,
};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The database every server creates, as HA's docs name it.
pub const DATABASE: &str = "homeassistant";
/// The user that owns [`DATABASE`] (HA connects as this user).
pub const USER: &str = "homeassistant";

pub const MARIADB_INSTALL_HINT: &str = "apt-get install mariadb-server";
pub const POSTGRES_INSTALL_HINT: &str = "apt-get install postgresql";

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn password() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("pw{}x{nanos}", std::process::id())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Run a client command feeding `input` on stdin.
fn run_with_input(cmd: &mut Command, input: &[u8], what: &str) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {what}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("stdin writer panicked"))?
        .with_context(|| format!("feeding {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// A MariaDB server on 127.0.0.1 with database [`DATABASE`] owned by [`USER`].
pub struct MariaDbServer {
    process: ServerProcess,
    port: u16,
    password: String,
    dir: TempDir,
}

impl MariaDbServer {
    /// `mariadbd`, or why it is missing.
    pub fn available() -> Result<PathBuf, Missing> {
        require("mariadbd", MARIADB_INSTALL_HINT)
    }

    /// Initialise a data dir (mariadb-install-db), start mariadbd, create the database and user.
    /// A missing binary is an error that downcasts to [`Missing`].
    pub fn start() -> Result<Self> {
        let mariadbd = Self::available()?;
        let install_db = require("mariadb-install-db", MARIADB_INSTALL_HINT)?;
        require("mariadb", MARIADB_INSTALL_HINT)?;
        let dir = tempfile::Builder::new()
            .prefix("pwsync-mariadb-")
            .tempdir()?;
        let data = dir.path().join("data");
        // mariadbd's temp files go to the temp dir too: in the shared /tmp, bootstrap failed
        // now and then with "Could not remove temporary table" while other tests ran.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let mut install = Command::new(install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .env("TMPDIR", &tmp)
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db");
        if is_root() {
            install.arg("--user=root");
        }
        run(&mut install, "mariadb-install-db")?;

        let log = dir.path().join("mariadbd.log");
        let socket = dir.path().join("mysqld.sock");
        let (process, port) = with_port_retries("mariadbd", || {
            let port = free_port();
            let mut cmd = Command::new(&mariadbd);
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    dir.path().join("mysqld.pid").display()
                ))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--skip-name-resolve")
                .arg("--skip-log-bin")
                .arg("--innodb-flush-log-at-trx-commit=0")
                .arg("--innodb-buffer-pool-size=64M");
            if is_root() {
                cmd.arg("--user=root");
            }
            let mut process = ServerProcess::spawn("mariadbd", &mut cmd, &log)?;
            // A login over its own socket that reports this port: the server we started.
            wait_ready(&mut process, &[port], &log, START_TIMEOUT, || {
                mariadb_root_sql(&socket, "SELECT @@port")
                    .is_ok_and(|out| out.trim() == port.to_string())
            })?;
            Ok::<_, StartError>((process, port))
        })?;
        let server = MariaDbServer {
            process,
            port,
            password: password(),
            dir,
        };
        server.create_database(DATABASE)?;
        tracing::debug!(port, pid = server.pid(), "mariadb started");
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
    pub fn password(&self) -> &str {
        &self.password
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// sqlx form: `mysql://homeassistant:…@127.0.0.1:<port>/homeassistant`.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "mysql://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }
    /// HA's `recorder: db_url` form (PyMySQL driver, utf8mb4 as HA's docs say).
    pub fn ha_db_url(&self) -> String {
        self.ha_db_url_for(DATABASE)
    }
    pub fn ha_db_url_for(&self, database: &str) -> String {
        format!(
            "mysql+pymysql://{USER}:{}@127.0.0.1:{}/{database}?charset=utf8mb4",
            self.password, self.port
        )
    }

    /// Create another database with HA's character set, owned (all privileges) by [`USER`].
    pub fn create_database(&self, name: &str) -> Result<()> {
        check_ident(name)?;
        self.root_sql(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; \
             CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{pw}'; \
             GRANT ALL PRIVILEGES ON `{name}`.* TO '{USER}'@'%';",
            pw = self.password
        ))?;
        Ok(())
    }

    /// Run SQL as root (tab-separated output, no headers).
    pub fn root_sql(&self, sql: &str) -> Result<String> {
        mariadb_root_sql(&self.socket(), sql)
    }

    /// `mariadb-dump` of `database` (schema, rows, AUTO_INCREMENT counters).
    pub fn dump(&self, database: &str) -> Result<Vec<u8>> {
        check_ident(database)?;
        run(
            self.client("mariadb-dump")
                .args(["--single-transaction", "--skip-dump-date"])
                .arg(database),
            "mariadb-dump",
        )
    }

    /// Load a [`dump`](Self::dump) into `database` (which must exist).
    pub fn restore(&self, database: &str, dump: &[u8]) -> Result<()> {
        check_ident(database)?;
        run_with_input(
            self.client("mariadb").arg(database),
            dump,
            "mariadb restore",
        )?;
        Ok(())
    }

    fn client(&self, binary: &str) -> Command {
        mariadb_client(binary, &self.socket())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Stop the server by its PID (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// A MariaDB client as root over the server's own socket.
fn mariadb_client(binary: &str, socket: &Path) -> Command {
    let mut c = Command::new(binary);
    c.arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-u", "root"]);
    c
}

fn mariadb_root_sql(socket: &Path, sql: &str) -> Result<String> {
    let out = run(
        mariadb_client("mariadb", socket).args(["-N", "-B", "-e", sql]),
        "mariadb client",
    )?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A PostgreSQL server on 127.0.0.1 with database [`DATABASE`] owned by [`USER`].
pub struct PostgresServer {
    process: ServerProcess,
    port: u16,
    bin: PathBuf,
    password: String,
    superuser_password: String,
    dir: TempDir,
}

impl PostgresServer {
    /// The directory holding `postgres` and `initdb`: `PWSYNC_PG_BIN`, the newest
    /// /usr/lib/postgresql/<major>/bin (Debian), or PATH.
    pub fn available() -> Result<PathBuf, Missing> {
        let has = |d: &Path| d.join("postgres").is_file() && d.join("initdb").is_file();
        if let Some(d) = std::env::var_os("PWSYNC_PG_BIN").map(PathBuf::from) {
            if has(&d) {
                return Ok(d);
            }
        }
        let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .filter(|(_, d)| has(d))
            .collect();
        debian.sort();
        if let Some((_, d)) = debian.pop() {
            return Ok(d);
        }
        let postgres = require("postgres", POSTGRES_INSTALL_HINT)?;
        let d = postgres.parent().map(Path::to_path_buf).unwrap_or_default();
        if has(&d) {
            Ok(d)
        } else {
            Err(Missing {
                binary: "initdb".into(),
                install_hint: POSTGRES_INSTALL_HINT.into(),
            })
        }
    }

    /// initdb a data dir, start postgres, create the role and database.
    /// A missing binary is an error that downcasts to [`Missing`].
    pub fn start() -> Result<Self> {
        let bin = Self::available()?;
        let dir = tempfile::Builder::new()
            .prefix("pwsync-postgres-")
            .tempdir_in("/tmp")?;
        let run_as = if is_root() {
            let (uid, gid) = system_user("postgres").context(
                "PostgreSQL refuses to run as root and there is no `postgres` system user \
                 (apt-get install postgresql creates it)",
            )?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
            Some((uid, gid))
        } else {
            None
        };
        let as_server_user = |program: &Path| -> Command {
            match run_as {
                Some((uid, gid)) => {
                    let mut c = Command::new("setpriv");
                    c.arg(format!("--reuid={uid}"))
                        .arg(format!("--regid={gid}"))
                        .arg("--init-groups")
                        .arg("--")
                        .arg(program)
                        .current_dir(dir.path());
                    c
                }
                None => Command::new(program),
            }
        };

        let superuser_password = password() + "su";
        let pwfile = dir.path().join("superuser.pw");
        std::fs::write(&pwfile, &superuser_password)?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let data = dir.path().join("data");
        run(
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync", "--no-instructions"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        )?;
        std::fs::remove_file(&pwfile)?;

        let log = dir.path().join("postgres.log");
        let (process, port) = with_port_retries("postgres", || {
            let port = free_port();
            let mut cmd = as_server_user(&bin.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
                .args(["-c", "synchronous_commit=off"]);
            let mut process = ServerProcess::spawn("postgres", &mut cmd, &log)?;
            // A login over TCP with this server's own superuser password: ours, and ready.
            wait_ready(&mut process, &[port], &log, START_TIMEOUT, || {
                let mut psql =
                    superuser_client(&bin, "psql", port, &superuser_password, "postgres");
                run(
                    psql.args(["-X", "-q", "-t", "-A", "-c", "SELECT 1"]),
                    "psql",
                )
                .is_ok_and(|out| String::from_utf8_lossy(&out).trim() == "1")
            })?;
            Ok::<_, StartError>((process, port))
        })?;
        let server = PostgresServer {
            process,
            port,
            bin,
            password: password(),
            superuser_password,
            dir,
        };
        server.superuser_sql(
            "postgres",
            &format!("CREATE ROLE {USER} LOGIN PASSWORD '{}'", server.password),
        )?;
        server.create_database(DATABASE)?;
        tracing::debug!(port, pid = server.pid(), "postgres started");
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
    pub fn password(&self) -> &str {
        &self.password
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// sqlx form: `postgres://homeassistant:…@127.0.0.1:<port>/homeassistant`.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }
    /// HA's `recorder: db_url` form (psycopg2 driver).
    pub fn ha_db_url(&self) -> String {
        self.ha_db_url_for(DATABASE)
    }
    pub fn ha_db_url_for(&self, database: &str) -> String {
        format!(
            "postgresql://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Create another database owned by [`USER`], optionally as a copy of `template`
    /// (PostgreSQL copies the template's tables, rows and identity sequences).
    pub fn create_database_from(&self, name: &str, template: Option<&str>) -> Result<()> {
        check_ident(name)?;
        let template = match template {
            Some(t) => {
                check_ident(t)?;
                format!(" TEMPLATE {t}")
            }
            None => String::new(),
        };
        self.superuser_sql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER {USER} ENCODING 'UTF8'{template}"),
        )?;
        Ok(())
    }
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.create_database_from(name, None)
    }

    /// Run SQL as the superuser in `database` (unaligned, tuples only).
    pub fn superuser_sql(&self, database: &str, sql: &str) -> Result<String> {
        let out = run(
            self.client("psql", database).args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]),
            "psql",
        )?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `pg_dump` of `database` as plain SQL (schema, rows, identity sequence values).
    pub fn dump(&self, database: &str) -> Result<Vec<u8>> {
        run(
            self.client("pg_dump", database).arg("--no-owner"),
            "pg_dump",
        )
    }

    /// Load a [`dump`](Self::dump) into `database` (which must exist), as [`USER`].
    pub fn restore(&self, database: &str, dump: &[u8]) -> Result<()> {
        let mut c = Command::new(self.bin.join("psql"));
        c.env("PGPASSWORD", &self.password)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]);
        run_with_input(&mut c, dump, "psql restore")?;
        Ok(())
    }

    fn client(&self, program: &str, database: &str) -> Command {
        superuser_client(
            &self.bin,
            program,
            self.port,
            &self.superuser_password,
            database,
        )
    }

    /// Stop the server by its PID (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// A PostgreSQL client (`psql`, `pg_dump`) logging in over TCP as the superuser.
fn superuser_client(
    bin: &Path,
    program: &str,
    port: u16,
    superuser_password: &str,
    database: &str,
) -> Command {
    let mut c = Command::new(bin.join(program));
    c.env("PGPASSWORD", superuser_password)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", database]);
    c
}

/// Database names are pasted into SQL: letters, digits and `_` only.
fn check_ident(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 63
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("not a plain database name: {name:?}");
    }
    Ok(())
}

/// uid and gid of a system user.
fn system_user(name: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = run(Command::new("id").args([flag, name]), "id")?;
        Ok(String::from_utf8_lossy(&out).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn mariadb_serves_the_user_over_tcp_and_stops_by_pid() {
        if crate::or_skip(MariaDbServer::available()).is_none() {
            return;
        }
        let mut db = MariaDbServer::start().unwrap();
        let out = run(
            Command::new("mariadb")
                .arg("--no-defaults")
                .args(["-h", "127.0.0.1", "-P", &db.port().to_string(), "-u", USER])
                .arg(format!("-p{}", db.password()))
                .args([
                    "-N",
                    "-B",
                    DATABASE,
                    "-e",
                    "SELECT DATABASE(), @@character_set_database",
                ]),
            "mariadb",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out).trim(),
            "homeassistant\tutf8mb4"
        );
        assert!(db.url().starts_with("mysql://homeassistant:"));
        assert!(db.ha_db_url().starts_with("mysql+pymysql://"));
        db.create_database("copy1").unwrap();
        db.root_sql("CREATE TABLE homeassistant.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT); INSERT INTO homeassistant.t (v) VALUES (7)")
            .unwrap();
        let dump = db.dump(DATABASE).unwrap();
        db.restore("copy1", &dump).unwrap();
        assert_eq!(db.root_sql("SELECT v FROM copy1.t").unwrap().trim(), "7");
        let pid = db.pid();
        assert!(alive(pid));
        db.stop();
        assert!(!alive(pid), "mariadbd {pid} still running");
    }

    #[test]
    fn postgres_serves_the_user_over_tcp_and_stops_by_pid() {
        if crate::or_skip(PostgresServer::available()).is_none() {
            return;
        }
        let mut db = PostgresServer::start().unwrap();
        let mut c = Command::new(db.bin.join("psql"));
        c.env("PGPASSWORD", db.password())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &db.port().to_string(),
                "-U",
                USER,
                "-d",
                DATABASE,
            ])
            .args([
                "-X",
                "-t",
                "-A",
                "-c",
                "SELECT current_user, current_database()",
            ]);
        let out = run(&mut c, "psql").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out).trim(),
            "homeassistant|homeassistant"
        );
        assert!(db.url().starts_with("postgres://homeassistant:"));
        db.restore(
            DATABASE,
            b"CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v INT); INSERT INTO t (v) VALUES (7);",
        )
        .unwrap();
        db.create_database_from("copy1", Some(DATABASE)).unwrap();
        assert_eq!(
            db.superuser_sql("copy1", "INSERT INTO t (v) VALUES (8) RETURNING id")
                .unwrap()
                .trim(),
            "2"
        );
        let pid = db.pid();
        assert!(alive(pid));
        db.stop();
        assert!(!alive(pid), "postgres {pid} still running");
    }
}
