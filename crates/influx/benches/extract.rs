//! `cargo bench -p pwsync-influx --bench extract`
//!
//! Loads simulated 1-minute data (3 years; `PWSYNC_BENCH_YEARS=1` for a quick run) into a real
//! InfluxDB and measures, in one run and on the same range:
//!   (a) pwsync's hourly energy for all six fields (raw points → pure integrator, gap policy),
//!   (b) the bare server-side `SELECT integral(...) ... GROUP BY time(1h)` for the six fields.
//! Prints medians, the ratio (a)/(b), and the peak RSS of (a) measured in a child process
//! (so loading the data does not count).

use chrono_tz::Tz;
use pwsync_energy::{Field, HOUR};
use pwsync_influx::sim::{self, Simulator};
use pwsync_influx::{FieldMap, InfluxClient, InfluxConfig};
use pwsync_testkit::influxd::InfluxServer;
use std::time::{Duration, Instant};

const ORIGIN: i64 = 1_672_531_200; // 2023-01-01T00:00Z
const REPS: usize = 5;

fn client(url: &str) -> InfluxClient {
    InfluxClient::new(InfluxConfig {
        url: url.into(),
        timeout: Duration::from_secs(600),
        ..Default::default()
    })
    .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn extract(c: &InfluxClient, end: i64) -> usize {
    let e = c
        .energy(&FieldMap::default(), &Field::ALL, ORIGIN, end, HOUR, 300)
        .await
        .unwrap();
    e.values().map(|i| i.buckets.len()).sum()
}

async fn influx_integral(url: &str, end: i64) -> usize {
    let cols: Vec<String> = Field::ALL
        .iter()
        .map(|f| format!("integral(\"{}\",1h)", f.influx_name()))
        .collect();
    let q = format!(
        "SELECT {} FROM \"powerwall\".\"autogen\".\"http\" WHERE time >= {ORIGIN}s AND time < {end}s GROUP BY time(1h)",
        cols.join(",")
    );
    let body = reqwest::Client::new()
        .post(format!("{url}/query"))
        .form(&[("db", "powerwall"), ("q", q.as_str()), ("epoch", "s")])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap()
        .len()
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
        / 1024.0
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Child mode: one extraction, then report this process's peak RSS.
    if let Ok(url) = std::env::var("PWSYNC_BENCH_CHILD_URL") {
        let end: i64 = std::env::var("PWSYNC_BENCH_CHILD_END")
            .unwrap()
            .parse()
            .unwrap();
        rt.block_on(extract(&client(&url), end));
        println!("{:.1}", vm_hwm_mb());
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let years: i64 = std::env::var("PWSYNC_BENCH_YEARS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let end = ORIGIN + years * 365 * 86_400;
    let srv = InfluxServer::start().expect("influxd (apt-get install influxdb)");
    let url = srv.url();
    let c = client(&url);
    let tz: Tz = "America/Los_Angeles".parse().unwrap();
    let t0 = Instant::now();
    let rows = rt.block_on(async {
        sim::create_schema(&c).await.unwrap();
        let mut s = Simulator::new(1, ORIGIN, tz);
        sim::write(&c, &mut s, ORIGIN, end).await.unwrap()
    });
    println!(
        "loaded {rows} one-minute rows ({years} years) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Let InfluxDB settle its WAL into TSM, and warm both paths once.
    std::thread::sleep(Duration::from_secs(3));
    rt.block_on(extract(&c, end));
    rt.block_on(influx_integral(&url, end));

    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let t = Instant::now();
        let n = rt.block_on(extract(&c, end));
        a.push(t.elapsed().as_secs_f64());
        assert_eq!(n, (years * 365 * 24 * 6) as usize);
        let t = Instant::now();
        rt.block_on(influx_integral(&url, end));
        b.push(t.elapsed().as_secs_f64());
    }
    let rss = std::process::Command::new(std::env::current_exe().unwrap())
        .env("PWSYNC_BENCH_CHILD_URL", &url)
        .env("PWSYNC_BENCH_CHILD_END", end.to_string())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let (ma, mb) = (median(a.clone()), median(b.clone()));
    println!("\n== hourly energy extraction, 6 fields x {years} years of 1-minute data ({REPS} runs each)");
    println!("(a) pwsync extract (raw points + integrator): median {ma:.3} s   runs {a:.3?}");
    println!("(b) InfluxDB integral() GROUP BY time(1h):   median {mb:.3} s   runs {b:.3?}");
    println!("ratio (a)/(b) of medians: {:.2}   (target <= 1.5)", ma / mb);
    println!("peak RSS of (a) in its own process: {rss} MB   (target <= 150 MB)");
}
