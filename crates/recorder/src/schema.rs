//! Which recorder schemas pwsync knows, and what differs between them.
//!
//! Checked against HA's `db_schema.py` and `migration.py`:
//! - 50 (HA 2025.4): `statistics_meta.mean_type` SMALLINT NOT NULL (added in 49; a fresh
//!   database has no DB default, a migrated one has DEFAULT 0) and `has_mean` unused (set NULL
//!   by the migration to 50); `statistics.mean_weight` (added in 49).
//! - 51: first added `statistics_meta.unit_class`; HA later emptied this migration step, so a
//!   database at 51 may or may not have the column.
//! - 52: adds `statistics_meta.unit_class` VARCHAR(255) where missing and fills it.
//! - 53: same columns (MySQL only: table character sets corrected).
//!
//! And against the databases real HA releases create in the tests, on SQLite, MariaDB and
//! PostgreSQL: HA 2025.4.4 (schema 50) and HA 2026.11.0 (schema 53, its `db_schema.py`'s
//! `SCHEMA_VERSION`; `statistics_meta` has `mean_type` and `unit_class`). The versions are read
//! from each database in `crates/recorder/tests` (see `pwsync_testkit::ha_chroot::TESTED`).
//!
//! Column lists are taken from the database itself, so the optional columns are written only
//! where they exist.

use std::ops::RangeInclusive;

/// Recorder schema versions pwsync reads and writes.
pub const SUPPORTED: RangeInclusive<i32> = 50..=53;

/// Columns every supported version has in `statistics_meta`.
pub(crate) const META_COLUMNS: &[&str] = &[
    "id",
    "statistic_id",
    "source",
    "unit_of_measurement",
    "has_mean",
    "has_sum",
    "name",
    "mean_type",
];

/// Columns every supported version has in `statistics` and `statistics_short_term`.
pub(crate) const STAT_COLUMNS: &[&str] = &[
    "id",
    "created",
    "created_ts",
    "metadata_id",
    "start",
    "start_ts",
    "mean",
    "min",
    "max",
    "last_reset",
    "last_reset_ts",
    "state",
    "sum",
];

/// The optional columns found in the database at hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    /// `statistics_meta.unit_class` (schema 52+, maybe 51).
    pub unit_class: bool,
}

/// Why a version is refused, as one line naming the fix; `None` when supported.
pub fn refusal(version: i32) -> Option<String> {
    let (lo, hi) = (SUPPORTED.start(), SUPPORTED.end());
    if version < *lo {
        Some(format!(
            "recorder schema version {version} is older than pwsync supports ({lo}-{hi}): \
             upgrade Home Assistant to 2025.4 or newer and start it once so it migrates the \
             database, or use the websocket target"
        ))
    } else if version > *hi {
        Some(format!(
            "recorder schema version {version} is newer than pwsync knows ({lo}-{hi}): \
             update pwsync, or use the websocket target"
        ))
    } else {
        None
    }
}

/// An energy unit HA stores statistics in, as a power of 1000 Wh relative to kWh
/// (Wh = -1, kWh = 0, MWh = 1, GWh = 2). Multiplying or dividing by a power of 1000 keeps
/// values exact where they can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnergyUnit(i32);

impl EnergyUnit {
    /// `None` for units that are not energy (or are none).
    pub fn parse(unit: Option<&str>) -> Option<Self> {
        match unit? {
            "Wh" => Some(EnergyUnit(-1)),
            "kWh" => Some(EnergyUnit(0)),
            "MWh" => Some(EnergyUnit(1)),
            "GWh" => Some(EnergyUnit(2)),
            _ => None,
        }
    }

    fn scale(self) -> f64 {
        1000f64.powi(self.0.abs())
    }

    /// A value in this unit, in kWh.
    pub fn to_kwh(self, v: f64) -> f64 {
        if self.0 >= 0 {
            v * self.scale()
        } else {
            v / self.scale()
        }
    }

    /// A value in kWh, in this unit.
    pub fn from_kwh(self, kwh: f64) -> f64 {
        if self.0 >= 0 {
            kwh / self.scale()
        } else {
            kwh * self.scale()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_version_and_the_fix() {
        assert!(refusal(50).is_none() && refusal(53).is_none());
        let old = refusal(48).unwrap();
        assert!(old.contains("48") && old.contains("upgrade Home Assistant"));
        let new = refusal(54).unwrap();
        assert!(new.contains("54") && new.contains("update pwsync"));
        assert!(!new.contains('\n'));
    }

    #[test]
    fn energy_units_convert_to_kwh_and_back() {
        let wh = EnergyUnit::parse(Some("Wh")).unwrap();
        assert_eq!(wh.to_kwh(1500.0), 1.5);
        assert_eq!(wh.from_kwh(1.5), 1500.0);
        let mwh = EnergyUnit::parse(Some("MWh")).unwrap();
        assert_eq!(mwh.to_kwh(0.25), 250.0);
        assert_eq!(mwh.from_kwh(250.0), 0.25);
        assert_eq!(EnergyUnit::parse(Some("kWh")).unwrap().to_kwh(3.7), 3.7);
        assert_eq!(EnergyUnit::parse(Some("W")), None);
        assert_eq!(EnergyUnit::parse(None), None);
    }
}
