//! PostgreSQL (Debian's `postgresql`): it refuses to run as root, so as root `initdb` and
//! `postgres` run as the `postgres` system user through `setpriv` (which execs, so the guarded
//! PID is the server's), in a temp dir chowned to it.

use super::*;

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
    use crate::sqlservers::alive;

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
