//! The shape of `recorder/import_statistics` metadata, which depends on HA's version.
//!
//! - HA < 2025.11: the schema requires `has_mean` and rejects unknown keys, so `mean_type` and
//!   `unit_class` must not be sent (HA 2025.4 derives `mean_type` from `has_mean` itself).
//! - HA ≥ 2025.11: `has_mean`, `mean_type` and `unit_class` are all optional; a missing
//!   `mean_type` or `unit_class` logs a deprecation ("will stop working in HA Core 2026.11"), and
//!   `has_mean` is only read when `mean_type` is absent. So from 2025.11 on pwsync sends
//!   `mean_type` and `unit_class` and leaves `has_mean` out: that is what 2026.11 requires, and
//!   it does not depend on `has_mean` staying accepted.

use pwsync_store::StatMeta;
use serde_json::{json, Value};

/// The HA releases every end-to-end test ran against (oldest first; CI runs them all, see
/// `pwsync_testkit::ha_chroot::TESTED`). `doctor` says whether the connected HA is one of them.
pub const TESTED_VERSIONS: [&str; 2] = ["2025.4.4", "2026.11.0"];

/// Whether pwsync's tests ran against `ha_version` (the exact release).
pub fn is_tested(ha_version: &str) -> bool {
    TESTED_VERSIONS.contains(&ha_version.trim())
}

/// Which metadata keys an HA version takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataShape {
    /// `has_mean` (HA < 2025.11).
    HasMean,
    /// `mean_type` + `unit_class` (HA ≥ 2025.11).
    MeanType,
}

/// `(year, month)` of an HA version string: "2025.4.4", "2025.12.0.dev0", "2025.11.0b3".
pub fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let year = parts.next()?.parse().ok()?;
    let month_part = parts.next()?;
    let digits: String = month_part
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let month = digits.parse().ok()?;
    Some((year, month))
}

/// The metadata shape for `ha_version`. A version that does not parse is taken as a new one
/// (HA's versions have been `YEAR.MONTH.PATCH` since 2021; anything else is a dev build).
pub fn metadata_shape(ha_version: &str) -> MetadataShape {
    match parse_version(ha_version) {
        Some(v) if v < (2025, 11) => MetadataShape::HasMean,
        _ => MetadataShape::MeanType,
    }
}

/// HA's unit class for a unit, as its statistics know them (`None` where pwsync does not write).
pub fn unit_class(unit: Option<&str>) -> Option<&'static str> {
    match unit? {
        "Wh" | "kWh" | "MWh" | "GWh" | "TWh" | "mWh" | "J" | "kJ" | "MJ" | "GJ" | "cal"
        | "kcal" | "Mcal" | "Gcal" => Some("energy"),
        "W" | "kW" | "MW" | "GW" | "TW" | "mW" => Some("power"),
        _ => None,
    }
}

/// kWh in one `unit` (energy units HA converts between), for writing kWh rows into a statistic
/// kept in another energy unit.
pub fn kwh_factor(unit: &str) -> Option<f64> {
    match unit {
        "kWh" => Some(1.0),
        "Wh" => Some(1e-3),
        "MWh" => Some(1e3),
        "GWh" => Some(1e6),
        "mWh" => Some(1e-6),
        _ => None,
    }
}

/// The `metadata` object of `recorder/import_statistics` for `ha_version`.
pub fn import_metadata(meta: &StatMeta, ha_version: &str) -> Value {
    let mut m = json!({
        "statistic_id": meta.statistic_id,
        "source": meta.source,
        "name": meta.name,
        "unit_of_measurement": meta.unit_of_measurement,
        "has_sum": meta.has_sum,
    });
    match metadata_shape(ha_version) {
        MetadataShape::HasMean => {
            m["has_mean"] = json!(meta.has_mean);
        }
        MetadataShape::MeanType => {
            // StatisticMeanType: 0 none, 1 arithmetic, 2 circular.
            m["mean_type"] = json!(if meta.has_mean { 1 } else { 0 });
            m["unit_class"] = json!(unit_class(meta.unit_of_measurement.as_deref()));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_releases_the_tests_ran_against_are_tested() {
        assert!(is_tested("2025.4.4") && is_tested("2026.11.0"));
        assert!(!is_tested("2025.4.3") && !is_tested("2026.11.1") && !is_tested("2026.11"));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2025.4.4"), Some((2025, 4)));
        assert_eq!(parse_version("2025.11.0"), Some((2025, 11)));
        assert_eq!(parse_version("2025.12.0.dev0"), Some((2025, 12)));
        assert_eq!(parse_version("2025.11.0b3"), Some((2025, 11)));
        assert_eq!(parse_version("2025.10"), Some((2025, 10)));
        assert_eq!(parse_version("dev"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn shape_switches_at_2025_11() {
        for (v, shape) in [
            ("2025.4.4", MetadataShape::HasMean),
            ("2024.12.5", MetadataShape::HasMean),
            ("2025.10.4", MetadataShape::HasMean),
            ("2025.10.99.dev0", MetadataShape::HasMean),
            ("2025.11.0", MetadataShape::MeanType),
            ("2025.11.0b1", MetadataShape::MeanType),
            ("2025.12.0.dev0", MetadataShape::MeanType),
            ("2026.11.1", MetadataShape::MeanType),
            ("2027.1.0", MetadataShape::MeanType),
            ("not-a-version", MetadataShape::MeanType),
        ] {
            assert_eq!(metadata_shape(v), shape, "{v}");
        }
    }

    #[test]
    fn old_metadata_has_no_new_keys() {
        let meta = StatMeta::energy_kwh("sensor.x", "X");
        let m = import_metadata(&meta, "2025.4.4");
        assert_eq!(m["has_mean"], json!(false));
        assert!(m.get("mean_type").is_none());
        assert!(m.get("unit_class").is_none());
        assert_eq!(m["has_sum"], json!(true));
        assert_eq!(m["source"], json!("recorder"));
        assert_eq!(m["unit_of_measurement"], json!("kWh"));
    }

    #[test]
    fn new_metadata_has_mean_type_and_unit_class() {
        let meta = StatMeta::energy_kwh("sensor.x", "X");
        for v in ["2025.11.0", "2026.11.1", "2025.12.0.dev0"] {
            let m = import_metadata(&meta, v);
            assert_eq!(m["mean_type"], json!(0), "{v}");
            assert_eq!(m["unit_class"], json!("energy"), "{v}");
            assert!(m.get("has_mean").is_none(), "{v}");
        }
        let mut mean = meta.clone();
        mean.has_mean = true;
        mean.unit_of_measurement = Some("%".into());
        let m = import_metadata(&mean, "2026.1.0");
        assert_eq!(m["mean_type"], json!(1));
        assert_eq!(m["unit_class"], Value::Null);
    }

    #[test]
    fn energy_factors() {
        assert_eq!(kwh_factor("Wh"), Some(0.001));
        assert_eq!(kwh_factor("kWh"), Some(1.0));
        assert_eq!(kwh_factor("%"), None);
        assert_eq!(unit_class(Some("Wh")), Some("energy"));
        assert_eq!(unit_class(None), None);
    }
}
