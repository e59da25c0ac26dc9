//! MariaDB (Debian's `mariadb-server`): `mariadbd` runs as the calling user (`--user=root`
//! when that is root), its socket in its temp dir.

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlservers::alive;

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
}
