//! The job journal: a job of `serve` that writes (a button's backfill or repair, any panel job)
//! records itself in the state directory before its first write and removes the record when it
//! ends, however it ends. A record found at start is a job that a kill, a power cut, an OOM or
//! an update cut short: `serve` reports it (`last_job` = `interrupted`, a log line, the panel's
//! banner) and offers to run it again. Every such job is idempotent (a backfill fills what is
//! missing, a repair repairs what is still wrong), so running it again is how it resumes.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "job.json";

/// A job that has started writing and not yet ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// `backfill`, `repair`, `migrate`.
    pub(crate) job: String,
    /// `button`, `daily`, `panel`.
    pub(crate) trigger: String,
    /// Unix time it started.
    pub(crate) started: i64,
    /// A panel job's CLI arguments; empty for a button's job (the CLI's defaults).
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// How far it got: its last progress step, in words, and the fraction done.
    #[serde(default)]
    pub(crate) step: String,
    #[serde(default)]
    pub(crate) fraction: f64,
}

impl Entry {
    pub(crate) fn new(job: &str, trigger: &str, started: i64, args: Vec<String>) -> Entry {
        Entry {
            job: job.into(),
            trigger: trigger.into(),
            started,
            args,
            step: "starting".into(),
            fraction: 0.0,
        }
    }

    /// The words for HA, the log and the panel: what was cut short, and how far it got.
    pub(crate) fn describe(&self, tz: chrono_tz::Tz) -> String {
        let at = chrono::DateTime::from_timestamp(self.started, 0)
            .unwrap_or_default()
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M");
        format!(
            "the {} started by {} at {at} was interrupted ({}, {:.0} % done)",
            self.job,
            by(&self.trigger),
            self.step,
            self.fraction * 100.0
        )
    }

    /// How to finish it.
    pub(crate) fn resume_hint(&self) -> String {
        let button = pwsync_mqtt::discovery::BUTTONS
            .iter()
            .find(|(_, _, payload)| *payload == self.job)
            .map(|(_, name, _)| *name);
        match (self.args.is_empty(), button) {
            (true, Some(name)) => format!(
                "press \"{name}\" (or Resume in pwsync's panel) to run it again: it writes only what is still missing or wrong"
            ),
            _ => "press Resume in pwsync's panel to run it again with the same settings".into(),
        }
    }
}

fn by(trigger: &str) -> &str {
    match trigger {
        "button" => "HA's button",
        "daily" => "the daily check",
        "panel" => "the panel",
        other => other,
    }
}

/// Where the record lives; without a state directory there is none, and nothing is kept.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    path: Option<PathBuf>,
}

impl Journal {
    pub(crate) fn in_state_dir() -> Journal {
        Journal::at(crate::heartbeat::state_dir().as_deref())
    }

    pub(crate) fn at(dir: Option<&Path>) -> Journal {
        Journal {
            path: dir.map(|d| d.join(FILE)),
        }
    }

    /// Record `e` before the job writes; synced to disk, so a power cut right after the first
    /// write still finds it.
    pub(crate) fn begin(&self, e: &Entry) {
        self.save(e, true);
    }

    /// Record how far the job got (not synced: a lost progress step only makes the report
    /// vaguer).
    pub(crate) fn progress(&self, e: &Entry) {
        self.save(e, false);
    }

    /// The job ended (succeeded or failed): nothing is left to resume.
    pub(crate) fn end(&self) {
        if let Some(p) = &self.path {
            if let Err(e) = std::fs::remove_file(p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot clear the job journal {}: {e}", p.display());
                }
            }
        }
    }

    /// The job a previous run left unfinished. An unreadable record is reported as a job of
    /// unknown kind rather than dropped: something did not finish.
    pub(crate) fn unfinished(&self) -> Option<Entry> {
        let p = self.path.as_ref()?;
        let text = std::fs::read(p).ok()?;
        Some(serde_json::from_slice(&text).unwrap_or_else(|e| {
            tracing::warn!("the job journal {} is unreadable: {e}", p.display());
            Entry::new("job", "unknown", 0, Vec::new())
        }))
    }

    fn save(&self, e: &Entry, sync: bool) {
        let Some(p) = &self.path else { return };
        if let Err(err) = write_atomically(p, &serde_json::to_vec(e).unwrap_or_default(), sync) {
            tracing::warn!("cannot write the job journal {}: {err}", p.display());
        }
    }
}

/// A temp file renamed over the record: a reader never sees half of it.
pub(super) fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let (true, Some(dir)) = (sync, path.parent()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_begun_job_is_unfinished_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(Some(dir.path()));
        assert_eq!(j.unfinished(), None);
        let mut e = Entry::new("backfill", "button", 1_700_000_000, Vec::new());
        j.begin(&e);
        assert_eq!(j.unfinished().as_ref(), Some(&e));
        e.step = "writing 157056 rows".into();
        e.fraction = 0.4;
        j.progress(&e);
        // Another process (the next start) reads what this one wrote.
        assert_eq!(Journal::at(Some(dir.path())).unfinished(), Some(e));
        j.end();
        assert_eq!(j.unfinished(), None);
        j.end();
    }

    #[test]
    fn an_unreadable_record_still_counts_as_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{half").unwrap();
        let e = Journal::at(Some(dir.path())).unfinished().unwrap();
        assert_eq!(e.job, "job");
    }

    #[test]
    fn without_a_state_directory_nothing_is_kept() {
        let j = Journal::at(None);
        j.begin(&Entry::new("repair", "button", 0, Vec::new()));
        assert_eq!(j.unfinished(), None);
    }

    #[test]
    fn the_report_says_what_was_cut_short_and_how_to_finish_it() {
        let mut e = Entry::new("backfill", "button", 1_700_000_000, Vec::new());
        e.step = "writing".into();
        e.fraction = 0.4;
        let said = e.describe(chrono_tz::UTC);
        assert_eq!(
            said,
            "the backfill started by HA's button at 2023-11-14 22:13 was interrupted (writing, 40 % done)"
        );
        assert!(e.resume_hint().contains("\"Backfill missing hours\""));
        let panel = Entry::new(
            "backfill",
            "panel",
            0,
            vec!["backfill".into(), "--all".into()],
        );
        assert!(panel.resume_hint().contains("Resume in pwsync's panel"));
    }
}
