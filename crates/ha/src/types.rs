//! Typed replies of the commands pwsync uses. Unknown fields are ignored and most fields are
//! optional, so newer HA versions that add or drop fields still parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `get_config` (the parts pwsync uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaConfig {
    /// IANA time zone, e.g. "Europe/Berlin": local days and months are computed in it.
    pub time_zone: String,
    pub version: String,
    /// "NOT_RUNNING", "STARTING", "RUNNING", "STOPPING", "FINAL_WRITE", "STOPPED".
    pub state: String,
    #[serde(default)]
    pub location_name: Option<String>,
    #[serde(default)]
    pub unit_system: Value,
    #[serde(default)]
    pub components: Vec<String>,
}

/// One entry of `config/entity_registry/list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub entity_id: String,
    /// The integration that made the entity, e.g. "teslemetry".
    pub platform: String,
    #[serde(default)]
    pub unique_id: Option<String>,
    #[serde(default)]
    pub original_name: Option<String>,
    /// The user's name for it, if renamed.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub config_entry_id: Option<String>,
    #[serde(default)]
    pub disabled_by: Option<String>,
    #[serde(default)]
    pub translation_key: Option<String>,
}

/// One state of `get_states`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityState {
    pub entity_id: String,
    pub state: String,
    #[serde(default)]
    pub attributes: Value,
    #[serde(default)]
    pub last_changed: Option<String>,
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// One entry of `recorder/list_statistic_ids` / `recorder/get_statistics_metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticInfo {
    pub statistic_id: String,
    pub source: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The unit rows are stored in.
    #[serde(default)]
    pub statistics_unit_of_measurement: Option<String>,
    #[serde(default)]
    pub display_unit_of_measurement: Option<String>,
    pub has_sum: bool,
    /// Sent until HA 2026.4; derived from `mean_type` when absent.
    #[serde(default)]
    pub has_mean: Option<bool>,
    /// 0 none, 1 arithmetic, 2 circular (HA ≥ 2025.4 sends it).
    #[serde(default)]
    pub mean_type: Option<u8>,
    #[serde(default)]
    pub unit_class: Option<String>,
}

impl StatisticInfo {
    /// Whether the statistic has a mean (from `mean_type` where HA sends it).
    pub fn has_mean(&self) -> bool {
        match self.mean_type {
            Some(t) => t != 0,
            None => self.has_mean.unwrap_or(false),
        }
    }

    pub fn to_meta(&self) -> pwsync_store::StatMeta {
        pwsync_store::StatMeta {
            statistic_id: self.statistic_id.clone(),
            source: self.source.clone(),
            name: self.name.clone(),
            unit_of_measurement: self.statistics_unit_of_measurement.clone(),
            has_sum: self.has_sum,
            has_mean: self.has_mean(),
        }
    }
}

/// Statistics periods of `recorder/statistics_during_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    FiveMinute,
    Hour,
    Day,
    Week,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::FiveMinute => "5minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// Value types of `recorder/statistics_during_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatType {
    State,
    Sum,
    Change,
    LastReset,
    Mean,
    Min,
    Max,
}

impl StatType {
    pub fn as_str(self) -> &'static str {
        match self {
            StatType::State => "state",
            StatType::Sum => "sum",
            StatType::Change => "change",
            StatType::LastReset => "last_reset",
            StatType::Mean => "mean",
            StatType::Min => "min",
            StatType::Max => "max",
        }
    }
}

/// `recorder/list_statistic_ids` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatisticKind {
    Sum,
    Mean,
}

/// One row of a `recorder/statistics_during_period` reply. Times are epoch **milliseconds**,
/// as HA sends them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatValue {
    #[serde(deserialize_with = "millis")]
    pub start: i64,
    #[serde(deserialize_with = "millis")]
    pub end: i64,
    #[serde(default)]
    pub state: Option<f64>,
    #[serde(default)]
    pub sum: Option<f64>,
    #[serde(default)]
    pub change: Option<f64>,
    #[serde(default)]
    pub mean: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default, deserialize_with = "opt_millis")]
    pub last_reset: Option<i64>,
}

/// Epoch milliseconds sent as an integer (HA 2025.4) or a float.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = f64::deserialize(d)?;
    Ok(v.round() as i64)
}

fn opt_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    Ok(v.map(|v| v.round() as i64))
}

impl StatValue {
    /// `start` in epoch seconds.
    pub fn start_secs(&self) -> i64 {
        self.start.div_euclid(1000)
    }
}
