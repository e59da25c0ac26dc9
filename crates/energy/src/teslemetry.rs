//! Hourly energy from a foreign energy statistic (Teslemetry, Tesla Fleet, Tessie, the local
//! Powerwall integration), for `migrate`.
//!
//! Those sensors' `state` resets daily and their `sum` lives on their own scale, so neither can
//! be copied. HA keeps `sum` continuous across the resets, so the difference of consecutive sums
//! is the hour's energy; that energy is then spliced into pwsync's own meters. Hours that cannot
//! be trusted are reported, never repaired by guessing.

use crate::stats::{classify, hourly_changes, HourIssue, StatRow};
use serde::{Deserialize, Serialize};

/// An hour left out of the migration, and why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// Start of the hour the change was recorded in.
    pub start: i64,
    /// The change of `sum` that was rejected, kWh.
    pub kwh: f64,
    /// Why the hour cannot be trusted.
    pub reason: HourIssue,
}

/// Hourly energy of a source statistic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceEnergy {
    /// `(hour start, kWh)`, ascending, each ≥ 0: ready for [`crate::splice::splice`].
    pub energy: Vec<(i64, f64)>,
    /// Changes left out, for the migration report.
    pub rejected: Vec<Rejected>,
}

/// Hourly energy from a source statistic's hourly rows (kWh, ascending): differences of
/// consecutive `sum`s, whatever `state` does. Rejected, with a reason: non-numbers, negative
/// hours, a change across missing hours (its energy cannot be placed), and hours above
/// `max_kwh_per_hour`. The first row only anchors the chain: its own hour's energy is unknown.
/// Float noise below [`crate::stats::NEGATIVE_TOLERANCE`] is taken as 0.
pub fn hourly_energy(rows: &[StatRow], max_kwh_per_hour: f64) -> SourceEnergy {
    let mut out = SourceEnergy::default();
    for c in hourly_changes(rows) {
        match classify(&c, max_kwh_per_hour) {
            Some(reason) => out.rejected.push(Rejected {
                start: c.start,
                kwh: c.kwh,
                reason,
            }),
            None => out.energy.push((c.start, c.kwh.max(0.0))),
        }
    }
    out
}

/// A unit that is not an energy unit pwsync can convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported energy unit '{0}': expected Wh, kWh, MWh or GWh")]
pub struct UnitError(pub String);

/// Factor from `unit` to kWh. Case-sensitive on purpose: `mWh` and `MWh` differ by 10⁹.
pub fn kwh_factor(unit: &str) -> Result<f64, UnitError> {
    match unit.trim() {
        "Wh" => Ok(1e-3),
        "kWh" => Ok(1.0),
        "MWh" => Ok(1e3),
        "GWh" => Ok(1e6),
        _ => Err(UnitError(unit.to_string())),
    }
}

/// `value` in `unit`, in kWh.
pub fn to_kwh(value: f64, unit: &str) -> Result<f64, UnitError> {
    Ok(value * kwh_factor(unit)?)
}

/// Rows of a statistic recorded in `unit`, with `state` and `sum` in kWh.
pub fn rows_to_kwh(rows: &[StatRow], unit: &str) -> Result<Vec<StatRow>, UnitError> {
    let f = kwh_factor(unit)?;
    Ok(rows
        .iter()
        .map(|r| StatRow {
            start: r.start,
            state: r.state.map(|v| v * f),
            sum: r.sum.map(|v| v * f),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HOUR;

    fn row(h: i64, state: f64, sum: f64) -> StatRow {
        StatRow {
            start: h * HOUR,
            state: Some(state),
            sum: Some(sum),
        }
    }

    #[test]
    fn differences_of_sum_survive_a_daily_reset() {
        // state resets to 0 at hour 2; sum keeps counting.
        let rows = [
            row(0, 10.0, 100.0),
            row(1, 11.0, 101.0),
            row(2, 0.5, 101.5),
            row(3, 2.5, 103.5),
        ];
        let e = hourly_energy(&rows, 20.0);
        assert_eq!(
            e.energy,
            vec![(HOUR, 1.0), (2 * HOUR, 0.5), (3 * HOUR, 2.0)]
        );
        assert!(e.rejected.is_empty());
    }

    #[test]
    fn negative_impossible_and_across_hole_hours_are_rejected() {
        let rows = [
            row(0, 0.0, 10.0),
            row(1, 0.0, 9.0),
            row(2, 0.0, 60.0),
            row(5, 0.0, 63.0),
            row(6, 0.0, 64.0),
        ];
        let e = hourly_energy(&rows, 20.0);
        assert_eq!(e.energy, vec![(6 * HOUR, 1.0)]);
        let reasons: Vec<_> = e.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            vec![
                HourIssue::Negative,
                HourIssue::AboveLimit { limit_kwh: 20.0 },
                HourIssue::AcrossHole { missing_hours: 2 },
            ]
        );
    }

    #[test]
    fn units() {
        assert_eq!(to_kwh(1500.0, "Wh").unwrap(), 1.5);
        assert_eq!(to_kwh(2.0, "MWh").unwrap(), 2000.0);
        assert_eq!(to_kwh(2.0, " kWh ").unwrap(), 2.0);
        assert!(to_kwh(1.0, "mWh").is_err());
        assert!(to_kwh(1.0, "W").is_err());
        let rows = rows_to_kwh(&[row(0, 1000.0, 2000.0)], "Wh").unwrap();
        assert_eq!((rows[0].state, rows[0].sum), (Some(1.0), Some(2.0)));
    }
}
