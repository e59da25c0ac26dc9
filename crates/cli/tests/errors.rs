//! A configuration or argument mistake is an error that names its cause, through the `pwsync`
//! binary against real InfluxDB and Mosquitto: one line, exit 1, nothing written or published.

mod common;

use common::*;
use pwsync_mqtt::{Incoming, Mqtt, MqttSettings};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::or_skip;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const SCHEMA: &str = include_str!("../assets/ha-2025.4.4-recorder-sqlite.sql");
/// Nothing listens here: a server that is down.
const DOWN: &str = "http://127.0.0.1:1";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exit 1 and exactly one line on stderr, which contains every one of `needles`.
fn one_line_error(o: &Output, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {e}");
    assert_eq!(e.lines().count(), 1, "one line expected: {e:?}");
    for n in needles {
        assert!(e.contains(n), "the error should say {n:?}: {e}");
    }
    e
}

fn influx_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PWSYNC_INFLUXDB__URL", url.to_string()),
        ("PWSYNC_INFLUXDB__TIMEOUT_SECS", "5".into()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ]
}

fn with(
    base: &[(&'static str, String)],
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut v = base.to_vec();
    v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
    v
}

/// A real InfluxDB holding one simulated day, 2025-06-20.
fn influx_with_a_day() -> Option<InfluxServer> {
    let s = or_skip(InfluxServer::start())?;
    simulate(&s.url(), "2025-06-20", 1, 9);
    Some(s)
}

/// [`influx_with_a_day`], a broker, and the environment that points pwsync at both.
#[allow(clippy::type_complexity)]
fn influx_day_and_broker() -> Option<(InfluxServer, Mosquitto, Vec<(&'static str, String)>)> {
    or_skip(Mosquitto::available())?;
    let influx = influx_with_a_day()?;
    let broker = Mosquitto::start().unwrap();
    let env = with(
        &influx_env(&influx.url()),
        &[("PWSYNC_MQTT__URL", &broker.url())],
    );
    Some((influx, broker, env))
}

/// Every retained state under `pwsync/` the broker holds.
async fn retained_states(broker: &Mosquitto) -> Vec<(String, String)> {
    let mut m = Mqtt::connect(&MqttSettings {
        url: broker.url(),
        ca_file: None,
        username: None,
        password: None,
        client_id: format!("errors-test-{}", std::process::id()),
        configured_client_id: true,
        will: None,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    m.subscribe("pwsync/+/+/state").await.unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(Incoming::Message { topic, payload, .. }) =
            m.next(Duration::from_millis(200)).await
        {
            seen.push((topic, payload));
        }
    }
    m.disconnect().await;
    seen
}

/// Item 6: `serve` checks database, retention policy, measurement and every mapped field at
/// start, as `energy` does: a misspelled field was a lifetime meter of 0, exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_misspelled_name_in_the_influxdb_config_and_publishes_nothing() {
    let Some((_influx, broker, base)) = influx_day_and_broker() else {
        return;
    };
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "PWSYNC_INFLUXDB__FIELDS__HOME",
            "hom",
            &["field 'hom' does not exist", "influxdb.fields"],
        ),
        (
            "PWSYNC_INFLUXDB__DATABASE",
            "powerwal",
            &["database 'powerwal' does not exist"],
        ),
        (
            "PWSYNC_INFLUXDB__RETENTION_POLICY",
            "autogn",
            &["retention policy 'autogn' does not exist"],
        ),
        (
            "PWSYNC_INFLUXDB__MEASUREMENT",
            "htp",
            &["measurement 'htp' does not exist"],
        ),
    ];
    for (key, value, needles) in cases {
        let o = pwsync(&with(&base, &[(key, value)]), &["serve", "--once"]);
        let e = one_line_error(&o, needles);
        assert!(!e.contains("not executed"), "{key}: {e}");
    }
    let published: Vec<_> = retained_states(&broker)
        .await
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .collect();
    assert!(
        published.is_empty(),
        "no meter may be published: {published:?}"
    );
    // The same set-up with the right names publishes: the refusals were about the names.
    ok(pwsync(&base, &["serve", "--once"]));
    let home = retained_states(&broker)
        .await
        .into_iter()
        .find(|(t, _)| t == "pwsync/powerwall/home_usage/state")
        .map(|(_, p)| p.parse::<f64>().unwrap());
    assert!(home.is_some_and(|k| k > 1.0), "{home:?}");
}

/// Item 7: values InfluxDB cannot take are refused with the valid range before any request.
#[test]
fn values_outside_the_valid_range_are_refused_with_the_range() {
    let Some(influx) = or_skip(InfluxServer::start()) else {
        return;
    };
    let env = influx_env(&influx.url());
    for (start, end) in [("9999-01-01", "9999-01-02"), ("2262-04-01", "2262-04-12")] {
        let o = pwsync(&env, &["energy", "--start", start, "--end", end]);
        let e = one_line_error(&o, &["1677-09-22 to 2262-04-10"]);
        assert!(!e.contains("HTTP 400"), "{e}");
    }
    for days in ["30", "106751991167300", "9223372036854775807"] {
        let o = pwsync(&env, &["simulate", "--start", "2262-04-01", "--days", days]);
        one_line_error(&o, &["--days must be from 1 to 10", "2262-04-10"]);
    }
    // Nothing reached InfluxDB: simulate did not even create its database.
    let o = pwsync(
        &env,
        &["energy", "--start", "2025-01-01", "--end", "2025-01-01"],
    );
    one_line_error(&o, &["database 'powerwall' does not exist"]);
    for (key, value, needle) in [
        (
            "PWSYNC_LIMITS__MAX_POWER_KW",
            "0",
            "limits.max_power_kw must be a number above 0",
        ),
        (
            "PWSYNC_LIMITS__MAX_POWER_KW",
            "-3",
            "limits.max_power_kw must be a number above 0",
        ),
        (
            "PWSYNC_INFLUXDB__TIMEOUT_SECS",
            "0",
            "influxdb.timeout_secs must be at least 1",
        ),
    ] {
        let o = pwsync(
            &with(&env, &[(key, value)]),
            &["energy", "--start", "2025-01-01", "--end", "2025-01-01"],
        );
        one_line_error(&o, &[needle]);
    }
}

/// Item 8: days before the first or after the last InfluxDB point have no data: `null` and
/// "no data", never 0 kWh over 24/24 hours.
#[tokio::test(flavor = "multi_thread")]
async fn days_without_influxdb_data_are_no_data_not_zero() {
    let Some(influx) = influx_with_a_day() else {
        return;
    };
    let env = influx_env(&influx.url());
    let range = ["--start", "2025-06-18", "--end", "2025-06-22"];
    let json = ok(pwsync(
        &env,
        &[&["energy"][..], &range, &["--json"]].concat(),
    ));
    let days = json["days"].as_array().unwrap();
    assert_eq!(days.len(), 5, "{json}");
    for d in days {
        let with_data = d["date"] == "2025-06-20";
        for (field, kwh) in d["kwh"].as_object().unwrap() {
            if with_data {
                assert!(kwh.as_f64().is_some_and(|k| k >= 0.0), "{field}: {d}");
            } else {
                assert!(kwh.is_null(), "{field} must be null, not 0: {d}");
            }
        }
        assert_eq!(d["hours_with_data"] == 0, !with_data, "{d}");
        if !with_data {
            assert_eq!(d["complete"], false, "{d}");
        }
    }
    let o = pwsync(&env, &[&["energy"][..], &range].concat());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", stderr(&o));
    let row = text.lines().find(|l| l.contains("2025-06-18")).unwrap();
    assert!(
        row.contains("no data") && row.contains("0/24") && !row.contains("0.000"),
        "{text}"
    );
    assert!(
        text.contains("4 day(s) without any InfluxDB data"),
        "{text}"
    );

    // backfill's summary of a range before the first point: no data, not 0 kWh.
    let dir = tempfile::tempdir().unwrap();
    let db = recorder_db(dir.path(), false).await;
    let dburl = format!("sqlite://{}", db.display());
    let target = ["--target", "db", "--db", &dburl, "--dry-run"];
    let before = ["--start", "2025-06-17", "--end", "2025-06-18"];
    let json = ok(pwsync(
        &env,
        &[&["backfill"][..], &before, &target, &["--json"]].concat(),
    ));
    for f in json["fields"].as_array().unwrap() {
        assert!(f["kwh"].is_null(), "kWh must be null, not 0: {f}");
        assert_eq!(f["hours_with_data"], 0, "{f}");
    }
    let o = pwsync(&env, &[&["backfill"][..], &before, &target].concat());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", stderr(&o));
    let row = text
        .lines()
        .find(|l| l.contains("sensor.powerwall_home_usage"))
        .unwrap();
    assert!(row.contains("no data") && !row.contains("0.000"), "{text}");
}

/// Item 9: a malformed URL is named by its key at config load, not "builder error".
#[test]
fn a_malformed_url_is_named_by_its_key_before_any_request() {
    let energy = ["energy", "--start", "2025-01-01", "--end", "2025-01-01"];
    for (url, why) in [
        ("localhost", "no scheme"),
        ("http://localhost:99999", "invalid port"),
        ("ftp://localhost:8086", "unsupported scheme 'ftp'"),
        ("", "empty"),
    ] {
        let o = pwsync(&influx_env(url), &energy);
        let e = one_line_error(&o, &["invalid influxdb.url", why]);
        assert!(!e.contains("builder error"), "{e}");
    }
    let base = influx_env(DOWN);
    for (key, value, needle) in [
        (
            "PWSYNC_HOMEASSISTANT__URL",
            "homeassistant.local",
            "invalid homeassistant.url: no scheme",
        ),
        (
            "PWSYNC_MQTT__URL",
            "http://broker:1883",
            "invalid mqtt.url: unsupported scheme 'http'",
        ),
        (
            "PWSYNC_HOMEASSISTANT__RECORDER_DB",
            "/config/home-assistant_v2.db",
            "invalid homeassistant.recorder_db: no scheme",
        ),
    ] {
        let o = pwsync(&with(&base, &[(key, value)]), &energy);
        one_line_error(&o, &[needle]);
    }
}

/// Item 11: a measurement that is not there is named, not reported as a missing field.
#[test]
fn a_wrong_measurement_is_named_not_reported_as_a_missing_field() {
    let Some(influx) = influx_with_a_day() else {
        return;
    };
    let env = with(
        &influx_env(&influx.url()),
        &[("PWSYNC_INFLUXDB__MEASUREMENT", "htp")],
    );
    let o = pwsync(
        &env,
        &["energy", "--start", "2025-06-20", "--end", "2025-06-20"],
    );
    let e = one_line_error(
        &o,
        &[
            "measurement 'htp' does not exist in retention policy 'autogen'",
            "influxdb.measurement",
        ],
    );
    assert!(!e.contains("field"), "{e}");
}

/// Item 15: a bad argument is reported even when a server is down.
#[test]
fn argument_errors_come_before_network_errors() {
    let env = with(
        &influx_env(DOWN),
        &[
            ("PWSYNC_HOMEASSISTANT__URL", DOWN),
            ("PWSYNC_HOMEASSISTANT__TOKEN", "t"),
        ],
    );
    for args in [
        &["backfill", "--start", "2025-02-30"][..],
        &["backfill", "--all", "--end", "2025-02-30"],
    ] {
        let o = pwsync(&env, args);
        let e = one_line_error(&o, &["invalid date '2025-02-30'"]);
        assert!(!e.contains("reach"), "{e}");
    }
}

/// Item 15: `doctor` logs in as `serve` would; a refused login is said as such, not as
/// "unreachable (TCP connect only)".
#[tokio::test(flavor = "multi_thread")]
async fn doctor_says_the_broker_refused_the_login() {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start_with_login("pwsync", "right-password").unwrap();
    let base = with(
        &influx_env(DOWN),
        &[
            ("PWSYNC_MQTT__URL", &broker.url()),
            ("PWSYNC_MQTT__USERNAME", "pwsync"),
        ],
    );
    let mqtt_line = |password: &str| {
        let o = pwsync(
            &with(&base, &[("PWSYNC_MQTT__PASSWORD", password)]),
            &["doctor"],
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let line = out
            .lines()
            .find(|l| l.starts_with("MQTT broker"))
            .unwrap()
            .to_string();
        assert!(!line.contains("TCP connect only"), "{line}");
        line
    };
    let wrong = mqtt_line("wrong-password");
    assert!(
        wrong.contains("refused the login") && !wrong.contains("unreachable"),
        "{wrong}"
    );
    let right = mqtt_line("right-password");
    assert!(right.contains("login accepted"), "{right}");
}

/// A recorder database with the schema HA 2025.4.4 creates; `unclean`: its last run has no end.
async fn recorder_db(dir: &Path, unclean: bool) -> std::path::PathBuf {
    let db = dir.join("home-assistant_v2.db");
    let mut c = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA).execute(&mut c).await.unwrap();
    if unclean {
        sqlx::raw_sql(
            "INSERT INTO recorder_runs (start, \"end\", closed_incorrect, created) \
             VALUES ('2030-01-01 00:00:00', NULL, 0, '2030-01-01 00:00:00')",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    db
}

/// Item 15: "pwsync copies … before its first write" is said only once the refusals passed.
#[tokio::test(flavor = "multi_thread")]
async fn the_backup_note_appears_only_after_the_refusals_pass() {
    let Some(influx) = influx_with_a_day() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = recorder_db(dir.path(), true).await;
    let before = sha_file(&db);
    let dburl = format!("sqlite://{}", db.display());
    let args = [
        "backfill",
        "--start",
        "2025-06-20",
        "--end",
        "2025-06-20",
        "--target",
        "db",
        "--db",
        &dburl,
    ];
    let env = influx_env(&influx.url());
    let o = pwsync(&env, &args);
    let e = one_line_error(&o, &["has no end"]);
    assert!(!e.contains("pwsync copies"), "{e}");
    assert_eq!(sha_file(&db), before, "nothing written");
    // Allowed, the note comes (and the backup is made).
    let o = pwsync(&env, &[&args[..], &["--allow-unclean-shutdown"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("pwsync copies"), "{}", stderr(&o));
}

/// Item 15: a control character in an identifier is escaped, so the error stays one line and
/// cannot forge a line of its own.
#[test]
fn a_newline_in_an_identifier_stays_on_one_error_line() {
    let energy = ["energy", "--start", "2025-01-01", "--end", "2025-01-01"];
    let base = influx_env(DOWN);
    for (key, value, needle) in [
        (
            "PWSYNC_INFLUXDB__FIELDS__HOME",
            "ho\nerror: forged",
            "'ho\\nerror: forged'",
        ),
        ("PWSYNC_INFLUXDB__MEASUREMENT", "ht\rtp", "'ht\\rtp'"),
        (
            "PWSYNC_SITE",
            "cabin\nerror: forged",
            "cabin\\nerror: forged",
        ),
    ] {
        let o = pwsync(&with(&base, &[(key, value)]), &energy);
        one_line_error(&o, &[needle]);
    }
    let o = pwsync(
        &base,
        &[
            "energy",
            "--start",
            "2025-01-01\nerror: forged",
            "--end",
            "2025-01-01",
        ],
    );
    one_line_error(&o, &["invalid date '2025-01-01\\nerror: forged'"]);
}

/// Issue #25, item 6: a misspelled `PWSYNC_*` variable is an error naming the key it meant, as
/// a misspelled key in pwsync.toml is (it was ignored: the setting stayed at its default); the
/// program's own variables pass. Nothing is published.
#[tokio::test(flavor = "multi_thread")]
async fn a_misspelled_environment_variable_names_the_key_and_publishes_nothing() {
    let Some((_influx, broker, base)) = influx_day_and_broker() else {
        return;
    };
    let base = with(
        &base,
        &[
            ("PWSYNC_LOG", "warn"),
            ("PWSYNC_PROGRESS", "lines"),
            ("PWSYNC_TEST_HA", "2025.4.4"),
        ],
    );
    for (typo, meant) in [
        ("PWSYNC_SITEE", "PWSYNC_SITE"),
        ("PWSYNC_TIMEZONE", "PWSYNC_TIME_ZONE"),
        ("PWSYNC_MQTT_URL", "PWSYNC_MQTT__URL"),
    ] {
        let o = pwsync(&with(&base, &[(typo, "cabin")]), &["serve", "--once"]);
        one_line_error(&o, &[typo, &format!("did you mean {meant}?")]);
    }
    assert_eq!(retained_states(&broker).await, Vec::new());
    // Without the typo the same set-up publishes: the refusal was about the name.
    ok(pwsync(&base, &["serve", "--once"]));
    assert!(!retained_states(&broker).await.is_empty());
}
