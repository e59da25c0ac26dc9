//! `pwsync check`: find spikes, negative hours, holes, hours that disagree with InfluxDB, a
//! 5-minute chain out of step, a bad seam with the live sensor and missing history (hours with
//! InfluxDB data and no row in HA). Exit 0 only when clean.

use crate::commands::chart;
use crate::config::Config;
use crate::exit;
use crate::output::table;
use crate::target::{Opened, TargetArgs};
use anyhow::{bail, Result};
use pwsync_energy::audit::Tolerance;
use pwsync_energy::local::parse_date;
use pwsync_jobs::check::{statistic_ids, CheckOptions, CheckReport};
use pwsync_jobs::range::fmt_ts;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `check` and `repair` look at (shared flags).
#[derive(clap::Args, Debug, Clone)]
pub struct Scope {
    /// First local day to check, YYYY-MM-DD (default: the first InfluxDB point).
    #[arg(long)]
    pub since: Option<String>,
    /// Check this energy statistic instead of pwsync's six meters (repeatable). Statistics
    /// without an InfluxDB field are checked for negative hours, spikes, holes and the 5-minute
    /// chain only.
    #[arg(long = "entity", value_name = "ID")]
    pub entities: Vec<String>,
    /// An hour is wrong when it differs from InfluxDB by more than this many Wh …
    #[arg(long, value_name = "WH")]
    pub tolerance_wh: Option<f64>,
    /// … and by more than this percentage (default: limits.tolerance_wh / tolerance_pct).
    #[arg(long, value_name = "PCT")]
    pub tolerance_pct: Option<f64>,
    #[command(flatten)]
    pub target: TargetArgs,
}

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
    let source = crate::source::from_config(cfg)?;
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

/// The job's options from flags and config; with HA's websocket, the live sensors' readings
/// for the seam check.
pub async fn options(scope: &Scope, cfg: &Config, target: &Opened) -> Result<CheckOptions> {
    let since = scope.since.as_deref().map(parse_date).transpose()?;
    let tolerance = Tolerance {
        wh: scope.tolerance_wh.unwrap_or(cfg.limits.tolerance_wh),
        pct: scope.tolerance_pct.unwrap_or(cfg.limits.tolerance_pct),
    };
    if !(tolerance.wh >= 0.0 && tolerance.pct >= 0.0) {
        bail!("tolerances must be 0 or more: pass --tolerance-wh 10 --tolerance-pct 1");
    }
    let mut opts = CheckOptions {
        site: cfg.site.clone(),
        entities: scope.entities.clone(),
        since,
        tz: target.tz,
        now: chrono::Utc::now().timestamp(),
        limit_kwh: cfg.limits.max_power_kw,
        tolerance,
        live: BTreeMap::new(),
        live_lag_secs: live_lag_secs(cfg),
    };
    if let Some(ha) = target.ha() {
        opts.live = live_readings(ha, &statistic_ids(&opts)).await?;
    }
    Ok(opts)
}

/// How far `serve`'s reading may lag the meter at an hour boundary: a poll interval, plus the
/// two minutes before InfluxDB holds a minute's mean (Powerwall-Dashboard's continuous query).
pub fn live_lag_secs(cfg: &Config) -> i64 {
    cfg.mqtt.poll_interval_secs as i64 + 120
}

/// Current readings (kWh) of those of `ids` that are entities with a numeric energy state.
async fn live_readings(ha: &pwsync_ha::HaClient, ids: &[String]) -> Result<BTreeMap<String, f64>> {
    let states = ha.get_states().await?;
    Ok(states
        .into_iter()
        .filter(|s| ids.contains(&s.entity_id))
        .filter_map(|s| {
            let unit = s.attributes.get("unit_of_measurement")?.as_str()?;
            let factor = pwsync_ha::metadata::kwh_factor(unit)?;
            let v: f64 = s.state.parse().ok()?;
            Some((s.entity_id, v * factor))
        })
        .collect())
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
