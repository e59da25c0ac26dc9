//! Shifts reach both tables: HA is started on a recorder database seeded with hourly and
//! 5-minute rows (no API writes 5-minute rows, and waiting for HA to compile a real sensor would
//! take 5 minutes per row), then WsStore applies a plan with shifts and an overwritten hour.

mod common;

use common::hours_ago;
use pwsync_energy::{StatRow, FIVE_MIN, HOUR};
use pwsync_ha::{ClientOptions, HaClient, WsStore};
use pwsync_store::{Shift, StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use pwsync_testkit::ha::{self, HaInstance, HaOptions};

const ID: &str = "sensor.pwsync_test_seeded";

/// Hourly rows for 6 hours from `h0` and the 5-minute rows under them: 1 kWh per 5 minutes
/// plus a third, `sum` from 0, `state` from 1000.
fn seeded(h0: i64) -> (Vec<StatRow>, Vec<StatRow>) {
    let per = 1.0 + 1.0 / 3.0;
    let short: Vec<StatRow> = (0..72)
        .map(|i| StatRow {
            start: h0 + i * FIVE_MIN,
            state: Some(1000.0 + per * (i + 1) as f64),
            sum: Some(per * (i + 1) as f64),
        })
        .collect();
    // An hourly row copies its hour's last 5-minute row, as HA compiles it.
    let hourly = (0..6)
        .map(|h| StatRow {
            start: h0 + h * HOUR,
            ..short[(h * 12 + 11) as usize]
        })
        .collect();
    (hourly, short)
}

fn seed_sql(h0: i64, hourly: &[StatRow], short: &[StatRow]) -> String {
    let mut sql = format!(
        "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement, has_mean, \
         has_sum, name, mean_type) VALUES ('{ID}', 'recorder', 'kWh', 0, 1, 'Seeded', 0);"
    );
    let meta = format!("(SELECT id FROM statistics_meta WHERE statistic_id = '{ID}')");
    for (table, rows) in [("statistics", hourly), ("statistics_short_term", short)] {
        for r in rows {
            sql += &format!(
                "INSERT INTO {table} (created_ts, metadata_id, start_ts, state, sum) \
                 VALUES ({}, {meta}, {}, {}, {});",
                h0 + 6 * HOUR,
                r.start,
                r.state.unwrap(),
                r.sum.unwrap()
            );
        }
    }
    // A statistics run at the current 5 minutes: HA compiles no missing periods at start.
    let now = chrono::Utc::now().timestamp();
    let run = chrono::DateTime::from_timestamp(now - now % FIVE_MIN, 0).unwrap();
    sql += &format!(
        "INSERT INTO statistics_runs (start) VALUES ('{}');",
        run.format("%Y-%m-%d %H:%M:%S%.6f")
    );
    sql
}

#[tokio::test]
async fn shifts_move_later_hourly_and_5_minute_rows_and_spare_overwritten_hours() {
    let Some(venv) = ha::venv_or_skip() else {
        return;
    };
    let h0 = hours_ago(8);
    let (hourly, short) = seeded(h0);
    let db = ha::reference_sqlite_db().unwrap();
    ha::sqlite_query(&venv, db.path(), &seed_sql(h0, &hourly, &short)).unwrap();
    let mut instance = HaInstance::start(HaOptions {
        sqlite_db: Some(db.path().to_path_buf()),
        ..HaOptions::default()
    })
    .unwrap();
    let store = WsStore::new(HaClient::new(ClientOptions::new(
        &instance.url(),
        instance.token(),
    )));

    // HA serves the seeded rows as they are.
    let end = h0 + 6 * HOUR;
    assert_eq!(
        store.read(ID, Table::Hourly, h0, end).await.unwrap(),
        hourly
    );
    assert_eq!(
        store.read(ID, Table::ShortTerm, h0, end).await.unwrap(),
        short
    );

    // Overwrite hour 1 with new values; shift from 30 minutes into hour 2 by +2.5 and from
    // hour 4 by -1 (cumulative: +1.5 from there).
    let new_h1 = StatRow {
        start: h0 + HOUR,
        state: Some(2000.0),
        sum: Some(20.0),
    };
    let mid_h2 = h0 + 2 * HOUR + 30 * 60;
    let plan = WritePlan {
        writes: vec![StatWrite {
            meta: StatMeta::energy_kwh(ID, "Seeded"),
            shifts: vec![
                Shift {
                    from: mid_h2,
                    delta: 2.5,
                },
                Shift {
                    from: h0 + 4 * HOUR,
                    delta: -1.0,
                },
            ],
            hourly: vec![new_h1],
            short_term: vec![],
        }],
    };
    store.apply(&plan).await.unwrap();
    let report = store.last_report().unwrap();
    assert_eq!((report.shifts, report.rows, report.batches), (2, 1, 1));

    let shift_at = |t: i64, hourly_table: bool| -> f64 {
        plan.writes[0]
            .shifts
            .iter()
            .filter(|s| {
                if hourly_table {
                    s.from - s.from % HOUR <= t
                } else {
                    s.from <= t
                }
            })
            .map(|s| s.delta)
            .sum()
    };
    // Hourly: HA shifts from the shift's hour on (hour 2 moves although the shift starts at
    // :30); the overwritten hour 1 holds exactly what was written.
    let got = store.read(ID, Table::Hourly, h0, end).await.unwrap();
    let want: Vec<StatRow> = hourly
        .iter()
        .map(|r| {
            if r.start == new_h1.start {
                new_h1
            } else {
                StatRow {
                    sum: r.sum.map(|s| s + shift_at(r.start, true)),
                    ..*r
                }
            }
        })
        .collect();
    assert_eq!(got.len(), 6);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.start, w.start);
        assert_eq!(g.state, w.state, "hourly state at {}", g.start);
        assert!(
            (g.sum.unwrap() - w.sum.unwrap()).abs() < 1e-9,
            "hourly {g:?} vs {w:?}"
        );
    }
    assert_eq!(got[2].sum, Some(hourly[2].sum.unwrap() + 2.5));
    // 5-minute: exactly the rows from the shift's start on; import touched none of them.
    let got = store.read(ID, Table::ShortTerm, h0, end).await.unwrap();
    assert_eq!(got.len(), short.len());
    for (g, r) in got.iter().zip(&short) {
        let want = r.sum.unwrap() + shift_at(r.start, false);
        assert_eq!(g.state, r.state);
        assert!(
            (g.sum.unwrap() - want).abs() < 1e-9,
            "5-minute {g:?}, want sum {want}"
        );
    }
    assert_eq!(got[29].sum, short[29].sum, "2:25 is before the shift");
    assert!(
        (got[30].sum.unwrap() - short[30].sum.unwrap() - 2.5).abs() < 1e-9,
        "2:30 moved"
    );

    // last_before on the 5-minute table finds the last seeded row.
    assert_eq!(
        store
            .last_before(ID, Table::ShortTerm, end + 3 * HOUR)
            .await
            .unwrap()
            .map(|r| r.start),
        Some(short[71].start)
    );
    instance.stop_async().await.unwrap();
}
