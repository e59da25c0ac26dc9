//! `check`, `repair` and `heal`: read a statistic's rows from HA and its energy from InfluxDB,
//! let the core's `audit` say what is wrong, and (repair, heal) splice InfluxDB's energy into
//! the bad hours with overwrite, as `backfill --overwrite` would for those hours alone.

use crate::range::{compiled_limit, DateRange, RangeStart};
use crate::JobError;
use chrono::NaiveDate;
use chrono_tz::Tz;
use futures_util::future::{try_join, try_join_all};
use pwsync_energy::audit::{
    anchored_states, audit, plan_repair, AuditInput, Finding, HourFix, Measured, Tolerance,
};
use pwsync_energy::live::ha_compile;
use pwsync_energy::local::group_by_local_day;
use pwsync_energy::splice::{
    apply_plan, apply_short_term, splice, splice_short_term, SpliceInput, SplicePlan,
};
use pwsync_energy::stats::hourly_changes_from_zero;
use pwsync_energy::{floor_hour, Bucket, Field, Integration, Shift, StatRow, HOUR};
use pwsync_store::{EnergySource, StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
    /// [`AuditInput::live_lag_secs`]).
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

/// One statistic as read and audited.
struct Surveyed {
    id: String,
    field: Option<Field>,
    meta: StatMeta,
    hourly: Vec<StatRow>,
    short_term: Vec<StatRow>,
    measured: BTreeMap<i64, Measured>,
    findings: Vec<Finding>,
}

struct Survey {
    start: i64,
    end: i64,
    stats: Vec<Surveyed>,
    skipped: Vec<Skipped>,
    timings: Timings,
    t0: Instant,
}

/// A statistic to look at: its id and, for pwsync's meters, the InfluxDB field behind it.
fn targets(opts: &CheckOptions) -> Vec<(String, Option<Field>)> {
    let meter = |f: Field| format!("sensor.{}_{}", opts.site, f.sensor_key());
    if opts.entities.is_empty() {
        return Field::ALL.iter().map(|&f| (meter(f), Some(f))).collect();
    }
    opts.entities
        .iter()
        .map(|id| {
            (
                id.clone(),
                Field::ALL.into_iter().find(|&f| meter(f) == *id),
            )
        })
        .collect()
}

/// The statistic ids `opts` names (pwsync's six meters unless `entities` are given).
pub fn statistic_ids(opts: &CheckOptions) -> Vec<String> {
    targets(opts).into_iter().map(|t| t.0).collect()
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

/// Energy statistics only: a sum in an energy unit (the store converts rows to kWh).
fn is_energy(meta: &StatMeta) -> bool {
    let unit = meta.unit_of_measurement.as_deref().unwrap_or("");
    meta.has_sum && (unit.ends_with("Wh") || unit.ends_with('J'))
}

/// Read everything for `[start, end)` (HA and InfluxDB at once) and audit each statistic.
async fn survey(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &CheckOptions,
    start: i64,
    end: i64,
) -> Result<Survey, JobError> {
    let t0 = Instant::now();
    let wanted = targets(opts);
    let ids: Vec<String> = wanted.iter().map(|t| t.0.clone()).collect();
    let metas = store.metadata(&ids).await?;
    let mut skipped = Vec::new();
    let mut present = Vec::new();
    for (id, field) in wanted {
        match metas.iter().find(|m| m.statistic_id == id) {
            Some(m) if is_energy(m) => present.push((id, field, m.clone())),
            Some(m) => {
                return Err(JobError::Input(format!(
                    "{id} is not an energy statistic (unit {}, has_sum {}): pass the id of a kWh or Wh meter",
                    m.unit_of_measurement.as_deref().unwrap_or("none"),
                    m.has_sum
                )))
            }
            None if !opts.entities.is_empty() => {
                return Err(JobError::Input(format!(
                    "statistic {id} is not in HA: `pwsync doctor` lists the statistics that exist"
                )))
            }
            None => skipped.push(Skipped {
                statistic_id: id,
                reason: "not in HA yet: run `pwsync backfill --all` to create it".into(),
            }),
        }
    }
    let fields: Vec<Field> = present.iter().filter_map(|p| p.1).collect();

    let ha = async {
        let t = Instant::now();
        let rows = try_join_all(
            present
                .iter()
                .map(|(id, ..)| read_rows(store, id, start, end)),
        )
        .await?;
        Ok::<_, JobError>((rows, t.elapsed()))
    };
    let influx = async {
        let t = Instant::now();
        if fields.is_empty() {
            return Ok((BTreeMap::new(), t.elapsed()));
        }
        let e = source
            .energy(&fields, start, end, HOUR)
            .await
            .map_err(JobError::Source)?;
        Ok::<_, JobError>((e, t.elapsed()))
    };
    let ((rows, ha_time), (energy, influx_time)) = try_join(ha, influx).await?;

    let t_analysis = Instant::now();
    let mut stats = Vec::new();
    for ((id, field, meta), (hourly, short_term)) in present.into_iter().zip(rows) {
        let measured = field
            .and_then(|f| energy.get(&f))
            .map(measured_hours)
            .unwrap_or_default();
        let live = opts.live.get(&id).and_then(|&reading| {
            let last_end = hourly.last()?.start + HOUR;
            Some((reading, opts.now - last_end))
        });
        let findings = audit(&AuditInput {
            hourly: &hourly,
            short_term: &short_term,
            measured: &measured,
            start,
            end,
            limit_kwh: opts.limit_kwh,
            tolerance: opts.tolerance,
            live,
            live_lag_secs: opts.live_lag_secs,
        });
        stats.push(Surveyed {
            id,
            field,
            meta,
            hourly,
            short_term,
            measured,
            findings,
        });
    }
    Ok(Survey {
        start,
        end,
        stats,
        skipped,
        timings: Timings {
            ha_read: ha_time.as_secs_f64(),
            influx_read: influx_time.as_secs_f64(),
            analysis: t_analysis.elapsed().as_secs_f64(),
            total: 0.0,
        },
        t0,
    })
}

/// Hourly rows (the row before `start` first, if any) and the 5-minute rows of the last
/// [`SHORT_TERM_WINDOW`] before the last hourly row, up to the hour HA is compiling.
async fn read_rows(
    store: &dyn StatisticsStore,
    id: &str,
    start: i64,
    end: i64,
) -> Result<(Vec<StatRow>, Vec<StatRow>), JobError> {
    let (before, rows) = try_join(
        store.last_before(id, Table::Hourly, start),
        store.read(id, Table::Hourly, start, end),
    )
    .await?;
    let mut hourly: Vec<StatRow> = before.into_iter().collect();
    hourly.extend(rows);
    let short_term = match hourly.last() {
        Some(last) => {
            let to = last.start + 3 * HOUR;
            let from = (last.start + HOUR - SHORT_TERM_WINDOW).max(start);
            store.read(id, Table::ShortTerm, from, to).await?
        }
        None => Vec::new(),
    };
    Ok((hourly, short_term))
}

fn measured_hours(integ: &Integration) -> BTreeMap<i64, Measured> {
    integ
        .buckets
        .iter()
        .filter(|b| b.covered > 0)
        .map(|b| {
            (
                b.start,
                Measured {
                    kwh: b.wh / 1000.0,
                    complete: integ.is_complete(b),
                },
            )
        })
        .collect()
}

/// HA's and InfluxDB's energy per local day over `[start, end)`. A statistic's first row counts
/// with its `sum`, as HA's own `change` and Energy dashboard count it.
fn daily(s: &Surveyed, start: i64, end: i64, tz: Tz) -> Vec<DayEnergy> {
    let ha: Vec<Bucket> = hourly_changes_from_zero(&s.hourly)
        .into_iter()
        .filter(|c| c.start >= start && c.start < end && c.kwh.is_finite())
        .map(|c| Bucket {
            start: c.start,
            wh: c.kwh * 1000.0,
            covered: HOUR,
        })
        .collect();
    let influx: Vec<Bucket> = s
        .measured
        .iter()
        .map(|(&h, m)| Bucket {
            start: h,
            wh: m.kwh * 1000.0,
            covered: HOUR,
        })
        .collect();
    let influx: BTreeMap<NaiveDate, f64> = group_by_local_day(&influx, tz)
        .into_iter()
        .map(|p| (p.start, p.wh / 1000.0))
        .collect();
    group_by_local_day(&ha, tz)
        .into_iter()
        .map(|p| DayEnergy {
            date: p.start,
            ha_kwh: p.wh / 1000.0,
            influx_kwh: influx.get(&p.start).copied(),
        })
        .collect()
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
            daily: daily(s, survey.start, survey.end, opts.tz),
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

#[derive(Debug, Clone, Serialize)]
pub struct StatisticRepair {
    pub statistic_id: String,
    pub fixes: Vec<HourFix>,
    pub rows_written: usize,
    pub shifts: usize,
    pub short_term_rows: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    /// What `check` found before the repair.
    pub check: CheckReport,
    pub statistics: Vec<StatisticRepair>,
    /// Hourly and 5-minute rows written (or, on a dry run, that would be).
    pub rows: usize,
}

/// Fix what `check` finds: splice InfluxDB's energy into the bad hours (or 0 kWh where InfluxDB
/// has no data for an impossible hour), and on the recorder database rebuild 5-minute rows that
/// are out of step. Everything in one plan, applied once unless `dry_run`.
pub async fn repair(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &CheckOptions,
    dry_run: bool,
) -> Result<(RepairReport, WritePlan), JobError> {
    let (start, end) = resolve_range(source, opts).await?;
    repair_range(source, store, opts, start, end, dry_run).await
}

async fn repair_range(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &CheckOptions,
    start: i64,
    end: i64,
    dry_run: bool,
) -> Result<(RepairReport, WritePlan), JobError> {
    let survey = survey(source, store, opts, start, end).await?;
    let mut plan = WritePlan::default();
    let mut statistics = Vec::new();
    for s in survey.stats.iter().filter(|s| !s.findings.is_empty()) {
        let (write, fixes) = plan_statistic(s, opts.limit_kwh, store.writes_short_term());
        statistics.push(StatisticRepair {
            statistic_id: s.id.clone(),
            fixes,
            rows_written: write.hourly.len(),
            shifts: write.shifts.len(),
            short_term_rows: write.short_term.len(),
        });
        plan.writes.push(write);
    }
    if !dry_run && !plan.is_empty() {
        store.apply(&plan).await?;
    }
    let report = RepairReport {
        dry_run,
        check: report(&survey, opts, store),
        rows: plan.row_count(),
        statistics,
    };
    Ok((report, plan))
}

/// The write that fixes one statistic: a splice with overwrite of the hours `plan_repair`
/// chose, and (where the store writes them) its 5-minute rows plus those of out-of-step hours.
fn plan_statistic(s: &Surveyed, limit_kwh: f64, short_writable: bool) -> (StatWrite, Vec<HourFix>) {
    let decided = plan_repair(&s.findings, &s.measured, limit_kwh, short_writable);
    let states = anchored_states(&s.hourly, &decided.energy);
    let sp = splice(&SpliceInput {
        existing: &s.hourly,
        energy: &decided.energy,
        states: &states,
        incomplete: &[],
        overwrite: true,
    });
    let mut shifts = sp.shifts.clone();
    let mut short_term = Vec::new();
    if short_writable {
        short_term = splice_short_term(&s.short_term, &s.hourly, &sp);
        let (rebuilt, trailing) =
            rebuild_short_term(s, &sp, &decided.short_term_hours, decided.next_hour);
        short_term.extend(rebuilt);
        shifts.extend(trailing);
        short_term.sort_by_key(|r| r.start);
        short_term.dedup_by_key(|r| r.start);
    }
    // Rows are kWh (stores read them converted); a statistic kept in Wh stays in Wh, as the
    // stores convert kWh rows into the statistic's own unit when its metadata says kWh.
    let meta = StatMeta {
        unit_of_measurement: Some("kWh".into()),
        ..s.meta.clone()
    };
    let write = StatWrite {
        meta,
        shifts,
        hourly: sp.rows,
        short_term,
    };
    (write, decided.fixes)
}

/// 5-minute rows of `hours` rebuilt from the repaired hourly chain (the same spread the splice
/// uses), and, when the chain's last hour is among them or `next_hour` asks for it, a shift
/// that carries the 5-minute rows after it (the hour HA compiles next) onto the repaired chain.
///
/// Those rows are moved by what they lack, read from the rows themselves: the first of them
/// must be what HA's compile makes from the last hourly row (the rebuilt last 5-minute row has
/// its `sum` and `state`). Whether they still continue an old, out-of-step 5-minute row or were
/// already moved onto the hourly chain (the seam guard's or a websocket repair's
/// `adjust_sum_statistics` moves them with the hourly rows) does not matter; a shift derived
/// from the old 5-minute row would add the same offset a second time.
fn rebuild_short_term(
    s: &Surveyed,
    sp: &SplicePlan,
    hours: &[i64],
    next_hour: bool,
) -> (Vec<StatRow>, Option<Shift>) {
    if hours.is_empty() && !next_hour {
        return (Vec::new(), None);
    }
    let hourly = apply_plan(&s.hourly, sp);
    let rows: Vec<StatRow> = hourly
        .iter()
        .filter(|r| hours.binary_search(&r.start).is_ok())
        .copied()
        .collect();
    let rebuilt = splice_short_term(
        &s.short_term,
        &hourly,
        &SplicePlan {
            rows,
            ..SplicePlan::default()
        },
    );
    let trailing = hourly.last().and_then(|last| {
        if hours.last() != Some(&last.start) && !next_hour {
            return None;
        }
        let short = apply_short_term(&s.short_term, &sp.shifts, &[]);
        let next = short.iter().find(|r| r.start >= last.start + HOUR)?;
        let want = ha_compile((last.state?, last.sum?), &[next.state?])[0].1;
        let delta = want - next.sum?;
        (delta.abs() > pwsync_energy::splice::EPSILON).then_some(Shift {
            from: last.start + HOUR,
            delta,
        })
    });
    (rebuilt, trailing)
}

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
    let (report, _) = repair_range(source, store, &check, start, end, false).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use pwsync_energy::audit::{Measured, ProblemKind};
    use pwsync_energy::live::{seam, Seam};
    use pwsync_energy::meter::meter_reading;
    use pwsync_energy::splice::apply_writes;
    use pwsync_energy::FIVE_MIN;

    /// First hour in the checked range.
    const H0: i64 = 1000 * HOUR;
    const LIMIT: f64 = 30.0;

    /// A statistic's rows, as HA holds them.
    #[derive(Debug, Clone)]
    struct Rows {
        hourly: Vec<StatRow>,
        short: Vec<StatRow>,
    }

    impl Rows {
        /// What a store holds after `w`: shifts on both tables (as `adjust_sum_statistics` and
        /// the recorder store do), then upserts.
        fn apply(&mut self, w: &StatWrite) {
            self.hourly = apply_writes(&self.hourly, &w.shifts, &w.hourly, HOUR);
            self.short = apply_short_term(&self.short, &w.shifts, &w.short_term);
        }
    }

    fn surveyed(rows: &Rows, measured: &BTreeMap<i64, Measured>, end: i64) -> Surveyed {
        let findings = audit(&AuditInput {
            hourly: &rows.hourly,
            short_term: &rows.short,
            measured,
            start: H0,
            end,
            limit_kwh: LIMIT,
            tolerance: Tolerance::default(),
            live: None,
            live_lag_secs: 0,
        });
        Surveyed {
            id: "sensor.powerwall_home_usage".into(),
            field: Some(Field::Home),
            meta: StatMeta::energy_kwh("sensor.powerwall_home_usage", "home"),
            hourly: rows.hourly.clone(),
            short_term: rows.short.clone(),
            measured: measured.clone(),
            findings,
        }
    }

    fn repair_rows(rows: &mut Rows, m: &BTreeMap<i64, Measured>, end: i64, db: bool) -> StatWrite {
        let (w, _) = plan_statistic(&surveyed(rows, m, end), LIMIT, db);
        rows.apply(&w);
        w
    }

    /// The meter (kWh) at `t`: `base` at H0 − 1 h, then each hour's energy spread evenly.
    fn meter(base: f64, energy: &[f64], t: i64) -> f64 {
        let mut m = base;
        for (i, e) in energy.iter().enumerate() {
            let h = H0 - HOUR + i as i64 * HOUR;
            if t >= h + HOUR {
                m += e;
            } else if t > h {
                m += e * (t - h) as f64 / HOUR as f64;
            }
        }
        m
    }

    /// Backfilled hours (state = the rounded meter, as backfill writes it), then HA compiling
    /// the live sensor every 5 minutes from scratch (sum 0 at its first reading, as after a
    /// websocket backfill), the seam guard moving the chain after some compile or never, and
    /// HA copying each hour's last 5-minute row into the hourly row.
    fn seam_scenario(
        base: f64,
        energy: &[f64],
        backfilled: usize,
        compiles: usize,
        guard_at: Option<usize>,
    ) -> Rows {
        let mut rows = Rows {
            hourly: Vec::new(),
            short: Vec::new(),
        };
        let offset = 10_000.0;
        for i in 0..=backfilled {
            let end = H0 + i as i64 * HOUR;
            rows.hourly.push(StatRow {
                start: end - HOUR,
                state: Some(meter_reading(meter(base, energy, end))),
                sum: Some(offset + meter(base, energy, end) - base),
            });
        }
        let seam_at = H0 + backfilled as i64 * HOUR;
        for k in 0..compiles {
            let t = seam_at + k as i64 * FIVE_MIN;
            let reading = meter_reading(meter(base, energy, t + FIVE_MIN));
            let (state, sum) = match rows.short.last() {
                None => (reading, 0.0),
                Some(l) => ha_compile((l.state.unwrap(), l.sum.unwrap()), &[reading])[0],
            };
            rows.short.push(StatRow {
                start: t,
                state: Some(state),
                sum: Some(sum),
            });
            if (t + FIVE_MIN) % HOUR == 0 {
                rows.hourly.push(StatRow {
                    start: t + FIVE_MIN - HOUR,
                    state: Some(state),
                    sum: Some(sum),
                });
            }
            if guard_at.is_some_and(|g| k >= g) {
                let newest = *rows.short.last().unwrap();
                let prev = *rows
                    .hourly
                    .iter()
                    .rev()
                    .find(|r| r.start < floor_hour(newest.start))
                    .unwrap();
                let from = prev.start + HOUR;
                let mark = meter(base, energy, from);
                if let Seam::Shift { delta, .. } = seam(&prev, &newest, mark, 0.01) {
                    rows.apply(&StatWrite {
                        meta: StatMeta::energy_kwh("x", "x"),
                        shifts: vec![Shift { from, delta }],
                        hourly: vec![],
                        short_term: vec![],
                    });
                }
            }
        }
        rows
    }

    /// The sequence: the guard never moved an idle meter's fresh chain, HA compiled the
    /// first live hour at sum 0 (a negative hour of the whole history), the websocket heal set
    /// that hour and moved the rows after it, leaving its 5-minute rows out of step; then
    /// `repair --target db` must not move the next hour's rows a second time.
    #[test]
    fn repair_on_the_database_after_a_websocket_heal_moves_the_next_hour_once() {
        let energy = [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut rows = seam_scenario(462.08, &energy, 2, 15, None);
        let end = rows.hourly.last().unwrap().start + HOUR;
        let measured: BTreeMap<i64, Measured> = (0..3)
            .map(|i| {
                (
                    H0 + i * HOUR,
                    Measured {
                        kwh: energy[i as usize + 1],
                        complete: true,
                    },
                )
            })
            .collect();
        let healed = repair_rows(&mut rows, &measured, end, false);
        assert_eq!(healed.hourly.len(), 1, "{healed:?}");
        let kinds: Vec<ProblemKind> = surveyed(&rows, &measured, end)
            .findings
            .iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, [ProblemKind::OutOfStep]);
        repair_rows(&mut rows, &measured, end, true);
        let last = *rows.hourly.last().unwrap();
        let next = rows.short.iter().find(|r| r.start >= end).unwrap();
        assert!(
            (next.sum.unwrap() - last.sum.unwrap()).abs() < 1e-9,
            "the next hour's rows at {} after the hour's {}",
            next.sum.unwrap(),
            last.sum.unwrap()
        );
        assert!(surveyed(&rows, &measured, end).findings.is_empty());
    }

    proptest! {
        /// Whatever the seam guard and HA's compile left (the guard in time, late or never, a
        /// websocket heal before or not), `repair --target db` leaves a clean chain in one run,
        /// a second run plans nothing, and HA's next compile continues it without a step.
        #[test]
        fn repair_on_the_database_is_idempotent_over_every_seam_state(
            energy in prop::collection::vec(prop_oneof![Just(0.0), 0.0f64..4.0], 8),
            base in 0.0f64..2000.0,
            backfilled in 1usize..4,
            compiles in 1usize..40,
            guard_at in prop::option::of(0usize..40),
            heal_first in any::<bool>(),
        ) {
            let mut rows = seam_scenario(base, &energy, backfilled, compiles, guard_at);
            let last = rows.hourly.last().unwrap().start;
            let end = last + HOUR;
            let measured: BTreeMap<i64, Measured> = (0..energy.len() as i64 - 1)
                .map(|i| H0 + i * HOUR)
                .filter(|h| *h < end)
                .map(|h| (h, Measured {
                    kwh: meter(base, &energy, h + HOUR) - meter(base, &energy, h),
                    complete: true,
                }))
                .collect();
            if heal_first {
                repair_rows(&mut rows, &measured, end, false);
            }
            repair_rows(&mut rows, &measured, end, true);
            let again = surveyed(&rows, &measured, end);
            prop_assert!(again.findings.is_empty(), "{:?}\n{rows:?}", again.findings);
            let (w, _) = plan_statistic(&again, LIMIT, true);
            prop_assert!(
                w.hourly.is_empty() && w.shifts.is_empty() && w.short_term.is_empty(),
                "a second repair plans {w:?}"
            );
            // HA's next compiles continue from the latest 5-minute row: the rows after the last
            // hourly row continue it as HA's compile would (no doubled offset), to the
            // 5-minute tolerance `check` applies.
            let last_row = *rows.hourly.last().unwrap();
            let mut tail: Vec<StatRow> = rows.short.iter().copied().filter(|r| r.start >= end).collect();
            if let Some(latest) = rows.short.last().copied() {
                let next = ha_compile((latest.state.unwrap(), latest.sum.unwrap()), &[latest.state.unwrap() + 0.25])[0];
                tail.push(StatRow { start: latest.start + FIVE_MIN, state: Some(next.0), sum: Some(next.1) });
            }
            let mut prev = (last_row.state.unwrap(), last_row.sum.unwrap());
            for r in tail {
                let want = ha_compile(prev, &[r.state.unwrap()])[0].1;
                let tol = pwsync_energy::audit::SHORT_TERM_TOLERANCE;
                prop_assert!((r.sum.unwrap() - want).abs() < tol, "{r:?} after {prev:?}: HA would make {want}");
                prop_assert!(r.sum.unwrap() >= prev.1 - tol, "a step down at {r:?}");
                prev = (r.state.unwrap(), r.sum.unwrap());
            }
        }
    }

    fn surveyed_rows(hourly: Vec<StatRow>) -> Surveyed {
        Surveyed {
            id: "sensor.x".into(),
            field: None,
            meta: StatMeta::energy_kwh("sensor.x", "x"),
            hourly,
            short_term: Vec::new(),
            measured: BTreeMap::new(),
            findings: Vec::new(),
        }
    }

    fn row(start: i64, sum: f64) -> StatRow {
        StatRow {
            start,
            state: Some(sum),
            sum: Some(sum),
        }
    }

    #[test]
    fn the_first_days_energy_counts_the_statistics_first_row_by_its_sum() {
        let day = 1_735_689_600; // 2025-01-01T00:00Z
        let s = surveyed_rows(vec![row(day, 0.4), row(day + HOUR, 1.0)]);
        let d = daily(&s, day, day + 86_400, Tz::UTC);
        assert_eq!(d.len(), 1);
        assert!((d[0].ha_kwh - 1.0).abs() < 1e-12, "{}", d[0].ha_kwh);
        // With a row before the range, that row only anchors the first change.
        let s = surveyed_rows(vec![
            row(day - HOUR, 5.0),
            row(day, 5.4),
            row(day + HOUR, 6.0),
        ]);
        let d = daily(&s, day, day + 86_400, Tz::UTC);
        assert!((d[0].ha_kwh - 1.0).abs() < 1e-12, "{}", d[0].ha_kwh);
    }
}
