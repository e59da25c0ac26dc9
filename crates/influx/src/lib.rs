//! InfluxDB 1.x, the source of truth: a small HTTP client with distinct errors, the energy
//! extraction pwsync does itself (raw 1-minute points through the pure integrator, so gaps are
//! never bridged), and a deterministic Powerwall-Dashboard simulator.

mod client;
mod energy;
mod ident;
mod live;
pub mod sim;
mod source;

pub use client::{InfluxClient, InfluxConfig, InfluxError, QueryLog};
pub use energy::FieldMap;
pub use ident::Ident;
pub use live::LiveWindow;
pub use source::InfluxSource;

/// The current time, epoch seconds: no read or write goes past it.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
