//! The one way jobs write energy into a statistic: read the chain around the range, splice,
//! and add the 5-minute rows where the store writes them.

use crate::JobError;
use pwsync_energy::splice::{splice, splice_short_term, Hole, SpliceInput};
use pwsync_energy::{StatRow, HOUR};
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, Table};
use std::collections::BTreeSet;

/// Which hours that already hold a row a write may replace.
#[derive(Debug, Clone, Copy)]
pub enum Overwrite<'a> {
    /// None: only missing hours are written.
    No,
    /// All of them.
    Yes,
    /// All, but these hour starts keep their energy where a row exists (their `state` still
    /// becomes the one given, the lifetime meter, so the states stay one scale).
    Except(&'a BTreeSet<i64>),
}

impl From<bool> for Overwrite<'_> {
    fn from(overwrite: bool) -> Self {
        if overwrite {
            Overwrite::Yes
        } else {
            Overwrite::No
        }
    }
}

/// A planned write of one statistic, and what the splice decided.
#[derive(Debug, Clone)]
pub struct Spliced {
    pub write: StatWrite,
    /// The statistic's rows in `[start, end)` before the write (and the last row before it).
    pub existing: Vec<StatRow>,
    pub kept_existing: usize,
    /// Of `kept_existing`, hours kept because of [`Overwrite::Except`].
    pub kept_excepted: usize,
    /// Those hours' starts (their energy is kept; a new `state` may still be written).
    pub excepted_hours: BTreeSet<i64>,
    pub unchanged: usize,
    /// Holes between rows that the write reached: filled with the row after them, or kept.
    pub holes: Vec<Hole>,
}

/// How far past the range to look for the row after a hole that reaches the range's end: that
/// row carries the hole's energy, so without it a fill would count the hole twice.
const ROW_AFTER_LOOKAHEAD: i64 = 31 * 86_400;

/// Plan writing `energy` (`(hour start, kWh)`, ascending, all in `[start, end)`) into `meta`'s
/// chain: `states[i]` is the meter at the end of hour `i` (empty: `state` = `sum`), and
/// `incomplete` the hours of `energy` the source covers only in part. Hours that already hold a
/// row are replaced as `overwrite` says, and kept otherwise; a hole is filled together with the
/// row after it, which carries the hole's energy (see `pwsync_energy::splice::Hole`).
#[allow(clippy::too_many_arguments)]
pub async fn splice_into(
    store: &dyn StatisticsStore,
    meta: StatMeta,
    start: i64,
    end: i64,
    energy: &[(i64, f64)],
    states: &[f64],
    incomplete: &[i64],
    overwrite: Overwrite<'_>,
) -> Result<Spliced, JobError> {
    let id = meta.statistic_id.clone();
    let mut existing: Vec<StatRow> = store
        .last_before(&id, Table::Hourly, start)
        .await?
        .into_iter()
        .collect();
    existing.extend(store.read(&id, Table::Hourly, start, end).await?);
    let chain = with_row_after(store, &id, &existing, end).await?;
    let (energy, states, excepted_hours) = match overwrite {
        Overwrite::Except(keep) => keeping_energy(&existing, keep, energy, states),
        _ => (energy.to_vec(), states.to_vec(), BTreeSet::new()),
    };
    let kept_excepted = excepted_hours.len();
    let sp = splice(&SpliceInput {
        existing: &chain,
        energy: &energy,
        states: &states,
        incomplete,
        overwrite: !matches!(overwrite, Overwrite::No),
    });
    let short_term = if store.writes_short_term() && !sp.rows.is_empty() {
        let old_short = store.read(&id, Table::ShortTerm, start, end).await?;
        splice_short_term(&old_short, &existing, &sp)
    } else {
        Vec::new()
    };
    Ok(Spliced {
        kept_existing: sp.kept_existing + kept_excepted,
        kept_excepted,
        excepted_hours,
        unchanged: sp.unchanged,
        holes: sp.holes,
        write: StatWrite {
            meta,
            shifts: sp.shifts,
            hourly: sp.rows,
            short_term,
        },
        existing,
    })
}

/// `existing` plus, when its last row ends before `end` (a hole may reach the range's end), the
/// first row after `end` within [`ROW_AFTER_LOOKAHEAD`].
async fn with_row_after(
    store: &dyn StatisticsStore,
    id: &str,
    existing: &[StatRow],
    end: i64,
) -> Result<Vec<StatRow>, JobError> {
    let mut chain = existing.to_vec();
    let last = existing.iter().rev().find(|r| r.sum.is_some());
    if last.is_some_and(|r| r.start + HOUR < end) {
        let after = store
            .read(id, Table::Hourly, end, end + ROW_AFTER_LOOKAHEAD)
            .await?;
        chain.extend(after.into_iter().find(|r| r.sum.is_some()));
    }
    Ok(chain)
}

/// `energy` with each hour of `keep` that holds a row (with a `sum`) in `existing` set to the
/// energy that row has now (its change from the row before, HA's convention of 0 before the
/// first), and those hours. `states` stay as given: a kept hour keeps its
/// energy but its `state` is the lifetime meter like its neighbours'.
fn keeping_energy(
    existing: &[StatRow],
    keep: &BTreeSet<i64>,
    energy: &[(i64, f64)],
    states: &[f64],
) -> (Vec<(i64, f64)>, Vec<f64>, BTreeSet<i64>) {
    let mut kept = std::collections::BTreeMap::new();
    let mut prev_sum = 0.0;
    for r in existing {
        let Some(sum) = r.sum else { continue };
        if keep.contains(&r.start) {
            kept.insert(r.start, sum - prev_sum);
        }
        prev_sum = sum;
    }
    let out: Vec<(i64, f64)> = energy
        .iter()
        .map(|&(h, kwh)| (h, kept.get(&h).copied().unwrap_or(kwh)))
        .collect();
    let hours = energy
        .iter()
        .map(|e| e.0)
        .filter(|h| kept.contains_key(h))
        .collect();
    (out, states.to_vec(), hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start: i64, sum: Option<f64>) -> StatRow {
        StatRow {
            start,
            state: sum,
            sum,
        }
    }

    #[test]
    fn kept_hours_keep_their_energy_and_take_the_given_state() {
        let existing = [row(0, Some(1.0)), row(3600, None), row(7200, Some(2.5))];
        let keep = BTreeSet::from([3600, 7200, 10_800]);
        let energy = [(0, 0.5), (3600, 0.6), (7200, 0.7), (10_800, 0.8)];
        let states = [10.5, 11.1, 11.8, 12.6];
        let (e, s, n) = keeping_energy(&existing, &keep, &energy, &states);
        // 7200 is kept (a row with a sum: its change 1.5 from the row at 0); 3600 has no sum and
        // 10 800 no row: both take InfluxDB's energy.
        assert_eq!(e, vec![(0, 0.5), (3600, 0.6), (7200, 1.5), (10_800, 0.8)]);
        assert_eq!(s, states.to_vec());
        assert_eq!(n, BTreeSet::from([7200]));
    }
}
