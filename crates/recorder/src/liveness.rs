//! Is Home Assistant using the database? Writing behind a running HA corrupts its view: it
//! caches statistics metadata ids and continues every 5-minute compile from the latest
//! short-term row it remembers.

use crate::open::read_only_reason;
use crate::{Engine, Pool, RecorderDb, RecorderError, Result};
use std::path::{Path, PathBuf};

/// What pwsync can tell about the HA that owns the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaStatus {
    /// The last recorder run has ended and nothing else uses the database.
    Stopped,
    /// HA (or another program) uses the database right now. `detail` says who.
    Running { detail: String },
    /// The last recorder run has no end, yet nothing is seen using the database: HA crashed,
    /// was killed, or runs where pwsync cannot see it (another host, another DB user).
    UncleanShutdown { run_start: String },
    /// Another pwsync, and nothing else, has the SQLite file open. `detail` says which.
    OtherPwsync { detail: String },
}

impl HaStatus {
    /// The one-line refusal for a write, or `None` when writing is allowed.
    pub fn refusal(&self, allow_unclean_shutdown: bool) -> Option<String> {
        match self {
            HaStatus::Stopped => None,
            HaStatus::Running { detail } => Some(format!(
                "Home Assistant is running ({detail}): stop it before an offline write, \
                 or use the websocket target"
            )),
            HaStatus::OtherPwsync { detail } => Some(format!(
                "another pwsync is using the recorder database ({detail}): wait for it to \
                 finish, then run this again"
            )),
            HaStatus::UncleanShutdown { .. } if allow_unclean_shutdown => None,
            HaStatus::UncleanShutdown { run_start } => Some(format!(
                "Home Assistant's last recorder run (started {run_start}) has no end: it is \
                 running where pwsync cannot see it, or it did not shut down cleanly; stop it, \
                 or if it crashed, start and stop it once or allow the unclean shutdown \
                 (--allow-unclean-shutdown)"
            )),
        }
    }
}

/// A process other than this one with a file open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub cmdline: String,
}

impl Holder {
    /// Whether the holder is a pwsync: its program is named `pwsync`, or is this program.
    pub fn is_pwsync(&self) -> bool {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok();
        let named_pwsync = |p: &Path| p.file_name().is_some_and(|n| n == "pwsync");
        match exe {
            Some(exe) => {
                named_pwsync(&exe) || std::fs::read_link("/proc/self/exe").is_ok_and(|me| me == exe)
            }
            None => self
                .cmdline
                .split(' ')
                .next()
                .is_some_and(|prog| named_pwsync(Path::new(prog))),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} `{}`", self.pid, self.cmdline)
    }
}

/// Processes other than this one that have `db`, `db-wal`, `db-shm` or `db-journal` open,
/// found through `/proc/*/fd`. Processes whose fds cannot be read (other users, without
/// privileges) are not seen.
///
/// A file is matched by device and inode, not by the path its fd link shows: that path is the
/// one in the holder's mount namespace, so HA in a container (or a chroot with its own mounts)
/// with the config directory bind-mounted shows another path for the same file.
pub fn sqlite_holders(db: &Path) -> Vec<Holder> {
    let base = db.as_os_str().to_owned();
    let targets: Vec<(u64, u64)> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = base.clone();
            p.push(suffix);
            file_identity(Path::new(&p))
        })
        .collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || is_own_fork(pid, me) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| file_identity(&fd.path()).is_some_and(|id| targets.contains(&id)));
        if holds {
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .split('\0')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            out.push(Holder { pid, cmdline });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// Device and inode of the file at `path` (following an fd's link to the open file itself).
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A child of this process that has not yet called exec: it holds copies of this process's
/// descriptors for a moment (until exec closes them) and is this process, not another user of
/// the database. Seen when pwsync, or a test around it, starts a program while checking.
fn is_own_fork(pid: u32, me: u32) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    let ppid = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok());
    if ppid != Some(me) {
        return false;
    }
    match (
        std::fs::read_link(proc_dir.join("exe")),
        std::fs::read_link("/proc/self/exe"),
    ) {
        (Ok(child), Ok(mine)) => child == mine,
        _ => false,
    }
}

impl RecorderDb {
    /// Whether HA is using the database, checked now.
    pub async fn ha_status(&self) -> Result<HaStatus> {
        // Who else uses the database: processes holding the SQLite file, or other sessions.
        let mut all_pwsync = false;
        let probe = self.probe_session.unwrap_or(-1);
        let others: Vec<String> = match (&self.pool, &self.sqlite_path) {
            (Pool::Sqlite(_), Some(path)) => {
                let holders = sqlite_holders(path);
                all_pwsync = !holders.is_empty() && holders.iter().all(Holder::is_pwsync);
                holders
                    .iter()
                    .map(|h| format!("{h} has {} open", path.display()))
                    .collect()
            }
            (Pool::MySql(p), _) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT CONCAT('session ', ID, ' of ', USER, '@', HOST) \
                     FROM information_schema.PROCESSLIST \
                     WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND ID <> ?",
                )
                .bind(probe)
                .fetch_all(p)
                .await?
            }
            (Pool::Postgres(p), _) => {
                sqlx::query_scalar::<_, String>(
                    "SELECT 'session ' || pid || ' of ' || usename::text || '@' \
                     || COALESCE(host(client_addr), 'local socket') \
                     || COALESCE(' (' || NULLIF(application_name, '') || ')', '') \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND pid <> $1",
                )
                .bind(probe as i32)
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
            (_, false) if self.engine == Engine::Sqlite && all_pwsync => HaStatus::OtherPwsync {
                detail: others.join("; "),
            },
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
    pub async fn check_writable(&self) -> Result<()> {
        if self.options.read_only {
            return Err(RecorderError::Refused(format!(
                "{} is open read-only: open it without read_only to write",
                self.display_url
            )));
        }
        if let Some(why) = self.sqlite_path.as_deref().and_then(read_only_reason) {
            return Err(RecorderError::Refused(format!(
                "cannot write to {}: {why}; nothing was written",
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_process_holding_the_file_is_seen_and_this_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"not really sqlite").unwrap();
        let db = db.canonicalize().unwrap();
        let _mine = std::fs::File::open(&db).unwrap();
        assert_eq!(sqlite_holders(&db), vec![]);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$0\"; exec sleep 30")
            .arg(&db)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let held = loop {
            let h = sqlite_holders(&db);
            let settled = h.iter().any(|h| h.cmdline.starts_with("sleep"));
            if settled || std::time::Instant::now() > deadline {
                break h;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].pid, child.id());
        assert!(held[0].cmdline.starts_with("sleep"), "{held:?}");
    }

    #[test]
    fn a_holder_that_reaches_the_file_by_another_path_is_seen() {
        // A hard link stands in for a container's bind mount: another path, the same file.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"not really sqlite").unwrap();
        let elsewhere = dir.path().join("mounted-elsewhere.db");
        std::fs::hard_link(&db, &elsewhere).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$0\"; exec sleep 30")
            .arg(&elsewhere)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let held = loop {
            let h = sqlite_holders(&db);
            if !h.is_empty() || std::time::Instant::now() > deadline {
                break h;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            held.iter().map(|h| h.pid).collect::<Vec<_>>(),
            vec![child.id()]
        );
    }

    #[test]
    fn a_fork_of_this_process_is_not_another_user_but_its_exec_is() {
        let me = std::process::id();
        assert!(!is_own_fork(me, me), "this process is not its own child");
        // A child that has exec'd another program is someone else.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{}/exe", child.id()))
            .map(|e| !e.ends_with("sleep"))
            .unwrap_or(true)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let after_exec = is_own_fork(child.id(), me);
        // A fork that has not exec'd: same program, parent is this process.
        let forked = unsafe { libc::fork() };
        if forked == 0 {
            std::thread::sleep(std::time::Duration::from_secs(2));
            unsafe { libc::_exit(0) };
        }
        let before_exec = is_own_fork(forked as u32, me);
        unsafe { libc::kill(forked, libc::SIGKILL) };
        unsafe { libc::waitpid(forked, std::ptr::null_mut(), 0) };
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!after_exec, "an exec'd child is another program");
        assert!(before_exec, "a fork before exec is this process");
    }

    #[test]
    fn refusals_distinguish_running_from_crashed() {
        let running = HaStatus::Running {
            detail: "pid 7 `hass`".into(),
        };
        let msg = running.refusal(true).unwrap();
        assert!(msg.starts_with("Home Assistant is running (pid 7 `hass`): stop it"));
        let crashed = HaStatus::UncleanShutdown {
            run_start: "2025-01-01 00:00:00".into(),
        };
        assert!(crashed
            .refusal(false)
            .unwrap()
            .contains("did not shut down cleanly"));
        assert_eq!(crashed.refusal(true), None);
        assert_eq!(HaStatus::Stopped.refusal(false), None);
    }
}
