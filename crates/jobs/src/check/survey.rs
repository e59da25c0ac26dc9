//! What `check` reads and how it audits: the statistics to look at, HA's rows and InfluxDB's
//! hourly energy read at the same time, and the core's `audit` per statistic.

use super::{CheckOptions, Skipped, Timings, SHORT_TERM_WINDOW};
use crate::JobError;
use futures_util::future::{try_join, try_join_all};
use pwsync_energy::audit::{audit, AuditInput, Finding, Measured};
use pwsync_energy::{Field, Integration, StatRow, HOUR};
use pwsync_store::{EnergySource, StatMeta, StatisticsStore, Table};
use std::collections::BTreeMap;
use std::time::Instant;

/// One statistic as read and audited.
pub(super) struct Surveyed {
    pub(super) id: String,
    pub(super) field: Option<Field>,
    pub(super) meta: StatMeta,
    pub(super) hourly: Vec<StatRow>,
    pub(super) short_term: Vec<StatRow>,
    pub(super) measured: BTreeMap<i64, Measured>,
    pub(super) findings: Vec<Finding>,
}

pub(super) struct Survey {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) stats: Vec<Surveyed>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) timings: Timings,
    pub(super) t0: Instant,
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

/// Energy statistics only: a sum in an energy unit (the store converts rows to kWh).
fn is_energy(meta: &StatMeta) -> bool {
    let unit = meta.unit_of_measurement.as_deref().unwrap_or("");
    meta.has_sum && (unit.ends_with("Wh") || unit.ends_with('J'))
}

/// Read everything for `[start, end)` (HA and InfluxDB at once) and audit each statistic.
pub(super) async fn survey(
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
    let mut absent = Vec::new();
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
            None => absent.push((id, field)),
        }
    }
    // A meter HA has no statistic of yet is read from InfluxDB too: its history is missing.
    let fields: Vec<Field> = present
        .iter()
        .filter_map(|p| p.1)
        .chain(absent.iter().filter_map(|a| a.1))
        .collect();

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
    let ((mut rows, ha_time), (energy, influx_time)) = try_join(ha, influx).await?;

    let mut skipped = Vec::new();
    for (id, field) in absent {
        let with_data = field
            .and_then(|f| energy.get(&f))
            .is_some_and(|i| i.buckets.iter().any(|b| b.covered > 0));
        match field {
            Some(f) if with_data => {
                let meta = StatMeta::energy_kwh(&id, &crate::backfill::meter_name(f));
                present.push((id, field, meta));
                rows.push((Vec::new(), Vec::new()));
            }
            _ => skipped.push(Skipped {
                statistic_id: id,
                reason: "not in HA, and InfluxDB has no data for it in the range".into(),
            }),
        }
    }

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
    // Report in the order asked (pwsync's meters in their usual order).
    stats.sort_by_key(|s| ids.iter().position(|id| *id == s.id));
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

/// A surveyed statistic built from rows, for the tests of what is made of a survey.
#[cfg(test)]
pub(super) mod test_support {
    use super::*;

    pub(in crate::check) fn surveyed_rows(hourly: Vec<StatRow>) -> Surveyed {
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

    /// An hourly row whose state and sum are `sum`.
    pub(in crate::check) fn row(start: i64, sum: f64) -> StatRow {
        StatRow {
            start,
            state: Some(sum),
            sum: Some(sum),
        }
    }
}
