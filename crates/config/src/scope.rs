//! What `check` and `repair` look at: the shared flags, and the check job's options made
//! from them and the configuration (the CLI's commands and the daemon's jobs alike).

use crate::target::Opened;
use crate::target::TargetArgs;
use crate::Config;
use anyhow::{bail, Result};
use pwsync_energy::audit::Tolerance;
use pwsync_energy::local::parse_date;
use pwsync_jobs::check::{statistic_ids, CheckOptions};
use std::collections::BTreeMap;

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
