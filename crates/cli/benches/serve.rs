//! `pwsync serve`, per poll: pwsync's CPU time, InfluxDB's query time, and serve's memory, with
//! 1 and 3 years of history in a real InfluxDB (a real Mosquitto takes the states).
//!
//! `cargo bench -p pwsync --bench serve` (`PWSYNC_BENCH_POLLS=N`, default 30).

use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::process::proc_cpu_seconds as cpu;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A `/proc/<pid>/status` value in kB (VmRSS, VmHWM).
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `millis=` of a debug log line of an InfluxDB query.
fn query_millis(line: &str) -> Option<f64> {
    let i = line.find("millis=")?;
    line[i + 7..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn run(years: u64, polls: usize) {
    let influx = InfluxServer::start().expect("InfluxDB (apt-get install influxdb)");
    let broker = Mosquitto::start().expect("mosquitto (apt-get install mosquitto)");
    let days = 365 * years + 1;
    let start = (chrono::Utc::now() - chrono::Duration::days(days as i64 - 1))
        .format("%Y-%m-%d")
        .to_string();
    let env = [
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_MQTT__URL", broker.url()),
        ("PWSYNC_TIME_ZONE", "America/Los_Angeles".to_string()),
    ];
    let sim = Command::new(env!("CARGO_BIN_EXE_pwsync"))
        .args(["simulate", "--start", &start, "--days", &days.to_string()])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_pwsync"))
        .args(["serve", "--interval", "1"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PWSYNC_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let t0 = Instant::now();
    let (mut startup, mut last_cpu, mut last_influx) = (None, 0.0, 0.0);
    let (mut cpu_ms, mut influx_cpu_ms, mut query_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut pending_query = None;
    for line in lines.map_while(Result::ok) {
        if line.contains("influx query") && line.contains("percentage") {
            pending_query = query_millis(&line);
        }
        if !line.contains("poll published") {
            continue;
        }
        let (c, i) = (cpu(pid), cpu(influx.pid()));
        if startup.is_none() {
            startup = Some((t0.elapsed().as_secs_f64(), c));
        } else {
            cpu_ms.push((c - last_cpu) * 1000.0);
            influx_cpu_ms.push((i - last_influx) * 1000.0);
            if let Some(q) = pending_query.take() {
                query_ms.push(q);
            }
        }
        (last_cpu, last_influx) = (c, i);
        if cpu_ms.len() >= polls {
            break;
        }
    }
    let (rss, hwm) = (status_kb(pid, "VmRSS:"), status_kb(pid, "VmHWM:"));
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let (startup_s, startup_cpu) = startup.expect("serve published");
    println!(
        "{years} year(s) of history, {} polls: per poll pwsync CPU {:.2} ms (mean: /proc counts 10 ms ticks), \
         InfluxDB query {:.1} ms (median), InfluxDB CPU {:.2} ms (mean); \
         start-up (the lifetime baseline) {:.2} s wall, {:.2} s CPU; serve RSS {:.1} MB, peak {:.1} MB",
        cpu_ms.len(),
        cpu_ms.iter().sum::<f64>() / cpu_ms.len() as f64,
        median(query_ms),
        influx_cpu_ms.iter().sum::<f64>() / influx_cpu_ms.len() as f64,
        startup_s,
        startup_cpu,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
}

fn main() {
    let polls = std::env::var("PWSYNC_BENCH_POLLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    for years in [1, 3] {
        run(years, polls);
    }
}
