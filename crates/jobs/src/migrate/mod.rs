//! `migrate`: another integration's recorded energy onto pwsync's meters (phase 1), then
//! InfluxDB's more accurate energy over it wherever InfluxDB has data (phase 2).
//!
//! Phase 1 never copies a foreign `sum` (its scale is the source's own): it takes the hourly
//! energy from differences of the source's sums and splices it in. Phase 2 is the backfill job
//! from the local day of the first InfluxDB point. A phase-2 failure is reported, not raised:
//! phase 1 is written by then and stays.

pub mod discover;

pub use discover::{discover, parse_maps, DiscoverError, Found, Mapping, Platform, RegistryEntity};

use crate::backfill::{backfill, meter_name, BackfillOptions, BackfillReport, Step};
use crate::range::{compiled_limit, DateRange, RangeStart};
use crate::write::splice_into;
use crate::JobError;
use chrono::NaiveDate;
use chrono_tz::Tz;
use pwsync_energy::local::{local_date, local_day_range};
use pwsync_energy::teslemetry::{hourly_energy, Rejected};
use pwsync_energy::{Field, StatRow};
use pwsync_store::{EnergySource, Overlay, StatMeta, StatisticsStore, Table, WritePlan};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;

/// Tesla's energy products keep history from 2015 on: no source statistic starts earlier.
pub const EARLIEST: i64 = 1_420_070_400; // 2015-01-01T00:00:00Z

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeStrategy {
    /// InfluxDB replaces migrated hours wherever it has data.
    PrioritizeInflux,
    /// InfluxDB only fills hours that hold no migrated data.
    PrioritizeTeslemetry,
}

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub site: String,
    pub mappings: Vec<Mapping>,
    /// First and last local day (included); default: the sources' whole range.
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// Replace hours that already hold pwsync statistics (default: keep them).
    pub overwrite: bool,
    pub dry_run: bool,
    pub auto_backfill: bool,
    pub strategy: MergeStrategy,
    pub tz: Tz,
    /// Epoch seconds: only hours HA has compiled by then are written.
    pub now: i64,
    /// An hour above this much energy (kWh) is impossible and is not migrated.
    pub max_kwh_per_hour: f64,
}

/// Phase 1 for one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub unit: Option<String>,
    pub field: Field,
    pub target: String,
    /// The source's first and last hourly row in the range.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Hours of energy taken from the source, and their total.
    pub hours: usize,
    pub kwh: f64,
    pub rows_written: usize,
    pub kept_existing: usize,
    pub unchanged: usize,
    /// Hours not migrated, and why (negative, impossible, across missing hours).
    pub rejected: Vec<Rejected>,
    /// Starts of the hours written, for phase 2's account of what it replaces.
    #[serde(skip)]
    pub written_hours: Vec<i64>,
}

/// Phase 2: whether it ran, why, and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct Phase2Report {
    pub ran: bool,
    pub why: String,
    /// First InfluxDB point, and the local day phase 2 starts at.
    pub influx_first: Option<i64>,
    pub start_day: Option<NaiveDate>,
    /// Migrated hours at or after that day: replaced (prioritize-influx) or kept.
    pub migrated_hours_in_range: usize,
    pub backfill: Option<BackfillReport>,
    /// Set when phase 2 failed (phase 1 stays written).
    pub error: Option<String>,
    /// The command that runs phase 2 again.
    pub rerun: Option<String>,
}

/// One of pwsync's meters after the job (or, on a dry run, as it would be).
#[derive(Debug, Clone, Serialize)]
pub struct ChainSummary {
    pub statistic_id: String,
    pub rows: usize,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Energy of the chain over the job's range before and after.
    pub kwh_before: f64,
    pub kwh_after: f64,
    pub negative_hours: usize,
    pub max_hour_kwh: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub dry_run: bool,
    pub overwrite: bool,
    pub strategy: MergeStrategy,
    pub store: &'static str,
    pub start: i64,
    pub end: i64,
    pub sources: Vec<SourceReport>,
    /// Rows phase 1 wrote (or would write).
    pub rows: usize,
    pub phase2: Phase2Report,
    pub chains: Vec<ChainSummary>,
    pub seconds: f64,
}

impl MigrateReport {
    pub fn phase2_failed(&self) -> bool {
        self.phase2.error.is_some()
    }
}

/// Run both phases. Errors before or during phase 1 are returned (and nothing of phase 1 is
/// written when planning fails); a phase-2 error is in the report.
pub async fn migrate(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &MigrateOptions,
    progress: &mut (dyn FnMut(Step) + Send),
) -> Result<MigrateReport, JobError> {
    let t0 = Instant::now();
    let (start, end) = range(opts)?;
    let mut plan = WritePlan::default();
    let mut sources = Vec::new();
    let mut before = Vec::new();
    for m in &opts.mappings {
        let (write, report, kwh_before) = plan_source(store, opts, m, start, end).await?;
        plan.writes.push(write);
        sources.push(report);
        before.push(kwh_before);
        progress(Step::Planned(m.field));
    }
    let rows = plan.row_count();
    if !opts.dry_run && rows > 0 {
        progress(Step::Writing(rows));
        store.apply(&plan).await?;
    }

    let overlay = Overlay::new(store, &plan);
    let after_phase1: &dyn StatisticsStore = if opts.dry_run { &overlay } else { store };
    let (phase2, plan2) = phase2(source, after_phase1, opts, &sources, rows, progress).await;

    let overlay2 = Overlay::new(after_phase1, &plan2);
    let final_store: &dyn StatisticsStore = if opts.dry_run { &overlay2 } else { store };
    let mut chains = Vec::new();
    for (m, kwh_before) in opts.mappings.iter().zip(before) {
        chains.push(summarize(final_store, &m.target, start, end, kwh_before).await?);
    }
    Ok(MigrateReport {
        dry_run: opts.dry_run,
        overwrite: opts.overwrite,
        strategy: opts.strategy,
        store: store.kind(),
        start,
        end,
        sources,
        rows,
        phase2,
        chains,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `[start, end)` of phase 1: the local days asked for, never past the last compiled hour.
fn range(opts: &MigrateOptions) -> Result<(i64, i64), JobError> {
    let limit = compiled_limit(opts.now);
    let start = opts
        .start_date
        .map(|d| local_day_range(d, opts.tz).0)
        .unwrap_or(EARLIEST);
    let end = opts
        .end_date
        .map(|d| local_day_range(d, opts.tz).1)
        .unwrap_or(limit)
        .min(limit);
    if let (Some(s), Some(e)) = (opts.start_date, opts.end_date) {
        if s > e {
            return Err(JobError::Input(format!(
                "--start-date {s} is after --end-date {e}: swap them"
            )));
        }
    }
    if start >= end {
        return Err(JobError::Input(
            "the range holds no hour HA has compiled yet: choose an earlier --start-date".into(),
        ));
    }
    Ok((start, end))
}

async fn plan_source(
    store: &dyn StatisticsStore,
    opts: &MigrateOptions,
    m: &Mapping,
    start: i64,
    end: i64,
) -> Result<(pwsync_store::StatWrite, SourceReport, f64), JobError> {
    // The row before the range anchors the first hour's difference.
    let mut rows: Vec<StatRow> = store
        .last_before(&m.source, Table::Hourly, start)
        .await?
        .into_iter()
        .collect();
    rows.extend(store.read(&m.source, Table::Hourly, start, end).await?);
    let in_range = || rows.iter().filter(|r| r.start >= start);
    let (first, last) = (
        in_range().next().map(|r| r.start),
        in_range().next_back().map(|r| r.start),
    );
    let se = hourly_energy(&rows, opts.max_kwh_per_hour);
    let energy: Vec<(i64, f64)> = se
        .energy
        .into_iter()
        .filter(|(t, _)| *t >= start && *t < end)
        .collect();
    let meta = StatMeta::energy_kwh(&m.target, &meter_name(m.field));
    let sp = splice_into(
        store,
        meta,
        start,
        end,
        &energy,
        &[],
        &[],
        opts.overwrite.into(),
    )
    .await?;
    let report = SourceReport {
        source: m.source.clone(),
        unit: m.unit.clone(),
        field: m.field,
        target: m.target.clone(),
        first,
        last,
        hours: energy.len(),
        kwh: energy.iter().map(|(_, k)| k).sum(),
        rows_written: sp.write.hourly.len(),
        kept_existing: sp.kept_existing,
        unchanged: sp.unchanged,
        rejected: se.rejected,
        written_hours: sp.write.hourly.iter().map(|r| r.start).collect(),
    };
    Ok((sp.write, report, chain_kwh(&sp.existing, start)))
}

/// Energy of a chain's rows in `[start, …)`: the last sum minus the sum before `start`.
fn chain_kwh(rows: &[StatRow], start: i64) -> f64 {
    let base = rows
        .iter()
        .rfind(|r| r.start < start)
        .and_then(|r| r.sum)
        .unwrap_or(0.0);
    rows.iter()
        .rev()
        .find_map(|r| r.sum)
        .map(|s| s - base)
        .unwrap_or(0.0)
}

async fn phase2(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &MigrateOptions,
    sources: &[SourceReport],
    phase1_rows: usize,
    progress: &mut (dyn FnMut(Step) + Send),
) -> (Phase2Report, WritePlan) {
    let mut r = Phase2Report {
        ran: false,
        why: String::new(),
        influx_first: None,
        start_day: None,
        migrated_hours_in_range: 0,
        backfill: None,
        error: None,
        rerun: None,
    };
    if !opts.auto_backfill {
        r.why = "--no-auto-backfill: InfluxDB data was not applied".into();
        return (r, WritePlan::default());
    }
    if phase1_rows == 0 {
        r.why = "phase 1 migrated nothing, so there is nothing for InfluxDB to refine".into();
        return (r, WritePlan::default());
    }
    let fields: Vec<Field> = sources.iter().map(|s| s.field).collect();
    let first = match source.first_timestamp(&fields).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            r.why = "InfluxDB has no data for the migrated fields".into();
            return (r, WritePlan::default());
        }
        Err(e) => return failed(r, opts, None, e),
    };
    let day = local_date(first, opts.tz);
    r.influx_first = Some(first);
    r.start_day = Some(day);
    let day_start = local_day_range(day, opts.tz).0;
    r.migrated_hours_in_range = sources
        .iter()
        .map(|s| s.written_hours.iter().filter(|t| **t >= day_start).count())
        .sum();
    let backfill_opts = BackfillOptions {
        site: opts.site.clone(),
        fields,
        range: DateRange {
            start: RangeStart::Date(day),
            end: None,
        },
        overwrite: opts.strategy == MergeStrategy::PrioritizeInflux,
        keep_partial: true,
        dry_run: opts.dry_run,
        hours: None,
        tz: opts.tz,
        now: opts.now,
    };
    match backfill(source, store, &backfill_opts, progress).await {
        Ok((report, plan)) => {
            r.why = phase2_outcome(opts, day, sources, day_start, &report, &plan);
            r.ran = true;
            r.backfill = Some(report);
            (r, plan)
        }
        Err(e) => {
            r.why = format!("InfluxDB data starts {day}; the backfill from there failed");
            failed(r, opts, Some(day), e.to_string())
        }
    }
}

/// What phase 2 did (or, on a dry run, would do) to the migrated hours, counted from its plan:
/// how many of them InfluxDB's energy replaced and how many rows it wrote in all.
fn phase2_outcome(
    opts: &MigrateOptions,
    day: NaiveDate,
    sources: &[SourceReport],
    day_start: i64,
    report: &BackfillReport,
    plan: &WritePlan,
) -> String {
    let mut migrated = 0;
    let mut replaced = 0;
    for s in sources {
        let partial = report
            .fields
            .iter()
            .filter(|f| f.statistic_id == s.target)
            .flat_map(|f| f.kept_partial_hours.iter().copied())
            .collect::<BTreeSet<i64>>();
        let written: BTreeSet<i64> = plan
            .writes
            .iter()
            .filter(|w| w.meta.statistic_id == s.target)
            .flat_map(|w| w.hourly.iter().map(|r| r.start))
            .collect();
        for h in s.written_hours.iter().filter(|t| **t >= day_start) {
            migrated += 1;
            replaced += usize::from(written.contains(h) && !partial.contains(h));
        }
    }
    let rows = plan.row_count();
    let (did, wrote) = if opts.dry_run {
        ("would replace", "would write")
    } else {
        ("replaced", "wrote")
    };
    match opts.strategy {
        MergeStrategy::PrioritizeInflux => format!(
            "InfluxDB data starts {day}; {did} {replaced} of {migrated} migrated hours since then with InfluxDB data and {wrote} {rows} rows in all (the other {} hours: InfluxDB has the same energy, covers them only partly or not at all, so they keep their migrated energy)",
            migrated - replaced
        ),
        MergeStrategy::PrioritizeTeslemetry => format!(
            "InfluxDB data starts {day}; kept {migrated} migrated hours since then and {wrote} {rows} rows from InfluxDB where no migrated data was"
        ),
    }
}

fn failed(
    mut r: Phase2Report,
    opts: &MigrateOptions,
    day: Option<NaiveDate>,
    error: String,
) -> (Phase2Report, WritePlan) {
    let start = day
        .map(|d| format!("--start {d}"))
        .unwrap_or_else(|| "--all".into());
    let overwrite = if opts.strategy == MergeStrategy::PrioritizeInflux {
        " --overwrite --keep-partial"
    } else {
        ""
    };
    r.error = Some(error);
    r.rerun = Some(format!("pwsync backfill {start}{overwrite}"));
    (r, WritePlan::default())
}

async fn summarize(
    store: &dyn StatisticsStore,
    id: &str,
    start: i64,
    end: i64,
    kwh_before: f64,
) -> Result<ChainSummary, JobError> {
    let mut rows: Vec<StatRow> = store
        .last_before(id, Table::Hourly, start)
        .await?
        .into_iter()
        .collect();
    rows.extend(store.read(id, Table::Hourly, start, end).await?);
    let changes = pwsync_energy::stats::hourly_changes(&rows);
    let in_range: Vec<&StatRow> = rows.iter().filter(|r| r.start >= start).collect();
    Ok(ChainSummary {
        statistic_id: id.to_string(),
        rows: in_range.len(),
        first: in_range.first().map(|r| r.start),
        last: in_range.last().map(|r| r.start),
        kwh_before,
        kwh_after: chain_kwh(&rows, start),
        negative_hours: changes.iter().filter(|c| c.kwh < -1e-9).count(),
        max_hour_kwh: changes.iter().map(|c| c.kwh).fold(0.0, f64::max),
    })
}
