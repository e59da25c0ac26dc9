//! `pwsync serve` against a real Mosquitto, a real InfluxDB and (for discovery) a real HA
//! (2025.4.4 or `PWSYNC_TEST_HA`) with its MQTT integration.

mod common;

use common::*;
use pwsync_ha::HaClient;
use pwsync_mqtt::{discovery, Incoming, Mqtt, MqttSettings};
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::or_skip;
use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const METERS: [&str; 6] = [
    "home_usage",
    "solar_generated",
    "grid_imported",
    "grid_exported",
    "battery_discharged",
    "battery_charged",
];

/// A June stretch whose surplus fills the battery and exports: late-autumn days may never export,
/// and a meter that is truly 0 would make "never publishes 0" prove nothing.
const SUMMER: (&str, u32) = ("2025-06-20", 2);

/// An empty InfluxDB and a broker, or `None` to skip where they are truly absent.
fn empty_servers_with_broker() -> Option<(InfluxServer, Mosquitto)> {
    or_skip(Mosquitto::available())?;
    let influx = or_skip(InfluxServer::start())?;
    Some((influx, Mosquitto::start().unwrap()))
}

/// InfluxDB with a summer stretch, the last two days and today simulated (up to the end of
/// today), every meter above 0, and a broker.
async fn servers_with_broker() -> Option<(InfluxServer, Mosquitto)> {
    let (influx, broker) = empty_servers_with_broker()?;
    simulate(&influx.url(), SUMMER.0, SUMMER.1, 9);
    let start = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    simulate(&influx.url(), &start, 3, 9);
    let summer_start = day_start(SUMMER.0);
    let summer_end = summer_start + i64::from(SUMMER.1) * 86_400;
    for field in pwsync_energy::Field::ALL {
        let kwh: f64 = influx_hourly(&influx.url(), field, summer_start, summer_end)
            .await
            .values()
            .sum();
        assert!(kwh > 0.0, "the fixture's {field:?} holds only {kwh} kWh");
    }
    Some((influx, broker))
}

fn env(influx: &InfluxServer, broker: &Mosquitto) -> Vec<(&'static str, String)> {
    vec![
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_INFLUXDB__TIMEOUT_SECS", "3".into()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_MQTT__URL", broker.url()),
        // Many serves at once: none of them takes the panel's default port.
        ("PWSYNC_WEB__LISTEN", String::new()),
    ]
}

/// A test's own MQTT client, subscribed to pwsync's topics.
async fn listener(broker: &Mosquitto) -> Mqtt {
    mqtt_listener(&broker.url(), "pwsync/#").await
}

fn meter_values(seen: &[(String, String)], key: &str) -> Vec<f64> {
    let topic = format!("pwsync/powerwall/{key}/state");
    seen.iter()
        .filter(|(t, p)| *t == topic && !p.is_empty())
        .map(|(_, p)| p.parse::<f64>().unwrap())
        .collect()
}

fn availability(seen: &[(String, String)]) -> Vec<&str> {
    seen.iter()
        .filter(|(t, _)| t == "pwsync/powerwall/availability")
        .map(|(_, p)| p.as_str())
        .collect()
}

fn spawn_serve(env: &[(&str, String)]) -> Child {
    spawn_serve_with(env, "1", "debug", Stdio::null())
}

/// `serve --interval SECS` with the log at `level` into `stderr`.

#[tokio::test(flavor = "multi_thread")]
async fn discovery_creates_every_entity_with_its_classes() {
    let Some((influx, broker)) = servers_with_broker().await else {
        return;
    };
    let ha = ha_with_broker(broker.port());
    let mut e = env(&influx, &broker);
    e.push(("PWSYNC_TIME_ZONE", "UTC".into()));
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    ok(pwsync(&e, &["serve", "--once"]));

    let c = ha_client(&ha);
    let states = wait_for_entities(&c, 31).await;
    let attr = |id: &str, a: &str| states[id]["attributes"][a].clone();
    for key in METERS {
        let id = format!("sensor.powerwall_{key}");
        assert_eq!(attr(&id, "device_class"), "energy", "{id}");
        assert_eq!(attr(&id, "state_class"), "total_increasing", "{id}");
        assert_eq!(attr(&id, "unit_of_measurement"), "kWh", "{id}");
        let state = states[&id]["state"].as_str().unwrap();
        let v: f64 = state
            .parse()
            .unwrap_or_else(|_| panic!("{id}: {state} {:?}", states[&id]));
        assert!(v > 0.0, "{id} = {v}");
        for period in ["today", "this_month"] {
            let id = format!("sensor.powerwall_{key}_{period}");
            assert_eq!(attr(&id, "state_class"), "total", "{id}");
            assert_eq!(attr(&id, "unit_of_measurement"), "kWh", "{id}");
            let reset = attr(&id, "last_reset");
            let reset = chrono::DateTime::parse_from_rfc3339(reset.as_str().unwrap()).unwrap();
            // Local midnight (the first of the month) in HA's zone, not pwsync's UTC.
            let local = reset.with_timezone(&tz());
            assert_eq!(chrono::Timelike::hour(&local), 0, "{id}: {reset}");
            if period == "this_month" {
                assert_eq!(chrono::Datelike::day(&local), 1, "{id}");
            }
        }
    }
    for key in [
        "load_power",
        "grid_power",
        "battery_power",
        "grid_export_power",
    ] {
        let id = format!("sensor.powerwall_{key}");
        assert_eq!(attr(&id, "device_class"), "power", "{id}");
        assert_eq!(attr(&id, "state_class"), "measurement", "{id}");
        assert_eq!(attr(&id, "unit_of_measurement"), "kW", "{id}");
        let state = states[&id]["state"].as_str().unwrap();
        assert!(state.parse::<f64>().is_ok(), "{id}: {state}");
    }
    assert_eq!(
        attr("sensor.powerwall_battery_level", "device_class"),
        "battery"
    );
    assert_eq!(
        attr("sensor.powerwall_battery_level", "unit_of_measurement"),
        "%"
    );
    assert_eq!(
        attr("sensor.powerwall_island_status", "device_class"),
        "enum"
    );
    let island = states["sensor.powerwall_island_status"]["state"]
        .as_str()
        .unwrap();
    assert!(
        ["on_grid", "off_grid", "syncing"].contains(&island),
        "{island}"
    );

    // Readings of the moment expire when no fresh value comes for three polls (here 3 × 2 s:
    // `--once` publishes a single time); meters and the island status keep their value. Each
    // entity runs its own expiry timer, so they go within moments of each other, not at once.
    const EXPIRING: [&str; 4] = ["load_power", "grid_power", "battery_level", "battery_state"];
    ok(pwsync(&e, &["serve", "--once", "--interval", "2"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let expired = loop {
        let now = pwsync_states(&c).await;
        let all_expired = EXPIRING
            .iter()
            .all(|key| now[&format!("sensor.powerwall_{key}")]["state"] == "unavailable");
        if all_expired || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for key in EXPIRING {
        let id = format!("sensor.powerwall_{key}");
        assert_eq!(expired[&id]["state"], "unavailable", "{id}");
    }
    for key in ["home_usage", "home_usage_today", "island_status"] {
        let id = format!("sensor.powerwall_{key}");
        let state = expired[&id]["state"].as_str().unwrap();
        assert!(
            !["unavailable", "unknown"].contains(&state),
            "{id}: {state}"
        );
    }

    // --uninstall removes them all.
    ok(pwsync(&e, &["serve", "--uninstall"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = pwsync_states(&c).await.len();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} entities left after --uninstall"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn pwsync_states(c: &HaClient) -> BTreeMap<String, serde_json::Value> {
    c.get_states()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.entity_id.starts_with("sensor.powerwall_"))
        .map(|s| (s.entity_id.clone(), serde_json::to_value(&s).unwrap()))
        .collect()
}

async fn wait_for_entities(c: &HaClient, n: usize) -> BTreeMap<String, serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states = pwsync_states(c).await;
        // Every meter available with a number (HA applies the retained availability after
        // creating the entity).
        let ready = states.len() >= n
            && METERS.iter().all(|k| {
                states
                    .get(&format!("sensor.powerwall_{k}"))
                    .and_then(|s| s["state"].as_str())
                    .is_some_and(|v| v.parse::<f64>().is_ok())
            });
        if ready {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "HA created {} of {n} entities: {:?}",
            states.len(),
            states.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_influxdb_outage_makes_sensors_unavailable_and_never_publishes_zero() {
    let Some((mut influx, broker)) = servers_with_broker().await else {
        return;
    };
    let mut m = listener(&broker).await;
    let mut serve = spawn_serve(&env(&influx, &broker));
    let mut seen = Vec::new();
    assert!(
        collect(&mut m, &mut seen, Duration::from_secs(60), |s| {
            meter_values(s, "home_usage").len() >= 2
        })
        .await,
        "serve published: {seen:?}"
    );
    let before = *meter_values(&seen, "home_usage").last().unwrap();

    // HA's birth message: serve publishes its discovery configs again.
    m.subscribe("homeassistant/sensor/pwsync_powerwall/+/config")
        .await
        .unwrap();
    let mut configs = Vec::new();
    collect(&mut m, &mut configs, Duration::from_secs(2), |_| false).await;
    m.publish("homeassistant/status", "online", false)
        .await
        .unwrap();
    let republished = collect(&mut m, &mut configs, Duration::from_secs(20), |s| {
        s.iter()
            .filter(|(t, _)| t.ends_with("/home_usage/config"))
            .count()
            >= 2
    })
    .await;
    assert!(republished, "discovery republished on HA's birth message");
    seen.extend(
        configs
            .into_iter()
            .filter(|(t, _)| t.starts_with("pwsync/")),
    );

    influx.stop();
    assert!(
        collect(&mut m, &mut seen, Duration::from_secs(60), |s| {
            availability(s).last() == Some(&"offline")
        })
        .await,
        "the sensors went unavailable: {:?}",
        availability(&seen)
    );
    let during = seen.len();
    influx.restart().unwrap();
    assert!(
        collect(&mut m, &mut seen, Duration::from_secs(60), |s| {
            availability(s).last() == Some(&"online")
                && meter_values(&s[during..], "home_usage").len() >= 2
        })
        .await,
        "serve came back: {:?}",
        availability(&seen)
    );
    stop(&mut serve);

    for key in METERS {
        let values = meter_values(&seen, key);
        assert!(!values.is_empty(), "{key}");
        assert!(
            values.iter().all(|v| *v > 0.0),
            "{key}: a 0 was published: {values:?}"
        );
        assert!(
            values.windows(2).all(|w| w[1] >= w[0]),
            "{key} went backwards: {values:?}"
        );
    }
    let after = *meter_values(&seen, "home_usage").last().unwrap();
    assert!(after >= before, "{after} < {before}");
    // Graceful stop: the last availability is offline.
    let mut tail = Vec::new();
    collect(&mut m, &mut tail, Duration::from_secs(3), |_| false).await;
    seen.extend(tail);
    assert_eq!(availability(&seen).last(), Some(&"offline"));
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_the_meter_never_starts_lower() {
    let Some((influx, broker)) = servers_with_broker().await else {
        return;
    };
    let e = env(&influx, &broker);
    ok(pwsync(&e, &["serve", "--once"]));
    let mut m = listener(&broker).await;
    let mut seen = Vec::new();
    collect(&mut m, &mut seen, Duration::from_secs(10), |s| {
        METERS.iter().all(|k| !meter_values(s, k).is_empty())
    })
    .await;
    let first: Vec<f64> = METERS
        .iter()
        .map(|k| *meter_values(&seen, k).last().unwrap())
        .collect();

    // InfluxDB loses its newest six hours (a revision, a restore from backup): computed from
    // the data alone, every meter would now be lower.
    let cut = chrono::Utc::now().timestamp() - 6 * 3600;
    let client = pwsync_influx::InfluxClient::new(pwsync_influx::InfluxConfig {
        url: influx.url(),
        ..Default::default()
    })
    .unwrap();
    client
        .execute(&format!("DELETE FROM \"http\" WHERE time >= {cut}s"))
        .await
        .unwrap();
    ok(pwsync(&e, &["serve", "--once"]));
    let mut again = Vec::new();
    collect(&mut m, &mut again, Duration::from_secs(10), |s| {
        METERS.iter().all(|k| !meter_values(s, k).is_empty())
    })
    .await;
    for (k, before) in METERS.iter().zip(first) {
        let after = meter_values(&again, k)[0];
        assert!(
            after >= before,
            "{k}: {after} after the restart, {before} before"
        );
    }
}

/// The seam between backfilled history and the live sensor, through HA's own compile. HA's
/// clock is set (libfaketime) to seven minutes before an hour boundary H1, so it compiles
/// one 5-minute row of the new live meter and then the hour before H1 within minutes of wall
/// time. History up to the hour before that is backfilled through the websocket (which cannot
/// write 5-minute rows: HA would start the live sum at 0, a negative hour of all history).
#[tokio::test(flavor = "multi_thread")]
async fn the_first_compiled_hour_after_a_backfill_equals_influxdb() {
    let Some((influx, broker)) = empty_servers_with_broker() else {
        return;
    };
    if or_skip(pwsync_testkit::ha::libfaketime()).is_none() {
        return;
    }
    let h1 = pwsync_energy::floor_hour(chrono::Utc::now().timestamp() - 15 * 60);
    let (hour_p, hour_h) = (h1 - 2 * 3600, h1 - 3600);
    let client = pwsync_influx::InfluxClient::new(pwsync_influx::InfluxConfig {
        url: influx.url(),
        ..Default::default()
    })
    .unwrap();
    // History up to and including the sample at the end of hour P.
    pwsync_influx::sim::create_schema(&client).await.unwrap();
    let mut sim = pwsync_influx::sim::Simulator::new(4, h1 - 2 * 86_400, tz());
    pwsync_influx::sim::write(&client, &mut sim, h1 - 2 * 86_400, hour_h + 60)
        .await
        .unwrap();

    // Seven minutes: HA start, the backfill and serve's first poll must all happen before HA's
    // 5-minute compile at H1 − 5 min (about 30 s here; slow machines get the rest as margin).
    let offset = (h1 - 420) - chrono::Utc::now().timestamp();
    let ha = HaInstance::start(HaOptions {
        clock_offset_secs: Some(offset),
        ..HaOptions::default()
            .with_time_zone(ZONE)
            .with_broker(broker.port())
    })
    .unwrap();
    let mut e = env(&influx, &broker);
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    let backfilled = ok(pwsync(&e, &["backfill", "--all", "--json"]));
    assert!(
        backfilled["rows"].as_u64().unwrap() >= 6 * 40,
        "{backfilled}"
    );
    // The live data of hour H, up to the sample at H1: the meter serve publishes is the
    // meter at H1.
    pwsync_influx::sim::write(&client, &mut sim, hour_h + 60, h1 + 60)
        .await
        .unwrap();
    let mut serve = spawn_serve(&e);

    let c = ha_client(&ha);
    let id = "sensor.powerwall_home_usage";
    let deadline = Instant::now() + Duration::from_secs(9 * 60);
    let rows = loop {
        let rows = ha_rows(&c, id, hour_p - 3600, h1 + 3600).await;
        if rows.iter().any(|r| r.start_secs() == hour_h) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "HA did not compile the hour before {h1}: {:?}\n{}",
            rows.iter().map(|r| r.start_secs()).collect::<Vec<_>>(),
            ha.log_tail(30)
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    stop(&mut serve);
    let energy = influx_hourly(&influx.url(), pwsync_energy::Field::Home, hour_p, h1).await;
    let change = |t: i64| {
        let i = rows.iter().position(|r| r.start_secs() == t).unwrap();
        rows[i].sum.unwrap() - rows[i - 1].sum.unwrap()
    };
    let (p, h) = (change(hour_p), change(hour_h));
    assert!(
        (p - energy[&hour_p]).abs() < 0.001,
        "the last backfilled hour kept its energy: {p} vs {}",
        energy[&hour_p]
    );
    assert!(
        (h - energy[&hour_h]).abs() < 0.001,
        "the first compiled hour: HA {h} kWh, InfluxDB {} kWh",
        energy[&hour_h]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_refuses_the_login_is_a_one_line_error() {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start_with_login("pwsync", "right-password").unwrap();
    let base = [
        ("PWSYNC_INFLUXDB__URL", "http://127.0.0.1:1".to_string()),
        ("PWSYNC_MQTT__URL", broker.url()),
        ("PWSYNC_MQTT__USERNAME", "pwsync".to_string()),
    ];
    let wrong = [
        &base[..],
        &[("PWSYNC_MQTT__PASSWORD", "wrong-password".to_string())],
    ]
    .concat();
    let o = pwsync(&wrong, &["serve", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused the login"), "{err}");
    assert!(
        !err.contains("wrong-password"),
        "no secret in the message: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The right password gets past the broker (and then fails on the missing InfluxDB: the
    // sensors are marked unavailable, nothing else is published).
    let right = [
        &base[..],
        &[("PWSYNC_MQTT__PASSWORD", "right-password".to_string())],
    ]
    .concat();
    let o = pwsync(&right, &["serve", "--once"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("refused the login") && err.contains("InfluxDB"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtts_trusts_the_configured_ca_and_refuses_another_in_one_line() {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start_with_tls().unwrap();
    let mut watch = listener(&broker).await;
    let with_ca = |ca: &std::path::Path| {
        vec![
            // No InfluxDB: past the broker, the poll fails and pwsync publishes `offline`.
            ("PWSYNC_INFLUXDB__URL", "http://127.0.0.1:1".to_string()),
            ("PWSYNC_MQTT__URL", broker.tls_url().unwrap()),
            ("PWSYNC_MQTT__CA_FILE", ca.display().to_string()),
        ]
    };

    // Another CA: the handshake fails, one line naming the setting, nothing published.
    let other = tempfile::tempdir().unwrap();
    let other_ca = pwsync_testkit::mosquitto::make_ca(other.path()).unwrap();
    let o = pwsync(&with_ca(&other_ca), &["serve", "--once"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("TLS") && err.contains("mqtt.ca_file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // A file that is no certificate: refused before connecting.
    let not_pem = other.path().join("ca.key.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let o = pwsync(&with_ca(&not_pem), &["serve", "--once"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let mut seen = Vec::new();
    collect(&mut watch, &mut seen, Duration::from_secs(1), |_| false).await;
    assert_eq!(availability(&seen), Vec::<&str>::new(), "{seen:?}");

    // The broker's CA: connected over TLS, the poll fails on InfluxDB, `offline` arrives.
    let o = pwsync(&with_ca(broker.ca_file().unwrap()), &["serve", "--once"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("TLS") && err.contains("InfluxDB"), "{err}");
    let published = collect(&mut watch, &mut seen, Duration::from_secs(10), |s| {
        availability(s).contains(&"offline")
    })
    .await;
    assert!(published, "pwsync published over mqtts: {seen:?}");
}

/// A site of the seam test: its own InfluxDB database, entity prefix and MQTT client.
struct Site {
    name: &'static str,
    /// Watts of the six fields at a minute, in `Field::ALL` order.
    power: fn(i64, i64) -> [f64; 6],
}

/// Every meter moving, each at its own varying rate.
fn moving(t: i64, _still_from: i64) -> [f64; 6] {
    let m = (t / 60 % 60) as f64;
    [
        1500.0 + 10.0 * m,
        800.0 + 5.0 * m,
        400.0 + m,
        250.0,
        300.0 + 2.0 * m,
        200.0,
    ]
}

/// Moving history, then every meter still from `still_from` on (a night: no solar, no grid,
/// battery idle, and here no load either).
fn still(t: i64, still_from: i64) -> [f64; 6] {
    if t >= still_from {
        [0.0; 6]
    } else {
        moving(t, still_from)
    }
}

/// One-minute points of `site` over `[start, end)` in its database, tagged as
/// Powerwall-Dashboard tags them (local month and year).
async fn write_site(
    c: &pwsync_influx::InfluxClient,
    site: &Site,
    start: i64,
    end: i64,
    still_from: i64,
) {
    let map = pwsync_influx::FieldMap::default();
    let mut lines = String::new();
    for t in (start..end).step_by(60) {
        let local = chrono::TimeZone::timestamp_opt(&tz(), t, 0).unwrap();
        let w = (site.power)(t, still_from);
        let fields: Vec<String> = pwsync_energy::Field::ALL
            .iter()
            .zip(w)
            .map(|(f, w)| format!("{}={w}", map.name(*f).as_str()))
            .collect();
        lines.push_str(&format!(
            "http,month={},year={} {},percentage=50 {t}\n",
            local.format("%b"),
            local.format("%Y"),
            fields.join(",")
        ));
    }
    c.write_lines("autogen", lines).await.unwrap();
}

fn site_env(base: &[(&'static str, String)], site: &Site) -> Vec<(&'static str, String)> {
    let mut e = base.to_vec();
    e.push(("PWSYNC_SITE", site.name.to_string()));
    e.push(("PWSYNC_INFLUXDB__DATABASE", site.name.to_string()));
    e.push(("PWSYNC_MQTT__CLIENT_ID", format!("pwsync-{}", site.name)));
    e
}

/// The seam, as a new user meets it: `backfill --all` up to the last hour HA compiled, then
/// `serve`, for two sites at once — every meter still since before the last backfilled hour
/// (the live reading equals the last `state`: the case the 6-decimal reading broke) and every
/// meter moving. HA's clock (libfaketime) starts seven minutes before the hour boundary H1 so
/// it compiles the first live hour within minutes. Then `serve` is stopped and started again in
/// the middle of the next hour, and HA, restarted with its clock 90 s before H2, compiles that
/// hour too. After each compile none of the twelve meters has a negative hour or a spike and
/// the compiled live hour holds InfluxDB's energy; at the end `check` is clean and `repair`
/// plans nothing, through the websocket and (HA stopped) on the recorder database.
///
/// The whole sequence lies in the past (H2 is at least 15 minutes ago): readings after now
/// are ignored everywhere, so the data of the second live hour must be history already.
#[tokio::test(flavor = "multi_thread")]
async fn the_seam_holds_for_still_and_moving_meters_through_ha_compile_check_and_repair() {
    let Some((influx, broker)) = empty_servers_with_broker() else {
        return;
    };
    if !std::path::Path::new(pwsync_testkit::ha::LIBFAKETIME).is_file() {
        assert!(std::env::var_os("CI").is_none(), "CI must install faketime");
        return eprintln!("skipping: apt-get install faketime");
    }
    let sites = [
        Site {
            name: "still",
            power: still,
        },
        Site {
            name: "moving",
            power: moving,
        },
    ];
    let h2 = pwsync_energy::floor_hour(chrono::Utc::now().timestamp() - 15 * 60);
    let h1 = h2 - 3600;
    let (hour_p, hour_h) = (h1 - 2 * 3600, h1 - 3600);
    let history = h1 - 86_400;
    let still_from = hour_p - 1800;
    let clients: Vec<pwsync_influx::InfluxClient> = sites
        .iter()
        .map(|s| {
            pwsync_influx::InfluxClient::new(pwsync_influx::InfluxConfig {
                url: influx.url(),
                database: s.name.to_string(),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    for (c, s) in clients.iter().zip(&sites) {
        pwsync_influx::sim::create_schema(c).await.unwrap();
        write_site(c, s, history, hour_h + 60, still_from).await;
    }

    let mut ha = HaInstance::start(HaOptions {
        clock_offset_secs: Some(clock_offset_to(h1 - 420)),
        ..HaOptions::default()
            .with_time_zone(ZONE)
            .with_broker(broker.port())
    })
    .unwrap();
    let mut base = env(&influx, &broker);
    base.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    base.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    let mut serves = Vec::new();
    for (c, s) in clients.iter().zip(&sites) {
        let e = site_env(&base, s);
        let backfilled = ok(pwsync(&e, &["backfill", "--all", "--json"]));
        assert!(
            backfilled["rows"].as_u64().unwrap() >= 6 * 20,
            "{backfilled}"
        );
        // The live data of hour H up to the sample at H1: serve publishes the meter at H1.
        write_site(c, s, hour_h + 60, h1 + 60, still_from).await;
        serves.push(spawn_serve(&e));
    }

    let hc = ha_client(&ha);
    let ids: Vec<(usize, pwsync_energy::Field, String)> = sites
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            pwsync_energy::Field::ALL
                .into_iter()
                .map(move |f| (i, f, format!("sensor.{}_{}", s.name, f.sensor_key())))
        })
        .collect();
    wait_compiled(&ha, &ids, hour_h).await;
    let states_h1 = seam_holds(&hc, &ids, &clients, history, hour_h).await;

    // serve stopped and started again in the middle of hour H1's data...
    for s in &mut serves {
        stop(s);
    }
    for (c, s) in clients.iter().zip(&sites) {
        write_site(c, s, h1 + 60, h1 + 1800, still_from).await;
    }
    serves = sites
        .iter()
        .map(|s| spawn_serve(&site_env(&base, s)))
        .collect();
    for (c, s) in clients.iter().zip(&sites) {
        write_site(c, s, h1 + 1800, h2 + 60, still_from).await;
    }
    // ...publishes the meter at H2: the state at H1 plus InfluxDB's energy of the hour.
    let mut at_h2 = BTreeMap::new();
    for (i, f, id) in &ids {
        let e = influx_energy(&clients[*i], *f, h1, h2).await[&h1];
        at_h2.insert(id.clone(), states_h1[id] + e);
    }
    wait_states(&hc, &at_h2).await;

    // HA restarted with its clock 90 s before H2 compiles the hour serve's restart was in.
    // Its clock jumps ~50 minutes past its last clean stop, longer than HA trusts a stop as
    // recent, so it warns that it cannot validate the clean shutdown: provoked here.
    pwsync_testkit::ha_log::expect(
        &ha.config_dir().with_file_name("hass.out"),
        "could not validate that the sqlite3 database",
    );
    ha.set_clock_offset(Some(clock_offset_to(h2 - 90)));
    ha.restart_async().await.unwrap();
    let hc = ha_client(&ha);
    wait_compiled(&ha, &ids, h1).await;
    seam_holds(&hc, &ids, &clients, history, h1).await;

    for s in &sites {
        let e = site_env(&base, s);
        let o = pwsync(&e, &["check", "--json"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: check: {}{}",
            s.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let r = ok(pwsync(&e, &["repair", "--dry-run", "--json"]));
        assert_eq!(r["rows"], 0, "{}: websocket repair plans {r}", s.name);
    }
    for s in &mut serves {
        stop(s);
    }
    ha.stop().unwrap();
    let db = format!("sqlite:///{}", ha.db_path().display());
    for s in &sites {
        let mut e = site_env(&base, s);
        e.push(("PWSYNC_HOMEASSISTANT__RECORDER_DB", db.clone()));
        let o = pwsync(&e, &["check", "--json", "--target", "db"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: check --target db: {}{}",
            s.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let r = ok(pwsync(
            &e,
            &["repair", "--target", "db", "--dry-run", "--json"],
        ));
        assert_eq!(r["rows"], 0, "{}: repair --target db plans {r}", s.name);
    }
}

/// The libfaketime offset that puts HA's clock at `t` now.
fn clock_offset_to(t: i64) -> i64 {
    t - chrono::Utc::now().timestamp()
}

/// InfluxDB's hourly energy of `field` over `[start, end)`, in kWh by hour start.
async fn influx_energy(
    c: &pwsync_influx::InfluxClient,
    field: pwsync_energy::Field,
    start: i64,
    end: i64,
) -> BTreeMap<i64, f64> {
    let e = c
        .energy(
            &pwsync_influx::FieldMap::default(),
            &[field],
            start,
            end,
            3600,
            300,
        )
        .await
        .unwrap();
    e[&field]
        .buckets
        .iter()
        .map(|b| (b.start, b.wh / 1000.0))
        .collect()
}

/// Wait (up to 10 minutes) until HA has compiled the hour starting at `hour` for every meter.
async fn wait_compiled(ha: &HaInstance, ids: &[(usize, pwsync_energy::Field, String)], hour: i64) {
    let hc = ha_client(ha);
    let deadline = Instant::now() + Duration::from_secs(10 * 60);
    for (_, _, id) in ids {
        loop {
            let rows = ha_rows(&hc, id, hour - 3600, hour + 7200).await;
            if rows.iter().any(|r| r.start_secs() == hour) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "HA did not compile {id}'s hour at {hour}\n{}",
                ha.log_tail(30)
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// Every meter's compiled chain since `history` has no negative hour and no spike, and the
/// compiled hour at `hour` holds InfluxDB's energy. Returns each meter's `state` of that hour
/// (its reading at the hour's end).
async fn seam_holds(
    hc: &HaClient,
    ids: &[(usize, pwsync_energy::Field, String)],
    clients: &[pwsync_influx::InfluxClient],
    history: i64,
    hour: i64,
) -> BTreeMap<String, f64> {
    let mut states = BTreeMap::new();
    for (i, f, id) in ids {
        let rows = ha_rows(hc, id, history - 3600, hour + 7200).await;
        let energy = influx_energy(&clients[*i], *f, hour, hour + 3600).await;
        for w in rows.windows(2) {
            let change = w[1].sum.unwrap() - w[0].sum.unwrap();
            assert!(
                (-1e-6..=30.0).contains(&change),
                "{id}: {change} kWh in the hour at {}: {:?}",
                w[1].start_secs(),
                rows.iter()
                    .map(|r| (r.start_secs(), r.state, r.sum))
                    .collect::<Vec<_>>()
            );
        }
        let k = rows.iter().position(|r| r.start_secs() == hour).unwrap();
        let h = rows[k].sum.unwrap() - rows[k - 1].sum.unwrap();
        eprintln!(
            "{id}: live hour at {hour}: {h:.6} kWh, InfluxDB {:.6} kWh",
            energy[&hour]
        );
        assert!(
            (h - energy[&hour]).abs() < 0.001,
            "{id}: the compiled hour at {hour}: HA {h} kWh, InfluxDB {} kWh",
            energy[&hour]
        );
        states.insert(id.clone(), rows[k].state.unwrap());
    }
    states
}

/// Wait (up to 2 minutes) until HA's state of every meter is the expected reading (kWh).
async fn wait_states(hc: &HaClient, want: &BTreeMap<String, f64>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let states: BTreeMap<String, serde_json::Value> = hc
            .get_states()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| want.contains_key(&s.entity_id))
            .map(|s| (s.entity_id.clone(), serde_json::to_value(&s).unwrap()))
            .collect();
        let off: Vec<String> = want
            .iter()
            .filter(|(id, v)| {
                let got = states
                    .get(*id)
                    .and_then(|s| s["state"].as_str())
                    .and_then(|s| s.parse::<f64>().ok());
                !got.is_some_and(|g| (g - **v).abs() < 0.001)
            })
            .map(|(id, v)| {
                format!(
                    "{id}: want {v}, HA has {:?}",
                    states.get(id).map(|s| &s["state"])
                )
            })
            .collect();
        if off.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "serve's readings after its restart:\n{}",
            off.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn lines_with(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Serve's log lines about jobs and the seam, for a failure message.
fn serve_log(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let keep = [
        "seam",
        "started",
        "succeeded",
        "failed",
        "finding",
        "written",
    ];
    text.lines()
        .filter(|l| keep.iter().any(|k| l.contains(k)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn buttons_and_the_daily_check_run_jobs_whose_results_ha_shows() {
    let Some((influx, broker)) = servers_with_broker().await else {
        return;
    };
    let ha = ha_with_broker(broker.port());
    let c = ha_client(&ha);
    // The daily check at the next whole minute at least 45 s away, in HA's zone.
    let t0 = chrono::Utc::now().timestamp();
    let daily = (t0 + 45 + 59) / 60 * 60;
    let daily_local = chrono::DateTime::from_timestamp(daily, 0)
        .unwrap()
        .with_timezone(&tz())
        .format("%H:%M")
        .to_string();
    let mut e = env(&influx, &broker);
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    e.push(("PWSYNC_SERVE__CHECK_DAILY_AT", daily_local.clone()));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    // Its log (info) into a file, for the lines the test looks for.
    // Debug for pwsync: the seam guard's reasons when it leaves a seam alone.
    let mut serve = spawn_serve_with(
        &e,
        "2",
        "info,pwsync=debug",
        std::fs::File::create(&log).unwrap().into(),
    );

    // The controls appear, nothing has run yet.
    let idle = wait_entity(
        &c,
        "sensor.powerwall_last_job",
        Duration::from_secs(60),
        |s| s.state == "idle",
    )
    .await;
    assert_eq!(idle.attributes["device_class"], "enum", "{idle:?}");
    for b in ["check_history", "repair_history", "backfill_missing"] {
        wait_entity(
            &c,
            &format!("button.powerwall_{b}"),
            Duration::from_secs(30),
            |s| s.state != "unavailable",
        )
        .await;
    }
    let history = wait_entity(
        &c,
        "binary_sensor.powerwall_history_ok",
        Duration::from_secs(30),
        |_| true,
    )
    .await;
    assert_eq!(history.attributes["device_class"], "problem");

    // The daily check runs by itself at its time, and says what it found: HA has no
    // statistics of pwsync's meters yet, so nothing disagrees (the CLI says the same).
    let done = job_done(&c, "check", t0).await;
    assert_eq!(done.state, "succeeded", "{done:?}");
    assert_eq!(done.attributes["trigger"], "daily", "{done:?}");
    let finished =
        chrono::DateTime::parse_from_rfc3339(done.attributes["finished"].as_str().unwrap())
            .unwrap()
            .timestamp();
    assert!(
        finished >= daily,
        "ran at {finished}, due at {daily} ({daily_local})"
    );
    let cli = ok_or_problems(pwsync(&e, &["check", "--json"]));
    let problems = c_state(&c, "sensor.powerwall_history_problems").await;
    assert_eq!(
        problems.state,
        cli["problems"].to_string(),
        "{problems:?} vs {cli}"
    );
    let last_check = c_state(&c, "sensor.powerwall_last_check").await;
    assert_eq!(last_check.attributes["device_class"], "timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&last_check.state).is_ok(),
        "{last_check:?}"
    );

    // "Backfill missing hours": every hour InfluxDB has, then a clean check.
    let t = chrono::Utc::now().timestamp();
    press(&c, &["backfill_missing"]).await;
    let done = job_done(&c, "backfill", t).await;
    assert_eq!(done.state, "succeeded", "{done:?}");
    assert_eq!(done.attributes["trigger"], "button");
    let rows = done.attributes["rows_written"]
        .as_u64()
        .unwrap_or_else(|| panic!("{done:?}"));
    let now = chrono::Utc::now().timestamp();
    let hours = ha_rows(&c, HOME, now - 3 * 86_400, now).await.len();
    assert!(
        hours >= 24 && rows >= 6 * hours as u64,
        "{rows} rows, {hours} hours: {done:?}"
    );
    assert_eq!(
        c_state(&c, "sensor.powerwall_history_problems").await.state,
        "0"
    );
    assert_eq!(
        c_state(&c, "binary_sensor.powerwall_history_ok")
            .await
            .state,
        "off"
    );

    // Damage one hour: 25 kWh too much in the home meter. "Check history" finds that hour.
    // An hour in the middle of what the backfill wrote (InfluxDB's own gaps have no row).
    let written = ha_rows(&c, HOME, now - 2 * 86_400, now).await;
    let hour = written[written.len() / 2].start_secs();
    let sum_at = |rows: &[pwsync_ha::StatValue]| {
        rows.iter()
            .find(|r| r.start_secs() == hour)
            .and_then(|r| r.sum)
    };
    let before = sum_at(&ha_rows(&c, HOME, hour, hour + 3600).await).expect("backfilled hour");
    c.adjust_sum_statistics(HOME, hour, 25.0, "kWh")
        .await
        .unwrap();
    // HA queues the adjustment like an import: the check must not run before it lands.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sum_at(&ha_rows(&c, HOME, hour, hour + 3600).await) != Some(before + 25.0) {
        assert!(Instant::now() < deadline, "the adjustment never landed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = chrono::Utc::now().timestamp();
    press(&c, &["check_history"]).await;
    let done = job_done(&c, "check", t).await;
    assert_eq!(done.state, "succeeded", "{done:?}");
    let problems = c_state(&c, "sensor.powerwall_history_problems").await;
    assert_ne!(problems.state, "0", "{problems:?}");
    let listed = problems.attributes["problems"].as_array().unwrap();
    let damaged = chrono::DateTime::from_timestamp(hour, 0)
        .unwrap()
        .with_timezone(&tz())
        .to_rfc3339();
    assert!(
        listed
            .iter()
            .any(|p| p["statistic"] == HOME && p["hour"] == damaged.as_str()),
        "{damaged} not in {listed:?}"
    );
    assert_eq!(
        c_state(&c, "binary_sensor.powerwall_history_ok")
            .await
            .state,
        "on"
    );

    // "Repair history" puts it right, and the check that ends the job says so.
    let t = chrono::Utc::now().timestamp();
    press(&c, &["repair_history"]).await;
    let done = job_done(&c, "repair", t).await;
    assert_eq!(done.state, "succeeded", "{done:?}");
    assert!(
        done.attributes["rows_written"].as_u64().unwrap() > 0,
        "{done:?}"
    );
    let after = c_state(&c, "sensor.powerwall_history_problems").await;
    assert_eq!(after.state, "0", "{after:?}\n{}", serve_log(&log));
    assert_eq!(
        c_state(&c, "binary_sensor.powerwall_history_ok")
            .await
            .state,
        "off"
    );
    // The CLI agrees. HA's 5-minute compile may meanwhile start a new sum after the repaired
    // rows; serve's seam guard moves it within 20 s, so the CLI gets that long to see it clean.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cli = ok_or_problems(pwsync(&e, &["check", "--json"]));
        if cli["problems"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{cli}\n{}", serve_log(&log));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    // Two presses at once: one job runs, the other is refused with a reason in the log.
    let started_before = lines_with(&log, "started (button)");
    let t = chrono::Utc::now().timestamp();
    press(&c, &["check_history", "backfill_missing"]).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines_with(&log, "refused") == 0 {
        assert!(Instant::now() < deadline, "no refusal logged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ran = wait_entity(
        &c,
        "sensor.powerwall_last_job",
        Duration::from_secs(120),
        |s| {
            s.state == "succeeded"
                && s.attributes["finished"].as_str().is_some_and(|f| {
                    chrono::DateTime::parse_from_rfc3339(f).is_ok_and(|f| f.timestamp() >= t)
                })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(lines_with(&log, "started (button)") - started_before, 1);
    assert_eq!(lines_with(&log, "refused"), 1, "{ran:?}");

    // Stopped and uninstalled, the controls leave HA with the sensors.
    stop(&mut serve);
    ok(pwsync(&e, &["serve", "--uninstall"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> = c
            .get_states()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.entity_id)
            .filter(|id| id.contains(".powerwall_"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after --uninstall: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn c_state(c: &HaClient, id: &str) -> pwsync_ha::EntityState {
    wait_entity(c, id, Duration::from_secs(10), |_| true).await
}

/// `check --json`'s report, whether it found problems (exit 3) or not (exit 0).
fn ok_or_problems(o: std::process::Output) -> serde_json::Value {
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Publish `payload` on `topic` as a client of its own (MQTT 3.1.1 over a plain socket, QoS 0):
/// pwsync's own client refuses to send more than 1 MiB, and a test needs bigger messages.
fn raw_publish(broker: &Mosquitto, topic: &str, payload: &[u8], retain: bool) {
    use std::io::{Read, Write};
    fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n % 128) as u8;
            n /= 128;
            out.push(if n > 0 { byte | 0x80 } else { byte });
            if n == 0 {
                return;
            }
        }
    }
    let id = format!("raw-publish-{}", std::process::id());
    let mut connect = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
        0,
        30,
        0,
        id.len() as u8,
    ];
    connect.extend_from_slice(id.as_bytes());
    let mut publish = (topic.len() as u16).to_be_bytes().to_vec();
    publish.extend_from_slice(topic.as_bytes());
    publish.extend_from_slice(payload);
    let mut bytes = Vec::new();
    for (header, body) in [(0x10, connect), (0x30 | u8::from(retain), publish)] {
        bytes.push(header);
        remaining_length(body.len(), &mut bytes);
        bytes.extend_from_slice(&body);
    }
    bytes.extend_from_slice(&[0xE0, 0x00]); // DISCONNECT
    let mut s = std::net::TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    s.write_all(&bytes).unwrap();
    // The broker closes the socket once it has handled the DISCONNECT (after the PUBLISH).
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.starts_with(&[0x20, 0x02, 0, 0]), "CONNACK: {rest:?}");
}

/// The retained message on `topic`, if the broker holds one.
async fn retained_on(broker: &Mosquitto, topic: &str) -> Option<String> {
    let mut m = listener(broker).await;
    m.subscribe(topic).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(Incoming::Message {
            topic: t,
            payload,
            retained: true,
        }) = m.next(Duration::from_millis(200)).await
        {
            if t == topic {
                m.disconnect().await;
                return Some(payload);
            }
        }
    }
    m.disconnect().await;
    None
}

/// The log once it holds `needle` (a failed test after `timeout`).
fn wait_log(log: &std::path::Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in serve's log within {timeout:?}:\n{}",
            short_log(&text)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A log for a failure message: its first 4000 characters.
fn short_log(text: &str) -> &str {
    &text[..text.char_indices().nth(4000).map_or(text.len(), |(i, _)| i)]
}

/// Lines of the broker connection dropping, in either wording.
const RECONNECTS: [&str; 3] = [
    "closed the connection",
    "connection lost",
    "connected again",
];

fn reconnect_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| RECONNECTS.iter().any(|r| l.contains(r)))
        .collect()
}

/// serve with its jobs, for an HA that has no MQTT integration: it answers serve's websocket
/// (serve waits for HA before it publishes), but never sends a birth message that would make
/// serve publish discovery again.
fn env_with_jobs(
    influx: &InfluxServer,
    broker: &Mosquitto,
    ha: &HaInstance,
) -> Vec<(&'static str, String)> {
    let mut e = env(influx, broker);
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    e.push(("PWSYNC_SERVE__CHECK_DAILY_AT", String::new()));
    e
}

/// Issue #25, item 4: a command someone left retained never runs (it would at every start) and
/// is cleared; messages far over the limit (3 MB, over the 1 MiB the client used to refuse, which
/// dropped the connection for good: the retained message came back at every reconnect) are
/// dropped with a line that does not carry them. Item 6: at the default level the log says that
/// serve connected and what it published, without colour codes in a file.
#[tokio::test(flavor = "multi_thread")]
async fn a_retained_command_never_runs_and_an_oversized_message_breaks_nothing() {
    let Some((influx, broker)) = servers_with_broker().await else {
        return;
    };
    raw_publish(&broker, "pwsync/powerwall/command", b"check", true);
    raw_publish(&broker, "homeassistant/status", &vec![b'x'; 3 << 20], true);
    assert_eq!(
        retained_on(&broker, "pwsync/powerwall/command")
            .await
            .as_deref(),
        Some("check")
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let mut serve = spawn_serve_with(
        &env_with_jobs(&influx, &broker, &ha),
        "2",
        "", // the default level
        std::fs::File::create(&log).unwrap().into(),
    );
    let t0 = Instant::now();
    wait_log(&log, "ignored a retained command", Duration::from_secs(60));
    let text = wait_log(&log, "on homeassistant/status", Duration::from_secs(30));
    assert_eq!(
        retained_on(&broker, "pwsync/powerwall/command").await,
        None,
        "the retained command is cleared"
    );
    // A live message far over the limit on the command topic is dropped, then a live `check`
    // runs: the commands are listened to, and the retained one would have run.
    raw_publish(
        &broker,
        "pwsync/powerwall/command",
        &vec![b'y'; 100_000],
        false,
    );
    wait_log(
        &log,
        "dropped a message of 100000 bytes",
        Duration::from_secs(30),
    );
    assert!(!text.contains("check started"), "{}", short_log(&text));
    raw_publish(&broker, "pwsync/powerwall/command", b"check", false);
    wait_log(&log, "check started (button)", Duration::from_secs(30));
    // Some polls later: still the first connection, discovery published once.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(t0.elapsed()));
    stop(&mut serve);
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!("serve's log at the default level:\n{}", short_log(&text));
    assert_eq!(reconnect_lines(&text), Vec::<&str>::new());
    let lines_with = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines_with("ignored a retained command"), 1);
    assert_eq!(
        lines_with("dropped a message of 3145728 bytes on homeassistant/status"),
        1
    );
    assert_eq!(lines_with("check started"), 1);
    let address = format!(
        "connected to the MQTT broker at 127.0.0.1:{}",
        broker.port()
    );
    assert_eq!(lines_with(&address), 1, "{}", short_log(&text));
    let published = format!(
        "published {} sensors and {} controls to HA",
        discovery::catalogue().len(),
        discovery::controls().len()
    );
    assert_eq!(lines_with(&published), 1, "{}", short_log(&text));
    assert!(!text.contains("xxxxxxxxxx") && !text.contains("yyyyyyyyyy"));
    assert!(text.len() < 20_000, "{} bytes of log", text.len());
    assert!(!text.contains('\u{1b}'), "no colour codes in a file");
}

/// Issue #25, item 6: every process has its own client id, so `serve --once` (twice, at the
/// same time) beside a running daemon does not take the daemon's connection; a configured id
/// that another client takes is named in the log.
#[tokio::test(flavor = "multi_thread")]
async fn serve_once_beside_a_daemon_does_not_take_its_connection() {
    let Some((influx, broker)) = servers_with_broker().await else {
        return;
    };
    let e = env(&influx, &broker);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let file = || std::fs::File::create(&log).unwrap().into();
    let mut serve = spawn_serve_with(&e, "2", "", file());
    let sensors = format!("published {} sensors to HA", discovery::catalogue().len());
    wait_log(&log, &sensors, Duration::from_secs(60));
    let mut watch = listener(&broker).await;
    let once = || {
        let e = e.clone();
        std::thread::spawn(move || pwsync(&e, &["serve", "--once"]))
    };
    let runs = [once(), once()];
    for run in runs {
        ok(run.join().unwrap());
    }
    let mut seen = Vec::new();
    collect(&mut watch, &mut seen, Duration::from_secs(5), |_| false).await;
    stop(&mut serve);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(reconnect_lines(&text), Vec::<&str>::new());
    assert!(
        !availability(&seen).contains(&"offline"),
        "{:?}",
        availability(&seen)
    );
    assert!(
        !meter_values(&seen, "home_usage").is_empty(),
        "the daemon publishes"
    );

    // The same id twice: only a configured one can be, and the log names the likely cause.
    let mut fixed = e.clone();
    fixed.push(("PWSYNC_MQTT__CLIENT_ID", "garage-pwsync".into()));
    let mut serve = spawn_serve_with(&fixed, "2", "", file());
    wait_log(&log, "as client garage-pwsync", Duration::from_secs(60));
    let other = Mqtt::connect(&MqttSettings {
        url: broker.url(),
        ca_file: None,
        username: None,
        password: None,
        client_id: "garage-pwsync".into(),
        configured_client_id: true,
        will: None,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let text = wait_log(&log, "reconnecting", Duration::from_secs(30));
    other.disconnect().await;
    stop(&mut serve);
    assert!(
        text.contains(
            "closed the connection: most likely another client connected with the same client \
             id \"garage-pwsync\" (mqtt.client_id)"
        ),
        "{}",
        short_log(&text)
    );
}

/// Issue #25, item 6: colour codes only on a terminal (`script` gives serve one), and not with
/// `NO_COLOR`; a pipe (`docker logs`, a file) gets none.
#[tokio::test(flavor = "multi_thread")]
async fn warnings_are_coloured_only_on_a_terminal_without_no_color() {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start().unwrap();
    // HA and InfluxDB down: a warning (HA not reachable), then the poll's error.
    let env = [
        ("PWSYNC_MQTT__URL", broker.url()),
        ("PWSYNC_INFLUXDB__URL", "http://127.0.0.1:1".to_string()),
        (
            "PWSYNC_HOMEASSISTANT__URL",
            "http://127.0.0.1:1".to_string(),
        ),
        ("PWSYNC_HOMEASSISTANT__TOKEN", "no-ha-here".to_string()),
    ];
    let on_terminal = |no_color: bool| {
        let line = format!("{} serve --once", env!("CARGO_BIN_EXE_pwsync"));
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    let coloured = on_terminal(false);
    assert!(
        coloured.contains("cannot reach Home Assistant") && coloured.contains("\u{1b}["),
        "{coloured:?}"
    );
    let plain = on_terminal(true);
    assert!(
        plain.contains("cannot reach Home Assistant") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );
    let piped = String::from_utf8_lossy(&pwsync(&env, &["serve", "--once"]).stderr).into_owned();
    assert!(
        piped.contains("cannot reach Home Assistant") && !piped.contains('\u{1b}'),
        "{piped:?}"
    );
}
