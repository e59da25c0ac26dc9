//! Properties of the lifetime meter: never decreasing, and equal to the integral.

mod common;

use common::{close, minute_series, series};
use proptest::prelude::*;
use pwsync_energy::meter::{meter_at_hour_ends, LifetimeMeter};
use pwsync_energy::{floor_hour, integrate, Sample, HOUR};

const GAP: i64 = 300;

/// Batches as a poller sees them: consecutive chunks of `s`, each possibly re-sending the last
/// few samples of the previous one with revised values.
fn batches(s: &[Sample], cuts: &[(usize, usize, f64)]) -> Vec<Vec<Sample>> {
    let mut out = Vec::new();
    let mut from = 0;
    for &(len, overlap, revised) in cuts {
        if from >= s.len() {
            break;
        }
        let to = (from + len).min(s.len());
        let back = overlap.min(from);
        let mut b: Vec<Sample> = s[from - back..from]
            .iter()
            .map(|x| Sample::new(x.t, x.w * revised))
            .collect();
        b.extend_from_slice(&s[from..to]);
        out.push(b);
        from = to;
    }
    if from < s.len() {
        out.push(s[from..].to_vec());
    }
    out
}

fn cuts() -> impl Strategy<Value = Vec<(usize, usize, f64)>> {
    prop::collection::vec((0usize..40, 0usize..5, 0.0f64..3.0), 0..12)
}

proptest! {
    #[test]
    fn never_decreases_whatever_it_is_fed(
        polls in prop::collection::vec(prop::collection::vec((-600i64..4000, -100.0f64..9000.0), 0..30), 1..12),
        gap in 60i64..1000,
    ) {
        // Arbitrary, unsorted, revised and repeated samples around a moving "now".
        let mut m = LifetimeMeter::new();
        let mut now = 1_700_000_000;
        let mut prev = 0.0;
        for p in polls {
            let batch: Vec<Sample> = p.iter().map(|&(dt, w)| Sample::new(now + dt, w)).collect();
            let last_before = m.last().map(|s| s.t);
            let r = m.advance(&batch, gap);
            prop_assert!(r.kwh >= 0.0);
            prop_assert!(m.value_kwh() >= prev);
            prop_assert!(close(m.value_kwh() - prev, r.kwh, 1e-12));
            if let (Some(a), Some(b)) = (last_before, m.last().map(|s| s.t)) {
                prop_assert!(b >= a);
            }
            prev = m.value_kwh();
            now += 3000;
        }
    }

    #[test]
    fn equals_the_integral_however_it_is_polled(s in series(200), c in cuts()) {
        // Unique times: a repeated time already taken is a revision the meter ignores.
        let mut s = s;
        s.dedup_by_key(|x| x.t);
        let first = s[0].t;
        let mut m = LifetimeMeter::new();
        for b in batches(&s, &c) {
            m.advance(&b, GAP);
            let Some(t) = m.last().map(|x| x.t) else { continue };
            // The meter at a sample time t is the integral over [first, t), chunk- and poll-independent.
            let whole = integrate(&s, floor_hour(first), t, HOUR, GAP);
            prop_assert!(close(m.value_kwh(), whole.total_wh() / 1000.0, 1e-9),
                "at {}: meter {} vs integral {}", t, m.value_kwh(), whole.total_wh() / 1000.0);
        }
        prop_assert_eq!(m.last().map(|x| x.t), s.last().map(|x| x.t));
    }

    #[test]
    fn hour_end_states_are_what_the_live_meter_showed(s in minute_series(400), c in cuts()) {
        let first = s[0].t;
        let end = floor_hour(s.last().unwrap().t) + HOUR;
        let integ = integrate(&s, floor_hour(first), end, HOUR, GAP);
        let ends = meter_at_hour_ends(&integ, 0.0);
        prop_assert_eq!(ends.len(), integ.buckets.len());
        let mut m = LifetimeMeter::new();
        let mut it = ends.iter().peekable();
        for b in batches(&s, &c) {
            m.advance(&b, GAP);
            let Some(t) = m.last().map(|x| x.t) else { continue };
            // Every hour that ended at a sample the meter has just taken: same value.
            while let Some(&&(h, kwh)) = it.peek() {
                if h + HOUR > t { break; }
                if h + HOUR == t {
                    prop_assert!(close(m.value_kwh(), kwh, 1e-9), "hour {}: {} vs {}", h, m.value_kwh(), kwh);
                }
                it.next();
            }
        }
        // Sample by sample, the meter matches at every hour end that has a sample.
        let mut m1 = LifetimeMeter::new();
        for x in &s {
            m1.advance(std::slice::from_ref(x), GAP);
            if x.t > first && x.t % HOUR == 0 {
                let (_, kwh) = ends.iter().find(|e| e.0 + HOUR == x.t).unwrap();
                prop_assert!(close(m1.value_kwh(), *kwh, 1e-9));
            }
        }
        // After the last sample there is no data: the last hour end holds the final value.
        prop_assert!(close(ends.last().unwrap().1, m.value_kwh(), 1e-9));
    }
}
