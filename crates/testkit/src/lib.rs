//! Real servers on loopback for tests, benchmarks and `pwsync demo`.
//!
//! Each server runs in its own temp dir on a free port and is stopped by its PID when its
//! guard drops. A server binary that is missing is reported by [`Missing`], which a test turns
//! into a skip only outside CI (`CI` unset); in CI every server is installed, so nothing skips.

pub mod ha;
pub mod ha_chroot;
pub mod ha_log;
pub mod influxd;
pub mod mosquitto;
pub mod process;
pub mod sqlservers;

pub use process::{free_port, or_skip, require, wait_for_port, Missing, ServerProcess};
