//! The real-HA harness (pwsync-testkit's `ha` module) does what the other tests rely on:
//! a running HA with an admin token, the configured time zone, a restart that keeps config,
//! port and token, a clean stop, and HA's own recorder schema in the reference database.

use pwsync_ha::{ClientOptions, HaClient};
use pwsync_testkit::ha::{self, HaInstance, HaOptions};
use pwsync_testkit::ha_chroot;
use pwsync_testkit::mosquitto::Mosquitto;
use std::time::Instant;

#[tokio::test]
async fn start_restart_stop_keep_the_token_and_close_the_recorder() {
    let Some(_) = ha::venv_or_skip() else { return };
    let t0 = Instant::now();
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone("Europe/Berlin")).unwrap();
    let started = t0.elapsed();
    assert!(ha.pid().is_some());
    assert_eq!(ha.version(), ha_chroot::selected().version);

    let client = HaClient::new(ClientOptions::new(&ha.url(), ha.token()));
    let config = client.get_config().await.unwrap();
    assert_eq!(config.time_zone, "Europe/Berlin");
    assert_eq!(config.state, "RUNNING");

    let t1 = Instant::now();
    ha.restart_async().await.unwrap();
    let restarted = t1.elapsed();
    // Same URL and token; the old connection died with the old process, the client reconnects.
    let config = client.get_config().await.unwrap();
    assert_eq!(config.version, ha_chroot::selected().version);

    let stopped = ha.stop_async().await.unwrap();
    assert!(ha.pid().is_none());
    let open_runs = ha::sqlite_query(
        ha.venv(),
        &ha.db_path(),
        "SELECT count(*) FROM recorder_runs WHERE \"end\" IS NULL",
    )
    .unwrap();
    assert_eq!(
        open_runs.trim(),
        "0",
        "a clean stop closes the recorder run"
    );
    eprintln!(
        "HA start {:.1} s, restart {:.1} s, stop {:.1} s",
        started.as_secs_f64(),
        restarted.as_secs_f64(),
        stopped.as_secs_f64()
    );
}

#[test]
fn reference_db_has_ha_schema_and_fresh_copies() {
    let Some(venv) = ha::venv_or_skip() else {
        return;
    };
    let a = ha::reference_sqlite_db().unwrap();
    let b = ha::reference_sqlite_db().unwrap();
    assert_ne!(a.path(), b.path());
    let version = ha::sqlite_query(
        &venv,
        a.path(),
        "SELECT schema_version FROM schema_changes ORDER BY change_id DESC LIMIT 1",
    )
    .unwrap();
    // Read from the database the release under test made: what `recorder/schema.rs` was
    // checked against and what `ha_chroot::TESTED` records for the recorder tests.
    let tested = ha_chroot::selected();
    assert_eq!(
        version.trim(),
        tested.schema_version.to_string(),
        "HA {} writes schema {}",
        tested.version,
        tested.schema_version
    );
    let tables = ha::sqlite_query(
        &venv,
        b.path(),
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN \
         ('statistics','statistics_short_term','statistics_meta')",
    )
    .unwrap();
    assert_eq!(tables.trim(), "3");
}

#[tokio::test]
async fn mqtt_broker_and_storage_files_are_set_up_before_start() {
    let Some(_) = ha::venv_or_skip() else { return };
    let Some(_) = pwsync_testkit::or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start().unwrap();
    let port = broker.port();
    // An entity registry with one Teslemetry entity, in the oldest format HA migrates.
    let registry = serde_json::json!({
        "version": 1,
        "minor_version": 1,
        "key": "core.entity_registry",
        "data": {"entities": [{
            "entity_id": "sensor.powerwall_home_usage",
            "platform": "teslemetry",
            "unique_id": "1234567890-home_usage",
            "original_name": "Home usage",
            "unit_of_measurement": "kWh"
        }]}
    });
    let mut ha = HaInstance::start(HaOptions {
        storage_files: vec![("core.entity_registry".into(), registry.to_string())],
        ..HaOptions::default().with_broker(port)
    })
    .unwrap();
    let client = HaClient::new(ClientOptions::new(&ha.url(), ha.token()));
    let entries = client
        .call("config_entries/get", serde_json::json!({"domain": "mqtt"}))
        .await
        .unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["state"], "loaded", "{entries:?}");

    let registry = client.entity_registry_list().await.unwrap();
    let e = registry
        .iter()
        .find(|e| e.entity_id == "sensor.powerwall_home_usage")
        .expect("the pre-seeded entity");
    assert_eq!(e.platform, "teslemetry");
    assert_eq!(e.unique_id.as_deref(), Some("1234567890-home_usage"));
    assert_eq!(e.original_name.as_deref(), Some("Home usage"));
    ha.stop_async().await.unwrap();
}

#[test]
fn doctor_names_as_tested_exactly_the_releases_the_harness_runs() {
    let harness: Vec<&str> = ha_chroot::TESTED.iter().map(|t| t.version).collect();
    assert_eq!(harness, pwsync_ha::TESTED_VERSIONS);
}
