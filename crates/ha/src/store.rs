//! [`WsStore`]: HA's long-term statistics through the websocket API, while HA runs.
//!
//! Writes go through `recorder/adjust_sum_statistics` (the shifts) and
//! `recorder/import_statistics` (hourly rows). HA answers both once the job is queued, not
//! written, so `apply` reads back until every written row and a sample of the shifted rows show
//! the expected values, or fails with [`StoreError::NotConfirmed`].

use crate::client::{iso, HaClient};
use crate::error::HaError;
use crate::metadata::kwh_factor;
use crate::types::{Period, StatType, StatisticInfo};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use pwsync_energy::{floor_hour, StatRow, FIVE_MIN, HOUR};
use pwsync_store::{Shift, StatMeta, StatWrite, StatisticsStore, StoreError, Table, WritePlan};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DAY: i64 = 24 * HOUR;
/// Hourly rows after a shift's start that are read before and after the shift to confirm it.
const PROBE_HOURS: i64 = 48;

/// Tuning of [`WsStore`].
#[derive(Debug, Clone)]
pub struct WsStoreOptions {
    /// Rows per `recorder/import_statistics` call (HA's websocket takes messages up to 4 MiB;
    /// a row is ~80 bytes).
    pub batch_rows: usize,
    /// Longest span of one hourly read.
    pub hourly_chunk: i64,
    /// Longest span of one 5-minute read.
    pub short_term_chunk: i64,
    /// Reads in flight at once.
    pub read_concurrency: usize,
    /// How long `apply` waits for HA's recorder to write what was queued: this plus
    /// `confirm_per_row` for every row.
    pub confirm_timeout: Duration,
    pub confirm_per_row: Duration,
}

impl Default for WsStoreOptions {
    fn default() -> Self {
        WsStoreOptions {
            batch_rows: 5000,
            hourly_chunk: 92 * DAY,
            short_term_chunk: 7 * DAY,
            read_concurrency: 4,
            confirm_timeout: Duration::from_secs(60),
            confirm_per_row: Duration::from_millis(2),
        }
    }
}

/// Where the time of the last `apply` went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Hourly rows written.
    pub rows: usize,
    /// Shifts (`adjust_sum_statistics` calls).
    pub shifts: usize,
    /// Import calls.
    pub batches: usize,
    /// Reading metadata and the rows a shift will move, before writing.
    pub preparing: Duration,
    /// Sending the commands (HA validates and queues them).
    pub sending: Duration,
    /// Waiting for HA's recorder to write the last queued job.
    pub waiting: Duration,
    /// Reading everything back and comparing.
    pub verifying: Duration,
    pub total: Duration,
}

impl ApplyReport {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.total.as_secs_f64().max(1e-9)
    }
}

/// HA's statistics through the websocket API.
pub struct WsStore {
    client: HaClient,
    opts: WsStoreOptions,
    last_report: Mutex<Option<ApplyReport>>,
}

/// Rows expected after an apply, and where they came from (for messages).
struct Check {
    statistic_id: String,
    table: Table,
    what: &'static str,
    expected: Vec<StatRow>,
}

impl WsStore {
    pub fn new(client: HaClient) -> Self {
        Self::with_options(client, WsStoreOptions::default())
    }

    pub fn with_options(client: HaClient, opts: WsStoreOptions) -> Self {
        WsStore {
            client,
            opts,
            last_report: Mutex::new(None),
        }
    }

    pub fn client(&self) -> &HaClient {
        &self.client
    }

    /// Timings of the last successful `apply`.
    pub fn last_report(&self) -> Option<ApplyReport> {
        self.last_report.lock().ok().and_then(|r| r.clone())
    }

    async fn info(&self, statistic_id: &str) -> Result<Option<StatisticInfo>, HaError> {
        let infos = self
            .client
            .get_statistics_metadata(&[statistic_id.to_string()])
            .await?;
        Ok(infos.into_iter().find(|i| i.statistic_id == statistic_id))
    }

    /// One read of `[start, end)`, no chunking.
    async fn read_once(
        &self,
        statistic_id: &str,
        table: Table,
        start: i64,
        end: i64,
    ) -> Result<Vec<StatRow>, HaError> {
        let period = match table {
            Table::Hourly => Period::Hour,
            Table::ShortTerm => Period::FiveMinute,
        };
        let mut reply = self
            .client
            .statistics_during_period(
                start,
                end,
                &[statistic_id.to_string()],
                period,
                &[StatType::State, StatType::Sum],
                Some("kWh"),
            )
            .await?;
        let rows = reply.remove(statistic_id).unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|v| StatRow {
                start: v.start_secs(),
                state: v.state,
                sum: v.sum,
            })
            .filter(|r| r.start >= start && r.start < end)
            .collect())
    }

    async fn read_chunked(
        &self,
        statistic_id: &str,
        table: Table,
        start: i64,
        end: i64,
    ) -> Result<Vec<StatRow>, HaError> {
        let chunk = match table {
            Table::Hourly => self.opts.hourly_chunk,
            Table::ShortTerm => self.opts.short_term_chunk,
        }
        .max(HOUR);
        let mut ranges = Vec::new();
        let mut s = start;
        while s < end {
            let e = (s + chunk).min(end);
            ranges.push((s, e));
            s = e;
        }
        let parts: Vec<Vec<StatRow>> = futures_util::stream::iter(ranges)
            .map(|(s, e)| self.read_once(statistic_id, table, s, e))
            .buffered(self.opts.read_concurrency.max(1))
            .try_collect()
            .await?;
        let mut rows: Vec<StatRow> = parts.into_iter().flatten().collect();
        rows.sort_by_key(|r| r.start);
        rows.dedup_by_key(|r| r.start);
        Ok(rows)
    }

    async fn last_before_inner(
        &self,
        statistic_id: &str,
        table: Table,
        before: i64,
    ) -> Result<Option<StatRow>, HaError> {
        match table {
            Table::Hourly => {
                // Usually the row right before: one small read.
                let near = self
                    .read_once(statistic_id, table, before - 8 * DAY, before)
                    .await?;
                if let Some(r) = near.last() {
                    return Ok(Some(*r));
                }
                // Else find the last month with rows (HA reduces the hourly table per month),
                // then read that month's hours.
                let mut months = self
                    .client
                    .statistics_during_period(
                        0,
                        before,
                        &[statistic_id.to_string()],
                        Period::Month,
                        &[StatType::Sum],
                        Some("kWh"),
                    )
                    .await?;
                let Some(last_month) = months
                    .remove(statistic_id)
                    .and_then(|m| m.into_iter().map(|v| v.start_secs()).max())
                else {
                    return Ok(None);
                };
                let rows = self
                    .read_chunked(statistic_id, table, last_month.min(before - HOUR), before)
                    .await?;
                Ok(rows.last().copied())
            }
            Table::ShortTerm => {
                // 5-minute rows are purged after 10 days by default: search back in growing
                // windows, about three years in all.
                let mut end = before;
                for span in [2 * HOUR, 2 * DAY, 12 * DAY, 120 * DAY, 1000 * DAY] {
                    let start = end - span;
                    let rows = self.read_chunked(statistic_id, table, start, end).await?;
                    if let Some(r) = rows.last() {
                        return Ok(Some(*r));
                    }
                    end = start;
                }
                Ok(None)
            }
        }
    }

    /// Send one statistic's shifts and rows; returns the checks that confirm them.
    async fn send_write(
        &self,
        w: &StatWrite,
        report: &mut ApplyReport,
    ) -> Result<Vec<Check>, StoreError> {
        let id = &w.meta.statistic_id;
        let t_prepare = Instant::now();
        validate(w)?;
        if !w.short_term.is_empty() {
            tracing::debug!(
                statistic_id = %id,
                rows = w.short_term.len(),
                "5-minute rows are not written through the websocket (HA compiles them)"
            );
        }
        let existing = self.info(id).await.map_err(|e| context(id, e))?;
        // Rows are kWh; a statistic kept in another energy unit keeps it.
        let mut meta = w.meta.clone();
        let mut to_unit = 1.0;
        if let Some(info) = &existing {
            let theirs = info.statistics_unit_of_measurement.as_deref();
            let ours = w.meta.unit_of_measurement.as_deref();
            if theirs != ours {
                match (ours, theirs.and_then(kwh_factor)) {
                    (Some("kWh"), Some(f)) => {
                        to_unit = 1.0 / f;
                        meta.unit_of_measurement = theirs.map(str::to_string);
                    }
                    _ => {
                        return Err(StoreError::Refused(format!(
                            "{id} is kept in {} in HA, not {}: pwsync will not mix units",
                            theirs.unwrap_or("no unit"),
                            ours.unwrap_or("no unit")
                        )))
                    }
                }
            }
        }
        // A statistic HA does not have yet has no rows to carry along: its shifts are empty
        // moves (HA would refuse them as unknown statistics).
        let shifts: &[Shift] = if existing.is_some() { &w.shifts } else { &[] };
        // What the shifted rows hold now, to know what they must hold after.
        let written: BTreeSet<i64> = w.hourly.iter().map(|r| r.start).collect();
        let mut checks = Vec::new();
        for (table, what) in [
            (Table::Hourly, "shifted hourly row"),
            (Table::ShortTerm, "shifted 5-minute row"),
        ] {
            let mut probes: Vec<StatRow> = Vec::new();
            for s in shifts {
                let (from, to) = match table {
                    Table::Hourly => (floor_hour(s.from), floor_hour(s.from) + PROBE_HOURS * HOUR),
                    Table::ShortTerm => (s.from, s.from + HOUR),
                };
                probes.extend(
                    self.read_once(id, table, from, to)
                        .await
                        .map_err(|e| context(id, e))?,
                );
            }
            probes.sort_by_key(|r| r.start);
            probes.dedup_by_key(|r| r.start);
            let expected: Vec<StatRow> = probes
                .into_iter()
                .filter(|r| table == Table::ShortTerm || !written.contains(&r.start))
                .map(|r| {
                    let delta: f64 = shifts
                        .iter()
                        .filter(|s| match table {
                            Table::Hourly => floor_hour(s.from) <= r.start,
                            Table::ShortTerm => s.from <= r.start,
                        })
                        .map(|s| s.delta)
                        .sum();
                    StatRow {
                        sum: r.sum.map(|v| v + delta),
                        ..r
                    }
                })
                .collect();
            if !expected.is_empty() {
                checks.push(Check {
                    statistic_id: id.clone(),
                    table,
                    what,
                    expected,
                });
            }
        }
        report.preparing += t_prepare.elapsed();

        let t_send = Instant::now();
        // Shifts first and one at a time: HA queues an adjustment only after an executor job,
        // so a command sent before its reply could be queued ahead of it.
        for s in shifts {
            self.client
                .adjust_sum_statistics(id, s.from, s.delta, "kWh")
                .await
                .map_err(|e| context(id, e))?;
            report.shifts += 1;
        }
        for batch in w.hourly.chunks(self.opts.batch_rows.max(1)) {
            let rows: Vec<StatRow> = batch
                .iter()
                .map(|r| StatRow {
                    start: r.start,
                    state: r.state.map(|v| v * to_unit),
                    sum: r.sum.map(|v| v * to_unit),
                })
                .collect();
            self.client
                .import_statistics(&meta, &rows)
                .await
                .map_err(|e| context(id, e))?;
            report.batches += 1;
            report.rows += rows.len();
        }
        report.sending += t_send.elapsed();
        if !w.hourly.is_empty() {
            let mut expected = w.hourly.clone();
            expected.sort_by_key(|r| r.start);
            checks.push(Check {
                statistic_id: id.clone(),
                table: Table::Hourly,
                what: "written hourly row",
                expected,
            });
        }
        Ok(checks)
    }

    /// Rows of `check` that HA does not show as expected (described), read in one go.
    async fn mismatches(&self, check: &Check, limit: usize) -> Result<Vec<String>, HaError> {
        let (Some(first), Some(last)) = (check.expected.first(), check.expected.last()) else {
            return Ok(Vec::new());
        };
        let end = last.start
            + match check.table {
                Table::Hourly => HOUR,
                Table::ShortTerm => FIVE_MIN,
            };
        let actual = self
            .read_chunked(&check.statistic_id, check.table, first.start, end)
            .await?;
        let mut out = Vec::new();
        let mut i = 0;
        for want in &check.expected {
            while i < actual.len() && actual[i].start < want.start {
                i += 1;
            }
            let got = actual.get(i).filter(|r| r.start == want.start);
            let problem = match got {
                None => Some("missing".to_string()),
                Some(got) => {
                    if !close(want.sum, got.sum) {
                        Some(format!("sum {:?} instead of {:?}", got.sum, want.sum))
                    } else if check.what == "written hourly row" && !close(want.state, got.state) {
                        Some(format!("state {:?} instead of {:?}", got.state, want.state))
                    } else {
                        None
                    }
                }
            };
            if let Some(p) = problem {
                out.push(format!(
                    "{} {} {}: {p}",
                    check.statistic_id,
                    check.what,
                    iso(want.start)
                ));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Wait until every check holds (or the deadline passes).
    async fn confirm(
        &self,
        checks: &[Check],
        deadline: Instant,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        // HA's recorder runs queued jobs in order: once the last job's rows show, all earlier
        // jobs are done. Poll the smallest part of the last check, then verify everything.
        let t_wait = Instant::now();
        if let Some(last) = checks.iter().rev().find(|c| c.what == "written hourly row") {
            let tail_len = last.expected.len().min(self.opts.batch_rows.max(1));
            let tail = Check {
                statistic_id: last.statistic_id.clone(),
                table: last.table,
                what: last.what,
                expected: last.expected[last.expected.len() - tail_len..].to_vec(),
            };
            let mut pause = Duration::from_millis(20);
            loop {
                if self.mismatches(&tail, 1).await?.is_empty() || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
        report.waiting += t_wait.elapsed();

        let t_verify = Instant::now();
        let mut pending: Vec<&Check> = checks.iter().collect();
        let mut pause = Duration::from_millis(50);
        loop {
            let mut still = Vec::new();
            let mut problems = Vec::new();
            for c in pending {
                let m = self.mismatches(c, 3).await?;
                if !m.is_empty() {
                    still.push(c);
                    problems.extend(m);
                }
            }
            if still.is_empty() {
                report.verifying += t_verify.elapsed();
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StoreError::NotConfirmed(format!(
                    "HA did not show the written statistics in time ({} check(s) failed; first: {})",
                    still.len(),
                    problems.into_iter().take(3).collect::<Vec<_>>().join("; ")
                )));
            }
            pending = still;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// Equal up to float noise of HA's arithmetic and unit conversions.
fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 + 1e-12 * a.abs().max(b.abs()),
        _ => false,
    }
}

fn context(id: &str, e: HaError) -> StoreError {
    let hint = match &e {
        HaError::Command { message, .. } if message.contains("Invalid statistic_id") => {
            " (a statistic id is sensor.<object_id> in lower case, or <domain>:<name> for an external statistic)"
        }
        _ => "",
    };
    let msg = format!("{id}: {e}{hint}");
    match StoreError::from(e) {
        StoreError::Connection(_) => StoreError::Connection(msg),
        StoreError::Refused(_) => StoreError::Refused(msg),
        StoreError::NotConfirmed(_) => StoreError::NotConfirmed(msg),
        StoreError::Command(_) => StoreError::Command(msg),
    }
}

/// Reject what HA would reject halfway through a write.
fn validate(w: &StatWrite) -> Result<(), StoreError> {
    let id = &w.meta.statistic_id;
    for r in &w.hourly {
        if r.start.rem_euclid(HOUR) != 0 {
            return Err(StoreError::Command(format!(
                "{id}: hourly row {} does not start on the hour",
                iso(r.start)
            )));
        }
        if r.state.is_some_and(|v| !v.is_finite()) || r.sum.is_some_and(|v| !v.is_finite()) {
            return Err(StoreError::Command(format!(
                "{id}: hourly row {} is not a finite number",
                iso(r.start)
            )));
        }
    }
    if let Some(s) = w.shifts.iter().find(|s| !s.delta.is_finite()) {
        return Err(StoreError::Command(format!(
            "{id}: the shift from {} is not a finite number",
            iso(s.from)
        )));
    }
    Ok(())
}

#[async_trait]
impl StatisticsStore for WsStore {
    fn kind(&self) -> &'static str {
        "websocket"
    }

    fn writes_short_term(&self) -> bool {
        false
    }

    async fn metadata(&self, ids: &[String]) -> Result<Vec<StatMeta>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let infos = self.client.get_statistics_metadata(ids).await?;
        Ok(infos
            .iter()
            .filter(|i| ids.contains(&i.statistic_id))
            .map(StatisticInfo::to_meta)
            .collect())
    }

    async fn list(&self) -> Result<Vec<StatMeta>, StoreError> {
        let infos = self.client.list_statistic_ids(None).await?;
        Ok(infos.iter().map(StatisticInfo::to_meta).collect())
    }

    async fn read(
        &self,
        statistic_id: &str,
        table: Table,
        start: i64,
        end: i64,
    ) -> Result<Vec<StatRow>, StoreError> {
        self.read_chunked(statistic_id, table, start, end)
            .await
            .map_err(|e| context(statistic_id, e))
    }

    async fn last_before(
        &self,
        statistic_id: &str,
        table: Table,
        before: i64,
    ) -> Result<Option<StatRow>, StoreError> {
        self.last_before_inner(statistic_id, table, before)
            .await
            .map_err(|e| context(statistic_id, e))
    }

    async fn apply(&self, plan: &WritePlan) -> Result<(), StoreError> {
        if plan.is_empty() {
            return Ok(());
        }
        let t0 = Instant::now();
        let mut report = ApplyReport::default();
        let mut checks = Vec::new();
        for w in plan.writes.iter().filter(|w| !w.is_empty()) {
            checks.extend(self.send_write(w, &mut report).await?);
        }
        let rows = plan.writes.iter().map(|w| w.hourly.len()).sum::<usize>() as u32;
        let deadline =
            Instant::now() + self.opts.confirm_timeout + self.opts.confirm_per_row * rows;
        self.confirm(&checks, deadline, &mut report).await?;
        report.total = t0.elapsed();
        tracing::info!(
            rows = report.rows,
            shifts = report.shifts,
            batches = report.batches,
            secs = report.total.as_secs_f64(),
            rows_per_sec = report.rows_per_sec() as u64,
            sending = report.sending.as_secs_f64(),
            waiting = report.waiting.as_secs_f64(),
            verifying = report.verifying.as_secs_f64(),
            "statistics written through HA's websocket and read back"
        );
        if let Ok(mut r) = self.last_report.lock() {
            *r = Some(report);
        }
        Ok(())
    }
}
