//! The progress protocol between `serve`'s panel and the jobs it runs as child processes of
//! this program: the child prints its steps as lines, the panel draws them as a bar.

/// `PWSYNC_PROGRESS=lines`: a job's steps also as `pwsync-progress FRACTION MESSAGE` lines on
/// stderr, for `serve`'s panel, which runs jobs as this program and draws their progress bar.
pub const PROGRESS_ENV: &str = "PWSYNC_PROGRESS";
pub const PROGRESS_PREFIX: &str = "pwsync-progress ";
/// What a job found that the panel acts on (the choices of a dry run), as one JSON object.
pub const RESULT_PREFIX: &str = "pwsync-result ";

/// Whether this process runs for the panel (`PWSYNC_PROGRESS=lines`).
fn for_panel() -> bool {
    std::env::var(PROGRESS_ENV).is_ok_and(|v| v == "lines")
}

/// Tell the panel `result` (a JSON object), when it runs this job.
pub fn emit_result(result: &serde_json::Value) {
    if for_panel() {
        eprintln!("{RESULT_PREFIX}{result}");
    }
}

/// The result a result line carries, `None` for any other line.
pub fn parse_result(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line.strip_prefix(RESULT_PREFIX)?)
        .ok()
        .filter(serde_json::Value::is_object)
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
            lines: for_panel(),
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
    fn a_result_line_is_an_object_or_nothing() {
        let v = parse_result(r#"pwsync-result {"blocked":["solar"]}"#).unwrap();
        assert_eq!(v["blocked"][0], "solar");
        assert_eq!(parse_result("pwsync-result [1]"), None);
        assert_eq!(parse_result("pwsync-result {"), None);
        assert_eq!(parse_result("pwsync-progress 0.5 x"), None);
    }
}
