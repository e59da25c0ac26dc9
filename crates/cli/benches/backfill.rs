//! `pwsync backfill --all` of years of simulated history (six meters), end to end through the
//! binary: (a) into a real HA 2025.4.4 through its websocket, (b) into an SQLite recorder
//! database whose schema HA made. Reports rows per second, the write phase alone, and where the
//! CPU time went (pwsync, HA, InfluxDB), so "pwsync's share of the wall time" is a measurement.
//!
//! `cargo bench -p pwsync --bench backfill` (`PWSYNC_BENCH_YEARS=1`, `PWSYNC_BENCH_RUNS=1` for a
//! quick run).

use pwsync_ha::{ClientOptions, HaClient};
use pwsync_testkit::ha::{reference_sqlite_db, HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use std::process::Command;
use std::time::{Duration, Instant};

const ZONE: &str = "America/Los_Angeles";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) of a process from /proc, or of this process's waited-for
/// children when `pid` is None.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    match pid {
        Some(pid) => pwsync_testkit::process::proc_cpu_seconds(pid),
        None => {
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t(u.ru_utime) + t(u.ru_stime)
        }
    }
}

struct Run {
    rows: u64,
    wall: f64,
    write: f64,
    pwsync_cpu: f64,
    ha_cpu: f64,
    influx_cpu: f64,
}

fn backfill(env: &[(&str, String)], extra: &[&str], ha_pid: Option<u32>, influx_pid: u32) -> Run {
    let (c0, h0, i0) = (
        cpu_seconds(None),
        ha_pid.map(|p| cpu_seconds(Some(p))).unwrap_or(0.0),
        cpu_seconds(Some(influx_pid)),
    );
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pwsync"))
        .args([&["backfill", "--all", "--json"][..], extra].concat())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("PWSYNC_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let wall = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Run {
        rows: report["rows"].as_u64().unwrap(),
        wall,
        write: report["write_seconds"].as_f64().unwrap(),
        pwsync_cpu: cpu_seconds(None) - c0,
        ha_cpu: ha_pid.map(|p| cpu_seconds(Some(p))).unwrap_or(0.0) - h0,
        influx_cpu: cpu_seconds(Some(influx_pid)) - i0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summarize(what: &str, runs: &[Run]) {
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let rows = runs[0].rows as f64;
    let (wall, write) = (m(|r| r.wall), m(|r| r.write));
    println!(
        "{what}: {rows} rows, median of {} runs: wall {wall:.2} s = {:.0} rows/s end to end; \
         write phase {write:.2} s = {:.0} rows/s",
        runs.len(),
        rows / wall,
        rows / write.max(1e-9)
    );
    println!(
        "  CPU: pwsync {:.2} s ({:.1} % of wall), HA {:.2} s, InfluxDB {:.2} s",
        m(|r| r.pwsync_cpu),
        100.0 * m(|r| r.pwsync_cpu / r.wall),
        m(|r| r.ha_cpu),
        m(|r| r.influx_cpu),
    );
}

async fn clear_all(ha: &HaInstance) {
    let c = HaClient::new(ClientOptions::new(&ha.url(), ha.token()));
    let ids: Vec<String> = pwsync_energy::Field::ALL
        .iter()
        .map(|f| format!("sensor.powerwall_{}", f.sensor_key()))
        .collect();
    c.clear_statistics(&ids).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !c.get_statistics_metadata(&ids).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "HA did not clear the statistics");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main]
async fn main() {
    let years = env_num("PWSYNC_BENCH_YEARS", 3);
    let runs = env_num("PWSYNC_BENCH_RUNS", 3) as usize;
    let influx = InfluxServer::start().expect("InfluxDB (apt-get install influxdb)");
    let base = vec![
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    let days = (365 * years).to_string();
    let sim = Command::new(env!("CARGO_BIN_EXE_pwsync"))
        .args(["simulate", "--start", "2023-01-01", "--days", &days])
        .envs(base.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    println!("{years} year(s) of simulated 1-minute data in InfluxDB; {runs} run(s) each");

    // (b) the recorder database, HA stopped: a fresh copy of HA's schema for every run.
    let mut db_runs = Vec::new();
    for _ in 0..runs {
        let db = reference_sqlite_db().unwrap();
        let mut env = base.clone();
        env.push((
            "PWSYNC_HOMEASSISTANT__RECORDER_DB",
            format!("sqlite://{}", db.path().display()),
        ));
        db_runs.push(backfill(&env, &["--target", "db"], None, influx.pid()));
    }
    summarize("(b) SQLite recorder database", &db_runs);

    // (a) HA's websocket, HA running: the statistics are cleared between runs.
    let ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let mut env = base.clone();
    env.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    env.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    let mut ws_runs = Vec::new();
    for i in 0..runs {
        if i > 0 {
            clear_all(&ha).await;
        }
        ws_runs.push(backfill(&env, &[], ha.pid(), influx.pid()));
    }
    summarize("(a) HA websocket", &ws_runs);
}
