//! Real servers on loopback for tests and benchmarks.
//!
//! Each server runs in its own temp dir on a port no other start in the process was given and
//! is stopped by its PID when its guard drops; a start counts once the process we spawned owns
//! its port and answers its own protocol, and is tried again on new ports when its port was
//! taken (see `pwsync-sandbox`, which holds InfluxDB and these process helpers for
//! `pwsync demo` too). A server binary that is missing is reported by [`Missing`], which a test
//! turns into a skip only outside CI, through [`or_skip`]; in CI every server is installed, so
//! nothing skips.

pub mod ha;
pub mod ha_chroot;
pub mod ha_log;
pub mod mosquitto;
pub mod process;
pub mod sqlservers;

pub use process::{free_port, or_skip, require, Missing, ServerProcess};
pub use pwsync_sandbox::influxd;
