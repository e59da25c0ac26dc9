//! A real, headless Home Assistant core on loopback, for tests and benchmarks.
//!
//! HA runs from a venv with `homeassistant==2025.4.4` on pyenv's Python 3.13.0 ([`ensure_venv`]
//! makes it once, under a file lock, and pre-installs what HA would otherwise download at its
//! first start). Each [`HaInstance`] has its own config dir in a temp dir, listens on a free
//! loopback port, has an owner user made through the onboarding API and a long-lived access
//! token, and is stopped by its PID when dropped (HA also stops itself when the process that
//! started it exits, so a crashed test binary leaves no HA behind).
//!
//! Measured on the 2-core dev machine, venv in place: start to core RUNNING with the owner user
//! and token ~2 s, restart ~2.3 s, clean stop ~0.5 s (but up to 10 s while a websocket client
//! that does not answer HA's close frame is connected: see [`HaInstance::stop_async`]).
//! A fresh venv (`pip install homeassistant==2025.4.4` and the pre-installed requirements) takes
//! a few minutes and ~800 MB.

mod clock;
mod install;
mod instance;
mod mqtt;
mod onboard;
mod options;
mod process;
mod sqlite;

pub use clock::{libfaketime, LIBFAKETIME};
pub use install::{base_python, ensure_python_module, ensure_venv, venv_dir, venv_or_skip};
pub use instance::HaInstance;
pub use options::HaOptions;
pub use process::answers_onboarding;
pub use sqlite::{reference_sqlite_db, reference_sqlite_db_file, sqlite_query, TempDb};

use std::time::Duration;

/// The HA release the tests run against: the newest that installs on Python 3.13.0.
pub const HA_VERSION: &str = "2025.4.4";
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
