//! Daily totals for the chart: HA's and InfluxDB's energy per local day.

use super::survey::Surveyed;
use super::DayEnergy;
use chrono::NaiveDate;
use chrono_tz::Tz;
use pwsync_energy::local::group_by_local_day;
use pwsync_energy::stats::hourly_changes_from_zero;
use pwsync_energy::{Bucket, HOUR};
use std::collections::BTreeMap;

/// HA's and InfluxDB's energy per local day over `[start, end)`. A statistic's first row counts
/// with its `sum`, as HA's own `change` and Energy dashboard count it.
pub(super) fn daily(s: &Surveyed, start: i64, end: i64, tz: Tz) -> Vec<DayEnergy> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use pwsync_energy::StatRow;
    use pwsync_store::StatMeta;

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
