//! Properties of `integrate`: an exact partition with a gap policy.

mod common;

use chrono_tz::Tz;
use common::{close, series};
use proptest::prelude::*;
use pwsync_energy::local::{group_by_local_day, local_day_range};
use pwsync_energy::{integrate, join_chunks, Integration, Neighbours, Sample, HOUR};

/// One bucket spanning every test time: the integral over the whole range.
const WHOLE: i64 = 1 << 40;

fn bucket_size() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(60),
        Just(300),
        Just(900),
        Just(HOUR),
        Just(86_400),
        1i64..10_000
    ]
}

/// Trapezoids of consecutive distinct times (the later of equal times), gaps excluded,
/// watts clamped at 0: the integral as the spec defines it, computed independently.
fn reference_wh(samples: &[Sample], gap_limit: i64) -> f64 {
    let mut pts: Vec<Sample> = Vec::new();
    for s in samples {
        match pts.last_mut() {
            Some(p) if p.t == s.t => *p = *s,
            _ => pts.push(*s),
        }
    }
    pts.windows(2)
        .filter(|w| w[1].t - w[0].t <= gap_limit)
        .map(|w| 0.5 * (w[0].w.max(0.0) + w[1].w.max(0.0)) * (w[1].t - w[0].t) as f64 / 3600.0)
        .sum()
}

proptest! {
    #[test]
    fn buckets_partition_the_integral(
        s in series(150),
        bucket in bucket_size(),
        gap in prop_oneof![Just(300i64), 60i64..3600],
        pad in (0i64..7200, 0i64..7200),
    ) {
        let (a, b) = (s[0].t - pad.0, s.last().unwrap().t + 1 + pad.1);
        let r = integrate(&s, a, b, bucket, gap);
        let whole = integrate(&s, a, b, WHOLE, gap);
        prop_assert_eq!(whole.buckets.len(), 1);
        prop_assert!(close(r.total_wh(), whole.total_wh(), 1e-9));
        prop_assert!(close(r.total_wh(), reference_wh(&s, gap), 1e-9));
        // Every bucket overlapping the range is there, once, in order.
        let first = pwsync_energy::floor_to(a, bucket);
        prop_assert_eq!(r.buckets[0].start, first);
        for (i, bk) in r.buckets.iter().enumerate() {
            prop_assert_eq!(bk.start, first + i as i64 * bucket);
            prop_assert!(bk.covered >= 0 && bk.covered <= bucket);
        }
        prop_assert!(r.buckets.last().unwrap().start + bucket >= b);
    }

    #[test]
    fn chunking_does_not_change_the_result(
        s in series(150),
        gap in prop_oneof![Just(300i64), 60i64..3600],
        cut in 0.0f64..1.0,
    ) {
        let (a, b) = (pwsync_energy::floor_hour(s[0].t), s.last().unwrap().t + 1);
        let m = a + ((b - a) as f64 * cut) as i64;
        // Each chunk gets its boundary samples: the last before it and the first at or after its end.
        let right_from = s.iter().rposition(|x| x.t < m)
            .map(|i| s.iter().position(|x| x.t == s[i].t).unwrap()).unwrap_or(0);
        let left_to = s.iter().position(|x| x.t >= m)
            .map(|i| s.iter().rposition(|x| x.t == s[i].t).unwrap() + 1).unwrap_or(s.len());
        let full = integrate(&s, a, b, HOUR, gap);
        let left = integrate(&s[..left_to], a, m, HOUR, gap);
        let right = integrate(&s[right_from..], m, b, HOUR, gap);
        for bk in &full.buckets {
            let part = |r: &pwsync_energy::Integration| {
                r.buckets.iter().find(|x| x.start == bk.start).map(|x| (x.wh, x.covered)).unwrap_or((0.0, 0))
            };
            let (l, r) = (part(&left), part(&right));
            prop_assert!(close(bk.wh, l.0 + r.0, 1e-9), "bucket {}: {} vs {} + {}", bk.start, bk.wh, l.0, r.0);
            prop_assert_eq!(bk.covered, l.1 + r.1);
        }
        let gap_secs = |r: &pwsync_energy::Integration| r.gaps.iter().map(|g| g.seconds()).sum::<i64>();
        prop_assert_eq!(gap_secs(&full), gap_secs(&left) + gap_secs(&right));
    }

    #[test]
    fn a_gap_never_carries_energy(
        s in series(150),
        gap in prop_oneof![Just(300i64), 60i64..3600],
        bucket in bucket_size(),
    ) {
        let (a, b) = (s[0].t, s.last().unwrap().t + 1);
        let r = integrate(&s, a, b, bucket, gap);
        for g in &r.gaps {
            prop_assert!(g.seconds() > 0);
            // Nothing inside the gap, at any bucket size.
            let inside = integrate(&s, g.start, g.end, bucket, gap);
            prop_assert_eq!(inside.total_wh(), 0.0);
            prop_assert!(inside.buckets.iter().all(|x| x.covered == 0));
        }
        // Gaps and covered seconds account for every second between the first and last sample.
        let covered: i64 = r.buckets.iter().map(|x| x.covered).sum();
        let gaps: i64 = r.gaps.iter().map(|g| g.seconds()).sum();
        prop_assert_eq!(covered + gaps, s.last().unwrap().t - s[0].t);
        for w in r.gaps.windows(2) {
            prop_assert!(w[0].end < w[1].start);
        }
    }

    #[test]
    fn no_bucket_exceeds_max_power(
        s in series(150),
        gap in prop_oneof![Just(300i64), 60i64..3600],
        bucket in bucket_size(),
    ) {
        let max_w = s.iter().map(|x| x.w).fold(0.0f64, f64::max);
        let r = integrate(&s, s[0].t - 3600, s.last().unwrap().t + 3600, bucket, gap);
        for bk in &r.buckets {
            prop_assert!(bk.wh >= 0.0);
            // Energy only where there is data: at most max power over the covered seconds.
            prop_assert!(bk.wh <= max_w * bk.covered as f64 / 3600.0 * (1.0 + 1e-12) + 1e-9);
            prop_assert!(bk.wh <= max_w * bucket as f64 / 3600.0 + 1e-9);
        }
    }

    #[test]
    fn dst_days_hold_their_real_number_of_hours(
        zone in prop::sample::select(vec!["America/Los_Angeles", "Europe/Berlin", "Australia/Sydney"]),
        day in 0u64..(9 * 365),
        watts in 1.0f64..10_000.0,
    ) {
        let tz: Tz = zone.parse().unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(day);
        let (a, b) = local_day_range(date, tz);
        let s: Vec<Sample> = (a - 120..=b + 120).step_by(60).map(|t| Sample::new(t, watts)).collect();
        let r = integrate(&s, a, b, HOUR, 300);
        let hours = ((b - a) / HOUR) as usize;
        prop_assert!([23, 24, 25].contains(&hours));
        prop_assert_eq!(r.buckets.len(), hours);
        let days = group_by_local_day(&r, tz);
        prop_assert_eq!(days.len(), 1);
        prop_assert_eq!(days[0].start, date);
        prop_assert!(days[0].complete);
        prop_assert_eq!(days[0].slices as usize, hours);
        prop_assert!(close(days[0].wh, watts * hours as f64, 1e-12));
    }
}

/// Chunk boundaries inside `(a, b)`: some anywhere, some in the middle of a step longer than the
/// gap limit (a gap across the boundary), some on a sample.
fn cuts(s: &[Sample], a: i64, b: i64, gap: i64, picks: &[(u8, f64)]) -> Vec<i64> {
    let long: Vec<(i64, i64)> = s
        .windows(2)
        .filter(|w| w[1].t - w[0].t > gap)
        .map(|w| (w[0].t, w[1].t))
        .collect();
    let mut out: Vec<i64> = picks
        .iter()
        .map(|&(kind, x)| match kind {
            0 if !long.is_empty() => {
                let (l, r) = long[(x * long.len() as f64) as usize % long.len()];
                l + ((r - l) as f64 * x.fract().max(0.01)) as i64
            }
            1 => s[(x * s.len() as f64) as usize % s.len()].t,
            _ => a + ((b - a) as f64 * x) as i64,
        })
        .filter(|&c| c > a && c < b)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// What `InfluxClient::energy` does: each chunk reads `gap` seconds past its edges, the points
    /// just outside the range are looked up, and `join_chunks` puts the parts together.
    #[test]
    fn gaps_and_energy_do_not_depend_on_chunking(
        s in series(150),
        gap in prop_oneof![Just(300i64), 60i64..3600],
        edges in (0.0f64..1.0, 0.0f64..1.0),
        picks in prop::collection::vec((0u8..3, 0.0f64..1.0), 0..12),
    ) {
        let (t0, t1) = (s[0].t, s.last().unwrap().t + 1);
        let span = (t1 - t0) as f64;
        // The range may start or end inside a gap, or outside the data.
        let a = t0 - 3600 + ((span + 3600.0) * edges.0 * 0.5) as i64;
        let b = (a + 1).max(t1 + 3600 - ((span + 3600.0) * edges.1 * 0.5) as i64);
        let mut bounds = vec![a];
        bounds.extend(cuts(&s, a, b, gap, &picks));
        bounds.push(b);
        let parts: Vec<Integration> = bounds
            .windows(2)
            .map(|c| {
                let window: Vec<Sample> =
                    s.iter().filter(|x| x.t >= c[0] - gap && x.t < c[1] + gap).copied().collect();
                integrate(&window, c[0], c[1], HOUR, gap)
            })
            .collect();
        let edges = Neighbours {
            before: s.iter().rev().map(|x| x.t).find(|&t| t < a),
            after: s.iter().map(|x| x.t).find(|&t| t >= b),
        };
        let joined = join_chunks(parts, a, b, HOUR, gap, edges);
        let whole = integrate(&s, a, b, HOUR, gap);
        prop_assert_eq!(&joined.gaps, &whole.gaps, "chunks at {:?}", bounds);
        prop_assert_eq!(joined.buckets.len(), whole.buckets.len());
        for (j, w) in joined.buckets.iter().zip(&whole.buckets) {
            prop_assert_eq!(j.start, w.start);
            prop_assert_eq!(j.covered, w.covered);
            prop_assert!(close(j.wh, w.wh, 1e-9), "bucket {}: {} vs {}", j.start, j.wh, w.wh);
        }
        prop_assert_eq!((joined.first, joined.last), (whole.first, whole.last));
    }
}
