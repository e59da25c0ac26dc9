//! `heal`: `serve`'s hourly repair of the last compiled hours.

use super::repair::{repair_range, Fill, StatisticRepair};
use super::CheckOptions;
use crate::range::compiled_limit;
use crate::JobError;
use chrono_tz::Tz;
use pwsync_energy::audit::Tolerance;
use pwsync_energy::floor_hour;
use pwsync_store::{EnergySource, StatisticsStore};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How `serve` heals: the hours it looks at and how strictly.
#[derive(Debug, Clone)]
pub struct HealOptions {
    pub site: String,
    pub tz: Tz,
    pub limit_kwh: f64,
    pub tolerance: Tolerance,
    /// How far back to look (48 h).
    pub lookback: Duration,
    /// See [`CheckOptions::live_lag_secs`].
    pub live_lag_secs: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealReport {
    pub start: i64,
    pub end: i64,
    /// Each repaired hour, by statistic.
    pub statistics: Vec<StatisticRepair>,
    pub rows: usize,
    pub seconds: f64,
}

/// Self-healing for `serve`, once an hour: check pwsync's meters over the last `lookback` of
/// compiled hours and splice InfluxDB's energy into every hour HA recorded wrongly (for example
/// the energy of an HA or pwsync outage that HA's compile put into one hour). Logs each repair.
pub async fn heal(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &HealOptions,
    now: i64,
) -> Result<HealReport, JobError> {
    let t0 = Instant::now();
    let end = compiled_limit(now);
    let start = floor_hour(end - opts.lookback.as_secs() as i64);
    let check = CheckOptions {
        site: opts.site.clone(),
        entities: Vec::new(),
        since: None,
        tz: opts.tz,
        now,
        limit_kwh: opts.limit_kwh,
        tolerance: opts.tolerance,
        live: BTreeMap::new(),
        live_lag_secs: opts.live_lag_secs,
    };
    // Missing history is `backfill`'s and `repair`'s to write, not a by-product of a heal.
    let (report, _) =
        repair_range(source, store, &check, (start, end), Fill::DamageOnly, false).await?;
    for s in &report.statistics {
        for f in &s.fixes {
            tracing::info!(
                statistic_id = %s.statistic_id,
                hour = %crate::range::fmt_ts(f.hour, opts.tz),
                fix = %f.fix.describe(),
                "healed"
            );
        }
    }
    Ok(HealReport {
        start,
        end,
        rows: report.rows,
        statistics: report.statistics,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
