//! Exit codes (documented in the README) and the one-line error report.

use std::process::ExitCode;

/// Any error: bad input, unreachable server, refused write. Nothing was written.
pub const ERROR: u8 = 1;
/// Usage error (clap's own code).
#[allow(dead_code)]
pub const USAGE: u8 = 2;
/// `check` found problems.
pub const PROBLEMS_FOUND: u8 = 3;
/// `migrate`: phase 1 migrated and is kept; phase 2 (the InfluxDB backfill) failed.
pub const MIGRATED_BACKFILL_FAILED: u8 = 4;

/// Print an error as one line (the cause chain joined by ": ") and return the error code.
pub fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(ERROR)
}
