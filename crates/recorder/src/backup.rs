//! The SQLite backup made before the first write.

use crate::{Engine, Pool, RecorderDb, RecorderError, Result};
use std::path::PathBuf;

impl RecorderDb {
    /// The SQLite backup made before the first write, once made.
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

    /// SQLite: copy the file next to itself before the first write; the copy is byte for byte
    /// the database as HA left it (the WAL checkpointed into it first).
    pub(crate) async fn backup_once(&self) -> Result<()> {
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
}
