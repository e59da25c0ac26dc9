//! The pages, as HTML. Every link and asset is relative to the page (one level: `./`,
//! `history`, `panel.css`), so the same HTML works on its own and under HA's ingress path.

use crate::model::*;
use maud::{html, Markup, DOCTYPE};

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
                // The browser's own widgets (date pickers, scroll bars) follow HA's light or dark.
                meta name="color-scheme" content="light dark";
                title { "pwsync · " (page.title()) }
                link rel="stylesheet" href="panel.css";
                script src="panel.js" defer {}
            }
            body {
                header.toolbar {
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
            section.card.part.bad.interrupted {
                h2 { "A job was interrupted" }
                p { (i.what) }
                form method="post" action="resume" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Resume" }
                    " " span.muted { (i.resume) }
                }
            }
        }
        // Health first: whether each part works is what a visit is for.
        div.health {
            @for s in &v.sections {
                section class=(if s.ok { "card part ok" } else { "card part bad" }) {
                    h2 {
                        span.title { (s.title) }
                        span.badge { (if s.ok { "ok" } else { "problem" }) }
                    }
                    dl {
                        @for (k, val) in &s.rows { dt { (k) } dd { (val) } }
                    }
                }
            }
        }
        p.muted { "Checked " (v.checked_at.as_deref().unwrap_or("not yet")) }
        @if !v.guide.is_empty() { (guide(&v.guide, csrf)) }
        section.card.meters {
            h2 { "Live meters" }
            @if v.meters.is_empty() {
                p.muted { "No poll has succeeded yet." }
            } @else {
                div.tiles {
                    @for m in &v.meters {
                        div.tile {
                            span.name { (m.name) }
                            span.num title=(m.exact()) { (m.shown()) }
                        }
                    }
                }
            }
            p.muted { "Last poll of InfluxDB: " (v.last_poll.as_deref().unwrap_or("none yet")) }
        }
    };
    layout(Page::Status, body)
}

/// The first run, step by step: each with what pwsync found and its one button.
fn guide(steps: &[GuideStep], csrf: &str) -> Markup {
    let next = steps.iter().position(|s| s.state == StepState::Todo);
    html! {
        section.card #guide {
            h2 { (if next.is_some() { "Getting started" } else { "All set" }) }
            ol.steps {
                @for (i, s) in steps.iter().enumerate() {
                    li class=(step_class(s.state, next == Some(i))) id={ "step-" (i + 1) } {
                        span.mark { (match s.state { StepState::Done => "✓", StepState::Todo => "•", StepState::Unknown => "?" }) }
                        div {
                            strong { (s.title) }
                            p.muted { (s.detail) }
                            @if let (StepState::Todo, Some(a)) = (s.state, &s.action) { (step_action(a, csrf)) }
                        }
                    }
                }
            }
        }
    }
}

fn step_class(state: StepState, next: bool) -> &'static str {
    match (state, next) {
        (StepState::Done, _) => "step done",
        (StepState::Todo, true) => "step todo next",
        (StepState::Todo, false) => "step todo",
        (StepState::Unknown, _) => "step unknown",
    }
}

fn step_action(a: &GuideAction, csrf: &str) -> Markup {
    match a {
        GuideAction::DryRun { job, label } => html! {
            form method="post" action="dry-run" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="job" value=(job.value());
                button type="submit" id={ "guide-" (job.value()) } { (label) }
            }
        },
        GuideAction::Check { label } => html! {
            form method="post" action="check" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" id="guide-check" { (label) }
            }
        },
    }
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
                (chart(c))
                @if !c.problems.is_empty() {
                    h2 { "Problems" }
                    p.muted { "Click an hour to see it on the chart." }
                    table.problems #problems {
                        tr { th { "hour" } th { "statistic" } th { "problem" } th { "found" } th { "expected" } th { "likely cause" } }
                        @for p in &c.problems {
                            tr data-statistic=(p.statistic) data-start=(p.start) data-end=(p.end) {
                                td { button.show-problem type="button" { (p.hour) } }
                                td { (p.statistic) } td { (p.kind) } td.num { (p.found) } td.num { (p.expected) } td { (p.cause) }
                            }
                        }
                    }
                    p { "The Jobs page repairs them: a dry run first, then Apply." }
                }
            }
        }
    };
    layout(Page::History, body)
}

/// The chart's frame: `history.js` draws it with uPlot from `history/series.json`.
fn chart(c: &CheckedView) -> Markup {
    // The statistic shown first: the first one with a problem, else the first.
    let first = c
        .problems
        .first()
        .map(|p| p.statistic.as_str())
        .or_else(|| c.series.first().map(|s| s.statistic.as_str()));
    html! {
        link rel="stylesheet" href=(crate::routes::UPLOT_CSS);
        link rel="stylesheet" href="history.css";
        script src=(crate::routes::UPLOT_JS) defer {}
        script src="history.js" defer {}
        section #chart data-series="history/series.json" {
            div.chart-controls {
                label {
                    "Statistic "
                    select #chart-statistic {
                        @for s in &c.series {
                            option value=(s.statistic) selected[Some(s.statistic.as_str()) == first] { (s.statistic) }
                        }
                    }
                }
                span.chart-ranges role="group" aria-label="range" {
                    @for (label, days) in [("all", 0), ("1 year", 365), ("1 month", 30), ("1 week", 7), ("1 day", 1)] {
                        button type="button" data-days=(days) { (label) }
                    }
                }
            }
            div #chart-plot {}
            p.muted #chart-help {
                span #chart-unit {}
                " Drag across the chart to zoom in, double-click to see everything. Red bands are problems."
            }
            noscript { p { "The chart needs JavaScript; the problems are listed below." } }
        }
        // Where local midnight is mid-hour (Adelaide, India, Nepal) HA's day is not the
        // local day: say which one the daily view shows.
        p.muted #chart-days {
            "Over more than 60 days the chart shows daily sums, days as HA's Energy dashboard \
             counts them: the UTC hours that start in each local day (from 00:30 to 00:30 where \
             the zone's offset has a half hour). pwsync energy shows days from local midnight to \
             midnight. Zoomed in further, it shows each hour."
        }
    }
}

/// The Jobs page: the forms, and the plan of a dry run (with its Apply button), or a run's
/// progress, or a refusal.
pub fn jobs(
    csrf: &str,
    plan: Option<&Plan>,
    running: Option<u64>,
    error: Option<&str>,
    backups: &[Backup],
) -> Markup {
    let body = html! {
        h1 { "Jobs" }
        @if let Some(e) = error { p.error { (e) } }
        @if let Some(p) = plan { (plan_view(p, csrf)) }
        @if let Some(run) = running {
            section.card #run data-run=(run) {
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
        (energy_form(csrf, backups))
    };
    layout(Page::Jobs, body)
}

fn plan_view(p: &Plan, csrf: &str) -> Markup {
    html! {
        section.card #plan {
            h2 { "Dry run: " (p.job.name()) }
            p.muted { code { (p.command) } }
            div.report { pre #plan-report { (p.report) } }
            @if !p.choices.is_empty() {
                (choices_form(p, csrf))
            }
            @if p.failed {
                p.error { "The dry run failed: nothing to apply." }
            } @else if p.rows == Some(0) {
                p #nothing {
                    "Nothing to write: the real run would write 0 rows (HA already has these hours, \
                     or InfluxDB has no data for them), so there is nothing to apply."
                }
            } @else if p.unchanged {
                p #nothing { "Nothing to change: HA's Energy preferences already say this, so there is nothing to apply." }
            } @else {
                form method="post" action="apply" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="plan" value=(p.id);
                    @if let Some(n) = p.rows { p { "It would write " (n) " rows." } }
                    button.primary type="submit" id="apply" { "Apply this plan" }
                }
            }
        }
    }
}

/// The rivals a dry run found in the way, a checkbox each: the next dry run replaces the
/// ticked ones.
fn choices_form(p: &Plan, csrf: &str) -> Markup {
    html! {
        form #choices method="post" action="dry-run" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="job" value=(p.job.value());
            p { "HA's Energy dashboard already counts this energy elsewhere. Tick what pwsync's meters should replace:" }
            @for c in &p.choices {
                label.choice {
                    input type="checkbox" name={ "replace_" (c.name) } id={ "replace-" (c.name) } value="on"
                        checked[p.form.replace().contains(&c.name.as_str())];
                    " " (c.label)
                }
            }
            button type="submit" id="choices-dry-run" { "Dry run with these replacements" }
        }
    }
}

/// pwsync's meters into HA's Energy dashboard (with power flows where HA has them), or a saved
/// one back.
fn energy_form(csrf: &str, backups: &[Backup]) -> Markup {
    let kind = JobKind::EnergyDashboard;
    html! {
        section.job #job-energy-dashboard {
            h2 { "Energy dashboard" }
            p.muted {
                "pwsync's meters into HA's Energy dashboard: grid, solar and battery, and their                  power flows on HA 2025.12 and later. What is there stays; the preferences before                  are saved, to put back below."
            }
            form method="post" action="dry-run" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="job" value=(kind.value());
                button type="submit" id="energy-dashboard-dry-run" { "Dry run" }
            }
            @if !backups.is_empty() {
                h3 { "Put back saved preferences" }
                @for b in backups {
                    form.restore method="post" action="dry-run" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="job" value=(kind.value());
                        input type="hidden" name="restore" value=(b.file);
                        span { "Saved " (b.saved) " " }
                        button type="submit" { "Dry run of putting these back" }
                    }
                }
            }
        }
    }
}

fn job_form(kind: JobKind, csrf: &str, what: &str) -> Markup {
    let name = kind.name();
    html! {
        section.card.job id={ "job-" (name) } {
            h2 { (name) }
            p.muted { (what) }
            form method="post" action="dry-run" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="job" value=(kind.value());
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
            details.card id={ "run-" (e.id) } open[open.map_or(i == 0, |id| id == e.id)] {
                summary {
                    span class=(if e.succeeded { "ok" } else { "bad" }) { (if e.succeeded { "✓" } else { "✗" }) }
                    " " (e.started) " · " (e.job) @if e.dry_run { " (dry run)" }
                    " · " span.trigger { (e.trigger) }
                }
                p.muted { code { (e.command) } " · finished " (e.finished) }
                div.report { pre { (e.report) } }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rows: Option<usize>) -> Plan {
        Plan {
            id: 7,
            job: JobKind::Backfill,
            command: "pwsync backfill --all".into(),
            report: "Dry run, nothing written".into(),
            failed: false,
            rows,
            unchanged: false,
            choices: Vec::new(),
            form: JobForm::default(),
        }
    }

    #[test]
    fn an_energy_plan_offers_its_rivals_ticked_as_asked_and_no_apply_while_blocked() {
        let mut p = plan(None);
        p.job = JobKind::EnergyDashboard;
        p.failed = true;
        p.form.replace_solar = Some("on".into());
        p.choices = ["grid_import", "solar"]
            .map(|n| Choice {
                name: n.into(),
                label: format!("Replace the {n} meter"),
            })
            .to_vec();
        let page = jobs("t", Some(&p), None, None, &[]).into_string();
        assert!(!page.contains("id=\"apply\""), "{page}");
        assert!(page.contains(r#"name="replace_grid_import""#), "{page}");
        let solar = page.split(r#"id="replace-solar""#).nth(1).unwrap();
        let grid = page.split(r#"id="replace-grid_import""#).nth(1).unwrap();
        assert!(
            solar.trim_start().starts_with("value=\"on\" checked"),
            "{solar}"
        );
        assert!(
            !grid.trim_start().starts_with("value=\"on\" checked"),
            "{grid}"
        );
        assert!(page.contains(r#"name="job" value="energy_dashboard""#));
    }

    #[test]
    fn a_plan_that_changes_nothing_offers_no_apply() {
        let mut p = plan(None);
        p.unchanged = true;
        let page = jobs("t", Some(&p), None, None, &[]).into_string();
        assert!(!page.contains("id=\"apply\""), "{page}");
    }

    #[test]
    fn saved_preferences_are_offered_for_a_restore_dry_run() {
        let b = Backup {
            file: "energy-prefs-20261207T120000Z.json".into(),
            saved: "2026-12-07 13:00".into(),
        };
        let page = jobs("t", None, None, None, &[b]).into_string();
        assert!(page.contains(r#"name="restore" value="energy-prefs-20261207T120000Z.json""#));
        assert!(page.contains("Saved 2026-12-07 13:00"));
    }

    #[test]
    fn a_plan_that_writes_nothing_offers_no_apply() {
        let page = |rows| jobs("t", Some(&plan(rows)), None, None, &[]).into_string();
        let empty = page(Some(0));
        assert!(!empty.contains("id=\"apply\""), "{empty}");
        assert!(empty.contains("Nothing to write"), "{empty}");
        let some = page(Some(12));
        assert!(some.contains("id=\"apply\"") && some.contains("would write 12 rows"));
        // A job that did not say how many still offers its plan.
        assert!(page(None).contains("id=\"apply\""));
    }

    #[test]
    fn health_comes_before_the_meters_and_a_meter_shows_its_exact_value_on_hover() {
        let v = StatusView {
            sections: vec![Section {
                title: "InfluxDB".into(),
                ok: true,
                rows: vec![("version".into(), "1.8".into())],
            }],
            meters: vec![MeterRow {
                name: "Home usage".into(),
                value: Reading::Number(26687.592631),
                unit: Some("kWh".into()),
            }],
            ..StatusView::default()
        };
        let page = status(&v, "t").into_string();
        let health = page.find("InfluxDB").unwrap();
        let meters = page.find("Live meters").unwrap();
        assert!(health < meters);
        assert!(
            page.contains("title=\"26687.592631 kWh\">26\u{202F}688\u{202F}kWh<"),
            "{page}"
        );
    }
}
