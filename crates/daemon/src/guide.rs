//! The first-run guide on the panel's Status: what pwsync found (InfluxDB's range, HA's history
//! of each meter, a Tesla integration's statistics, the Energy dashboard, the last check) as
//! steps, each with the one button that does it. Words only: no step asks for a command.

use super::doctor::Report;
use chrono_tz::Tz;
use pwsync_web::{CheckedView, GuideAction, GuideStep, JobKind, StepState};

const DAY: i64 = 86_400;
const YEAR: f64 = 365.25 * 86_400.0;

/// The steps, in the order they are best done in.
pub(super) fn steps(r: &Report, check: Option<&CheckedView>, now: i64, tz: Tz) -> Vec<GuideStep> {
    let mut steps = Vec::new();
    let missing = missing_history(r, now);
    if let Some(step) = migration(r, missing) {
        steps.push(step);
    }
    steps.push(backfill(r, missing, tz));
    steps.push(energy_dashboard(r));
    steps.push(check_step(check));
    steps
}

/// How much of InfluxDB's history HA lacks for the meter that lacks most (seconds), `None`
/// while either side is unknown.
fn missing_history(r: &Report, now: i64) -> Option<i64> {
    let first = r.influxdb.first?;
    if r.homeassistant.version.is_none() || r.homeassistant.coverage.is_empty() {
        return None;
    }
    // A day's row starts at local midnight before InfluxDB's first point: a day's slack.
    let lacking = r
        .homeassistant
        .coverage
        .iter()
        .map(|(_, day)| day.map_or(now - first, |d| d - first - DAY))
        .max()
        .unwrap_or(0);
    Some(lacking.max(0))
}

/// A span of history as a person says it: days, months, or years with a decimal.
fn span_words(secs: i64) -> String {
    let days = (secs as f64 / DAY as f64).ceil() as i64;
    match days {
        ..=1 => "1 day".into(),
        2..=60 => format!("{days} days"),
        61..=730 => format!("{} months", (secs as f64 / (YEAR / 12.0)).round() as i64),
        _ => format!("{:.1} years", secs as f64 / YEAR),
    }
}

fn migration(r: &Report, missing: Option<i64>) -> Option<GuideStep> {
    let tesla = &r.homeassistant.tesla_statistics;
    if tesla.is_empty() {
        return None;
    }
    let done = missing == Some(0);
    Some(GuideStep {
        title: "Move the Tesla integration's history".into(),
        detail: format!(
            "HA has energy statistics of a Tesla integration ({}). Moving them puts their history \
             on pwsync's meters, then InfluxDB's more exact energy replaces every hour it covers.",
            tesla.join(", ")
        ),
        state: if done {
            StepState::Done
        } else {
            StepState::Todo
        },
        action: Some(GuideAction::DryRun {
            job: JobKind::Migrate,
            label: "Move their history".into(),
        }),
    })
}

fn backfill(r: &Report, missing: Option<i64>, tz: Tz) -> GuideStep {
    let (Some(first), Some(lacking)) = (r.influxdb.first, missing) else {
        return GuideStep {
            title: "Backfill the history".into(),
            detail: "Waiting for InfluxDB and Home Assistant to answer.".into(),
            state: StepState::Unknown,
            action: None,
        };
    };
    let since = pwsync_jobs::range::fmt_ts(first, tz);
    if lacking == 0 {
        return GuideStep {
            title: "History backfilled".into(),
            detail: format!("HA has every meter's history since InfluxDB's first point ({since})."),
            state: StepState::Done,
            action: None,
        };
    }
    let label = format!("Backfill {}", span_words(lacking));
    GuideStep {
        title: label.clone(),
        detail: format!(
            "InfluxDB has data since {since}; HA lacks {}. The dry run shows what would be written; \
             nothing is written before you press Apply.",
            coverage_words(r, tz)
        ),
        state: StepState::Todo,
        action: Some(GuideAction::DryRun {
            job: JobKind::Backfill,
            label,
        }),
    }
}

/// Each meter's first day in HA, in words ("grid import before 2026-12-01, ...").
fn coverage_words(r: &Report, tz: Tz) -> String {
    let first = r.influxdb.first.unwrap_or(0);
    let coverage = &r.homeassistant.coverage;
    if coverage.iter().all(|(_, day)| day.is_none()) {
        return format!("all of it for pwsync's {} meters", coverage.len());
    }
    let parts: Vec<String> = r
        .homeassistant
        .coverage
        .iter()
        .filter(|(_, day)| day.is_none_or(|d| d > first + DAY))
        .map(|(id, day)| match day {
            Some(d) => format!("{id} before {}", day_of(*d, tz)),
            None => format!("all of {id}"),
        })
        .collect();
    parts.join(", ")
}

fn day_of(t: i64, tz: Tz) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.with_timezone(&tz).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn energy_dashboard(r: &Report) -> GuideStep {
    let action = Some(GuideAction::DryRun {
        job: JobKind::EnergyDashboard,
        label: "Set up the Energy dashboard".into(),
    });
    match &r.homeassistant.energy_dashboard {
        None => GuideStep {
            title: "Set up the Energy dashboard".into(),
            detail: "Waiting for Home Assistant's Energy preferences.".into(),
            state: StepState::Unknown,
            action: None,
        },
        Some(a) if a.missing.is_empty() => GuideStep {
            title: "Energy dashboard set up".into(),
            detail: "HA's Energy dashboard counts grid, solar and battery with pwsync's meters."
                .into(),
            state: StepState::Done,
            action: None,
        },
        Some(a) => GuideStep {
            title: "Set up the Energy dashboard".into(),
            detail: format!(
                "HA's Energy dashboard does not count {} with pwsync's meters yet. The dry run \
                 shows the change; what is there stays, and the preferences before are saved.",
                a.missing
                    .iter()
                    .map(|s| s.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            state: StepState::Todo,
            action,
        },
    }
}

fn check_step(check: Option<&CheckedView>) -> GuideStep {
    match check {
        None => GuideStep {
            title: "Check the history".into(),
            detail: "A check compares every hour HA has with InfluxDB and finds spikes, gaps and \
                     disagreements."
                .into(),
            state: StepState::Todo,
            action: Some(GuideAction::Check {
                label: "Check".into(),
            }),
        },
        Some(c) if c.problems.is_empty() => GuideStep {
            title: "History checked: clean".into(),
            detail: format!("Checked {}: HA's history agrees with InfluxDB.", c.at),
            state: StepState::Done,
            action: None,
        },
        Some(c) => GuideStep {
            title: format!("Repair {} problem(s)", c.problems.len()),
            detail: format!(
                "The check of {} found {} problem(s); History lists them. Repair puts InfluxDB's \
                 energy into those hours.",
                c.at,
                c.problems.len()
            ),
            state: StepState::Todo,
            action: Some(GuideAction::DryRun {
                job: JobKind::Repair,
                label: "Repair".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsync_jobs::dashboard::{DashboardAudit, Slot};

    const NOW: i64 = 1_796_601_600; // 2026-12-07
    const THREE_YEARS: i64 = 1_701_993_600; // 2023-12-08

    fn report(coverage: &[Option<i64>]) -> Report {
        let mut r = Report::default();
        r.influxdb.first = Some(THREE_YEARS);
        r.homeassistant.version = Some("2026.11.0".into());
        r.homeassistant.coverage = coverage
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("sensor.pw_{i}"), *d))
            .collect();
        r.homeassistant.energy_dashboard = Some(DashboardAudit::default());
        r
    }

    fn steps_of(r: &Report) -> Vec<GuideStep> {
        steps(r, None, NOW, chrono_tz::UTC)
    }

    fn todo(steps: &[GuideStep]) -> Vec<&str> {
        steps
            .iter()
            .filter(|s| s.state == StepState::Todo)
            .map(|s| s.title.as_str())
            .collect()
    }

    #[test]
    fn a_new_install_is_asked_to_backfill_the_years_ha_lacks_then_check() {
        // Live sensors only since yesterday: HA lacks three years of every meter.
        let r = report(&[Some(NOW - DAY), None]);
        let steps = steps(&r, None, NOW, chrono_tz::UTC);
        assert_eq!(todo(&steps), ["Backfill 3.0 years", "Check the history"]);
        let b = &steps[0];
        assert!(b.detail.contains("all of sensor.pw_1"), "{}", b.detail);
        assert!(b.detail.contains("sensor.pw_0 before"), "{}", b.detail);
        let none = steps_of(&report(&[None, None]));
        assert!(
            none[0].detail.contains("all of it for pwsync's 2 meters"),
            "{}",
            none[0].detail
        );
        assert!(matches!(
            &b.action,
            Some(GuideAction::DryRun {
                job: JobKind::Backfill,
                ..
            })
        ));
    }

    #[test]
    fn a_full_history_a_set_dashboard_and_a_clean_check_are_all_done() {
        let r = report(&[Some(THREE_YEARS - 3600), Some(THREE_YEARS + 3600)]);
        let clean = CheckedView {
            at: "2026-12-07 10:00".into(),
            by: "daily".into(),
            from: String::new(),
            to: String::new(),
            problems: Vec::new(),
            series: Vec::new(),
        };
        let steps = steps(&r, Some(&clean), NOW, chrono_tz::UTC);
        assert!(todo(&steps).is_empty(), "{steps:?}");
    }

    #[test]
    fn tesla_statistics_come_first_and_the_dashboard_names_its_missing_slots() {
        let mut r = report(&[None]);
        r.homeassistant.tesla_statistics = vec!["teslemetry: sensor.home_grid_imported".into()];
        r.homeassistant.energy_dashboard = Some(DashboardAudit {
            missing: vec![Slot::Solar],
            ..DashboardAudit::default()
        });
        let steps = steps(&r, None, NOW, chrono_tz::UTC);
        assert_eq!(steps[0].title, "Move the Tesla integration's history");
        assert!(steps[0].detail.contains("sensor.home_grid_imported"));
        let dash = steps.iter().find(|s| s.title.contains("Energy")).unwrap();
        assert!(dash.detail.contains("solar production"), "{}", dash.detail);
    }

    #[test]
    fn an_unreachable_ha_leaves_the_history_unknown_not_done() {
        let mut r = report(&[]);
        r.homeassistant.version = None;
        r.homeassistant.energy_dashboard = None;
        let steps = steps(&r, None, NOW, chrono_tz::UTC);
        assert_eq!(steps[0].state, StepState::Unknown);
        assert_eq!(steps[1].state, StepState::Unknown);
    }

    #[test]
    fn a_span_reads_in_days_months_or_years() {
        assert_eq!(span_words(2 * DAY + 5), "3 days");
        assert_eq!(span_words(200 * DAY), "7 months");
        assert_eq!(span_words(3 * 365 * DAY), "3.0 years");
    }

    #[test]
    fn no_step_asks_for_a_command() {
        let r = report(&[None]);
        for s in steps(&r, None, NOW, chrono_tz::UTC) {
            assert!(
                !s.detail.contains("pwsync ") && !s.detail.contains('`'),
                "{}",
                s.detail
            );
        }
    }
}
