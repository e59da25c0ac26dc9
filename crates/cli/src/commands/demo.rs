//! `pwsync demo`: the main job on embedded defaults, with nothing to configure. Starts a real
//! InfluxDB in a temp dir, loads a simulated year, shows what pwsync reads from it, and stops
//! everything it started.

use super::backfill::{print_report, run_job};
use super::energy::{gap_rows, monthly, print_gaps, print_periods};
use super::simulate::load;
use anyhow::{bail, Context, Result};
use pwsync_config::source::Source;
use pwsync_config::Config;
use pwsync_energy::local::{group_by_local_day, local_day_range};
use pwsync_energy::Field;
use pwsync_energy::{Bucket, Integration};
use pwsync_jobs::BackfillOptions;
use pwsync_recorder::RecorderDb;
use pwsync_sandbox::influxd::InfluxServer;
use pwsync_store::{StatisticsStore, Table};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Days of simulated data.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

const DEMO_TZ: &str = "America/Los_Angeles";
const DEMO_START: &str = "2025-01-01";

pub async fn run(args: DemoArgs) -> Result<()> {
    ensure_influxd()?;
    let t0 = Instant::now();
    let server = InfluxServer::start().context("starting InfluxDB for the demo")?;
    println!(
        "Started InfluxDB {} (pid {}) in a temp dir",
        server.url(),
        server.pid()
    );
    let mut cfg = Config::default();
    cfg.influxdb.url = server.url();
    cfg.time_zone = DEMO_TZ.into();
    let tz = cfg.tz()?;
    let source = pwsync_config::source::from_config(&cfg)?;
    let origin = local_day_range(pwsync_energy::local::parse_date(DEMO_START)?, tz).0;
    let n = load(&source, args.seed, origin, args.days, tz).await?;
    println!(
        "Loaded {n} simulated one-minute rows ({} days from {DEMO_START}, {DEMO_TZ}) in {:.1} s",
        args.days,
        t0.elapsed().as_secs_f64()
    );

    let t1 = Instant::now();
    let end = origin + args.days * 86_400;
    let energy = source.hourly(&Field::ALL, origin, end).await?;
    let hours = energy[&Field::Home].buckets.len();
    println!(
        "Computed {hours} hours x 6 fields of energy in {:.2} s (gaps over {} min not bridged)\n",
        t1.elapsed().as_secs_f64(),
        cfg.influxdb.gap_limit_secs / 60
    );
    print_periods("month", &monthly(&energy, tz), &Field::ALL);
    let dst: Vec<_> = super::energy::periods(&energy, tz, group_by_local_day)
        .into_iter()
        .filter(|d| d.expected_hours != 24.0)
        .collect();
    print_periods("day (DST changes: 23 and 25 hours)", &dst, &Field::ALL);
    print_gaps(&gap_rows(&energy, tz), tz);

    backfill_demo(&source, &cfg, &energy).await?;
    drop(server);
    println!("\nStopped InfluxDB. Next: point pwsync.toml at your own InfluxDB and run `pwsync energy --start … --end …`.");
    Ok(())
}

/// Backfill the year into a fresh HA recorder database (the schema HA 2025.4.4 creates, embedded)
/// and read it back: the monthly energy HA's Energy dashboard would show.
async fn backfill_demo(
    source: &Source,
    cfg: &Config,
    energy: &BTreeMap<Field, Integration>,
) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("pwsync-demo-").tempdir()?;
    let db = dir.path().join("home-assistant_v2.db");
    create_recorder_db(&db).await?;
    let url = format!("sqlite://{}", db.display());
    let tz = cfg.tz()?;
    let opts = BackfillOptions::all_missing(&cfg.site, tz, chrono::Utc::now().timestamp());
    let store = RecorderDb::open(&url).await?;
    let first = run_job(source, &store, &opts).await?;
    println!("\nBackfill into a fresh HA recorder database (SQLite, schema of HA 2025.4.4):");
    print_report(&first, tz);
    let again = run_job(source, &store, &opts).await?;
    println!(
        "Second identical run: {} rows to write (idempotent).",
        again.rows
    );

    let mut read_back = BTreeMap::new();
    for f in Field::ALL {
        let rows = store
            .read(
                &cfg.meter_entity(f),
                Table::Hourly,
                i64::MIN / 2,
                i64::MAX / 2,
            )
            .await?;
        read_back.insert(
            f,
            Integration {
                bucket: 3600,
                buckets: changes_as_buckets(&rows),
                ..Default::default()
            },
        );
    }
    store.close().await;
    print_periods(
        "month, read back from HA's statistics table",
        &monthly(&read_back, tz),
        &Field::ALL,
    );
    let (a, b) = (total(energy), total(&read_back));
    println!(
        "Total in HA {b:.3} kWh vs InfluxDB {a:.3} kWh (difference {:.6} kWh)",
        b - a
    );
    Ok(())
}

fn total(e: &BTreeMap<Field, Integration>) -> f64 {
    e.values().map(|i| i.total_wh()).sum::<f64>() / 1000.0
}

/// Each row's energy is its `sum` minus the previous row's (the chain starts at 0), as the
/// Energy dashboard computes it.
fn changes_as_buckets(rows: &[pwsync_energy::StatRow]) -> Vec<Bucket> {
    let mut prev = 0.0;
    rows.iter()
        .filter_map(|r| {
            let s = r.sum?;
            let b = Bucket {
                start: r.start,
                wh: (s - prev) * 1000.0,
                covered: 3600,
            };
            prev = s;
            Some(b)
        })
        .collect()
}

async fn create_recorder_db(path: &std::path::Path) -> Result<()> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::ConnectOptions;
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await?;
    sqlx::raw_sql(RECORDER_SCHEMA).execute(&mut conn).await?;
    Ok(())
}

const RECORDER_SCHEMA: &str = include_str!("../../assets/ha-2025.4.4-recorder-sqlite.sql");

/// The demo needs Debian's `influxd`; install it when we can, else say exactly how.
fn ensure_influxd() -> Result<()> {
    if pwsync_sandbox::require("influxd", "").is_ok() {
        return Ok(());
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root && pwsync_sandbox::require("apt-get", "").is_ok() {
        eprintln!(
            "influxd not found: installing Debian package 'influxdb' (apt-get install influxdb)"
        );
        let ok = std::process::Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok && pwsync_sandbox::require("influxd", "").is_ok() {
            return Ok(());
        }
    }
    bail!("the demo needs InfluxDB 1.x (influxd): install it with `sudo apt-get install influxdb` and run the demo again")
}
