//! Rows of HA's `statistics` / `statistics_short_term` tables, as pwsync sees them.

use serde::{Deserialize, Serialize};

/// One statistics row. `start` is epoch seconds of the period start; `state` and `sum` in kWh.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatRow {
    pub start: i64,
    pub state: Option<f64>,
    pub sum: Option<f64>,
}
