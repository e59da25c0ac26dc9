//! Rows of HA's `statistics` / `statistics_short_term` tables, as pwsync sees them, and what
//! the Energy dashboard derives from them (the change of `sum` per row).

use crate::hourly::Integration;
use crate::{FIVE_MIN, HOUR};
use serde::{Deserialize, Serialize};

/// One statistics row. `start` is epoch seconds of the period start; `state` and `sum` in kWh.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatRow {
    pub start: i64,
    pub state: Option<f64>,
    pub sum: Option<f64>,
}

/// A change below `-NEGATIVE_TOLERANCE` kWh is negative energy; smaller dips are float noise
/// from HA's own arithmetic.
pub const NEGATIVE_TOLERANCE: f64 = 1e-6;

/// Hourly rows for every period of `integ`, as a fresh chain would hold them: `sum` continues
/// from `base_sum` (the sum of the row before, 0 for a new statistic) and `state` is the lifetime
/// meter at the period's end, continuing from `base_meter` (the meter at the first period's
/// start). Splice computes the same values against an existing chain.
pub fn rows_from_integration(integ: &Integration, base_sum: f64, base_meter: f64) -> Vec<StatRow> {
    let (mut sum, mut meter) = (base_sum, base_meter);
    integ
        .buckets
        .iter()
        .map(|b| {
            sum += b.wh / 1000.0;
            meter += b.wh / 1000.0;
            StatRow {
                start: b.start,
                state: Some(meter),
                sum: Some(sum),
            }
        })
        .collect()
}

/// The change of `sum` from one row to the next row that has a sum: what the Energy dashboard
/// shows for the period `[prev_start + 1 h, start + 1 h)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Start of the row whose change this is.
    pub start: i64,
    /// Start of the previous row with a sum.
    pub prev_start: i64,
    /// `sum` minus the previous row's `sum`.
    pub kwh: f64,
}

impl Change {
    /// Hours without a row between the two rows: the change covers them all, so its energy
    /// cannot be attributed to one hour.
    pub fn missing_hours(&self) -> i64 {
        ((self.start - self.prev_start) / HOUR - 1).max(0)
    }
}

/// Changes of consecutive rows with a `sum` (rows without one are skipped). `rows` ascending.
/// The first row has no change: where a chain starts, its energy is unknown.
pub fn hourly_changes(rows: &[StatRow]) -> Vec<Change> {
    let mut prev: Option<(i64, f64)> = None;
    let mut out = Vec::with_capacity(rows.len().saturating_sub(1));
    for r in rows {
        let Some(sum) = r.sum else { continue };
        if let Some((prev_start, prev_sum)) = prev {
            out.push(Change {
                start: r.start,
                prev_start,
                kwh: sum - prev_sum,
            });
        }
        prev = Some((r.start, sum));
    }
    out
}

/// [`hourly_changes`] with HA's convention for where a statistic begins: the first row's change
/// is its `sum`, taken against a virtual row with sum 0 the hour before (what HA's `change`
/// reports for that row, and what its Energy dashboard shows). For totals, not for auditing.
pub fn hourly_changes_from_zero(rows: &[StatRow]) -> Vec<Change> {
    let first = rows.iter().find_map(|r| {
        r.sum.map(|sum| Change {
            start: r.start,
            prev_start: r.start - HOUR,
            kwh: sum,
        })
    });
    first.into_iter().chain(hourly_changes(rows)).collect()
}

/// What is wrong with one hour's change, for `check` and the migration's rejected hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HourIssue {
    /// NaN or infinite: a broken row.
    #[error("not a number")]
    NotFinite,
    /// The sum fell: a meter reset misread, or a bad import.
    #[error("negative energy")]
    Negative,
    /// Rows are missing before this one, so the change belongs to several hours.
    #[error("spans {missing_hours} missing hour(s)")]
    AcrossHole {
        /// Hours without a row between the two rows.
        missing_hours: i64,
    },
    /// More than the installation can produce or use in an hour: a spike.
    #[error("above the physical limit of {limit_kwh} kWh per hour")]
    AboveLimit {
        /// The limit that was exceeded, kWh per hour.
        limit_kwh: f64,
    },
}

/// The first issue of a change, by severity: not a number, negative, across missing hours,
/// above `max_kwh_per_hour` (a physical limit from config, e.g. 2 × max power).
pub fn classify(change: &Change, max_kwh_per_hour: f64) -> Option<HourIssue> {
    if !change.kwh.is_finite() {
        Some(HourIssue::NotFinite)
    } else if change.kwh < -NEGATIVE_TOLERANCE {
        Some(HourIssue::Negative)
    } else if change.missing_hours() > 0 {
        Some(HourIssue::AcrossHole {
            missing_hours: change.missing_hours(),
        })
    } else if change.kwh > max_kwh_per_hour {
        Some(HourIssue::AboveLimit {
            limit_kwh: max_kwh_per_hour,
        })
    } else {
        None
    }
}

/// An hour whose 5-minute chain disagrees with its hourly row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OutOfStep {
    /// Start of the hour.
    pub hour: i64,
    /// `sum` of the hourly row.
    pub hourly_sum: f64,
    /// `sum` of the hour's last 5-minute row.
    pub short_term_sum: f64,
}

/// Hours whose last 5-minute row (start `hour + 55 min`) has a `sum` differing from the hourly
/// row's by more than `tolerance` kWh. HA builds each hourly row from that 5-minute row and
/// continues every compile from the latest one, so a mismatch becomes a spike later.
pub fn short_term_out_of_step(
    hourly: &[StatRow],
    short_term: &[StatRow],
    tolerance: f64,
) -> Vec<OutOfStep> {
    let mut short: Vec<&StatRow> = short_term.iter().collect();
    short.sort_by_key(|r| r.start);
    hourly
        .iter()
        .filter_map(|h| {
            let hs = h.sum?;
            let last = h.start + HOUR - FIVE_MIN;
            let i = short.binary_search_by_key(&last, |r| r.start).ok()?;
            let ss = short[i].sum?;
            ((hs - ss).abs() > tolerance).then_some(OutOfStep {
                hour: h.start,
                hourly_sum: hs,
                short_term_sum: ss,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hourly::Bucket;

    fn row(h: i64, sum: Option<f64>) -> StatRow {
        StatRow {
            start: h * HOUR,
            state: sum,
            sum,
        }
    }

    #[test]
    fn rows_continue_from_their_bases() {
        let integ = Integration {
            bucket: HOUR,
            buckets: vec![
                Bucket {
                    start: 0,
                    wh: 500.0,
                    covered: HOUR,
                },
                Bucket {
                    start: HOUR,
                    wh: 1500.0,
                    covered: HOUR,
                },
            ],
            ..Default::default()
        };
        let rows = rows_from_integration(&integ, 10.0, 100.0);
        assert_eq!(rows[0].sum, Some(10.5));
        assert_eq!(rows[1].sum, Some(12.0));
        assert_eq!(rows[1].state, Some(102.0));
    }

    #[test]
    fn changes_skip_rows_without_sum_and_classify() {
        let rows = [
            row(0, Some(1.0)),
            row(1, Some(2.0)),
            row(2, None),
            row(3, Some(4.0)),
            row(4, Some(3.0)),
            row(5, Some(30.0)),
            row(6, Some(30.0 - 1e-9)),
        ];
        let c = hourly_changes(&rows);
        assert_eq!(c.len(), 5);
        assert_eq!(c[1].missing_hours(), 1);
        let issues: Vec<_> = c.iter().map(|c| classify(c, 20.0)).collect();
        assert_eq!(
            issues,
            vec![
                None,
                Some(HourIssue::AcrossHole { missing_hours: 1 }),
                Some(HourIssue::Negative),
                Some(HourIssue::AboveLimit { limit_kwh: 20.0 }),
                None,
            ]
        );
    }

    #[test]
    fn from_zero_the_first_row_changes_by_its_sum() {
        let rows = [row(3, None), row(4, Some(2.5)), row(5, Some(3.0))];
        let c = hourly_changes_from_zero(&rows);
        let kwh: Vec<(i64, f64)> = c.iter().map(|c| (c.start / HOUR, c.kwh)).collect();
        assert_eq!(kwh, vec![(4, 2.5), (5, 0.5)]);
        assert_eq!(c[0].missing_hours(), 0);
        assert!(hourly_changes_from_zero(&[]).is_empty());
    }

    #[test]
    fn out_of_step_compares_the_hours_last_5_minute_row() {
        let hourly = [row(0, Some(1.0)), row(1, Some(2.0))];
        let short = [
            StatRow {
                start: 3300,
                state: None,
                sum: Some(1.0),
            },
            StatRow {
                start: HOUR + 3300,
                state: None,
                sum: Some(2.5),
            },
        ];
        let bad = short_term_out_of_step(&hourly, &short, 1e-6);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].hour, HOUR);
    }
}
