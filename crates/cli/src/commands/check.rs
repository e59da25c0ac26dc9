//! `pwsync check`: find spikes, negative hours, holes, hours that disagree with InfluxDB, a
//! 5-minute chain out of step, a bad seam with the live sensor and missing history (hours with
//! InfluxDB data and no row in HA). Exit 0 only when clean.

use crate::commands::chart;
use crate::exit;
use crate::output::table;
use anyhow::Result;
use pwsync_config::scope::{options, Scope};
use pwsync_config::target::Opened;
use pwsync_config::Config;
use pwsync_jobs::check::CheckReport;
use pwsync_jobs::range::fmt_ts;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub scope: Scope,
    /// Also draw daily energy, HA versus InfluxDB, into this SVG or PNG file.
    #[arg(long, value_name = "FILE.svg|png")]
    pub chart: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CheckArgs, cfg: &Config) -> Result<ExitCode> {
    if let Some(path) = &args.chart {
        chart::validate_path(path)?;
    }
    let source = pwsync_config::source::from_config(cfg)?;
    // Reading only: a recorder database is opened read-only, as for a dry run.
    let target = Opened::open(&args.scope.target, cfg, true).await?;
    let result = async {
        let opts = options(&args.scope, cfg, &target).await?;
        Ok::<_, anyhow::Error>(pwsync_jobs::check(&source, target.store(), &opts).await?)
    }
    .await;
    target.close().await;
    let report = result?;
    if let Some(path) = &args.chart {
        chart::write(path, &report)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, target.tz);
        if let Some(path) = &args.chart {
            println!("Chart of daily energy: {}", path.display());
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEMS_FOUND)
    })
}

pub fn print_report(r: &CheckReport, tz: chrono_tz::Tz) {
    println!(
        "Checked {} → {} ({}) through {}: {} statistic(s), {} problem(s)",
        fmt_ts(r.start, tz),
        fmt_ts(r.end, tz),
        tz.name(),
        r.store,
        r.statistics.len(),
        r.problems
    );
    for s in &r.skipped {
        println!("  {} skipped: {}", s.statistic_id, s.reason);
    }
    if r.problems > 0 {
        let mut t = table(&[
            "statistic",
            "hour (local)",
            "problem",
            "expected",
            "found",
            "likely cause",
        ]);
        for s in &r.statistics {
            for f in &s.findings {
                t.add_row(vec![
                    s.statistic_id.clone(),
                    pwsync_jobs::check::when(f, tz),
                    f.kind.label(),
                    f.expected.map_or("-".into(), |e| format!("{e:.3} kWh")),
                    format!("{:.3} kWh", f.found),
                    f.cause().to_string(),
                ]);
            }
        }
        println!("{t}");
        println!("Fix them with `pwsync repair --dry-run`, then `pwsync repair`.");
    } else {
        println!("Clean: every hour InfluxDB has data for has a row, plausible and agreeing with InfluxDB.");
    }
    let s = &r.seconds;
    tracing::info!(
        ha_read = s.ha_read,
        influx_read = s.influx_read,
        analysis = s.analysis,
        total = s.total,
        "check timings (s; HA and InfluxDB are read at the same time)"
    );
}
