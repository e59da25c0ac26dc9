//! `backfill`: InfluxDB energy into HA's hourly statistics of pwsync's lifetime meters.
//!
//! The lifetime meter starts at the first InfluxDB point, so each written row's `state` is the
//! meter at the hour's end, the same value the live sensor publishes: the seam with live data
//! has no jump. Every write goes through `splice`, so whatever chain existed stays continuous.

use crate::range::{DateRange, RangeStart};
use crate::write::{splice_into, Overwrite};
use crate::JobError;
use chrono_tz::Tz;
use pwsync_energy::local::HourRange;
use pwsync_energy::meter::meter_reading;
use pwsync_energy::{floor_hour, Field, Gap, Hole, Integration, HOUR};
use pwsync_store::{EnergySource, StatMeta, StatWrite, StatisticsStore, WritePlan};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Entity id prefix: `sensor.<site>_<key>`.
    pub site: String,
    pub fields: Vec<Field>,
    pub range: DateRange,
    /// Replace hours that already exist; otherwise only missing hours are filled.
    pub overwrite: bool,
    /// With `overwrite`: keep existing hours that InfluxDB covers only partly (a gap longer than
    /// the gap limit, or the edge of its data), where what is there is likely more complete.
    pub keep_partial: bool,
    pub dry_run: bool,
    /// Only these local hours of each day, e.g. 17-21.
    pub hours: Option<HourRange>,
    pub tz: Tz,
    /// Epoch seconds; only hours HA has compiled by then are written.
    pub now: i64,
}

impl BackfillOptions {
    /// Every hour HA lacks, of all six fields, from InfluxDB's first point (`backfill --all`).
    pub fn all_missing(site: &str, tz: Tz, now: i64) -> BackfillOptions {
        BackfillOptions {
            site: site.to_string(),
            fields: Field::ALL.to_vec(),
            range: DateRange {
                start: RangeStart::All,
                end: None,
            },
            overwrite: false,
            keep_partial: false,
            dry_run: false,
            hours: None,
            tz,
            now,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldReport {
    pub field: Field,
    pub statistic_id: String,
    /// Hours in the range with any InfluxDB data.
    pub hours_with_data: usize,
    /// Of those, hours not fully covered (a gap or the edge of the data).
    pub incomplete_hours: usize,
    pub rows_written: usize,
    pub kept_existing: usize,
    /// Of `kept_existing`, hours kept because InfluxDB covers them only partly.
    pub kept_partial: usize,
    /// Those hours' starts.
    #[serde(skip)]
    pub kept_partial_hours: BTreeSet<i64>,
    pub unchanged: usize,
    pub shifts: usize,
    pub short_term_rows: usize,
    /// Energy of the hours with data, kWh; `None` when InfluxDB has no data in the range for
    /// this field (unknown, not 0).
    pub kwh: Option<f64>,
    /// Holes in HA's chain that the range reaches: each filled together with the row after it
    /// (which carried the hole's energy), or kept as HA has it where InfluxDB does not cover
    /// the stretch.
    pub holes: Vec<Hole>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    pub start: i64,
    pub end: i64,
    pub dry_run: bool,
    pub overwrite: bool,
    pub keep_partial: bool,
    pub store: &'static str,
    pub fields: Vec<FieldReport>,
    /// Gaps (longer than the gap limit) inside the range, clipped to it, from the first field.
    pub gaps: Vec<Gap>,
    pub rows: usize,
    /// The whole job, and of it the writing (everything else is reading and planning).
    pub seconds: f64,
    pub write_seconds: f64,
}

/// A step of the job, for a progress bar.
#[derive(Debug, Clone)]
pub enum Step {
    Reading,
    Planned(Field),
    Writing(usize),
}

/// Run a backfill: plan every field, then (unless a dry run) apply the whole plan at once.
pub async fn backfill(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &BackfillOptions,
    progress: &mut (dyn FnMut(Step) + Send),
) -> Result<(BackfillReport, WritePlan), JobError> {
    let t0 = Instant::now();
    let first = source
        .first_timestamp(&opts.fields)
        .await
        .map_err(JobError::Source)?
        .ok_or_else(|| JobError::Source("InfluxDB has no data for these fields: check influxdb.database, retention_policy and measurement".into()))?;
    let (start, end) = opts.range.resolve(opts.tz, first, opts.now)?;
    progress(Step::Reading);
    // From the first point, because `state` is the lifetime meter since then.
    let meter_start = floor_hour(first).min(start);
    let energy = source
        .energy(&opts.fields, meter_start, end, HOUR)
        .await
        .map_err(JobError::Source)?;

    let mut plan = WritePlan::default();
    let mut reports = Vec::new();
    for &field in &opts.fields {
        let integ = energy.get(&field).ok_or_else(|| {
            JobError::Source(format!("the source returned no energy for field {field}"))
        })?;
        let (write, report) = plan_field(store, opts, field, integ, start, end).await?;
        plan.writes.push(write);
        reports.push(report);
        progress(Step::Planned(field));
    }
    let gaps = opts
        .fields
        .first()
        .and_then(|f| energy.get(f))
        .map(|i| {
            i.gaps
                .iter()
                .filter(|g| g.end > start && g.start < end)
                .map(|g| Gap {
                    start: g.start.max(start),
                    end: g.end.min(end),
                })
                .collect()
        })
        .unwrap_or_default();

    let t_write = Instant::now();
    if !opts.dry_run && !plan.is_empty() {
        progress(Step::Writing(plan.row_count()));
        store.apply(&plan).await?;
    }
    let write_seconds = t_write.elapsed().as_secs_f64();
    let report = BackfillReport {
        start,
        end,
        dry_run: opts.dry_run,
        overwrite: opts.overwrite,
        keep_partial: opts.overwrite && opts.keep_partial,
        store: store.kind(),
        rows: plan.row_count(),
        fields: reports,
        gaps,
        seconds: t0.elapsed().as_secs_f64(),
        write_seconds,
    };
    Ok((report, plan))
}

async fn plan_field(
    store: &dyn StatisticsStore,
    opts: &BackfillOptions,
    field: Field,
    integ: &Integration,
    start: i64,
    end: i64,
) -> Result<(StatWrite, FieldReport), JobError> {
    let statistic_id = format!("sensor.{}_{}", opts.site, field.sensor_key());
    let mut meter_kwh = 0.0;
    let mut energy = Vec::new();
    let mut states = Vec::new();
    let mut partial = BTreeSet::new();
    for b in &integ.buckets {
        meter_kwh += b.wh / 1000.0;
        let wanted = b.start >= start
            && b.start < end
            && opts.hours.is_none_or(|h| h.contains(b.start, opts.tz));
        if !wanted || b.covered == 0 {
            continue;
        }
        if !integ.is_complete(b) {
            partial.insert(b.start);
        }
        energy.push((b.start, b.wh / 1000.0));
        states.push(meter_reading(meter_kwh));
    }

    let meta = StatMeta::energy_kwh(&statistic_id, &meter_name(field));
    let overwrite = match (opts.overwrite, opts.keep_partial) {
        (true, true) => Overwrite::Except(&partial),
        (overwrite, _) => overwrite.into(),
    };
    let incomplete: Vec<i64> = partial.iter().copied().collect();
    let sp = splice_into(
        store,
        meta,
        start,
        end,
        &energy,
        &states,
        &incomplete,
        overwrite,
    )
    .await?;
    let report = FieldReport {
        field,
        statistic_id: statistic_id.clone(),
        hours_with_data: energy.len(),
        incomplete_hours: partial.len(),
        rows_written: sp.write.hourly.len(),
        kept_existing: sp.kept_existing,
        kept_partial: sp.kept_excepted,
        kept_partial_hours: sp.excepted_hours.clone(),
        unchanged: sp.unchanged,
        shifts: sp.write.shifts.len(),
        short_term_rows: sp.write.short_term.len(),
        kwh: (!energy.is_empty()).then(|| energy.iter().map(|(_, e)| e).sum()),
        holes: sp.holes,
    };
    Ok((sp.write, report))
}

pub(crate) fn meter_name(field: Field) -> String {
    format!("Powerwall {}", field.display_name().to_lowercase())
}
