//! The splice primitive: write new hourly energy into an existing sum chain so that no seam
//! shows a spike. Implemented with the backfill work.

use serde::{Deserialize, Serialize};

/// Add `delta` (kWh) to `sum` of every 5-minute row with `start >= from` and every hourly row
/// with `start >= floor_hour(from)`: the semantics of HA's `recorder/adjust_sum_statistics`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub from: i64,
    pub delta: f64,
}
