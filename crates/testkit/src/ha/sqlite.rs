//! The reference recorder database a real HA made, and SQL on SQLite files through the venv.

use super::install::{ensure_venv, run, venv_python, FileLock};
use super::{HaInstance, HaOptions, START_TIMEOUT};
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A fresh copy of a recorder SQLite database, in its own temp dir (removed on drop).
pub struct TempDb {
    _dir: TempDir,
    path: PathBuf,
}

impl TempDb {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDb {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDb {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// The cached recorder database a real HA 2025.4.4 made (schema version 50, a closed recorder
/// run), made on first use: HA is started on an empty config, waits until the recorder wrote
/// its `schema_changes`, and is stopped cleanly. Cached under the venv, shared by processes.
pub fn reference_sqlite_db_file() -> Result<PathBuf> {
    let venv = ensure_venv().map_err(|m| anyhow!("{m}"))?;
    let dir = venv.join("pwsync-fixtures");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("home-assistant_v2.db");
    if path.is_file() {
        return Ok(path);
    }
    let _lock = FileLock::acquire(&dir.join("reference.lock"))?;
    if path.is_file() {
        return Ok(path);
    }
    let t0 = Instant::now();
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone("UTC"))?;
    let db = ha.db_path();
    let deadline = Instant::now() + START_TIMEOUT;
    while sqlite_query(ha.venv(), &db, "SELECT count(*) FROM schema_changes")
        .map(|r| r.trim() == "0")
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            bail!(
                "HA did not create its recorder schema:\n{}",
                ha.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ha.stop()?;
    let open_runs = sqlite_query(
        ha.venv(),
        &db,
        "SELECT count(*) FROM recorder_runs WHERE \"end\" IS NULL",
    )?;
    if open_runs.trim() != "0" {
        bail!("HA left its recorder run open (not a clean stop)");
    }
    if db.with_extension("db-wal").exists() {
        bail!("HA left a SQLite WAL file behind (not a clean stop)");
    }
    let tmp = dir.join(format!("home-assistant_v2.db.tmp{}", std::process::id()));
    std::fs::copy(&db, &tmp)?;
    std::fs::rename(&tmp, &path)?;
    tracing::info!(
        secs = t0.elapsed().as_secs_f64(),
        "reference recorder DB made"
    );
    Ok(path)
}

/// A fresh temp copy of [`reference_sqlite_db_file`].
pub fn reference_sqlite_db() -> Result<TempDb> {
    let src = reference_sqlite_db_file()?;
    let dir = tempfile::Builder::new().prefix("pwsync-ha-db-").tempdir()?;
    let path = dir.path().join("home-assistant_v2.db");
    std::fs::copy(&src, &path)?;
    Ok(TempDb { _dir: dir, path })
}

/// Run SQL on a SQLite file with the venv's Python (`sqlite3` module; HA's venv always has it).
/// Statements separated by `;` run in one transaction; the rows of the last one come back as
/// lines of `|`-separated values.
pub fn sqlite_query(venv: &Path, db: &Path, sql: &str) -> Result<String> {
    const SCRIPT: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
stmts = [s for s in sys.argv[2].split(";") if s.strip()]
rows = []
with con:
    for s in stmts:
        rows = con.execute(s).fetchall()
con.close()
print("\n".join("|".join("" if v is None else str(v) for v in r) for r in rows))
"#;
    let dir = db.parent().unwrap_or(Path::new("/"));
    let out = run(
        venv_python(&venv.join("bin/python"), &[dir])
            .args(["-c", SCRIPT])
            .arg(db)
            .arg(sql),
        "sqlite query",
    )?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
