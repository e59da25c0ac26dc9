//! `pwsync serve` started in any order (a compose stack, a boot): against a real Mosquitto that
//! comes up after it and a real InfluxDB whose database does not exist yet.

mod common;

use common::*;
use pwsync_mqtt::{Incoming, Mqtt, MqttSettings};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::or_skip;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `pwsync health` for the state directory `dir`: (healthy, what it said).
fn health(dir: &std::path::Path) -> (bool, String) {
    let o = pwsync(
        &[("PWSYNC_STATE_DIR", dir.display().to_string())],
        &["health"],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), said)
}

/// Wait until `health` says something containing every one of `needles`.
fn health_says(dir: &std::path::Path, needles: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (healthy, said) = health(dir);
        if needles.iter().all(|n| said.contains(n)) {
            assert!(!healthy, "healthy while waiting: {said}");
            return said;
        }
        assert!(
            Instant::now() < deadline,
            "health never said {needles:?}; last: {said}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

async fn listener(port: u16) -> Mqtt {
    let m = Mqtt::connect(&MqttSettings {
        url: format!("mqtt://127.0.0.1:{port}"),
        ca_file: None,
        username: None,
        password: None,
        client_id: format!("test-start-{}", std::process::id()),
        will: None,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    m.subscribe("#").await.unwrap();
    m
}

/// Every (topic, payload) the listener gets within `d`, or until `until` holds.
async fn gather(
    m: &mut Mqtt,
    seen: &mut Vec<(String, String)>,
    d: Duration,
    until: impl Fn(&[(String, String)]) -> bool,
) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if let Some(Incoming::Message { topic, payload, .. }) =
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

fn configs(seen: &[(String, String)]) -> BTreeSet<&str> {
    seen.iter()
        .filter(|(t, p)| t.starts_with("homeassistant/") && !p.is_empty())
        .map(|(t, _)| t.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_started_before_the_broker_and_the_database_publishes_once_both_appear() {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let Some(influx) = or_skip(InfluxServer::start()) else {
        return;
    };
    // The broker's port is known, but nothing listens there yet.
    let mut broker = Mosquitto::start().unwrap();
    broker.stop();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("serve.log");
    let env = vec![
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_MQTT__URL", broker.url()),
        ("PWSYNC_WEB__LISTEN", String::new()),
        ("PWSYNC_STATE_DIR", state.path().display().to_string()),
    ];
    let mut serve = spawn_serve_with(
        &env,
        "1",
        "info",
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );

    let said = health_says(
        state.path(),
        &["waiting for the MQTT broker at 127.0.0.1:"],
        Duration::from_secs(30),
    );
    assert!(said.contains(&broker.port().to_string()), "{said}");
    assert!(
        serve.try_wait().unwrap().is_none(),
        "serve exited without a broker"
    );

    broker.restart().unwrap();
    let mut m = listener(broker.port()).await;
    // The broker is there; the database is not (Powerwall-Dashboard has not made it yet).
    health_says(
        state.path(),
        &["waiting for InfluxDB", "'powerwall' does not exist"],
        Duration::from_secs(30),
    );
    let mut seen = Vec::new();
    gather(&mut m, &mut seen, Duration::from_secs(4), |_| false).await;
    assert!(
        configs(&seen).is_empty(),
        "discovery configs before the first successful poll: {:?}",
        configs(&seen)
    );
    assert!(
        serve.try_wait().unwrap().is_none(),
        "serve exited without its database"
    );

    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    simulate(&influx.url(), &yesterday, 2, 4);
    let all = pwsync_mqtt::discovery::catalogue().len() + pwsync_mqtt::discovery::controls().len();
    let sensors = pwsync_mqtt::discovery::catalogue().len();
    let published = gather(&mut m, &mut seen, Duration::from_secs(60), |s| {
        configs(s).len() >= sensors
            && s.iter().any(|(t, p)| {
                t == "pwsync/powerwall/home_usage/state" && p.parse::<f64>().is_ok_and(|v| v > 0.0)
            })
    })
    .await;
    assert!(published, "nothing published once both were there: {seen:?}");
    // No HA configured: the sensors, not the job controls.
    assert!(configs(&seen).len() < all);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !health(state.path()).0 {
        assert!(Instant::now() < deadline, "{}", health(state.path()).1);
        std::thread::sleep(Duration::from_millis(300));
    }
    stop(&mut serve);

    let text = std::fs::read_to_string(&log).unwrap();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    // Each wait is said when it begins (then once a minute; the test is shorter).
    assert!(count("waiting for the MQTT broker at") >= 1, "{text}");
    assert!(count("waiting for InfluxDB") >= 1, "{text}");
    for once in [
        "connected to the MQTT broker at".to_string(),
        format!("published {sensors} entities of site 'powerwall'"),
    ] {
        assert_eq!(count(&once), 1, "{once:?} once in:\n{text}");
    }
}

#[test]
fn one_shot_runs_still_fail_fast_without_a_broker() {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let Some(influx) = or_skip(InfluxServer::start()) else {
        return;
    };
    let mut broker = Mosquitto::start().unwrap();
    broker.stop();
    let env = vec![
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_MQTT__URL", broker.url()),
    ];
    let t0 = Instant::now();
    let o = pwsync(&env, &["serve", "--once"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot reach the MQTT broker"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));
}
