//! Helpers of the end-to-end tests: real servers, the pwsync binary, HA's own reads.
#![allow(dead_code)]

pub mod browser;

use pwsync_energy::local::local_day_range;
use pwsync_energy::{Field, StatRow, HOUR};
use pwsync_ha::{ClientOptions, HaClient, Period, StatType};
use pwsync_influx::{FieldMap, InfluxClient, InfluxConfig};
use pwsync_store::StatMeta;
use pwsync_testkit::ha::{self, HaInstance};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::or_skip;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ZONE: &str = "America/Los_Angeles";
pub const HOME: &str = "sensor.powerwall_home_usage";

pub fn tz() -> chrono_tz::Tz {
    ZONE.parse().unwrap()
}

/// The servers a scenario needs, or `None` to skip where they are truly absent.
pub fn servers() -> Option<InfluxServer> {
    ha::venv_or_skip()?;
    or_skip(InfluxServer::start())
}

/// Run pwsync with only the environment given here (plus PATH/HOME).
pub fn pwsync(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pwsync"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The JSON a successful run printed.
pub fn ok(o: Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "pwsync failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// `check --json` with `args`: its exit code (0 clean, 3 problems; anything else fails the
/// test) and its report.
pub fn check_json(env: &[(&str, String)], args: &[&str]) -> (i32, serde_json::Value) {
    let o = pwsync(env, &[&["check", "--json"], args].concat());
    let code = o.status.code().unwrap();
    assert!(
        code == 0 || code == 3,
        "check failed ({code}): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (code, serde_json::from_slice(&o.stdout).unwrap())
}

/// [`ok`], printing how long the run took and how many rows it wrote.
pub fn ok_timed(what: &str, env: &[(&str, String)], args: &[&str]) -> serde_json::Value {
    let t0 = Instant::now();
    let v = ok(pwsync(env, args));
    eprintln!(
        "{what}: {} rows in {:.1} s",
        v["rows"],
        t0.elapsed().as_secs_f64()
    );
    v
}

pub fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn day_start(s: &str) -> i64 {
    local_day_range(date(s), tz()).0
}

/// `pwsync simulate` into the InfluxDB at `url`.
pub fn simulate(url: &str, start: &str, days: u32, seed: u64) {
    let env = [
        ("PWSYNC_INFLUXDB__URL", url.to_string()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    let (days, seed) = (days.to_string(), seed.to_string());
    ok(pwsync(
        &env,
        &[
            "simulate", "--start", start, "--days", &days, "--seed", &seed,
        ],
    ));
}

/// pwsync's hourly energy from InfluxDB (kWh per hour start; only hours with data), which the
/// influx crate's tests check against independent trapezoids and InfluxDB's own integral().
pub async fn influx_hourly(url: &str, field: Field, start: i64, end: i64) -> BTreeMap<i64, f64> {
    influx_hours(url, field, start, end)
        .await
        .into_iter()
        .map(|(h, (kwh, _))| (h, kwh))
        .collect()
}

/// InfluxDB's energy per UTC hour with data, and whether the hour is fully covered (no gap
/// longer than the 5-minute limit, not at the edge of the data).
pub async fn influx_hours(
    url: &str,
    field: Field,
    start: i64,
    end: i64,
) -> BTreeMap<i64, (f64, bool)> {
    let client = InfluxClient::new(InfluxConfig {
        url: url.to_string(),
        ..InfluxConfig::default()
    })
    .unwrap();
    let e = client
        .energy(&FieldMap::default(), &[field], start, end, HOUR, 300)
        .await
        .unwrap();
    let integ = &e[&field];
    integ
        .buckets
        .iter()
        .filter(|b| b.covered > 0)
        .map(|b| (b.start, (b.wh / 1000.0, integ.is_complete(b))))
        .collect()
}

pub fn ha_client(ha: &HaInstance) -> HaClient {
    HaClient::new(ClientOptions::new(&ha.url(), ha.token()))
}

/// Hourly rows of `id` as HA itself reports them (`change`, `sum`, `state`, kWh).
pub async fn ha_rows(c: &HaClient, id: &str, start: i64, end: i64) -> Vec<pwsync_ha::StatValue> {
    let mut m = c
        .statistics_during_period(
            start,
            end,
            &[id.to_string()],
            Period::Hour,
            &[StatType::Change, StatType::Sum, StatType::State],
            Some("kWh"),
        )
        .await
        .unwrap();
    m.remove(id).unwrap_or_default()
}

/// Every row of the statistics tables, hashed: equal hashes mean nothing was written.
pub async fn checksum(url: &str) -> String {
    let pool = any_pool(url).await;
    let mut h = Sha256::new();
    for sql in [
        "SELECT id, statistic_id, source, unit_of_measurement, CASE WHEN has_sum THEN 1 ELSE 0 END, name FROM statistics_meta ORDER BY id",
        "SELECT id, metadata_id, start_ts, state, sum, created_ts FROM statistics ORDER BY id",
        "SELECT id, metadata_id, start_ts, state, sum, created_ts FROM statistics_short_term ORDER BY id",
    ] {
        for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
            for i in 0..row.len() {
                let v = row
                    .try_get::<Option<f64>, _>(i)
                    .map(|v| format!("{v:?}"))
                    .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                    .or_else(|_| row.try_get::<Option<i32>, _>(i).map(|v| format!("{v:?}")))
                    .or_else(|_| row.try_get::<Option<bool>, _>(i).map(|v| format!("{v:?}")))
                    .or_else(|_| row.try_get::<Option<String>, _>(i).map(|v| format!("{v:?}")))
                    .unwrap_or_else(|e| panic!("column {i} of {sql}: {e}"));
                h.update(v.as_bytes());
                h.update(b"|");
            }
        }
    }
    pool.close().await;
    format!("{:x}", h.finalize())
}

pub fn sha_file(p: &std::path::Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()))
}

/// Import `rows` through HA (`recorder/import_statistics`, as a user's import would) and wait
/// until HA shows exactly these sums over their range.
pub async fn import_and_wait(c: &HaClient, id: &str, rows: &[StatRow]) {
    let meta = StatMeta::energy_kwh(id, id);
    c.import_statistics(&meta, rows).await.unwrap();
    let (start, end) = (rows[0].start, rows[rows.len() - 1].start + HOUR);
    let want: Vec<(i64, Option<f64>)> = rows.iter().map(|r| (r.start, r.sum)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<(i64, Option<f64>)> = ha_rows(c, id, start, end)
            .await
            .iter()
            .map(|v| (v.start_secs(), v.sum))
            .collect();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "HA did not write the rows of {id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A chain whose every hour holds InfluxDB's energy: sum from 0, state a meter from `meter`.
pub fn chain_of(energy: &BTreeMap<i64, f64>, meter: f64) -> Vec<StatRow> {
    let (mut sum, mut meter) = (0.0, meter);
    energy
        .iter()
        .map(|(t, kwh)| {
            sum += kwh;
            meter += kwh;
            StatRow {
                start: *t,
                state: Some(meter),
                sum: Some(sum),
            }
        })
        .collect()
}

/// `(start, change)` of consecutive rows; the first row's change counts from 0.
pub fn changes(rows: &[StatRow]) -> Vec<(i64, f64)> {
    let mut prev = 0.0;
    rows.iter()
        .map(|r| {
            let s = r.sum.unwrap();
            let c = (r.start, s - prev);
            prev = s;
            c
        })
        .collect()
}

/// Every backfilled hour of `field` in `[start, end)` equals InfluxDB's energy within 1 Wh, and
/// no hour outside the data exists.
pub fn assert_hours_match(
    what: &str,
    got: &[(i64, f64)],
    want: &BTreeMap<i64, f64>,
    start: i64,
    end: i64,
) {
    let got: BTreeMap<i64, f64> = got
        .iter()
        .filter(|(t, _)| *t >= start && *t < end)
        .copied()
        .collect();
    let only_ha: Vec<_> = got.keys().filter(|t| !want.contains_key(t)).collect();
    let only_influx: Vec<_> = want.keys().filter(|t| !got.contains_key(t)).collect();
    assert!(
        only_ha.is_empty() && only_influx.is_empty(),
        "{what}: the hours written are the hours with data; only in HA {only_ha:?}, \
         only in InfluxDB {only_influx:?}"
    );
    for (t, kwh) in &got {
        assert!(
            (kwh - want[t]).abs() < 0.001,
            "{what} hour {t}: HA {kwh} kWh vs InfluxDB {} kWh",
            want[t]
        );
    }
}

/// `(hour, change)` of rows as HA reports them; the first row's change is its sum (HA counts a
/// statistic from 0).
pub fn ha_changes(rows: &[pwsync_ha::StatValue]) -> Vec<(i64, f64)> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let change = if i == 0 {
                r.sum.unwrap()
            } else {
                r.change.unwrap()
            };
            (r.start_secs(), change)
        })
        .collect()
}

/// One raw connection to a recorder database of any engine, beside pwsync's own.
pub async fn any_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

/// SIGTERM, and a failed test (after a SIGKILL) if serve does not exit within 30 s.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not stop within 30 s of SIGTERM");
}

/// `pwsync serve --interval SECS` with only `env` (and PATH), its log at `level` (`""`: the
/// default level) to `stderr`.
pub fn spawn_serve_with(env: &[(&str, String)], secs: &str, level: &str, stderr: Stdio) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pwsync"));
    cmd.args(["serve", "--interval", secs])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    if !level.is_empty() {
        cmd.env("PWSYNC_LOG", level);
    }
    cmd.stdout(Stdio::null()).stderr(stderr).spawn().unwrap()
}

/// An entity's state once `ready` holds for it.
pub async fn wait_entity(
    c: &HaClient,
    id: &str,
    timeout: Duration,
    ready: impl Fn(&pwsync_ha::EntityState) -> bool,
) -> pwsync_ha::EntityState {
    let deadline = Instant::now() + timeout;
    loop {
        let s = c
            .get_states()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.entity_id == id);
        match s {
            Some(s) if ready(&s) => return s,
            s => assert!(
                Instant::now() < deadline,
                "{id} not as expected within {timeout:?}: {s:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// HA in the tests' zone with its MQTT integration on the broker at `port`.
pub fn ha_with_broker(port: u16) -> HaInstance {
    HaInstance::start(
        ha::HaOptions::default()
            .with_time_zone(ZONE)
            .with_broker(port),
    )
    .unwrap()
}

/// Press buttons through HA (as a dashboard or an automation would).
pub async fn press(c: &HaClient, buttons: &[&str]) {
    let ids: Vec<String> = buttons
        .iter()
        .map(|b| format!("button.powerwall_{b}"))
        .collect();
    c.call(
        "call_service",
        serde_json::json!({"domain": "button", "service": "press", "target": {"entity_id": ids}}),
    )
    .await
    .unwrap();
}

/// `last_job` finished (succeeded or failed) for a job started after `since` (epoch s).
pub async fn job_done(c: &HaClient, job: &str, since: i64) -> pwsync_ha::EntityState {
    wait_entity(
        c,
        "sensor.powerwall_last_job",
        Duration::from_secs(240),
        |s| {
            let started = s.attributes["started"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(0, |t| t.timestamp());
            ["succeeded", "failed"].contains(&s.state.as_str())
                && s.attributes["job"] == job
                && started >= since
        },
    )
    .await
}

/// A test's own MQTT client on the broker at `url`, subscribed to `filter`.
pub async fn mqtt_listener(url: &str, filter: &str) -> pwsync_mqtt::Mqtt {
    let m = pwsync_mqtt::Mqtt::connect(&pwsync_mqtt::MqttSettings {
        url: url.to_string(),
        ca_file: None,
        username: None,
        password: None,
        client_id: format!("test-{}", std::process::id()),
        configured_client_id: true,
        will: None,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    m.subscribe(filter).await.unwrap();
    m
}

/// Every message `m` gets until `until` holds (`true`) or `timeout` passes (`false`).
pub async fn collect(
    m: &mut pwsync_mqtt::Mqtt,
    seen: &mut Vec<(String, String)>,
    timeout: Duration,
    until: impl Fn(&[(String, String)]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(pwsync_mqtt::Incoming::Message { topic, payload, .. }) =
            m.next(Duration::from_millis(200)).await
        {
            seen.push((topic, payload));
            if until(seen) {
                return true;
            }
        }
    }
    false
}
