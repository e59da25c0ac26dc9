//! Local days and months in HA's time zone, DST-correct.
//!
//! All arithmetic in pwsync is in UTC epoch seconds; local time appears only when a user's date
//! becomes a UTC range and when hourly energy is grouped for display. A local day is the UTC range
//! `[start of the day, start of the next day)`, so days tile the time line: 23, 24 or 25 hours
//! long around DST changes, never overlapping and never leaving an hour out.
//!
//! Where a zone's offset is not a whole number of hours (Adelaide, India, Nepal, Newfoundland,
//! the Chatham Islands, Lord Howe's 30-minute DST) local midnight falls inside a UTC hour, so a
//! local day is not a set of UTC hours. [`day_slice`] gives the longest slice of an hour that
//! every local midnight of a range lies on (30 or 15 minutes there); energy integrated in those
//! slices and grouped by [`group_by_local_day`] is cut at the exact local midnights. Grouping UTC
//! hours instead gives the day HA's Energy dashboard shows: the hours that start in the local day.

use crate::hourly::Integration;
use crate::HOUR;
use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why a user's date, month, hour range or zone was not accepted. Messages say what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// A user date that is not `YYYY-MM-DD` or not a real day.
    #[error("invalid date '{}': expected YYYY-MM-DD, e.g. 2025-03-09", .0.escape_debug())]
    Date(String),
    /// A real day outside [`FIRST_DATE`]..=[`LAST_DATE`].
    #[error("date {0} is outside the time range InfluxDB can store: use a day from {FIRST_DATE} to {LAST_DATE}")]
    DateOutOfRange(NaiveDate),
    /// A month outside 1..=12 (or a year chrono cannot represent).
    #[error("invalid month {year}-{month}: month must be 1 to 12")]
    Month { year: i32, month: u32 },
    /// `--hours` that is not `H1-H2` with `0 <= H1 < H2 <= 24`.
    #[error("invalid hour range '{0}': expected H1-H2 with 0 <= H1 < H2 <= 24, e.g. 17-21 (H2 excluded)")]
    HourRange(String),
    /// A zone name not in the IANA database chrono-tz ships.
    #[error("unknown time zone '{0}': expected an IANA name such as Europe/Berlin")]
    TimeZone(String),
}

/// The first and last local days whose every instant InfluxDB can store (nanosecond epoch
/// timestamps in an i64: 1677-09-21T00:12:43Z to 2262-04-11T23:47:16Z), in any zone.
pub const FIRST_DATE: NaiveDate = NaiveDate::from_ymd_opt(1677, 9, 22).expect("a real day");
pub const LAST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2262, 4, 10).expect("a real day");

/// Parse a user date, strictly `YYYY-MM-DD` (no times, no other orders: a misread day would
/// silently write the wrong statistics), within [`FIRST_DATE`]..=[`LAST_DATE`].
pub fn parse_date(s: &str) -> Result<NaiveDate, LocalError> {
    let t = s.trim();
    let well_formed = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !well_formed {
        return Err(LocalError::Date(s.to_string()));
    }
    let d =
        NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| LocalError::Date(s.to_string()))?;
    if !(FIRST_DATE..=LAST_DATE).contains(&d) {
        return Err(LocalError::DateOutOfRange(d));
    }
    Ok(d)
}

/// Parse an IANA zone name (HA's `time_zone`).
pub fn parse_tz(s: &str) -> Result<Tz, LocalError> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| LocalError::TimeZone(s.to_string()))
}

fn utc(t: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(t, 0).expect("epoch seconds within chrono's range")
}

fn offset_secs(t: i64, tz: Tz) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&utc(t).naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// The first UTC instant whose local time is at or after `local`. For a local time that exists
/// once this is that instant; for one that exists twice, the earlier; for one skipped by a DST
/// jump, the jump itself (whose local time is the end of the skipped stretch).
pub fn first_instant_at_or_after(local: NaiveDateTime, tz: Tz) -> i64 {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(d) => d.timestamp(),
        LocalResult::Ambiguous(a, b) => a.timestamp().min(b.timestamp()),
        LocalResult::None => {
            let l = local.and_utc().timestamp();
            let local_of = |u: i64| u + offset_secs(u, tz);
            // Offsets are within ±26 h, so local_of(l − 26 h) < l < local_of(l + 26 h).
            const STEP: i64 = 900;
            let mut u = l - 26 * HOUR;
            while local_of(u + STEP) < l {
                u += STEP;
            }
            let (mut lo, mut hi) = (u, u + STEP);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if local_of(mid) >= l {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        }
    }
}

/// The first instant after `now` whose local time of day is `at` (a daily schedule in `tz`).
/// A time a DST jump skips that day runs at the jump; a time that happens twice runs once, at
/// its first occurrence.
pub fn next_local_time(now: i64, at: chrono::NaiveTime, tz: Tz) -> i64 {
    let mut day = utc(now).with_timezone(&tz).date_naive();
    loop {
        let t = first_instant_at_or_after(day.and_time(at), tz);
        if t > now {
            return t;
        }
        day = day.succ_opt().expect("date within chrono's range");
    }
}

/// UTC range `[start, end)` of a local day: from the first instant of its midnight to the first
/// instant of the next day's. 23 or 25 hours on DST days; empty for a day a zone skipped.
pub fn local_day_range(date: NaiveDate, tz: Tz) -> (i64, i64) {
    let next = date.succ_opt().expect("date within chrono's range");
    (
        first_instant_at_or_after(date.and_time(chrono::NaiveTime::MIN), tz),
        first_instant_at_or_after(next.and_time(chrono::NaiveTime::MIN), tz),
    )
}

/// The local day whose [`local_day_range`] contains `t`. This is the wall-clock date, except in
/// the repeated hour of a fall-back across midnight, which belongs to the new day as the ranges
/// say: days and ranges never disagree.
pub fn local_date(t: i64, tz: Tz) -> NaiveDate {
    let d = utc(t).with_timezone(&tz).date_naive();
    let (s, e) = local_day_range(d, tz);
    if t >= e {
        d.succ_opt().unwrap_or(d)
    } else if t < s {
        d.pred_opt().unwrap_or(d)
    } else {
        d
    }
}

/// UTC range of a local calendar month (`month` 1..=12), for `_this_month` totals and reports.
pub fn month_range(year: i32, month: u32, tz: Tz) -> Result<(i64, i64), LocalError> {
    let err = || LocalError::Month { year, month };
    let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(err)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .ok_or_else(err)?;
    Ok((local_day_range(first, tz).0, local_day_range(next, tz).0))
}

/// Number of UTC hour starts in `[start, end)`: the hours a local period groups.
pub fn hours_in(start: i64, end: i64) -> u32 {
    slices_in(start, end, HOUR)
}

/// Number of slice starts (multiples of `slice` seconds since the epoch) in `[start, end)`.
pub fn slices_in(start: i64, end: i64, slice: i64) -> u32 {
    let ceil = |t: i64| -crate::floor_to(-t, slice);
    u32::try_from((ceil(end) - ceil(start)).max(0) / slice).unwrap_or(u32::MAX)
}

/// The longest slice, a divisor of an hour, on which every local midnight from `start`'s local
/// day to the day after `end`'s lies (month starts are midnights too): 3600 s where midnight is
/// on a UTC hour, 1800 s in Adelaide or India, 900 s in Nepal or the Chatham Islands, and less
/// for the odd offsets of local mean time before standard time. Energy integrated in slices of
/// this length is cut exactly at every local midnight, as UTC hours are cut at hour ends.
pub fn day_slice(start: i64, end: i64, tz: Tz) -> i64 {
    let (first, last) = (local_date(start, tz), local_date(end, tz));
    let mut slice = HOUR;
    let mut d = first;
    while d <= last.succ_opt().unwrap_or(last) && slice > 1 {
        slice = gcd(slice, local_day_range(d, tz).0.rem_euclid(HOUR));
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    slice
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Energy of one local day or month, from slices (UTC hours, or the slices of [`day_slice`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocalPeriod {
    /// The day, or the first day of the month.
    pub start: NaiveDate,
    /// Energy of the slices present, Wh.
    pub wh: f64,
    /// Every slice of the period is present and fully covered by data.
    pub complete: bool,
    /// Length of one slice, seconds (the integration's bucket).
    pub slice: i64,
    /// Slices of the period present in the input.
    pub slices: u32,
    /// Of those, slices with any data. 0: the period has no data at all (before the first
    /// point, after the last, or inside a gap): its energy is unknown, not 0.
    pub slices_with_data: u32,
    /// Slices the period has: 24 hours of them on most days, 23 or 25 hours on DST days, 23.5
    /// or 24.5 on Lord Howe Island's.
    pub expected_slices: u32,
    /// Seconds of the period backed by data (not in a gap, not before the first point or after
    /// the last).
    pub covered: i64,
}

impl LocalPeriod {
    fn hours_of(&self, slices: u32) -> f64 {
        f64::from(slices) * self.slice as f64 / HOUR as f64
    }
    /// Hours of the period inside the input.
    pub fn hours(&self) -> f64 {
        self.hours_of(self.slices)
    }
    /// Hours of the period's slices with any data.
    pub fn hours_with_data(&self) -> f64 {
        self.hours_of(self.slices_with_data)
    }
    /// The period's length in hours (of its slices: for UTC hours, the hours starting in it).
    pub fn expected_hours(&self) -> f64 {
        self.hours_of(self.expected_slices)
    }
    /// Seconds of the period without data: in gaps, before the first point, after the last.
    pub fn seconds_without_data(&self) -> i64 {
        i64::from(self.expected_slices) * self.slice - self.covered
    }
}

/// Group an integration's slices by local day; a slice belongs to the day its start is in.
/// With slices of [`day_slice`] (or any slice that divides every local midnight) this is the
/// exact local day. With UTC hours in a zone whose midnight falls mid-hour it is the day of
/// HA's long-term statistics: the 24 hours that start in it (from 00:30 to 00:30 in Adelaide).
/// Periods at the edge of the input are reported with the slices they have and `complete: false`.
pub fn group_by_local_day(integ: &Integration, tz: Tz) -> Vec<LocalPeriod> {
    group(integ, tz, |d| d, |d| local_day_range(d, tz))
}

/// Group an integration's slices by local calendar month; `start` is the month's first day.
pub fn group_by_local_month(integ: &Integration, tz: Tz) -> Vec<LocalPeriod> {
    group(
        integ,
        tz,
        |d| d.with_day(1).expect("day 1 exists"),
        |d| month_range(d.year(), d.month(), tz).expect("month of a valid date"),
    )
}

fn group(
    integ: &Integration,
    tz: Tz,
    key: impl Fn(NaiveDate) -> NaiveDate,
    range: impl Fn(NaiveDate) -> (i64, i64),
) -> Vec<LocalPeriod> {
    let slice = integ.bucket;
    let mut acc: BTreeMap<NaiveDate, (f64, u32, u32, bool, i64)> = BTreeMap::new();
    // Consecutive slices mostly share a day: look the day up once per day, not per slice.
    let mut day: Option<(NaiveDate, i64, i64)> = None;
    for b in &integ.buckets {
        let d = match day {
            Some((d, s, e)) if b.start >= s && b.start < e => d,
            _ => {
                let d = local_date(b.start, tz);
                let (s, e) = local_day_range(d, tz);
                day = Some((d, s, e));
                d
            }
        };
        let e = acc.entry(key(d)).or_insert((0.0, 0, 0, true, 0));
        e.0 += b.wh;
        e.1 += 1;
        e.2 += u32::from(b.covered > 0);
        e.3 &= b.covered >= slice;
        e.4 += b.covered;
    }
    acc.into_iter()
        .map(
            |(start, (wh, slices, slices_with_data, all_covered, covered))| {
                let (s, e) = range(start);
                let expected_slices = slices_in(s, e, slice);
                LocalPeriod {
                    start,
                    wh,
                    complete: all_covered && slices == expected_slices,
                    slice,
                    slices,
                    slices_with_data,
                    expected_slices,
                    covered,
                }
            },
        )
        .collect()
}

/// Local hours of the day `[from, to)` for `--hours H1-H2`, e.g. `17-21` is 17:00 to 21:00.
/// An hour is selected by the local hour of its start (both 01:00 hours of a fall-back day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourRange {
    /// First local hour included (0..=23).
    pub from: u32,
    /// First local hour excluded (1..=24).
    pub to: u32,
}

impl HourRange {
    /// A range with `0 <= from < to <= 24`; ranges across midnight are refused rather than guessed.
    pub fn new(from: u32, to: u32) -> Result<Self, LocalError> {
        if from < to && to <= 24 {
            Ok(HourRange { from, to })
        } else {
            Err(LocalError::HourRange(format!("{from}-{to}")))
        }
    }

    /// Whether the UTC hour starting at `hour_start` is selected.
    pub fn contains(&self, hour_start: i64, tz: Tz) -> bool {
        let h = utc(hour_start).with_timezone(&tz).hour();
        h >= self.from && h < self.to
    }

    /// The selected hour starts, in input order.
    pub fn filter(&self, hour_starts: &[i64], tz: Tz) -> Vec<i64> {
        hour_starts
            .iter()
            .copied()
            .filter(|&h| self.contains(h, tz))
            .collect()
    }
}

impl FromStr for HourRange {
    type Err = LocalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LocalError::HourRange(s.to_string());
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let num = |x: &str| {
            let x = x.trim();
            if x.is_empty() || x.len() > 2 || !x.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            x.parse::<u32>().map_err(|_| bad())
        };
        HourRange::new(num(a)?, num(b)?).map_err(|_| bad())
    }
}

impl fmt::Display for HourRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{floor_hour, Bucket};
    use chrono_tz::America::Los_Angeles;
    use chrono_tz::Europe::Berlin;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let len = |s: &str, tz| {
            let (a, b) = local_day_range(d(s), tz);
            (b - a) / HOUR
        };
        assert_eq!(len("2025-03-09", Los_Angeles), 23);
        assert_eq!(len("2025-11-02", Los_Angeles), 25);
        assert_eq!(len("2025-03-10", Los_Angeles), 24);
        assert_eq!(len("2025-03-30", Berlin), 23);
        assert_eq!(len("2025-10-26", Berlin), 25);
        // 2025-03-09 00:00 PST is 08:00 UTC.
        assert_eq!(
            local_day_range(d("2025-03-09"), Los_Angeles).0,
            1_741_507_200
        );
    }

    #[test]
    fn a_daily_time_comes_once_a_day_and_through_dst_jumps() {
        let at = chrono::NaiveTime::from_hms_opt(3, 30, 0).unwrap();
        let berlin = |s: &str| {
            let l = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
            first_instant_at_or_after(l, Berlin)
        };
        // Before 03:30 it is today's, at or after it tomorrow's.
        let now = berlin("2025-06-01 03:29:59");
        assert_eq!(next_local_time(now, at, Berlin), now + 1);
        assert_eq!(
            next_local_time(now + 1, at, Berlin),
            berlin("2025-06-02 03:30:00")
        );
        // 02:30 does not exist on 2025-03-30 in Berlin: it runs at the jump (03:00 CEST), once.
        let at = chrono::NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        let jump = next_local_time(berlin("2025-03-29 12:00:00"), at, Berlin);
        assert_eq!(jump, berlin("2025-03-30 03:00:00"));
        assert_eq!(
            next_local_time(jump, at, Berlin),
            berlin("2025-03-31 02:30:00")
        );
        // 02:30 happens twice on 2025-10-26: the first one only.
        let first = next_local_time(berlin("2025-10-25 12:00:00"), at, Berlin);
        assert_eq!(first, 1_761_438_600); // 2025-10-26T00:30:00Z = 02:30 CEST
        assert_eq!(
            next_local_time(first, at, Berlin),
            berlin("2025-10-27 02:30:00")
        );
    }

    #[test]
    fn a_midnight_that_does_not_exist_starts_at_the_jump() {
        // São Paulo jumped from 00:00 to 01:00 on 2018-11-04 (UTC-3 → UTC-2).
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let (s, e) = local_day_range(d("2018-11-04"), tz);
        assert_eq!(s, 1_541_300_400); // 2018-11-04T03:00:00Z, shown as 01:00 -02
        assert_eq!((e - s) / HOUR, 23);
        assert_eq!(local_date(s, tz), d("2018-11-04"));
        assert_eq!(local_date(s - 1, tz), d("2018-11-03"));
    }

    #[test]
    fn a_repeated_midnight_starts_at_its_first_occurrence() {
        // Havana fell back from 01:00 CDT to 00:00 CST on 2025-11-02: midnight happened twice.
        let tz: Tz = "America/Havana".parse().unwrap();
        let (s, e) = local_day_range(d("2025-11-02"), tz);
        assert_eq!(s, 1_762_056_000); // 2025-11-02T04:00:00Z = 00:00 CDT
        assert_eq!((e - s) / HOUR, 25);
    }

    #[test]
    fn a_skipped_day_is_empty() {
        // Samoa skipped 2011-12-30 entirely.
        let tz: Tz = "Pacific/Apia".parse().unwrap();
        let (s, e) = local_day_range(d("2011-12-30"), tz);
        assert_eq!(s, e);
        assert_eq!(local_day_range(d("2011-12-29"), tz).1, s);
    }

    #[test]
    fn months_and_dates() {
        let (s, e) = month_range(2025, 3, Berlin).unwrap();
        assert_eq!((e - s) / HOUR, 31 * 24 - 1);
        assert_eq!(
            month_range(2025, 13, Berlin),
            Err(LocalError::Month {
                year: 2025,
                month: 13
            })
        );
        assert!(parse_date("2025-3-9").is_err());
        assert!(parse_date("09.03.2025").is_err());
        assert!(parse_date("2025-02-30").is_err());
        assert_eq!(parse_date(" 2024-02-29 ").unwrap(), d("2024-02-29"));
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(parse_tz("Europe/Berlin").unwrap(), Berlin);
    }

    #[test]
    fn dates_outside_influxdbs_time_range_are_refused_with_the_range() {
        for (s, ok) in [
            ("9999-01-01", false),
            ("2262-04-11", false),
            ("2262-04-10", true),
            ("1677-09-21", false),
            ("1677-09-22", true),
            ("0001-01-01", false),
        ] {
            match parse_date(s) {
                Ok(_) => assert!(ok, "{s} accepted"),
                Err(e) => {
                    assert!(!ok, "{s}: {e}");
                    let m = e.to_string();
                    assert!(m.contains("1677-09-22 to 2262-04-10"), "{m}");
                }
            }
        }
        // Every instant of the last and first day, in the zones furthest from UTC, is one
        // InfluxDB can store (its nanosecond range, in seconds).
        let (min, max) = (-9_223_372_036, 9_223_372_036);
        for tz in ["Pacific/Kiritimati", "Etc/GMT+12"] {
            let tz: Tz = tz.parse().unwrap();
            assert!(local_day_range(FIRST_DATE, tz).0 >= min);
            assert!(local_day_range(LAST_DATE, tz).1 <= max);
        }
    }

    #[test]
    fn a_control_character_in_a_date_is_escaped() {
        let m = parse_date("2025-01-01\nerror: forged")
            .unwrap_err()
            .to_string();
        assert!(!m.contains('\n') && m.contains("\\n"), "{m}");
    }

    #[test]
    fn hour_ranges() {
        let r: HourRange = "17-21".parse().unwrap();
        assert_eq!(r, HourRange { from: 17, to: 21 });
        assert_eq!(r.to_string(), "17-21");
        for bad in [
            "21-17", "5-5", "0-25", "17", "a-b", "-1-3", "17-21-23", "017-21",
        ] {
            assert!(bad.parse::<HourRange>().is_err(), "{bad}");
        }
        assert!("0-24".parse::<HourRange>().is_ok());
        // Local hours of 2025-03-09 in Los Angeles (23 hours): 17..21 local is 4 hours.
        let (s, e) = local_day_range(d("2025-03-09"), Los_Angeles);
        let hours: Vec<i64> = (s..e).step_by(HOUR as usize).collect();
        let sel = r.filter(&hours, Los_Angeles);
        assert_eq!(sel.len(), 4);
        assert_eq!(sel[0], s + 16 * HOUR); // 02:00 does not exist that day
                                           // Fall-back day: both 01:00 hours are selected by 1-2.
        let (s, e) = local_day_range(d("2025-11-02"), Los_Angeles);
        let hours: Vec<i64> = (s..e).step_by(HOUR as usize).collect();
        assert_eq!(
            HourRange::new(1, 2)
                .unwrap()
                .filter(&hours, Los_Angeles)
                .len(),
            2
        );
    }

    fn hours_of(from: i64, to: i64, slice: i64, wh: f64) -> Integration {
        Integration {
            bucket: slice,
            buckets: (from..to)
                .step_by(slice as usize)
                .map(|t| Bucket {
                    start: t,
                    wh,
                    covered: slice,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn grouping_counts_dst_hours() {
        let (s, e) = local_day_range(d("2025-10-26"), Berlin);
        let hours = hours_of(s - 2 * HOUR, e + HOUR, HOUR, 1.0);
        let days = group_by_local_day(&hours, Berlin);
        assert_eq!(days.len(), 3);
        assert_eq!(days[1].start, d("2025-10-26"));
        assert_eq!((days[1].slices, days[1].expected_slices), (25, 25));
        assert_eq!(days[1].expected_hours(), 25.0);
        assert!(days[1].complete);
        assert!((days[1].wh - 25.0).abs() < 1e-12);
        assert!(!days[0].complete && !days[2].complete);
        let months = group_by_local_month(&hours, Berlin);
        assert_eq!(months.len(), 1);
        assert_eq!(months[0].start, d("2025-10-01"));
        assert_eq!(months[0].expected_slices, 31 * 24 + 1);
        assert!(!months[0].complete);
    }

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    #[test]
    fn the_day_slice_is_the_longest_that_every_midnight_lies_on() {
        let at = |zone: &str, from: &str, to: &str| {
            let tz = tz(zone);
            day_slice(
                local_day_range(d(from), tz).0,
                local_day_range(d(to), tz).1,
                tz,
            )
        };
        assert_eq!(at("America/Los_Angeles", "2025-01-01", "2025-12-31"), HOUR);
        assert_eq!(at("UTC", "2025-01-01", "2025-01-01"), HOUR);
        assert_eq!(at("Australia/Adelaide", "2025-01-01", "2025-12-31"), 1800);
        assert_eq!(at("Asia/Kolkata", "2025-06-01", "2025-06-01"), 1800);
        assert_eq!(at("America/St_Johns", "2025-01-01", "2025-12-31"), 1800);
        assert_eq!(at("Asia/Kathmandu", "2025-01-01", "2025-01-02"), 900);
        assert_eq!(at("Pacific/Chatham", "2025-01-01", "2025-12-31"), 900);
        assert_eq!(at("Australia/Eucla", "2025-01-01", "2025-01-31"), 900);
        // Lord Howe: +11 in summer (midnight on the hour), +10:30 in winter.
        assert_eq!(at("Australia/Lord_Howe", "2025-01-01", "2025-01-31"), HOUR);
        assert_eq!(at("Australia/Lord_Howe", "2025-04-01", "2025-04-30"), 1800);
        // Liberia kept −00:44:30 until 1972: midnight at 00:44:30 UTC.
        assert_eq!(at("Africa/Monrovia", "1971-01-01", "1971-01-02"), 30);
    }

    #[test]
    fn half_hour_slices_cut_adelaides_day_at_its_midnight() {
        let tz = tz("Australia/Adelaide");
        // 2025-04-06: Adelaide falls back from +10:30 to +9:30, a 25-hour day.
        let (s, e) = local_day_range(d("2025-04-06"), tz);
        assert_eq!(s, 1_743_859_800); // 2025-04-05T13:30:00Z
        assert_eq!(e - s, 25 * HOUR);
        let slices = hours_of(s - 3 * HOUR, e + 3 * HOUR, 1800, 1.0);
        let days = group_by_local_day(&slices, tz);
        let day = days.iter().find(|p| p.start == d("2025-04-06")).unwrap();
        assert!(day.complete);
        assert_eq!(day.expected_hours(), 25.0);
        assert!((day.wh - 50.0).abs() < 1e-12);
        // UTC hours grouped the same way are HA's day: 25 hours from 00:30 to 00:30.
        let hours = hours_of(floor_hour(s) - 3 * HOUR, e + 3 * HOUR, HOUR, 1.0);
        let ha = group_by_local_day(&hours, tz);
        let ha_day = ha.iter().find(|p| p.start == d("2025-04-06")).unwrap();
        assert_eq!(ha_day.expected_slices, 25);
        assert!(ha_day.complete);
    }

    #[test]
    fn lord_howes_days_are_23_and_a_half_and_24_and_a_half_hours() {
        let tz = tz("Australia/Lord_Howe");
        let len = |s: &str| {
            let (a, b) = local_day_range(d(s), tz);
            b - a
        };
        // DST ends 2025-04-06 (02:00 +11 → 01:30 +10:30), starts 2025-10-05 (02:00 → 02:30).
        assert_eq!(len("2025-04-06"), 24 * HOUR + 1800);
        assert_eq!(len("2025-10-05"), 23 * HOUR + 1800);
        let (s, e) = (
            local_day_range(d("2025-10-04"), tz).0,
            local_day_range(d("2025-10-06"), tz).1,
        );
        let slice = day_slice(s, e, tz);
        assert_eq!(slice, 1800);
        let days = group_by_local_day(&hours_of(s, e, slice, 1.0), tz);
        let hours: Vec<f64> = days.iter().map(LocalPeriod::expected_hours).collect();
        assert_eq!(hours, vec![24.0, 23.5, 24.0]);
        assert!(days.iter().all(|p| p.complete));
    }

    #[test]
    fn the_daily_time_in_zones_with_half_hour_offsets_and_shifts() {
        let at = chrono::NaiveTime::from_hms_opt(3, 30, 0).unwrap();
        let local = |zone: &str, s: &str| {
            let l = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
            first_instant_at_or_after(l, tz(zone))
        };
        for zone in [
            "Australia/Adelaide",
            "Asia/Kathmandu",
            "America/St_Johns",
            "Pacific/Chatham",
            "Australia/Lord_Howe",
        ] {
            let t = next_local_time(local(zone, "2025-06-01 12:00:00"), at, tz(zone));
            let shown = utc(t).with_timezone(&tz(zone));
            assert_eq!(shown.time(), at, "{zone}");
            assert_eq!(shown.date_naive(), d("2025-06-02"), "{zone}");
        }
        // 2025-06-02 03:30 in Kathmandu (+05:45) is 21:45 UTC the day before.
        let t = next_local_time(
            local("Asia/Kathmandu", "2025-06-01 12:00:00"),
            at,
            tz("Asia/Kathmandu"),
        );
        assert_eq!(t, 1_748_814_300);
        // On Lord Howe 02:00 to 02:30 is skipped on 2025-10-05: 02:15 runs at the jump, once.
        let lh = "Australia/Lord_Howe";
        let at = chrono::NaiveTime::from_hms_opt(2, 15, 0).unwrap();
        let jump = next_local_time(local(lh, "2025-10-04 12:00:00"), at, tz(lh));
        assert_eq!(jump, local(lh, "2025-10-05 02:30:00"));
        assert_eq!(jump, 1_759_591_800); // 2025-10-04T15:30:00Z
        assert_eq!(
            next_local_time(jump, at, tz(lh)),
            local(lh, "2025-10-06 02:15:00")
        );
        // 01:45 happens twice on 2025-04-06 (01:30 to 02:00 repeats): the first one only.
        let at = chrono::NaiveTime::from_hms_opt(1, 45, 0).unwrap();
        let first = next_local_time(local(lh, "2025-04-05 12:00:00"), at, tz(lh));
        assert_eq!(first, 1_743_864_300); // 2025-04-05T14:45:00Z = 01:45 +11
        assert_eq!(
            next_local_time(first, at, tz(lh)),
            local(lh, "2025-04-07 01:45:00")
        );
    }
}
