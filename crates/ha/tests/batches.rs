//! A month of six meters through WsStore in one plan (six statistics, several import batches),
//! read back whole; the time split is printed for information. The measurement of 3 years is
//! `cargo bench -p pwsync --bench backfill`.

mod common;

use common::{hours_ago, meter_rows, shared_ha, store};
use pwsync_energy::HOUR;
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, Table, WritePlan};

async fn write_days(days: usize, tag: &str) {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let hours = days * 24;
    let start = hours_ago(hours as i64 + 2);
    let keys = [
        "home",
        "solar",
        "grid_in",
        "grid_out",
        "battery_in",
        "battery_out",
    ];
    let writes: Vec<StatWrite> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| StatWrite {
            meta: StatMeta::energy_kwh(&format!("sensor.pwsync_{tag}_{k}"), k),
            shifts: vec![],
            hourly: meter_rows(start, hours, 10.0 * i as f64, 1000.0 * i as f64),
            short_term: vec![],
        })
        .collect();
    let plan = WritePlan { writes };
    s.apply(&plan).await.unwrap();
    let r = s.last_report().unwrap();
    assert_eq!(r.rows, plan.row_count());
    eprintln!(
        "{} rows in {:.2} s = {:.0} rows/s; preparing {:.2} s, sending {:.2} s, waiting for \
         HA's recorder {:.2} s, reading back {:.2} s ({} batches)",
        r.rows,
        r.total.as_secs_f64(),
        r.rows_per_sec(),
        r.preparing.as_secs_f64(),
        r.sending.as_secs_f64(),
        r.waiting.as_secs_f64(),
        r.verifying.as_secs_f64(),
        r.batches
    );
    // Spot check beyond apply's own confirmation: the last meter reads back whole.
    let last = &plan.writes[5];
    let back = s
        .read(
            &last.meta.statistic_id,
            Table::Hourly,
            start,
            start + hours as i64 * HOUR,
        )
        .await
        .unwrap();
    assert_eq!(back, last.hourly);
}

#[tokio::test]
async fn apply_30_days_of_6_meters() {
    write_days(30, "tp30").await;
}
