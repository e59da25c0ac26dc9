//! A server started for a short while on loopback: `pwsync demo`'s InfluxDB, and the base of
//! the test harness (`pwsync-testkit`).
//!
//! Each server runs in its own temp dir on ports from [`port::free_port`] and is stopped by its
//! PID when its guard drops. A start counts only once the process we spawned owns its listening
//! sockets and answers its own protocol ([`start::wait_ready`]); a port someone took between
//! picking and binding means a retry on new ports ([`start::with_port_retries`]).

pub mod http;
pub mod influxd;
pub mod port;
pub mod process;
pub mod start;

pub use port::free_port;
pub use process::{require, Missing, ServerProcess};
