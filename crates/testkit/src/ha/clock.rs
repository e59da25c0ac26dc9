//! HA's wall clock shifted through libfaketime, so a test sees HA compile an hour within minutes.

use super::HaOptions;
use crate::process::Missing;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// libfaketime's library (Debian package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// libfaketime's library, or why it is missing (for a test that needs a shifted clock).
pub fn libfaketime() -> Result<PathBuf, Missing> {
    let lib = Path::new(LIBFAKETIME);
    if lib.is_file() {
        Ok(lib.to_path_buf())
    } else {
        Err(Missing {
            binary: LIBFAKETIME.into(),
            install_hint: "apt-get install faketime".into(),
        })
    }
}

/// The environment that shifts HA's wall clock, when asked for.
pub(super) fn clock_env(opts: &HaOptions) -> Result<Vec<(String, String)>> {
    let Some(offset) = opts.clock_offset_secs else {
        return Ok(Vec::new());
    };
    libfaketime()?;
    Ok(vec![
        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
        ("FAKETIME".into(), format!("{offset:+}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        // File times stay real, and Python writes no bytecode: with faked mtimes it would
        // rewrite the venv's .pyc files under other HA instances of the same test binary.
        ("NO_FAKE_STAT".into(), "1".into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ])
}
