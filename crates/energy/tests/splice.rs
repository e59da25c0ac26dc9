//! Properties of splice: for any chain and any new energy, written hours change by their new
//! energy, every other row keeps its change, and a second identical splice plans nothing.

mod common;

use proptest::prelude::*;
use pwsync_energy::splice::{
    apply_plan, apply_short_term, splice, splice_short_term, SpliceInput, SplicePlan, EPSILON,
};
use pwsync_energy::stats::short_term_out_of_step;
use pwsync_energy::{StatRow, FIVE_MIN, HOUR};
use std::collections::{BTreeMap, BTreeSet};

const T0: i64 = 1_735_689_600; // 2025-01-01T00:00Z
const TOL: f64 = 1e-6;

/// A change of one hour in a generated chain: mostly plausible, sometimes a spike or a fall.
fn change() -> impl Strategy<Value = f64> {
    prop_oneof![8 => 0.0f64..5.0, 1 => 20.0f64..200.0, 1 => -50.0f64..0.0, 1 => Just(0.0)]
}

/// An existing hourly chain with holes, spikes, negative hours, odd states and rare NULL sums.
fn chain() -> impl Strategy<Value = Vec<StatRow>> {
    (
        prop_oneof![Just(0.0), 0.0f64..100_000.0],
        prop::collection::vec(
            (
                prop::bool::weighted(0.8),
                change(),
                0u8..4,
                prop::bool::weighted(0.03),
                0.0f64..1e4,
            ),
            0..40,
        ),
    )
        .prop_map(|(base, hours)| {
            let mut sum = base;
            let mut rows = Vec::new();
            for (i, (present, c, state_kind, null_sum, other)) in hours.into_iter().enumerate() {
                sum += c;
                if !present {
                    continue;
                }
                rows.push(StatRow {
                    start: T0 + i as i64 * HOUR,
                    state: match state_kind {
                        0 => None,
                        1 => Some(other),
                        _ => Some(sum),
                    },
                    sum: if null_sum { None } else { Some(sum) },
                });
            }
            rows
        })
}

/// New energy for any set of hours around the chain, states for some of them, the hours the
/// source covers only in part, and the flag.
#[allow(clippy::type_complexity)]
fn new_energy() -> impl Strategy<Value = (Vec<(i64, f64)>, Vec<f64>, Vec<i64>, bool)> {
    (
        prop::collection::vec(
            (
                -3i64..43,
                prop_oneof![4 => 0.0f64..5.0, 1 => Just(0.0)],
                prop::bool::weighted(0.1),
            ),
            0..30,
        ),
        prop::collection::vec(0.0f64..1e5, 0..30),
        any::<bool>(),
    )
        .prop_map(|(e, mut states, overwrite)| {
            let energy: Vec<(i64, f64)> = e.iter().map(|&(h, k, _)| (T0 + h * HOUR, k)).collect();
            let incomplete = e.iter().filter(|x| x.2).map(|x| T0 + x.0 * HOUR).collect();
            states.truncate(energy.len());
            (energy, states, incomplete, overwrite)
        })
}

fn sum_before(rows: &[StatRow], t: i64) -> f64 {
    rows.iter()
        .rev()
        .filter(|r| r.start < t)
        .find_map(|r| r.sum)
        .unwrap_or(0.0)
}

/// The hours the spec says are written, with their energy and state (last entry wins): with
/// overwrite every new hour, otherwise those without a row; a hole between two rows only together
/// with the row after it (without overwrite, when every hour of that stretch is new and complete).
fn written_set(
    existing: &[StatRow],
    energy: &[(i64, f64)],
    states: &[f64],
    incomplete: &[i64],
    overwrite: bool,
) -> BTreeMap<i64, (f64, Option<f64>)> {
    let mut new = BTreeMap::new();
    for (i, &(h, k)) in energy.iter().enumerate() {
        new.insert(h, (k, states.get(i).copied()));
    }
    let rows: BTreeSet<i64> = existing
        .iter()
        .filter(|r| r.sum.is_some())
        .map(|r| r.start)
        .collect();
    let mut w: BTreeMap<i64, (f64, Option<f64>)> = new
        .iter()
        .filter(|(h, _)| overwrite || !rows.contains(h))
        .map(|(h, v)| (*h, *v))
        .collect();
    let rows: Vec<i64> = rows.into_iter().collect();
    for pair in rows.windows(2) {
        let (p, r) = (pair[0], pair[1]);
        let hole: Vec<i64> = (p + HOUR..r).step_by(HOUR as usize).collect();
        if !hole.iter().any(|h| new.contains_key(h)) {
            continue;
        }
        let fill = if overwrite {
            w.contains_key(&r)
        } else {
            hole.iter()
                .chain([&r])
                .all(|h| new.contains_key(h) && !incomplete.contains(h))
        };
        if fill {
            w.insert(r, new[&r]);
        } else {
            for h in &hole {
                w.remove(h);
            }
        }
    }
    w
}

fn check_plan(
    existing: &[StatRow],
    energy: &[(i64, f64)],
    states: &[f64],
    incomplete: &[i64],
    overwrite: bool,
    plan: &SplicePlan,
) -> Result<Vec<StatRow>, TestCaseError> {
    let w = written_set(existing, energy, states, incomplete, overwrite);
    let distinct: BTreeSet<i64> = energy.iter().map(|e| e.0).collect();
    let after = apply_plan(existing, plan);
    let at = |t: i64| after.iter().find(|r| r.start == t).copied();

    // Counts.
    prop_assert_eq!(plan.written, plan.rows.len());
    prop_assert_eq!(plan.written + plan.unchanged, w.len());
    let kept = distinct
        .iter()
        .filter(|h| {
            !w.contains_key(h) && existing.iter().any(|r| r.start == **h && r.sum.is_some())
        })
        .count();
    prop_assert_eq!(plan.kept_existing, kept);

    // No row invented or lost: existing hours plus written hours.
    let want: BTreeSet<i64> = existing
        .iter()
        .map(|r| r.start)
        .chain(w.keys().copied())
        .collect();
    let got: BTreeSet<i64> = after.iter().map(|r| r.start).collect();
    prop_assert_eq!(want, got);

    // (a) + (c): each written hour changes by its new energy, from the row before (0 if none),
    // and carries its state (the new sum when none was given).
    for (&h, &(kwh, state)) in &w {
        let r = at(h).unwrap();
        let sum = r.sum.unwrap();
        prop_assert!(
            (sum - sum_before(&after, h) - kwh).abs() < TOL,
            "hour {}: change {} want {}",
            (h - T0) / HOUR,
            sum - sum_before(&after, h),
            kwh
        );
        prop_assert!((r.state.unwrap() - state.unwrap_or(sum)).abs() < TOL);
    }

    // (b): every other existing row keeps its change against the previous existing row.
    let first_written = w.keys().next().copied().unwrap_or(i64::MAX);
    for old in existing.iter().filter(|r| !w.contains_key(&r.start)) {
        let new = at(old.start).unwrap();
        prop_assert_eq!(new.state, old.state);
        match old.sum {
            None => prop_assert_eq!(new.sum, None),
            Some(s) => {
                let before = s - sum_before(existing, old.start);
                let now = new.sum.unwrap() - sum_before(&after, old.start);
                prop_assert!(
                    (before - now).abs() < TOL,
                    "row {}: change {} became {}",
                    (old.start - T0) / HOUR,
                    before,
                    now
                );
            }
        }
        if old.start < first_written {
            prop_assert_eq!(new, *old, "rows before the written set are untouched");
        }
    }

    // (d): nothing emitted that changes nothing.
    for s in &plan.shifts {
        prop_assert!(s.delta.abs() >= EPSILON);
    }
    let shifted = apply_plan(
        existing,
        &SplicePlan {
            rows: vec![],
            ..plan.clone()
        },
    );
    for r in &plan.rows {
        if let Some(o) = shifted.iter().find(|o| o.start == r.start) {
            let same = |a: Option<f64>, b: Option<f64>| matches!((a, b), (Some(x), Some(y)) if (x - y).abs() < EPSILON);
            prop_assert!(
                !(same(o.sum, r.sum) && same(o.state, r.state)),
                "no-op row emitted"
            );
        }
    }

    // (e): shifts ascending, each right after a written hour, at most one per written stretch.
    for p in plan.shifts.windows(2) {
        prop_assert!(p[0].from < p[1].from);
    }
    for s in &plan.shifts {
        prop_assert!(
            w.contains_key(&(s.from - HOUR)),
            "shift at {} not after a written hour",
            s.from
        );
    }
    let timeline: BTreeSet<i64> = existing
        .iter()
        .filter(|r| r.sum.is_some())
        .map(|r| r.start)
        .chain(w.keys().copied())
        .collect();
    let mut stretches = 0;
    let mut in_stretch = false;
    for t in timeline {
        let written = w.contains_key(&t);
        if written && !in_stretch {
            stretches += 1;
        }
        in_stretch = written;
    }
    prop_assert!(plan.shifts.len() <= stretches);
    Ok(after)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn splice_writes_new_energy_and_keeps_every_other_change(
        existing in chain(),
        (energy, states, incomplete, overwrite) in new_energy(),
    ) {
        let input = SpliceInput { existing: &existing, energy: &energy, states: &states, incomplete: &incomplete, overwrite };
        let plan = splice(&input);
        let after = check_plan(&existing, &energy, &states, &incomplete, overwrite, &plan)?;

        // Rows after the last new hour may be left out, but for the first one with a sum (it
        // may close a hole): the plan does the same to them.
        if let Some(last) = energy.iter().map(|e| e.0).max() {
            let next = existing.iter().find(|r| r.start > last && r.sum.is_some()).map(|r| r.start);
            let head: Vec<StatRow> = existing
                .iter()
                .filter(|r| r.start <= last || Some(r.start) == next)
                .copied()
                .collect();
            let partial = splice(&SpliceInput { existing: &head, ..input });
            let via_head = apply_plan(&existing, &partial);
            prop_assert_eq!(via_head.len(), after.len());
            for (x, y) in via_head.iter().zip(&after) {
                prop_assert_eq!(x.start, y.start);
                prop_assert_eq!(x.state, y.state);
                prop_assert!(match (x.sum, y.sum) {
                    (Some(a), Some(b)) => (a - b).abs() < TOL,
                    (a, b) => a == b,
                }, "row {} differs: {:?} vs {:?}", (x.start - T0) / HOUR, x, y);
            }
        }

        // Idempotence: the same splice on the result plans nothing.
        let again = splice(&SpliceInput { existing: &after, ..input });
        prop_assert!(again.is_empty(), "second splice not empty: {:?}", again);
        prop_assert_eq!(again.written, 0);
    }

    #[test]
    fn a_contiguous_overwrite_has_one_shift_at_its_end(
        changes in prop::collection::vec(0.0f64..5.0, 2..40),
        spike in 0.0f64..500.0,
        range in (0usize..40, 1usize..10),
        new in prop::collection::vec(0.0f64..5.0, 10),
    ) {
        let n = changes.len();
        let mut sum = 0.0;
        let mut existing: Vec<StatRow> = changes.iter().enumerate().map(|(i, c)| {
            sum += c;
            StatRow { start: T0 + i as i64 * HOUR, state: Some(sum), sum: Some(sum) }
        }).collect();
        let a = range.0 % n;
        let b = (a + range.1).min(n + 3);
        // A spike inside the range, as an outage's energy dumped into one hour.
        for r in existing.iter_mut().skip(a) {
            r.sum = r.sum.map(|s| s + spike);
        }
        let energy: Vec<(i64, f64)> = (a..b).map(|i| (T0 + i as i64 * HOUR, new[i - a])).collect();
        let plan = splice(&SpliceInput { existing: &existing, energy: &energy, states: &[], incomplete: &[], overwrite: true });
        check_plan(&existing, &energy, &[], &[], true, &plan)?;
        prop_assert!(plan.shifts.len() <= 1);
        if let Some(s) = plan.shifts.first() {
            prop_assert_eq!(s.from, T0 + b as i64 * HOUR);
        }
    }

    #[test]
    fn five_minute_rows_stay_in_step_with_the_hours(
        changes in prop::collection::vec(0.0f64..5.0, 1..30),
        base in 0.0f64..1000.0,
        drop in prop::collection::vec(prop::bool::weighted(0.15), 12 * 31),
        (energy, states, incomplete, overwrite) in new_energy(),
    ) {
        // A healthy chain whose 5-minute rows (for every hour plus the hour HA is compiling)
        // end each hour on the hourly row's values.
        let n = changes.len();
        let mut hourly = Vec::new();
        let mut short = Vec::new();
        let mut sum = base;
        for i in 0..=n {
            let c = changes.get(i).copied().unwrap_or(1.0);
            let h = T0 + i as i64 * HOUR;
            for k in 0..12 {
                let s = sum + c * (k + 1) as f64 / 12.0;
                if !drop[i * 12 + k] {
                    short.push(StatRow { start: h + k as i64 * FIVE_MIN, state: Some(s + 7.0), sum: Some(s) });
                }
            }
            sum += c;
            if i < n {
                hourly.push(StatRow { start: h, state: Some(sum + 7.0), sum: Some(sum) });
            }
        }
        let energy: Vec<(i64, f64)> = energy.into_iter().filter(|e| e.0 < T0 + n as i64 * HOUR).collect();
        let states = &states[..states.len().min(energy.len())];
        let plan = splice(&SpliceInput { existing: &hourly, energy: &energy, states, incomplete: &incomplete, overwrite });
        let rows = splice_short_term(&short, &hourly, &plan);
        let after_h = apply_plan(&hourly, &plan);
        let after_s = apply_short_term(&short, &plan.shifts, &rows);

        // Same 5-minute rows, none invented; each hour's last one equals the hour.
        prop_assert_eq!(after_s.len(), short.len());
        prop_assert!(short_term_out_of_step(&after_h, &after_s, TOL).is_empty());
        let emitted: BTreeSet<i64> = plan.rows.iter().map(|r| r.start).collect();
        let in_emitted = |t: i64| emitted.contains(&pwsync_energy::floor_hour(t));
        for r in &rows {
            prop_assert!(in_emitted(r.start));
        }
        // Inside a rewritten hour the 5-minute sums rise to the hour's sum.
        for h in &plan.rows {
            let inside: Vec<f64> = after_s.iter().filter(|r| pwsync_energy::floor_hour(r.start) == h.start)
                .map(|r| r.sum.unwrap()).collect();
            for p in inside.windows(2) {
                prop_assert!(p[0] <= p[1] + TOL);
            }
            if let Some(last) = inside.last() {
                prop_assert!((last - h.sum.unwrap()).abs() < TOL);
            }
        }
        // Adjacent 5-minute rows keep their change unless the second was rewritten, or the first
        // was rewritten without being its hour's last: HA continues exactly where it was.
        for p in short.windows(2) {
            let (a, b) = (p[0], p[1]);
            if b.start - a.start != FIVE_MIN || in_emitted(b.start) {
                continue;
            }
            if in_emitted(a.start) && (a.start + FIVE_MIN) % HOUR != 0 {
                continue;
            }
            let na = after_s.iter().find(|r| r.start == a.start).unwrap();
            let nb = after_s.iter().find(|r| r.start == b.start).unwrap();
            let before = b.sum.unwrap() - a.sum.unwrap();
            let now = nb.sum.unwrap() - na.sum.unwrap();
            prop_assert!((before - now).abs() < TOL, "5-minute change at {} moved: {} -> {}", b.start, before, now);
        }
    }
}
