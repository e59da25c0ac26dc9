//! How fast the panel's pages answer, over real HTTP on loopback, with three years of history
//! behind them: History's chart data of 6 statistics × 26,304 hours (the page, and one
//! statistic's `history/series.json`), a problem table of 200 rows, a log of 50 jobs with 4 KB
//! reports. The backend (`pwsync_web::fixed`) answers from what it keeps, as `serve`'s does;
//! this measures the panel's own share (routing, access check, rendering, transfer). Target:
//! under 50 ms a page.
//!
//! `cargo bench -p pwsync-web --bench pages`

use pwsync_web::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAYS: usize = 1096;

/// The chart's data `check` keeps for 3 years: 6 statistics × 26,304 hours (and their days),
/// a few hours without data.
fn series() -> Vec<Arc<ChartSeries>> {
    let hours = DAYS * 24;
    let value = |i: usize, side: usize| match (i * 7 + side) % 97 {
        0 => f32::NAN,
        v => (v as f32 * 0.0371 * 1000.0).round() / 1000.0,
    };
    (0..6)
        .map(|s| {
            let column = |side| (0..hours).map(|i| value(i + s, side)).collect();
            let days = |side| (0..DAYS).map(|d| value(d + s, side) * 24.0).collect();
            Arc::new(ChartSeries {
                statistic: format!("sensor.powerwall_meter_{s}"),
                time_zone: "America/Los_Angeles".into(),
                hours: HourColumns {
                    start: 1_701_417_600,
                    step: 3600,
                    ha: column(0),
                    influx: column(1),
                },
                days: DayColumns {
                    start: (0..DAYS as i64)
                        .map(|d| 1_701_417_600 + d * 86_400)
                        .collect(),
                    ha: days(0),
                    influx: days(1),
                },
            })
        })
        .collect()
}

fn kept() -> fixed::Fixed {
    let meters = (0..14)
        .map(|i| MeterRow {
            name: format!("Meter {i}"),
            value: Reading::Number(1000.123456 + i as f64),
            unit: Some("kWh".into()),
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
            start: 1_704_096_000 + i * 86_400,
            end: 1_704_099_600 + i * 86_400,
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
    fixed::Fixed::new(
        StatusView {
            sections,
            checked_at: Some("now".into()),
            meters,
            last_poll: Some("now".into()),
            interrupted: None,
            guide: (1..=4)
                .map(|i| GuideStep {
                    title: format!("Step {i}"),
                    detail: "what pwsync found, in a sentence or two".repeat(3),
                    state: if i < 3 {
                        StepState::Done
                    } else {
                        StepState::Todo
                    },
                    action: Some(GuideAction::DryRun {
                        job: JobKind::Backfill,
                        label: "Backfill 3.0 years".into(),
                    }),
                })
                .collect(),
        },
        HistoryView {
            checked: Some(CheckedView {
                at: "now".into(),
                by: "daily".into(),
                from: "2023-12-01".into(),
                to: "2026-12-01".into(),
                problems,
                series: series(),
            }),
        },
        log,
    )
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
            "{:<12} {:>10} {:>12} {:>12} {:>10}",
            "page", "bytes", "median ms", "p95 ms", "requests"
        );
        let pages = [
            "",
            "history",
            "history/series.json?statistic=sensor.powerwall_meter_3",
            "jobs",
            "log",
            "panel.css",
        ];
        for page in pages {
            let url = format!("{base}{page}");
            let mut times = Vec::new();
            let mut bytes = 0;
            for i in 0..220 {
                let t = Instant::now();
                let resp = http.get(&url).send().await.unwrap();
                assert!(resp.status().is_success(), "{url}: {}", resp.status());
                let body = resp.bytes().await.unwrap();
                // The first 20 warm the connection and the allocator.
                if i >= 20 {
                    times.push(t.elapsed());
                }
                bytes = body.len();
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{:<12} {:>10} {:>12.2} {:>12.2} {:>10}",
                match page {
                    "" => "status",
                    p if p.starts_with("history/") => "series.json",
                    p => p,
                },
                bytes,
                ms(times[times.len() / 2]),
                ms(times[times.len() * 95 / 100]),
                times.len()
            );
        }
    });
}
