//! Daily totals for the chart and the panel's History: HA's and InfluxDB's energy per local day,
//! as HA's Energy dashboard counts a day.
//!
//! HA's long-term statistics are UTC hours, and its Energy dashboard puts each hour in the local
//! day its start is in. Where local midnight falls inside a UTC hour (Adelaide, India, Nepal,
//! Newfoundland) HA's "day" therefore runs from 00:30 (00:45 in Nepal) to 00:30, and no sum of HA's
//! hours can be cut at the exact midnight. So both sides here are that same span of whole UTC
//! hours: InfluxDB's hourly energy grouped exactly like HA's, which never makes a mismatch out
//! of the half hour either side. pwsync's exact local day is `pwsync energy`'s and the
//! `_today` sensor's.

use super::survey::Surveyed;
use super::DayEnergy;
use chrono::NaiveDate;
use chrono_tz::Tz;
use pwsync_energy::local::group_by_local_day;
use pwsync_energy::stats::hourly_changes_from_zero;
use pwsync_energy::{Bucket, Integration, HOUR};
use std::collections::BTreeMap;

/// UTC hours as an integration of hour slices, for grouping the way HA's dashboard does.
pub(super) fn hours(buckets: Vec<Bucket>) -> Integration {
    Integration {
        bucket: HOUR,
        buckets,
        ..Default::default()
    }
}

/// HA's energy per hour over `[start, end)`, the hours with a finite change. A statistic's
/// first row counts with its `sum`, as HA's own `change` and Energy dashboard count it.
pub(super) fn ha_hours(s: &Surveyed, start: i64, end: i64) -> Vec<Bucket> {
    hourly_changes_from_zero(&s.hourly)
        .into_iter()
        .filter(|c| c.start >= start && c.start < end && c.kwh.is_finite())
        .map(|c| Bucket {
            start: c.start,
            wh: c.kwh * 1000.0,
            covered: HOUR,
        })
        .collect()
}

/// InfluxDB's energy per hour, the hours with data.
pub(super) fn influx_hours(s: &Surveyed) -> Vec<Bucket> {
    s.measured
        .iter()
        .map(|(&h, m)| Bucket {
            start: h,
            wh: m.kwh * 1000.0,
            covered: HOUR,
        })
        .collect()
}

/// HA's and InfluxDB's energy per local day over `[start, end)`, both over the UTC hours that
/// start in the day (HA's day).
pub(super) fn daily(s: &Surveyed, start: i64, end: i64, tz: Tz) -> Vec<DayEnergy> {
    let influx: BTreeMap<NaiveDate, f64> = group_by_local_day(&hours(influx_hours(s)), tz)
        .into_iter()
        .map(|p| (p.start, p.wh / 1000.0))
        .collect();
    group_by_local_day(&hours(ha_hours(s, start, end)), tz)
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
    use super::super::survey::test_support::{row, surveyed_rows};
    use super::*;

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

    /// Adelaide (+10:30 in January): HA's day 2025-01-02 is the 24 UTC hours that start in it,
    /// from 00:30 to the hour starting 23:30. InfluxDB's side is the same hours, so a statistic
    /// that holds InfluxDB's energy compares equal on every day, never off by a half hour.
    #[test]
    fn in_a_half_hour_zone_both_sides_are_the_hours_that_start_in_the_day() {
        let tz: Tz = "Australia/Adelaide".parse().unwrap();
        let (day_start, day_end) =
            pwsync_energy::local::local_day_range(NaiveDate::from_ymd_opt(2025, 1, 2).unwrap(), tz);
        assert_eq!(day_start % HOUR, 1800, "midnight is mid-hour");
        let first = day_start - 1800 - 2 * HOUR;
        let hours: Vec<i64> = (0..30).map(|i| first + i * HOUR).collect();
        // Each hour's energy is its index: any half-hour shift would change the sums.
        let kwh = |h: i64| ((h - first) / HOUR) as f64 + 1.0;
        let mut sum = 10.0;
        let mut rows = vec![row(first - HOUR, sum)];
        for &h in &hours {
            sum += kwh(h);
            rows.push(row(h, sum));
        }
        let mut s = surveyed_rows(rows);
        s.measured = hours
            .iter()
            .map(|&h| {
                (
                    h,
                    pwsync_energy::audit::Measured {
                        kwh: kwh(h),
                        complete: true,
                    },
                )
            })
            .collect();
        let d = daily(&s, first, first + 30 * HOUR, tz);
        for day in &d {
            assert_eq!(Some(day.ha_kwh), day.influx_kwh, "{}", day.date);
        }
        let jan2 = d
            .iter()
            .find(|x| x.date.to_string() == "2025-01-02")
            .unwrap();
        let expected: f64 = hours
            .iter()
            .filter(|&&h| h >= day_start && h < day_end)
            .map(|&h| kwh(h))
            .sum();
        assert_eq!(
            hours
                .iter()
                .filter(|&&h| h >= day_start && h < day_end)
                .count(),
            24
        );
        assert!((jan2.ha_kwh - expected).abs() < 1e-9, "{}", jan2.ha_kwh);
    }
}
