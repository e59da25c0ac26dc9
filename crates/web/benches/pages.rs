//! How fast the panel's pages answer, over real HTTP on loopback, with three years of history
//! behind them: History's chart as `check --chart` draws 6 statistics × 1,096 days, a problem
//! table of 200 rows, a log of 50 jobs with 4 KB reports. The backend answers from what it
//! keeps, as `serve`'s does; this measures the panel's own share (routing, access check,
//! rendering, transfer). Target: under 50 ms a page.
//!
//! `cargo bench -p pwsync-web --bench pages`

use async_trait::async_trait;
use pwsync_web::*;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const DAYS: usize = 1096;

struct Kept {
    status: StatusView,
    history: HistoryView,
    log: Vec<LogEntry>,
    progress: watch::Sender<Progress>,
}

#[async_trait]
impl Backend for Kept {
    async fn status(&self) -> StatusView {
        self.status.clone()
    }
    async fn history(&self) -> HistoryView {
        self.history.clone()
    }
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
    async fn dry_run(&self, _: &JobForm) -> Result<Plan, String> {
        Err("not in this bench".into())
    }
    async fn apply(&self, _: u64) -> Result<u64, String> {
        Err("not in this bench".into())
    }
    fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
    async fn log(&self) -> Vec<LogEntry> {
        self.log.clone()
    }
    async fn resume(&self) -> Result<(), String> {
        Err("not in this bench".into())
    }
}

/// An SVG the size `check --chart` draws for 3 years: two polylines of 1,096 points per panel.
fn chart() -> String {
    let mut s =
        String::from("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"1060\">");
    for panel in 0..6 {
        for line in 0..2 {
            s.push_str("<polyline fill=\"none\" points=\"");
            for d in 0..DAYS {
                let y = 40.0 + panel as f64 * 170.0 + ((d * 7 + line) % 120) as f64;
                let _ = write!(s, "{:.1},{:.1} ", 70.0 + d as f64 * 0.79, y);
            }
            s.push_str("\"/>");
        }
    }
    s.push_str("</svg>");
    s
}

fn kept() -> Kept {
    let meters = (0..14)
        .map(|i| MeterRow {
            name: format!("Meter {i}"),
            value: format!("{}.123 kWh", 1000 + i),
        })
        .collect();
    let sections = (0..5)
        .map(|i| Section {
            title: format!("Part {i}"),
            ok: i % 2 == 0,
            rows: (0..5)
                .map(|r| (format!("key {r}"), format!("value {r}")))
                .collect(),
        })
        .collect();
    let problems = (0..200)
        .map(|i| ProblemRow {
            hour: format!("2025-01-{:02} 10:00 PST", i % 28 + 1),
            statistic: "sensor.powerwall_home_usage".into(),
            kind: "spike".into(),
            found: "25.000".into(),
            expected: "1.200".into(),
            cause: "the energy of an outage in one hour".into(),
        })
        .collect();
    let log = (0..50)
        .map(|i| LogEntry {
            id: i,
            job: "backfill".into(),
            trigger: "panel".into(),
            command: "pwsync backfill --all".into(),
            dry_run: i % 2 == 1,
            started: "2026-12-02 09:00 PST".into(),
            finished: "2026-12-02 09:01 PST".into(),
            succeeded: true,
            report: "x".repeat(4096),
        })
        .collect();
    Kept {
        status: StatusView {
            sections,
            checked_at: Some("now".into()),
            meters,
            last_poll: Some("now".into()),
            interrupted: None,
        },
        history: HistoryView {
            checked: Some(CheckedView {
                at: "now".into(),
                by: "daily".into(),
                from: "2023-12-01".into(),
                to: "2026-12-01".into(),
                problems,
                chart_svg: chart(),
            }),
        },
        log,
        progress: watch::channel(Progress::default()).0,
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let router = router(Arc::new(kept()), Access::new(None, None, Hosts::default()));
        tokio::spawn(serve(listener, router, std::future::pending()));
        let http = reqwest::Client::new();
        println!(
            "{:<10} {:>10} {:>12} {:>12} {:>10}",
            "page", "bytes", "median ms", "p95 ms", "requests"
        );
        for page in ["", "history", "jobs", "log", "panel.css"] {
            let url = format!("{base}{page}");
            let mut times = Vec::new();
            let mut bytes = 0;
            for i in 0..220 {
                let t = Instant::now();
                let body = http.get(&url).send().await.unwrap().bytes().await.unwrap();
                // The first 20 warm the connection and the allocator.
                if i >= 20 {
                    times.push(t.elapsed());
                }
                bytes = body.len();
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{:<10} {:>10} {:>12.2} {:>12.2} {:>10}",
                if page.is_empty() { "status" } else { page },
                bytes,
                ms(times[times.len() / 2]),
                ms(times[times.len() * 95 / 100]),
                times.len()
            );
        }
    });
}
