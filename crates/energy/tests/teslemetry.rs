//! Properties of the Teslemetry extraction: hourly energy is the difference of sums whatever the
//! state does, and untrustworthy hours are rejected, never invented.

use proptest::prelude::*;
use pwsync_energy::stats::HourIssue;
use pwsync_energy::teslemetry::{hourly_energy, rows_to_kwh};
use pwsync_energy::{StatRow, HOUR};

const T0: i64 = 1_735_689_600;
const LIMIT: f64 = 30.0;

proptest! {
    #[test]
    fn daily_resetting_state_with_continuous_sum_gives_the_sum_differences(
        energy in prop::collection::vec(0.0f64..LIMIT, 2..200),
        base in 0.0f64..1e5,
        reset_hour in 0usize..24,
        unit in prop::sample::select(vec![("Wh", 1000.0), ("kWh", 1.0), ("MWh", 0.001)]),
    ) {
        // state counts from 0 each day (Teslemetry), sum never resets (HA).
        let (mut sum, mut state) = (base, 0.0);
        let rows: Vec<StatRow> = energy.iter().enumerate().map(|(i, e)| {
            if i % 24 == reset_hour { state = 0.0; }
            sum += e;
            state += e;
            StatRow { start: T0 + i as i64 * HOUR, state: Some(state * unit.1), sum: Some(sum * unit.1) }
        }).collect();
        let rows = rows_to_kwh(&rows, unit.0).unwrap();
        let out = hourly_energy(&rows, LIMIT);
        prop_assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        prop_assert_eq!(out.energy.len(), energy.len() - 1);
        for (i, &(h, kwh)) in out.energy.iter().enumerate() {
            prop_assert_eq!(h, T0 + (i as i64 + 1) * HOUR);
            prop_assert!((kwh - energy[i + 1]).abs() < 1e-6, "hour {}: {} vs {}", i + 1, kwh, energy[i + 1]);
        }
    }

    #[test]
    fn bad_hours_are_rejected_with_their_reason_and_nothing_is_invented(
        hours in prop::collection::vec(
            (prop_oneof![6 => 0.0f64..LIMIT, 1 => -20.0f64..-0.001, 1 => (LIMIT + 0.001)..500.0],
             prop::bool::weighted(0.85)),
            2..200),
    ) {
        let mut sum = 100.0;
        let mut rows = Vec::new();
        for (i, &(e, present)) in hours.iter().enumerate() {
            sum += e;
            if present {
                rows.push(StatRow { start: T0 + i as i64 * HOUR, state: Some(0.0), sum: Some(sum) });
            }
        }
        let out = hourly_energy(&rows, LIMIT);
        // Every change after the first row is either energy or rejected, once.
        prop_assert_eq!(out.energy.len() + out.rejected.len(), rows.len().saturating_sub(1));
        for &(h, kwh) in &out.energy {
            prop_assert!((0.0..=LIMIT).contains(&kwh));
            let i = ((h - T0) / HOUR) as usize;
            prop_assert!(hours[i].1, "energy for an hour without a row");
            prop_assert!(i > 0 && hours[i - 1].1, "energy across a hole");
            prop_assert!((kwh - hours[i].0).abs() < 1e-6);
        }
        for r in &out.rejected {
            let i = ((r.start - T0) / HOUR) as usize;
            let missing = (0..i).rev().take_while(|&j| !hours[j].1).count() as i64;
            let want = if r.kwh < -1e-6 {
                HourIssue::Negative
            } else if missing > 0 {
                HourIssue::AcrossHole { missing_hours: missing }
            } else {
                HourIssue::AboveLimit { limit_kwh: LIMIT }
            };
            prop_assert_eq!(r.reason, want);
            if missing == 0 {
                prop_assert!((r.kwh - hours[i].0).abs() < 1e-6);
            }
        }
        let negatives = out.rejected.iter().filter(|r| r.reason == HourIssue::Negative).count();
        let contiguous_negative = (1..hours.len()).filter(|&i| hours[i].1 && hours[i - 1].1 && hours[i].0 < 0.0).count();
        prop_assert!(negatives >= contiguous_negative);
    }
}
