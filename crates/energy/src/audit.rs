//! `check` and `repair` decisions: what is wrong with a statistic's hours, and what energy each
//! bad hour should hold instead. Pure: the job reads HA and InfluxDB, this module decides.
//!
//! An hour's energy is the change of `sum` from the row before (what the Energy dashboard shows).
//! It is wrong when it is not a number, negative, spans rows HA does not have, is more than the
//! installation can deliver in an hour, or disagrees with InfluxDB by more than a tolerance
//! where InfluxDB covers the whole hour. Separately, HA's 5-minute chain must end each hour on
//! the hourly row's `sum`, because HA's next compile continues from the latest 5-minute row.
//! And HA must have a row for every hour InfluxDB has data for: hours before a statistic's
//! first row or after its last one (a backfill cut short) are missing history.

use crate::stats::{classify, hourly_changes, short_term_out_of_step, Change, HourIssue, StatRow};
use crate::HOUR;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How far HA may be from InfluxDB before an hour is wrong: `wh` or `pct` % of InfluxDB's
/// energy, whichever is larger (the issue's default: 10 Wh or 1 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub wh: f64,
    pub pct: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { wh: 10.0, pct: 1.0 }
    }
}

impl Tolerance {
    /// The largest accepted difference, kWh, for an hour InfluxDB measured as `expected` kWh.
    pub fn kwh(&self, expected: f64) -> f64 {
        (self.wh / 1000.0).max(self.pct / 100.0 * expected.abs())
    }
}

/// A 5-minute row's `sum` must equal its hourly row's to this many kWh (HA copies the value;
/// only float noise differs).
pub const SHORT_TERM_TOLERANCE: f64 = 1e-3;

/// InfluxDB's energy for one hour with data (hours without any are absent from the map).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub kwh: f64,
    /// Data covers the whole hour (no gap, inside the data range). Only complete hours are
    /// compared with HA; an incomplete one still replaces an impossible value.
    pub complete: bool,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProblemKind {
    NotFinite,
    Negative,
    /// The change spans `missing_hours` hours without a row before this one.
    Hole {
        missing_hours: i64,
    },
    /// Above `limit_kwh`, the physical limit per hour.
    Spike {
        limit_kwh: f64,
    },
    /// Differs from InfluxDB by more than the tolerance.
    Mismatch,
    /// The hour's last 5-minute row does not end on the hourly row's sum.
    OutOfStep,
    /// The 5-minute rows after the last hourly row (the hour HA compiles next) do not continue
    /// it: HA's next hourly row would copy their sum, a negative hour or a spike.
    NextOutOfStep,
    /// The live sensor's reading does not continue the statistic's last `state`.
    Seam,
    /// HA has no rows for the `hours` hours with InfluxDB data in `[hour, to)`, before the
    /// statistic's first row (`to` is that row's hour) or after its last one (or it has no
    /// rows at all; `to` is the end of the last hour with data).
    MissingHistory {
        to: i64,
        hours: i64,
    },
}

impl ProblemKind {
    fn from_issue(issue: HourIssue) -> Self {
        match issue {
            HourIssue::NotFinite => ProblemKind::NotFinite,
            HourIssue::Negative => ProblemKind::Negative,
            HourIssue::AcrossHole { missing_hours } => ProblemKind::Hole { missing_hours },
            HourIssue::AboveLimit { limit_kwh } => ProblemKind::Spike { limit_kwh },
        }
    }

    /// Short name for tables.
    pub fn label(&self) -> String {
        match self {
            ProblemKind::NotFinite => "not a number".into(),
            ProblemKind::Negative => "negative".into(),
            ProblemKind::Hole { missing_hours } => format!("hole ({missing_hours} h missing)"),
            ProblemKind::Spike { .. } => "spike".into(),
            ProblemKind::Mismatch => "differs from InfluxDB".into(),
            ProblemKind::OutOfStep => "5-minute chain out of step".into(),
            ProblemKind::NextOutOfStep => "next hour's 5-minute rows out of step".into(),
            ProblemKind::Seam => "seam with live sensor".into(),
            ProblemKind::MissingHistory { hours, .. } => format!("missing history ({hours} h)"),
        }
    }
}

/// One problem of one hour of one statistic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Start of the hour (epoch s).
    pub hour: i64,
    #[serde(flatten)]
    pub kind: ProblemKind,
    /// What HA holds: the hour's change (kWh); for `OutOfStep` the 5-minute `sum`, for `Seam`
    /// the live reading, for `MissingHistory` 0.
    pub found: f64,
    /// What it should be: InfluxDB's energy where known; for `OutOfStep` the hourly `sum`, for
    /// `Seam` the last `state`, for `MissingHistory` InfluxDB's energy of the missing hours.
    pub expected: Option<f64>,
}

impl Finding {
    /// The likely cause, for a person reading the table.
    pub fn cause(&self) -> &'static str {
        match self.kind {
            ProblemKind::NotFinite => "a broken row (NaN or infinite sum) from a bad import",
            ProblemKind::Negative => {
                "the sum fell: rows imported with a lower sum baseline, or a meter drop HA read as a decrease"
            }
            ProblemKind::Hole { .. } => {
                "HA has no rows for the hours before (HA down, or an import skipped them, e.g. a DST hour): this hour carries their energy"
            }
            ProblemKind::Spike { .. } => {
                "more than the installation can deliver in an hour: rows imported with a foreign sum baseline, or an outage's energy compiled into one hour"
            }
            ProblemKind::Mismatch if self.expected.is_some_and(|e| self.found > e) => {
                "more than InfluxDB measured: energy of other hours landed here (HA or pwsync was down), or a bad import"
            }
            ProblemKind::Mismatch => {
                "less than InfluxDB measured: the sensor was unavailable or stale (an outage), or an import wrote too little"
            }
            ProblemKind::OutOfStep => {
                "the 5-minute rows were shifted or written apart from the hourly rows: HA's next compile continues from them and moves the difference into a later hour"
            }
            ProblemKind::NextOutOfStep => {
                "HA's live compile started a new sum (a new sensor, or history written without 5-minute rows) and the seam guard of `pwsync serve` did not move it: HA's next hourly row would copy it"
            }
            ProblemKind::Seam if self.expected.is_some_and(|e| self.found < e) => {
                "the live sensor reads below the statistics' last state: HA's next compile records negative energy or a meter reset"
            }
            ProblemKind::Seam => {
                "the live sensor reads far above the statistics' last state: HA's next compile records the difference as one hour's energy"
            }
            ProblemKind::MissingHistory { .. } => {
                "InfluxDB has data but HA has no rows: a backfill that never ran, covered fewer days, or was cut short"
            }
        }
    }
}

/// Everything `audit` looks at for one statistic.
#[derive(Debug, Clone, Copy)]
pub struct AuditInput<'a> {
    /// Hourly rows, ascending: the row before the range (if any), then every row in it.
    pub hourly: &'a [StatRow],
    /// 5-minute rows (any part of the range; empty when the store cannot read them).
    pub short_term: &'a [StatRow],
    /// InfluxDB's energy per hour start; empty for a statistic pwsync has no source for.
    pub measured: &'a BTreeMap<i64, Measured>,
    /// Only hours starting in `[start, end)` are reported.
    pub start: i64,
    pub end: i64,
    /// Physical limit, kWh per hour (max power × 1 h).
    pub limit_kwh: f64,
    pub tolerance: Tolerance,
    /// The live sensor's current reading (kWh) and how many seconds after the last row's end it
    /// was read, when the entity exists in HA.
    pub live: Option<(f64, i64)>,
    /// How far the live sensor's reading may lag the meter at an hour boundary, seconds (the
    /// poll interval plus the time InfluxDB takes to hold a minute). An hour HA compiled from
    /// the live sensor (it has 5-minute rows) ends on the last reading published before the
    /// boundary, so it may differ from InfluxDB's exact hour by that much energy at each end:
    /// the first live hour after backfilled history lacks one poll's energy at its end.
    pub live_lag_secs: i64,
}

/// Every problem of one statistic, ascending by hour (5-minute and seam findings after the
/// hourly ones of the same hour). At most one hourly finding per hour, the most severe.
pub fn audit(input: &AuditInput<'_>) -> Vec<Finding> {
    let in_range = |h: i64| h >= input.start && h < input.end;
    let live_hours: BTreeSet<i64> = input
        .short_term
        .iter()
        .map(|r| crate::floor_hour(r.start))
        .collect();
    let mut out = Vec::new();
    for c in hourly_changes(input.hourly) {
        if !in_range(c.start) {
            continue;
        }
        let measured = input.measured.get(&c.start);
        let kind = match classify(&c, input.limit_kwh) {
            Some(HourIssue::AcrossHole { .. }) if hole_is_a_source_gap(&c, input) => continue,
            Some(issue) => ProblemKind::from_issue(issue),
            None => match measured.filter(|m| m.complete) {
                Some(m)
                    if (c.kwh - m.kwh).abs()
                        > input.tolerance.kwh(m.kwh)
                            + live_lag_kwh(c.start, &live_hours, input) =>
                {
                    ProblemKind::Mismatch
                }
                _ => continue,
            },
        };
        out.push(Finding {
            hour: c.start,
            kind,
            found: c.kwh,
            expected: measured.map(|m| m.kwh),
        });
    }
    for o in short_term_out_of_step(input.hourly, input.short_term, SHORT_TERM_TOLERANCE) {
        if in_range(o.hour) {
            out.push(Finding {
                hour: o.hour,
                kind: ProblemKind::OutOfStep,
                found: o.short_term_sum,
                expected: Some(o.hourly_sum),
            });
        }
    }
    if let Some(f) = next_out_of_step(input).filter(|f| in_range(f.hour)) {
        out.push(f);
    }
    if let Some(f) = seam(input) {
        out.push(f);
    }
    out.extend(missing_findings(input));
    out.sort_by_key(|f| f.hour);
    out
}

/// Hours with InfluxDB data that HA has no row for, outside its chain: before the first row
/// or after the last one. One run of hours per side; InfluxDB's own gaps inside a run are not
/// counted (HA cannot hold energy nobody measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingRange {
    /// First missing hour's start.
    pub from: i64,
    /// Before the chain: its first row's hour. After it (or without rows): the end of the
    /// last hour with data.
    pub to: i64,
    /// Missing hours with data in `[from, to)`.
    pub hours: i64,
}

/// The history HA lacks: of `covered` (hour starts with InfluxDB data), those before the first
/// of `rows` (hour starts HA holds a row with a `sum` for) and those after the last; all of
/// them when `rows` is empty. Holes between two rows are not missing history (`audit` reports
/// them as [`ProblemKind::Hole`]).
pub fn missing_history(covered: &BTreeSet<i64>, rows: &BTreeSet<i64>) -> Vec<MissingRange> {
    let run = |hours: Vec<i64>, to: Option<i64>| {
        Some(MissingRange {
            from: *hours.first()?,
            to: to.unwrap_or(hours.last()? + HOUR),
            hours: hours.len() as i64,
        })
    };
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return run(covered.iter().copied().collect(), None)
            .into_iter()
            .collect();
    };
    let before = run(covered.range(..first).copied().collect(), Some(first));
    let after = run(covered.range(last + 1..).copied().collect(), None);
    before.into_iter().chain(after).collect()
}

/// [`missing_history`] of one statistic's range, as findings. Hours after the last row are not
/// missing while HA has 5-minute rows past it: it is compiling the meter now, and its next
/// hourly row carries the energy since (reported as a hole if it spans several hours).
fn missing_findings(input: &AuditInput<'_>) -> Vec<Finding> {
    let covered: BTreeSet<i64> = input
        .measured
        .range(input.start..input.end)
        .map(|(&h, _)| h)
        .collect();
    let rows: BTreeSet<i64> = input
        .hourly
        .iter()
        .filter(|r| r.sum.is_some())
        .map(|r| r.start)
        .collect();
    let compiling = rows
        .last()
        .is_some_and(|&last| input.short_term.iter().any(|r| r.start >= last + HOUR));
    missing_history(&covered, &rows)
        .into_iter()
        .filter(|m| !(compiling && rows.last().is_some_and(|&last| m.from > last)))
        .map(|m| Finding {
            hour: m.from,
            kind: ProblemKind::MissingHistory {
                to: m.to,
                hours: m.hours,
            },
            found: 0.0,
            expected: Some(input.measured.range(m.from..m.to).map(|(_, v)| v.kwh).sum()),
        })
        .collect()
}

/// The energy a live hour may miss or gain at its two boundaries: `live_lag_secs` at the rate
/// InfluxDB measured in the hour before (its start) and in the hour itself (its end). 0 for an
/// hour without 5-minute rows (written, not compiled live).
fn live_lag_kwh(hour: i64, live_hours: &BTreeSet<i64>, input: &AuditInput<'_>) -> f64 {
    if !live_hours.contains(&hour) {
        return 0.0;
    }
    let rate = |h: i64| input.measured.get(&h).map_or(0.0, |m| m.kwh.max(0.0));
    (rate(hour - HOUR) + rate(hour)) * input.live_lag_secs.max(0) as f64 / HOUR as f64
}

/// HA has no rows where InfluxDB has no data either (backfill writes only hours with data), and
/// the hour after holds what InfluxDB measured for it: nothing is wrong, the energy of those
/// hours is unknown to both.
fn hole_is_a_source_gap(c: &Change, input: &AuditInput<'_>) -> bool {
    let unmeasured =
        (1..=c.missing_hours()).all(|k| !input.measured.contains_key(&(c.start - k * HOUR)));
    let matches = input
        .measured
        .get(&c.start)
        .is_some_and(|m| (c.kwh - m.kwh).abs() <= input.tolerance.kwh(m.kwh));
    unmeasured && matches
}

/// The first 5-minute row after the last hourly row must be what HA's compile makes from that
/// hourly row's `state` and `sum` (HA compiled it from the hour's last 5-minute row, which
/// ends on the hourly row when the chain is in step). Reported on the last hourly row's hour.
fn next_out_of_step(input: &AuditInput<'_>) -> Option<Finding> {
    let last = input.hourly.last()?;
    let (state, sum) = (last.state?, last.sum?);
    let next = input
        .short_term
        .iter()
        .filter(|r| r.start >= last.start + HOUR)
        .min_by_key(|r| r.start)?;
    let expected = crate::live::ha_compile((state, sum), &[next.state?])[0].1;
    let found = next.sum?;
    ((found - expected).abs() > SHORT_TERM_TOLERANCE).then_some(Finding {
        hour: last.start,
        kind: ProblemKind::NextOutOfStep,
        found,
        expected: Some(expected),
    })
}

/// The live reading must continue the latest row's `state`: not below it, and not more above it
/// than the installation can deliver in the time since.
fn seam(input: &AuditInput<'_>) -> Option<Finding> {
    let (reading, secs_after) = input.live?;
    let last = input
        .short_term
        .iter()
        .chain(input.hourly.last())
        .filter(|r| r.state.is_some())
        .max_by_key(|r| r.start)?;
    let state = last.state?;
    let hours = (secs_after.max(0) as f64 / HOUR as f64) + 1.0;
    let too_low = reading < state - input.tolerance.kwh(0.0);
    let too_high = reading - state > input.limit_kwh * hours;
    (too_low || too_high).then_some(Finding {
        hour: crate::floor_hour(last.start),
        kind: ProblemKind::Seam,
        found: reading,
        expected: Some(state),
    })
}

/// How `repair` sets one hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Fix {
    /// InfluxDB's energy for the hour.
    FromInflux { kwh: f64 },
    /// InfluxDB has no data for the hour: an impossible value (negative, spike, not a number)
    /// is removed, and an hour HA had no row for gets a 0 kWh row (what the dashboard showed).
    Zero,
    /// Left as it is, with the reason.
    Kept { reason: KeptReason },
    /// Missing history: InfluxDB's energy written into each of the `hours` hours with data
    /// from this hour on (`kwh` in all), as a backfill would.
    Filled { hours: i64, kwh: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    /// A change across missing hours that is plausible for all of them, with no InfluxDB data
    /// to split it by.
    PlausibleAcrossHole,
    /// Only HA's running compile can fix it (the live sensor's reading).
    LiveSensor,
    /// 5-minute rows can only be written with HA stopped (the recorder database).
    NeedsDatabase,
}

impl Fix {
    pub fn describe(&self) -> String {
        match self {
            Fix::FromInflux { kwh } => format!("set to InfluxDB's {kwh:.3} kWh"),
            Fix::Zero => "no InfluxDB data: set to 0 kWh (impossible energy removed)".into(),
            Fix::Filled { hours, kwh } => {
                format!("filled from InfluxDB: {hours} h, {kwh:.3} kWh")
            }
            Fix::Kept { reason } => match reason {
                KeptReason::PlausibleAcrossHole => {
                    "kept: no InfluxDB data, and the energy is plausible for the missing hours"
                        .into()
                }
                KeptReason::LiveSensor => {
                    "kept: the live sensor's reading is pwsync serve's to publish".into()
                }
                KeptReason::NeedsDatabase => {
                    "kept: 5-minute rows can only be rewritten with HA stopped (repair --target db)"
                        .into()
                }
            },
        }
    }
}

/// One decision of `repair`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HourFix {
    pub hour: i64,
    #[serde(flatten)]
    pub fix: Fix,
}

/// What to write to fix `findings`: the energy of each hour to splice (with overwrite), the
/// hours whose 5-minute rows must be rebuilt from the hourly chain, and every decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepairEnergy {
    /// `(hour start, kWh)`, ascending.
    pub energy: Vec<(i64, f64)>,
    /// Hours whose 5-minute rows are rebuilt (only when `short_term_writable`).
    pub short_term_hours: Vec<i64>,
    /// The 5-minute rows after the last hourly row are moved onto it (only when
    /// `short_term_writable`).
    pub next_hour: bool,
    pub fixes: Vec<HourFix>,
}

/// Decide the repair of one statistic's findings (see [`Fix`]). A hole's missing hours are
/// written too, so the chain has a row per hour afterwards and no change spans several hours.
pub fn plan_repair(
    findings: &[Finding],
    measured: &BTreeMap<i64, Measured>,
    limit_kwh: f64,
    short_term_writable: bool,
) -> RepairEnergy {
    let mut energy: BTreeMap<i64, f64> = BTreeMap::new();
    let mut short: BTreeSet<i64> = BTreeSet::new();
    let mut next_hour = false;
    let mut fixes = Vec::new();
    let from_influx = |h: i64| measured.get(&h).map(|m| m.kwh);
    let set = |h: i64, energy: &mut BTreeMap<i64, f64>, fixes: &mut Vec<HourFix>| {
        let fix = match from_influx(h) {
            Some(kwh) => Fix::FromInflux { kwh },
            None => Fix::Zero,
        };
        energy.insert(h, from_influx(h).unwrap_or(0.0));
        fixes.push(HourFix { hour: h, fix });
    };
    for f in findings {
        match f.kind {
            ProblemKind::NotFinite
            | ProblemKind::Negative
            | ProblemKind::Spike { .. }
            | ProblemKind::Mismatch => set(f.hour, &mut energy, &mut fixes),
            ProblemKind::Hole { missing_hours } => {
                let missing = (1..=missing_hours).rev().map(|k| f.hour - k * HOUR);
                let plausible = f.found <= limit_kwh * (missing_hours + 1) as f64;
                if plausible
                    && from_influx(f.hour).is_none()
                    && missing.clone().all(|h| from_influx(h).is_none())
                {
                    fixes.push(HourFix {
                        hour: f.hour,
                        fix: Fix::Kept {
                            reason: KeptReason::PlausibleAcrossHole,
                        },
                    });
                    continue;
                }
                for h in missing.chain([f.hour]) {
                    set(h, &mut energy, &mut fixes);
                }
            }
            ProblemKind::OutOfStep if short_term_writable => {
                short.insert(f.hour);
            }
            ProblemKind::NextOutOfStep if short_term_writable => next_hour = true,
            ProblemKind::OutOfStep | ProblemKind::NextOutOfStep => fixes.push(HourFix {
                hour: f.hour,
                fix: Fix::Kept {
                    reason: KeptReason::NeedsDatabase,
                },
            }),
            ProblemKind::Seam => fixes.push(HourFix {
                hour: f.hour,
                fix: Fix::Kept {
                    reason: KeptReason::LiveSensor,
                },
            }),
            ProblemKind::MissingHistory { to, hours } => {
                let filled: Vec<(i64, f64)> = measured
                    .range(f.hour..to)
                    .map(|(&h, m)| (h, m.kwh))
                    .collect();
                fixes.push(HourFix {
                    hour: f.hour,
                    fix: Fix::Filled {
                        hours,
                        kwh: filled.iter().map(|e| e.1).sum(),
                    },
                });
                energy.extend(filled);
                // Before a chain's first row: that row's change (unknown until now) gets
                // InfluxDB's energy too, as the row after a hole does.
                if measured.contains_key(&to) {
                    set(to, &mut energy, &mut fixes);
                }
            }
        }
    }
    fixes.sort_by_key(|f| f.hour);
    fixes.dedup_by_key(|f| f.hour);
    RepairEnergy {
        energy: energy.into_iter().collect(),
        short_term_hours: short.into_iter().collect(),
        next_hour,
        fixes,
    }
}

/// `state` for each hour of `energy` (ascending), as a meter reading (rounded like the live
/// sensor's): the meter continues from the `state` of the row before it in the repaired chain, so a rewritten stretch ends on the reading HA's live
/// compile recorded and the seam with later rows keeps its meter. A row before without a
/// `state` (or none) starts the meter at that row's `sum` (or 0).
pub fn anchored_states(existing: &[StatRow], energy: &[(i64, f64)]) -> Vec<f64> {
    let rows: BTreeMap<i64, StatRow> = existing.iter().map(|r| (r.start, *r)).collect();
    let written: BTreeSet<i64> = energy.iter().map(|e| e.0).collect();
    let mut last_written: Option<(i64, f64)> = None;
    energy
        .iter()
        .map(|&(h, kwh)| {
            let kept_before = rows
                .range(..h)
                .rev()
                .find(|(s, _)| !written.contains(s))
                .map(|(_, r)| *r);
            let base = match (last_written, kept_before) {
                (Some((w, s)), Some(k)) if w > k.start => s,
                (_, Some(k)) => k.state.or(k.sum).unwrap_or(0.0),
                (Some((_, s)), None) => s,
                (None, None) => 0.0,
            };
            let state = crate::meter::meter_reading(base + kwh);
            last_written = Some((h, state));
            state
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(changes: &[f64]) -> Vec<StatRow> {
        let mut sum = 0.0;
        changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                sum += c;
                StatRow {
                    start: i as i64 * HOUR,
                    state: Some(1000.0 + sum),
                    sum: Some(sum),
                }
            })
            .collect()
    }

    fn measured(kwh: &[f64]) -> BTreeMap<i64, Measured> {
        kwh.iter()
            .enumerate()
            .map(|(i, &k)| {
                (
                    i as i64 * HOUR,
                    Measured {
                        kwh: k,
                        complete: true,
                    },
                )
            })
            .collect()
    }

    fn input<'a>(hourly: &'a [StatRow], measured: &'a BTreeMap<i64, Measured>) -> AuditInput<'a> {
        AuditInput {
            hourly,
            short_term: &[],
            measured,
            start: 0,
            end: 100 * HOUR,
            limit_kwh: 30.0,
            tolerance: Tolerance::default(),
            live: None,
            live_lag_secs: 0,
        }
    }

    #[test]
    fn a_clean_chain_has_no_findings_and_small_differences_are_tolerated() {
        let rows = chain(&[0.0, 1.0, 2.0, 0.005, 3.0]);
        let m = measured(&[0.0, 1.009, 2.0, 0.0, 3.02]);
        assert!(audit(&input(&rows, &m)).is_empty());
    }

    #[test]
    fn each_damage_is_found_once_with_its_kind() {
        // hour 2 negative, hour 3 a spike, hours 4-5 stale and hour 6 their energy (an outage).
        let rows = chain(&[0.0, 1.0, -5.0, 40.0, 0.0, 0.0, 3.0, 1.0]);
        let m = measured(&[0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let kinds: Vec<(i64, ProblemKind)> = audit(&input(&rows, &m))
            .iter()
            .map(|f| (f.hour / HOUR, f.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (2, ProblemKind::Negative),
                (3, ProblemKind::Spike { limit_kwh: 30.0 }),
                (4, ProblemKind::Mismatch),
                (5, ProblemKind::Mismatch),
                (6, ProblemKind::Mismatch),
            ]
        );
    }

    #[test]
    fn a_hole_is_repaired_with_its_missing_hours_and_spikes_without_data_are_zeroed() {
        let mut rows = chain(&[0.0, 1.0, 1.0, 1.0, 50.0, 1.0]);
        rows.remove(2); // hour 3's change now spans hour 2 as well
        let mut m = measured(&[0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        m.remove(&(4 * HOUR)); // no data for the spike hour
        let findings = audit(&input(&rows, &m));
        assert_eq!(
            findings[0].kind,
            ProblemKind::Hole { missing_hours: 1 },
            "{findings:?}"
        );
        let plan = plan_repair(&findings, &m, 30.0, false);
        assert_eq!(
            plan.energy,
            vec![(2 * HOUR, 1.0), (3 * HOUR, 1.0), (4 * HOUR, 0.0)]
        );
        assert_eq!(plan.fixes[2].fix, Fix::Zero);
    }

    #[test]
    fn a_hole_where_influxdb_has_no_data_either_is_not_a_problem() {
        let mut rows = chain(&[0.0, 1.0, 0.0, 0.0, 0.4]);
        rows.remove(2);
        rows.remove(2);
        let mut m = measured(&[0.0, 1.0, 1.0, 1.0, 0.4]);
        m.remove(&(2 * HOUR));
        m.remove(&(3 * HOUR));
        assert!(audit(&input(&rows, &m)).is_empty());
        m.get_mut(&(4 * HOUR)).unwrap().kwh = 0.2;
        assert_eq!(
            audit(&input(&rows, &m)).len(),
            1,
            "the hour after must match"
        );
    }

    #[test]
    fn out_of_step_hours_are_rebuilt_only_where_5_minute_rows_can_be_written() {
        let rows = chain(&[0.0, 1.0, 1.0]);
        let short = [StatRow {
            start: 2 * HOUR + 3300,
            state: None,
            sum: Some(7.0),
        }];
        let m = BTreeMap::new();
        let findings = audit(&AuditInput {
            short_term: &short,
            ..input(&rows, &m)
        });
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, ProblemKind::OutOfStep);
        assert_eq!(
            plan_repair(&findings, &m, 30.0, true).short_term_hours,
            [2 * HOUR]
        );
        let kept = plan_repair(&findings, &m, 30.0, false);
        assert!(kept.short_term_hours.is_empty());
        assert!(matches!(kept.fixes[0].fix, Fix::Kept { .. }));
    }

    #[test]
    fn a_live_hour_may_lack_a_poll_of_energy_at_its_end() {
        // Hour 2 compiled live: its last reading came a poll before the boundary, 19 Wh short
        // of InfluxDB's 1.2 kWh.
        let rows = chain(&[0.0, 1.0, 1.181]);
        let m = measured(&[0.0, 1.0, 1.2]);
        let short = [StatRow {
            start: 2 * HOUR + 3300,
            state: Some(1002.181),
            sum: Some(2.181),
        }];
        let live = |lag| {
            audit(&AuditInput {
                short_term: &short,
                live_lag_secs: lag,
                ..input(&rows, &m)
            })
        };
        assert_eq!(live(0)[0].kind, ProblemKind::Mismatch);
        assert!(live(180).is_empty(), "{:?}", live(180));
        // An hour without 5-minute rows was written, not compiled: no allowance.
        let written = audit(&AuditInput {
            live_lag_secs: 180,
            ..input(&rows, &m)
        });
        assert_eq!(written[0].kind, ProblemKind::Mismatch);
    }

    #[test]
    fn the_live_reading_must_continue_the_last_state() {
        let rows = chain(&[0.0, 1.0]);
        let m = BTreeMap::new();
        let with = |live| {
            audit(&AuditInput {
                live: Some(live),
                ..input(&rows, &m)
            })
        };
        assert!(with((1001.5, 600)).is_empty());
        assert_eq!(with((900.0, 600))[0].kind, ProblemKind::Seam);
        assert_eq!(with((1100.0, 600))[0].kind, ProblemKind::Seam);
    }

    #[test]
    fn history_before_the_first_row_and_after_the_last_is_missing_and_holes_are_not() {
        let covered: BTreeSet<i64> = [0, 1, 2, 4, 5, 6, 9, 10, 12].map(|h| h * HOUR).into();
        let rows: BTreeSet<i64> = [4, 6].map(|h| h * HOUR).into();
        let r = |from, to, hours| MissingRange {
            from: from * HOUR,
            to: to * HOUR,
            hours,
        };
        // Hour 5 is a hole (between rows), hour 3 and 11 InfluxDB gaps.
        assert_eq!(missing_history(&covered, &rows), [r(0, 4, 3), r(9, 13, 3)]);
        assert_eq!(missing_history(&covered, &BTreeSet::new()), [r(0, 13, 9)]);
        assert!(missing_history(&BTreeSet::new(), &rows).is_empty());
    }

    #[test]
    fn a_truncated_chain_is_missing_history_until_ha_compiles_past_it() {
        let m = measured(&[1.0; 10]);
        let rows: Vec<StatRow> = chain(&[1.0; 10])[2..6].to_vec();
        let found = audit(&input(&rows, &m));
        assert_eq!(
            found.iter().map(|f| (f.hour, f.kind)).collect::<Vec<_>>(),
            [
                (
                    0,
                    ProblemKind::MissingHistory {
                        to: 2 * HOUR,
                        hours: 2
                    }
                ),
                (
                    6 * HOUR,
                    ProblemKind::MissingHistory {
                        to: 10 * HOUR,
                        hours: 4
                    }
                ),
            ]
        );
        assert_eq!((found[1].found, found[1].expected), (0.0, Some(4.0)));
        // HA compiles the meter again (5-minute rows past the last hour): its next hourly row
        // closes the gap, so only the hours before the chain are missing.
        let short = [StatRow {
            start: 6 * HOUR,
            state: Some(1006.0),
            sum: Some(6.0),
        }];
        let live = audit(&AuditInput {
            short_term: &short,
            ..input(&rows, &m)
        });
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0].hour, 0);
        // No InfluxDB data, nothing missing: a statistic pwsync has no source for.
        assert!(audit(&input(&rows, &BTreeMap::new())).is_empty());
    }

    proptest::proptest! {
        /// Every hour with data outside the chain is in exactly one range, nothing inside the
        /// chain is, and a range holds no row: ranges are what a backfill of them would write.
        #[test]
        fn missing_ranges_are_exactly_the_data_outside_the_chain(
            covered in proptest::collection::btree_set(0i64..120, 0..80),
            rows in proptest::collection::btree_set(0i64..120, 0..40),
        ) {
            let covered: BTreeSet<i64> = covered.into_iter().map(|h| h * HOUR).collect();
            let rows: BTreeSet<i64> = rows.into_iter().map(|h| h * HOUR).collect();
            let ranges = missing_history(&covered, &rows);
            proptest::prop_assert!(ranges.len() <= 2);
            proptest::prop_assert!(ranges.windows(2).all(|w| w[0].to <= w[1].from));
            let outside = |h: i64| match (rows.first(), rows.last()) {
                (Some(&a), Some(&b)) => h < a || h > b,
                _ => true,
            };
            for &h in &covered {
                let n = ranges.iter().filter(|m| (m.from..m.to).contains(&h)).count();
                proptest::prop_assert_eq!(n, usize::from(outside(h)), "hour {}", h);
            }
            for m in &ranges {
                // A range ends where the chain begins, or after its last hour with data.
                let ends = rows.first() == Some(&m.to) || covered.contains(&(m.to - HOUR));
                proptest::prop_assert!(covered.contains(&m.from) && ends, "{:?}", m);
                proptest::prop_assert_eq!(m.hours as usize, covered.range(m.from..m.to).count());
                proptest::prop_assert!(rows.range(m.from..m.to).next().is_none());
            }
            let filled: BTreeSet<i64> = rows
                .iter()
                .copied()
                .chain(ranges.iter().flat_map(|m| covered.range(m.from..m.to).copied()))
                .collect();
            proptest::prop_assert!(missing_history(&covered, &filled).is_empty());
        }

        /// A chain cut to any stretch of InfluxDB's hours (none at all included), repaired as
        /// `plan_repair` decides and spliced, holds InfluxDB's energy in every hour with data
        /// and audits clean.
        #[test]
        fn repairing_missing_history_leaves_a_clean_chain(
            kwh in proptest::collection::vec(proptest::option::of(0.0f64..5.0), 2..60),
            keep in (0usize..60, 0usize..60),
        ) {
            let m: BTreeMap<i64, Measured> = kwh
                .iter()
                .enumerate()
                .filter_map(|(i, k)| k.map(|k| (i as i64 * HOUR, Measured { kwh: k, complete: true })))
                .collect();
            let full: Vec<StatRow> = {
                let mut sum = 0.0;
                m.iter()
                    .map(|(&h, v)| {
                        sum += v.kwh;
                        StatRow { start: h, state: Some(sum), sum: Some(sum) }
                    })
                    .collect()
            };
            let (a, b) = (keep.0.min(keep.1).min(full.len()), keep.0.max(keep.1).min(full.len()));
            let rows = full[a..b].to_vec();
            let findings = audit(&input(&rows, &m));
            let plan = plan_repair(&findings, &m, 30.0, false);
            let states = anchored_states(&rows, &plan.energy);
            let sp = crate::splice::splice(&crate::splice::SpliceInput {
                existing: &rows,
                energy: &plan.energy,
                states: &states,
                incomplete: &[],
                overwrite: true,
            });
            let after = crate::splice::apply_plan(&rows, &sp);
            let again = audit(&input(&after, &m));
            proptest::prop_assert!(again.is_empty(), "{:?} after {:?}", again, findings);
            proptest::prop_assert_eq!(after.len(), m.len());
            for c in crate::stats::hourly_changes_from_zero(&after) {
                proptest::prop_assert!((c.kwh - m[&c.start].kwh).abs() < 1e-9, "{:?}", c);
            }
        }
    }

    #[test]
    fn states_continue_from_the_row_before_each_written_stretch() {
        let rows = chain(&[0.0, 1.0, 9.0, 1.0, 1.0, 9.0]);
        let energy = [(2 * HOUR, 2.0), (3 * HOUR, 1.5), (5 * HOUR, 0.5)];
        let s = anchored_states(&rows, &energy);
        // Row 1 has state 1001; row 4 (kept) has state 1012.
        assert_eq!(s, vec![1003.0, 1004.5, 1012.5]);
    }
}
