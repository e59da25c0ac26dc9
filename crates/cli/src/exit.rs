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
    eprintln!("error: {}", one_line(&format!("{e:#}")));
    ExitCode::from(ERROR)
}

/// `s` with control characters escaped (`\n`, `\u{1b}`): a newline inside a user's identifier
/// must not split the error, or forge a line of its own.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_into_one_line() {
        let s = one_line("invalid field 'ho\nerror: forged\r\t\u{1b}[31m' é");
        assert_eq!(s, "invalid field 'ho\\nerror: forged\\r\\t\\u{1b}[31m' é");
    }
}
