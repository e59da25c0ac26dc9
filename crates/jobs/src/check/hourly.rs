//! HA's and InfluxDB's energy per UTC hour over the checked range, for the panel's chart, made
//! from what the check already read. Columns of `f32` rounded to the Wh, one value per hour from
//! the first: three years of one statistic are ~26,000 hours, about 200 KB in memory.

use super::daily::{ha_hours, hours, influx_hours};
use super::survey::Surveyed;
use chrono_tz::Tz;
use pwsync_energy::local::{group_by_local_day, local_day_range};
use pwsync_energy::{Bucket, HOUR};
use std::collections::BTreeMap;

/// Energy per UTC hour, HA next to InfluxDB. NaN where a side has no value: an hour HA has no
/// row for (or a broken one), an hour InfluxDB has no data for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourlyEnergy {
    /// The first hour (epoch s, a whole UTC hour); value `i` is the hour `start + i * HOUR`.
    pub start: i64,
    /// HA's energy, kWh.
    pub ha: Vec<f32>,
    /// InfluxDB's energy, kWh.
    pub influx: Vec<f32>,
}

/// Energy per day as HA's Energy dashboard counts a day (the UTC hours that start in it), for
/// a chart of years. NaN where a side has no hour that day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailyEnergy {
    /// The day's first hour in the series (epoch s).
    pub start: Vec<i64>,
    pub ha: Vec<f32>,
    pub influx: Vec<f32>,
}

/// kWh to the Wh, in the column's width.
fn column_value(kwh: f64) -> f32 {
    ((kwh * 1000.0).round() / 1000.0) as f32
}

fn first_whole_hour(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR + if t.rem_euclid(HOUR) == 0 { 0 } else { HOUR }
}

impl HourlyEnergy {
    /// The whole UTC hours that start in `[start, end)`.
    pub(super) fn of(s: &Surveyed, start: i64, end: i64) -> HourlyEnergy {
        let first = first_whole_hour(start);
        let len = usize::try_from((end - first).max(0) / HOUR).unwrap_or(0);
        let column = |buckets: Vec<Bucket>| {
            let mut c = vec![f32::NAN; len];
            for b in buckets {
                let i = (b.start - first).div_euclid(HOUR);
                if let Some(v) = usize::try_from(i).ok().and_then(|i| c.get_mut(i)) {
                    *v = column_value(b.wh / 1000.0);
                }
            }
            c
        };
        HourlyEnergy {
            start: first,
            ha: column(ha_hours(s, start, end)),
            influx: column(influx_hours(s)),
        }
    }

    pub fn len(&self) -> usize {
        self.ha.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ha.is_empty()
    }

    /// The hours summed per local day of `tz`, grouped as [`super::daily`] groups them.
    pub fn by_day(&self, tz: Tz) -> DailyEnergy {
        let side = |column: &[f32]| {
            let buckets = column
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| Bucket {
                    start: self.start + i as i64 * HOUR,
                    wh: f64::from(v) * 1000.0,
                    covered: HOUR,
                })
                .collect();
            group_by_local_day(&hours(buckets), tz)
                .into_iter()
                .map(|p| (p.start, column_value(p.wh / 1000.0)))
                .collect::<BTreeMap<_, _>>()
        };
        let (ha, influx) = (side(&self.ha), side(&self.influx));
        let days: std::collections::BTreeSet<_> = ha.keys().chain(influx.keys()).collect();
        let mut d = DailyEnergy::default();
        for day in days {
            let first = first_whole_hour(local_day_range(*day, tz).0).max(self.start);
            d.start.push(first);
            d.ha.push(ha.get(day).copied().unwrap_or(f32::NAN));
            d.influx.push(influx.get(day).copied().unwrap_or(f32::NAN));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::super::survey::test_support::{row, surveyed_rows};
    use super::*;
    use pwsync_energy::audit::Measured;

    const DAY0: i64 = 1_735_689_600; // 2025-01-01T00:00Z

    fn measured(hours: &[(i64, f64)]) -> BTreeMap<i64, Measured> {
        hours
            .iter()
            .map(|&(h, kwh)| {
                (
                    h,
                    Measured {
                        kwh,
                        complete: true,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_hour_of_the_range_has_a_place_and_a_missing_value_is_nan() {
        // HA: the row before the range anchors, then hours 0, 1 and 3 (hour 2 is a hole).
        let mut s = surveyed_rows(vec![
            row(DAY0 - HOUR, 10.0),
            row(DAY0, 10.4),
            row(DAY0 + HOUR, 11.0),
            row(DAY0 + 3 * HOUR, 11.25),
        ]);
        s.measured = measured(&[(DAY0 + HOUR, 0.6001), (DAY0 + 2 * HOUR, 0.1)]);
        let h = HourlyEnergy::of(&s, DAY0, DAY0 + 5 * HOUR);
        assert_eq!(h.start, DAY0);
        assert_eq!(h.len(), 5);
        let shown = |c: &[f32]| {
            c.iter()
                .map(|v| v.is_finite().then_some(*v))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shown(&h.ha),
            [Some(0.4), Some(0.6), None, Some(0.25), None],
            "{h:?}"
        );
        // Rounded to the Wh.
        assert_eq!(shown(&h.influx), [None, Some(0.6), Some(0.1), None, None]);
    }

    #[test]
    fn a_range_from_a_half_hour_midnight_starts_at_the_next_whole_hour() {
        let start = DAY0 - 1800;
        let s = surveyed_rows(vec![row(DAY0, 1.0), row(DAY0 + HOUR, 2.0)]);
        let h = HourlyEnergy::of(&s, start, DAY0 + 2 * HOUR);
        assert_eq!(h.start, DAY0);
        // The first row counts by its sum, as in the daily totals.
        assert_eq!(h.ha, [1.0, 1.0]);
    }

    /// Days from the hours agree with the daily totals of `check --chart`, and a day only one
    /// side has (history missing in HA) is still a day.
    #[test]
    fn days_sum_the_hours_as_the_daily_totals_do() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let hours: Vec<i64> = (0..72).map(|i| DAY0 + i * HOUR).collect();
        let kwh = |h: i64| ((h - DAY0) / HOUR % 7) as f64 * 0.125 + 0.5;
        let mut sum = 100.0;
        let mut rows = vec![row(DAY0 - HOUR, sum)];
        // HA lacks the last 30 hours.
        for &h in &hours[..42] {
            sum += kwh(h);
            rows.push(row(h, sum));
        }
        let mut s = surveyed_rows(rows);
        s.measured = measured(&hours.iter().map(|&h| (h, kwh(h))).collect::<Vec<_>>());
        let end = DAY0 + 72 * HOUR;
        let days = HourlyEnergy::of(&s, DAY0, end).by_day(tz);
        let daily = super::super::daily::daily(&s, DAY0, end, tz);
        // 2024-12-31 from 16:00 PST, 2025-01-01, -02, and 2025-01-03 up to 16:00.
        assert_eq!(days.start.len(), 4, "{days:?}");
        assert_eq!(
            days.start[0], DAY0,
            "the first day starts where the series does"
        );
        assert_eq!(
            days.start[1],
            local_day_range(chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), tz).0
        );
        for (i, d) in daily.iter().enumerate() {
            assert!((f64::from(days.ha[i]) - d.ha_kwh).abs() < 1e-3, "{i}");
            let influx = d.influx_kwh.unwrap();
            assert!((f64::from(days.influx[i]) - influx).abs() < 1e-3, "{i}");
        }
        assert_eq!(daily.len(), 3, "HA has no hour on the last day");
        assert!(days.ha[3].is_nan() && days.influx[3] > 0.0, "{days:?}");
    }
}
