//! Generators shared by the property tests.
#![allow(dead_code)]

use proptest::prelude::*;
use pwsync_energy::Sample;

/// One step of a generated power series.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// The usual 1-minute point.
    Minute,
    /// A short irregular step (telegraf jitter, sub-minute raw data).
    Short(i64),
    /// A longer step, often beyond the gap limit (outages).
    Long(i64),
    /// The same time again (a revised value; the later one counts).
    Repeat,
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => Just(Step::Minute),
        3 => (1i64..300).prop_map(Step::Short),
        2 => (300i64..20_000).prop_map(Step::Long),
        1 => Just(Step::Repeat),
    ]
}

/// Watts, mostly within a house's range, sometimes negative (clamped to 0 by the core).
pub fn watts() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0f64..12_000.0,
        1 => Just(0.0),
        1 => -500.0f64..0.0,
    ]
}

/// A series sorted by time (repeated times allowed), starting near `t0`.
pub fn series(max_len: usize) -> impl Strategy<Value = Vec<Sample>> {
    (
        1_600_000_000i64..1_800_000_000,
        prop::collection::vec((step(), watts()), 1..max_len),
    )
        .prop_map(|(t0, steps)| {
            let mut t = t0;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (s, w))| {
                    if i > 0 {
                        t += match s {
                            Step::Minute => 60,
                            Step::Short(d) | Step::Long(d) => d,
                            Step::Repeat => 0,
                        };
                    }
                    Sample::new(t, w)
                })
                .collect()
        })
}

/// A series on whole minutes with unique times (InfluxDB's 1-minute means), some gaps.
pub fn minute_series(max_len: usize) -> impl Strategy<Value = Vec<Sample>> {
    (
        (26_666_666i64..30_000_000).prop_map(|m| m * 60),
        prop::collection::vec(
            (
                prop_oneof![10 => Just(1i64), 2 => 2i64..6, 1 => 6i64..400],
                0.0f64..12_000.0,
            ),
            1..max_len,
        ),
    )
        .prop_map(|(t0, steps)| {
            let mut t = t0;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (m, w))| {
                    if i > 0 {
                        t += m * 60;
                    }
                    Sample::new(t, w)
                })
                .collect()
        })
}

/// |a − b| within a tolerance relative to the magnitude (float sums in different orders).
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}
