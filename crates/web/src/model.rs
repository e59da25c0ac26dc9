//! What the pages show, filled by the [`Backend`](crate::Backend): plain data, already in the
//! words and units a person reads.

use serde::{Deserialize, Serialize};

/// The Status page.
#[derive(Debug, Clone, Default)]
pub struct StatusView {
    /// `doctor`'s findings, one section per part (InfluxDB, Home Assistant, broker, ...).
    pub sections: Vec<Section>,
    /// When those findings were made (they are refreshed in the background, not per page).
    pub checked_at: Option<String>,
    /// The live meters as last published.
    pub meters: Vec<MeterRow>,
    /// The last successful poll of InfluxDB.
    pub last_poll: Option<String>,
    /// A job a previous run of `serve` left unfinished (killed, power cut): the banner and
    /// its Resume button.
    pub interrupted: Option<Interrupted>,
}

/// A job cut short, in words.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// What was cut short and how far it got.
    pub what: String,
    /// What Resume does.
    pub resume: String,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub ok: bool,
    pub rows: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct MeterRow {
    pub name: String,
    pub value: String,
}

/// The History page.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    /// `None` before the first check.
    pub checked: Option<CheckedView>,
}

#[derive(Debug, Clone)]
pub struct CheckedView {
    /// When the check ran, and what started it (a button, the daily check, a job).
    pub at: String,
    pub by: String,
    pub from: String,
    pub to: String,
    pub problems: Vec<ProblemRow>,
    /// The daily chart, HA against InfluxDB, as `check --chart` draws it (SVG markup).
    pub chart_svg: String,
}

#[derive(Debug, Clone)]
pub struct ProblemRow {
    pub hour: String,
    pub statistic: String,
    pub kind: String,
    pub found: String,
    pub expected: String,
    pub cause: String,
}

/// The jobs the panel starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backfill,
    Migrate,
    Repair,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Backfill, JobKind::Migrate, JobKind::Repair];

    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backfill => "backfill",
            JobKind::Migrate => "migrate",
            JobKind::Repair => "repair",
        }
    }
}

/// A job's form as posted: the main options of the CLI command. Dates stay text: the job
/// itself refuses a wrong one with the CLI's message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobForm {
    pub job: Option<JobKind>,
    /// First local day (backfill `--start`, migrate `--start-date`, repair `--since`); empty:
    /// from the first InfluxDB point (backfill `--all`).
    #[serde(default)]
    pub start: String,
    /// Last local day, included; empty: up to the last compiled hour.
    #[serde(default)]
    pub end: String,
    /// Backfill and migrate: replace hours that already exist.
    #[serde(default)]
    pub overwrite: Option<String>,
    /// Migrate: only phase 1 (`--no-auto-backfill`).
    #[serde(default)]
    pub no_auto_backfill: Option<String>,
}

impl JobForm {
    pub fn overwrite(&self) -> bool {
        self.overwrite.is_some()
    }
    pub fn no_auto_backfill(&self) -> bool {
        self.no_auto_backfill.is_some()
    }
}

/// A dry run's result: what the real run would write, as the CLI prints it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: u64,
    pub job: JobKind,
    /// The command line the plan is (without `--dry-run`), for the person to read.
    pub command: String,
    /// The dry run's report, as the CLI prints it.
    pub report: String,
    /// The dry run failed (a wrong date, a server down): `report` is the error; no Apply.
    pub failed: bool,
}

/// A job's progress, sent to the page as it changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// The log entry of the run (0 before the first).
    pub run: u64,
    pub job: String,
    pub state: RunState,
    /// 0 to 1.
    pub fraction: f64,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Idle,
    Running,
    Succeeded,
    Failed,
}

/// One past job, whoever started it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: u64,
    pub job: String,
    /// What started it: `panel`, `button` (HA's), `daily` (the daily check), `hourly heal`,
    /// `resume`. Logs written before triggers were kept hold only panel jobs.
    #[serde(default = "panel_trigger")]
    pub trigger: String,
    /// The CLI command that does the same, or what the job did where none does (the heal).
    pub command: String,
    pub dry_run: bool,
    pub started: String,
    pub finished: String,
    pub succeeded: bool,
    pub report: String,
}

fn panel_trigger() -> String {
    "panel".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_kept_before_triggers_reads_as_panel_jobs() {
        let old = r#"[{"id":3,"job":"backfill","command":"pwsync backfill --all","dry_run":false,
            "started":"s","finished":"f","succeeded":true,"report":"r"}]"#;
        let log: Vec<LogEntry> = serde_json::from_str(old).unwrap();
        assert_eq!(log[0].trigger, "panel");
        let again: Vec<LogEntry> =
            serde_json::from_str(&serde_json::to_string(&log).unwrap()).unwrap();
        assert_eq!(again[0].trigger, "panel");
    }
}
