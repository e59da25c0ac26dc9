//! `repair`: plan the write that fixes each statistic `check` finds wrong (a splice with
//! overwrite of the bad hours, and, where the store writes them, the 5-minute rows), then
//! apply it once.

use super::survey::{survey, Surveyed};
use super::{report, resolve_range, CheckOptions, CheckReport};
use crate::JobError;
use pwsync_energy::audit::{anchored_states, plan_repair, Finding, HourFix, ProblemKind};
use pwsync_energy::live::ha_compile;
use pwsync_energy::splice::{
    apply_plan, apply_short_term, splice, splice_short_term, SpliceInput, SplicePlan,
};
use pwsync_energy::{Shift, StatRow, HOUR};
use pwsync_store::{EnergySource, StatMeta, StatWrite, StatisticsStore, WritePlan};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StatisticRepair {
    pub statistic_id: String,
    pub fixes: Vec<HourFix>,
    pub rows_written: usize,
    pub shifts: usize,
    pub short_term_rows: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    /// What `check` found before the repair.
    pub check: CheckReport,
    pub statistics: Vec<StatisticRepair>,
    /// Hourly and 5-minute rows written (or, on a dry run, that would be).
    pub rows: usize,
}

/// Fix what `check` finds: splice InfluxDB's energy into the bad hours (or 0 kWh where InfluxDB
/// has no data for an impossible hour), and on the recorder database rebuild 5-minute rows that
/// are out of step. Everything in one plan, applied once unless `dry_run`.
pub async fn repair(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &CheckOptions,
    dry_run: bool,
) -> Result<(RepairReport, WritePlan), JobError> {
    let (start, end) = resolve_range(source, opts).await?;
    repair_range(source, store, opts, (start, end), Fill::Missing, dry_run).await
}

/// Whether a repair writes missing history (`repair`, like a backfill) or leaves it to them
/// (`serve`'s hourly heal, which mends damage in hours HA holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    Missing,
    DamageOnly,
}

pub(super) async fn repair_range(
    source: &dyn EnergySource,
    store: &dyn StatisticsStore,
    opts: &CheckOptions,
    (start, end): (i64, i64),
    fill: Fill,
    dry_run: bool,
) -> Result<(RepairReport, WritePlan), JobError> {
    let survey = survey(source, store, opts, start, end).await?;
    let mut plan = WritePlan::default();
    let mut statistics = Vec::new();
    for s in &survey.stats {
        let findings: Vec<Finding> = s
            .findings
            .iter()
            .filter(|f| {
                fill == Fill::Missing || !matches!(f.kind, ProblemKind::MissingHistory { .. })
            })
            .copied()
            .collect();
        if findings.is_empty() {
            continue;
        }
        let (write, fixes) =
            plan_statistic(s, &findings, opts.limit_kwh, store.writes_short_term());
        statistics.push(StatisticRepair {
            statistic_id: s.id.clone(),
            fixes,
            rows_written: write.hourly.len(),
            shifts: write.shifts.len(),
            short_term_rows: write.short_term.len(),
        });
        plan.writes.push(write);
    }
    if !dry_run && !plan.is_empty() {
        store.apply(&plan).await?;
    }
    let report = RepairReport {
        dry_run,
        check: report(&survey, opts, store),
        rows: plan.row_count(),
        statistics,
    };
    Ok((report, plan))
}

/// The write that fixes `findings` of one statistic: a splice with overwrite of the hours
/// `plan_repair` chose, and (where the store writes them) its 5-minute rows plus those of
/// out-of-step hours.
fn plan_statistic(
    s: &Surveyed,
    findings: &[Finding],
    limit_kwh: f64,
    short_writable: bool,
) -> (StatWrite, Vec<HourFix>) {
    let decided = plan_repair(findings, &s.measured, limit_kwh, short_writable);
    let states = anchored_states(&s.hourly, &decided.energy);
    let sp = splice(&SpliceInput {
        existing: &s.hourly,
        energy: &decided.energy,
        states: &states,
        incomplete: &[],
        overwrite: true,
    });
    let mut shifts = sp.shifts.clone();
    let mut short_term = Vec::new();
    if short_writable {
        short_term = splice_short_term(&s.short_term, &s.hourly, &sp);
        let (rebuilt, trailing) =
            rebuild_short_term(s, &sp, &decided.short_term_hours, decided.next_hour);
        short_term.extend(rebuilt);
        shifts.extend(trailing);
        short_term.sort_by_key(|r| r.start);
        short_term.dedup_by_key(|r| r.start);
    }
    // Rows are kWh (stores read them converted); a statistic kept in Wh stays in Wh, as the
    // stores convert kWh rows into the statistic's own unit when its metadata says kWh.
    let meta = StatMeta {
        unit_of_measurement: Some("kWh".into()),
        ..s.meta.clone()
    };
    let write = StatWrite {
        meta,
        shifts,
        hourly: sp.rows,
        short_term,
    };
    (write, decided.fixes)
}

/// 5-minute rows of `hours` rebuilt from the repaired hourly chain (the same spread the splice
/// uses), and, when the chain's last hour is among them or `next_hour` asks for it, a shift
/// that carries the 5-minute rows after it (the hour HA compiles next) onto the repaired chain.
///
/// Those rows are moved by what they lack, read from the rows themselves: the first of them
/// must be what HA's compile makes from the last hourly row (the rebuilt last 5-minute row has
/// its `sum` and `state`). Whether they still continue an old, out-of-step 5-minute row or were
/// already moved onto the hourly chain (the seam guard's or a websocket repair's
/// `adjust_sum_statistics` moves them with the hourly rows) does not matter; a shift derived
/// from the old 5-minute row would add the same offset a second time.
fn rebuild_short_term(
    s: &Surveyed,
    sp: &SplicePlan,
    hours: &[i64],
    next_hour: bool,
) -> (Vec<StatRow>, Option<Shift>) {
    if hours.is_empty() && !next_hour {
        return (Vec::new(), None);
    }
    let hourly = apply_plan(&s.hourly, sp);
    let rows: Vec<StatRow> = hourly
        .iter()
        .filter(|r| hours.binary_search(&r.start).is_ok())
        .copied()
        .collect();
    let rebuilt = splice_short_term(
        &s.short_term,
        &hourly,
        &SplicePlan {
            rows,
            ..SplicePlan::default()
        },
    );
    let trailing = hourly.last().and_then(|last| {
        if hours.last() != Some(&last.start) && !next_hour {
            return None;
        }
        let short = apply_short_term(&s.short_term, &sp.shifts, &[]);
        let next = short.iter().find(|r| r.start >= last.start + HOUR)?;
        let want = ha_compile((last.state?, last.sum?), &[next.state?])[0].1;
        let delta = want - next.sum?;
        (delta.abs() > pwsync_energy::splice::EPSILON).then_some(Shift {
            from: last.start + HOUR,
            delta,
        })
    });
    (rebuilt, trailing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use pwsync_energy::audit::{audit, AuditInput, Measured, Tolerance};
    use pwsync_energy::live::{seam, Seam};
    use pwsync_energy::meter::meter_reading;
    use pwsync_energy::splice::apply_writes;
    use pwsync_energy::{floor_hour, Field, FIVE_MIN};
    use std::collections::BTreeMap;

    /// First hour in the checked range.
    const H0: i64 = 1000 * HOUR;
    const LIMIT: f64 = 30.0;

    /// A statistic's rows, as HA holds them.
    #[derive(Debug, Clone)]
    struct Rows {
        hourly: Vec<StatRow>,
        short: Vec<StatRow>,
    }

    impl Rows {
        /// What a store holds after `w`: shifts on both tables (as `adjust_sum_statistics` and
        /// the recorder store do), then upserts.
        fn apply(&mut self, w: &StatWrite) {
            self.hourly = apply_writes(&self.hourly, &w.shifts, &w.hourly, HOUR);
            self.short = apply_short_term(&self.short, &w.shifts, &w.short_term);
        }
    }

    fn surveyed(rows: &Rows, measured: &BTreeMap<i64, Measured>, end: i64) -> Surveyed {
        let findings = audit(&AuditInput {
            hourly: &rows.hourly,
            short_term: &rows.short,
            measured,
            start: H0,
            end,
            limit_kwh: LIMIT,
            tolerance: Tolerance::default(),
            live: None,
            live_lag_secs: 0,
        });
        Surveyed {
            id: "sensor.powerwall_home_usage".into(),
            field: Some(Field::Home),
            meta: StatMeta::energy_kwh("sensor.powerwall_home_usage", "home"),
            hourly: rows.hourly.clone(),
            short_term: rows.short.clone(),
            measured: measured.clone(),
            findings,
        }
    }

    fn repair_rows(rows: &mut Rows, m: &BTreeMap<i64, Measured>, end: i64, db: bool) -> StatWrite {
        let s = surveyed(rows, m, end);
        let (w, _) = plan_statistic(&s, &s.findings, LIMIT, db);
        rows.apply(&w);
        w
    }

    /// The meter (kWh) at `t`: `base` at H0 − 1 h, then each hour's energy spread evenly.
    fn meter(base: f64, energy: &[f64], t: i64) -> f64 {
        let mut m = base;
        for (i, e) in energy.iter().enumerate() {
            let h = H0 - HOUR + i as i64 * HOUR;
            if t >= h + HOUR {
                m += e;
            } else if t > h {
                m += e * (t - h) as f64 / HOUR as f64;
            }
        }
        m
    }

    /// Backfilled hours (state = the rounded meter, as backfill writes it), then HA compiling
    /// the live sensor every 5 minutes from scratch (sum 0 at its first reading, as after a
    /// websocket backfill), the seam guard moving the chain after some compile or never, and
    /// HA copying each hour's last 5-minute row into the hourly row.
    fn seam_scenario(
        base: f64,
        energy: &[f64],
        backfilled: usize,
        compiles: usize,
        guard_at: Option<usize>,
    ) -> Rows {
        let mut rows = Rows {
            hourly: Vec::new(),
            short: Vec::new(),
        };
        let offset = 10_000.0;
        for i in 0..=backfilled {
            let end = H0 + i as i64 * HOUR;
            rows.hourly.push(StatRow {
                start: end - HOUR,
                state: Some(meter_reading(meter(base, energy, end))),
                sum: Some(offset + meter(base, energy, end) - base),
            });
        }
        let seam_at = H0 + backfilled as i64 * HOUR;
        for k in 0..compiles {
            let t = seam_at + k as i64 * FIVE_MIN;
            let reading = meter_reading(meter(base, energy, t + FIVE_MIN));
            let (state, sum) = match rows.short.last() {
                None => (reading, 0.0),
                Some(l) => ha_compile((l.state.unwrap(), l.sum.unwrap()), &[reading])[0],
            };
            rows.short.push(StatRow {
                start: t,
                state: Some(state),
                sum: Some(sum),
            });
            if (t + FIVE_MIN) % HOUR == 0 {
                rows.hourly.push(StatRow {
                    start: t + FIVE_MIN - HOUR,
                    state: Some(state),
                    sum: Some(sum),
                });
            }
            if guard_at.is_some_and(|g| k >= g) {
                let newest = *rows.short.last().unwrap();
                let prev = *rows
                    .hourly
                    .iter()
                    .rev()
                    .find(|r| r.start < floor_hour(newest.start))
                    .unwrap();
                let from = prev.start + HOUR;
                let mark = meter(base, energy, from);
                if let Seam::Shift { delta, .. } = seam(&prev, &newest, mark, 0.01) {
                    rows.apply(&StatWrite {
                        meta: StatMeta::energy_kwh("x", "x"),
                        shifts: vec![Shift { from, delta }],
                        hourly: vec![],
                        short_term: vec![],
                    });
                }
            }
        }
        rows
    }

    /// The sequence: the guard never moved an idle meter's fresh chain, HA compiled the
    /// first live hour at sum 0 (a negative hour of the whole history), the websocket heal set
    /// that hour and moved the rows after it, leaving its 5-minute rows out of step; then
    /// `repair --target db` must not move the next hour's rows a second time.
    #[test]
    fn repair_on_the_database_after_a_websocket_heal_moves_the_next_hour_once() {
        let energy = [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut rows = seam_scenario(462.08, &energy, 2, 15, None);
        let end = rows.hourly.last().unwrap().start + HOUR;
        let measured: BTreeMap<i64, Measured> = (0..3)
            .map(|i| {
                (
                    H0 + i * HOUR,
                    Measured {
                        kwh: energy[i as usize + 1],
                        complete: true,
                    },
                )
            })
            .collect();
        let healed = repair_rows(&mut rows, &measured, end, false);
        assert_eq!(healed.hourly.len(), 1, "{healed:?}");
        let kinds: Vec<ProblemKind> = surveyed(&rows, &measured, end)
            .findings
            .iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, [ProblemKind::OutOfStep]);
        repair_rows(&mut rows, &measured, end, true);
        let last = *rows.hourly.last().unwrap();
        let next = rows.short.iter().find(|r| r.start >= end).unwrap();
        assert!(
            (next.sum.unwrap() - last.sum.unwrap()).abs() < 1e-9,
            "the next hour's rows at {} after the hour's {}",
            next.sum.unwrap(),
            last.sum.unwrap()
        );
        assert!(surveyed(&rows, &measured, end).findings.is_empty());
    }

    proptest! {
        /// Whatever the seam guard and HA's compile left (the guard in time, late or never, a
        /// websocket heal before or not), `repair --target db` leaves a clean chain in one run,
        /// a second run plans nothing, and HA's next compile continues it without a step.
        #[test]
        fn repair_on_the_database_is_idempotent_over_every_seam_state(
            energy in prop::collection::vec(prop_oneof![Just(0.0), 0.0f64..4.0], 8),
            base in 0.0f64..2000.0,
            backfilled in 1usize..4,
            compiles in 1usize..40,
            guard_at in prop::option::of(0usize..40),
            heal_first in any::<bool>(),
        ) {
            let mut rows = seam_scenario(base, &energy, backfilled, compiles, guard_at);
            let last = rows.hourly.last().unwrap().start;
            let end = last + HOUR;
            let measured: BTreeMap<i64, Measured> = (0..energy.len() as i64 - 1)
                .map(|i| H0 + i * HOUR)
                .filter(|h| *h < end)
                .map(|h| (h, Measured {
                    kwh: meter(base, &energy, h + HOUR) - meter(base, &energy, h),
                    complete: true,
                }))
                .collect();
            if heal_first {
                repair_rows(&mut rows, &measured, end, false);
            }
            repair_rows(&mut rows, &measured, end, true);
            let again = surveyed(&rows, &measured, end);
            prop_assert!(again.findings.is_empty(), "{:?}\n{rows:?}", again.findings);
            let (w, _) = plan_statistic(&again, &again.findings, LIMIT, true);
            prop_assert!(
                w.hourly.is_empty() && w.shifts.is_empty() && w.short_term.is_empty(),
                "a second repair plans {w:?}"
            );
            // HA's next compiles continue from the latest 5-minute row: the rows after the last
            // hourly row continue it as HA's compile would (no doubled offset), to the
            // 5-minute tolerance `check` applies.
            let last_row = *rows.hourly.last().unwrap();
            let mut tail: Vec<StatRow> = rows.short.iter().copied().filter(|r| r.start >= end).collect();
            if let Some(latest) = rows.short.last().copied() {
                let next = ha_compile((latest.state.unwrap(), latest.sum.unwrap()), &[latest.state.unwrap() + 0.25])[0];
                tail.push(StatRow { start: latest.start + FIVE_MIN, state: Some(next.0), sum: Some(next.1) });
            }
            let mut prev = (last_row.state.unwrap(), last_row.sum.unwrap());
            for r in tail {
                let want = ha_compile(prev, &[r.state.unwrap()])[0].1;
                let tol = pwsync_energy::audit::SHORT_TERM_TOLERANCE;
                prop_assert!((r.sum.unwrap() - want).abs() < tol, "{r:?} after {prev:?}: HA would make {want}");
                prop_assert!(r.sum.unwrap() >= prev.1 - tol, "a step down at {r:?}");
                prev = (r.state.unwrap(), r.sum.unwrap());
            }
        }
    }
}
