//! `pwsync backfill` end to end against a real Home Assistant (2025.4.4, or the release
//! `PWSYNC_TEST_HA` names) and a real InfluxDB:
//! through HA's websocket (HA running), and through the recorder database (HA stopped) on
//! SQLite, MariaDB and PostgreSQL. The chain HA already holds is imported by HA itself, as a
//! compiled live sensor would have left it.

mod common;

use common::*;
use pwsync_energy::local::local_day_range;
use pwsync_energy::{Field, StatRow};
use pwsync_ha::HaClient;
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::or_skip;
use pwsync_testkit::sqlservers::{MariaDbServer, PostgresServer};
use sqlx::Row;
use std::collections::BTreeMap;

/// The chain HA holds when the live sensor has been compiled for a while: `days` local days
/// from `first_day`, each hour's change InfluxDB's energy plus 2 % (so that keeping it is
/// visible), sum from 0, state a meter far from pwsync's. Imported by HA and waited for.
async fn seed_compiled_chain(
    c: &HaClient,
    influx_url: &str,
    first_day: &str,
    days: u64,
) -> Vec<StatRow> {
    let start = day_start(first_day);
    let end = local_day_range(date(first_day) + chrono::Days::new(days - 1), tz()).1;
    let energy = influx_hourly(influx_url, Field::Home, start, end).await;
    let kept: BTreeMap<i64, f64> = energy
        .iter()
        .map(|(t, kwh)| (*t, kwh * 1.02 + 0.001))
        .collect();
    let rows = chain_of(&kept, 90_000.0);
    import_and_wait(c, HOME, &rows).await;
    rows
}

/// The chain's hours from `chain[0]` on still have their seeded changes: nothing after the
/// backfilled range moved, and the seam hour has no spike.
fn assert_chain_kept(what: &str, got: &[(i64, f64)], chain: &[StatRow]) {
    let seeded = changes(chain);
    let got: BTreeMap<i64, f64> = got.iter().copied().collect();
    for (i, (t, c)) in seeded.iter().enumerate() {
        let g = got[t];
        assert!(
            (g - c).abs() < 1e-6,
            "{what}: chain hour {i} ({t}) changed from {c} to {g} kWh"
        );
    }
}

fn local_day_rows(rows: &[(i64, f64)], day: &str) -> usize {
    let (s, e) = local_day_range(date(day), tz());
    rows.iter().filter(|(t, _)| *t >= s && *t < e).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_backfill_of_a_year_is_exact_keeps_the_chain_and_is_idempotent() {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    // A zone other than HA's in pwsync's configuration: local days must come from HA.
    let sim_env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    ok(pwsync(
        &sim_env,
        &[
            "simulate",
            "--start",
            "2025-01-01",
            "--days",
            "365",
            "--seed",
            "11",
        ],
    ));
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let c = ha_client(&ha);
    let env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", "Asia/Tokyo".to_string()),
        ("PWSYNC_HOMEASSISTANT__URL", ha.url()),
        ("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()),
    ];
    let chain = seed_compiled_chain(&c, &iurl, "2025-12-18", 14).await;
    let (year_start, year_end) = (day_start("2025-01-01"), day_start("2026-01-01"));
    let read_all = || async {
        let mut all = Vec::new();
        for f in Field::ALL {
            let id = format!("sensor.powerwall_{}", f.sensor_key());
            all.push(ha_rows(&c, &id, year_start, year_end).await);
        }
        all
    };
    let before = read_all().await;

    let args = [
        "backfill",
        "--start",
        "2025-01-01",
        "--end",
        "2025-12-17",
        "--overwrite",
        "--json",
    ];
    let dry = ok(pwsync(&env, &[&args[..], &["--dry-run"]].concat()));
    assert!(dry["rows"].as_u64().unwrap() > 6 * 8000, "{dry}");
    assert_eq!(read_all().await, before, "a dry run changes nothing in HA");

    let first = ok_timed("websocket backfill", &env, &args);
    assert_eq!(
        first["rows"], dry["rows"],
        "the dry run reported the real run"
    );

    let chain_start = chain[0].start;
    for f in Field::ALL {
        let id = format!("sensor.powerwall_{}", f.sensor_key());
        let rows = ha_rows(&c, &id, year_start, year_end).await;
        let got = ha_changes(&rows);
        let want = influx_hourly(&iurl, f, year_start, chain_start).await;
        assert_hours_match(&id, &got, &want, year_start, chain_start);
        if f == Field::Home {
            assert_chain_kept(&id, &got, &chain);
            let seam = got.iter().position(|(t, _)| *t == chain_start).unwrap();
            assert!(
                got[seam].1 < 20.0 && got[seam].1 > 0.0,
                "no spike at the seam: {}",
                got[seam].1
            );
        }
        assert_eq!(local_day_rows(&got, "2025-03-09"), 23, "{id}: spring day");
        assert_eq!(local_day_rows(&got, "2025-11-02"), 25, "{id}: autumn day");
        assert!(got.iter().all(|(_, c)| *c >= 0.0), "{id}: no negative hour");
    }

    let after_first = read_all().await;
    let second = ok(pwsync(&env, &args));
    assert_eq!(second["rows"], 0, "a second identical run writes nothing");
    assert_eq!(read_all().await, after_first);
    ha.stop_async().await.unwrap();
}

/// The recorder database a scenario writes to with HA stopped.
enum Db {
    /// HA's default file in its config dir.
    Sqlite,
    /// A server: HA's `db_url` (names a Python driver) and pwsync's URL of the same database.
    Server { ha: String, pwsync: String },
}

/// Hourly `(start, change)` of `id` from the recorder database itself.
async fn db_changes(url: &str, id: &str) -> Vec<(i64, f64)> {
    let pool = any_pool(url).await;
    let sql = format!(
        "SELECT s.start_ts, s.sum FROM statistics s JOIN statistics_meta m ON m.id = s.metadata_id \
         WHERE m.statistic_id = '{id}' ORDER BY s.start_ts"
    );
    let rows: Vec<StatRow> = sqlx::query(&sql)
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| StatRow {
            start: r.get::<f64, _>(0) as i64,
            state: None,
            sum: Some(r.get::<f64, _>(1)),
        })
        .collect();
    pool.close().await;
    changes(&rows)
}

/// The recorder-database path on one engine: HA (running on that database) imports a compiled
/// chain; pwsync refuses to write while HA runs; with HA stopped a dry run changes no byte,
/// an overwrite of the earlier range matches InfluxDB, keeps the chain and has no seam spike,
/// and a second run writes nothing.
async fn recorder_scenario(db: Db) {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    let base_env = vec![
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    ok(pwsync(
        &base_env,
        &[
            "simulate",
            "--start",
            "2025-10-10",
            "--days",
            "40",
            "--seed",
            "3",
        ],
    ));
    let mut ha = HaInstance::start(HaOptions {
        recorder_db_url: match &db {
            Db::Sqlite => None,
            Db::Server { ha, .. } => Some(ha.clone()),
        },
        ..HaOptions::default().with_time_zone(ZONE)
    })
    .unwrap();
    let url = match &db {
        Db::Sqlite => format!("sqlite://{}", ha.db_path().display()),
        Db::Server { pwsync, .. } => pwsync.clone(),
    };
    let chain = seed_compiled_chain(&ha_client(&ha), &iurl, "2025-11-12", 7).await;

    let mut env = base_env.clone();
    env.push(("PWSYNC_HOMEASSISTANT__RECORDER_DB", url.clone()));
    let args = [
        "backfill",
        "--start",
        "2025-10-10",
        "--end",
        "2025-11-11",
        "--overwrite",
        "--target",
        "db",
        "--json",
    ];
    let with_ha = pwsync(&env, &args);
    assert!(!with_ha.status.success(), "refused while HA runs");
    let msg = String::from_utf8_lossy(&with_ha.stderr);
    assert!(msg.contains("running"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "one line: {msg}");
    let seeded = db_changes(&url, HOME).await;
    assert_eq!(seeded.len(), chain.len(), "nothing written while HA ran");

    ha.stop_async().await.unwrap();
    let fingerprint = || async {
        match &db {
            Db::Sqlite => sha_file(&ha.db_path()),
            Db::Server { .. } => checksum(&url).await,
        }
    };
    let before = fingerprint().await;
    let dry = ok(pwsync(&env, &[&args[..], &["--dry-run"]].concat()));
    assert!(dry["rows"].as_u64().unwrap() > 6 * 700, "{dry}");
    assert_eq!(fingerprint().await, before, "a dry run writes nothing");

    let first = ok(pwsync(&env, &args));
    assert_eq!(first["rows"], dry["rows"]);
    let (start, chain_start) = (day_start("2025-10-10"), chain[0].start);
    for f in Field::ALL {
        let id = format!("sensor.powerwall_{}", f.sensor_key());
        let got = db_changes(&url, &id).await;
        let want = influx_hourly(&iurl, f, start, chain_start).await;
        assert_hours_match(&id, &got, &want, start, chain_start);
        assert_eq!(local_day_rows(&got, "2025-11-02"), 25, "{id}: autumn day");
        assert!(got.iter().all(|(_, c)| *c >= 0.0), "{id}: no negative hour");
    }
    assert_chain_kept(HOME, &db_changes(&url, HOME).await, &chain);

    let after_first = fingerprint().await;
    let second = ok(pwsync(&env, &args));
    assert_eq!(second["rows"], 0, "a second identical run writes nothing");
    assert_eq!(fingerprint().await, after_first);
}

#[tokio::test(flavor = "multi_thread")]
async fn recorder_backfill_on_sqlite() {
    recorder_scenario(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recorder_backfill_on_mariadb() {
    let Some(_) = or_skip(MariaDbServer::available()) else {
        return;
    };
    let server = MariaDbServer::start().unwrap();
    recorder_scenario(Db::Server {
        ha: server.ha_db_url(),
        pwsync: server.url(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recorder_backfill_on_postgresql() {
    let Some(_) = or_skip(PostgresServer::available()) else {
        return;
    };
    let server = PostgresServer::start().unwrap();
    recorder_scenario(Db::Server {
        ha: server.ha_db_url(),
        pwsync: server.url(),
    })
    .await;
}
