//! Local days cut at the exact local midnight, in zones whose midnight is not on a UTC hour
//! (:30 and :45 offsets, Lord Howe's 30-minute DST) and in Los Angeles as a control: each
//! day's energy is the 5-minute slices between its midnights, days add up to months and to the
//! whole range, and a gap across midnight leaves both days incomplete.

mod common;

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use common::close;
use proptest::prelude::*;
use pwsync_energy::local::{day_slice, group_by_local_day, group_by_local_month, local_day_range};
use pwsync_energy::{integrate, Integration, Sample, FIVE_MIN, HOUR};

const ZONES: [&str; 8] = [
    "Australia/Adelaide",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "Australia/Eucla",
    "America/Los_Angeles",
];
const GAP_LIMIT: i64 = 300;
/// One bucket spanning every test time: the integral over exactly the range asked for.
const WHOLE: i64 = 1 << 40;

fn day_len(d: NaiveDate, tz: Tz) -> i64 {
    let (s, e) = local_day_range(d, tz);
    e - s
}

/// A day of `year` in `tz`: half the time one whose length is not 24 hours (a DST change),
/// where the zone has one.
fn pick_day(tz: Tz, year: i32, nth: usize, dst: bool) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| d.year() == year).collect();
    let odd: Vec<NaiveDate> = days
        .iter()
        .copied()
        .filter(|d| day_len(*d, tz) != 24 * HOUR)
        .collect();
    if dst && !odd.is_empty() {
        odd[nth % odd.len()]
    } else {
        days[nth % days.len()]
    }
}

/// Power every minute (at `jitter` seconds past it, so no point sits on a midnight) from two
/// hours before `a` to two hours after `b`, without the points inside `missing`.
fn minute_points(
    a: i64,
    b: i64,
    jitter: i64,
    seed: u64,
    missing: Option<(i64, i64)>,
) -> Vec<Sample> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    let mut t = a - 2 * HOUR + jitter;
    while t < b + 2 * HOUR {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = (x % 9000) as f64 + 500.0 * ((t % 86_400) as f64 / 86_400.0);
        if !missing.is_some_and(|(s, e)| t >= s && t < e) {
            out.push(Sample::new(t, w));
        }
        t += 60;
    }
    out
}

fn energy_in(samples: &[Sample], s: i64, e: i64) -> f64 {
    integrate(samples, s, e, WHOLE, GAP_LIMIT).total_wh()
}

/// Sum of the 5-minute slices (each cut from the same curve) whose start is in `[s, e)`.
fn five_minute_sum(fine: &Integration, s: i64, e: i64) -> (f64, i64) {
    fine.buckets
        .iter()
        .filter(|b| b.start >= s && b.start < e)
        .fold((0.0, 0), |(wh, c), b| (wh + b.wh, c + b.covered))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn each_local_day_is_the_energy_between_its_midnights(
        zone in prop::sample::select(ZONES.to_vec()),
        year in 2016i32..2030,
        nth in 0usize..400,
        dst in any::<bool>(),
        days in 1u64..4,
        jitter in 0i64..60,
        seed in any::<u64>(),
        gap in prop::option::of((-180i64..180, 6i64..400)),
    ) {
        let tz: Tz = zone.parse().unwrap();
        let first = pick_day(tz, year, nth, dst);
        let last = first + chrono::Days::new(days - 1);
        let (a, b) = (local_day_range(first, tz).0, local_day_range(last, tz).1);
        // A gap of `len` minutes starting `at` minutes from the first day's end (its midnight).
        let midnight = local_day_range(first, tz).1;
        let missing = gap.map(|(at, len)| (midnight + at * 60, midnight + (at + len) * 60));
        let samples = minute_points(a, b, jitter, seed, missing);

        let slice = day_slice(a, b, tz);
        prop_assert_eq!(HOUR % slice, 0);
        let sliced = integrate(&samples, a, b, slice, GAP_LIMIT);
        let fine = integrate(&samples, a, b, FIVE_MIN, GAP_LIMIT);
        let periods = group_by_local_day(&sliced, tz);
        let dates: Vec<NaiveDate> = first.iter_days().take(days as usize).collect();
        prop_assert_eq!(periods.iter().map(|p| p.start).collect::<Vec<_>>(), dates);

        for p in &periods {
            let (s, e) = local_day_range(p.start, tz);
            let (five, covered) = five_minute_sum(&fine, s, e);
            prop_assert!(close(p.wh, five, 1e-9), "{} {}: {} vs 5-minute slices {}", zone, p.start, p.wh, five);
            prop_assert!(close(p.wh, energy_in(&samples, s, e), 1e-9), "{} {}", zone, p.start);
            prop_assert_eq!(p.expected_hours(), (e - s) as f64 / HOUR as f64);
            prop_assert_eq!(p.hours(), p.expected_hours());
            // Complete exactly when data covers every second between its midnights.
            prop_assert_eq!(p.complete, covered == e - s, "{} {} covered {} of {}", zone, p.start, covered, e - s);
            if let Some((gs, ge)) = missing {
                // Missing minutes longer than the limit that reach into the day leave it
                // incomplete, on both sides of a midnight they cross.
                if ge - gs > GAP_LIMIT && gs < e && ge > s {
                    prop_assert!(!p.complete, "{} {} has a gap", zone, p.start);
                }
            }
        }

        // Days add up to the whole range and to their months.
        let total = energy_in(&samples, a, b);
        prop_assert!(close(periods.iter().map(|p| p.wh).sum::<f64>(), total, 1e-9));
        let months = group_by_local_month(&sliced, tz);
        prop_assert!(close(months.iter().map(|m| m.wh).sum::<f64>(), total, 1e-9));
        for m in &months {
            let of_month: f64 = periods
                .iter()
                .filter(|p| p.start.year() == m.start.year() && p.start.month() == m.start.month())
                .map(|p| p.wh)
                .sum();
            prop_assert!(close(m.wh, of_month, 1e-9), "month {}", m.start);
        }
    }

    /// A month of slices is the sum of its exact days, complete when they all are.
    #[test]
    fn a_whole_month_is_its_days(
        zone in prop::sample::select(ZONES.to_vec()),
        year in 2016i32..2030,
        month in 1u32..=12,
        watts in 1.0f64..10_000.0,
    ) {
        let tz: Tz = zone.parse().unwrap();
        let (a, b) = pwsync_energy::local::month_range(year, month, tz).unwrap();
        let samples: Vec<Sample> = (a - 120..=b + 120).step_by(60).map(|t| Sample::new(t + 7, watts)).collect();
        let sliced = integrate(&samples, a, b, day_slice(a, b, tz), GAP_LIMIT);
        let months = group_by_local_month(&sliced, tz);
        prop_assert_eq!(months.len(), 1);
        prop_assert!(months[0].complete);
        prop_assert_eq!(months[0].expected_hours(), (b - a) as f64 / HOUR as f64);
        prop_assert!(close(months[0].wh, watts * (b - a) as f64 / HOUR as f64, 1e-9));
        let days = group_by_local_day(&sliced, tz);
        prop_assert!(days.iter().all(|d| d.complete));
        prop_assert!(close(days.iter().map(|d| d.wh).sum::<f64>(), months[0].wh, 1e-9));
    }
}

/// The days of a DST change in each zone with one: exact lengths, energy of constant power.
#[test]
fn dst_days_have_their_real_length_in_every_zone() {
    let cases = [
        ("Australia/Adelaide", "2025-04-06", 25.0),
        ("Australia/Adelaide", "2025-10-05", 23.0),
        ("America/St_Johns", "2025-03-09", 23.0),
        ("America/St_Johns", "2025-11-02", 25.0),
        ("Pacific/Chatham", "2025-04-06", 25.0),
        ("Pacific/Chatham", "2025-09-28", 23.0),
        ("Australia/Lord_Howe", "2025-04-06", 24.5),
        ("Australia/Lord_Howe", "2025-10-05", 23.5),
        ("America/Los_Angeles", "2025-03-09", 23.0),
        ("America/Los_Angeles", "2025-11-02", 25.0),
    ];
    for (zone, day, hours) in cases {
        let tz: Tz = zone.parse().unwrap();
        let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let (a, b) = local_day_range(d, tz);
        let samples: Vec<Sample> = (a - 600..=b + 600)
            .step_by(60)
            .map(|t| Sample::new(t + 13, 1000.0))
            .collect();
        let sliced = integrate(&samples, a, b, day_slice(a, b, tz), GAP_LIMIT);
        let days = group_by_local_day(&sliced, tz);
        assert_eq!(days.len(), 1, "{zone} {day}");
        assert_eq!(days[0].expected_hours(), hours, "{zone} {day}");
        assert!(days[0].complete, "{zone} {day}");
        assert!(
            close(days[0].wh, 1000.0 * hours, 1e-9),
            "{zone} {day}: {}",
            days[0].wh
        );
    }
}
