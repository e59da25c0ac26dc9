//! Throughput of `RecorderDb::apply`: 3 years × 6 meters of hourly rows (157,680 rows) into a
//! fresh copy of the recorder database HA 2025.4.4 made. Target: ≥ 100,000 rows/s on SQLite.
//!
//! `cargo bench -p pwsync-recorder` prints the median over `PWSYNC_BENCH_RUNS` (default 5) runs
//! for SQLite (inserting into an empty chain, then rewriting every row in place), and one run
//! each on MariaDB and PostgreSQL where installed.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Fixture;
use pwsync_energy::{StatRow, HOUR};
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, WritePlan};
use std::time::{Duration, Instant};

const METERS: [&str; 6] = [
    "home_usage",
    "solar_generated",
    "grid_imported",
    "grid_exported",
    "battery_discharged",
    "battery_charged",
];

fn plan(offset: f64) -> WritePlan {
    let start = 1_672_531_200; // 2023-01-01T00:00:00Z
    let hours = 3 * 365 * 24;
    WritePlan {
        writes: METERS
            .iter()
            .enumerate()
            .map(|(m, key)| {
                let mut sum = offset;
                StatWrite {
                    meta: StatMeta::energy_kwh(&format!("sensor.powerwall_{key}"), key),
                    shifts: vec![],
                    hourly: (0..hours)
                        .map(|h| {
                            sum += 0.1 + ((h * 7 + m as i64 * 13) % 37) as f64 / 10.0;
                            StatRow {
                                start: start + h * HOUR,
                                state: Some(sum + 1000.0),
                                sum: Some(sum),
                            }
                        })
                        .collect(),
                    short_term: vec![],
                }
            })
            .collect(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn timed(f: &Fixture, plans: &[&WritePlan]) -> Vec<Duration> {
    let db = f.open().await;
    let mut out = Vec::new();
    for p in plans {
        let t = Instant::now();
        db.apply(p).await.expect("apply");
        out.push(t.elapsed());
    }
    db.close().await;
    out
}

fn report(label: &str, rows: usize, secs: &[f64]) {
    let rates: Vec<f64> = secs.iter().map(|s| rows as f64 / s).collect();
    println!(
        "{label:<32} {rows} rows  median {:>9.0} rows/s  (min {:.0}, max {:.0}, {} runs)",
        median(rates.clone()),
        rates.iter().cloned().fold(f64::INFINITY, f64::min),
        rates.iter().cloned().fold(0.0, f64::max),
        rates.len()
    );
}

fn main() {
    let runs: usize = std::env::var("PWSYNC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, second) = (plan(0.0), plan(0.5));
    let rows = first.row_count();
    rt.block_on(async {
        let (mut insert, mut update) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let Some(f) = Fixture::sqlite().await else {
                return;
            };
            let t = timed(&f, &[&first, &second]).await;
            insert.push(t[0].as_secs_f64());
            update.push(t[1].as_secs_f64());
        }
        report("sqlite insert (fresh HA db)", rows, &insert);
        report("sqlite rewrite in place", rows, &update);
        if let Some(f) = Fixture::mariadb().await {
            let t = timed(&f, &[&first, &second]).await;
            report("mariadb insert", rows, &[t[0].as_secs_f64()]);
            report("mariadb rewrite in place", rows, &[t[1].as_secs_f64()]);
        }
        if let Some(f) = Fixture::postgres().await {
            let t = timed(&f, &[&first, &second]).await;
            report("postgres insert", rows, &[t[0].as_secs_f64()]);
            report("postgres rewrite in place", rows, &[t[1].as_secs_f64()]);
        }
    });
}
