//! MariaDB and PostgreSQL from Debian packages, each in its own temp dir on a free loopback
//! port, with a database `homeassistant` owned by a user with a password, stopped by PID on drop.
//!
//! Debian packages: `mariadb-server` (mariadbd, mariadb-install-db, mariadb, mariadb-dump) and
//! `postgresql` (initdb, postgres, psql, pg_dump under /usr/lib/postgresql/<major>/bin).
//! PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres` system
//! user (through `setpriv`, which execs, so the guarded PID is the server's) in a temp dir
//! chowned to it. mariadbd runs as the calling user (`--user=root` when that is root). Sockets
//! live in the temp dir, so parallel servers never collide.
//!
//! [`mariadb`] and [`postgres`] each hold one server; what both need (the names HA connects
//! with, a password, running a client) lives here.

mod mariadb;
mod postgres;

pub use mariadb::MariaDbServer;
pub use postgres::PostgresServer;

use crate::process::{
    free_port, require, run, run_with_input, wait_ready, with_port_retries, Missing, ServerProcess,
    StartError,
};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

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

/// Whether a process is still there (the servers' tests stop them by PID).
#[cfg(test)]
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
