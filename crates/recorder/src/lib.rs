//! HA's recorder database as a [`StatisticsStore`]: SQLite, MariaDB/MySQL or PostgreSQL,
//! written directly while Home Assistant is stopped (SPEC §3 "Recorder DB directly").
//!
//! [`RecorderDb::open`] checks the schema version against [`schema::SUPPORTED`] and reads the
//! optional columns the database has. Reads work while HA runs. [`StatisticsStore::apply`]
//! refuses while HA runs ([`HaStatus`]), backs an SQLite file up before the first write, and
//! applies the whole plan in one transaction: metadata rows created where missing (ids from the
//! database, `mean_type` explicit), shifts, then upserts by `(metadata_id, start_ts)`.
//! Values cross this boundary in kWh and are stored in the statistic's own energy unit.

pub mod liveness;
pub mod schema;

pub use liveness::HaStatus;
use pwsync_energy::{floor_hour, StatRow};
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, StoreError, Table, WritePlan};
use schema::{Columns, EnergyUnit};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Rows per multi-row INSERT: 5 parameters each, far below every engine's limit
/// (SQLite 32766, MySQL and PostgreSQL 65535).
const ROWS_PER_INSERT: usize = 500;

/// The database engine behind a recorder URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
    Postgres,
}

impl Engine {
    /// Short name, as [`StatisticsStore::kind`] reports it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::MySql => "mysql",
            Engine::Postgres => "postgres",
        }
    }
}

/// How to open a recorder database.
#[derive(Debug, Clone, Default)]
pub struct RecorderOptions {
    /// Open read-only (SQLite: a read-only connection); `apply` is refused.
    pub read_only: bool,
    /// Write although the last recorder run has no end, when nothing is seen using the
    /// database (HA crashed). Never overrides a running HA.
    pub allow_unclean_shutdown: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The URL is malformed or names an unsupported engine, or the file does not exist.
    #[error("{0}")]
    Url(String),
    /// Could not connect.
    #[error("cannot open the recorder database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// Not HA's recorder database, an unknown schema version, HA running, read-only.
    #[error("{0}")]
    Refused(String),
    /// The plan cannot be written (non-finite values, a statistic in a non-energy unit).
    #[error("{0}")]
    Invalid(String),
    /// A statement failed; the transaction was rolled back.
    #[error("recorder database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The SQLite backup could not be made; nothing was written.
    #[error("could not back up {db} to {backup}: {source}")]
    Backup {
        db: PathBuf,
        backup: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<RecorderError> for StoreError {
    fn from(e: RecorderError) -> Self {
        match e {
            RecorderError::Url(_) | RecorderError::Connect { .. } => {
                StoreError::Connection(e.to_string())
            }
            RecorderError::Refused(_) => StoreError::Refused(e.to_string()),
            _ => StoreError::Command(e.to_string()),
        }
    }
}

type Result<T, E = RecorderError> = std::result::Result<T, E>;

enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// Run `$body` with `$p` bound to the engine's pool; the body is compiled once per engine.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::MySql($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// A recorder database. See the crate docs.
pub struct RecorderDb {
    pool: Pool,
    engine: Engine,
    schema_version: i32,
    columns: Columns,
    /// The canonical path of an SQLite database.
    sqlite_path: Option<PathBuf>,
    options: RecorderOptions,
    /// The URL without its password, for messages.
    display_url: String,
    backup: std::sync::Mutex<Option<PathBuf>>,
    /// Serialises `apply` (one backup, one transaction at a time).
    apply_lock: tokio::sync::Mutex<()>,
}

impl RecorderDb {
    /// Open `url` (`sqlite://<path>` also in HA's `sqlite:////abs/path` form, `mysql://…`,
    /// `mariadb://…`, `postgres://…`, `postgresql://…`) with default options.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, RecorderOptions::default()).await
    }

    pub async fn open_with(url: &str, options: RecorderOptions) -> Result<Self> {
        let display_url = redact(url);
        let connect = |source| RecorderError::Connect {
            url: display_url.clone(),
            source,
        };
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        let (pool, engine, sqlite_path) = match scheme {
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
                (Pool::Sqlite(pool), Engine::Sqlite, Some(path))
            }
            "mysql" | "mariadb" => {
                let u = url.replacen("mariadb:", "mysql:", 1);
                let opts = MySqlConnectOptions::from_str(&u).map_err(connect)?;
                // One connection: the liveness check counts every other session as someone else.
                let pool = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(connect)?;
                (Pool::MySql(pool), Engine::MySql, None)
            }
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(connect)?
                    .application_name("pwsync");
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .map_err(connect)?;
                (Pool::Postgres(pool), Engine::Postgres, None)
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

    /// The SQLite backup made before the first write, once made.
    /// The database file, for SQLite.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    pub fn backup_path(&self) -> Option<PathBuf> {
        self.backup.lock().expect("backup lock").clone()
    }

    /// What the user should know about backups, for the CLI to print before writing.
    pub fn backup_note(&self) -> String {
        match (&self.sqlite_path, self.backup_path()) {
            (_, Some(b)) => format!("backup of the recorder database: {}", b.display()),
            (Some(p), None) => format!(
                "pwsync copies {} next to it before its first write",
                p.display()
            ),
            (None, _) => format!(
                "pwsync cannot back up a {} database: make a backup yourself ({}) before writing",
                self.engine.name(),
                match self.engine {
                    Engine::MySql => "e.g. mariadb-dump --single-transaction homeassistant",
                    _ => "e.g. pg_dump homeassistant",
                }
            ),
        }
    }

    /// Close the pool (SQLite: checkpoints the WAL into the file).
    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }

    /// `?` placeholders in `sql` as this engine wants them.
    fn sql(&self, sql: &str) -> String {
        if self.engine != Engine::Postgres {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// A column name quoted for this engine (`end` is a keyword).
    fn quote(&self, column: &str) -> String {
        match self.engine {
            Engine::MySql => format!("`{column}`"),
            _ => format!("\"{column}\""),
        }
    }

    /// Columns of `statistics_meta` pwsync reads, in this order. Text columns are cast: since
    /// schema 53 HA makes MySQL tables with a binary collation, which MySQL reports as
    /// VARBINARY, and sqlx will not decode that as a string.
    fn meta_select(&self) -> String {
        format!(
            "SELECT {}, {}, {}, has_sum, mean_type, {} FROM statistics_meta",
            self.text_cast("statistic_id"),
            self.text_cast("source"),
            self.text_cast("unit_of_measurement"),
            self.text_cast("name"),
        )
    }

    /// `(id, unit)` of the statistic bound to `?` (the unit cast as in [`Self::meta_select`]).
    fn lookup_sql(&self) -> String {
        self.sql(&format!(
            "SELECT id, {} FROM statistics_meta WHERE statistic_id = ?",
            self.text_cast("unit_of_measurement")
        ))
    }

    fn text_cast(&self, expr: &str) -> String {
        match self.engine {
            Engine::MySql => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    async fn read_schema_version(&self) -> Result<i32> {
        let sql = "SELECT schema_version FROM schema_changes ORDER BY change_id DESC LIMIT 1";
        let version: Option<Option<i64>> = on_pool!(&self.pool, p => {
            match sqlx::query(sql).fetch_optional(p).await {
                Ok(row) => row.map(|r| int(&r, 0)).transpose()?,
                Err(e) => {
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

    /// Whether HA is using the database, checked now.
    pub async fn ha_status(&self) -> Result<HaStatus> {
        // Who else uses the database: processes holding the SQLite file, or other sessions.
        let others: Vec<String> = match (&self.pool, &self.sqlite_path) {
            (Pool::Sqlite(_), Some(path)) => liveness::sqlite_holders(path)
                .iter()
                .map(|h| format!("{h} has {} open", path.display()))
                .collect(),
            (Pool::MySql(p), _) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT CONCAT('session ', ID, ' of ', USER, '@', HOST) \
                     FROM information_schema.PROCESSLIST \
                     WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
                )
                .fetch_all(p)
                .await?
            }
            (Pool::Postgres(p), _) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT 'session ' || pid || ' of ' || usename::text || '@' \
                     || COALESCE(host(client_addr), 'local socket') \
                     || COALESCE(' (' || NULLIF(application_name, '') || ')', '') \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_all(p)
                .await?
            }
            _ => Vec::new(),
        };
        let sql = format!(
            "SELECT {}, {} FROM recorder_runs ORDER BY run_id DESC LIMIT 1",
            self.text_cast("start"),
            self.text_cast(&self.quote("end")),
        );
        let last_run: Option<(Option<String>, Option<String>)> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).fetch_optional(p).await?
        });
        let open_run_start = match last_run {
            Some((start, None)) => Some(start.unwrap_or_default()),
            _ => None,
        };
        let status = match (open_run_start, others.is_empty()) {
            // SQLite: any other process with the file open is a live writer.
            (_, false) if self.engine == Engine::Sqlite => HaStatus::Running {
                detail: others.join("; "),
            },
            (Some(start), false) => HaStatus::Running {
                detail: format!(
                    "recorder run started {start} is open; {}",
                    others.join("; ")
                ),
            },
            (Some(run_start), true) => HaStatus::UncleanShutdown { run_start },
            (None, _) => {
                if !others.is_empty() {
                    tracing::warn!(
                        sessions = %others.join("; "),
                        "other sessions use the recorder database, but HA's last run has ended"
                    );
                }
                HaStatus::Stopped
            }
        };
        Ok(status)
    }

    /// Refuse a write unless HA is stopped (or crashed and that is allowed).
    async fn check_writable(&self) -> Result<()> {
        if self.options.read_only {
            return Err(RecorderError::Refused(format!(
                "{} is open read-only: open it without read_only to write",
                self.display_url
            )));
        }
        if let Some(why) = self
            .ha_status()
            .await?
            .refusal(self.options.allow_unclean_shutdown)
        {
            return Err(RecorderError::Refused(why));
        }
        Ok(())
    }

    /// SQLite: copy the file next to itself before the first write; the copy is byte for byte
    /// the database as HA left it (the WAL checkpointed into it first).
    async fn backup_once(&self) -> Result<()> {
        let (Pool::Sqlite(pool), Some(db)) = (&self.pool, &self.sqlite_path) else {
            return Ok(());
        };
        if self.backup_path().is_some() {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut backup = PathBuf::from(format!("{}.pwsync-backup-{stamp}", db.display()));
        let mut n = 1;
        while backup.exists() {
            n += 1;
            backup = PathBuf::from(format!("{}.pwsync-backup-{stamp}-{n}", db.display()));
        }
        let (from, to) = (db.clone(), backup.clone());
        tokio::task::spawn_blocking(move || std::fs::copy(&from, &to))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|source| RecorderError::Backup {
                db: db.clone(),
                backup: backup.clone(),
                source,
            })?;
        tracing::info!(backup = %backup.display(), "recorder database backed up");
        *self.backup.lock().expect("backup lock") = Some(backup);
        Ok(())
    }

    async fn meta_rows(&self, filter: Option<&[String]>) -> Result<Vec<StatMeta>> {
        let sql = match filter {
            Some(ids) => self.sql(&format!(
                "{} WHERE statistic_id IN ({}) ORDER BY statistic_id",
                self.meta_select(),
                vec!["?"; ids.len()].join(", ")
            )),
            None => format!("{} ORDER BY statistic_id", self.meta_select()),
        };
        let ids = filter.unwrap_or(&[]);
        on_pool!(&self.pool, p => {
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await?.iter().map(meta_from_row).collect()
        })
    }

    /// `(id, unit)` of a statistic.
    async fn lookup(&self, statistic_id: &str) -> Result<Option<(i64, Option<String>)>> {
        let sql = self.lookup_sql();
        on_pool!(&self.pool, p => {
            match sqlx::query(&sql).bind(statistic_id).fetch_optional(p).await? {
                Some(r) => Ok(Some((int(&r, 0)?.unwrap_or_default(), r.try_get(1)?))),
                None => Ok(None),
            }
        })
    }

    async fn rows(
        &self,
        statistic_id: &str,
        table: Table,
        range: (Option<i64>, i64),
        last_only: bool,
    ) -> Result<Vec<StatRow>> {
        let Some((meta_id, unit)) = self.lookup(statistic_id).await? else {
            return Ok(Vec::new());
        };
        let unit = EnergyUnit::parse(unit.as_deref());
        let (from, to) = range;
        let sql = self.sql(&format!(
            "SELECT start_ts, state, sum FROM {} WHERE metadata_id = ?{} AND start_ts < ? \
             ORDER BY start_ts {}",
            table_name(table),
            if from.is_some() {
                " AND start_ts >= ?"
            } else {
                ""
            },
            if last_only { "DESC LIMIT 1" } else { "ASC" },
        ));
        let rows: Vec<StatRow> = on_pool!(&self.pool, p => {
            let mut q = sqlx::query(&sql).bind(meta_id);
            if let Some(from) = from {
                q = q.bind(from as f64);
            }
            q.bind(to as f64)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| -> Result<StatRow> {
                    let start: Option<f64> = r.try_get(0)?;
                    Ok(StatRow {
                        start: start.unwrap_or_default().round() as i64,
                        state: r.try_get(1)?,
                        sum: r.try_get(2)?,
                    })
                })
                .collect::<Result<_>>()?
        });
        Ok(match unit {
            Some(u) => rows
                .into_iter()
                .map(|r| StatRow {
                    start: r.start,
                    state: r.state.map(|v| u.to_kwh(v)),
                    sum: r.sum.map(|v| u.to_kwh(v)),
                })
                .collect(),
            None => rows,
        })
    }

    /// Apply `plan` in one transaction. See the crate docs.
    pub async fn apply_plan(&self, plan: &WritePlan) -> Result<()> {
        let writes: Vec<&StatWrite> = plan.writes.iter().filter(|w| !w.is_empty()).collect();
        if writes.is_empty() {
            return Ok(());
        }
        validate(&writes)?;
        let _guard = self.apply_lock.lock().await;
        self.check_writable().await?;
        self.backup_once().await?;
        let started = std::time::Instant::now();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let stmts = Statements::new(self);
        on_pool!(&self.pool, p => {
            let mut tx = if self.engine == Engine::Sqlite {
                // Take the write lock up front rather than on the first write.
                p.begin_with("BEGIN IMMEDIATE").await?
            } else {
                p.begin().await?
            };
            for w in &writes {
                // The statistic: its id and the unit its rows are stored in.
                let existing = sqlx::query(&stmts.lookup)
                    .bind(&w.meta.statistic_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (meta_id, unit) = match existing {
                    Some(r) => (int(&r, 0)?.unwrap_or_default(), r.try_get::<Option<String>, _>(1)?),
                    None => {
                        let m = &w.meta;
                        let mut q = sqlx::query(&stmts.insert_meta)
                            .bind(&m.statistic_id)
                            .bind(&m.source)
                            .bind(&m.unit_of_measurement)
                            .bind(m.has_sum)
                            .bind(&m.name)
                            .bind(if m.has_mean { 1i16 } else { 0i16 });
                        if self.columns.unit_class {
                            let class = EnergyUnit::parse(m.unit_of_measurement.as_deref())
                                .map(|_| "energy");
                            q = q.bind(class);
                        }
                        q.execute(&mut *tx).await?;
                        let r = sqlx::query(&stmts.lookup)
                            .bind(&m.statistic_id)
                            .fetch_one(&mut *tx)
                            .await?;
                        (int(&r, 0)?.unwrap_or_default(), m.unit_of_measurement.clone())
                    }
                };
                let Some(unit) = EnergyUnit::parse(unit.as_deref()) else {
                    return Err(RecorderError::Invalid(format!(
                        "{} is stored in {:?}, not an energy unit (Wh, kWh, MWh, GWh): pwsync \
                         only writes energy statistics",
                        w.meta.statistic_id,
                        unit.unwrap_or_default()
                    )));
                };
                for s in &w.shifts {
                    let delta = unit.from_kwh(s.delta);
                    for (sql, from) in [
                        (&stmts.shift_hourly, floor_hour(s.from)),
                        (&stmts.shift_short, s.from),
                    ] {
                        sqlx::query(sql)
                            .bind(delta)
                            .bind(meta_id)
                            .bind(from as f64)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for (table, rows) in [(Table::Hourly, &w.hourly), (Table::ShortTerm, &w.short_term)] {
                    // One row per start, the last one given winning (PostgreSQL refuses to
                    // update a row twice in one statement).
                    let rows: Vec<StatRow> = rows
                        .iter()
                        .map(|r| (r.start, *r))
                        .collect::<BTreeMap<_, _>>()
                        .into_values()
                        .collect();
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        let sql = stmts.upsert(table, chunk.len());
                        let mut q = sqlx::query(&sql);
                        for r in chunk {
                            q = q
                                .bind(now)
                                .bind(meta_id)
                                .bind(r.start as f64)
                                .bind(r.state.map(|v| unit.from_kwh(v)))
                                .bind(r.sum.map(|v| unit.from_kwh(v)));
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await?;
        });
        tracing::info!(
            statistics = writes.len(),
            rows = plan.row_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plan applied to the recorder database"
        );
        Ok(())
    }
}

/// SQL of one `apply`, built once per call for the engine and the columns at hand.
struct Statements {
    engine: Engine,
    lookup: String,
    insert_meta: String,
    shift_hourly: String,
    shift_short: String,
}

impl Statements {
    fn new(db: &RecorderDb) -> Self {
        let (cols, marks) = if db.columns.unit_class {
            (", unit_class", ", ?")
        } else {
            ("", "")
        };
        // has_mean stays NULL: since schema 50 HA reads mean_type only and the migration to 50
        // cleared has_mean.
        let insert_meta = db.sql(&format!(
            "INSERT INTO statistics_meta \
             (statistic_id, source, unit_of_measurement, has_mean, has_sum, name, mean_type{cols}) \
             VALUES (?, ?, ?, NULL, ?, ?, ?{marks})"
        ));
        let shift = |table: &str| {
            db.sql(&format!(
                "UPDATE {table} SET sum = sum + ? WHERE metadata_id = ? AND start_ts >= ?"
            ))
        };
        Statements {
            engine: db.engine,
            lookup: db.lookup_sql(),
            insert_meta,
            shift_hourly: shift("statistics"),
            shift_short: shift("statistics_short_term"),
        }
    }

    /// A multi-row upsert of `n` rows `(created_ts, metadata_id, start_ts, state, sum)`. An
    /// existing row keeps its id and `created_ts` and gets the new `state`/`sum` with `mean`,
    /// `min`, `max`, `last_reset_ts` cleared, as HA's own import updates rows. The columns left
    /// out (legacy `created`, `start`, `last_reset`, and `mean`…) are NULL on insert.
    fn upsert(&self, table: Table, n: usize) -> String {
        let table = table_name(table);
        let mut sql =
            format!("INSERT INTO {table} (created_ts, metadata_id, start_ts, state, sum) VALUES ");
        let mut p = 0;
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            if self.engine == Engine::Postgres {
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                ));
                p += 5;
            } else {
                sql.push_str("(?, ?, ?, ?, ?)");
            }
        }
        sql.push_str(match self.engine {
            Engine::MySql => {
                " ON DUPLICATE KEY UPDATE `state` = VALUES(`state`), `sum` = VALUES(`sum`), \
                 `mean` = NULL, `min` = NULL, `max` = NULL, `last_reset_ts` = NULL"
            }
            _ => {
                " ON CONFLICT (metadata_id, start_ts) DO UPDATE SET state = excluded.state, \
                 sum = excluded.sum, mean = NULL, min = NULL, max = NULL, last_reset_ts = NULL"
            }
        });
        sql
    }
}

fn table_name(table: Table) -> &'static str {
    match table {
        Table::Hourly => "statistics",
        Table::ShortTerm => "statistics_short_term",
    }
}

/// Non-finite values would be stored as NULL (SQLite) or NaN, breaking the chain.
fn validate(writes: &[&StatWrite]) -> Result<()> {
    for w in writes {
        let bad_row = w.hourly.iter().chain(&w.short_term).find(|r| {
            r.state.is_some_and(|v| !v.is_finite()) || r.sum.is_some_and(|v| !v.is_finite())
        });
        if let Some(r) = bad_row {
            return Err(RecorderError::Invalid(format!(
                "{}: the row starting at {} has a non-finite value; nothing was written",
                w.meta.statistic_id, r.start
            )));
        }
        if let Some(s) = w.shifts.iter().find(|s| !s.delta.is_finite()) {
            return Err(RecorderError::Invalid(format!(
                "{}: the shift from {} has a non-finite delta; nothing was written",
                w.meta.statistic_id, s.from
            )));
        }
        if w.meta.statistic_id.is_empty() {
            return Err(RecorderError::Invalid("a statistic without an id".into()));
        }
    }
    Ok(())
}

/// An integer column whatever width the engine gives it.
fn int<R>(row: &R, i: usize) -> Result<Option<i64>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i16>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return Ok(v.map(i64::from));
    }
    Ok(row.try_get::<Option<i16>, _>(i)?.map(i64::from))
}

fn meta_from_row<R>(row: &R) -> Result<StatMeta>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i16>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let statistic_id: Option<String> = row.try_get(0)?;
    let source: Option<String> = row.try_get(1)?;
    Ok(StatMeta {
        statistic_id: statistic_id.unwrap_or_default(),
        source: source.unwrap_or_default(),
        unit_of_measurement: row.try_get(2)?,
        has_sum: row.try_get::<Option<bool>, _>(3)?.unwrap_or(false),
        // HA's reading since schema 49: only an arithmetic mean (1) is `has_mean`.
        has_mean: int(row, 4)? == Some(1),
        name: row.try_get(5)?,
    })
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

/// The URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[async_trait::async_trait]
impl StatisticsStore for RecorderDb {
    fn kind(&self) -> &'static str {
        self.engine.name()
    }

    fn writes_short_term(&self) -> bool {
        true
    }

    async fn metadata(&self, ids: &[String]) -> Result<Vec<StatMeta>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.meta_rows(Some(ids)).await?)
    }

    async fn list(&self) -> Result<Vec<StatMeta>, StoreError> {
        Ok(self.meta_rows(None).await?)
    }

    async fn read(
        &self,
        statistic_id: &str,
        table: Table,
        start: i64,
        end: i64,
    ) -> Result<Vec<StatRow>, StoreError> {
        Ok(self
            .rows(statistic_id, table, (Some(start), end), false)
            .await?)
    }

    async fn last_before(
        &self,
        statistic_id: &str,
        table: Table,
        before: i64,
    ) -> Result<Option<StatRow>, StoreError> {
        Ok(self
            .rows(statistic_id, table, (None, before), true)
            .await?
            .pop())
    }

    async fn apply(&self, plan: &WritePlan) -> Result<(), StoreError> {
        Ok(self.apply_plan(plan).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("mysql://ha:s3cret@db:3306/homeassistant"),
            "mysql://ha:***@db:3306/homeassistant"
        );
        assert_eq!(redact("sqlite:///config/x.db"), "sqlite:///config/x.db");
        assert_eq!(redact("postgres://ha@db/ha"), "postgres://ha@db/ha");
    }

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
