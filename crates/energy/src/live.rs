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

/// The shift that makes HA's live 5-minute chain continue the hourly chain before it.
///
/// HA compiles a meter from its latest 5-minute row; a meter with none (a new sensor, or hourly
/// history imported through the websocket, which cannot write 5-minute rows) starts its sum at 0
/// below years of imported history: a huge negative hour at the seam. The chain is right when
/// the newest 5-minute row `short` continues the last hourly row `prev` by the meter's growth:
/// `short.sum = prev.sum + (short.state − prev.state)`. `meter_at_prev_end` is pwsync's meter at
/// the end of `prev`'s hour: when `prev.state` is not on that scale (migrated rows, a foreign
/// chain) the state difference means nothing and no shift is proposed (repair handles those).
/// Returns the amount to add to every row from `prev`'s end on, if it exceeds `tolerance_kwh`.
pub fn seam_shift(
    prev: &crate::StatRow,
    short: &crate::StatRow,
    meter_at_prev_end: f64,
    tolerance_kwh: f64,
) -> Option<f64> {
    let (ps, pm, ss, sm) = (prev.sum?, prev.state?, short.sum?, short.state?);
    if ![ps, pm, ss, sm].iter().all(|v| v.is_finite()) || sm < pm {
        return None;
    }
    if (pm - meter_at_prev_end).abs() > tolerance_kwh {
        return None;
    }
    let delta = ps + (sm - pm) - ss;
    (delta.abs() > tolerance_kwh).then_some(delta)
}

#[cfg(test)]
mod seam_tests {
    use super::*;
    use crate::StatRow;

    fn row(start: i64, state: f64, sum: f64) -> StatRow {
        StatRow {
            start,
            state: Some(state),
            sum: Some(sum),
        }
    }

    #[test]
    fn a_fresh_live_chain_is_moved_onto_the_imported_history() {
        // Imported: sum 20,000 kWh at the end of hour 0, meter 5,000 kWh. HA's first 5-minute
        // row of the live sensor: sum from 0, meter 5,001.5 kWh.
        let prev = row(0, 5000.0, 20_000.0);
        let short = row(HOUR + 600, 5001.5, 0.25);
        let d = seam_shift(&prev, &short, 5000.0, 0.05).unwrap();
        assert!((short.sum.unwrap() + d - 20_001.5).abs() < 1e-9);
        // Continuous already (up to a poll's worth): nothing.
        let ok = row(HOUR + 600, 5001.5, 20_001.49);
        assert_eq!(seam_shift(&prev, &ok, 5000.0, 0.05), None);
        // The previous row is not on pwsync's meter scale: no guess.
        let foreign = row(0, 20_000.0, 20_000.0);
        assert_eq!(seam_shift(&foreign, &short, 5000.0, 0.05), None);
        // A meter reading below the row before (a reset): not this function's business.
        assert_eq!(seam_shift(&prev, &row(HOUR, 10.0, 0.0), 5000.0, 0.05), None);
    }
}
