//! Properties of local days: they tile the time line, DST days have 23 or 25 hours, grouping
//! loses no hour.

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;
use pwsync_energy::local::{
    group_by_local_day, group_by_local_month, hours_in, local_date, local_day_range, month_range,
    HourRange,
};
use pwsync_energy::{floor_hour, Bucket, Integration, HOUR};

const DST_ZONES: [&str; 3] = ["America/Los_Angeles", "Europe/Berlin", "Australia/Sydney"];
/// Zones with odd offsets and odd DST: half hours, a 30-minute DST shift, southern hemisphere,
/// midnight transitions in their history.
const ODD_ZONES: [&str; 8] = [
    "Asia/Kolkata",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "America/Havana",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "UTC",
];

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(
        DST_ZONES
            .iter()
            .chain(ODD_ZONES.iter())
            .copied()
            .collect::<Vec<_>>(),
    )
    .prop_map(|z| z.parse().unwrap())
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0u64..(20 * 366))
        .prop_map(|d| NaiveDate::from_ymd_opt(2010, 1, 1).unwrap() + chrono::Days::new(d))
}

#[test]
fn dst_zone_days_are_23_24_or_25_hours_with_one_short_and_one_long_day_a_year() {
    for zone in DST_ZONES {
        let tz: Tz = zone.parse().unwrap();
        for year in 2019..=2027 {
            let mut d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
            let (mut short, mut long) = (0, 0);
            while d.year() == year {
                let (s, e) = local_day_range(d, tz);
                assert_eq!((e - s) % HOUR, 0, "{zone} {d}");
                match (e - s) / HOUR {
                    23 => short += 1,
                    24 => {}
                    25 => long += 1,
                    h => panic!("{zone} {d}: {h} hours"),
                }
                assert_eq!(
                    local_day_range(d.succ_opt().unwrap(), tz).0,
                    e,
                    "{zone} {d}: days tile"
                );
                d = d.succ_opt().unwrap();
            }
            assert_eq!((short, long), (1, 1), "{zone} {year}");
        }
    }
}

/// Every day of twenty years in every test zone (DST days are rare; random dates miss them).
#[test]
fn every_day_starts_at_its_first_instant_and_days_tile() {
    for zone in DST_ZONES.iter().chain(ODD_ZONES.iter()) {
        let tz: Tz = zone.parse().unwrap();
        let mut d = NaiveDate::from_ymd_opt(2010, 1, 1).unwrap();
        let mut prev_end = local_day_range(d.pred_opt().unwrap(), tz).1;
        while d.year() < 2030 {
            let (s, e) = local_day_range(d, tz);
            assert_eq!(s, prev_end, "{zone} {d}: days tile");
            assert!(
                e - s >= 22 * HOUR && e - s <= 26 * HOUR,
                "{zone} {d}: {} s",
                e - s
            );
            let at = |t: i64| {
                chrono::DateTime::from_timestamp(t, 0)
                    .unwrap()
                    .with_timezone(&tz)
            };
            // At midnight (its first occurrence if it repeats), or at the DST jump if midnight
            // did not exist: the second before is still the day before.
            assert_eq!(at(s).date_naive(), d, "{zone} {d}");
            assert!(at(s - 1).date_naive() < d, "{zone} {d}: starts late");
            if at(s).time() != chrono::NaiveTime::MIN {
                assert!(tz
                    .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                    .single()
                    .is_none());
            }
            assert_eq!(local_date(s, tz), d);
            assert_eq!(local_date(e - 1, tz), d);
            prev_end = e;
            d = d.succ_opt().unwrap();
        }
    }
}

proptest! {
    #[test]
    fn every_instant_belongs_to_exactly_one_local_day(
        tz in zone(),
        t in 1_262_304_000i64..1_893_456_000,
        hourly in any::<bool>(),
    ) {
        let t = if hourly { floor_hour(t) } else { t };
        let d = local_date(t, tz);
        let (s, e) = local_day_range(d, tz);
        prop_assert!(s <= t && t < e, "{} not in its day {} [{}, {})", t, d, s, e);
        // Neighbouring days touch this one and do not contain t.
        prop_assert_eq!(local_day_range(d.pred_opt().unwrap(), tz).1, s);
        prop_assert_eq!(local_day_range(d.succ_opt().unwrap(), tz).0, e);
    }

    #[test]
    fn grouping_keeps_every_hour_and_its_energy(
        tz in zone(),
        start in 1_262_304_000i64..1_893_456_000,
        wh in prop::collection::vec((0.0f64..5000.0, prop::bool::weighted(0.95)), 1..(24 * 70)),
    ) {
        let start = floor_hour(start);
        let buckets: Vec<Bucket> = wh.iter().enumerate().map(|(i, &(w, full))| Bucket {
            start: start + i as i64 * HOUR,
            wh: w,
            covered: if full { HOUR } else { 1800 },
        }).collect();
        let total: f64 = buckets.iter().map(|b| b.wh).sum();
        let hours = Integration { bucket: HOUR, buckets: buckets.clone(), ..Default::default() };
        for periods in [group_by_local_day(&hours, tz), group_by_local_month(&hours, tz)] {
            prop_assert_eq!(periods.iter().map(|p| p.slices as usize).sum::<usize>(), buckets.len());
            prop_assert!((periods.iter().map(|p| p.wh).sum::<f64>() - total).abs() < 1e-6);
            for (i, p) in periods.iter().enumerate() {
                prop_assert!(p.slices <= p.expected_slices);
                let interior = i > 0 && i + 1 < periods.len();
                if interior {
                    prop_assert_eq!(p.slices, p.expected_slices, "interior period {} is whole", p.start);
                }
                if p.complete {
                    prop_assert_eq!(p.slices, p.expected_slices);
                }
            }
            for w in periods.windows(2) {
                prop_assert!(w[0].start < w[1].start);
            }
        }
        let days: Vec<NaiveDate> = buckets.iter().map(|b| local_date(b.start, tz)).collect();
        for p in group_by_local_day(&hours, tz) {
            let (s, e) = local_day_range(p.start, tz);
            prop_assert_eq!(p.expected_slices, hours_in(s, e));
            let mine: Vec<&Bucket> = buckets.iter().zip(&days).filter(|(_, d)| **d == p.start).map(|(b, _)| b).collect();
            prop_assert_eq!(mine.len(), p.slices as usize);
            let whole = mine.len() as u32 == p.expected_slices && mine.iter().all(|b| b.covered == HOUR);
            prop_assert_eq!(p.complete, whole, "day {}", p.start);
        }
    }

    #[test]
    fn months_tile_and_contain_their_days(tz in zone(), y in 2010i32..2030, m in 1u32..=12) {
        let (s, e) = month_range(y, m, tz).unwrap();
        let next = if m == 12 { month_range(y + 1, 1, tz) } else { month_range(y, m + 1, tz) }.unwrap();
        prop_assert_eq!(next.0, e);
        prop_assert_eq!(local_date(s, tz), NaiveDate::from_ymd_opt(y, m, 1).unwrap());
        prop_assert_eq!(local_date(e - 1, tz).month(), m);
    }

    #[test]
    fn an_hour_range_selects_local_hours(tz in zone(), d in date(), from in 0u32..24, len in 1u32..24) {
        let r = HourRange::new(from, (from + len).min(24)).unwrap();
        let (s, e) = local_day_range(d, tz);
        let hours: Vec<i64> = (floor_hour(s)..e).step_by(HOUR as usize).collect();
        let sel = r.filter(&hours, tz);
        for &h in &hours {
            let local = chrono::DateTime::from_timestamp(h, 0).unwrap().with_timezone(&tz);
            use chrono::Timelike;
            prop_assert_eq!(sel.contains(&h), local.hour() >= r.from && local.hour() < r.to);
        }
        prop_assert_eq!(r.to_string().parse::<HourRange>().unwrap(), r);
    }
}
