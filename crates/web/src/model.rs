//! What the pages show, filled by the [`Backend`](crate::Backend): plain data, already in the
//! words and units a person reads.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
    /// The first run's steps, from what pwsync found (empty until the first findings).
    pub guide: Vec<GuideStep>,
}

/// One step of the first-run guide: what pwsync found, and the one thing to press.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideStep {
    /// What the step is for ("Backfill 3.1 years of history").
    pub title: String,
    /// What pwsync found, in words.
    pub detail: String,
    pub state: StepState,
    /// The step's button: the existing dry run → Apply flow, or a check.
    pub action: Option<GuideAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Done,
    Todo,
    /// Not known yet (a server did not answer).
    Unknown,
}

/// What a guide step's button does.
#[derive(Debug, Clone, PartialEq)]
pub enum GuideAction {
    /// A dry run of this job with its defaults (the Jobs page shows the plan and Apply).
    DryRun { job: JobKind, label: String },
    /// A check of the whole history.
    Check { label: String },
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

/// One live meter: the number as `serve` published it and its unit; the page shows it at a
/// precision that reads well ([`crate::format::reading`]) and the exact value on hover.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterRow {
    pub name: String,
    pub value: Reading,
    /// `kWh`, `kW`, `%`; `None` for a number without one.
    pub unit: Option<String>,
}

/// What a meter reads: a number, or a state's word (the battery's direction).
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    Word(String),
}

impl MeterRow {
    /// As the page shows it.
    pub fn shown(&self) -> String {
        match &self.value {
            Reading::Number(v) => crate::format::reading(*v, self.unit.as_deref()),
            Reading::Word(w) => w.clone(),
        }
    }

    /// The exact value, for the hover title.
    pub fn exact(&self) -> String {
        match (&self.value, &self.unit) {
            (Reading::Number(v), Some(u)) => format!("{v} {u}"),
            (Reading::Number(v), None) => v.to_string(),
            (Reading::Word(w), _) => w.clone(),
        }
    }
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
    /// The chart's data, one per statistic checked, served apart (`history/series.json`) so
    /// the page stays small; shared, so a page's copy of the view costs nothing.
    pub series: Vec<Arc<ChartSeries>>,
}

/// One statistic's energy, HA against InfluxDB, per hour over the checked range and per day
/// (HA's days) for views of months and years. Values in kWh; `null` in JSON (NaN here) where a
/// side has no value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChartSeries {
    pub statistic: String,
    /// HA's time zone: the chart's axis shows its local time.
    pub time_zone: String,
    pub hours: HourColumns,
    pub days: DayColumns,
}

/// Values per hour: value `i` is the hour `start + i * step`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HourColumns {
    pub start: i64,
    pub step: i64,
    pub ha: Vec<f32>,
    pub influx: Vec<f32>,
}

/// Values per day: each day's first hour (epoch s) and its sums.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DayColumns {
    pub start: Vec<i64>,
    pub ha: Vec<f32>,
    pub influx: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct ProblemRow {
    pub hour: String,
    pub statistic: String,
    pub kind: String,
    pub found: String,
    pub expected: String,
    pub cause: String,
    /// The hours it concerns, `[start, end)` in epoch seconds: where the chart marks it.
    pub start: i64,
    pub end: i64,
}

/// The jobs the panel starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backfill,
    Migrate,
    Repair,
    /// pwsync's meters (and power sensors) into HA's Energy dashboard, or a saved one back.
    EnergyDashboard,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Backfill,
        JobKind::Migrate,
        JobKind::Repair,
        JobKind::EnergyDashboard,
    ];

    /// The CLI's command.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backfill => "backfill",
            JobKind::Migrate => "migrate",
            JobKind::Repair => "repair",
            JobKind::EnergyDashboard => "energy-dashboard",
        }
    }

    /// The form's value (serde's name).
    pub fn value(self) -> &'static str {
        match self {
            JobKind::EnergyDashboard => "energy_dashboard",
            k => k.name(),
        }
    }
}

/// The places `energy-dashboard --replace` names, each a checkbox `replace_<place>` on the
/// panel's forms.
pub const REPLACE_PLACES: [&str; 6] = [
    "grid_import",
    "grid_export",
    "solar",
    "battery_discharge",
    "battery_charge",
    "power",
];

/// A job's form as posted: the main options of the CLI command. Dates stay text: the job
/// itself refuses a wrong one with the CLI's message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobForm {
    /// The page's CSRF token (checked by the route, not kept).
    #[serde(default, skip_serializing)]
    pub csrf: String,
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
    /// Energy dashboard: the rivals to replace, one checkbox per place ([`REPLACE_PLACES`]).
    #[serde(default)]
    pub replace_grid_import: Option<String>,
    #[serde(default)]
    pub replace_grid_export: Option<String>,
    #[serde(default)]
    pub replace_solar: Option<String>,
    #[serde(default)]
    pub replace_battery_discharge: Option<String>,
    #[serde(default)]
    pub replace_battery_charge: Option<String>,
    #[serde(default)]
    pub replace_power: Option<String>,
    /// Energy dashboard: put back this saved file (one of [`Backend::backups`]).
    ///
    /// [`Backend::backups`]: crate::Backend::backups
    #[serde(default)]
    pub restore: String,
}

impl JobForm {
    pub fn overwrite(&self) -> bool {
        self.overwrite.is_some()
    }
    pub fn no_auto_backfill(&self) -> bool {
        self.no_auto_backfill.is_some()
    }

    /// The places ticked to replace, in [`REPLACE_PLACES`]' order.
    pub fn replace(&self) -> Vec<&'static str> {
        let ticked = [
            &self.replace_grid_import,
            &self.replace_grid_export,
            &self.replace_solar,
            &self.replace_battery_discharge,
            &self.replace_battery_charge,
            &self.replace_power,
        ];
        REPLACE_PLACES
            .into_iter()
            .zip(ticked)
            .filter(|(_, t)| t.is_some())
            .map(|(p, _)| p)
            .collect()
    }
}

/// A choice a dry run offers (a rival to replace): a checkbox for the next dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// One of [`REPLACE_PLACES`].
    pub name: String,
    /// What ticking it does, in words.
    pub label: String,
}

/// An Energy preferences file `energy-dashboard` saved before it wrote, to put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The file's name in the state directory.
    pub file: String,
    /// When it was saved, local time.
    pub saved: String,
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
    /// Rows the real run would write, as the job said (`None`: it did not say). 0: nothing to
    /// apply.
    pub rows: Option<usize>,
    /// The dry run found nothing to change: no Apply.
    pub unchanged: bool,
    /// What the next dry run may replace (a rival in the Energy dashboard), with the form it
    /// was made from.
    pub choices: Vec<Choice>,
    pub form: JobForm,
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
