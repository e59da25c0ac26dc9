//! Which foreign energy statistics become which of pwsync's meters.
//!
//! Found through the entity registry: the integration (`platform`) and the key in the entity's
//! `unique_id`, which neither the user nor HA renames. Entity-id patterns are only a fallback for
//! when no registry is available, and never match power sensors or pwsync's own meters. Every
//! candidate must be an energy statistic with a sum.

use pwsync_energy::teslemetry::kwh_factor;
use pwsync_energy::Field;
use pwsync_store::StatMeta;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Integrations pwsync migrates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Teslemetry,
    TeslaFleet,
    Tessie,
    /// HA's local Powerwall integration (its meters' import/export sensors).
    Powerwall,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Teslemetry,
        Platform::TeslaFleet,
        Platform::Tessie,
        Platform::Powerwall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Teslemetry => "teslemetry",
            Platform::TeslaFleet => "tesla_fleet",
            Platform::Tessie => "tessie",
            Platform::Powerwall => "powerwall",
        }
    }

    /// The field whose energy a sensor of this platform with `unique_id` counts.
    pub fn field_of(self, unique_id: &str) -> Option<Field> {
        match self {
            // Energy-site history sensors: `{site_id}-{key}`.
            Platform::Teslemetry | Platform::TeslaFleet | Platform::Tessie => {
                let (_, key) = unique_id.rsplit_once('-')?;
                Field::ALL.into_iter().find(|f| f.teslemetry_key() == key)
            }
            // Meter sensors: `{gateway}_{meter}_{import|export}`.
            Platform::Powerwall => POWERWALL_METERS
                .iter()
                .find(|(suffix, _)| unique_id.ends_with(suffix))
                .map(|(_, f)| *f),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown source '{s}': expected teslemetry, tesla_fleet, tessie or powerwall"
                )
            })
    }
}

/// The local Powerwall integration's lifetime meters: which direction of which meter is which
/// of pwsync's fields (the site meter is the grid; solar only exports; the load only imports).
const POWERWALL_METERS: [(&str, Field); 6] = [
    ("_site_import", Field::FromGrid),
    ("_site_export", Field::ToGrid),
    ("_load_import", Field::Home),
    ("_solar_export", Field::Solar),
    ("_battery_export", Field::FromPw),
    ("_battery_import", Field::ToPw),
];

/// Entity-id endings of the fallback, per field (Teslemetry's and the Powerwall integration's
/// default entity names).
const NAME_PATTERNS: [(Field, &[&str]); 6] = [
    (Field::Home, &["home_usage", "load_import"]),
    (
        Field::Solar,
        &["solar_generated", "solar_generation", "solar_export"],
    ),
    (
        Field::FromGrid,
        &["grid_imported", "grid_energy_imported", "site_import"],
    ),
    (
        Field::ToGrid,
        &["grid_exported", "grid_energy_exported", "site_export"],
    ),
    (
        Field::FromPw,
        &["battery_discharged", "battery_discharge", "battery_export"],
    ),
    (
        Field::ToPw,
        &["battery_charged", "battery_charge", "battery_import"],
    ),
];

/// One entry of HA's entity registry (the parts discovery needs).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEntity {
    pub entity_id: String,
    pub platform: String,
    pub unique_id: Option<String>,
}

/// How a mapping was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// Platform and unique-id key in the entity registry.
    Registry,
    /// The entity id's ending (no registry entry was usable).
    NamePattern,
    /// `--map SRC=DST`.
    Map,
}

/// A source statistic and the pwsync meter it goes into.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapping {
    pub source: String,
    /// The source's unit as HA keeps it (reads come back in kWh whatever it is).
    pub unit: Option<String>,
    pub field: Field,
    pub target: String,
    pub found: Found,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiscoverError {
    #[error("both {a} and {b} would migrate into {target}: choose one with --map {a}={field} (or --map {b}={field})")]
    Ambiguous {
        target: String,
        field: Field,
        a: String,
        b: String,
    },
    #[error("--map {0}: HA has no statistic {0} (list them with `pwsync doctor`)")]
    UnknownSource(String),
    #[error("--map {id}: it is not an energy statistic with a sum (unit {unit:?}); only energy meters can be migrated")]
    NotEnergy { id: String, unit: Option<String> },
    #[error("--map {0}: expected SOURCE=TARGET, e.g. sensor.my_home_home_usage=home")]
    BadMap(String),
    #[error("--map {0}: unknown target; use a field (home, solar, from_grid, to_grid, from_pw, to_pw), a key such as home_usage, or a pwsync entity id")]
    BadTarget(String),
}

/// An energy statistic with a sum, in a unit pwsync converts.
fn is_energy_meter(m: &StatMeta) -> bool {
    m.has_sum
        && m.unit_of_measurement
            .as_deref()
            .is_some_and(|u| kwh_factor(u).is_ok())
}

fn target_id(site: &str, field: Field) -> String {
    format!("sensor.{site}_{}", field.sensor_key())
}

/// A `--map` target: a field, a sensor key or a pwsync entity id.
fn parse_target(site: &str, s: &str) -> Option<Field> {
    let key = s.strip_prefix(&format!("sensor.{site}_")).unwrap_or(s);
    key.parse().ok()
}

/// Parse `--map SRC=DST` values.
pub fn parse_maps(site: &str, maps: &[String]) -> Result<Vec<(String, Field)>, DiscoverError> {
    maps.iter()
        .map(|m| {
            let (src, dst) = m
                .split_once('=')
                .filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
                .ok_or_else(|| DiscoverError::BadMap(m.clone()))?;
            let field = parse_target(site, dst.trim())
                .ok_or_else(|| DiscoverError::BadTarget(m.clone()))?;
            Ok((src.trim().to_string(), field))
        })
        .collect()
}

/// The mappings, one per field at most, ordered by field. `registry` is `None` when no entity
/// registry could be read (then, and only then, entity-id patterns are used).
pub fn discover(
    platforms: &[Platform],
    registry: Option<&[RegistryEntity]>,
    stats: &[StatMeta],
    site: &str,
    maps: &[(String, Field)],
) -> Result<Vec<Mapping>, DiscoverError> {
    let meters: BTreeMap<&str, &StatMeta> = stats
        .iter()
        .filter(|m| is_energy_meter(m))
        .map(|m| (m.statistic_id.as_str(), m))
        .collect();
    let mut candidates: Vec<Mapping> = match registry {
        Some(reg) => from_registry(platforms, reg, &meters, site),
        None => from_names(&meters, site),
    };
    for (src, field) in maps {
        let meta = stats
            .iter()
            .find(|m| &m.statistic_id == src)
            .ok_or_else(|| DiscoverError::UnknownSource(src.clone()))?;
        if !is_energy_meter(meta) {
            return Err(DiscoverError::NotEnergy {
                id: src.clone(),
                unit: meta.unit_of_measurement.clone(),
            });
        }
        // The override takes the field, and the source leaves wherever it was found.
        candidates.retain(|c| c.field != *field && &c.source != src);
        candidates.push(Mapping {
            source: src.clone(),
            unit: meta.unit_of_measurement.clone(),
            field: *field,
            target: target_id(site, *field),
            found: Found::Map,
            platform: None,
        });
    }
    let mut by_field: BTreeMap<Field, Mapping> = BTreeMap::new();
    for c in candidates {
        if let Some(prev) = by_field.get(&c.field) {
            let (a, b) = if prev.source < c.source {
                (prev.source.clone(), c.source.clone())
            } else {
                (c.source.clone(), prev.source.clone())
            };
            return Err(DiscoverError::Ambiguous {
                target: c.target.clone(),
                field: c.field,
                a,
                b,
            });
        }
        by_field.insert(c.field, c);
    }
    Ok(by_field.into_values().collect())
}

fn from_registry(
    platforms: &[Platform],
    registry: &[RegistryEntity],
    meters: &BTreeMap<&str, &StatMeta>,
    site: &str,
) -> Vec<Mapping> {
    registry
        .iter()
        .filter_map(|e| {
            let platform = platforms.iter().find(|p| p.as_str() == e.platform)?;
            let field = platform.field_of(e.unique_id.as_deref()?)?;
            let meta = meters.get(e.entity_id.as_str())?;
            Some(Mapping {
                source: e.entity_id.clone(),
                unit: meta.unit_of_measurement.clone(),
                field,
                target: target_id(site, field),
                found: Found::Registry,
                platform: Some(platform.as_str().to_string()),
            })
        })
        .collect()
}

fn from_names(meters: &BTreeMap<&str, &StatMeta>, site: &str) -> Vec<Mapping> {
    let own = format!("sensor.{site}_");
    meters
        .values()
        .filter(|m| m.statistic_id.starts_with("sensor.") && !m.statistic_id.starts_with(&own))
        .filter(|m| !m.statistic_id.contains("power"))
        .filter_map(|m| {
            let id = m.statistic_id.as_str();
            let field = NAME_PATTERNS
                .iter()
                .find(|(_, ends)| ends.iter().any(|e| id.ends_with(e)))
                .map(|(f, _)| *f)?;
            Some(Mapping {
                source: id.to_string(),
                unit: m.unit_of_measurement.clone(),
                field,
                target: target_id(site, field),
                found: Found::NamePattern,
                platform: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, unit: &str, has_sum: bool) -> StatMeta {
        StatMeta {
            has_sum,
            ..StatMeta::energy_kwh(id, id)
        }
        .with_unit(unit)
    }

    trait WithUnit {
        fn with_unit(self, unit: &str) -> Self;
    }
    impl WithUnit for StatMeta {
        fn with_unit(mut self, unit: &str) -> Self {
            self.unit_of_measurement = Some(unit.to_string());
            self
        }
    }

    fn entity(id: &str, platform: &str, uid: &str) -> RegistryEntity {
        RegistryEntity {
            entity_id: id.into(),
            platform: platform.into(),
            unique_id: Some(uid.into()),
        }
    }

    fn teslemetry_home() -> (Vec<RegistryEntity>, Vec<StatMeta>) {
        let reg = vec![
            entity(
                "sensor.my_home_home_usage",
                "teslemetry",
                "1234-total_home_usage",
            ),
            entity(
                "sensor.my_home_grid_imported",
                "teslemetry",
                "1234-grid_energy_imported",
            ),
            // A power sensor of the same site: not an energy statistic.
            entity("sensor.my_home_load_power", "teslemetry", "1234-load_power"),
            entity(
                "sensor.my_home_solar_generated",
                "teslemetry",
                "1234-total_solar_generation",
            ),
        ];
        let stats = vec![
            meta("sensor.my_home_home_usage", "kWh", true),
            meta("sensor.my_home_grid_imported", "Wh", true),
            meta("sensor.my_home_load_power", "kW", false),
            // Renamed by the user: still found by its unique id.
            meta("sensor.my_home_solar_generated", "kWh", true),
            meta("sensor.powerwall_home_usage", "kWh", true),
        ];
        (reg, stats)
    }

    #[test]
    fn registry_keys_map_fields_and_skip_power_and_own_sensors() {
        let (reg, stats) = teslemetry_home();
        let m = discover(&Platform::ALL, Some(&reg), &stats, "powerwall", &[]).unwrap();
        let pairs: Vec<_> = m.iter().map(|m| (m.source.as_str(), m.field)).collect();
        assert_eq!(
            pairs,
            vec![
                ("sensor.my_home_home_usage", Field::Home),
                ("sensor.my_home_solar_generated", Field::Solar),
                ("sensor.my_home_grid_imported", Field::FromGrid),
            ]
        );
        assert_eq!(m[2].unit.as_deref(), Some("Wh"));
        assert_eq!(m[0].target, "sensor.powerwall_home_usage");
        assert!(m.iter().all(|m| m.found == Found::Registry));
    }

    #[test]
    fn only_the_chosen_platforms_count() {
        let (reg, stats) = teslemetry_home();
        let m = discover(&[Platform::Powerwall], Some(&reg), &stats, "powerwall", &[]).unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn powerwall_meters_map_by_direction() {
        let reg = vec![
            entity("sensor.pw_site_import", "powerwall", "abc_site_import"),
            entity(
                "sensor.pw_battery_export",
                "powerwall",
                "abc_battery_export",
            ),
            entity("sensor.pw_load_export", "powerwall", "abc_load_export"),
        ];
        let stats = vec![
            meta("sensor.pw_site_import", "kWh", true),
            meta("sensor.pw_battery_export", "kWh", true),
            meta("sensor.pw_load_export", "kWh", true),
        ];
        let m = discover(&Platform::ALL, Some(&reg), &stats, "powerwall", &[]).unwrap();
        let pairs: Vec<_> = m.iter().map(|m| (m.source.as_str(), m.field)).collect();
        assert_eq!(
            pairs,
            vec![
                ("sensor.pw_site_import", Field::FromGrid),
                ("sensor.pw_battery_export", Field::FromPw),
            ]
        );
    }

    #[test]
    fn two_sources_for_one_meter_is_an_error_naming_both() {
        let (mut reg, mut stats) = teslemetry_home();
        reg.push(entity(
            "sensor.cabin_home_usage",
            "tesla_fleet",
            "99-total_home_usage",
        ));
        stats.push(meta("sensor.cabin_home_usage", "kWh", true));
        let e = discover(&Platform::ALL, Some(&reg), &stats, "powerwall", &[]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("sensor.cabin_home_usage") && msg.contains("sensor.my_home_home_usage"),
            "{msg}"
        );
        // --map settles it.
        let maps = parse_maps("powerwall", &["sensor.cabin_home_usage=home_usage".into()]).unwrap();
        let m = discover(&Platform::ALL, Some(&reg), &stats, "powerwall", &maps).unwrap();
        let home: Vec<_> = m.iter().filter(|m| m.field == Field::Home).collect();
        assert_eq!(home.len(), 1);
        assert_eq!(home[0].source, "sensor.cabin_home_usage");
        assert_eq!(home[0].found, Found::Map);
    }

    #[test]
    fn names_are_only_a_fallback_and_never_match_power_or_own_meters() {
        let (_, mut stats) = teslemetry_home();
        stats.push(meta("sensor.my_home_battery_power", "kWh", true));
        let m = discover(&Platform::ALL, None, &stats, "powerwall", &[]).unwrap();
        let ids: Vec<_> = m.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "sensor.my_home_home_usage",
                "sensor.my_home_solar_generated",
                "sensor.my_home_grid_imported"
            ]
        );
        assert!(m.iter().all(|m| m.found == Found::NamePattern));
    }

    #[test]
    fn bad_maps_are_clear_errors() {
        let (reg, stats) = teslemetry_home();
        assert!(matches!(
            parse_maps("powerwall", &["nonsense".into()]),
            Err(DiscoverError::BadMap(_))
        ));
        assert!(matches!(
            parse_maps("powerwall", &["a=b".into()]),
            Err(DiscoverError::BadTarget(_))
        ));
        let maps = parse_maps("powerwall", &["sensor.nope=home".into()]).unwrap();
        assert!(matches!(
            discover(&Platform::ALL, Some(&reg), &stats, "powerwall", &maps),
            Err(DiscoverError::UnknownSource(_))
        ));
        let maps = parse_maps(
            "powerwall",
            &["sensor.my_home_load_power=sensor.powerwall_home_usage".into()],
        )
        .unwrap();
        assert!(matches!(
            discover(&Platform::ALL, Some(&reg), &stats, "powerwall", &maps),
            Err(DiscoverError::NotEnergy { .. })
        ));
    }
}
