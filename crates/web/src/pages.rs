//! The pages, as HTML. Every link and asset is relative to the page (one level: `./`,
//! `history`, `panel.css`), so the same HTML works on its own and under HA's ingress path.

use crate::model::*;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The four pages of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Status,
    History,
    Jobs,
    Log,
}

impl Page {
    const ALL: [Page; 4] = [Page::Status, Page::History, Page::Jobs, Page::Log];

    fn href(self) -> &'static str {
        match self {
            Page::Status => "./",
            Page::History => "history",
            Page::Jobs => "jobs",
            Page::Log => "log",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Status => "Status",
            Page::History => "History",
            Page::Jobs => "Jobs",
            Page::Log => "Log",
        }
    }
}

fn layout(page: Page, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "pwsync · " (page.title()) }
                link rel="stylesheet" href="panel.css";
                script src="panel.js" defer {}
            }
            body {
                header {
                    span.brand { "pwsync" }
                    nav {
                        @for p in Page::ALL {
                            a href=(p.href()) class=[(p == page).then_some("current")] { (p.title()) }
                        }
                    }
                }
                main id=(page.title().to_lowercase()) { (body) }
            }
        }
    }
}

pub fn status(v: &StatusView, csrf: &str) -> Markup {
    let body = html! {
        h1 { "Status" }
        @if let Some(i) = &v.interrupted {
            section.part.bad.interrupted {
                h2 { "A job was interrupted" }
                p { (i.what) }
                form method="post" action="resume" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Resume" }
                    " " span.muted { (i.resume) }
                }
            }
        }
        section.meters {
            h2 { "Live meters" }
            @if v.meters.is_empty() {
                p.muted { "No poll has succeeded yet." }
            } @else {
                table {
                    @for m in &v.meters { tr { th { (m.name) } td.num { (m.value) } } }
                }
            }
            p.muted { "Last poll of InfluxDB: " (v.last_poll.as_deref().unwrap_or("none yet")) }
        }
        @for s in &v.sections {
            section class=(if s.ok { "part ok" } else { "part bad" }) {
                h2 { (s.title) " " span.badge { (if s.ok { "ok" } else { "problem" }) } }
                table {
                    @for (k, val) in &s.rows { tr { th { (k) } td { (val) } } }
                }
            }
        }
        p.muted { "Checked " (v.checked_at.as_deref().unwrap_or("not yet")) }
    };
    layout(Page::Status, body)
}

pub fn history(v: &HistoryView, csrf: &str) -> Markup {
    let body = html! {
        h1 { "History" }
        form method="post" action="check" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" id="check-now" { "Check now" }
        }
        @match &v.checked {
            None => p.muted { "No check has run yet. The daily check, a job, or the button above runs one." },
            Some(c) => {
                p #verdict class=(if c.problems.is_empty() { "clean" } else { "problems" }) {
                    @if c.problems.is_empty() {
                        "clean: HA's history agrees with InfluxDB"
                    } @else {
                        (c.problems.len()) " problem(s)"
                    }
                }
                p.muted { "Checked " (c.at) " (" (c.by) "), hours " (c.from) " → " (c.to) }
                @if !c.problems.is_empty() {
                    table.problems {
                        tr { th { "hour" } th { "statistic" } th { "problem" } th { "found" } th { "expected" } th { "likely cause" } }
                        @for p in &c.problems {
                            tr { td { (p.hour) } td { (p.statistic) } td { (p.kind) } td.num { (p.found) } td.num { (p.expected) } td { (p.cause) } }
                        }
                    }
                    p { "The Jobs page repairs them: a dry run first, then Apply." }
                }
                div.chart { (PreEscaped(&c.chart_svg)) }
                // Where local midnight is mid-hour (Adelaide, India, Nepal) HA's day is not the
                // local day: say which one the chart shows.
                p.muted #chart-days {
                    "Days as HA's Energy dashboard counts them: the UTC hours that start in each \
                     local day (from 00:30 to 00:30 where the zone's offset has a half hour). \
                     pwsync energy shows days from local midnight to midnight."
                }
            }
        }
    };
    layout(Page::History, body)
}

/// The Jobs page: the forms, and the plan of a dry run (with its Apply button), or a run's
/// progress, or a refusal.
pub fn jobs(csrf: &str, plan: Option<&Plan>, running: Option<u64>, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Jobs" }
        @if let Some(e) = error { p.error { (e) } }
        @if let Some(p) = plan { (plan_view(p, csrf)) }
        @if let Some(run) = running {
            section #run data-run=(run) {
                h2 #run-title { "Running" }
                progress #progress max="1" value="0" {}
                p #progress-message { "starting" }
                p #progress-done hidden { "Finished. " a href={ "log?id=" (run) } { "Its report" } " is in the log." }
            }
        }
        (job_form(JobKind::Backfill, csrf,
            "InfluxDB's history into HA's statistics of pwsync's meters. Leave the first day empty for everything since InfluxDB's first point."))
        (job_form(JobKind::Migrate, csrf,
            "Teslemetry's (and other Tesla integrations') statistics onto pwsync's meters, then InfluxDB's data over every hour it covers."))
        (job_form(JobKind::Repair, csrf,
            "Fix every hour the check finds wrong with InfluxDB's energy. The first day limits the check."))
    };
    layout(Page::Jobs, body)
}

fn plan_view(p: &Plan, csrf: &str) -> Markup {
    html! {
        section #plan {
            h2 { "Dry run: " (p.job.name()) }
            p.muted { code { (p.command) } }
            pre #plan-report { (p.report) }
            @if p.failed {
                p.error { "The dry run failed: nothing to apply." }
            } @else {
                form method="post" action="apply" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="plan" value=(p.id);
                    button type="submit" id="apply" { "Apply this plan" }
                }
            }
        }
    }
}

fn job_form(kind: JobKind, csrf: &str, what: &str) -> Markup {
    let name = kind.name();
    html! {
        section.job id={ "job-" (name) } {
            h2 { (name) }
            p.muted { (what) }
            form method="post" action="dry-run" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="job" value=(name);
                label { "First day " input type="date" name="start" id={ (name) "-start" }; }
                @if kind != JobKind::Repair {
                    label { "Last day " input type="date" name="end" id={ (name) "-end" }; }
                    label { input type="checkbox" name="overwrite" value="on"; " replace existing hours" }
                }
                @if kind == JobKind::Migrate {
                    label { input type="checkbox" name="no_auto_backfill" value="on"; " only phase 1 (no InfluxDB pass)" }
                }
                button type="submit" id={ (name) "-dry-run" } { "Dry run" }
            }
        }
    }
}

pub fn log(entries: &[LogEntry], open: Option<u64>) -> Markup {
    let body = html! {
        h1 { "Log" }
        @if entries.is_empty() { p.muted { "No job has run yet." } }
        // The one asked for, else the newest, open.
        @for (i, e) in entries.iter().enumerate() {
            details id={ "run-" (e.id) } open[open.map_or(i == 0, |id| id == e.id)] {
                summary {
                    span class=(if e.succeeded { "ok" } else { "bad" }) { (if e.succeeded { "✓" } else { "✗" }) }
                    " " (e.started) " · " (e.job) @if e.dry_run { " (dry run)" }
                    " · " span.trigger { (e.trigger) }
                }
                p.muted { code { (e.command) } " · finished " (e.finished) }
                pre { (e.report) }
            }
        }
    };
    layout(Page::Log, body)
}

pub fn refused(message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" { head { meta charset="utf-8"; title { "pwsync" } } body { p { (message) } } }
    }
}
