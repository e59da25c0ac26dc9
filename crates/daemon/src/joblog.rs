//! The words of a report in the panel's Log for the jobs `serve` runs itself: HA's buttons,
//! the daily check, a resumed job and the hourly heal. (A panel job's report is what the CLI
//! printed.)

use chrono_tz::Tz;
use pwsync_energy::audit::Fix;
use pwsync_jobs::check::CheckReport;
use pwsync_jobs::range::fmt_ts;
use pwsync_jobs::HealReport;
use std::collections::BTreeMap;

/// The Log's `command` of the hourly heal, which no CLI command is.
pub(super) const HEAL: &str = "heal: the last 48 compiled hours";

/// A check's result: what it covered and its problems by kind.
pub(super) fn check_summary(r: &CheckReport, tz: Tz) -> String {
    let covered = format!(
        "Checked {} statistic(s), hours {} → {}",
        r.statistics.len(),
        fmt_ts(r.start, tz),
        fmt_ts(r.end, tz)
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for f in r.statistics.iter().flat_map(|s| &s.findings) {
        // The kind without its numbers: "hole (3 h missing)" counts as a hole.
        let label = f.kind.label();
        let kind = label.split(" (").next().unwrap_or(&label).to_string();
        *kinds.entry(kind).or_default() += 1;
    }
    if kinds.is_empty() {
        return format!("{covered}: no problems.");
    }
    let by_kind: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "{covered}: {} problem(s): {}.",
        r.problems,
        by_kind.join(", ")
    )
}

/// A repair's or backfill's result: the rows it wrote, then the check that ended it.
pub(super) fn written_summary(rows: usize, check: &CheckReport, tz: Tz) -> String {
    format!(
        "Wrote {rows} rows (hourly and 5-minute).\nThen: {}",
        check_summary(check, tz)
    )
}

/// A heal that wrote: the hours it repaired (not those it left as they were), per statistic.
pub(super) fn heal_summary(r: &HealReport, tz: Tz) -> String {
    let repaired: Vec<(&str, Vec<String>)> = r
        .statistics
        .iter()
        .map(|s| {
            let hours = s
                .fixes
                .iter()
                .filter(|f| !matches!(f.fix, Fix::Kept { .. }))
                .map(|f| fmt_ts(f.hour, tz))
                .collect();
            (s.statistic_id.as_str(), hours)
        })
        .filter(|(_, hours): &(_, Vec<String>)| !hours.is_empty())
        .collect();
    let count: usize = repaired.iter().map(|(_, h)| h.len()).sum();
    let mut out = format!(
        "Repaired {count} hour(s) between {} and {} ({} rows written):",
        fmt_ts(r.start, tz),
        fmt_ts(r.end, tz),
        r.rows
    );
    for (id, hours) in repaired {
        out.push_str(&format!("\n{id}: {}", hours.join(", ")));
    }
    out
}
