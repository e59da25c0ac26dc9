//! The six energy fields of Powerwall-Dashboard and the names each carries elsewhere.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the six power fields in `autogen.http` whose integral is an energy meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Home,
    Solar,
    FromGrid,
    ToGrid,
    FromPw,
    ToPw,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Home,
        Field::Solar,
        Field::FromGrid,
        Field::ToGrid,
        Field::FromPw,
        Field::ToPw,
    ];

    /// Default InfluxDB field name (overridable in config).
    pub fn influx_name(self) -> &'static str {
        match self {
            Field::Home => "home",
            Field::Solar => "solar",
            Field::FromGrid => "from_grid",
            Field::ToGrid => "to_grid",
            Field::FromPw => "from_pw",
            Field::ToPw => "to_pw",
        }
    }

    /// Key of pwsync's lifetime meter sensor: entity `sensor.<site>_<key>`.
    pub fn sensor_key(self) -> &'static str {
        match self {
            Field::Home => "home_usage",
            Field::Solar => "solar_generated",
            Field::FromGrid => "grid_imported",
            Field::ToGrid => "grid_exported",
            Field::FromPw => "battery_discharged",
            Field::ToPw => "battery_charged",
        }
    }

    /// Human name of the meter.
    pub fn display_name(self) -> &'static str {
        match self {
            Field::Home => "Home usage",
            Field::Solar => "Solar generated",
            Field::FromGrid => "Grid imported",
            Field::ToGrid => "Grid exported",
            Field::FromPw => "Battery discharged",
            Field::ToPw => "Battery charged",
        }
    }

    /// Unique-id key suffix of the matching Teslemetry / Tesla Fleet / Tessie energy sensor.
    pub fn teslemetry_key(self) -> &'static str {
        match self {
            Field::Home => "total_home_usage",
            Field::Solar => "total_solar_generation",
            Field::FromGrid => "grid_energy_imported",
            Field::ToGrid => "total_grid_energy_exported",
            Field::FromPw => "total_battery_discharge",
            Field::ToPw => "total_battery_charge",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.influx_name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown field '{0}': expected one of home, solar, from_grid, to_grid, from_pw, to_pw")]
pub struct UnknownField(pub String);

impl FromStr for Field {
    type Err = UnknownField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Field::ALL
            .into_iter()
            .find(|f| f.influx_name() == s || f.sensor_key() == s)
            .ok_or_else(|| UnknownField(s.to_string()))
    }
}
