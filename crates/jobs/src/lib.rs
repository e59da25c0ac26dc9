//! Jobs over HA statistics (backfill; check, repair and serve's heal). Each job reads through
//! small traits (`pwsync-store`'s `EnergySource` and `StatisticsStore`), plans with the pure core, and writes one `WritePlan` (or, on a dry run,
//! only reports it).

pub mod backfill;
pub mod check;
pub mod dashboard;
pub mod migrate;
pub mod range;
pub mod write;

pub use backfill::{backfill, BackfillOptions, BackfillReport, FieldReport};
pub use check::{
    check, heal, repair, CheckOptions, CheckReport, HealOptions, HealReport, RepairReport,
};
pub use range::{compiled_limit, DateRange, RangeStart};

use pwsync_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Input(String),
}
