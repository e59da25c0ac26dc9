//! `cargo bench -p pwsync --bench check`
//!
//! `pwsync check` over 3 years of six meters (`PWSYNC_BENCH_YEARS=1` for a quick run) against a
//! real HA 2025.4.4 and a real InfluxDB: simulated 1-minute data in InfluxDB, the six meters
//! backfilled into a recorder database HA 2025.4.4 made, HA started on it, then `pwsync check
//! --json` run five times as a user runs it. Prints the medians of the whole process and of the
//! split the report gives: HA reads and InfluxDB reads (concurrent) and pwsync's own work.

use pwsync_testkit::ha::{reference_sqlite_db, HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use std::process::{Command, Output};
use std::time::Instant;

const ZONE: &str = "America/Los_Angeles";
const REPS: usize = 5;

fn pwsync(env: &[(&str, String)], args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_pwsync"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        o.status.success() || o.status.code() == Some(3),
        "pwsync {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let years: u32 = std::env::var("PWSYNC_BENCH_YEARS")
        .ok()
        .and_then(|y| y.parse().ok())
        .unwrap_or(3);
    let influx = InfluxServer::start().expect("InfluxDB (apt-get install influxdb)");
    let mut env = vec![
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    let t = Instant::now();
    let days = (years * 365 + years / 4 + 1).to_string();
    pwsync(
        &env,
        &[
            "simulate",
            "--start",
            "2023-01-01",
            "--days",
            &days,
            "--seed",
            "7",
        ],
    );
    eprintln!(
        "simulated {years} year(s) in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let db = reference_sqlite_db().expect("HA venv (scripts/ensure-ha.sh)");
    let url = format!("sqlite://{}", db.path().display());
    let t = Instant::now();
    pwsync(&env, &["backfill", "--all", "--target", "db", "--db", &url]);
    eprintln!(
        "backfilled six meters in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let mut ha = HaInstance::start(HaOptions {
        sqlite_db: Some(db.path().to_path_buf()),
        ..HaOptions::default().with_time_zone(ZONE)
    })
    .unwrap();
    env.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    env.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));

    let (mut wall, mut total, mut ha_read, mut influx_read, mut own) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut hours = 0;
    for _ in 0..REPS {
        let t = Instant::now();
        let o = pwsync(&env, &["check", "--json"]);
        wall.push(t.elapsed().as_secs_f64());
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["problems"], 0, "a backfilled chain is clean");
        let s = &r["seconds"];
        total.push(s["total"].as_f64().unwrap());
        ha_read.push(s["ha_read"].as_f64().unwrap());
        influx_read.push(s["influx_read"].as_f64().unwrap());
        own.push(s["analysis"].as_f64().unwrap());
        hours = r["statistics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["hourly_rows"].as_u64().unwrap())
            .sum::<u64>();
    }
    ha.stop().unwrap();
    println!("pwsync check, {years} year(s) × 6 meters = {hours} hourly rows, median of {REPS}:");
    println!("  end to end (process)          {:.2} s", median(wall));
    println!("  inside the job                {:.2} s", median(total));
    println!("  HA reads (websocket)          {:.2} s", median(ha_read));
    println!(
        "  InfluxDB reads + integration  {:.2} s  (at the same time as HA's)",
        median(influx_read)
    );
    println!("  pwsync's own analysis         {:.3} s", median(own));
}
