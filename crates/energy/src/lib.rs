//! The pure core of pwsync. Nothing in this crate performs I/O: every function takes
//! data and returns data, so all of it is property-tested without servers.
//!
//! Units: power in W, time in epoch seconds (UTC), energy in Wh inside the integrator
//! and kWh in statistic rows (HA's unit).

pub mod audit;
pub mod field;
pub mod hourly;
pub mod live;
pub mod local;
pub mod meter;
pub mod splice;
pub mod stats;
pub mod teslemetry;

pub use field::Field;
pub use hourly::{integrate, join_chunks, Bucket, Gap, Integration, Neighbours, Sample};
pub use meter::LifetimeMeter;
pub use splice::{Hole, HoleKept, Shift, SpliceInput, SplicePlan};
pub use stats::StatRow;

/// Seconds in one hour; HA's long-term statistics period.
pub const HOUR: i64 = 3600;
/// Seconds in one 5-minute short-term statistics period.
pub const FIVE_MIN: i64 = 300;

/// Start of the UTC hour containing `t`.
pub fn floor_hour(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR
}

/// Start of the bucket of `size` seconds containing `t`.
pub fn floor_to(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}
