//! Turning a user's local dates into the UTC range a job may write.

use crate::JobError;
use chrono::NaiveDate;
use chrono_tz::Tz;
use pwsync_energy::{floor_hour, local::local_day_range};

/// HA compiles an hour at about :55 of the next 5-minute cycle; an hour it has not compiled yet
/// must never be imported (its own insert would then fail for every sensor). Hours whose start
/// is before this limit are safe: they ended at or before `floor_hour(now − 15 min)`.
pub fn compiled_limit(now: i64) -> i64 {
    floor_hour(now - 15 * 60)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeStart {
    /// From the first InfluxDB point.
    All,
    /// From local midnight of this day.
    Date(NaiveDate),
}

/// Local days `start ..= end` (end included; `None` means up to now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: RangeStart,
    pub end: Option<NaiveDate>,
}

impl DateRange {
    /// The UTC hours `[start, end)` to consider, given the first data point and now.
    pub fn resolve(&self, tz: Tz, first_data: i64, now: i64) -> Result<(i64, i64), JobError> {
        let start = match self.start {
            RangeStart::All => floor_hour(first_data),
            RangeStart::Date(d) => local_day_range(d, tz).0,
        };
        let limit = compiled_limit(now);
        let end = match self.end {
            Some(d) => local_day_range(d, tz).1.min(limit),
            None => limit,
        };
        if let (RangeStart::Date(s), Some(e)) = (self.start, self.end) {
            if s > e {
                return Err(JobError::Input(format!(
                    "start date {s} is after end date {e}: swap them"
                )));
            }
        }
        if start >= end {
            return Err(JobError::Input(format!(
                "nothing to do: the range starts at {} but only hours ending before {} are compiled by HA",
                fmt_ts(start, tz),
                fmt_ts(limit, tz)
            )));
        }
        Ok((start, end))
    }
}

/// `2025-03-09 02:00 PDT`-style local time for messages.
pub fn fmt_ts(t: i64, tz: Tz) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_else(|| t.to_string())
}
