//! The boundary between pwsync's jobs and HA's long-term statistics.
//!
//! Two implementations: `pwsync-ha` (websocket, HA running) and `pwsync-recorder` (the recorder
//! database, HA stopped). Jobs compute a [`WritePlan`] with the pure core, print it on a dry run,
//! and hand it to [`StatisticsStore::apply`] otherwise.

mod overlay;
mod source;

pub use overlay::Overlay;
pub use source::EnergySource;

use async_trait::async_trait;
pub use pwsync_energy::splice::Shift;
use pwsync_energy::StatRow;
use serde::{Deserialize, Serialize};

/// Which statistics table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Table {
    /// `statistics`: hourly, kept forever.
    Hourly,
    /// `statistics_short_term`: 5-minute, purged after `purge_keep_days`.
    ShortTerm,
}

/// Metadata of one statistic (`statistics_meta`). `mean_type`/`unit_class` are derived by the
/// adapters from `has_mean` and the unit, as the HA version at hand needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatMeta {
    pub statistic_id: String,
    /// "recorder" for `sensor.*` ids.
    pub source: String,
    pub name: Option<String>,
    pub unit_of_measurement: Option<String>,
    pub has_sum: bool,
    pub has_mean: bool,
}

impl StatMeta {
    /// Metadata of an energy meter statistic in kWh (what pwsync writes).
    pub fn energy_kwh(statistic_id: &str, name: &str) -> Self {
        StatMeta {
            statistic_id: statistic_id.to_string(),
            source: "recorder".to_string(),
            name: Some(name.to_string()),
            unit_of_measurement: Some("kWh".to_string()),
            has_sum: true,
            has_mean: false,
        }
    }
}

/// Everything to write for one statistic. Applied in this order: `shifts` (to the rows that
/// exist), then `hourly` and `short_term` rows as upserts with absolute values (an existing row
/// for the same start is replaced). Rows are in kWh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatWrite {
    pub meta: StatMeta,
    pub shifts: Vec<Shift>,
    pub hourly: Vec<StatRow>,
    /// Only honoured by stores whose [`StatisticsStore::writes_short_term`] is true.
    pub short_term: Vec<StatRow>,
}

impl StatWrite {
    pub fn is_empty(&self) -> bool {
        self.shifts.is_empty() && self.hourly.is_empty() && self.short_term.is_empty()
    }
}

/// All writes of one job. A database store applies it in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WritePlan {
    pub writes: Vec<StatWrite>,
}

impl WritePlan {
    pub fn is_empty(&self) -> bool {
        self.writes.iter().all(StatWrite::is_empty)
    }
    pub fn row_count(&self) -> usize {
        self.writes
            .iter()
            .map(|w| w.hourly.len() + w.short_term.len())
            .sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not reach or authenticate to the store. The message names the fix.
    #[error("{0}")]
    Connection(String),
    /// The store refuses to act (HA running during an offline write, unknown schema, ...).
    #[error("{0}")]
    Refused(String),
    /// The store answered with an error to a request.
    #[error("{0}")]
    Command(String),
    /// A write was not confirmed by reading it back.
    #[error("{0}")]
    NotConfirmed(String),
}

/// What pwsync needs from HA's statistics. Rows are always returned in kWh for energy
/// statistics (converted from the statistic's own unit), ascending by `start`.
#[async_trait]
pub trait StatisticsStore: Send + Sync {
    /// Short name for messages: "websocket", "sqlite", "mysql", "postgres".
    fn kind(&self) -> &'static str;

    /// Whether `apply` writes `short_term` rows (only the database path can).
    fn writes_short_term(&self) -> bool;

    /// Metadata of those of `ids` that exist.
    async fn metadata(&self, ids: &[String]) -> Result<Vec<StatMeta>, StoreError>;

    /// Metadata of every statistic.
    async fn list(&self) -> Result<Vec<StatMeta>, StoreError>;

    /// Rows of `table` with `start` in `[start, end)`.
    async fn read(
        &self,
        statistic_id: &str,
        table: Table,
        start: i64,
        end: i64,
    ) -> Result<Vec<StatRow>, StoreError>;

    /// The last row of `table` with `start < before`, if any.
    async fn last_before(
        &self,
        statistic_id: &str,
        table: Table,
        before: i64,
    ) -> Result<Option<StatRow>, StoreError>;

    /// Apply a plan: on a database in one transaction; through the websocket command by command,
    /// returning only once the written rows are read back.
    async fn apply(&self, plan: &WritePlan) -> Result<(), StoreError>;
}
