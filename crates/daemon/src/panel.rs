//! The web panel's backend: what its pages show, and its jobs.
//!
//! - Status: `doctor`'s report, refreshed in the background every few minutes (a page never
//!   waits for InfluxDB or HA), and the live meters as the last poll published them.
//! - History: the closing check of the last job `serve` ran (a button, the daily check, the
//!   panel's "Check now", or the check after a panel job), with its chart's hours and days.
//! - Jobs: backfill, migrate and repair run as this very program with the CLI's arguments, so
//!   the panel's job is the CLI's job: a dry run prints exactly what the CLI prints, the real
//!   run writes exactly what the CLI would. The real run takes the same gate as the buttons
//!   (one job at a time) and reports its steps on stderr (`PWSYNC_PROGRESS=lines`).
//! - Log: every job with what started it and its report, newest first, kept in the state
//!   directory: the panel's, and those `serve` runs itself (HA's buttons, the daily check, the
//!   hourly heal when it writes), and every refused one.

use super::clock::now;
use super::gate::{JobGate, Refused};
use super::journal::{Entry, Journal};
use crate::doctor;
use crate::progress::{parse_progress, parse_result, PROGRESS_ENV};
use anyhow::Result;
use async_trait::async_trait;
use chrono_tz::Tz;
use pwsync_config::Config;
use pwsync_jobs::check::StatisticCheck;
use pwsync_jobs::dashboard::{backup_file_name, BACKUP_PREFIX};
use pwsync_jobs::CheckReport;
use pwsync_web::{
    Backend, Backup, ChartSeries, CheckedView, DayColumns, HistoryView, HourColumns, Interrupted,
    JobForm, JobKind, LogEntry, MeterRow, Plan, ProblemRow, Progress, Reading, RunState, Section,
    StatusView,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

/// How often Status asks `doctor` again.
const STATUS_EVERY: Duration = Duration::from_secs(300);
/// Past jobs the log keeps, and dry-run plans kept for "Apply".
const LOG_KEPT: usize = 50;
const PLANS_KEPT: usize = 20;
/// How long Apply waits for the check that ends every job before it refuses (a check of three
/// years takes seconds).
const CHECK_WAIT: Duration = Duration::from_secs(60);
/// A report longer than this is cut in the log (a backfill of years is a few KB).
const REPORT_MAX: usize = 64 * 1024;

/// What the panel asks of `serve`'s loop.
#[derive(Debug)]
pub(super) enum Request {
    /// Run the check job (the History page's button, and after a panel job).
    Check,
    /// Run again the job of this name that a button started and a previous run left unfinished.
    Resume(String),
}

/// How to run this program again, as the user started it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub config: Option<PathBuf>,
    pub addon: bool,
}

#[derive(Clone)]
pub(super) struct Panel(Arc<Shared>);

struct Shared {
    cfg: Config,
    tz: Tz,
    invocation: Invocation,
    gate: JobGate,
    /// HA is configured: the check job exists.
    checks: bool,
    requests: mpsc::UnboundedSender<Request>,
    status: RwLock<StatusView>,
    /// The last findings, for the first-run guide (with the last check, at each page).
    findings: RwLock<Option<doctor::Report>>,
    /// Wakes the findings' refresh early: a job's closing check changes what the guide says.
    refresh: tokio::sync::Notify,
    history: RwLock<HistoryView>,
    plans: Mutex<BTreeMap<u64, (JobKind, Vec<String>)>>,
    next_id: AtomicU64,
    progress: watch::Sender<Progress>,
    log: Mutex<Vec<LogEntry>>,
    log_path: Option<PathBuf>,
    /// One dry run at a time: each reads all of InfluxDB's history.
    dry_runs: tokio::sync::Mutex<()>,
    /// Panel jobs record themselves here while they write (see `journal`).
    journal: Journal,
    /// The job a previous run left unfinished, until a job starts: the banner and Resume.
    interrupted: Mutex<Option<Entry>>,
}

impl Panel {
    pub(super) fn new(
        cfg: &Config,
        tz: Tz,
        invocation: Invocation,
        gate: JobGate,
        checks: bool,
    ) -> (Panel, mpsc::UnboundedReceiver<Request>) {
        let (requests, rx) = mpsc::unbounded_channel();
        let log_path = crate::heartbeat::state_dir().map(|d| d.join("panel-log.json"));
        let log = log_path.as_deref().map(read_log).unwrap_or_default();
        let next = log.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        let panel = Panel(Arc::new(Shared {
            cfg: cfg.clone(),
            tz,
            invocation,
            gate,
            checks,
            requests,
            status: RwLock::new(StatusView::default()),
            findings: RwLock::new(None),
            refresh: tokio::sync::Notify::new(),
            history: RwLock::new(HistoryView::default()),
            plans: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(next),
            progress: watch::channel(Progress::default()).0,
            log: Mutex::new(log),
            log_path,
            dry_runs: tokio::sync::Mutex::new(()),
            journal: Journal::in_state_dir(),
            interrupted: Mutex::new(None),
        }));
        (panel, rx)
    }

    /// Keep Status's `doctor` findings fresh, in the background, until the process ends.
    pub(super) fn refresh_status_in_background(&self) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("panel-status".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    loop {
                        let (report, tz) = doctor::report(&me.0.cfg).await;
                        let sections = status_sections(&report, tz);
                        let at = iso(now(), me.0.tz);
                        if let Ok(mut s) = me.0.status.write() {
                            s.sections = sections;
                            s.checked_at = Some(at);
                        }
                        if let Ok(mut f) = me.0.findings.write() {
                            *f = Some(report);
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(STATUS_EVERY) => {}
                            _ = me.0.refresh.notified() => {}
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            tracing::warn!("the panel's Status cannot refresh: {e}");
        }
    }

    /// The meters as this poll published them.
    pub(super) fn set_meters(&self, states: &BTreeMap<String, String>, at: i64) {
        let meters = pwsync_mqtt::discovery::catalogue()
            .iter()
            .filter(|s| s.kind.is_reading())
            .filter_map(|s| {
                let v = reading(states.get(&s.key)?);
                Some(MeterRow {
                    name: s.name.clone(),
                    value: v.parse().map_or(Reading::Word(v), Reading::Number),
                    unit: s.kind.unit().map(String::from),
                })
            })
            .collect();
        if let Ok(mut s) = self.0.status.write() {
            s.meters = meters;
            s.last_poll = Some(iso(at, self.0.tz));
        }
    }

    /// A job's closing check, for History (its chart's data shaped now, not per request).
    pub(super) fn set_check(&self, r: &CheckReport, at: i64, by: &str) {
        let tz = self.0.tz;
        let problems = r
            .statistics
            .iter()
            .flat_map(|s| {
                s.findings.iter().map(move |f| {
                    let (start, end) = pwsync_jobs::check::span(f);
                    ProblemRow {
                        hour: pwsync_jobs::check::when(f, tz),
                        start,
                        end,
                        statistic: s.statistic_id.clone(),
                        kind: f.kind.label(),
                        found: format!("{:.3}", f.found),
                        expected: f.expected.map_or("—".into(), |e| format!("{e:.3}")),
                        cause: f.cause().to_string(),
                    }
                })
            })
            .collect();
        let view = CheckedView {
            at: iso(at, tz),
            by: by.to_string(),
            from: pwsync_jobs::range::fmt_ts(r.start, tz),
            to: pwsync_jobs::range::fmt_ts(r.end, tz),
            problems,
            series: r
                .statistics
                .iter()
                .map(|s| chart_series(s, r, tz))
                .collect(),
        };
        if let Ok(mut h) = self.0.history.write() {
            h.checked = Some(view);
        }
        self.0.refresh.notify_one();
    }

    /// The job a previous run left unfinished (`None` once a job has started).
    pub(super) fn set_interrupted(&self, e: Option<Entry>) {
        if let Ok(mut i) = self.0.interrupted.lock() {
            *i = e;
        }
    }

    pub(super) fn interrupted(&self) -> Option<Entry> {
        self.0.interrupted.lock().ok().and_then(|i| i.clone())
    }

    fn id(&self) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn remember(&self, entry: LogEntry) {
        let Ok(mut log) = self.0.log.lock() else {
            return;
        };
        log.insert(0, entry);
        log.truncate(LOG_KEPT);
        if let Some(path) = &self.0.log_path {
            if let Err(e) = write_log(path, &log) {
                tracing::warn!("cannot keep the panel's log in {}: {e}", path.display());
            }
        }
    }

    /// A job `serve` ran itself (a button, the daily check, a resume, the heal) in the Log:
    /// `result` is its report, or its error.
    pub(super) fn log_job(
        &self,
        job: &str,
        trigger: &str,
        command: &str,
        started: i64,
        result: std::result::Result<String, String>,
    ) {
        let tz = self.0.tz;
        let succeeded = result.is_ok();
        self.remember(LogEntry {
            id: self.id(),
            job: job.into(),
            trigger: trigger.into(),
            command: command.into(),
            dry_run: false,
            started: iso(started, tz),
            finished: iso(now(), tz),
            succeeded,
            report: result.unwrap_or_else(|e| e),
        });
    }

    /// A job the gate turned away, as a failed entry in the Log.
    pub(super) fn log_refused(&self, r: &Refused, trigger: &str, command: &str) {
        let at = now();
        self.log_job(
            &r.job,
            trigger,
            command,
            at,
            Err(format!("refused: {}", r.why)),
        );
    }

    /// This program with the user's global options.
    fn command(&self, args: &[String]) -> tokio::process::Command {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pwsync"));
        let mut c = tokio::process::Command::new(exe);
        if let Some(p) = &self.0.invocation.config {
            c.arg("--config").arg(p);
        }
        if self.0.invocation.addon {
            c.arg("--addon");
        }
        c.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        end_with_parent(&mut c);
        c
    }
}

/// The CLI's arguments for a form (without `--dry-run`).
fn job_args(form: &JobForm) -> std::result::Result<(JobKind, Vec<String>), String> {
    let kind = form.job.ok_or("which job? (the form sent none)")?;
    if kind == JobKind::EnergyDashboard {
        return energy_args(form, crate::heartbeat::state_dir().as_deref()).map(|a| (kind, a));
    }
    let start = form.start.trim();
    let end = form.end.trim();
    let mut a: Vec<String> = vec![kind.name().into()];
    let pair = |flag: &str, v: &str| [flag.to_string(), v.to_string()];
    let (first, last) = match kind {
        JobKind::Backfill => ("--start", Some("--end")),
        JobKind::Migrate => ("--start-date", Some("--end-date")),
        JobKind::Repair | JobKind::EnergyDashboard => ("--since", None),
    };
    match start {
        "" if kind == JobKind::Backfill => a.push("--all".into()),
        "" => {}
        d => a.extend(pair(first, d)),
    }
    if let (Some(flag), false) = (last, end.is_empty()) {
        a.extend(pair(flag, end));
    }
    if kind == JobKind::Migrate && form.no_auto_backfill() {
        a.push("--no-auto-backfill".into());
    }
    if form.overwrite() && kind != JobKind::Repair {
        a.push("--overwrite".into());
    }
    Ok((kind, a))
}

/// `energy-dashboard`'s arguments: the ticked replacements or a saved file to put back, and
/// where to save the preferences before it writes (the state directory, which survives an
/// add-on's update).
fn energy_args(form: &JobForm, state: Option<&Path>) -> std::result::Result<Vec<String>, String> {
    let mut a: Vec<String> = vec![JobKind::EnergyDashboard.name().into()];
    let restore = form.restore.trim();
    if !restore.is_empty() {
        let dir = state.ok_or("No saved preferences here: serve has no state directory")?;
        if !is_backup_name(restore) {
            return Err(format!(
                "{restore}: not a file of saved Energy preferences; choose one of the list"
            ));
        }
        a.extend(["--restore".into(), dir.join(restore).display().to_string()]);
    } else if !form.replace().is_empty() {
        a.extend(["--replace".into(), form.replace().join(",")]);
    }
    if let Some(dir) = state {
        let file = dir.join(backup_file_name(chrono::Utc::now()));
        a.extend(["--backup".into(), file.display().to_string()]);
    }
    Ok(a)
}

/// A file name the panel saved (no directory, no way out of the state directory).
fn is_backup_name(name: &str) -> bool {
    name.starts_with(BACKUP_PREFIX)
        && name.ends_with(".json")
        && !name.contains(['/', '\\'])
        && !name.contains("..")
}

/// The saved Energy preferences in `dir`, newest first.
fn backups_in(dir: &Path, tz: Tz) -> Vec<Backup> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(i64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            let at = modified
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs() as i64;
            is_backup_name(&name).then_some((at, name))
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found
        .into_iter()
        .map(|(at, file)| Backup {
            file,
            saved: iso(at, tz),
        })
        .collect()
}

/// A statistic's hours and HA's days for History's chart.
fn chart_series(s: &StatisticCheck, r: &CheckReport, tz: Tz) -> Arc<ChartSeries> {
    let days = s.hourly.by_day(tz);
    Arc::new(ChartSeries {
        statistic: s.statistic_id.clone(),
        time_zone: r.time_zone.clone(),
        hours: HourColumns {
            start: s.hourly.start,
            step: pwsync_energy::HOUR,
            ha: s.hourly.ha.clone(),
            influx: s.hourly.influx.clone(),
        },
        days: DayColumns {
            start: days.start,
            ha: days.ha,
            influx: days.influx,
        },
    })
}

/// What a finished child said: its report (stdout, then on failure what it said on stderr),
/// and the result it gave the panel.
struct ChildOutput {
    succeeded: bool,
    report: String,
    result: Option<serde_json::Value>,
}

#[async_trait]
impl Backend for Panel {
    async fn status(&self) -> StatusView {
        let mut v = self.0.status.read().map(|s| s.clone()).unwrap_or_default();
        if let (Ok(findings), Ok(history)) = (self.0.findings.read(), self.0.history.read()) {
            if let Some(r) = findings.as_ref() {
                v.guide = super::guide::steps(r, history.checked.as_ref(), now(), self.0.tz);
            }
        }
        v.interrupted = self.interrupted().map(|e| Interrupted {
            what: capitalised(&e.describe(self.0.tz)),
            resume: "Resume runs the same job again: it writes only what is still missing or \
                     wrong, then checks the history."
                .into(),
        });
        v
    }

    async fn history(&self) -> HistoryView {
        self.0.history.read().map(|h| h.clone()).unwrap_or_default()
    }

    async fn check(&self) -> std::result::Result<(), String> {
        if !self.0.checks {
            return Err(
                "Checking needs Home Assistant: set homeassistant.url and homeassistant.token"
                    .into(),
            );
        }
        if self.0.gate.busy() {
            let why = "a job is running; check again when it has finished";
            let refused = Refused {
                job: "check".into(),
                why: why.into(),
            };
            self.log_refused(&refused, "panel", "pwsync check");
            return Err(capitalised(why));
        }
        self.0
            .requests
            .send(Request::Check)
            .map_err(|_| "serve is stopping".to_string())
    }

    async fn dry_run(&self, form: &JobForm) -> std::result::Result<Plan, String> {
        let (job, args) = job_args(form)?;
        let _one = self.0.dry_runs.lock().await;
        let mut with_dry_run = args.clone();
        with_dry_run.push("--dry-run".into());
        let started = now();
        let mut cmd = self.command(&with_dry_run);
        cmd.env(PROGRESS_ENV, "lines");
        let out = run_child(cmd, None, 0).await;
        let id = self.id();
        let command = format!("pwsync {}", args.join(" "));
        self.remember(LogEntry {
            id,
            job: job.name().into(),
            trigger: "panel".into(),
            command: format!("{command} --dry-run"),
            dry_run: true,
            started: iso(started, self.0.tz),
            finished: iso(now(), self.0.tz),
            succeeded: out.succeeded,
            report: out.report.clone(),
        });
        let result = out.result.unwrap_or_default();
        let rows = result["rows"].as_u64().map(|n| n as usize);
        let unchanged = result["changed"] == false;
        // A plan that writes nothing is nothing to apply.
        if out.succeeded && rows != Some(0) && !unchanged {
            if let Ok(mut plans) = self.0.plans.lock() {
                plans.insert(id, (job, args));
                while plans.len() > PLANS_KEPT {
                    plans.pop_first();
                }
            }
        }
        Ok(Plan {
            id,
            job,
            command,
            report: out.report,
            failed: !out.succeeded,
            rows,
            unchanged,
            choices: serde_json::from_value(result["choices"].clone()).unwrap_or_default(),
            form: form.clone(),
        })
    }

    async fn apply(&self, plan: u64) -> std::result::Result<u64, String> {
        let (job, args) = self
            .0
            .plans
            .lock()
            .ok()
            .and_then(|p| p.get(&plan).cloned())
            .ok_or(
                "That plan is no longer known (serve restarted, or it is old): make a new dry run",
            )?;
        self.run_job(job, args, "panel").await
    }

    fn progress(&self) -> watch::Receiver<Progress> {
        self.0.progress.subscribe()
    }

    async fn log(&self) -> Vec<LogEntry> {
        self.0.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    async fn resume(&self) -> std::result::Result<(), String> {
        Panel::resume(self).await
    }

    async fn backups(&self) -> Vec<Backup> {
        crate::heartbeat::state_dir()
            .map(|d| backups_in(&d, self.0.tz))
            .unwrap_or_default()
    }
}

pub(super) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl Panel {
    /// Run a job as this program with `args`, in the background, journaled while it writes;
    /// the run's id. `trigger`: `panel`, or `resume`.
    async fn run_job(
        &self,
        job: JobKind,
        args: Vec<String>,
        trigger: &'static str,
    ) -> std::result::Result<u64, String> {
        let command = format!("pwsync {}", args.join(" "));
        self.0.gate.after_check(CHECK_WAIT).await;
        if let Err(r) = self.0.gate.take(job.name()) {
            self.log_refused(&r, trigger, &command);
            return Err(r.into());
        }
        let run = self.id();
        let started = now();
        tracing::info!("{} started ({trigger})", job.name());
        let entry = Entry::new(job.name(), trigger, started, args.clone());
        self.0.journal.begin(&entry);
        self.set_interrupted(None);
        self.0.progress.send_replace(Progress {
            run,
            job: job.name().into(),
            state: RunState::Running,
            fraction: 0.0,
            message: "starting".into(),
        });
        let mut cmd = self.command(&args);
        cmd.env(PROGRESS_ENV, "lines");
        let me = self.clone();
        tokio::spawn(async move {
            let journaling = tokio::spawn(journal_progress(me.clone(), entry, run));
            let out = run_child(cmd, Some(&me.0.progress), run).await;
            journaling.abort();
            me.0.journal.end();
            me.0.gate.release();
            tracing::info!(
                "{} {} ({trigger})",
                job.name(),
                if out.succeeded { "succeeded" } else { "failed" }
            );
            me.remember(LogEntry {
                id: run,
                job: job.name().into(),
                trigger: trigger.into(),
                command,
                dry_run: false,
                started: iso(started, me.0.tz),
                finished: iso(now(), me.0.tz),
                succeeded: out.succeeded,
                report: out.report,
            });
            me.0.progress.send_modify(|p| {
                p.state = if out.succeeded {
                    RunState::Succeeded
                } else {
                    RunState::Failed
                };
                if out.succeeded {
                    p.fraction = 1.0;
                }
                p.message = if out.succeeded {
                    "done"
                } else {
                    "failed: see its report"
                }
                .into();
            });
            // What the guide says may have changed (an Energy dashboard set up).
            me.0.refresh.notify_one();
            // The seam guard and a check after the writes, as after every job that writes
            // statistics; History shows it.
            if out.succeeded && me.0.checks && job != JobKind::EnergyDashboard {
                let _ = me.0.requests.send(Request::Check);
            }
        });
        Ok(run)
    }

    /// Run the interrupted job again: a panel job with its own arguments, a button's job
    /// through the loop (the same job the button runs).
    async fn resume(&self) -> std::result::Result<(), String> {
        let e = self
            .interrupted()
            .ok_or("No job is waiting to be resumed")?;
        if e.args.is_empty() {
            return self
                .0
                .requests
                .send(Request::Resume(e.job))
                .map_err(|_| "serve is stopping".to_string());
        }
        let job = JobKind::ALL
            .into_iter()
            .find(|k| k.name() == e.job)
            .ok_or_else(|| format!("cannot resume a {}", e.job))?;
        self.run_job(job, e.args, "resume").await.map(|_| ())
    }
}

/// Keep the journal's record of a panel job as far as its progress lines go (at most once a
/// second), until the run ends.
async fn journal_progress(panel: Panel, mut entry: Entry, run: u64) {
    let mut rx = panel.0.progress.subscribe();
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        if p.run != run || p.state != RunState::Running {
            return;
        }
        entry.step = p.message;
        entry.fraction = p.fraction;
        panel.0.journal.progress(&entry);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Run a child to its end; its progress lines move `progress` (for run `run`).
async fn run_child(
    mut cmd: tokio::process::Command,
    progress: Option<&watch::Sender<Progress>>,
    run: u64,
) -> ChildOutput {
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ChildOutput {
                succeeded: false,
                report: format!("cannot start pwsync: {e}"),
                result: None,
            }
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_stdout = async {
        let mut out = String::new();
        if let Some(s) = stdout {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out
    };
    let read_stderr = async {
        let mut said = String::new();
        let mut result = None;
        if let Some(s) = stderr {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(r) = parse_result(&l) {
                    result = Some(r);
                    continue;
                }
                match parse_progress(&l) {
                    Some((fraction, message)) => {
                        if let Some(p) = progress {
                            p.send_modify(|p| {
                                if p.run == run {
                                    p.fraction = fraction;
                                    p.message = message;
                                }
                            });
                        }
                    }
                    None => {
                        said.push_str(&l);
                        said.push('\n');
                    }
                }
            }
        }
        (said, result)
    };
    let (out, (said, result)) = tokio::join!(read_stdout, read_stderr);
    let succeeded = child.wait().await.is_ok_and(|s| s.success());
    let mut report = out;
    if !succeeded || report.trim().is_empty() {
        report.push_str(&said);
    }
    // The CLI's advice names its commands; the panel's reader has buttons instead.
    let mut report = pwsync_web::advice::for_panel(&report);
    if report.len() > REPORT_MAX {
        let mut cut = REPORT_MAX;
        while !report.is_char_boundary(cut) {
            cut -= 1;
        }
        report.truncate(cut);
        report.push_str("\n… (cut)\n");
    }
    ChildOutput {
        succeeded,
        report,
        result,
    }
}

/// The child ends when `serve` does, even by `kill -9`: a job must not go on writing unseen
/// while the next `serve` reports it interrupted and offers to run it again.
fn end_with_parent(c: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn status_sections(r: &doctor::Report, tz: Tz) -> Vec<Section> {
    let t = |ts: Option<i64>| ts.map_or("—".to_string(), |t| pwsync_jobs::range::fmt_ts(t, tz));
    let i = &r.influxdb;
    let influx = Section {
        title: "InfluxDB".into(),
        ok: i.version.is_some() && i.first.is_some(),
        rows: vec![
            ("address".into(), i.url.clone()),
            (
                "version".into(),
                i.version.clone().unwrap_or("unreachable".into()),
            ),
            ("data from".into(), t(i.first)),
            ("data to".into(), t(i.last)),
            (
                "gaps".into(),
                format!("{} (about {:.0} h without data)", i.gap_count, i.gap_hours),
            ),
        ],
    };
    let h = &r.homeassistant;
    let ha = Section {
        title: "Home Assistant".into(),
        ok: h.version.is_some(),
        rows: vec![
            (
                "address".into(),
                h.url.clone().unwrap_or("not configured".into()),
            ),
            (
                "version".into(),
                match (&h.version, h.version_tested) {
                    (Some(v), Some(true)) => format!("{v} (tested with pwsync)"),
                    (Some(v), _) => v.clone(),
                    (None, _) => "not reachable".into(),
                },
            ),
            (
                "time zone".into(),
                h.time_zone.clone().unwrap_or("—".into()),
            ),
            (
                "pwsync's statistics".into(),
                format!("{} of 6", h.pwsync_statistics.len()),
            ),
            (
                "Tesla integrations' statistics".into(),
                h.tesla_statistics.len().to_string(),
            ),
        ],
    };
    let mut sections = vec![influx, ha];
    if let Some((addr, ok, state)) = &r.mqtt {
        sections.push(Section {
            title: "MQTT broker".into(),
            ok: *ok,
            rows: vec![
                ("address".into(), addr.clone()),
                ("login".into(), state.clone()),
            ],
        });
    }
    if let Some(db) = &r.recorder_db {
        sections.push(Section {
            title: "Recorder database".into(),
            ok: true,
            rows: vec![("database".into(), db.clone())],
        });
    }
    let mut rows: Vec<(String, String)> = r
        .problems
        .iter()
        .map(|p| ("problem".to_string(), p.clone()))
        .chain(
            r.warnings
                .iter()
                .map(|w| ("warning".to_string(), w.clone())),
        )
        .collect();
    rows.push(("next".into(), r.next_action.clone()));
    sections.push(Section {
        title: "Doctor".into(),
        ok: r.problems.is_empty(),
        rows,
    });
    // doctor's advice is for a shell; on the panel it says what to press.
    for s in &mut sections {
        for (_, v) in &mut s.rows {
            *v = pwsync_web::advice::for_panel(v);
        }
    }
    sections
}

/// A state payload as a person reads it: a period total's JSON is its value.
fn reading(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("value").map(|x| x.to_string()))
        .unwrap_or_else(|| payload.to_string())
}

fn iso(t: i64, tz: Tz) -> String {
    pwsync_jobs::range::fmt_ts(t, tz)
}

fn read_log(path: &std::path::Path) -> Vec<LogEntry> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_log(path: &std::path::Path, log: &[LogEntry]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(log)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(job: JobKind, start: &str, end: &str, overwrite: bool) -> JobForm {
        JobForm {
            job: Some(job),
            start: start.into(),
            end: end.into(),
            overwrite: overwrite.then(|| "on".into()),
            ..JobForm::default()
        }
    }

    #[test]
    fn each_form_becomes_the_cli_arguments_of_its_job() {
        let args = |f: &JobForm| job_args(f).unwrap().1.join(" ");
        assert_eq!(
            args(&form(JobKind::Backfill, "", "", false)),
            "backfill --all"
        );
        assert_eq!(
            args(&form(JobKind::Backfill, "2024-01-01", "2024-02-01", true)),
            "backfill --start 2024-01-01 --end 2024-02-01 --overwrite"
        );
        assert_eq!(
            args(&form(JobKind::Migrate, "2024-01-01", "", false)),
            "migrate --start-date 2024-01-01"
        );
        assert_eq!(
            args(&form(JobKind::Repair, "2024-03-01", "", true)),
            "repair --since 2024-03-01"
        );
        let mut m = form(JobKind::Migrate, "", "", false);
        m.no_auto_backfill = Some("on".into());
        assert_eq!(args(&m), "migrate --no-auto-backfill");
        assert!(job_args(&JobForm::default()).is_err());
    }

    #[test]
    fn a_typed_value_stays_one_argument() {
        // Dates reach the CLI as one argument each, whatever they hold: no shell in between.
        let (_, a) = job_args(&form(
            JobKind::Backfill,
            "2024-01-01 --overwrite",
            "",
            false,
        ))
        .unwrap();
        assert_eq!(a, ["backfill", "--start", "2024-01-01 --overwrite"]);
    }

    #[test]
    fn the_energy_form_replaces_what_is_ticked_and_restores_only_a_saved_file() {
        let dir = Path::new("/state");
        let mut f = form(JobKind::EnergyDashboard, "", "", false);
        f.replace_grid_import = Some("on".into());
        f.replace_power = Some("on".into());
        let a = energy_args(&f, Some(dir)).unwrap();
        assert_eq!(
            a[..3],
            ["energy-dashboard", "--replace", "grid_import,power"]
        );
        assert_eq!(a[3], "--backup");
        assert!(a[4].starts_with("/state/energy-prefs-") && a[4].ends_with(".json"));

        let mut r = form(JobKind::EnergyDashboard, "", "", false);
        r.restore = "energy-prefs-20261207T120000Z.json".into();
        let a = energy_args(&r, Some(dir)).unwrap();
        assert_eq!(
            a[..3],
            [
                "energy-dashboard",
                "--restore",
                "/state/energy-prefs-20261207T120000Z.json"
            ]
        );
        for bad in [
            "../etc/passwd",
            "energy-prefs-x/../../y.json",
            "options.json",
        ] {
            r.restore = bad.into();
            assert!(energy_args(&r, Some(dir)).is_err(), "{bad}");
        }
        r.restore = "energy-prefs-1.json".into();
        assert!(
            energy_args(&r, None).is_err(),
            "no state directory, nothing saved"
        );
    }
}
