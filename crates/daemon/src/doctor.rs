//! What `pwsync doctor` finds and the panel's Status shows: every configured part connected
//! to, what is there, and what to do next. InfluxDB and HA are required (a problem each when
//! unreachable); the MQTT broker only matters to `serve`, and the recorder database only
//! when configured.

use pwsync_config::target::ha_client;
use pwsync_config::Config;
use pwsync_energy::{Field, Gap};
use pwsync_influx::QueryLog;
use pwsync_jobs::dashboard::{self, DashboardAudit};
use pwsync_recorder::{RecorderDb, RecorderOptions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Integrations whose statistics `migrate` can move onto pwsync's meters.
const TESLA_PLATFORMS: [&str; 4] = ["teslemetry", "tesla_fleet", "tessie", "powerwall"];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, Serialize)]
pub struct InfluxInfo {
    pub url: String,
    pub version: Option<String>,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Stretches without `home` data longer than the gap limit, longest first (at most 10).
    pub gaps: Vec<Gap>,
    pub gap_count: usize,
    pub gap_hours: f64,
    /// Rows stamped after now and the latest of them: every read ignores them.
    pub future_points: Option<(u64, i64)>,
    pub recent_queries: Vec<QueryLog>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HaInfo {
    pub url: Option<String>,
    pub version: Option<String>,
    /// Whether pwsync's end-to-end tests ran against this exact release
    /// ([`pwsync_ha::TESTED_VERSIONS`]).
    pub version_tested: Option<bool>,
    pub time_zone: Option<String>,
    /// pwsync's meters that have statistics in HA.
    pub pwsync_statistics: Vec<String>,
    /// The first day HA has statistics of each of pwsync's meters (`None`: none), looked for
    /// from InfluxDB's first month on: how much of InfluxDB's history HA has.
    pub coverage: Vec<(String, Option<i64>)>,
    pub pwsync_missing: Vec<String>,
    /// Energy statistics of Tesla integrations (`migrate` sources), `platform: id`.
    pub tesla_statistics: Vec<String>,
    /// Which of pwsync's meters HA's Energy dashboard counts, and what it counts twice.
    pub energy_dashboard: Option<DashboardAudit>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub influxdb: InfluxInfo,
    pub homeassistant: HaInfo,
    /// `host:port`, whether pwsync logged in as `serve` would, and what happened
    /// (`login accepted`, `login refused`, `unreachable`, `TLS failed`).
    pub mqtt: Option<(String, bool, String)>,
    /// Engine, schema version and whether HA uses it, when configured.
    pub recorder_db: Option<String>,
    /// Required parts that failed, one line each.
    pub problems: Vec<String>,
    /// Optional parts that failed.
    pub warnings: Vec<String>,
    pub next_action: String,
}

/// Every part's findings (also `serve`'s panel's Status page), and the zone to show times in:
/// HA's when it answered.
pub async fn report(cfg: &Config) -> (Report, chrono_tz::Tz) {
    let mut r = Report::default();
    let tz = influx(cfg, &mut r).await;
    homeassistant(cfg, &mut r).await;
    mqtt(cfg, &mut r).await;
    recorder(cfg, &mut r).await;
    r.next_action = next_action(&r);
    let tz = r
        .homeassistant
        .time_zone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(tz);
    (r, tz)
}

async fn influx(cfg: &Config, r: &mut Report) -> chrono_tz::Tz {
    let tz = cfg.tz().unwrap_or(chrono_tz::UTC);
    r.influxdb.url = pwsync_redact::url(&cfg.influxdb.url);
    let source = match pwsync_config::source::from_config(cfg) {
        Ok(s) => s,
        Err(e) => {
            r.problems
                .push(format!("InfluxDB: {}", pwsync_config::errors::one_line(&e)));
            return tz;
        }
    };
    let c = &source.client;
    match c.ping().await {
        Ok(v) => r.influxdb.version = Some(v),
        Err(e) => {
            r.problems.push(format!("InfluxDB: {e}"));
            return tz;
        }
    }
    let fields = Field::ALL;
    let range = async {
        c.check_source(&source.map, &fields).await?;
        let first = c.first_timestamp(&source.map, &fields).await?;
        let now = chrono::Utc::now().timestamp();
        let future = c.future_points(&source.map, &fields, now).await?;
        // The data's end as every read sees it: points after now are ignored.
        let last = c
            .last_timestamp(&source.map, &fields)
            .await?
            .map(|t| t.min(now));
        Ok::<_, pwsync_influx::InfluxError>((first, last, future))
    };
    match range.await {
        Ok((first, last, future)) => {
            r.influxdb.first = first;
            r.influxdb.last = last;
            r.influxdb.future_points = future;
            if let Some((n, latest)) = future {
                r.problems.push(format!(
                    "InfluxDB holds {n} point(s) stamped after now, up to {}: pwsync ignores them; set the Powerwall-Dashboard host's clock right (NTP) and delete them with `DELETE FROM {} WHERE time > now()`",
                    chrono::DateTime::from_timestamp(latest, 0).map(|d| d.to_rfc3339()).unwrap_or_default(),
                    cfg.influxdb.measurement
                ));
            }
            if let (Some(f), Some(l)) = (first, last) {
                // Gaps do not depend on the bucket: days keep the result small.
                match c
                    .energy(
                        &source.map,
                        &[Field::Home],
                        f,
                        l + 1,
                        86_400,
                        source.gap_limit,
                    )
                    .await
                {
                    Ok(e) => {
                        let mut gaps = e[&Field::Home].gaps.clone();
                        r.influxdb.gap_count = gaps.len();
                        r.influxdb.gap_hours =
                            gaps.iter().map(|g| g.seconds()).sum::<i64>() as f64 / 3600.0;
                        gaps.sort_by_key(|g| -g.seconds());
                        gaps.truncate(10);
                        r.influxdb.gaps = gaps;
                    }
                    Err(e) => r.problems.push(format!("InfluxDB: {e}")),
                }
            } else {
                r.problems.push(format!(
                    "InfluxDB has no data in {}.{}.{}: check influxdb.database, retention_policy and measurement",
                    cfg.influxdb.database, cfg.influxdb.retention_policy, cfg.influxdb.measurement
                ));
            }
        }
        Err(e) => r.problems.push(format!("InfluxDB: {e}")),
    }
    r.influxdb.recent_queries = c.recent_queries();
    tz
}

async fn homeassistant(cfg: &Config, r: &mut Report) {
    r.homeassistant.url = cfg.homeassistant.url.as_deref().map(pwsync_redact::url);
    let client = match ha_client(cfg) {
        Ok(c) => c,
        Err(e) => {
            r.problems.push(format!(
                "Home Assistant: {}",
                pwsync_config::errors::one_line(&e)
            ));
            return;
        }
    };
    let result = async {
        let conf = client.get_config().await?;
        let stats = client.list_statistic_ids(None).await?;
        let registry = client.entity_registry_list().await?;
        Ok::<_, pwsync_ha::HaError>((conf, stats, registry))
    };
    let (conf, stats, registry) = match result.await {
        Ok(v) => v,
        Err(e) => {
            r.problems.push(format!("Home Assistant: {e}"));
            return;
        }
    };
    let h = &mut r.homeassistant;
    h.version_tested = Some(pwsync_ha::is_tested(&conf.version));
    h.version = Some(conf.version);
    h.time_zone = Some(conf.time_zone);
    let has = |id: &str| stats.iter().any(|s| s.statistic_id == id);
    for f in Field::ALL {
        let id = cfg.meter_entity(f);
        if has(&id) {
            h.pwsync_statistics.push(id);
        } else {
            h.pwsync_missing.push(id);
        }
    }
    if let Some(first) = r.influxdb.first {
        match first_days(&client, &h.pwsync_statistics, first).await {
            Ok(found) => {
                h.coverage = Field::ALL
                    .iter()
                    .map(|f| cfg.meter_entity(*f))
                    .map(|id| (id.clone(), found.get(&id).copied()))
                    .collect()
            }
            Err(e) => r.warnings.push(format!("Home Assistant's history: {e}")),
        }
    }
    let h = &mut r.homeassistant;
    for e in &registry {
        let energy = stats.iter().any(|s| {
            s.statistic_id == e.entity_id
                && s.has_sum
                && s.statistics_unit_of_measurement
                    .as_deref()
                    .and_then(pwsync_ha::metadata::kwh_factor)
                    .is_some()
        });
        if energy && TESLA_PLATFORMS.contains(&e.platform.as_str()) {
            h.tesla_statistics
                .push(format!("{}: {}", e.platform, e.entity_id));
        }
    }
    match client.energy_get_prefs().await {
        Ok(prefs) => {
            let prefs = prefs.unwrap_or_else(dashboard::default_prefs);
            let registry: Vec<_> = registry
                .into_iter()
                .map(pwsync_config::target::registry_entity)
                .collect();
            let audit = dashboard::audit(&prefs, &cfg.site, &registry);
            r.warnings.extend(
                audit
                    .problems
                    .iter()
                    .map(|p| format!("Energy dashboard: {p}")),
            );
            r.homeassistant.energy_dashboard = Some(audit);
        }
        Err(e) => r.warnings.push(format!("Energy dashboard: {e}")),
    }
}

/// The first day with a statistic row of each of `ids`, from `since`'s month on: the first
/// month with rows (one small answer for years), then that month's days.
async fn first_days(
    client: &pwsync_ha::HaClient,
    ids: &[String],
    since: i64,
) -> Result<BTreeMap<String, i64>, pwsync_ha::HaError> {
    use pwsync_ha::{Period, StatType};
    let mut found = BTreeMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let now = chrono::Utc::now().timestamp();
    let month_before = since - 31 * 86_400;
    let months = client
        .statistics_during_period(
            month_before,
            now,
            ids,
            Period::Month,
            &[StatType::Sum],
            None,
        )
        .await?;
    for (id, rows) in months {
        let Some(month) = rows.first().map(|r| r.start_secs()) else {
            continue;
        };
        let days = client
            .statistics_during_period(
                month,
                month + 32 * 86_400,
                std::slice::from_ref(&id),
                Period::Day,
                &[StatType::Sum],
                None,
            )
            .await?;
        if let Some(day) = days.get(&id).and_then(|d| d.first()) {
            found.insert(id, day.start_secs());
        }
    }
    Ok(found)
}

/// Whether pwsync was tested with HA `version`, and which releases it was tested with.
pub fn tested_line(version: &str) -> String {
    let tested = pwsync_ha::TESTED_VERSIONS.join(", ");
    if pwsync_ha::is_tested(version) {
        format!("pwsync is tested with HA {version} (tested: {tested})")
    } else {
        format!("pwsync has not been tested with HA {version} (tested: {tested})")
    }
}

/// Log in to the broker as `serve` would (URL, TLS, user and password), under a client id of
/// its own so a running `serve` keeps its connection.
async fn mqtt(cfg: &Config, r: &mut Report) {
    let addr = match pwsync_mqtt::broker_address(&cfg.mqtt.url) {
        Ok(addr) => addr,
        Err(e) => {
            r.warnings.push(format!("MQTT: {e}"));
            return;
        }
    };
    let settings = pwsync_config::broker::settings(cfg, Some("doctor"), None, CONNECT_TIMEOUT);
    let (ok, state) = match pwsync_mqtt::Mqtt::connect(&settings).await {
        Ok(m) => {
            m.disconnect().await;
            (true, "login accepted")
        }
        Err(e) => {
            r.warnings.push(format!(
                "MQTT: {e} (`pwsync serve` needs the broker for the live sensors)"
            ));
            let state = match e {
                pwsync_mqtt::MqttError::Refused { .. } => "reachable, but it refused the login",
                pwsync_mqtt::MqttError::Tls { .. } => "TLS failed",
                _ => "unreachable",
            };
            (false, state)
        }
    };
    r.mqtt = Some((addr, ok, state.to_string()));
}

async fn recorder(cfg: &Config, r: &mut Report) {
    let Some(url) = &cfg.homeassistant.recorder_db else {
        return;
    };
    let opts = RecorderOptions {
        read_only: true,
        ..RecorderOptions::default()
    };
    match RecorderDb::open_with(url.expose(), opts).await {
        Ok(db) => {
            let status = match db.ha_status().await {
                Ok(s) => match s.refusal(false) {
                    None => "HA stopped: offline writes possible".to_string(),
                    Some(_) => "in use by HA: offline writes need HA stopped".to_string(),
                },
                Err(e) => format!("status unknown ({e})"),
            };
            r.recorder_db = Some(format!(
                "{}, schema version {}, {status}",
                db.engine().name(),
                db.schema_version()
            ));
            db.close().await;
        }
        Err(e) => r.problems.push(format!("recorder database: {e}")),
    }
}

fn next_action(r: &Report) -> String {
    let h = &r.homeassistant;
    if let Some(p) = r.problems.first() {
        return format!("fix the first problem: {p}");
    }
    if h.pwsync_statistics.is_empty() && !h.tesla_statistics.is_empty() {
        return "move the Tesla integration's history onto pwsync's meters: `pwsync migrate --dry-run`, then `pwsync migrate`".into();
    }
    if !h.pwsync_missing.is_empty() {
        return "fill HA's statistics from InfluxDB: `pwsync backfill --all --dry-run`, then `pwsync backfill --all`".into();
    }
    if let Some(a) = h
        .energy_dashboard
        .as_ref()
        .filter(|a| !a.missing.is_empty())
    {
        return format!(
            "put pwsync's meters into HA's Energy dashboard ({} missing there): `pwsync energy-dashboard --dry-run`, then `pwsync energy-dashboard`",
            a.missing.len()
        );
    }
    if r.mqtt.as_ref().is_some_and(|m| m.2.contains("refused")) {
        return "set the login the broker accepts in mqtt.username and mqtt.password (or mqtt.password_file), then `pwsync serve`".into();
    }
    if r.mqtt.as_ref().is_some_and(|m| !m.1) {
        return "start the MQTT broker HA uses and point mqtt.url at it, then `pwsync serve`"
            .into();
    }
    "prove the Energy dashboard right: `pwsync check` (and `pwsync repair` if it finds anything)"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untested_release_is_named_with_the_tested_ones() {
        let line = tested_line("2099.1.0");
        assert!(line.contains("not been tested with HA 2099.1.0"), "{line}");
        assert!(
            line.contains("2025.4.4") && line.contains("2026.11.0"),
            "{line}"
        );
        assert!(tested_line("2026.11.0").starts_with("pwsync is tested with HA 2026.11.0"));
    }
}
