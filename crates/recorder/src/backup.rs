//! The SQLite backup made before the first write.

use crate::{Engine, Pool, RecorderDb, RecorderError, Result};
use std::path::{Path, PathBuf};

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
    /// the database as HA left it (the WAL checkpointed into it first). Refused before copying
    /// when the disk lacks room for the copy and the write ([`WRITE_HEADROOM`]). Returns whether
    /// it made the backup now (the first write of this `RecorderDb`).
    pub(crate) async fn backup_once(&self) -> Result<bool> {
        let (Pool::Sqlite(pool), Some(db)) = (&self.pool, &self.sqlite_path) else {
            return Ok(false);
        };
        if self.backup_path().is_some() {
            return Ok(false);
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
        let failed = |source| RecorderError::Backup {
            db: db.clone(),
            backup: backup.clone(),
            source,
        };
        let size = std::fs::metadata(db).map_err(failed)?.len();
        let dir = db.parent().unwrap_or(Path::new("."));
        let free = free_space(dir).map_err(failed)?;
        if free < size + WRITE_HEADROOM {
            return Err(RecorderError::Refused(format!(
                "not enough free space to back up {}: {} free in {}, the backup and the write \
                 need {} (the database's {} plus {} for the write); free some space there, then \
                 run again; nothing was written",
                db.display(),
                mib(free),
                dir.display(),
                mib(size + WRITE_HEADROOM),
                mib(size),
                mib(WRITE_HEADROOM)
            )));
        }
        let (from, to) = (db.clone(), backup.clone());
        tokio::task::spawn_blocking(move || copy_complete(&from, &to))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(failed)?;
        tracing::info!(backup = %backup.display(), "recorder database backed up");
        *self.backup.lock().expect("backup lock") = Some(backup);
        Ok(true)
    }

    /// The write the backup was made for failed and was rolled back: the database is as the
    /// backup holds it, so the copy only takes the room a full disk may lack. Remove it and say
    /// so in the error.
    pub(crate) fn discard_backup(&self, error: RecorderError) -> RecorderError {
        let Some(backup) = self.backup.lock().expect("backup lock").take() else {
            return error;
        };
        let note = match std::fs::remove_file(&backup) {
            Ok(()) => format!(
                "the backup made for it ({}) was removed, as the database is unchanged",
                backup.display()
            ),
            Err(e) => format!(
                "the backup made for it ({}) could not be removed ({e}); the database is \
                 unchanged, so it may be deleted",
                backup.display()
            ),
        };
        RecorderError::RolledBack {
            error: Box::new(error),
            note,
        }
    }
}

/// Room beside the backup for the write itself: its WAL and the rows it adds.
pub(crate) const WRITE_HEADROOM: u64 = 64 << 20;

/// Bytes an unprivileged user may still write in `dir`'s file system.
fn free_space(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Copy `from` to `to` through a temporary name beside `to`, renamed once complete and synced:
/// `to` exists only whole. On failure (a full disk) the partial copy is removed.
pub(crate) fn copy_complete(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let copied = std::fs::copy(from, &partial)
        .and_then(|_| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, to));
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A copy onto a disk too small for it: a real full tmpfs, mounted in a private mount
    /// namespace this test runs itself again in (`unshare`; a user namespace when not root).
    #[test]
    fn a_copy_that_fills_the_disk_leaves_no_file() {
        const NAME: &str = "backup::tests::a_copy_that_fills_the_disk_leaves_no_file";
        if std::env::var_os("PWSYNC_TEST_MOUNT_NS").is_none() {
            let mut cmd = Command::new("unshare");
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                cmd.args(["--user", "--map-root-user"]);
            }
            let out = cmd
                .args(["--mount", "--propagation", "private"])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env("PWSYNC_TEST_MOUNT_NS", "1")
                .output()
                .expect("unshare (util-linux) runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        let src_dir = tempfile::tempdir().unwrap();
        let db = src_dir.path().join("home-assistant_v2.db");
        std::fs::write(&db, vec![7u8; 3 << 20]).unwrap();
        let disk = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(disk.path())
            .status()
            .unwrap();
        assert!(mounted.success());
        let backup = disk.path().join("home-assistant_v2.db.pwsync-backup-x");
        let err = copy_complete(&db, &backup).unwrap_err();
        let left: Vec<_> = std::fs::read_dir(disk.path()).unwrap().flatten().collect();
        let _ = Command::new("umount").arg("-l").arg(disk.path()).status();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert!(left.is_empty(), "{left:?}");
    }
}
