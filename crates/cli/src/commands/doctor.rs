//! `pwsync doctor`: connect to everything configured, say what is there and what to do next
//! (the findings are the daemon's, [`pwsync_daemon::doctor`], which the panel shows too).

use anyhow::Result;
use pwsync_config::Config;
use pwsync_daemon::doctor::{report, tested_line, Report};
use pwsync_jobs::dashboard;
use pwsync_jobs::range::fmt_ts;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: DoctorArgs, cfg: &Config) -> Result<ExitCode> {
    let (r, tz) = report(cfg).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print(&r, tz);
    }
    for p in &r.problems {
        eprintln!("error: {}", crate::exit::escape_controls(p));
    }
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::ERROR)
    })
}

fn print(r: &Report, tz: chrono_tz::Tz) {
    let i = &r.influxdb;
    println!(
        "InfluxDB {} — version {}",
        i.url,
        i.version.as_deref().unwrap_or("unreachable")
    );
    if let (Some(f), Some(l)) = (i.first, i.last) {
        println!("  data {} → {}", fmt_ts(f, tz), fmt_ts(l, tz));
        println!(
            "  {} gap(s) longer than the gap limit, {:.1} h without data in all{}",
            i.gap_count,
            i.gap_hours,
            if i.gaps.is_empty() { "" } else { "; longest:" }
        );
        for g in &i.gaps {
            println!(
                "    {} → {} ({:.1} h)",
                fmt_ts(g.start, tz),
                fmt_ts(g.end, tz),
                g.seconds() as f64 / 3600.0
            );
        }
    }
    let h = &r.homeassistant;
    println!(
        "Home Assistant {} — version {}, time zone {}",
        h.url.as_deref().unwrap_or("(not configured)"),
        h.version.as_deref().unwrap_or("unreachable"),
        h.time_zone.as_deref().unwrap_or("unknown")
    );
    if let Some(v) = &h.version {
        println!("  {}", tested_line(v));
        println!("  pwsync statistics: {}", list(&h.pwsync_statistics));
        println!("  missing: {}", list(&h.pwsync_missing));
        println!(
            "  Tesla integration statistics: {}",
            list(&h.tesla_statistics)
        );
        if let Some(a) = &h.energy_dashboard {
            let labels =
                |v: &[dashboard::Slot]| v.iter().map(|s| s.label().to_string()).collect::<Vec<_>>();
            println!(
                "  Energy dashboard uses pwsync's meters for: {}; not for: {}",
                list(&labels(&a.uses)),
                list(&labels(&a.missing))
            );
        }
    }
    match &r.mqtt {
        Some((addr, _, state)) => println!("MQTT broker {addr} — {state}"),
        None => println!("MQTT broker — not checked"),
    }
    if let Some(db) = &r.recorder_db {
        println!("Recorder database — {db}");
    }
    println!("Last {} InfluxDB queries:", i.recent_queries.len());
    for q in &i.recent_queries {
        println!(
            "  {:>6} ms {:>7} rows  {}{}",
            q.millis,
            q.rows,
            q.query,
            q.error
                .as_deref()
                .map(|e| format!("  ERROR {e}"))
                .unwrap_or_default()
        );
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    println!("Next: {}", r.next_action);
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
