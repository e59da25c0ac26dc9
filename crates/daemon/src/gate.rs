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

    fn held_by(&self, job: &str) -> bool {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref().is_some_and(|(running, _)| running == job)
    }

    /// Return once no check holds the gate, or after `limit`. Every job that writes ends with
    /// a check; a job pressed right after one (the guide's next step) waits for it instead of
    /// being refused.
    pub(super) async fn after_check(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.held_by("check") && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_job_waits_for_a_check_but_not_for_another_job() {
        let gate = JobGate::default();
        gate.take("check").unwrap();
        let releaser = gate.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            releaser.release();
        });
        gate.after_check(Duration::from_secs(10)).await;
        assert!(gate.take("energy-dashboard").is_ok(), "the check has ended");
        gate.release();

        gate.take("backfill").unwrap();
        let t = tokio::time::Instant::now();
        gate.after_check(Duration::from_secs(10)).await;
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a backfill is not waited for"
        );
        assert!(gate.take("energy-dashboard").is_err());
    }
}
