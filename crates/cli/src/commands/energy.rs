//! `pwsync energy`: kWh per field per local day, and the gaps: the first check that pwsync
//! reads a user's data right. Days are cut at the exact local midnight, also where it falls
//! inside a UTC hour (Adelaide, India, Nepal, Newfoundland).

use crate::output::{kwh, table};
use anyhow::{bail, Result};
use chrono::NaiveDate;
use chrono_tz::Tz;
use pwsync_config::Config;
use pwsync_energy::local::{
    group_by_local_day, group_by_local_month, local_day_range, parse_date, LocalPeriod,
};
use pwsync_energy::{Field, Gap, Integration};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct EnergyArgs {
    /// First local day, YYYY-MM-DD.
    #[arg(long)]
    pub start: String,
    /// Last local day, YYYY-MM-DD (included).
    #[arg(long)]
    pub end: String,
    /// Fields to show (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<Field>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub struct PeriodRow {
    pub date: NaiveDate,
    #[serde(serialize_with = "hours")]
    pub hours: f64,
    /// Hours with any data (of any field); 0 for a day before the first InfluxDB point or
    /// after the last.
    #[serde(serialize_with = "hours")]
    pub hours_with_data: f64,
    /// The period's length: 24, 23 or 25 on DST days, 23.5 or 24.5 on Lord Howe Island's.
    #[serde(serialize_with = "hours")]
    pub expected_hours: f64,
    pub complete: bool,
    /// Minutes of the period without data (of any field): in gaps, cut at local midnight, or
    /// before the first point or after the last.
    pub minutes_without_data: f64,
    /// `None` (JSON `null`): the field has no data in the period, its energy is unknown.
    pub kwh: BTreeMap<Field, Option<f64>>,
}

#[derive(Serialize)]
pub struct GapRow {
    pub start: String,
    pub end: String,
    pub minutes: f64,
}

#[derive(Serialize)]
pub struct EnergyReport {
    pub time_zone: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub days: Vec<PeriodRow>,
    pub gaps: Vec<GapRow>,
}

/// Whole hours as JSON integers (24, not 24.0), half hours as they are (23.5).
fn hours<S: serde::Serializer>(h: &f64, s: S) -> Result<S::Ok, S::Error> {
    if h.fract() == 0.0 && h.abs() < 1e15 {
        s.serialize_i64(*h as i64)
    } else {
        s.serialize_f64(*h)
    }
}

pub fn dates(start: &str, end: &str) -> Result<(NaiveDate, NaiveDate)> {
    let (s, e) = (parse_date(start)?, parse_date(end)?);
    if s > e {
        bail!("--start {s} is after --end {e}: swap them");
    }
    Ok((s, e))
}

pub async fn run(args: EnergyArgs, cfg: &Config) -> Result<()> {
    let tz = cfg.tz()?;
    let (s, e) = dates(&args.start, &args.end)?;
    let fields = if args.fields.is_empty() {
        Field::ALL.to_vec()
    } else {
        args.fields.clone()
    };
    let source = pwsync_config::source::from_config(cfg)?;
    source.client.check_source(&source.map, &fields).await?;
    let (start, end) = (local_day_range(s, tz).0, local_day_range(e, tz).1);
    let energy = source.local_slices(&fields, start, end, tz).await?;
    let report = EnergyReport {
        time_zone: tz.name().to_string(),
        start: s,
        end: e,
        days: periods(&energy, tz, group_by_local_day),
        gaps: gap_rows(&energy, tz),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_periods("day", &report.days, &fields);
        print_gaps(&report.gaps, tz);
    }
    Ok(())
}

/// Rows of local periods with every field's kWh side by side. Exact local periods need energy
/// in slices every local midnight lies on (`InfluxSource::local_slices`).
pub fn periods(
    energy: &BTreeMap<Field, Integration>,
    tz: Tz,
    group: fn(&Integration, Tz) -> Vec<LocalPeriod>,
) -> Vec<PeriodRow> {
    let mut rows: BTreeMap<NaiveDate, PeriodRow> = BTreeMap::new();
    for (field, integ) in energy {
        for p in group(integ, tz) {
            let row = rows.entry(p.start).or_insert_with(|| PeriodRow {
                date: p.start,
                hours: p.hours(),
                hours_with_data: 0.0,
                expected_hours: p.expected_hours(),
                complete: true,
                minutes_without_data: 0.0,
                kwh: BTreeMap::new(),
            });
            row.complete &= p.complete;
            let missing = p.seconds_without_data() as f64 / 60.0;
            row.minutes_without_data = row.minutes_without_data.max(missing);
            row.hours_with_data = row.hours_with_data.max(p.hours_with_data());
            let known = p.slices_with_data > 0;
            row.kwh.insert(*field, known.then_some(p.wh / 1000.0));
        }
    }
    rows.into_values().collect()
}

pub fn monthly(energy: &BTreeMap<Field, Integration>, tz: Tz) -> Vec<PeriodRow> {
    periods(energy, tz, group_by_local_month)
}

/// Gaps of any field, merged (all fields come from the same rows, so they usually coincide).
pub fn gap_rows(energy: &BTreeMap<Field, Integration>, tz: Tz) -> Vec<GapRow> {
    let mut all: Vec<Gap> = energy
        .values()
        .flat_map(|i| i.gaps.iter().copied())
        .collect();
    all.sort_by_key(|g| (g.start, g.end));
    let mut merged: Vec<Gap> = Vec::new();
    for g in all {
        match merged.last_mut() {
            Some(l) if g.start <= l.end => l.end = l.end.max(g.end),
            _ => merged.push(g),
        }
    }
    merged
        .iter()
        .map(|g| GapRow {
            start: pwsync_jobs::range::fmt_ts(g.start, tz),
            end: pwsync_jobs::range::fmt_ts(g.end, tz),
            minutes: g.seconds() as f64 / 60.0,
        })
        .collect()
}

/// A period or field without any InfluxDB data: unknown energy, never shown as 0.
pub const NO_DATA: &str = "no data";

pub fn print_periods(what: &str, rows: &[PeriodRow], fields: &[Field]) {
    let mut header = vec![what, "hours"];
    header.extend(fields.iter().map(|f| f.influx_name()));
    header.push("complete");
    let mut t = table(&header);
    for r in rows {
        let mut cells = vec![
            r.date.to_string(),
            format!("{}/{}", r.hours_with_data, r.expected_hours),
        ];
        cells.extend(
            fields
                .iter()
                .map(|f| match r.kwh.get(f).copied().flatten() {
                    Some(v) => kwh(v * 1000.0),
                    None => NO_DATA.into(),
                }),
        );
        cells.push(if r.complete {
            "yes".into()
        } else if r.hours_with_data == 0.0 {
            NO_DATA.into()
        } else {
            format!("gap {:.0} min", r.minutes_without_data)
        });
        t.add_row(cells);
    }
    println!("Energy per local {what}, kWh");
    println!("{t}");
    let empty = rows.iter().filter(|r| r.hours_with_data == 0.0).count();
    if empty > 0 {
        println!(
            "{empty} {what}(s) without any InfluxDB data (before its first point or after its last): energy unknown, not 0"
        );
    }
}

pub fn print_gaps(gaps: &[GapRow], tz: Tz) {
    if gaps.is_empty() {
        println!("No gaps longer than the gap limit.");
        return;
    }
    let mut t = table(&["gap start", "gap end", "minutes"]);
    for g in gaps {
        t.add_row(vec![
            g.start.clone(),
            g.end.clone(),
            format!("{:.0}", g.minutes),
        ]);
    }
    println!(
        "Gaps ({}): energy over these is unknown and was not counted",
        tz.name()
    );
    println!("{t}");
}
