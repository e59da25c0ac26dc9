//! Exit codes (documented in the README) and the one-line error report.

pub use pwsync_config::errors::{escape_controls, one_line};
use std::process::ExitCode;

/// Any error: bad input, unreachable server, refused write. Nothing was written.
pub const ERROR: u8 = 1;
/// `check` found problems.
pub const PROBLEMS_FOUND: u8 = 3;
/// `migrate`: phase 1 migrated and is kept; phase 2 (the InfluxDB backfill) failed.
pub const MIGRATED_BACKFILL_FAILED: u8 = 4;

/// Print an error as one line ([`one_line`]) and return the error code.
pub fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(&e));
    ExitCode::from(ERROR)
}
