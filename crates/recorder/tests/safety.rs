//! What `RecorderDb` says when it cannot or must not write: a server that refuses connections,
//! a read-only directory or file, another pwsync on the file, a disk without room for the
//! backup, a write failing after its backup. Disks and read-only mounts are real: the tests
//! that need them run again inside a private mount namespace (`unshare`), mount a small tmpfs
//! or a read-only bind there, and leave nothing mounted behind.

mod common;

use common::{sha256, Fixture};
use pwsync_energy::{StatRow, HOUR};
use pwsync_recorder::{HaStatus, RecorderDb};
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, StoreError, WritePlan};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// 2025-01-01T00:00:00Z
const T0: i64 = 1_735_689_600;

fn a_plan(id: &str, unit: &str) -> WritePlan {
    let mut meta = StatMeta::energy_kwh(id, "a meter");
    meta.unit_of_measurement = Some(unit.to_string());
    WritePlan {
        writes: vec![StatWrite {
            meta,
            shifts: vec![],
            hourly: (0..3)
                .map(|h| StatRow {
                    start: T0 + h * HOUR,
                    state: Some(h as f64),
                    sum: Some(h as f64),
                })
                .collect(),
            short_term: vec![],
        }],
    }
}

/// Files in `dir` whose name says they are pwsync backups (complete or partial).
fn backups(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("pwsync-backup"))
        .collect()
}

/// Whether this is the run inside the mount namespace. The outer run starts the test binary
/// again under `unshare --mount` (with a user namespace when not root), checks that it ran
/// this one test and passed, and returns `false`.
fn inside_mount_namespace(test: &str) -> bool {
    if std::env::var_os("PWSYNC_TEST_MOUNT_NS").is_some() {
        return true;
    }
    let root = is_root();
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("PWSYNC_TEST_MOUNT_NS", "1");
    let out = cmd.output().expect("unshare (util-linux) runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the run inside the mount namespace failed:\n{text}"
    );
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn unmount(path: &Path) {
    let _ = Command::new("umount").arg("-l").arg(path).status();
}

fn mount(args: &[&str]) {
    let out = Command::new("mount").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `path` (a file or directory) read-only from here on, in this mount namespace.
fn read_only(path: &Path) {
    let p = path.to_str().unwrap();
    mount(&["--bind", p, p]);
    mount(&["-o", "remount,bind,ro", p]);
}

#[tokio::test]
async fn a_closed_server_port_fails_at_once_with_the_cause_and_no_password() {
    for url in [
        "mysql://ha:hunter2@127.0.0.1:{port}/homeassistant",
        "postgres://ha@127.0.0.1:{port}/homeassistant?password=hunter2&sslmode=disable",
    ] {
        // A free port can be taken by a server another test binary starts meanwhile (the
        // connection is then reset, not refused): that port is not the case under test, so
        // another is picked, a few times at most.
        let (took, msg) = {
            let mut tries = 0;
            loop {
                let url = url.replace("{port}", &pwsync_testkit::free_port().to_string());
                let t0 = Instant::now();
                let err = RecorderDb::open(&url).await.err().expect("nothing listens");
                let (took, msg) = (t0.elapsed(), err.to_string());
                tries += 1;
                if msg.to_lowercase().contains("refused") || tries == 5 {
                    break (took, msg);
                }
            }
        };
        assert!(took < Duration::from_secs(5), "took {took:?}: {msg}");
        assert_eq!(
            msg.to_lowercase().matches("refused").count(),
            1,
            "the cause, once: {msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("***"), "{msg}");
    }
}

#[tokio::test]
async fn another_pwsync_on_the_file_is_named_as_pwsync_not_as_home_assistant() {
    let Some(f) = Fixture::sqlite().await else {
        return;
    };
    let path = f.path.clone().unwrap();
    // A program named pwsync holding the file, as a second `pwsync backfill` would.
    let pwsync = f.dir.path().join("pwsync");
    std::fs::copy("/bin/sleep", &pwsync).unwrap();
    let mut other = Command::new("sh")
        .arg("-c")
        .arg("exec 3<\"$0\"; exec \"$1\" 60")
        .arg(&path)
        .arg(&pwsync)
        .spawn()
        .unwrap();
    let db = f.open().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = db.ha_status().await.unwrap();
        if s != HaStatus::Stopped || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let err = db.apply(&a_plan("sensor.pw_home_usage", "kWh")).await;
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(
        matches!(&status, HaStatus::OtherPwsync { detail } if detail.contains(&format!("pid {}", other.id()))),
        "{status:?}"
    );
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.starts_with("another pwsync is using the recorder database (pid "),
        "{msg}"
    );
    assert!(!msg.contains("Home Assistant is running"), "{msg}");
    assert!(backups(f.dir.path()).is_empty());
    db.close().await;
}

/// Why opening `url` or writing a plan to it fails: SQLite may or may not open a WAL database
/// it cannot write; either way the user must hear what is read-only.
async fn refusal(url: &str) -> String {
    match RecorderDb::open(url).await {
        Err(e) => e.to_string(),
        Ok(db) => {
            let e = db
                .apply(&a_plan("sensor.pw_home_usage", "kWh"))
                .await
                .unwrap_err();
            db.close().await;
            assert!(matches!(e, StoreError::Refused(_)), "{e}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn a_read_only_directory_or_file_is_named_with_what_to_do() {
    if !inside_mount_namespace("a_read_only_directory_or_file_is_named_with_what_to_do") {
        return;
    }
    let Some(f) = Fixture::sqlite().await else {
        panic!("the outer run had HA's reference database; this one must too");
    };
    let path = f.path.clone().unwrap();
    let before = sha256(&path);

    // The database file read-only, its directory writable: the write is refused before
    // anything (the backup included) is written.
    read_only(&path);
    let msg = refusal(&f.url).await;
    assert!(
        msg.contains(&format!(
            "the database file {} is read-only",
            path.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("run pwsync as the user Home Assistant runs as"),
        "{msg}"
    );
    assert!(
        backups(f.dir.path()).is_empty(),
        "no backup of a refused write"
    );

    // The directory read-only too: SQLite cannot make the WAL's -shm file, so even opening
    // fails; the message says it is the directory.
    read_only(f.dir.path());
    let msg = refusal(&f.url).await;
    assert!(
        msg.contains(&format!(
            "the directory {} is read-only",
            f.dir.path().canonicalize().unwrap().display()
        )),
        "{msg}"
    );
    assert!(
        !msg.contains("not a Home Assistant recorder database"),
        "{msg}"
    );
    assert_eq!(sha256(&path), before);
    unmount(f.dir.path());
    unmount(&path);
}

#[tokio::test]
async fn a_disk_without_room_for_the_backup_and_the_write_is_refused_before_copying() {
    if !inside_mount_namespace(
        "a_disk_without_room_for_the_backup_and_the_write_is_refused_before_copying",
    ) {
        return;
    }
    let Some(f) = Fixture::sqlite().await else {
        panic!("the outer run had HA's reference database; this one must too");
    };
    let size = std::fs::metadata(f.path.as_ref().unwrap()).unwrap().len();
    // Room for one copy and a little more, but not for the copy and the write's headroom.
    let disk = tempfile::tempdir().unwrap();
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        &format!("size={}k", size / 1024 + 1024),
        "tmpfs",
        disk.path().to_str().unwrap(),
    ]);
    let path = disk.path().join("home-assistant_v2.db");
    std::fs::copy(f.path.as_ref().unwrap(), &path).unwrap();
    let before = sha256(&path);
    let db = RecorderDb::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let err = db
        .apply(&a_plan("sensor.pw_home_usage", "kWh"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Refused(_)), "{msg}");
    assert!(
        msg.starts_with("not enough free space to back up "),
        "{msg}"
    );
    assert!(msg.ends_with("nothing was written"), "{msg}");
    assert!(
        backups(disk.path()).is_empty(),
        "{:?}",
        backups(disk.path())
    );
    assert_eq!(db.backup_path(), None);
    db.close().await;
    assert_eq!(sha256(&path), before);
    unmount(disk.path());
}

#[tokio::test]
async fn a_write_failing_after_its_backup_removes_the_backup_and_says_so() {
    let Some(f) = Fixture::sqlite().await else {
        return;
    };
    let path = f.path.clone().unwrap();
    let before = sha256(&path);
    let db = f.open().await;
    // A statistic in °C is refused inside the transaction, after the backup was made.
    let err = db
        .apply(&a_plan("sensor.pw_temperature", "°C"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an energy unit"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        err.contains("was removed, as the database is unchanged"),
        "{err}"
    );
    assert_eq!(backups(f.dir.path()), Vec::<String>::new());
    assert_eq!(db.backup_path(), None);
    // The next write that goes through has its own backup, of the unchanged database.
    db.apply(&a_plan("sensor.pw_home_usage", "kWh"))
        .await
        .unwrap();
    let backup = db.backup_path().expect("a backup for the write");
    assert_eq!(sha256(&backup), before);
    assert_eq!(backups(f.dir.path()).len(), 1);
    db.close().await;
}
