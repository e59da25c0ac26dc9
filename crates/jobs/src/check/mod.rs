//! `check`, `repair` and `heal`: read a statistic's rows from HA and its energy from InfluxDB,
//! let the core's `audit` say what is wrong, and (repair, heal) splice InfluxDB's energy into
//! the bad hours with overwrite, as `backfill --overwrite` would for those hours alone.
//! `repair` (not `heal`) also writes missing history: hours with InfluxDB data before a
//! meter's first row or after its last, or a meter HA has no statistic of yet.
//!
//! One concept per file: `survey` (what to read, HA and InfluxDB read at once, the audit),
//! `daily` (daily totals for the chart), `hourly` (the hours themselves, for the panel's
//! chart), `repair` (planning and applying a repair), `heal`
//! (`serve`'s hourly repair of the last compiled hours).

pub mod chart;
mod daily;
mod heal;
mod hourly;
mod repair;
mod survey;

pub use heal::{heal, HealOptions, HealReport};
pub use hourly::{DailyEnergy, HourlyEnergy};
pub use repair::{repair, RepairReport, StatisticRepair};
pub use survey::statistic_ids;

use crate::range::{fmt_ts, DateRange, RangeStart};
use crate::JobError;
use chrono::NaiveDate;
use chrono_tz::Tz;
use pwsync_energy::audit::{Finding, ProblemKind, Tolerance};
use pwsync_energy::{Field, HOUR};
use pwsync_store::{EnergySource, StatisticsStore};
use serde::Serialize;
use std::collections::BTreeMap;
use survey::{survey, Survey};

const DAY: i64 = 24 * HOUR;
/// 5-minute rows are read for this long before the last hourly row: HA purges them after
/// `purge_keep_days` (10 by default), so older ones rarely exist.
pub const SHORT_TERM_WINDOW: i64 = 14 * DAY;

/// What to check and how strictly.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Entity id prefix of pwsync's meters: `sensor.<site>_<key>`.
    pub site: String,
    /// Statistics to check; empty means pwsync's six meters.
    pub entities: Vec<String>,
    /// First local day; `None` means from the first InfluxDB point.
    pub since: Option<NaiveDate>,
    pub tz: Tz,
    /// Epoch seconds; only hours HA has compiled by then are checked.
    pub now: i64,
    /// Physical limit per hour, kWh (max power × 1 h).
    pub limit_kwh: f64,
    pub tolerance: Tolerance,
    /// The live sensors' current readings, kWh, read at `now` (websocket only).
    pub live: BTreeMap<String, f64>,
    /// How far a live reading may lag the meter at an hour boundary, seconds (see
    /// [`AuditInput::live_lag_secs`](pwsync_energy::audit::AuditInput::live_lag_secs)).
    pub live_lag_secs: i64,
}

/// Local day energy of a statistic next to InfluxDB's, for the chart.
#[derive(Debug, Clone, Serialize)]
pub struct DayEnergy {
    pub date: NaiveDate,
    pub ha_kwh: f64,
    /// `None` where pwsync has no InfluxDB source for the statistic or no data that day.
    pub influx_kwh: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatisticCheck {
    pub statistic_id: String,
    pub field: Option<Field>,
    pub hourly_rows: usize,
    pub short_term_rows: usize,
    pub findings: Vec<Finding>,
    pub daily: Vec<DayEnergy>,
    /// Every hour of the range, for the panel's chart (not in `check --json`: ~1 MB a year).
    #[serde(skip)]
    pub hourly: HourlyEnergy,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub statistic_id: String,
    pub reason: String,
}

/// Where the time went: HA and InfluxDB are read at the same time, so `ha_read` and
/// `influx_read` overlap; `analysis` is pwsync's own work after both arrived.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub ha_read: f64,
    pub influx_read: f64,
    pub analysis: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub start: i64,
    pub end: i64,
    pub time_zone: String,
    pub store: &'static str,
    pub statistics: Vec<StatisticCheck>,
    pub skipped: Vec<Skipped>,
    pub problems: usize,
    pub seconds: Timings,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems == 0
    }
}

/// When a finding is, in local time for tables: its hour, or for missing history its range.
pub fn when(f: &Finding, tz: Tz) -> String {
    match f.kind {
        ProblemKind::MissingHistory { to, .. } => {
            format!("{} → {}", fmt_ts(f.hour, tz), fmt_ts(to, tz))
        }
        _ => fmt_ts(f.hour, tz),
    }
}

/// The hours a finding concerns, `[start, end)` epoch seconds: its hour, or for missing
/// history its range.
pub fn span(f: &Finding) -> (i64, i64) {
    match f.kind {
        ProblemKind::MissingHistory { to, .. } => (f.hour, to.max(f.hour + HOUR)),
        _ => (f.hour, f.hour + HOUR),
    }
}

/// The hours to check: from `since` (or the first InfluxDB point) to the last compiled hour.
async fn resolve_range(
    source: &dyn EnergySource,
    opts: &CheckOptions,
) -> Result<(i64, i64), JobError> {
    let first = source
        .first_timestamp(&Field::ALL)
        .await
        .map_err(JobError::Source)?;
    let first = match (first, opts.since) {
        (Some(t), _) => t,
        (None, Some(d)) => pwsync_energy::local::local_day_range(d, opts.tz).0,
        (None, None) => {
            return Err(JobError::Source(
                "InfluxDB has no data: check influxdb.database and measurement, or pass --since to check HA's statistics alone".into(),
            ))
        }
    };
    DateRange {
        start: opts.since.map_or(RangeStart::All, RangeStart::Date),
        end: None,
    }
    .resolve(opts.tz, first, opts.now)
}

fn report(survey: &Survey, opts: &CheckOptions, store: &dyn StatisticsStore) -> CheckReport {
    let statistics: Vec<StatisticCheck> = survey
        .stats
        .iter()
        .map(|s| StatisticCheck {
            statistic_id: s.id.clone(),
            field: s.field,
            hourly_rows: s.hourly.iter().filter(|r| r.start >= survey.start).count(),
            short_term_rows: s.short_term.len(),
            findings: s.findings.clone(),
            daily: daily::daily(s, survey.start, survey.end, opts.tz),
            hourly: HourlyEnergy::of(s, survey.start, survey.end),
        })
        .collect();
    let mut seconds = survey.timings.clone();
    seconds.total = survey.t0.elapsed().as_secs_f64();
    CheckReport {
        start: survey.start,
        end: survey.end,
        time_zone: opts.tz.name().to_string(),
        store: store.kind(),
        problems: statistics.iter().map(|s| s.findings.len()).sum(),
        statistics,
        skipped: survey.skipped.clone(),
        seconds,
    }
}

/// Check pwsync's statistics (or `opts.entities`) against the rules of `audit`.
pub async fn check(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &CheckOptions,
) -> Result<CheckReport, JobError> {
    let (start, end) = resolve_range(source, opts).await?;
    let survey = survey(source, store, opts, start, end).await?;
    Ok(report(&survey, opts, store))
}
