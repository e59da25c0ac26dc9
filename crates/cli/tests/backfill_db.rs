//! `pwsync backfill --target db` on a recorder SQLite database with the schema a real HA
//! created (2025.4.4's, kept as an asset; with `PWSYNC_TEST_HA` a newer release's, made by that
//! HA in the harness), from a real InfluxDB.

use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::or_skip;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};
use std::path::Path;
use std::process::{Command, Output};

const SCHEMA: &str = include_str!("../assets/ha-2025.4.4-recorder-sqlite.sql");
const HOME: &str = "sensor.powerwall_home_usage";

/// A recorder database at `db` with the schema of the HA release under test
/// (`PWSYNC_TEST_HA`): 2025.4.4's from the asset, a newer release's as HA made it in the harness.
async fn recorder_db(db: &Path) {
    if pwsync_testkit::ha_chroot::selected() != pwsync_testkit::ha_chroot::NATIVE {
        let made = pwsync_testkit::ha::reference_sqlite_db_file().unwrap();
        std::fs::copy(made, db).unwrap();
        return;
    }
    let mut c = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA).execute(&mut c).await.unwrap();
}

fn pwsync(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pwsync"))
        .args(args)
        .env_remove("PWSYNC_CONFIG")
        .current_dir(std::env::temp_dir())
        .env("PWSYNC_INFLUXDB__URL", url)
        .env("PWSYNC_TIME_ZONE", "America/Los_Angeles")
        .output()
        .unwrap()
}

fn ok(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn sha(p: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()))
}

async fn rows(db: &Path, id: &str) -> Vec<(i64, f64)> {
    let mut c = SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    sqlx::query("SELECT s.start_ts, s.sum FROM statistics s JOIN statistics_meta m ON m.id = s.metadata_id WHERE m.statistic_id = ? ORDER BY s.start_ts")
        .bind(id)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<f64, _>(0) as i64, r.get::<f64, _>(1)))
        .collect()
}

fn changes(rows: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut prev = 0.0;
    rows.iter()
        .map(|(t, s)| {
            let c = (*t, s - prev);
            prev = *s;
            c
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_into_recorder_sqlite_is_exact_idempotent_and_dry_run_writes_nothing() {
    let Some(srv) = or_skip(InfluxServer::start()) else {
        return;
    };
    let url = srv.url();
    ok(pwsync(
        &url,
        &[
            "simulate",
            "--start",
            "2025-03-01",
            "--days",
            "20",
            "--seed",
            "5",
        ],
    ));

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("home-assistant_v2.db");
    recorder_db(&db).await;
    let dburl = format!("sqlite://{}", db.display());
    let before = sha(&db);

    let dry = ok(pwsync(
        &url,
        &[
            "backfill",
            "--all",
            "--target",
            "db",
            "--db",
            &dburl,
            "--dry-run",
            "--json",
        ],
    ));
    assert!(dry["rows"].as_u64().unwrap() > 6 * 400, "{dry}");
    assert_eq!(
        sha(&db),
        before,
        "a dry run leaves the database byte-identical"
    );

    let first = ok(pwsync(
        &url,
        &[
            "backfill", "--all", "--target", "db", "--db", &dburl, "--json",
        ],
    ));
    assert_eq!(
        first["rows"], dry["rows"],
        "the dry run reported what the real run wrote"
    );
    let written = rows(&db, HOME).await;
    assert_eq!(
        written.len() as u64,
        first["fields"][0]["rows_written"].as_u64().unwrap()
    );

    // Every local day's energy in HA equals `pwsync energy` for that day; the DST day has 23 hours.
    let energy = ok(pwsync(
        &url,
        &[
            "energy",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-20",
            "--json",
            "--fields",
            "home",
        ],
    ));
    let ch = changes(&written);
    let tz: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
    for day in energy["days"].as_array().unwrap() {
        let date =
            chrono::NaiveDate::parse_from_str(day["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
        let (s, e) = pwsync_energy::local::local_day_range(date, tz);
        let in_day: Vec<_> = ch.iter().filter(|(t, _)| *t >= s && *t < e).collect();
        let ha: f64 = in_day.iter().map(|(_, k)| k).sum();
        let want = day["kwh"]["home"].as_f64().unwrap();
        assert!(
            (ha - want).abs() < 0.001,
            "{date}: HA {ha} vs InfluxDB {want}"
        );
        if date.to_string() == "2025-03-09" {
            assert_eq!(day["expected_hours"], 23);
            assert!(in_day.len() <= 23);
        }
    }

    // --hours writes only those local hours of each day.
    let db2 = dir.path().join("hours.db");
    std::fs::copy(&db, &db2).unwrap();
    {
        let mut c = SqliteConnectOptions::new()
            .filename(&db2)
            .connect()
            .await
            .unwrap();
        sqlx::query("DELETE FROM statistics")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let url2 = format!("sqlite://{}", db2.display());
    ok(pwsync(
        &url,
        &[
            "backfill", "--all", "--hours", "17-21", "--target", "db", "--db", &url2, "--json",
        ],
    ));
    let evening = rows(&db2, HOME).await;
    assert!(evening.len() >= 4 * 19, "{}", evening.len());
    for (t, _) in &evening {
        let h = chrono::DateTime::from_timestamp(*t, 0)
            .unwrap()
            .with_timezone(&tz);
        assert!((17..21).contains(&chrono::Timelike::hour(&h)), "{h}");
    }

    let after_first = sha(&db);
    let second = ok(pwsync(
        &url,
        &[
            "backfill", "--all", "--target", "db", "--db", &dburl, "--json",
        ],
    ));
    assert_eq!(second["rows"], 0, "a second identical run writes nothing");
    assert_eq!(sha(&db), after_first);

    // A foreign spike: every row from one hour on is 50 kWh higher. An overwrite of that day
    // removes the spike and leaves every other hour's energy as it was.
    let spike_at = written[200].0;
    {
        let mut c = SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE statistics SET sum = sum + 50 WHERE start_ts >= ? AND metadata_id = (SELECT id FROM statistics_meta WHERE statistic_id = ?)")
            .bind(spike_at as f64)
            .bind(HOME)
            .execute(&mut c)
            .await
            .unwrap();
    }
    let spiked = changes(&rows(&db, HOME).await);
    assert!(spiked.iter().any(|(_, k)| *k > 49.0));
    let day = pwsync_energy::local::local_date(spike_at, tz).to_string();
    ok(pwsync(
        &url,
        &[
            "backfill",
            "--start",
            &day,
            "--end",
            &day,
            "--overwrite",
            "--target",
            "db",
            "--db",
            &dburl,
            "--json",
        ],
    ));
    let repaired = changes(&rows(&db, HOME).await);
    assert_eq!(repaired.len(), ch.len());
    for (a, b) in repaired.iter().zip(&ch) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - b.1).abs() < 1e-6, "hour {}: {} vs {}", a.0, a.1, b.1);
    }
}

#[test]
fn backfill_refuses_bad_input_without_writing() {
    let o = pwsync(
        "http://127.0.0.1:1",
        &[
            "backfill",
            "--start",
            "2025-03-02",
            "--end",
            "2025-03-01",
            "--target",
            "db",
            "--db",
            "sqlite:///nonexistent/x.db",
        ],
    );
    assert!(!o.status.success());
    let o = pwsync(
        "http://127.0.0.1:1",
        &["backfill", "--all", "--target", "ws"],
    );
    assert!(!o.status.success());
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains("homeassistant.url"), "{msg}");
    let o = pwsync(
        "http://127.0.0.1:1",
        &["backfill", "--all", "--target", "db"],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("recorder_db"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_schema_version_is_refused_before_influxdb_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("home-assistant_v2.db");
    recorder_db(&db).await;
    {
        let mut c = SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO schema_changes (schema_version, changed) VALUES (99, '2030-01-01 00:00:00')",
        )
        .execute(&mut c)
        .await
        .unwrap();
        // Closed before hashing: HA's database is in WAL mode, and a connection merely dropped
        // closes later, moving the row from the WAL into the file after `before` was taken.
        c.close().await.unwrap();
    }
    let before = sha(&db);
    let dburl = format!("sqlite://{}", db.display());
    // No InfluxDB at all: the refusal comes first and is about the database.
    let o = pwsync(
        "http://127.0.0.1:1",
        &["backfill", "--all", "--target", "db", "--db", &dburl],
    );
    assert_eq!(o.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        msg.contains("schema version 99") && msg.contains("update pwsync"),
        "{msg}"
    );
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert_eq!(sha(&db), before, "nothing written");
}
