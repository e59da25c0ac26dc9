//! The live sensors' values, from the data of one poll.
//!
//! A [`LiveMeter`] is the lifetime meter (energy since the first InfluxDB point) kept as a base
//! up to an *anchor* instant plus the tail since it. The base is computed once at start; each poll
//! integrates only the tail (samples from `anchor − gap_limit` on) with [`crate::integrate`], the
//! same trapezoids and gap policy as the backfill, so the published value at an hour's end is
//! exactly the `state` the backfill wrote for that hour. Settled minutes move into the base.
//! The published value never decreases: InfluxDB revising recent minutes, or a retained value
//! from before a restart that is higher, holds it until the data passes it.

use crate::hourly::{integrate, Sample};
use crate::meter::READING_STEP;
use crate::HOUR;

/// The lifetime meter of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveMeter {
    anchor: i64,
    base_kwh: f64,
    published: f64,
}

impl LiveMeter {
    /// A meter whose value at `anchor` is `base_kwh` (energy from the first point to `anchor`).
    pub fn new(anchor: i64, base_kwh: f64) -> Self {
        LiveMeter {
            anchor,
            base_kwh,
            published: 0.0,
        }
    }

    pub fn anchor(&self) -> i64 {
        self.anchor
    }

    /// Never publish less than `kwh` (the value read back from before a restart).
    pub fn hold_at_least(&mut self, kwh: f64) {
        if kwh.is_finite() && kwh > self.published {
            self.published = kwh;
        }
    }

    /// The meter at `t` (≥ the anchor), from a poll's samples (which start at or before
    /// `anchor − gap_limit`).
    pub fn value_at(&self, samples: &[Sample], t: i64, gap_limit: i64) -> f64 {
        if t <= self.anchor {
            return self.base_kwh;
        }
        self.base_kwh + integrate(samples, self.anchor, t, HOUR, gap_limit).total_wh() / 1000.0
    }

    /// The value to publish after a poll: the meter at the newest sample, never below what was
    /// published before. Then everything before `settled` (minutes InfluxDB will not revise any
    /// more) moves into the base, so the next poll reads less.
    pub fn update(&mut self, samples: &[Sample], gap_limit: i64, settled: i64) -> f64 {
        let newest = samples.last().map(|s| s.t).unwrap_or(self.anchor);
        let now = self.value_at(samples, newest, gap_limit);
        if now > self.published {
            self.published = now;
        }
        if settled > self.anchor {
            let to = settled.min(newest.max(self.anchor));
            self.base_kwh = self.value_at(samples, to, gap_limit);
            self.anchor = to;
        }
        self.published
    }

    pub fn published(&self) -> f64 {
        self.published
    }
}

/// Battery level on the Tesla app's scale from the gateway's (the app hides the bottom 5 %).
pub fn app_battery_level(gateway_percent: f64) -> f64 {
    ((gateway_percent - 5.0) / 0.95).clamp(0.0, 100.0)
}

/// Below this many watts a flow counts as idle (gateway noise).
pub const IDLE_WATTS: f64 = 50.0;

/// `charging`, `discharging` or `idle` from the battery's two flows.
pub fn battery_state(to_pw: f64, from_pw: f64) -> &'static str {
    if to_pw > IDLE_WATTS && to_pw >= from_pw {
        "charging"
    } else if from_pw > IDLE_WATTS {
        "discharging"
    } else {
        "idle"
    }
}

/// `importing`, `exporting` or `idle` from the grid's two flows.
pub fn grid_state(from_grid: f64, to_grid: f64) -> &'static str {
    if from_grid > IDLE_WATTS && from_grid >= to_grid {
        "importing"
    } else if to_grid > IDLE_WATTS {
        "exporting"
    } else {
        "idle"
    }
}

/// `grid.http` `grid_status` as HA's enum: 1 on grid, 0 islanded, −1 syncing.
pub fn island_status(grid_status: i64) -> Option<&'static str> {
    match grid_status {
        1 => Some("on_grid"),
        0 => Some("off_grid"),
        -1 => Some("syncing"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn series(watts: &[f64], step: i64) -> Vec<Sample> {
        watts
            .iter()
            .enumerate()
            .map(|(i, w)| Sample::new(i as i64 * step, *w))
            .collect()
    }

    proptest! {
        /// Polled in any number of windows, the meter equals one integral over everything, and
        /// what it publishes never decreases.
        #[test]
        fn polls_add_up_to_the_integral(
            watts in prop::collection::vec(0.0f64..12_000.0, 2..400),
            cuts in prop::collection::vec(1usize..400, 0..8),
            gap_at in prop::option::of(1usize..400),
        ) {
            let gap_limit = 300;
            let mut s = series(&watts, 60);
            if let Some(g) = gap_at.filter(|g| *g < s.len()) {
                for x in &mut s[g..] { x.t += 3600; }
            }
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c < s.len()).collect();
            cuts.sort();
            cuts.push(s.len());
            let mut m = LiveMeter::new(s[0].t, 0.0);
            let mut last = 0.0;
            for c in cuts {
                // What a poll sees: everything from anchor − gap_limit up to the cut.
                let from = m.anchor() - gap_limit;
                let window: Vec<Sample> = s[..c].iter().copied().filter(|x| x.t >= from).collect();
                let settled = window.last().map(|x| x.t - 600).unwrap_or(0);
                let v = m.update(&window, gap_limit, settled);
                prop_assert!(v >= last);
                last = v;
            }
            let newest = s.last().unwrap().t;
            let whole = integrate(&s, s[0].t, newest, HOUR, gap_limit).total_wh() / 1000.0;
            prop_assert!((last - whole).abs() < 1e-9 * whole.max(1.0), "{} vs {}", last, whole);
        }
    }

    #[test]
    fn revised_minutes_and_a_higher_retained_value_hold_the_meter() {
        let s = series(&[1000.0; 61], 60);
        let mut m = LiveMeter::new(0, 5.0);
        assert!((m.update(&s, 300, 0) - 6.0).abs() < 1e-12);
        // The last minutes revised to 0 W: the meter holds.
        let mut revised = s.clone();
        for x in &mut revised[50..] {
            x.w = 0.0;
        }
        assert!((m.update(&revised, 300, 0) - 6.0).abs() < 1e-12);
        m.hold_at_least(7.5);
        assert_eq!(m.update(&s, 300, 0), 7.5);
    }

    #[test]
    fn settled_minutes_move_into_the_base() {
        let s = series(&[1200.0; 121], 60);
        let mut m = LiveMeter::new(0, 0.0);
        m.update(&s, 300, 3600);
        assert_eq!(m.anchor(), 3600);
        assert!((m.value_at(&s, 3600, 300) - 1.2).abs() < 1e-12);
        // The next poll only needs samples from the anchor on.
        let tail: Vec<Sample> = s.iter().copied().filter(|x| x.t >= 3600 - 300).collect();
        assert!((m.update(&tail, 300, 3600) - 2.4).abs() < 1e-12);
    }

    #[test]
    fn scales_and_states() {
        assert_eq!(app_battery_level(5.0), 0.0);
        assert_eq!(app_battery_level(100.0), 100.0);
        assert!((app_battery_level(52.5) - 50.0).abs() < 1e-12);
        assert_eq!(battery_state(2000.0, 0.0), "charging");
        assert_eq!(battery_state(0.0, 30.0), "idle");
        assert_eq!(grid_state(0.0, 800.0), "exporting");
        assert_eq!(island_status(0), Some("off_grid"));
        assert_eq!(island_status(7), None);
    }
}

/// What the seam guard finds at the seam of HA's live 5-minute chain and the hourly chain
/// before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seam {
    /// The newest 5-minute row continues the hourly chain to within a reading step.
    Continuous,
    /// Add `delta` (kWh) to every row from the hourly row's end on. `below_by` is how far the
    /// live reading is below the hourly row's `state` (0 when it is not): the chain carries
    /// `max(0, reading − state)` across the seam, so it never falls there.
    Shift { delta: f64, below_by: f64 },
    /// The live reading is below the hourly row's `state` by `below_by` (more than a reading
    /// step) and the chain already continues with no growth: nothing to move, but the
    /// live meter is behind what was written for that hour.
    Below { below_by: f64 },
    /// The hourly row's `state` is not pwsync's meter at its end (migrated rows, a foreign
    /// chain): the state difference means nothing there, `check` and `repair` handle it.
    Foreign,
    /// A row has no `state` or `sum`, or one that is not finite.
    Incomplete,
}

/// The seam between the last hourly row `prev` and HA's newest 5-minute row `short` after it.
///
/// HA compiles a meter from its latest 5-minute row; a meter with none (a new sensor, or hourly
/// history imported through the websocket, which cannot write 5-minute rows) starts its sum at 0
/// below years of imported history: a huge negative hour at the seam. The chain is right when
/// `short` continues `prev` by the meter's growth since: `short.sum = prev.sum + growth`, with
/// `growth = short.state − prev.state`. A reading equal to the state (an idle meter, the common
/// case at night) has growth 0; a reading below it (a rounding apart, or a meter behind the
/// written history) also counts as 0, never as a decrease: HA compares later readings with the
/// 5-minute row's own state, so the chain stays non-decreasing either way.
///
/// `meter_at_prev_end` is pwsync's meter at the end of `prev`'s hour: when `prev.state` is
/// further than `scale_tolerance` from it, `prev` is not on pwsync's scale ([`Seam::Foreign`]).
pub fn seam(
    prev: &crate::StatRow,
    short: &crate::StatRow,
    meter_at_prev_end: f64,
    scale_tolerance: f64,
) -> Seam {
    let (Some(ps), Some(pm), Some(ss), Some(sm)) = (prev.sum, prev.state, short.sum, short.state)
    else {
        return Seam::Incomplete;
    };
    if ![ps, pm, ss, sm, meter_at_prev_end]
        .iter()
        .all(|v| v.is_finite())
    {
        return Seam::Incomplete;
    }
    if (pm - meter_at_prev_end).abs() > scale_tolerance {
        return Seam::Foreign;
    }
    let below_by = if pm - sm > READING_STEP { pm - sm } else { 0.0 };
    let delta = ps + (sm - pm).max(0.0) - ss;
    match (delta.abs() > READING_STEP, below_by > 0.0) {
        (true, _) => Seam::Shift { delta, below_by },
        (false, true) => Seam::Below { below_by },
        (false, false) => Seam::Continuous,
    }
}

/// HA's 5-minute compile of a `total_increasing` sensor as SPEC §3 describes it: from the
/// latest 5-minute row `(state, sum)`, each reading adds `reading − previous`; a reading below
/// 90 % of the previous one is a meter reset and adds itself whole. Returns `(state, sum)` of
/// the row each reading makes. A model for tests of what pwsync leaves HA to continue from.
pub fn ha_compile(latest: (f64, f64), readings: &[f64]) -> Vec<(f64, f64)> {
    let (mut state, mut sum) = latest;
    readings
        .iter()
        .map(|&r| {
            if r < 0.9 * state {
                sum += r;
            } else {
                sum += r - state;
            }
            state = r;
            (state, sum)
        })
        .collect()
}

#[cfg(test)]
mod seam_tests {
    use super::*;
    use crate::meter::{format_reading, meter_at_hour_ends, meter_reading};
    use crate::StatRow;
    use proptest::prelude::*;

    fn row(start: i64, state: f64, sum: f64) -> StatRow {
        StatRow {
            start,
            state: Some(state),
            sum: Some(sum),
        }
    }

    fn shifted(r: &StatRow, s: Seam) -> StatRow {
        match s {
            Seam::Shift { delta, .. } => StatRow {
                sum: r.sum.map(|v| v + delta),
                ..*r
            },
            _ => *r,
        }
    }

    #[test]
    fn a_fresh_live_chain_is_moved_onto_the_imported_history() {
        // Imported: sum 20,000 kWh at the end of hour 0, meter 5,000 kWh. HA's first 5-minute
        // row of the live sensor: sum from 0, meter 5,001.5 kWh.
        let prev = row(0, 5000.0, 20_000.0);
        let short = row(HOUR + 600, 5001.5, 0.25);
        let Seam::Shift { delta, below_by } = seam(&prev, &short, 5000.0, 0.05) else {
            panic!()
        };
        assert!((short.sum.unwrap() + delta - 20_001.5).abs() < 1e-9);
        assert_eq!(below_by, 0.0);
        // Continuous already: nothing.
        let ok = row(HOUR + 600, 5001.5, 20_001.5);
        assert_eq!(seam(&prev, &ok, 5000.0, 0.05), Seam::Continuous);
        // The previous row is not on pwsync's meter scale: no guess.
        let foreign = row(0, 20_000.0, 20_000.0);
        assert_eq!(seam(&foreign, &short, 5000.0, 0.05), Seam::Foreign);
        assert_eq!(
            seam(&StatRow { sum: None, ..prev }, &short, 5000.0, 0.05),
            Seam::Incomplete
        );
    }

    #[test]
    fn an_idle_meter_a_rounding_below_the_state_still_moves_the_chain() {
        // The numbers: the backfilled state at full precision, the published reading
        // rounded, HA's fresh chain at 0.
        let prev = row(0, 462.0808444756, 1234.5);
        let short = row(HOUR + 300, 462.080844, 0.0);
        let s = seam(&prev, &short, 462.0808444756, 0.01);
        assert_eq!(
            s,
            Seam::Shift {
                delta: 1234.5,
                below_by: 0.0
            }
        );
        // Further below (the live meter behind the written history): moved with no growth,
        // and said so.
        let behind = row(HOUR + 300, 461.0, 0.0);
        let Seam::Shift { delta, below_by } = seam(&prev, &behind, 462.0808444756, 0.01) else {
            panic!()
        };
        assert_eq!(delta, 1234.5);
        assert!((below_by - 1.0808444756).abs() < 1e-9);
        let moved = row(HOUR + 300, 461.0, 1234.5);
        assert!(matches!(
            seam(&prev, &moved, 462.0808444756, 0.01),
            Seam::Below { .. }
        ));
    }

    /// The hourly rows HA shows for a 5-minute chain: each hour copies its last 5-minute row.
    fn hourly_of(short: &[StatRow]) -> Vec<StatRow> {
        let mut out: Vec<StatRow> = Vec::new();
        for r in short {
            let h = crate::floor_hour(r.start);
            match out.last_mut() {
                Some(last) if last.start == h => *last = StatRow { start: h, ..*r },
                _ => out.push(StatRow { start: h, ..*r }),
            }
        }
        out
    }

    proptest! {
        /// Backfilled hours (state = the rounded meter at each hour's end), then a live sensor
        /// publishing the rounded meter; HA compiles every 5 minutes from its latest 5-minute
        /// row (from scratch: sum 0 at its first reading), the seam guard runs between compiles.
        /// HA's chain across the seam is then non-decreasing and continuous: the first live hour
        /// holds exactly the meter's growth since the last backfilled hour.
        #[test]
        fn the_chain_ha_compiles_is_continuous_and_non_decreasing_across_the_seam(
            hours in prop::collection::vec(prop::option::of(0.0f64..6.0), 1..24),
            live in prop::collection::vec(prop::option::of(0.0f64..0.6), 1..36),
            base in 0.0f64..5000.0,
            sum_offset in 0.0f64..50_000.0,
            guard_after in 1usize..6,
        ) {
            // Energy per hour as a float sum in another order than the live meter's, as
            // backfill and serve compute it (None: an idle hour at night).
            let buckets: Vec<crate::Bucket> = hours.iter().enumerate().map(|(i, e)| crate::Bucket {
                start: i as i64 * HOUR,
                wh: e.map_or(0.0, |k| k * 1000.0),
                covered: HOUR,
            }).collect();
            let integ = crate::Integration { bucket: HOUR, buckets, gaps: vec![], first: None, last: None };
            let ends = meter_at_hour_ends(&integ, base);
            let mut sum = sum_offset;
            let mut prev_meter = base;
            let backfilled: Vec<StatRow> = ends.iter().map(|&(h, m)| {
                sum += m - prev_meter;
                prev_meter = m;
                row(h, meter_reading(m), sum)
            }).collect();
            let last = *backfilled.last().unwrap();
            let seam_start = last.start + HOUR;
            // The live meter: the same energy summed its own way, then each poll's growth.
            let mut meter = base + hours.iter().map(|e| e.unwrap_or(0.0)).sum::<f64>();
            let readings: Vec<f64> = live.iter().map(|g| {
                meter += g.unwrap_or(0.0);
                format_reading(meter).parse::<f64>().unwrap()
            }).collect();
            // HA: its first reading starts the chain at sum 0; the guard moves it.
            let mut short: Vec<StatRow> = Vec::new();
            for (i, r) in readings.iter().enumerate() {
                let t = seam_start + i as i64 * crate::FIVE_MIN;
                let (state, sum) = match short.last() {
                    None => (*r, 0.0),
                    Some(l) => ha_compile((l.state.unwrap(), l.sum.unwrap()), &[*r])[0],
                };
                short.push(row(t, state, sum));
                if i + 1 >= guard_after.min(readings.len()) {
                    let s = seam(&last, short.last().unwrap(), ends.last().unwrap().1, 0.01);
                    prop_assert!(!matches!(s, Seam::Foreign | Seam::Incomplete), "{s:?}");
                    short = short.iter().map(|x| shifted(x, s)).collect();
                }
            }
            let mut chain = backfilled.clone();
            chain.extend(hourly_of(&short));
            for w in chain.windows(2) {
                let change = w[1].sum.unwrap() - w[0].sum.unwrap();
                prop_assert!(change >= -1e-9, "a negative hour {change} at {}: {chain:?}", w[1].start);
            }
            // Continuous: the first live hour holds the growth of the readings since the
            // last backfilled state, not the lifetime.
            let first_live = hourly_of(&short)[0];
            let growth = (first_live.state.unwrap() - last.state.unwrap()).max(0.0);
            let change = first_live.sum.unwrap() - last.sum.unwrap();
            prop_assert!((change - growth).abs() < 1e-6, "{change} vs {growth}");
        }
    }
}
