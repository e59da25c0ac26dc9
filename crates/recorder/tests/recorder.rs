//! `RecorderDb` on SQLite, MariaDB and PostgreSQL databases whose schema a real Home Assistant
//! made (the release `PWSYNC_TEST_HA` names: 2025.4.4 with schema 50 by default, 2026.11.0 with
//! schema 53). Every scenario runs on every engine.

mod common;

use common::{sha256, Fixture, Hass};
use pwsync_energy::{Shift, StatRow, FIVE_MIN, HOUR};
use pwsync_recorder::{Engine, HaStatus, RecorderOptions};
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, StoreError, Table, WritePlan};
use sqlx::Row;

/// 2025-01-01T00:00:00Z
const T0: i64 = 1_735_689_600;

fn hourly(hours: std::ops::Range<i64>, base: f64) -> Vec<StatRow> {
    hours
        .map(|h| StatRow {
            start: T0 + h * HOUR,
            state: Some(1000.0 + base + h as f64 * 1.25),
            sum: Some(base + h as f64 * 1.25),
        })
        .collect()
}

fn short_term(slots: std::ops::Range<i64>, base: f64) -> Vec<StatRow> {
    slots
        .map(|i| StatRow {
            start: T0 + i * FIVE_MIN,
            state: Some(1000.0 + base + i as f64 * 0.1),
            sum: Some(base + i as f64 * 0.1),
        })
        .collect()
}

fn write(
    id: &str,
    hourly: Vec<StatRow>,
    short_term: Vec<StatRow>,
    shifts: Vec<Shift>,
) -> StatWrite {
    StatWrite {
        meta: StatMeta::energy_kwh(id, &format!("{id} name")),
        shifts,
        hourly,
        short_term,
    }
}

fn plan(writes: Vec<StatWrite>) -> WritePlan {
    WritePlan { writes }
}

async fn read_all(db: &impl StatisticsStore, id: &str, table: Table) -> Vec<StatRow> {
    db.read(id, table, 0, i64::MAX / 2).await.unwrap()
}

/// Generate one `#[tokio::test]` per engine for each scenario.
macro_rules! on_every_engine {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() {
                if let Some(f) = crate::Fixture::sqlite().await { crate::$scenario(f).await }
            })*
        }
        mod mariadb {
            $(#[tokio::test]
            async fn $scenario() {
                if let Some(f) = crate::Fixture::mariadb().await { crate::$scenario(f).await }
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                if let Some(f) = crate::Fixture::postgres().await { crate::$scenario(f).await }
            })*
        }
    };
}

on_every_engine!(
    a_plan_reads_back_equal_with_database_assigned_ids,
    shifts_move_later_rows_of_both_tables_exactly,
    an_existing_hour_is_updated_in_place,
    a_plan_failing_midway_leaves_the_database_unchanged,
    a_running_home_assistant_refuses_writes_but_allows_reads,
    an_unknown_schema_version_is_refused,
    an_open_recorder_run_is_refused_unless_allowed,
    a_statistic_stored_in_wh_reads_and_writes_in_kwh,
    unit_class_is_written_where_the_schema_has_it,
    home_assistant_reads_what_pwsync_wrote,
);

async fn a_plan_reads_back_equal_with_database_assigned_ids(f: Fixture) {
    let db = f.open().await;
    assert_eq!(db.schema_version(), common::tested().schema_version);
    assert_eq!(db.engine(), f.engine);
    assert!(db.writes_short_term());
    let (h, s) = (hourly(0..48, 0.0), short_term(0..36, 0.0));
    let p = plan(vec![
        write("sensor.pw_home_usage", h.clone(), s.clone(), vec![]),
        write(
            "sensor.pw_solar_generated",
            hourly(0..3, 5.0),
            vec![],
            vec![],
        ),
    ]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    db.apply(&p).await.unwrap();

    assert_eq!(
        read_all(&db, "sensor.pw_home_usage", Table::Hourly).await,
        h
    );
    assert_eq!(
        read_all(&db, "sensor.pw_home_usage", Table::ShortTerm).await,
        s
    );
    // [start, end) and last_before.
    let mid = db
        .read(
            "sensor.pw_home_usage",
            Table::Hourly,
            T0 + 10 * HOUR,
            T0 + 12 * HOUR,
        )
        .await
        .unwrap();
    assert_eq!(mid, h[10..12]);
    assert_eq!(
        db.last_before("sensor.pw_home_usage", Table::Hourly, T0 + 10 * HOUR)
            .await
            .unwrap(),
        Some(h[9])
    );
    assert_eq!(
        db.last_before("sensor.pw_home_usage", Table::ShortTerm, T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.read("sensor.nothing", Table::Hourly, 0, i64::MAX / 2)
            .await
            .unwrap(),
        vec![]
    );

    let meta = db
        .metadata(&["sensor.pw_home_usage".into(), "sensor.nothing".into()])
        .await
        .unwrap();
    assert_eq!(
        meta,
        vec![StatMeta::energy_kwh(
            "sensor.pw_home_usage",
            "sensor.pw_home_usage name"
        )]
    );
    let listed: Vec<String> = db
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.statistic_id)
        .collect();
    assert_eq!(
        listed,
        vec!["sensor.pw_home_usage", "sensor.pw_solar_generated"]
    );
    db.close().await;

    // What HA reads: mean_type 0 written explicitly, has_mean unused, legacy columns NULL,
    // created_ts now, times as float epoch seconds.
    let raw = f.raw().await;
    let r = sqlx::query(
        "SELECT mean_type, has_mean IS NULL, source, unit_of_measurement FROM statistics_meta \
         WHERE statistic_id = 'sensor.pw_home_usage'",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!(
        r.try_get::<i64, _>(0)
            .or_else(|_| r.try_get::<i16, _>(0).map(i64::from))
            .unwrap(),
        0
    );
    assert!(r
        .try_get::<bool, _>(1)
        .or_else(|_| r.try_get::<i64, _>(1).map(|v| v == 1))
        .unwrap());
    assert_eq!(r.try_get::<String, _>(2).unwrap(), "recorder");
    assert_eq!(r.try_get::<String, _>(3).unwrap(), "kWh");
    for table in ["statistics", "statistics_short_term"] {
        let legacy = f
            .count(&format!(
                "SELECT COUNT(*) FROM {table} WHERE created IS NOT NULL OR start IS NOT NULL \
                 OR last_reset IS NOT NULL OR last_reset_ts IS NOT NULL OR mean IS NOT NULL"
            ))
            .await;
        assert_eq!(legacy, 0, "{table}");
        let r = sqlx::query(&format!(
            "SELECT MIN(created_ts), MAX(created_ts) FROM {table}"
        ))
        .fetch_one(&raw)
        .await
        .unwrap();
        let (lo, hi): (f64, f64) = (r.try_get(0).unwrap(), r.try_get(1).unwrap());
        assert!(
            lo >= before - 1.0 && hi <= before + 120.0,
            "{table}: {lo} {hi} vs {before}"
        );
    }
    // Ids came from the database: the next row HA inserts without an id gets a fresh one
    // (PostgreSQL: the identity sequence was used, not bypassed).
    sqlx::raw_sql(
        "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, has_sum, name, mean_type) \
         VALUES ('sensor.ha_made_later', 'recorder', 'kWh', TRUE, 'later', 0)",
    )
    .execute(&raw)
    .await
    .unwrap();
    assert_eq!(
        f.count("SELECT COUNT(DISTINCT id) FROM statistics_meta")
            .await,
        3
    );
    raw.close().await;
}

async fn shifts_move_later_rows_of_both_tables_exactly(f: Fixture) {
    let db = f.open().await;
    let id = "sensor.pw_grid_imported";
    let (h, s) = (hourly(0..6, 0.0), short_term(0..72, 0.0));
    db.apply(&plan(vec![write(id, h.clone(), s.clone(), vec![])]))
        .await
        .unwrap();
    // A shift from 02:35: hourly rows from 02:00 (the hour it falls in), 5-minute rows from
    // 02:35 on; a second shift from 04:00 adds to what the first moved.
    let shifts = vec![
        Shift {
            from: T0 + 2 * HOUR + 35 * 60,
            delta: 2.5,
        },
        Shift {
            from: T0 + 4 * HOUR,
            delta: -0.75,
        },
    ];
    db.apply(&plan(vec![write(id, vec![], vec![], shifts.clone())]))
        .await
        .unwrap();
    let moved = |rows: &[StatRow], floor: bool| -> Vec<StatRow> {
        rows.iter()
            .map(|r| {
                let mut sum = r.sum.unwrap();
                for sh in &shifts {
                    let from = if floor {
                        pwsync_energy::floor_hour(sh.from)
                    } else {
                        sh.from
                    };
                    if r.start >= from {
                        sum += sh.delta;
                    }
                }
                StatRow {
                    sum: Some(sum),
                    ..*r
                }
            })
            .collect()
    };
    let got_h = read_all(&db, id, Table::Hourly).await;
    let got_s = read_all(&db, id, Table::ShortTerm).await;
    assert_eq!(got_h, moved(&h, true));
    assert_eq!(got_s, moved(&s, false));
    // Spot checks of the semantics themselves.
    assert_eq!(got_h[1].sum, h[1].sum);
    assert_eq!(got_h[2].sum, Some(h[2].sum.unwrap() + 2.5));
    assert_eq!(got_s[30].sum, s[30].sum, "02:30 is before the shift");
    assert_eq!(
        got_s[31].sum,
        Some(s[31].sum.unwrap() + 2.5),
        "02:35 is shifted"
    );
    assert_eq!(got_h[5].sum, Some(h[5].sum.unwrap() + 2.5 - 0.75));
    // States are never shifted.
    assert!(got_h.iter().zip(&h).all(|(a, b)| a.state == b.state));
    db.close().await;
}

async fn an_existing_hour_is_updated_in_place(f: Fixture) {
    let db = f.open().await;
    let id = "sensor.pw_battery_charged";
    db.apply(&plan(vec![write(
        id,
        hourly(0..4, 0.0),
        short_term(0..3, 0.0),
        vec![],
    )]))
    .await
    .unwrap();
    let raw = f.raw().await;
    let ids_of = |table: &'static str| {
        let raw = raw.clone();
        async move {
            sqlx::query(&format!(
                "SELECT id, start_ts, created_ts FROM {table} ORDER BY start_ts"
            ))
            .fetch_all(&raw)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get::<i64, _>(0).unwrap(),
                    r.try_get::<f64, _>(1).unwrap(),
                    r.try_get::<f64, _>(2).unwrap(),
                )
            })
            .collect::<Vec<_>>()
        }
    };
    let before = ids_of("statistics").await;
    let before_short = ids_of("statistics_short_term").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Hour 2 rewritten (twice in the plan: the last one wins), hour 4 new, one 5-minute row
    // rewritten.
    let new2 = StatRow {
        start: T0 + 2 * HOUR,
        state: Some(77.0),
        sum: Some(7.5),
    };
    let mut rows = vec![
        StatRow {
            sum: Some(-1.0),
            ..new2
        },
        new2,
    ];
    rows.extend(hourly(4..5, 10.0));
    let new_short = StatRow {
        start: T0 + FIVE_MIN,
        state: Some(3.0),
        sum: Some(0.5),
    };
    db.apply(&plan(vec![write(id, rows, vec![new_short], vec![])]))
        .await
        .unwrap();
    let after = ids_of("statistics").await;
    let after_short = ids_of("statistics_short_term").await;
    assert_eq!(after.len(), 5, "one new row");
    assert_eq!(
        after[..4],
        before[..],
        "ids, starts and created_ts of existing rows kept"
    );
    assert_eq!(after_short, before_short);
    let got = read_all(&db, id, Table::Hourly).await;
    assert_eq!(got[2], new2);
    assert_eq!(got[4], hourly(4..5, 10.0)[0]);
    assert_eq!(got[1], hourly(0..4, 0.0)[1]);
    assert_eq!(read_all(&db, id, Table::ShortTerm).await[1], new_short);
    // The unique index holds: one row per (metadata_id, start_ts).
    assert_eq!(
        f.count("SELECT COUNT(*) FROM (SELECT metadata_id, start_ts FROM statistics GROUP BY metadata_id, start_ts HAVING COUNT(*) > 1) d").await,
        0
    );
    raw.close().await;
    db.close().await;
}

async fn a_plan_failing_midway_leaves_the_database_unchanged(f: Fixture) {
    let db = f.open().await;
    let id = "sensor.pw_grid_exported";
    db.apply(&plan(vec![write(
        id,
        hourly(0..24, 0.0),
        short_term(0..24, 0.0),
        vec![],
    )]))
    .await
    .unwrap();
    let fingerprint = f.fingerprint().await;

    // 1. Our own check fails midway: the second statistic exists in a unit that is not energy,
    // after the first one's shift and 1300 rows were written inside the transaction.
    f.exec(
        "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, has_sum, name, mean_type) \
         VALUES ('sensor.pw_power', 'recorder', 'W', FALSE, 'power', 1)",
    )
    .await;
    let fingerprint_w = f.fingerprint().await;
    let p = plan(vec![
        write(
            id,
            hourly(24..1324, 30.0),
            vec![],
            vec![Shift {
                from: T0,
                delta: 1.0,
            }],
        ),
        write("sensor.pw_power", hourly(0..2, 0.0), vec![], vec![]),
    ]);
    let err = db.apply(&p).await.unwrap_err();
    assert!(matches!(err, StoreError::Command(_)), "{err}");
    assert!(err.to_string().contains("not an energy unit"), "{err}");
    assert_eq!(f.fingerprint().await, fingerprint_w);

    // 2. The database fails midway: a trigger rejects one 5-minute row of the last chunk of
    // the second statistic, after a new metadata row and a shift.
    let bad_start = T0 + 1200 * FIVE_MIN;
    let trigger = match f.engine {
        Engine::Sqlite => format!(
            "CREATE TRIGGER pwsync_test_fail BEFORE INSERT ON statistics_short_term \
             WHEN NEW.start_ts = {bad_start} BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
        ),
        Engine::MySql => format!(
            "CREATE TRIGGER pwsync_test_fail BEFORE INSERT ON statistics_short_term FOR EACH ROW \
             BEGIN IF NEW.start_ts = {bad_start} THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'forced failure'; END IF; END"
        ),
        Engine::Postgres => format!(
            "CREATE FUNCTION pwsync_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.start_ts = {bad_start} THEN RAISE EXCEPTION 'forced failure'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER pwsync_test_fail BEFORE INSERT ON statistics_short_term \
             FOR EACH ROW EXECUTE FUNCTION pwsync_test_fail()"
        ),
    };
    f.exec(&trigger).await;
    let p = plan(vec![
        write(
            id,
            hourly(24..1324, 30.0),
            short_term(30..40, 0.0),
            vec![Shift {
                from: T0,
                delta: 1.0,
            }],
        ),
        write(
            "sensor.pw_new",
            hourly(0..10, 0.0),
            short_term(0..1201, 0.0),
            vec![],
        ),
    ]);
    let err = db.apply(&p).await.unwrap_err();
    assert!(err.to_string().contains("forced failure"), "{err}");
    assert_eq!(f.fingerprint().await, fingerprint_w);
    assert_eq!(
        db.metadata(&["sensor.pw_new".into()]).await.unwrap(),
        vec![]
    );
    assert_eq!(read_all(&db, id, Table::Hourly).await, hourly(0..24, 0.0));
    let _ = fingerprint;
    db.close().await;
}

async fn a_running_home_assistant_refuses_writes_but_allows_reads(f: Fixture) {
    {
        let db = f.open().await;
        db.apply(&plan(vec![write(
            "sensor.pw_home_usage",
            hourly(0..3, 0.0),
            vec![],
            vec![],
        )]))
        .await
        .unwrap();
        db.close().await;
    }
    let fingerprint = f.fingerprint().await;
    let backups = || {
        std::fs::read_dir(f.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("pwsync-backup"))
            .count()
    };
    let backups_before = backups();

    let mut ha = Hass::start(&f.hass, &f.ha_db_url()).unwrap();
    ha.wait_running(&f.url).await.unwrap();
    let db = f.open().await;
    let status = db.ha_status().await.unwrap();
    assert!(matches!(status, HaStatus::Running { .. }), "{status:?}");
    if f.engine == Engine::Sqlite {
        assert!(
            format!("{status:?}").contains(&format!("pid {}", ha.pid())),
            "{status:?}"
        );
    }
    // Reads work while HA runs.
    assert_eq!(
        read_all(&db, "sensor.pw_home_usage", Table::Hourly).await,
        hourly(0..3, 0.0)
    );
    let err = db
        .apply(&plan(vec![write(
            "sensor.pw_home_usage",
            hourly(3..5, 3.75),
            vec![],
            vec![],
        )]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("Home Assistant is running ("), "{msg}");
    assert!(
        msg.ends_with("stop it before an offline write, or use the websocket target"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // Nothing written, not even a backup.
    assert_eq!(f.fingerprint().await, fingerprint);
    assert_eq!(db.backup_path(), None);
    assert_eq!(backups(), backups_before);
    // Stopped cleanly, HA lets go, and the same write goes through.
    let stopped = ha.stop();
    assert_eq!(
        db.ha_status().await.unwrap(),
        HaStatus::Stopped,
        "{stopped}"
    );
    db.apply(&plan(vec![write(
        "sensor.pw_home_usage",
        hourly(3..5, 3.75),
        vec![],
        vec![],
    )]))
    .await
    .unwrap();
    assert_eq!(
        read_all(&db, "sensor.pw_home_usage", Table::Hourly)
            .await
            .len(),
        5
    );
    db.close().await;
}

async fn an_unknown_schema_version_is_refused(f: Fixture) {
    let max: i64 = f.count("SELECT MAX(change_id) FROM schema_changes").await;
    // The first version after the newest pwsync was checked against, in a copy of a database
    // the release under test made.
    let newer = pwsync_recorder::schema::SUPPORTED.end() + 1;
    for (version, fix) in [(newer, "update pwsync"), (48, "upgrade Home Assistant")] {
        f.exec(&format!(
            "INSERT INTO schema_changes (change_id, schema_version, changed) \
             VALUES ({}, {version}, '2025-06-01 00:00:00')",
            max + 1
        ))
        .await;
        let err = pwsync_recorder::RecorderDb::open(&f.url)
            .await
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(
            matches!(err, pwsync_recorder::RecorderError::Refused(_)),
            "{msg}"
        );
        assert!(msg.contains(&format!("schema version {version}")), "{msg}");
        assert!(msg.contains(fix), "{msg}");
        assert!(!msg.contains('\n'));
        f.exec(&format!(
            "DELETE FROM schema_changes WHERE change_id = {}",
            max + 1
        ))
        .await;
    }
    // The highest change_id counts, not the highest version.
    assert_eq!(
        f.open().await.schema_version(),
        common::tested().schema_version
    );
}

async fn an_open_recorder_run_is_refused_unless_allowed(f: Fixture) {
    assert_eq!(f.open().await.ha_status().await.unwrap(), HaStatus::Stopped);
    // What a crash leaves: the last run without an end.
    let end = if f.engine == Engine::MySql {
        "`end`"
    } else {
        "\"end\""
    };
    f.exec(&format!(
        "UPDATE recorder_runs SET {end} = NULL WHERE run_id = (SELECT m FROM (SELECT MAX(run_id) AS m FROM recorder_runs) x)"
    ))
    .await;
    let fingerprint = f.fingerprint().await;
    let p = plan(vec![write(
        "sensor.pw_solar_generated",
        hourly(0..2, 0.0),
        vec![],
        vec![],
    )]);
    let db = f.open().await;
    assert!(matches!(
        db.ha_status().await.unwrap(),
        HaStatus::UncleanShutdown { .. }
    ));
    // Reads still work.
    assert_eq!(db.list().await.unwrap(), vec![]);
    let err = db.apply(&p).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Refused(_)), "{msg}");
    assert!(msg.contains("did not shut down cleanly"), "{msg}");
    assert!(msg.contains("--allow-unclean-shutdown"), "{msg}");
    assert_eq!(f.fingerprint().await, fingerprint);
    // Closed and dropped. `close` can return while the connection of the refused write is
    // still on its way back to the pool (a task of the runtime); it then stays open in the
    // pool's idle queue until the pool is dropped, and would count as HA running below.
    db.close().await;
    drop(db);

    // With the run open, any session left on the server would count as HA running.
    f.wait_for_no_sessions().await;
    let db = f
        .open_with(RecorderOptions {
            allow_unclean_shutdown: true,
            ..Default::default()
        })
        .await;
    db.apply(&p).await.unwrap();
    assert_eq!(
        read_all(&db, "sensor.pw_solar_generated", Table::Hourly).await,
        hourly(0..2, 0.0)
    );
    db.close().await;

    // Read-only: writes refused whatever the state.
    let db = f
        .open_with(RecorderOptions {
            read_only: true,
            allow_unclean_shutdown: true,
        })
        .await;
    let err = db.apply(&p).await.unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    db.close().await;
}

async fn a_statistic_stored_in_wh_reads_and_writes_in_kwh(f: Fixture) {
    f.exec(
        "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, has_sum, name, mean_type) \
         VALUES ('sensor.teslemetry_home', 'recorder', 'Wh', TRUE, 'Home', 0)",
    )
    .await;
    f.exec(&format!(
        "INSERT INTO statistics (created_ts, metadata_id, start_ts, state, sum) \
         SELECT 1.0, id, {}, 1500.0, 250.0 FROM statistics_meta WHERE statistic_id = 'sensor.teslemetry_home'",
        T0
    ))
    .await;
    let db = f.open().await;
    let rows = read_all(&db, "sensor.teslemetry_home", Table::Hourly).await;
    assert_eq!(
        rows,
        vec![StatRow {
            start: T0,
            state: Some(1.5),
            sum: Some(0.25)
        }]
    );
    let meta = db
        .metadata(&["sensor.teslemetry_home".into()])
        .await
        .unwrap();
    assert_eq!(meta[0].unit_of_measurement.as_deref(), Some("Wh"));
    // Writes in kWh land in Wh, shifts too; the metadata keeps its unit.
    db.apply(&plan(vec![write(
        "sensor.teslemetry_home",
        vec![StatRow {
            start: T0 + HOUR,
            state: Some(2.0),
            sum: Some(0.75),
        }],
        vec![],
        vec![Shift {
            from: T0,
            delta: 0.125,
        }],
    )]))
    .await
    .unwrap();
    let raw = f.raw().await;
    let stored: Vec<(f64, f64)> =
        sqlx::query("SELECT state, sum FROM statistics ORDER BY start_ts")
            .fetch_all(&raw)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect();
    assert_eq!(stored, vec![(1500.0, 375.0), (2000.0, 750.0)]);
    raw.close().await;
    assert_eq!(
        read_all(&db, "sensor.teslemetry_home", Table::Hourly).await[1].sum,
        Some(0.75)
    );
    assert_eq!(
        db.metadata(&["sensor.teslemetry_home".into()])
            .await
            .unwrap()[0]
            .unit_of_measurement
            .as_deref(),
        Some("Wh")
    );
    db.close().await;
}

async fn unit_class_is_written_where_the_schema_has_it(f: Fixture) {
    let has_it = f.open().await.columns().unit_class;
    // HA 2026.11 made the database with it (schema 53); on an older one do what HA's migration
    // to schema 52 does: add statistics_meta.unit_class.
    assert_eq!(has_it, common::tested().schema_version >= 52);
    if !has_it {
        f.exec("ALTER TABLE statistics_meta ADD COLUMN unit_class VARCHAR(255)")
            .await;
        let max: i64 = f.count("SELECT MAX(change_id) FROM schema_changes").await;
        f.exec(&format!(
            "INSERT INTO schema_changes (change_id, schema_version, changed) VALUES ({}, 52, '2025-10-01 00:00:00')",
            max + 1
        ))
        .await;
    }
    let db = f.open().await;
    assert!(db.schema_version() >= 52);
    assert!(db.columns().unit_class);
    db.apply(&plan(vec![write(
        "sensor.pw_home_usage",
        hourly(0..1, 0.0),
        vec![],
        vec![],
    )]))
    .await
    .unwrap();
    db.close().await;
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM statistics_meta WHERE statistic_id = 'sensor.pw_home_usage' \
             AND unit_class = 'energy' AND mean_type = 0"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn sqlite_backup_is_made_before_the_first_write_and_is_byte_identical() {
    let Some(f) = Fixture::sqlite().await else {
        return;
    };
    let path = f.path.clone().unwrap();
    let original = sha256(&path);
    let db = f.open().await;
    assert_eq!(db.backup_path(), None);
    assert!(db.backup_note().contains("before its first write"));
    db.apply(&plan(vec![write(
        "sensor.pw_home_usage",
        hourly(0..5, 0.0),
        vec![],
        vec![],
    )]))
    .await
    .unwrap();
    let backup = db.backup_path().expect("backup made");
    assert_eq!(backup.parent(), path.parent());
    assert!(backup
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("home-assistant_v2.db.pwsync-backup-"));
    assert_eq!(
        sha256(&backup),
        original,
        "the backup is the database before the write"
    );
    assert!(db.backup_note().contains(&backup.display().to_string()));
    // One backup per session, not per write.
    db.apply(&plan(vec![write(
        "sensor.pw_home_usage",
        hourly(5..6, 6.25),
        vec![],
        vec![],
    )]))
    .await
    .unwrap();
    assert_eq!(db.backup_path(), Some(backup.clone()));
    db.close().await;
    let backups = std::fs::read_dir(f.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("pwsync-backup"))
        .count();
    assert_eq!(backups, 1);
    assert_ne!(sha256(&path), original);
    // The backup opens as the untouched database.
    let old = pwsync_recorder::RecorderDb::open(&format!("sqlite://{}", backup.display()))
        .await
        .unwrap();
    assert_eq!(old.list().await.unwrap(), vec![]);
    old.close().await;
}

#[tokio::test]
async fn server_databases_tell_the_user_to_back_up() {
    let Some(f) = Fixture::postgres().await else {
        return;
    };
    let db = f.open().await;
    assert!(
        db.backup_note().contains("make a backup yourself"),
        "{}",
        db.backup_note()
    );
    db.apply(&plan(vec![write(
        "sensor.pw_home_usage",
        hourly(0..1, 0.0),
        vec![],
        vec![],
    )]))
    .await
    .unwrap();
    assert_eq!(db.backup_path(), None);
    db.close().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_recorder_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = pwsync_recorder::RecorderDb::open(&format!("sqlite://{}", path.display()))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("is not a Home Assistant recorder database"),
        "{err}"
    );
    let err = pwsync_recorder::RecorderDb::open("redis://localhost")
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("unsupported recorder database URL"),
        "{err}"
    );
}

/// HA itself, started on the database pwsync wrote, serves the rows back over its websocket
/// API (hourly and 5-minute, Wh converted to kWh by HA) with the metadata pwsync created.
async fn home_assistant_reads_what_pwsync_wrote(f: Fixture) {
    f.exec(
        "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, has_sum, name, mean_type) \
         VALUES ('sensor.teslemetry_home', 'recorder', 'Wh', TRUE, 'Home', 0)",
    )
    .await;
    let (h, s) = (hourly(0..6, 0.0), short_term(0..24, 0.0));
    let db = f.open().await;
    db.apply(&plan(vec![
        write("sensor.pw_home_usage", h, s, vec![]),
        write("sensor.teslemetry_home", hourly(0..3, 2.0), vec![], vec![]),
    ]))
    .await
    .unwrap();
    db.apply(&plan(vec![write(
        "sensor.pw_home_usage",
        vec![],
        vec![],
        vec![Shift {
            from: T0 + HOUR + 5 * 60,
            delta: 0.5,
        }],
    )]))
    .await
    .unwrap();
    let ours_h = read_all(&db, "sensor.pw_home_usage", Table::Hourly).await;
    let ours_s = read_all(&db, "sensor.pw_home_usage", Table::ShortTerm).await;
    let ours_wh = read_all(&db, "sensor.teslemetry_home", Table::Hourly).await;
    db.close().await;

    let mut ha = Hass::start(&f.hass, &f.ha_db_url()).unwrap();
    ha.wait_running(&f.url).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ha_read_statistics.py");
    let scripts = std::path::Path::new(script).parent().unwrap();
    let out = common::venv_command(&f.hass, "bin/python", &[scripts])
        .arg(script)
        .arg(ha.base_url())
        .args(["2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"])
        .args(["sensor.pw_home_usage", "sensor.teslemetry_home"])
        .output()
        .unwrap();
    let _ = ha.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let rows = |period: &str, id: &str| -> Vec<StatRow> {
        reply[period][id]
            .as_array()
            .unwrap_or_else(|| panic!("{period} {id}: {reply}"))
            .iter()
            .map(|r| StatRow {
                start: r["start"].as_i64().unwrap() / 1000,
                state: r["state"].as_f64(),
                sum: r["sum"].as_f64(),
            })
            .collect()
    };
    assert_eq!(rows("hour", "sensor.pw_home_usage"), ours_h);
    assert_eq!(rows("5minute", "sensor.pw_home_usage"), ours_s);
    assert_eq!(ours_h[2].sum, Some(2.5 + 0.5), "the shift is what HA sees");
    let theirs_wh = rows("hour", "sensor.teslemetry_home");
    assert_eq!(theirs_wh.len(), 3);
    for (a, b) in theirs_wh.iter().zip(&ours_wh) {
        assert_eq!(a.start, b.start);
        assert!(
            (a.sum.unwrap() - b.sum.unwrap()).abs() < 1e-9,
            "{a:?} {b:?}"
        );
        assert!(
            (a.state.unwrap() - b.state.unwrap()).abs() < 1e-9,
            "{a:?} {b:?}"
        );
    }
    let meta = reply["meta"].as_array().unwrap();
    let ours = meta
        .iter()
        .find(|m| m["statistic_id"] == "sensor.pw_home_usage")
        .unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(ours["has_sum"], true, "{ours}");
    assert_eq!(ours["has_mean"], false, "{ours}");
    assert_eq!(ours["source"], "recorder", "{ours}");
    assert_eq!(ours["statistics_unit_of_measurement"], "kWh", "{ours}");
    assert_eq!(ours["unit_class"], "energy", "{ours}");
    assert_eq!(ours["name"], "sensor.pw_home_usage name", "{ours}");
}
