//! Filling holes without overwrite: for any chain HA could leave (hours without rows, the row
//! after each hole carrying none, part or all of the hole's energy) and any knowledge of the
//! source (complete, partial or unknown hours), a fill counts no hour twice and loses none.

use proptest::prelude::*;
use pwsync_energy::splice::{apply_plan, splice, SpliceInput};
use pwsync_energy::{StatRow, HOUR};
use std::collections::{BTreeMap, BTreeSet};

const T0: i64 = 1_735_689_600; // 2025-01-01T00:00Z
const TOL: f64 = 1e-6;
/// Hours of the chain before and after the range `[0, N)` written.
const LEAD: i64 = 3;
const TAIL: i64 = 3;

/// What the source knows about one hour.
#[derive(Debug, Clone, Copy)]
enum Known {
    Complete,
    /// Covered in part: the source's energy is this fraction of the true energy.
    Partial(f64),
    Unknown,
}

/// How much of a hole's energy the row after it carries (HA outage: all; skipped import: none).
#[derive(Debug, Clone, Copy)]
enum Carry {
    None,
    Part(f64),
    All,
}

#[derive(Debug, Clone)]
struct Case {
    /// True energy of each hour `-LEAD..n+TAIL` (index `h + LEAD`).
    truth: Vec<f64>,
    /// Whether HA has a row for the hour, and what a row after a hole carries.
    present: Vec<bool>,
    carry: Vec<Carry>,
    /// The source, for the range's hours `0..n`.
    known: Vec<Known>,
    base_sum: f64,
    meter0: f64,
    n: i64,
}

fn case() -> impl Strategy<Value = Case> {
    (1i64..36).prop_flat_map(|n| {
        let len = (n + LEAD + TAIL) as usize;
        (
            prop::collection::vec(prop_oneof![6 => 0.0f64..5.0, 1 => Just(0.0)], len),
            prop::collection::vec(prop::bool::weighted(0.7), len),
            prop::collection::vec(
                prop_oneof![
                    1 => Just(Carry::None),
                    1 => (0.05f64..0.95).prop_map(Carry::Part),
                    2 => Just(Carry::All)
                ],
                len,
            ),
            prop::collection::vec(
                prop_oneof![
                    8 => Just(Known::Complete),
                    1 => (0.1f64..0.9).prop_map(Known::Partial),
                    1 => Just(Known::Unknown)
                ],
                n as usize,
            ),
            prop_oneof![Just(0.0), 0.0f64..1000.0],
            0.0f64..50_000.0,
        )
            .prop_map(
                move |(truth, present, carry, known, base_sum, meter0)| Case {
                    truth,
                    present,
                    carry,
                    known,
                    base_sum,
                    meter0,
                    n,
                },
            )
    })
}

fn at(h: i64) -> i64 {
    T0 + h * HOUR
}

impl Case {
    fn truth(&self, h: i64) -> f64 {
        self.truth[(h + LEAD) as usize]
    }

    /// The source's energy of hour `h` (the truth outside the range).
    fn source_kwh(&self, h: i64) -> Option<f64> {
        if h < 0 || h >= self.n {
            return Some(self.truth(h));
        }
        match self.known[h as usize] {
            Known::Complete => Some(self.truth(h)),
            Known::Partial(f) => Some(f * self.truth(h)),
            Known::Unknown => None,
        }
    }

    /// The lifetime meter at the end of hour `h`: the source's energy so far, what the live
    /// sensor publishes and backfill writes as `state`.
    fn meter(&self, h: i64) -> f64 {
        self.meter0 + (-LEAD..=h).filter_map(|k| self.source_kwh(k)).sum::<f64>()
    }

    /// HA's chain: `state` is the live sensor's reading; `sum` grows by each hour's true energy,
    /// and a row after a hole by its own hour's plus what it carries of the hole.
    fn chain(&self) -> Vec<StatRow> {
        let mut rows = Vec::new();
        let mut sum = self.base_sum;
        let mut hole = 0.0;
        let mut started = false;
        for h in -LEAD..self.n + TAIL {
            let i = (h + LEAD) as usize;
            if !self.present[i] {
                if started {
                    hole += self.truth(h);
                }
                continue;
            }
            if started {
                sum += self.truth(h)
                    + match self.carry[i] {
                        Carry::None => 0.0,
                        Carry::Part(f) => f * hole,
                        Carry::All => hole,
                    };
            }
            started = true;
            hole = 0.0;
            rows.push(StatRow {
                start: at(h),
                state: Some(self.meter(h)),
                sum: Some(sum),
            });
        }
        rows
    }

    /// The source's energy for the range, its states (the meter), and its partial hours.
    fn source(&self) -> (Vec<(i64, f64)>, Vec<f64>, Vec<i64>) {
        let (mut energy, mut states, mut partial) = (Vec::new(), Vec::new(), Vec::new());
        for h in 0..self.n {
            let Some(e) = self.source_kwh(h) else {
                continue;
            };
            if matches!(self.known[h as usize], Known::Partial(_)) {
                partial.push(at(h));
            }
            energy.push((at(h), e));
            states.push(self.meter(h));
        }
        (energy, states, partial)
    }
}

fn change(rows: &BTreeMap<i64, StatRow>, t: i64) -> (Option<i64>, f64) {
    let prev = rows.range(..t).next_back().map(|(_, r)| r);
    let sum = rows[&t].sum.unwrap();
    (
        prev.map(|r| r.start),
        sum - prev.and_then(|r| r.sum).unwrap_or(0.0),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn a_fill_counts_no_hour_twice_and_loses_none(c in case()) {
        let chain = c.chain();
        let (energy, states, partial) = c.source();
        let input = SpliceInput {
            existing: &chain,
            energy: &energy,
            states: &states,
            incomplete: &partial,
            overwrite: false,
        };
        let plan = splice(&input);
        let before: BTreeMap<i64, StatRow> = chain.iter().map(|r| (r.start, *r)).collect();
        let after: BTreeMap<i64, StatRow> =
            apply_plan(&chain, &plan).into_iter().map(|r| (r.start, r)).collect();
        let source: BTreeMap<i64, f64> = energy.iter().copied().collect();
        let complete = |t: i64| source.contains_key(&t) && !partial.contains(&t);
        let in_range = |t: i64| t >= at(0) && t < at(c.n);

        // Which hours pwsync writes, by the rule: every hour of the source without a row outside
        // holes; a hole between two rows together with the row after it, when the source covers
        // all of them completely.
        let mut written: BTreeSet<i64> = source.keys().copied().filter(|t| !before.contains_key(t)).collect();
        let mut filled = 0;
        for pair in chain.windows(2) {
            let (p, r) = (pair[0].start, pair[1].start);
            let hole: Vec<i64> = (p + HOUR..r).step_by(HOUR as usize).collect();
            if !hole.iter().any(|t| source.contains_key(t)) {
                continue;
            }
            if hole.iter().chain([&r]).all(|&t| complete(t)) {
                written.insert(r);
                filled += 1;
            } else {
                for t in &hole {
                    written.remove(t);
                }
            }
        }
        prop_assert_eq!(plan.holes.iter().filter(|h| h.kept.is_none()).count(), filled);
        let rows_written: BTreeSet<i64> = plan.rows.iter().map(|r| r.start).collect();
        prop_assert!(rows_written.is_subset(&written), "{:?} not in {:?}", rows_written, written);
        let rows_now: BTreeSet<i64> = before.keys().chain(&written).copied().collect();
        prop_assert_eq!(after.keys().copied().collect::<BTreeSet<_>>(), rows_now);

        // No hour counted twice: every row pwsync did not write keeps its change over the same
        // hours as before.
        for (&t, old) in &before {
            if written.contains(&t) {
                // Loses none: a row pwsync replaced covered only hours pwsync writes now.
                let (prev, _) = change(&before, t);
                if let Some(p) = prev {
                    prop_assert!((p + HOUR..t).step_by(HOUR as usize).all(|h| written.contains(&h)),
                        "row {} replaced but its hole not filled", (t - T0) / HOUR);
                }
                continue;
            }
            let (prev_old, kwh_old) = change(&before, t);
            let (prev_new, kwh_new) = change(&after, t);
            // The chain's first row changes by its sum, HA's count since its first reading: the
            // hours written before it (history prepended) are none of its own.
            if prev_old.is_some() {
                prop_assert_eq!(prev_old, prev_new, "row {} now spans other hours", (t - T0) / HOUR);
            }
            prop_assert!((kwh_old - kwh_new).abs() < TOL);
            prop_assert_eq!(after[&t].state, old.state);
        }

        // The chain's total over the range is HA's energy outside the written stretches plus the
        // source's energy inside them.
        let total = |rows: &BTreeMap<i64, StatRow>| {
            let base = rows.range(..at(0)).next_back().and_then(|(_, r)| r.sum).unwrap_or(0.0);
            rows.range(..at(c.n)).next_back().and_then(|(_, r)| r.sum).unwrap_or(0.0) - base
        };
        let ha_outside: f64 = before.keys().filter(|&&t| in_range(t) && !written.contains(&t))
            .map(|&t| change(&before, t).1).sum();
        let source_inside: f64 = written.iter().filter(|&&t| in_range(t)).map(|t| source[t]).sum();
        prop_assert!((total(&after) - (ha_outside + source_inside)).abs() < TOL,
            "total {} vs {} + {}", total(&after), ha_outside, source_inside);
        // Each filled hole moves the total by the source's energy of its stretch minus what the
        // row after it carried; other written hours add their energy.
        let moved: f64 = plan.holes.iter().filter(|h| h.kept.is_none())
            .map(|h| h.filled_kwh + h.carries_kwh - h.carried_kwh).sum::<f64>()
            + written.iter().filter(|t| !before.contains_key(t) && in_range(**t)
                && !plan.holes.iter().any(|h| h.kept.is_none() && (h.start..h.row_after).contains(t)))
                .map(|t| source[t]).sum::<f64>();
        prop_assert!((total(&after) - total(&before) - moved).abs() < TOL);

        // `state` differences equal `sum` differences wherever pwsync wrote: each written row
        // against the row an hour before it.
        for &t in &written {
            let (Some(ra), Some(rb)) = (after.get(&(t - HOUR)), after.get(&t)) else { continue };
            let ds = rb.state.unwrap() - ra.state.unwrap();
            let dm = rb.sum.unwrap() - ra.sum.unwrap();
            prop_assert!((ds - dm).abs() < TOL, "hour {}: state {} sum {}", (t - T0) / HOUR, ds, dm);
        }

        // Where the source knows the truth and every hole was an HA outage, the fill changes
        // nothing in the total: the hole's energy is counted once, as before.
        let outage_only = plan.holes.iter().all(|h| {
            let i = ((h.row_after - T0) / HOUR + LEAD) as usize;
            h.kept.is_some() || matches!(c.carry[i], Carry::All)
        });
        let appended = written.iter().any(|t| !before.contains_key(t)
            && !plan.holes.iter().any(|h| (h.start..h.row_after).contains(t)));
        if outage_only && !appended {
            prop_assert!((total(&after) - total(&before)).abs() < TOL);
        }

        // A second identical fill plans nothing.
        let now: Vec<StatRow> = after.values().copied().collect();
        let again = splice(&SpliceInput { existing: &now, ..input });
        prop_assert!(again.is_empty(), "second fill not empty: {:?}", again);
    }
}
