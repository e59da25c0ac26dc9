//! Jobs `serve` runs for HA: its buttons (a command on MQTT) and the daily check. One job at a
//! time, each on a thread of its own with its own runtime, so polls go on while it runs; its
//! outcome comes back to the loop, which publishes it on the result entities.
//!
//! A job is the CLI's code path with the CLI's defaults: `check` and `repair` over all of
//! InfluxDB's history, `backfill --all` without `--overwrite`, all through HA's websocket. Every
//! job ends with a `check`, so the result entities show the history as it is after the job.

use super::clock::now;
use super::controls::Controls;
use super::gate::{JobGate, Refused};
use super::joblog;
use super::journal::{Entry, Journal};
use super::meters::Marks;
use super::seam_guard::guard_seam;
use anyhow::Result;
use chrono_tz::Tz;
use pwsync_config::scope::{self as check_cmd, Scope};
use pwsync_config::target::{Opened, Target, TargetArgs};
use pwsync_config::Config;
use pwsync_energy::audit::ProblemKind;
use pwsync_energy::Field;
use pwsync_jobs::check::CheckReport;
use pwsync_jobs::BackfillOptions;
use pwsync_mqtt::discovery::Topics;
use pwsync_mqtt::Mqtt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Checks after the first one, while it finds only what the seam guard moves by itself, and
/// the pause before each (HA compiles 5-minute rows every 5 minutes; one pass is enough).
const SETTLE_PASSES: usize = 2;
const SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// How many problems `history_problems` lists in its attributes (HA keeps attributes small).
const PROBLEMS_LISTED: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Job {
    Check,
    Repair,
    Backfill,
}

impl Job {
    /// The job a button's payload asks for.
    pub(super) fn from_command(payload: &str) -> Option<Job> {
        match payload.trim() {
            "check" => Some(Job::Check),
            "repair" => Some(Job::Repair),
            "backfill" => Some(Job::Backfill),
            _ => None,
        }
    }

    /// Whether the job writes statistics, and so is journaled: cut short, it leaves work to
    /// finish.
    fn writes(self) -> bool {
        !matches!(self, Job::Check)
    }

    fn name(self) -> &'static str {
        match self {
            Job::Check => "check",
            Job::Repair => "repair",
            Job::Backfill => "backfill",
        }
    }

    /// The CLI command that does the same, for the panel's Log.
    fn command(self) -> &'static str {
        match self {
            Job::Check => "pwsync check",
            Job::Repair => "pwsync repair",
            Job::Backfill => "pwsync backfill --all",
        }
    }
}

/// Why a job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    Button,
    Daily,
    Panel,
    /// The panel's Resume of a job a button started and a previous run left unfinished.
    Resume,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Button => "button",
            Trigger::Daily => "daily",
            Trigger::Panel => "panel",
            Trigger::Resume => "resume",
        }
    }

    /// Whose request it was, in a sentence.
    fn words(self) -> &'static str {
        match self {
            Trigger::Button => "HA's button",
            Trigger::Daily => "the daily check",
            Trigger::Panel => "the panel",
            Trigger::Resume => "the panel's Resume",
        }
    }
}

pub(super) struct Outcome {
    job: Job,
    trigger: Trigger,
    started: i64,
    finished: i64,
    result: std::result::Result<Done, String>,
}

struct Done {
    /// Rows the job wrote (hourly and 5-minute).
    rows: usize,
    /// The check that ended the job.
    check: CheckReport,
}

/// The job runner: at most one job, and where its outcome arrives.
pub(super) struct Jobs {
    cfg: Config,
    tz: Tz,
    gate: JobGate,
    /// The panel's History shows each job's closing check.
    panel: Option<super::panel::Panel>,
    running: Option<(Job, Trigger, i64)>,
    /// The last request refused since a job of this runner started (`last_job`'s `refused`).
    refused: Option<Value>,
    journal: Journal,
    /// The result entities' states, kept across restarts.
    controls: Controls,
    tx: mpsc::UnboundedSender<Outcome>,
    rx: mpsc::UnboundedReceiver<Outcome>,
}

impl Jobs {
    pub(super) fn new(
        cfg: &Config,
        tz: Tz,
        gate: JobGate,
        panel: Option<super::panel::Panel>,
    ) -> Jobs {
        let (tx, rx) = mpsc::unbounded_channel();
        Jobs {
            cfg: cfg.clone(),
            tz,
            gate,
            panel,
            running: None,
            refused: None,
            journal: Journal::in_state_dir(),
            controls: Controls::in_state_dir(),
            tx,
            rx,
        }
    }

    /// Start `job` and show it running, or, while another job runs, refuse it (see
    /// [`Jobs::refuse`]; a second press is not queued: the first job's result answers it).
    pub(super) async fn request(
        &mut self,
        job: Job,
        trigger: Trigger,
        marks: &Marks,
        mqtt: &Mqtt,
        topics: &Topics,
    ) -> Result<()> {
        if let Err(refusal) = self.gate.take(job.name()) {
            return self.refuse(job, trigger, &refusal, mqtt, topics).await;
        }
        self.refused = None;
        let started = now();
        tracing::info!("{} started ({})", job.name(), trigger.name());
        self.running = Some((job, trigger, started));
        // Written before the job writes: a kill from here on is found at the next start.
        let journal = job.writes().then(|| {
            let entry = Entry::new(job.name(), trigger.name(), started, Vec::new());
            self.journal.begin(&entry);
            (self.journal.clone(), entry)
        });
        if let Some(p) = &self.panel {
            p.set_interrupted(None);
        }
        let (cfg, tx, marks) = (self.cfg.clone(), self.tx.clone(), marks.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("job-{}", job.name()))
            .spawn(move || {
                let result = run_blocking(job, &cfg, &marks, journal);
                let _ = tx.send(Outcome {
                    job,
                    trigger,
                    started,
                    finished: now(),
                    result,
                });
            });
        if let Err(e) = spawned {
            self.running = None;
            self.gate.release();
            self.journal.end();
            return Err(e.into());
        }
        let attrs = json!({
            "job": job.name(),
            "trigger": trigger.name(),
            "started": iso(started, self.tz),
        });
        self.controls
            .publish(mqtt, topics, "last_job", "running", Some(attrs))
            .await
    }

    /// A refused request, where its owner looks: serve's log; `last_job`'s `refused` attribute
    /// beside the state it has (the running job's, which stays), until the next job starts;
    /// a notification in HA for a request from HA (a button, the daily check), which nobody
    /// watches as it happens; the panel's Log.
    async fn refuse(
        &mut self,
        job: Job,
        trigger: Trigger,
        r: &Refused,
        mqtt: &Mqtt,
        topics: &Topics,
    ) -> Result<()> {
        tracing::warn!("{r} ({})", trigger.name());
        let at = iso(now(), self.tz);
        if let Some(p) = &self.panel {
            p.log_refused(r, trigger.name(), job.command());
        }
        if matches!(trigger, Trigger::Button | Trigger::Daily) {
            super::ha::notify(
                &self.cfg,
                format!("pwsync_{}_refused", self.cfg.site),
                format!("pwsync: {} refused", job.name()),
                format!(
                    "{} asked for {} at {at}, and it did not start: {}.",
                    super::panel::capitalised(trigger.words()),
                    job.name(),
                    r.why
                ),
            );
        }
        let refused = json!({
            "job": job.name(),
            "trigger": trigger.name(),
            "reason": r.to_string(),
            "at": at,
        });
        self.refused = Some(refused.clone());
        let (state, mut attrs) = self
            .controls
            .kept("last_job")
            .unwrap_or_else(|| ("idle".into(), Value::Null));
        if !attrs.is_object() {
            attrs = json!({});
        }
        attrs["refused"] = refused;
        self.controls
            .publish(mqtt, topics, "last_job", &state, Some(attrs))
            .await
    }

    /// The running job's outcome, once it has finished; pending while none runs.
    pub(super) async fn finished(&mut self) -> Outcome {
        let o = self.rx.recv().await.expect("the runner holds a sender");
        self.running = None;
        if o.job.writes() {
            self.journal.end();
        }
        self.gate.release();
        o
    }

    /// `last_job` and, when the job got that far, the check's result entities.
    pub(super) async fn publish(&self, o: &Outcome, mqtt: &Mqtt, topics: &Topics) -> Result<()> {
        let mut attrs = json!({
            "job": o.job.name(),
            "trigger": o.trigger.name(),
            "started": iso(o.started, self.tz),
            "finished": iso(o.finished, self.tz),
        });
        if let Some(r) = &self.refused {
            attrs["refused"] = r.clone();
        }
        if let Some(p) = &self.panel {
            let report = o
                .result
                .as_ref()
                .map_err(Clone::clone)
                .map(|done| match o.job {
                    Job::Check => joblog::check_summary(&done.check, self.tz),
                    _ => joblog::written_summary(done.rows, &done.check, self.tz),
                });
            p.log_job(
                o.job.name(),
                o.trigger.name(),
                o.job.command(),
                o.started,
                report,
            );
        }
        let state = match &o.result {
            Ok(done) => {
                tracing::info!(
                    rows = done.rows,
                    problems = done.check.problems,
                    "{} succeeded",
                    o.job.name()
                );
                attrs["rows_written"] = json!(done.rows);
                if let Some(p) = &self.panel {
                    p.set_check(&done.check, o.finished, o.trigger.name());
                }
                self.publish_check(&done.check, o.finished, mqtt, topics)
                    .await?;
                "succeeded"
            }
            Err(e) => {
                tracing::warn!("{} failed: {e}", o.job.name());
                attrs["error"] = json!(e);
                "failed"
            }
        };
        self.controls
            .publish(mqtt, topics, "last_job", state, Some(attrs))
            .await
    }

    async fn publish_check(
        &self,
        r: &CheckReport,
        at: i64,
        mqtt: &Mqtt,
        topics: &Topics,
    ) -> Result<()> {
        let attrs = problems_attributes(r, self.tz);
        let c = &self.controls;
        c.publish(
            mqtt,
            topics,
            "history_problems",
            &r.problems.to_string(),
            Some(attrs),
        )
        .await?;
        let ok = if r.is_clean() { "OFF" } else { "ON" };
        c.publish(mqtt, topics, "history_ok", ok, None).await?;
        c.publish(mqtt, topics, "last_check", &iso(at, self.tz), None)
            .await
    }

    /// At start: the result entities as the last run left them (a broker without retained
    /// messages, or a restarted HA, shows the last check at once); `last_job` is `interrupted`
    /// when the journal holds a job that a kill, a power cut or an update cut short, with what
    /// it was and how to finish it, and `idle` when no job has run or one was running (nothing
    /// runs now).
    pub(super) async fn publish_start(
        &self,
        interrupted: Option<&Entry>,
        mqtt: &Mqtt,
        topics: &Topics,
    ) -> Result<()> {
        self.controls.republish(mqtt, topics).await?;
        let tz = self.tz;
        let c = &self.controls;
        let Some(e) = interrupted else {
            return match c.state_of("last_job").as_deref() {
                None | Some("running") => {
                    c.publish(mqtt, topics, "last_job", "idle", Some(json!({})))
                        .await
                }
                Some(_) => Ok(()),
            };
        };
        tracing::warn!("{}; {}", e.describe(tz), e.resume_hint());
        let attrs = json!({
            "job": e.job,
            "trigger": e.trigger,
            "started": iso(e.started, tz),
            "step": e.step,
            "fraction_done": e.fraction,
            "resume": e.resume_hint(),
        });
        c.publish(mqtt, topics, "last_job", "interrupted", Some(attrs))
            .await
    }

    /// After a reconnect or HA's birth message: the result entities again.
    pub(super) async fn republish(&self, mqtt: &Mqtt, topics: &Topics) -> Result<()> {
        self.controls.republish(mqtt, topics).await
    }

    /// At shutdown: let a running job finish (an interrupted write would leave half a plan
    /// applied) and publish how it ended.
    pub(super) async fn finish(&mut self, mqtt: &Mqtt, topics: &Topics) -> Result<()> {
        if let Some((job, _, _)) = self.running {
            tracing::info!("stopping once {} has finished", job.name());
            let o = self.finished().await;
            self.publish(&o, mqtt, topics).await?;
        }
        Ok(())
    }
}

/// `history_problems`' attributes: the checked range and the first problems.
fn problems_attributes(r: &CheckReport, tz: Tz) -> Value {
    let problems: Vec<Value> = r
        .statistics
        .iter()
        .flat_map(|s| {
            s.findings.iter().map(|f| {
                json!({
                    "hour": iso(f.hour, tz),
                    "statistic": s.statistic_id,
                    "kind": f.kind.label(),
                })
            })
        })
        .take(PROBLEMS_LISTED)
        .collect();
    json!({
        "checked_from": iso(r.start, tz),
        "checked_to": iso(r.end, tz),
        "problems": problems,
    })
}

fn iso(t: i64, tz: Tz) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&tz)
        .to_rfc3339()
}

/// The job on this thread, on a runtime of its own; a panic is a failed job, not a runner that
/// waits forever.
fn run_blocking(
    job: Job,
    cfg: &Config,
    marks: &Marks,
    journal: Option<(Journal, Entry)>,
) -> std::result::Result<Done, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the job's runtime: {e}"))?;
    let run = std::panic::AssertUnwindSafe(|| rt.block_on(run(job, cfg, marks, journal)));
    match std::panic::catch_unwind(run) {
        Ok(r) => r.map_err(|e| pwsync_config::errors::one_line(&e)),
        Err(_) => Err(format!("{} panicked; see the log", job.name())),
    }
}

async fn run(
    job: Job,
    cfg: &Config,
    marks: &Marks,
    journal: Option<(Journal, Entry)>,
) -> Result<Done> {
    let source = pwsync_config::source::from_config(cfg)?;
    let scope = whole_history();
    let target = Opened::open(&scope.target, cfg, false).await?;
    let done = async {
        let rows = work(job, cfg, &source, &target, &scope, journal).await?;
        let mut check = guarded_check(cfg, marks, &source, &target, &scope).await?;
        // HA's 5-minute compile can start a new sum right after the job's writes, before or
        // during that check: a live-end finding the guard moves at its next pass. Give it that
        // pass rather than report (and notify the owner of) a problem that heals by itself.
        for _ in 0..SETTLE_PASSES {
            if !only_at_live_end(&check) {
                break;
            }
            tracing::info!(
                "{} live-end finding(s) after {}; checking again after the seam guard",
                check.problems,
                job.name()
            );
            tokio::time::sleep(SETTLE_PAUSE).await;
            check = guarded_check(cfg, marks, &source, &target, &scope).await?;
        }
        Ok(Done { rows, check })
    }
    .await;
    target.close().await;
    done
}

/// The history as it is now: first HA's live 5-minute chain onto the hourly rows (the guard
/// of `serve`'s loop waits while a job runs), then a check.
async fn guarded_check(
    cfg: &Config,
    marks: &Marks,
    source: &pwsync_config::source::Source,
    target: &Opened,
    scope: &Scope,
) -> Result<CheckReport> {
    guard_seam(cfg, marks).await;
    let opts = check_cmd::options(scope, cfg, target).await?;
    Ok(pwsync_jobs::check(source, target.store(), &opts).await?)
}

/// Every finding is of a kind the seam guard moves: the 5-minute chain against the hourly
/// rows, or the live reading against the last row.
fn only_at_live_end(r: &CheckReport) -> bool {
    let mut findings = r.statistics.iter().flat_map(|s| &s.findings).peekable();
    findings.peek().is_some()
        && findings.all(|f| {
            matches!(
                f.kind,
                ProblemKind::NextOutOfStep | ProblemKind::OutOfStep | ProblemKind::Seam
            )
        })
}

/// The job's own work; the rows it wrote.
async fn work(
    job: Job,
    cfg: &Config,
    source: &pwsync_config::source::Source,
    target: &Opened,
    scope: &Scope,
    journal: Option<(Journal, Entry)>,
) -> Result<usize> {
    Ok(match job {
        Job::Check => 0,
        Job::Repair => {
            let opts = check_cmd::options(scope, cfg, target).await?;
            pwsync_jobs::repair(source, target.store(), &opts, false)
                .await?
                .0
                .rows
        }
        Job::Backfill => {
            source.client.check_source(&source.map, &Field::ALL).await?;
            let opts = BackfillOptions::all_missing(&cfg.site, target.tz, now());
            let mut step = |s: pwsync_jobs::backfill::Step| {
                if let Some((j, e)) = &journal {
                    let (words, fraction) = backfill_step(s);
                    let mut e = e.clone();
                    e.step = words;
                    e.fraction = fraction;
                    j.progress(&e);
                }
            };
            pwsync_jobs::backfill(source, target.store(), &opts, &mut step)
                .await?
                .0
                .rows
        }
    })
}

/// A backfill's step for the journal: in words, and roughly how far (reading and planning are
/// quick; the write is most of the time).
fn backfill_step(s: pwsync_jobs::backfill::Step) -> (String, f64) {
    use pwsync_jobs::backfill::Step;
    match s {
        Step::Reading => ("reading InfluxDB".into(), 0.05),
        Step::Planned(f) => (format!("planned {}", f.sensor_key()), 0.1),
        Step::Writing(rows) => (format!("writing {rows} rows"), 0.2),
    }
}

/// `check`'s scope with no flags: every statistic of pwsync's meters since InfluxDB's first
/// point, the configured tolerances, through HA's websocket.
fn whole_history() -> Scope {
    Scope {
        since: None,
        entities: Vec::new(),
        tolerance_wh: None,
        tolerance_pct: None,
        target: TargetArgs {
            target: Target::Ws,
            db: None,
            allow_unclean_shutdown: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kinds: &[ProblemKind]) -> CheckReport {
        let findings: Vec<_> = kinds
            .iter()
            .map(|&kind| pwsync_energy::audit::Finding {
                hour: 0,
                kind,
                found: 1.0,
                expected: Some(0.0),
            })
            .collect();
        CheckReport {
            start: 0,
            end: 3600,
            time_zone: "UTC".into(),
            store: "ha",
            problems: findings.len(),
            statistics: vec![pwsync_jobs::check::StatisticCheck {
                statistic_id: "sensor.x".into(),
                field: None,
                hourly_rows: 1,
                short_term_rows: 0,
                findings,
                daily: Vec::new(),
                hourly: Default::default(),
            }],
            skipped: Vec::new(),
            seconds: Default::default(),
        }
    }

    #[test]
    fn a_job_checks_again_only_when_the_seam_guard_can_heal_every_finding() {
        assert!(!only_at_live_end(&report(&[])));
        assert!(only_at_live_end(&report(&[ProblemKind::NextOutOfStep])));
        assert!(only_at_live_end(&report(&[
            ProblemKind::Seam,
            ProblemKind::OutOfStep
        ])));
        assert!(!only_at_live_end(&report(&[
            ProblemKind::NextOutOfStep,
            ProblemKind::Mismatch
        ])));
        assert!(!only_at_live_end(&report(&[ProblemKind::Spike {
            limit_kwh: 10.0
        }])));
        // Missing history is a backfill's to write, nothing the seam guard moves.
        assert!(!only_at_live_end(&report(&[
            ProblemKind::Seam,
            ProblemKind::MissingHistory { to: 7200, hours: 2 }
        ])));
    }

    #[test]
    fn the_log_says_what_a_check_covered_and_its_problems_by_kind() {
        let clean = joblog::check_summary(&report(&[]), chrono_tz::UTC);
        assert_eq!(
            clean,
            "Checked 1 statistic(s), hours 1970-01-01 00:00 UTC → 1970-01-01 01:00 UTC: no problems."
        );
        let r = report(&[
            ProblemKind::Mismatch,
            ProblemKind::Hole { missing_hours: 3 },
            ProblemKind::Mismatch,
        ]);
        let said = joblog::check_summary(&r, chrono_tz::UTC);
        assert!(
            said.ends_with("3 problem(s): 2 differs from InfluxDB, 1 hole."),
            "{said}"
        );
        let wrote = joblog::written_summary(42, &r, chrono_tz::UTC);
        assert!(wrote.starts_with("Wrote 42 rows"), "{wrote}");
    }

    #[test]
    fn a_heal_in_the_log_lists_the_hours_it_repaired_not_those_it_kept() {
        use pwsync_energy::audit::{Fix, HourFix, KeptReason};
        let fix = |hour, fix| HourFix { hour, fix };
        let r = pwsync_jobs::HealReport {
            start: 0,
            end: 4 * 3600,
            statistics: vec![
                pwsync_jobs::check::StatisticRepair {
                    statistic_id: "sensor.x".into(),
                    fixes: vec![
                        fix(3600, Fix::FromInflux { kwh: 1.0 }),
                        fix(7200, Fix::Zero),
                        fix(
                            10800,
                            Fix::Kept {
                                reason: KeptReason::LiveSensor,
                            },
                        ),
                    ],
                    rows_written: 2,
                    shifts: 0,
                    short_term_rows: 0,
                },
                pwsync_jobs::check::StatisticRepair {
                    statistic_id: "sensor.y".into(),
                    fixes: Vec::new(),
                    rows_written: 0,
                    shifts: 0,
                    short_term_rows: 0,
                },
            ],
            rows: 2,
            seconds: 0.1,
        };
        assert_eq!(
            joblog::heal_summary(&r, chrono_tz::UTC),
            "Repaired 2 hour(s) between 1970-01-01 00:00 UTC and 1970-01-01 04:00 UTC (2 rows \
             written):\nsensor.x: 1970-01-01 01:00 UTC, 1970-01-01 02:00 UTC"
        );
    }

    #[test]
    fn only_the_three_button_payloads_are_jobs() {
        for (key, _, payload) in pwsync_mqtt::discovery::BUTTONS {
            let job = Job::from_command(payload).unwrap_or_else(|| panic!("{key}"));
            assert_eq!(job.name(), *payload);
        }
        for other in ["", "Check", "rm -rf", "check;repair"] {
            assert_eq!(Job::from_command(other), None, "{other}");
        }
    }
}
