//! The splice primitive: write new hourly energy into an existing sum chain so that no seam
//! shows a spike.
//!
//! HA's Energy dashboard shows the *change* of `sum` between consecutive rows. Copying sums from
//! elsewhere, or rewriting hours without touching later rows, leaves steps in that chain: spikes
//! and negative hours. Splice instead fixes the changes: every written hour's change is its new
//! energy and every other row's change is what it was, then computes the absolute rows to upsert
//! and the few [`Shift`]s that carry all later rows (hourly and 5-minute) along.
//!
//! Changes are taken against a virtual row with `sum` 0 before the first row, HA's own convention
//! for where a statistic begins.

use crate::stats::StatRow;
use crate::{floor_hour, FIVE_MIN, HOUR};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Values closer than this (kWh) are equal: such rows and shifts are not written, which makes a
/// repeated splice an empty plan.
pub const EPSILON: f64 = 1e-9;

/// Add `delta` (kWh) to `sum` of every 5-minute row with `start >= from` and every hourly row
/// with `start >= floor_hour(from)`: the semantics of HA's `recorder/adjust_sum_statistics`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub from: i64,
    pub delta: f64,
}

/// What to splice into one statistic.
#[derive(Debug, Clone, Copy)]
pub struct SpliceInput<'a> {
    /// The statistic's hourly rows (kWh), ascending: at least the last row before the first new
    /// hour and every row from there up to the last new hour. Rows before that are allowed and
    /// left alone; rows after the last new hour may be left out, as the final shift (at the end
    /// of the last written stretch) carries them along exactly as it would if they were given.
    pub existing: &'a [StatRow],
    /// New energy per hour, `(hour start, kWh)`, any set of hours in any order; a repeated hour
    /// keeps its last entry.
    pub energy: &'a [(i64, f64)],
    /// `state` for each entry of `energy` (same index): the lifetime meter at the hour's end.
    /// Entries beyond its length (e.g. an empty slice) get the new `sum` as state.
    pub states: &'a [f64],
    /// Hours of `energy` the source covers only in part (a gap, or the edge of its data).
    /// Without `overwrite`, a hole is filled only where the source covers it completely.
    pub incomplete: &'a [i64],
    /// Replace hours that exist. Otherwise they are kept and only missing hours are written.
    pub overwrite: bool,
}

/// Hours without a row between two rows of the chain, and what a splice did with them.
///
/// HA compiles the meter's whole jump since its last reading into the first hour it sees after
/// an outage, so the row after a hole carries the hole's energy (all of it after an HA outage,
/// none after an import that skipped hours). The hole and that row are one stretch: filled
/// together from the source, or left together as HA has them; never the hole alone, which would
/// count its energy twice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hole {
    /// First hour without a row.
    pub start: i64,
    /// Start of the row after the hole: the hole's hours are `[start, row_after)`.
    pub row_after: i64,
    /// The row after's change before the splice: HA's energy for the hole and that hour.
    pub carried_kwh: f64,
    /// Its change after: the source's energy of its own hour when filled, as before when kept.
    pub carries_kwh: f64,
    /// The source's energy written into the hole's hours (0 when kept).
    pub filled_kwh: f64,
    /// Why the stretch was left as HA has it; `None` when it was filled.
    pub kept: Option<HoleKept>,
}

impl Hole {
    /// Hours without a row.
    pub fn hours(&self) -> i64 {
        (self.row_after - self.start) / HOUR
    }
}

/// Why a hole and the row after it were left as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum HoleKept {
    /// No energy for this hour of the stretch: a gap in the source, the edge of its data, or
    /// outside the range written.
    NoData { hour: i64 },
    /// The source covers this hour of the stretch only in part.
    Partial { hour: i64 },
}

impl HoleKept {
    pub fn hour(&self) -> i64 {
        match *self {
            HoleKept::NoData { hour } | HoleKept::Partial { hour } => hour,
        }
    }
}

/// The result of [`splice`]. A store applies `shifts` to the rows that exist, then upserts `rows`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplicePlan {
    /// Hourly rows to upsert, ascending, absolute values.
    pub rows: Vec<StatRow>,
    /// Ascending by `from`; at most one per point where the chain's offset changes.
    pub shifts: Vec<Shift>,
    /// Rows in `rows` (hours whose values change).
    pub written: usize,
    /// New hours that exist and were kept because `overwrite` is off.
    pub kept_existing: usize,
    /// Hours to write that already hold exactly the values they would get.
    pub unchanged: usize,
    /// Every hole between two rows that the new energy reaches, filled or kept.
    pub holes: Vec<Hole>,
}

impl SplicePlan {
    /// Nothing to write: what a second identical run plans.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.shifts.is_empty()
    }
}

/// Plan the rows and shifts that make the chain's change equal the new energy in every written
/// hour and leave every other row's change as it was (see the module docs).
///
/// The written set is every hour of `energy`, or with `overwrite` off only those without a row
/// (a row without `sum` counts as missing), adjusted for holes (see [`Hole`]): without
/// `overwrite`, a hole between two rows is filled together with the row after it when `energy`
/// covers all of those hours completely, and left alone otherwise; with `overwrite`, a hole is
/// written only if the row after it is. Each written row's `sum` continues from the row
/// before it in the resulting chain (from 0 if none); after a stretch of written hours, one
/// shift at the stretch's end moves everything after it, including the 5-minute rows HA writes
/// past the last hourly row while it compiles the current hour.
pub fn splice(input: &SpliceInput<'_>) -> SplicePlan {
    let mut existing: BTreeMap<i64, StatRow> = BTreeMap::new();
    for r in input.existing {
        existing.insert(r.start, *r);
    }
    let mut new: BTreeMap<i64, (f64, Option<f64>)> = BTreeMap::new();
    for (i, &(h, kwh)) in input.energy.iter().enumerate() {
        debug_assert_eq!(h, floor_hour(h), "hour starts only");
        new.insert(h, (kwh, input.states.get(i).copied()));
    }

    let mut plan = SplicePlan::default();
    let mut write: BTreeMap<i64, (f64, Option<f64>)> = BTreeMap::new();
    for (&h, &v) in &new {
        let exists = existing.get(&h).is_some_and(|r| r.sum.is_some());
        if exists && !input.overwrite {
            plan.kept_existing += 1;
        } else {
            write.insert(h, v);
        }
    }

    let holes = settle_holes(input, &existing, &new, &mut write, &mut plan);

    let mut starts: Vec<i64> = existing.keys().chain(write.keys()).copied().collect();
    starts.sort_unstable();
    starts.dedup();

    // Cumulative shift so far; sum in the resulting chain and in the old chain of the previous
    // row (0 before the first); end of the last written hour since the last kept row.
    let mut offset = 0.0;
    let mut prev_new = 0.0;
    let mut prev_old = 0.0;
    let mut stretch_end: Option<i64> = None;
    for h in starts {
        let old = existing.get(&h).copied();
        if let Some(&(kwh, state)) = write.get(&h) {
            let sum = prev_new + kwh;
            let state = state.unwrap_or(sum);
            let after_shifts = old.and_then(|r| r.sum).map(|s| s + offset);
            let same = matches!(after_shifts, Some(s) if (s - sum).abs() < EPSILON)
                && matches!(old.and_then(|r| r.state), Some(s) if (s - state).abs() < EPSILON);
            if same {
                plan.unchanged += 1;
                prev_new = after_shifts.unwrap_or(sum);
            } else {
                plan.rows.push(StatRow {
                    start: h,
                    state: Some(state),
                    sum: Some(sum),
                });
                prev_new = sum;
            }
            if let Some(s) = old.and_then(|r| r.sum) {
                prev_old = s;
            }
            stretch_end = Some(h + HOUR);
        } else if let Some(old_sum) = old.and_then(|r| r.sum) {
            // A row outside the written set keeps its change: new sum = prev_new + (old − prev_old).
            let wanted = prev_new - prev_old;
            if (wanted - offset).abs() >= EPSILON {
                plan.shifts.push(Shift {
                    from: stretch_end.unwrap_or(h),
                    delta: wanted - offset,
                });
                offset = wanted;
            }
            prev_new = old_sum + offset;
            prev_old = old_sum;
            stretch_end = None;
        }
    }
    // Rows after the chain's end (HA's 5-minute rows of the hour it is compiling) continue from
    // the last row as they did before.
    if let Some(end) = stretch_end {
        let wanted = prev_new - prev_old;
        if (wanted - offset).abs() >= EPSILON {
            plan.shifts.push(Shift {
                from: end,
                delta: wanted - offset,
            });
        }
    }
    plan.written = plan.rows.len();
    plan.holes = holes;
    plan
}

/// Decide every hole between two rows with a `sum` that `new` reaches (see [`Hole`]): add the
/// row after a hole to `write` when the stretch is filled, remove the hole's hours from it when
/// the stretch is kept.
fn settle_holes(
    input: &SpliceInput<'_>,
    existing: &BTreeMap<i64, StatRow>,
    new: &BTreeMap<i64, (f64, Option<f64>)>,
    write: &mut BTreeMap<i64, (f64, Option<f64>)>,
    plan: &mut SplicePlan,
) -> Vec<Hole> {
    let incomplete: BTreeSet<i64> = input.incomplete.iter().copied().collect();
    let with_sum: Vec<(i64, f64)> = existing
        .values()
        .filter_map(|r| r.sum.map(|s| (r.start, s)))
        .collect();
    let mut holes = Vec::new();
    for pair in with_sum.windows(2) {
        let ((p, p_sum), (r, r_sum)) = (pair[0], pair[1]);
        let hole = || (p + HOUR..r).step_by(HOUR as usize);
        if r - p <= HOUR || !hole().any(|h| new.contains_key(&h)) {
            continue;
        }
        let carried_kwh = r_sum - p_sum;
        let uncovered = |h: i64| match new.get(&h) {
            None => Some(HoleKept::NoData { hour: h }),
            Some(_) if incomplete.contains(&h) => Some(HoleKept::Partial { hour: h }),
            Some(_) => None,
        };
        let kept = if input.overwrite {
            (!write.contains_key(&r)).then_some(HoleKept::NoData { hour: r })
        } else {
            hole().chain([r]).find_map(uncovered)
        };
        match kept {
            None if !input.overwrite => {
                write.insert(r, new[&r]);
                plan.kept_existing -= 1;
            }
            None => {}
            Some(_) => {
                for h in hole() {
                    write.remove(&h);
                }
            }
        }
        let written = |h: i64| write.get(&h).map_or(0.0, |v| v.0);
        holes.push(Hole {
            start: p + HOUR,
            row_after: r,
            carried_kwh,
            carries_kwh: if kept.is_some() {
                carried_kwh
            } else {
                written(r)
            },
            filled_kwh: hole().map(written).sum(),
            kept,
        });
    }
    holes
}

/// What a store holds after applying `plan` to the hourly rows `existing`: shifts first, then
/// upserts. Used by property tests and to preview a dry run.
pub fn apply_plan(existing: &[StatRow], plan: &SplicePlan) -> Vec<StatRow> {
    apply_writes(existing, &plan.shifts, &plan.rows, HOUR)
}

/// The same for 5-minute rows: shifts apply to rows with `start >= from` (not floored).
pub fn apply_short_term(existing: &[StatRow], shifts: &[Shift], rows: &[StatRow]) -> Vec<StatRow> {
    apply_writes(existing, shifts, rows, FIVE_MIN)
}

/// What a table of `period` rows holds after `shifts` then `rows` (upserts) are applied to
/// `existing`: the store semantics, for previews of plans that are never written.
pub fn apply_writes(
    existing: &[StatRow],
    shifts: &[Shift],
    rows: &[StatRow],
    period: i64,
) -> Vec<StatRow> {
    let mut out: BTreeMap<i64, StatRow> = existing.iter().map(|r| (r.start, *r)).collect();
    let mut shifts: Vec<(i64, f64)> = shifts
        .iter()
        .map(|s| (crate::floor_to(s.from, period), s.delta))
        .collect();
    shifts.sort_by_key(|s| s.0);
    // One sweep: each row gets the total of the shifts at or before it (a store adds them one
    // by one; the difference is float rounding, far below EPSILON).
    let (mut next, mut total) = (0, 0.0);
    for r in out.values_mut() {
        while next < shifts.len() && shifts[next].0 <= r.start {
            total += shifts[next].1;
            next += 1;
        }
        if let Some(sum) = r.sum.as_mut() {
            *sum += total;
        }
    }
    for r in rows {
        out.insert(r.start, *r);
    }
    out.into_values().collect()
}

/// Replacement 5-minute rows for the hours `plan` rewrites (database path only: no API writes
/// them), so the 5-minute chain stays in step with the hourly one. `old_short` are the existing
/// 5-minute rows (at least those inside written hours), `old_hourly` the rows given to
/// [`splice`]. Within a written hour, the existing 5-minute rows spread the hour's energy evenly
/// over time and the last one carries the hour's `sum` and `state`, which is where HA's next
/// compile continues from. 5-minute rows outside written hours are moved by the plan's shifts.
pub fn splice_short_term(
    old_short: &[StatRow],
    old_hourly: &[StatRow],
    plan: &SplicePlan,
) -> Vec<StatRow> {
    let hourly = apply_plan(old_hourly, plan);
    let mut short: Vec<StatRow> = old_short.to_vec();
    short.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    for row in &plan.rows {
        let h = row.start;
        let Some(sum) = row.sum else { continue };
        let before = hourly.partition_point(|r| r.start < h);
        let prev = hourly[..before]
            .iter()
            .rev()
            .find_map(|r| r.sum)
            .unwrap_or(0.0);
        let kwh = sum - prev;
        let lo = short.partition_point(|r| r.start < h);
        let hi = short.partition_point(|r| r.start < h + HOUR);
        let inside = &short[lo..hi];
        let Some(last) = inside.last() else { continue };
        let span = (last.start + FIVE_MIN - h) as f64;
        for r in inside {
            let remaining = if r.start == last.start {
                0.0
            } else {
                kwh * (1.0 - (r.start + FIVE_MIN - h) as f64 / span)
            };
            out.push(StatRow {
                start: r.start,
                state: row.state.map(|s| s - remaining),
                sum: Some(sum - remaining),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(h: i64, sum: f64) -> StatRow {
        StatRow {
            start: h * HOUR,
            state: Some(sum),
            sum: Some(sum),
        }
    }

    fn sums(rows: &[StatRow]) -> Vec<(i64, f64)> {
        rows.iter()
            .map(|r| (r.start / HOUR, r.sum.unwrap()))
            .collect()
    }

    #[test]
    fn a_contiguous_overwrite_needs_one_shift_at_its_end() {
        // 1 kWh per hour, with a 21 kWh spike at hour 3 (an outage's energy in one hour).
        let existing: Vec<StatRow> = [0.0, 1.0, 2.0, 23.0, 24.0, 25.0]
            .iter()
            .enumerate()
            .map(|(i, &s)| row(i as i64, s))
            .collect();
        let energy = [(2 * HOUR, 0.5), (3 * HOUR, 0.5)];
        let plan = splice(&SpliceInput {
            existing: &existing,
            energy: &energy,
            states: &[],
            incomplete: &[],
            overwrite: true,
        });
        assert_eq!(plan.written, 2);
        assert_eq!(plan.shifts.len(), 1);
        assert_eq!(plan.shifts[0].from, 4 * HOUR);
        assert!((plan.shifts[0].delta - (2.0 - 23.0)).abs() < 1e-12);
        let after = apply_plan(&existing, &plan);
        assert_eq!(
            sums(&after),
            vec![(0, 0.0), (1, 1.0), (2, 1.5), (3, 2.0), (4, 3.0), (5, 4.0)]
        );
        // Again: nothing to do.
        let again = splice(&SpliceInput {
            existing: &after,
            energy: &energy,
            states: &[],
            incomplete: &[],
            overwrite: true,
        });
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.unchanged, 2);
    }

    #[test]
    fn filling_a_hole_rewrites_the_row_after_it_and_keeps_the_others() {
        // Hours 2 and 3 are missing; row 4 carries their energy and its own (3.5 kWh).
        let existing = vec![row(0, 10.0), row(1, 11.0), row(4, 14.5), row(5, 15.5)];
        let energy: Vec<(i64, f64)> = (0..5).map(|h| (h * HOUR, 1.0)).collect();
        let states: Vec<f64> = (0..5).map(|h| 100.0 + h as f64).collect();
        let plan = splice(&SpliceInput {
            existing: &existing,
            energy: &energy,
            states: &states,
            incomplete: &[],
            overwrite: false,
        });
        assert_eq!((plan.written, plan.kept_existing), (3, 2));
        let after = apply_plan(&existing, &plan);
        // The stretch 2..=4 holds InfluxDB's 3 kWh; hour 5 keeps its own 1 kWh.
        assert_eq!(
            sums(&after),
            vec![
                (0, 10.0),
                (1, 11.0),
                (2, 12.0),
                (3, 13.0),
                (4, 14.0),
                (5, 15.0)
            ]
        );
        assert_eq!(after[4].state, Some(104.0));
        assert_eq!(
            plan.holes,
            vec![Hole {
                start: 2 * HOUR,
                row_after: 4 * HOUR,
                carried_kwh: 3.5,
                carries_kwh: 1.0,
                filled_kwh: 2.0,
                kept: None,
            }]
        );
        let again = splice(&SpliceInput {
            existing: &after,
            energy: &energy,
            states: &states,
            incomplete: &[],
            overwrite: false,
        });
        assert!(again.is_empty() && again.holes.is_empty(), "{again:?}");
    }

    #[test]
    fn a_hole_the_source_covers_only_in_part_is_left_with_its_row_after() {
        let existing = vec![row(0, 10.0), row(1, 11.0), row(4, 14.5)];
        let energy: Vec<(i64, f64)> = (0..5).map(|h| (h * HOUR, 1.0)).collect();
        for (incomplete, energy, why) in [
            (
                vec![3 * HOUR],
                &energy[..],
                HoleKept::Partial { hour: 3 * HOUR },
            ),
            (vec![], &energy[..4], HoleKept::NoData { hour: 4 * HOUR }),
        ] {
            let plan = splice(&SpliceInput {
                existing: &existing,
                energy,
                states: &[],
                incomplete: &incomplete,
                overwrite: false,
            });
            assert!(plan.is_empty(), "{plan:?}");
            assert_eq!(plan.holes.len(), 1);
            assert_eq!(plan.holes[0].kept, Some(why));
            assert_eq!(plan.holes[0].carries_kwh, 3.5);
        }
        // With overwrite, a hole is written only together with the row after it.
        let plan = splice(&SpliceInput {
            existing: &existing,
            energy: &energy[..4],
            states: &[],
            incomplete: &[],
            overwrite: true,
        });
        assert_eq!(sums(&plan.rows), vec![(0, 1.0), (1, 2.0)]);
        assert_eq!(
            plan.holes[0].kept,
            Some(HoleKept::NoData { hour: 4 * HOUR })
        );
    }

    #[test]
    fn prepending_history_moves_the_live_chain_and_its_5_minute_rows() {
        // HA recorded two hours of a new sensor (sum starts at 0); backfill the 3 hours before.
        let existing = vec![row(10, 0.0), row(11, 1.0)];
        let energy: Vec<(i64, f64)> = (7..10).map(|h| (h * HOUR, 2.0)).collect();
        let plan = splice(&SpliceInput {
            existing: &existing,
            energy: &energy,
            states: &[],
            incomplete: &[],
            overwrite: false,
        });
        assert_eq!(
            plan.shifts,
            vec![Shift {
                from: 10 * HOUR,
                delta: 6.0
            }]
        );
        let after = apply_plan(&existing, &plan);
        assert_eq!(
            sums(&after),
            vec![(7, 2.0), (8, 4.0), (9, 6.0), (10, 6.0), (11, 7.0)]
        );
    }

    #[test]
    fn rewriting_the_last_hours_shifts_the_uncompiled_5_minute_rows() {
        let existing = vec![row(0, 0.0), row(1, 1.0), row(2, 2.0)];
        let plan = splice(&SpliceInput {
            existing: &existing,
            energy: &[(2 * HOUR, 3.0)],
            states: &[50.0],
            incomplete: &[],
            overwrite: true,
        });
        // The 5-minute rows of hour 3 (not compiled yet) continued from 2.0; now from 4.0.
        assert_eq!(
            plan.shifts,
            vec![Shift {
                from: 3 * HOUR,
                delta: 2.0
            }]
        );
        let short = vec![
            StatRow {
                start: 2 * HOUR + 3000,
                state: Some(1.9),
                sum: Some(1.9),
            },
            StatRow {
                start: 2 * HOUR + 3300,
                state: Some(2.0),
                sum: Some(2.0),
            },
            StatRow {
                start: 3 * HOUR,
                state: Some(2.1),
                sum: Some(2.1),
            },
        ];
        let rows = splice_short_term(&short, &existing, &plan);
        assert_eq!(rows.len(), 2);
        // The existing rows of hour 2 cover its whole hour: 11/12 and 12/12 of 3 kWh.
        assert!((rows[0].sum.unwrap() - (1.0 + 3.0 * 11.0 / 12.0)).abs() < 1e-12);
        assert!((rows[0].state.unwrap() - (50.0 - 3.0 / 12.0)).abs() < 1e-12);
        assert_eq!(rows[1].sum, Some(4.0));
        assert_eq!(rows[1].state, Some(50.0));
        let after = apply_short_term(&short, &plan.shifts, &rows);
        assert!((after[2].sum.unwrap() - 4.1).abs() < 1e-12);
    }

    #[test]
    fn three_years_of_hours_splice_in_linear_time() {
        let n = 3 * 366 * 24;
        let existing: Vec<StatRow> = (0..n).map(|h| row(h, h as f64)).collect();
        let energy: Vec<(i64, f64)> = (0..n).map(|h| (h * HOUR, 0.5)).collect();
        let short: Vec<StatRow> = (0..12 * 240)
            .map(|i| StatRow {
                start: (n - 240) * HOUR + i * FIVE_MIN,
                state: None,
                sum: Some(0.0),
            })
            .collect();
        let t = std::time::Instant::now();
        let plan = splice(&SpliceInput {
            existing: &existing,
            energy: &energy,
            states: &[],
            incomplete: &[],
            overwrite: true,
        });
        let rows = splice_short_term(&short, &existing, &plan);
        assert_eq!(plan.written as i64, n - 1);
        assert_eq!(rows.len(), short.len());
        assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
    }

    #[test]
    fn an_empty_chain_starts_from_zero() {
        let energy = [(5 * HOUR, 1.0), (7 * HOUR, 2.0)];
        let plan = splice(&SpliceInput {
            existing: &[],
            energy: &energy,
            states: &[1.0],
            incomplete: &[],
            overwrite: false,
        });
        assert_eq!(sums(&plan.rows), vec![(5, 1.0), (7, 3.0)]);
        assert_eq!(plan.rows[1].state, Some(3.0));
    }
}
