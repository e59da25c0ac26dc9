//! The one job that may write at a time, whoever started it: HA's buttons, the daily check or
//! the panel. Its own module because both the job runner and the panel take it.

use super::clock::now;
use std::sync::{Arc, Mutex};

/// Who holds the gate and since when; `None` while no job writes.
#[derive(Clone, Default)]
pub(super) struct JobGate(Arc<Mutex<Option<(String, i64)>>>);

/// A job the gate turned away, and why: shown on the panel, in the Log, on `last_job` and in
/// HA's notification.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Refused {
    pub(super) job: String,
    /// What runs instead, and what to do.
    pub(super) why: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} refused: {}", self.job, self.why)
    }
}

impl From<Refused> for String {
    fn from(r: Refused) -> String {
        r.to_string()
    }
}

impl JobGate {
    /// Take the gate for `job`, or refuse with what holds it and since when.
    pub(super) fn take(&self, job: &str) -> std::result::Result<(), Refused> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*held {
            Some((running, since)) => Err(Refused {
                job: job.to_string(),
                why: format!(
                    "{running} has been running for {} s; start it again when that has finished",
                    now() - since
                ),
            }),
            None => {
                *held = Some((job.to_string(), now()));
                Ok(())
            }
        }
    }

    pub(super) fn release(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(super) fn busy(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}
