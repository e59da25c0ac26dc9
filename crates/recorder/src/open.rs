//! Opening a recorder database: the URL, the connection, the schema check.

use crate::engine::int;
use crate::schema::{self, Columns};
use crate::{Engine, Pool, RecorderDb, RecorderError, RecorderOptions, Result};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Connect once outside the pool and return the connection's session id. A pool retries a
/// refused connection until its 30 s acquire timeout and then says only "pool timed out"; a
/// single connection fails at once with the cause ("connection refused").
macro_rules! probe {
    ($opts:expr, $id_sql:expr) => {
        async {
            use sqlx::{ConnectOptions, Connection};
            let mut conn = $opts.connect().await?;
            let id = sqlx::query_scalar::<_, i64>($id_sql)
                .fetch_one(&mut conn)
                .await;
            conn.close().await?;
            id
        }
    };
}

impl RecorderDb {
    /// Open `url` (`sqlite://<path>` also in HA's `sqlite:////abs/path` form, `mysql://…`,
    /// `mariadb://…`, `postgres://…`, `postgresql://…`) with default options.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, RecorderOptions::default()).await
    }

    pub async fn open_with(url: &str, options: RecorderOptions) -> Result<Self> {
        let display_url = pwsync_redact::url(url);
        let connect = |source| RecorderError::Connect {
            url: display_url.clone(),
            source,
        };
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        let (pool, engine, sqlite_path, probe_session) = match scheme {
            "sqlite" => {
                let path = sqlite_file(url)?;
                let opts = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(false)
                    .read_only(options.read_only)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(connect)?;
                (Pool::Sqlite(pool), Engine::Sqlite, Some(path), None)
            }
            "mysql" | "mariadb" => {
                let u = url.replacen("mariadb:", "mysql:", 1);
                let opts = MySqlConnectOptions::from_str(&u).map_err(connect)?;
                let probe = probe!(opts, "SELECT CAST(CONNECTION_ID() AS SIGNED)")
                    .await
                    .map_err(connect)?;
                // One connection: the liveness check counts every other session as someone else.
                let pool = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(connect)?;
                (Pool::MySql(pool), Engine::MySql, None, Some(probe))
            }
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(connect)?
                    .application_name("pwsync");
                let probe = probe!(opts, "SELECT CAST(pg_backend_pid() AS BIGINT)")
                    .await
                    .map_err(connect)?;
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(connect)?;
                (Pool::Postgres(pool), Engine::Postgres, None, Some(probe))
            }
            _ => {
                return Err(RecorderError::Url(format!(
                    "unsupported recorder database URL {display_url}: use sqlite://<path>, \
                     mysql://user:password@host/db or postgres://user:password@host/db"
                )))
            }
        };
        let mut db = RecorderDb {
            pool,
            engine,
            schema_version: 0,
            columns: Columns::default(),
            sqlite_path,
            options,
            display_url,
            probe_session,
            backup: std::sync::Mutex::new(None),
            apply_lock: tokio::sync::Mutex::new(()),
        };
        db.schema_version = db.read_schema_version().await?;
        if let Some(why) = schema::refusal(db.schema_version) {
            return Err(RecorderError::Refused(why));
        }
        db.columns = db.check_columns().await?;
        tracing::debug!(
            url = %db.display_url,
            schema = db.schema_version,
            unit_class = db.columns.unit_class,
            "recorder database opened"
        );
        Ok(db)
    }

    /// `schema_changes.schema_version` of the highest `change_id`.
    pub fn schema_version(&self) -> i32 {
        self.schema_version
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The optional columns this database has.
    pub fn columns(&self) -> Columns {
        self.columns
    }

    /// The database file, for SQLite.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// Close the pool (SQLite: checkpoints the WAL into the file).
    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }

    async fn read_schema_version(&self) -> Result<i32> {
        let sql = "SELECT schema_version FROM schema_changes ORDER BY change_id DESC LIMIT 1";
        let version: Option<Option<i64>> = on_pool!(&self.pool, p => {
            match sqlx::query(sql).fetch_optional(p).await {
                Ok(row) => row.map(|r| int(&r, 0)).transpose()?,
                Err(e) => {
                    if let Some(why) = self.sqlite_path.as_deref().and_then(read_only_reason) {
                        return Err(RecorderError::Refused(format!(
                            "cannot read {}: {why}",
                            self.display_url
                        )));
                    }
                    return Err(RecorderError::Refused(format!(
                        "{} is not a Home Assistant recorder database (reading schema_changes: \
                         {e}): point pwsync at HA's recorder db_url",
                        self.display_url
                    )))
                }
            }
        });
        match version.flatten() {
            Some(v) => Ok(v as i32),
            None => Err(RecorderError::Refused(format!(
                "{} has no recorder schema version (schema_changes is empty): start Home \
                 Assistant once so it creates its schema",
                self.display_url
            ))),
        }
    }

    async fn column_names(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.engine {
            Engine::Sqlite => "SELECT name FROM pragma_table_info(?)",
            Engine::MySql => {
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ?"
            }
            Engine::Postgres => {
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let names = on_pool!(&self.pool, p => {
            sqlx::query_scalar::<_, String>(sql).bind(table).fetch_all(p).await?
        });
        Ok(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
    }

    async fn check_columns(&self) -> Result<Columns> {
        let mut columns = Columns::default();
        for (table, required) in [
            ("statistics_meta", schema::META_COLUMNS),
            ("statistics", schema::STAT_COLUMNS),
            ("statistics_short_term", schema::STAT_COLUMNS),
            ("recorder_runs", &["run_id", "start", "end"][..]),
        ] {
            let have = self.column_names(table).await?;
            if let Some(missing) = required.iter().find(|c| !have.iter().any(|h| h == *c)) {
                return Err(RecorderError::Refused(format!(
                    "{} says schema version {} but {table} has no column {missing}: the \
                     database is damaged or not Home Assistant's; restore a backup or let HA \
                     recreate it",
                    self.display_url, self.schema_version
                )));
            }
            if table == "statistics_meta" {
                columns.unit_class = have.iter().any(|h| h == "unit_class");
            }
        }
        Ok(columns)
    }
}

/// The SQLite file of a URL: `sqlite://rel/or/abs`, `sqlite:///abs`, HA's `sqlite:////abs`;
/// query parameters are ignored. It must exist: pwsync never creates a recorder database.
fn sqlite_file(url: &str) -> Result<PathBuf> {
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let rest = rest.split('?').next().unwrap_or(rest);
    if rest.is_empty() || rest == ":memory:" {
        return Err(RecorderError::Url(format!(
            "{url} names no database file: use sqlite:///path/to/home-assistant_v2.db"
        )));
    }
    Path::new(rest).canonicalize().map_err(|e| {
        RecorderError::Url(format!(
            "no recorder database at {rest} ({e}): point pwsync at HA's home-assistant_v2.db"
        ))
    })
}

/// What of an SQLite database and its directory this user cannot write, and what to do; `None`
/// when both are writable. SQLite creates `-wal` and `-shm` files beside a WAL database (HA's
/// mode), even to read it, and pwsync its backup.
pub(crate) fn read_only_reason(db: &Path) -> Option<String> {
    let writable = |p: &Path| rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok();
    let dir = db.parent().unwrap_or(Path::new("."));
    let fix = "run pwsync as the user Home Assistant runs as, or make it writable for this user";
    if !writable(dir) {
        Some(format!(
            "the directory {} is read-only for this user{} and SQLite must create {}-wal and \
             -shm beside a WAL database (and pwsync its backup): {fix}",
            dir.display(),
            if writable(db) {
                ""
            } else {
                " (so is the database file)"
            },
            db.display()
        ))
    } else if !writable(db) {
        Some(format!(
            "the database file {} is read-only for this user: {fix}",
            db.display()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_in_every_form_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("home-assistant_v2.db");
        std::fs::write(&f, b"").unwrap();
        let canon = f.canonicalize().unwrap();
        let abs = f.display().to_string();
        for url in [
            format!("sqlite://{abs}"),
            format!("sqlite:///{abs}"),
            format!("sqlite:{abs}?mode=ro"),
        ] {
            assert_eq!(sqlite_file(&url).unwrap(), canon, "{url}");
        }
        let err = sqlite_file("sqlite:///nonexistent/x.db").unwrap_err();
        assert!(err.to_string().contains("no recorder database"), "{err}");
    }
}
