//! pwsync's configuration (pwsync.toml ← `PWSYNC_*`, or the add-on's options) and what it
//! opens: the InfluxDB source, the statistics target (HA's websocket or the recorder
//! database), the broker's settings, and the check job's options. Shared by the CLI's commands
//! and the daemon, neither of which reaches into the other for them.

pub mod addon;
pub mod broker;
mod config;
pub mod errors;
pub mod scope;
pub mod source;
pub mod target;

pub use config::*;
