//! HA's recorder database as a [`StatisticsStore`]: SQLite, MariaDB/MySQL or PostgreSQL,
//! written directly while Home Assistant is stopped (SPEC §3 "Recorder DB directly").
//!
//! [`RecorderDb::open`] checks the schema version against [`schema::SUPPORTED`] and reads the
//! optional columns the database has. Reads work while HA runs. [`StatisticsStore::apply`]
//! refuses while HA runs ([`HaStatus`]), backs an SQLite file up before the first write, and
//! applies the whole plan in one transaction: metadata rows created where missing (ids from the
//! database, `mean_type` explicit), shifts, then upserts by `(metadata_id, start_ts)`.
//! Values cross this boundary in kWh and are stored in the statistic's own energy unit.

/// Run `$body` with `$p` bound to the engine's pool; the body is compiled once per engine.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::Pool::Sqlite($p) => $body,
            $crate::Pool::MySql($p) => $body,
            $crate::Pool::Postgres($p) => $body,
        }
    };
}

mod backup;
mod engine;
mod error;
pub mod liveness;
mod open;
mod read;
pub mod schema;
mod write;

pub use engine::Engine;
pub use error::RecorderError;
pub use liveness::HaStatus;
use pwsync_energy::StatRow;
use pwsync_store::{StatMeta, StatisticsStore, StoreError, Table, WritePlan};
use schema::Columns;
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use std::path::PathBuf;

/// How to open a recorder database.
#[derive(Debug, Clone, Default)]
pub struct RecorderOptions {
    /// Open read-only (SQLite: a read-only connection); `apply` is refused.
    pub read_only: bool,
    /// Write although the last recorder run has no end, when nothing is seen using the
    /// database (HA crashed). Never overrides a running HA.
    pub allow_unclean_shutdown: bool,
}

type Result<T, E = RecorderError> = std::result::Result<T, E>;

enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
    Postgres(PgPool),
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
    /// The URL as messages show it ([`pwsync_redact::url`]).
    display_url: String,
    /// The server session of the connection `open` made outside the pool: not someone else,
    /// though the server may still list it for a moment after it closed.
    probe_session: Option<i64>,
    backup: std::sync::Mutex<Option<PathBuf>>,
    /// Serialises `apply` (one backup, one transaction at a time).
    apply_lock: tokio::sync::Mutex<()>,
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
