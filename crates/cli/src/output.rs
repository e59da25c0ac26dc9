//! Tables for people, JSON for machines.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    t
}

pub fn kwh(wh: f64) -> String {
    format!("{:.3}", wh / 1000.0)
}

/// `PWSYNC_PROGRESS=lines`: a job's steps also as `pwsync-progress FRACTION MESSAGE` lines on
/// stderr, for `serve`'s panel, which runs jobs as this program and draws their progress bar.
pub const PROGRESS_ENV: &str = "PWSYNC_PROGRESS";
pub const PROGRESS_PREFIX: &str = "pwsync-progress ";
/// With `PWSYNC_PROGRESS=lines`, a job's last line on stderr: `pwsync-result {"rows":N}`, what
/// it wrote (or, on a dry run, would write), so the panel knows a plan with nothing to apply.
pub const RESULT_PREFIX: &str = "pwsync-result ";

fn lines_wanted() -> bool {
    std::env::var(PROGRESS_ENV).is_ok_and(|v| v == "lines")
}

/// What a job did, for `serve`'s panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobResult {
    /// Rows written, or on a dry run, rows the real run would write.
    pub rows: usize,
}

impl JobResult {
    /// Its line on stderr, when asked for (`PWSYNC_PROGRESS=lines`).
    pub fn report(self) {
        if lines_wanted() {
            eprintln!("{}", self.line());
        }
    }

    fn line(self) -> String {
        format!("{RESULT_PREFIX}{{\"rows\":{}}}", self.rows)
    }
}

/// The result of a result line, `None` for any other line.
pub fn parse_result(line: &str) -> Option<JobResult> {
    serde_json::from_str(line.strip_prefix(RESULT_PREFIX)?).ok()
}

/// Where a backfill (or a migration's phases) stands, 0 to 1, from its steps: reading, each
/// field planned (the bulk of the work), writing.
#[derive(Debug, Default)]
pub struct StepProgress {
    planned: usize,
    lines: bool,
}

impl StepProgress {
    pub fn from_env() -> StepProgress {
        StepProgress {
            planned: 0,
            lines: lines_wanted(),
        }
    }

    /// The fraction and message of `step`, and its progress line when asked for.
    pub fn step(&mut self, step: &pwsync_jobs::backfill::Step) -> (f64, String) {
        use pwsync_jobs::backfill::Step;
        let fields = pwsync_energy::Field::ALL.len() as f64;
        let (fraction, message) = match step {
            Step::Reading => (0.05, "reading InfluxDB".to_string()),
            Step::Planned(f) => {
                self.planned += 1;
                // A migration plans every field twice (its two phases): the bar waits at 80 %.
                let done = (self.planned as f64).min(fields);
                (0.1 + 0.7 * done / fields, format!("planned {f}"))
            }
            Step::Writing(n) => (0.85, format!("writing {n} rows")),
        };
        if self.lines {
            eprintln!("{PROGRESS_PREFIX}{fraction:.3} {message}");
        }
        (fraction, message)
    }
}

/// The fraction and message of a progress line, `None` for any other line.
pub fn parse_progress(line: &str) -> Option<(f64, String)> {
    let rest = line.strip_prefix(PROGRESS_PREFIX)?;
    let (f, msg) = rest.split_once(' ').unwrap_or((rest, ""));
    let f: f64 = f.parse().ok()?;
    Some((f.clamp(0.0, 1.0), msg.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsync_jobs::backfill::Step;

    #[test]
    fn steps_advance_to_writing_and_their_lines_parse_back() {
        let mut p = StepProgress::default();
        let mut last = 0.0;
        let mut steps = vec![Step::Reading];
        steps.extend(pwsync_energy::Field::ALL.map(Step::Planned));
        steps.push(Step::Writing(12));
        for s in &steps {
            let (f, _) = p.step(s);
            assert!(f > last, "{s:?}: {f} after {last}");
            last = f;
        }
        let (f, m) = parse_progress("pwsync-progress 0.850 writing 12 rows").unwrap();
        assert_eq!((f, m.as_str()), (0.85, "writing 12 rows"));
        assert_eq!(parse_progress("WARN something"), None);
        assert_eq!(parse_progress("pwsync-progress x y"), None);
    }

    #[test]
    fn a_result_line_parses_back_and_other_lines_are_not_results() {
        let r = JobResult { rows: 1234 };
        assert_eq!(r.line(), r#"pwsync-result {"rows":1234}"#);
        assert_eq!(parse_result(&r.line()), Some(r));
        assert_eq!(parse_result("pwsync-progress 0.5 planned home"), None);
        assert_eq!(parse_result("pwsync-result {\"rows\":-1}"), None);
        assert_eq!(parse_result("pwsync-result rows"), None);
    }
}
