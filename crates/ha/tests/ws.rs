//! The websocket client and WsStore against a real Home Assistant (2025.4.4, or the release
//! `PWSYNC_TEST_HA` names).

mod common;

use common::{client, hours_ago, meter_rows, shared_ha, store, TIME_ZONE};
use pwsync_energy::{StatRow, HOUR};
use pwsync_ha::{ClientOptions, HaClient, HaError, Period, StatType, StatisticKind, WsStore};
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, StoreError, Table, WritePlan};

fn plan(meta: StatMeta, hourly: Vec<StatRow>) -> WritePlan {
    WritePlan {
        writes: vec![StatWrite {
            meta,
            shifts: vec![],
            hourly,
            short_term: vec![],
        }],
    }
}

#[tokio::test]
async fn a_bad_token_gives_the_clear_error() {
    let Some(ha) = shared_ha() else { return };
    let bad = HaClient::new(ClientOptions::new(&ha.url(), "not-a-token"));
    let err = bad.get_config().await.unwrap_err();
    assert!(matches!(err, HaError::InvalidToken), "{err:?}");
    assert_eq!(
        err.to_string(),
        "HA rejected the access token: create a long-lived token in your HA profile and set homeassistant.token"
    );
    // Through the store it is a connection error with the same message.
    let err = WsStore::new(bad)
        .read("sensor.pwsync_any", Table::Hourly, 0, HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Connection(_)), "{err:?}");
    assert!(
        err.to_string().contains("HA rejected the access token"),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_in_one_line() {
    let port = pwsync_testkit::free_port();
    let c = HaClient::new(ClientOptions::new(&format!("http://127.0.0.1:{port}"), "t"));
    let err = c.get_config().await.unwrap_err();
    assert!(matches!(err, HaError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[tokio::test]
async fn get_config_reports_the_configured_time_zone() {
    let Some(ha) = shared_ha() else { return };
    let c = client(ha);
    let config = c.get_config().await.unwrap();
    assert_eq!(config.time_zone, TIME_ZONE);
    assert_eq!(config.state, "RUNNING");
    assert_eq!(
        config.version,
        pwsync_testkit::ha_chroot::selected().version
    );
    assert!(config.components.iter().any(|c| c == "recorder"));
    assert_eq!(c.ha_version().await.unwrap(), config.version);
}

#[tokio::test]
async fn an_unknown_command_and_a_bad_parameter_are_distinct_errors() {
    let Some(ha) = shared_ha() else { return };
    let c = client(ha);
    let err = c
        .call("pwsync/no_such_command", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HaError::UnknownCommand { .. }), "{err:?}");
    let err = c
        .call(
            "recorder/statistics_during_period",
            serde_json::json!({"start_time": "yesterday", "statistic_ids": ["sensor.x"], "period": "hour"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_start_time"), "{err}");
    // The connection survives command errors.
    assert_eq!(c.get_config().await.unwrap().state, "RUNNING");
}

#[tokio::test]
async fn apply_imports_hourly_rows_that_read_back_equal_at_once() {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let id = "sensor.pwsync_test_home_usage";
    let start = hours_ago(24 * 4);
    let rows = meter_rows(start, 72, 100.0, 5000.0);
    s.apply(&plan(StatMeta::energy_kwh(id, "Home usage"), rows.clone()))
        .await
        .unwrap();
    // apply returns only once HA shows the rows: an immediate read sees every value exactly.
    let back = s
        .read(id, Table::Hourly, start - HOUR, start + 80 * HOUR)
        .await
        .unwrap();
    assert_eq!(back, rows);

    let meta = s.metadata(&[id.to_string()]).await.unwrap();
    assert_eq!(meta, vec![StatMeta::energy_kwh(id, "Home usage")]);
    assert!(s.list().await.unwrap().iter().any(|m| m.statistic_id == id));
    let sums = client(ha)
        .list_statistic_ids(Some(StatisticKind::Sum))
        .await
        .unwrap();
    assert!(sums.iter().any(|i| i.statistic_id == id && i.has_sum));

    // last_before: the row before, from just after the chain and from far after it.
    let last = s
        .last_before(id, Table::Hourly, start + 10 * HOUR)
        .await
        .unwrap();
    assert_eq!(last, Some(rows[9]));
    let last = s
        .last_before(id, Table::Hourly, start + 400 * 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(last, Some(rows[71]));
    assert_eq!(s.last_before(id, Table::Hourly, start).await.unwrap(), None);

    // Overwriting a stretch replaces it in place (HA updates existing hours).
    let mut changed = rows[10..20].to_vec();
    for r in &mut changed {
        r.sum = r.sum.map(|v| v + 0.25);
    }
    s.apply(&plan(
        StatMeta::energy_kwh(id, "Home usage"),
        changed.clone(),
    ))
    .await
    .unwrap();
    let back = s
        .read(id, Table::Hourly, start, start + 72 * HOUR)
        .await
        .unwrap();
    assert_eq!(back.len(), 72);
    assert_eq!(&back[10..20], &changed[..]);
    assert_eq!(&back[..10], &rows[..10]);
    assert_eq!(&back[20..], &rows[20..]);

    // The raw command gives epoch milliseconds.
    let raw = client(ha)
        .statistics_during_period(
            start,
            start + HOUR,
            &[id.to_string()],
            Period::Hour,
            &[StatType::Sum],
            Some("kWh"),
        )
        .await
        .unwrap();
    assert_eq!(raw[id][0].start, start * 1000);
    assert_eq!(raw[id][0].end, (start + HOUR) * 1000);
}

#[tokio::test]
async fn rows_read_in_wh_or_kwh_by_the_statistics_unit() {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let id = "sensor.pwsync_test_wh_meter";
    let start = hours_ago(24 * 3);
    // A statistic HA keeps in Wh (written in Wh through the client directly).
    let mut wh = StatMeta::energy_kwh(id, "Wh meter");
    wh.unit_of_measurement = Some("Wh".into());
    let rows_wh: Vec<StatRow> = (0..5)
        .map(|i| StatRow {
            start: start + i * HOUR,
            state: Some(1000.0 * (i + 1) as f64),
            sum: Some(500.0 * (i + 1) as f64),
        })
        .collect();
    client(ha).import_statistics(&wh, &rows_wh).await.unwrap();
    // A bare import is only queued: wait until HA wrote it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s
        .read(id, Table::Hourly, start, start + 5 * HOUR)
        .await
        .unwrap()
        .len()
        < 5
    {
        assert!(
            std::time::Instant::now() < deadline,
            "HA never wrote the Wh rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // WsStore writes kWh rows into it in Wh (the statistic keeps its unit) and reads kWh.
    let more = vec![StatRow {
        start: start + 5 * HOUR,
        state: Some(6.0),
        sum: Some(3.0),
    }];
    s.apply(&plan(StatMeta::energy_kwh(id, "Wh meter"), more))
        .await
        .unwrap();
    let back = s
        .read(id, Table::Hourly, start, start + 6 * HOUR)
        .await
        .unwrap();
    let sums: Vec<f64> = back.iter().map(|r| r.sum.unwrap()).collect();
    assert_eq!(sums, vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    let meta = s.metadata(&[id.to_string()]).await.unwrap();
    assert_eq!(meta[0].unit_of_measurement.as_deref(), Some("Wh"));
}

#[tokio::test]
async fn a_malformed_statistic_id_is_a_clear_error() {
    let Some(ha) = shared_ha() else { return };
    // HA 2026.11 logs each refusal below as an ERROR naming the statistic: provoked here.
    let log = ha.config_dir().with_file_name("hass.out");
    pwsync_testkit::ha_log::expect(&log, "Error handling message: Invalid statistic_id");
    pwsync_testkit::ha_log::expect(&log, "Error handling message: Invalid source");
    let s = store(ha);
    let rows = meter_rows(hours_ago(48), 3, 0.0, 0.0);
    let err = s
        .apply(&plan(
            StatMeta::energy_kwh("sensor.Bad Id", "Bad"),
            rows.clone(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Command(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "sensor.Bad Id: HA refused recorder/import_statistics: Invalid statistic_id"
        ),
        "{msg}"
    );
    assert!(msg.contains("lower case"), "{msg}");
    assert!(!msg.contains('\n'));

    // An external id needs its domain as source.
    let err = s
        .apply(&plan(
            StatMeta::energy_kwh("pwsync:home_usage", "Ext"),
            rows.clone(),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Invalid source"), "{err}");

    // Not on the hour: refused before anything is sent.
    let mut off = rows;
    off[1].start += 60;
    let err = s
        .apply(&plan(
            StatMeta::energy_kwh("sensor.pwsync_test_off_hour", "Off"),
            off,
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("does not start on the hour"),
        "{err}"
    );
    assert!(s
        .metadata(&["sensor.pwsync_test_off_hour".to_string()])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_statistic_that_does_not_exist_reads_empty() {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let id = "sensor.pwsync_test_never_written";
    let now = hours_ago(0);
    assert!(s
        .read(id, Table::Hourly, now - 24 * 400 * HOUR, now)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .read(id, Table::ShortTerm, now - 24 * HOUR, now)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.last_before(id, Table::Hourly, now).await.unwrap(), None);
    assert_eq!(
        s.last_before(id, Table::ShortTerm, now).await.unwrap(),
        None
    );
    assert!(s.metadata(&[id.to_string()]).await.unwrap().is_empty());
    // A shift of a statistic HA does not have moves nothing and creates nothing (as on the
    // recorder database): a new statistic's plan may carry one for its later rows.
    s.apply(&WritePlan {
        writes: vec![StatWrite {
            meta: StatMeta::energy_kwh(id, "Never"),
            shifts: vec![pwsync_store::Shift {
                from: now,
                delta: 1.0,
            }],
            hourly: vec![],
            short_term: vec![],
        }],
    })
    .await
    .unwrap();
    assert!(s.metadata(&[id.to_string()]).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_requests_get_their_own_replies() {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let id = "sensor.pwsync_test_concurrent";
    let start = hours_ago(24 * 5);
    let rows = meter_rows(start, 48, 0.0, 0.0);
    s.apply(&plan(StatMeta::energy_kwh(id, "Concurrent"), rows.clone()))
        .await
        .unwrap();
    // 48 reads of one hour each, all in flight at once on one connection.
    let reads = (0..48).map(|i| {
        let s = &s;
        async move {
            s.read(id, Table::Hourly, start + i * HOUR, start + (i + 1) * HOUR)
                .await
        }
    });
    let results = futures_util::future::join_all(reads).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), vec![rows[i]], "read {i}");
    }
}

#[tokio::test]
async fn clear_statistics_removes_rows_and_metadata() {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let id = "sensor.pwsync_test_cleared";
    let start = hours_ago(30);
    s.apply(&plan(
        StatMeta::energy_kwh(id, "Cleared"),
        meter_rows(start, 5, 0.0, 0.0),
    ))
    .await
    .unwrap();
    client(ha)
        .clear_statistics(&[id.to_string()])
        .await
        .unwrap();
    // HA 2025.4 answers clear_statistics once the job ran.
    assert!(s
        .read(id, Table::Hourly, start, start + 5 * HOUR)
        .await
        .unwrap()
        .is_empty());
    assert!(s.metadata(&[id.to_string()]).await.unwrap().is_empty());
}

#[tokio::test]
async fn registry_and_states_parse() {
    let Some(ha) = shared_ha() else { return };
    let c = client(ha);
    // HA without default_config still has zone.home and a person for the owner.
    let states = c.get_states().await.unwrap();
    assert!(
        states.iter().any(|s| s.entity_id == "zone.home"),
        "{states:?}"
    );
    let person = states
        .iter()
        .find(|s| s.entity_id.starts_with("person."))
        .expect("the owner's person entity");
    assert!(person.attributes.is_object());
    // The registry is a list of entries (possibly empty here): it parses.
    let registry = c.entity_registry_list().await.unwrap();
    assert!(registry.iter().all(|e| !e.entity_id.is_empty()));
}

#[tokio::test]
async fn each_release_takes_its_metadata_shape_and_refuses_the_other() {
    let Some(ha) = shared_ha() else { return };
    let c = client(ha);
    let version = c.ha_version().await.unwrap();
    assert_eq!(version, pwsync_testkit::ha_chroot::selected().version);
    let id = "sensor.pwsync_test_meta_shape";
    let meta = StatMeta::energy_kwh(id, "Shape");
    let row = serde_json::json!([{"start": pwsync_ha::client::iso(hours_ago(30)), "sum": 1.0}]);
    let import = |metadata: serde_json::Value| {
        c.call(
            "recorder/import_statistics",
            serde_json::json!({"metadata": metadata, "stats": row}),
        )
    };
    if pwsync_ha::metadata_shape(&version) != pwsync_ha::MetadataShape::MeanType {
        // HA logs each refusal below as an ERROR: provoked here.
        let log = ha.config_dir().with_file_name("hass.out");
        pwsync_testkit::ha_log::expect(&log, "(invalid_format) pwsync from");
        // What pwsync would send to HA >= 2025.11: HA 2025.4 refuses the extra keys...
        let err = import(pwsync_ha::import_metadata(&meta, "2025.11.0"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("invalid_format"), "{err}");
        assert!(err.to_string().contains("extra keys not allowed"), "{err}");
        // ...and requires has_mean.
        let mut no_mean = pwsync_ha::import_metadata(&meta, "2025.4.4");
        no_mean.as_object_mut().unwrap().remove("has_mean");
        let err = import(no_mean).await.unwrap_err();
        assert_eq!(err.code(), Some("invalid_format"), "{err}");
    }
    // The shape chosen for the connected version is accepted. HA 2026.11.0 still accepts the
    // older shape too, only logging that leaving out mean_type or unit_class is deprecated: what
    // shows pwsync's choice there is that HA logs no such warning.
    c.import_statistics(
        &meta,
        &[StatRow {
            start: hours_ago(30),
            state: None,
            sum: Some(1.0),
        }],
    )
    .await
    .unwrap();
    let log = ha.log_tail(usize::MAX);
    assert!(
        !log.contains("called without specifying"),
        "HA warned about pwsync's statistics metadata:\n{log}"
    );
}

#[tokio::test]
async fn an_overwrite_without_state_leaves_state_null() {
    let Some(ha) = shared_ha() else { return };
    let s = store(ha);
    let id = "sensor.pwsync_test_null_state";
    let start = hours_ago(40);
    let rows = meter_rows(start, 3, 0.0, 50.0);
    s.apply(&plan(StatMeta::energy_kwh(id, "Null"), rows.clone()))
        .await
        .unwrap();
    let bare = StatRow {
        state: None,
        ..rows[1]
    };
    s.apply(&plan(StatMeta::energy_kwh(id, "Null"), vec![bare]))
        .await
        .unwrap();
    let back = s
        .read(id, Table::Hourly, start, start + 3 * HOUR)
        .await
        .unwrap();
    assert_eq!(back, vec![rows[0], bare, rows[2]]);
}

#[tokio::test]
async fn a_late_reply_after_a_timeout_never_reaches_the_next_request() {
    let Some(ha) = shared_ha() else { return };
    let c = client(ha);
    c.connect().await.unwrap();
    // With tokio's clock paused, the 1 s timeout elapses as soon as the runtime waits for HA:
    // the reply is certain to come late.
    tokio::time::pause();
    let err = c
        .call_with_timeout(
            "get_states",
            serde_json::json!({}),
            std::time::Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    tokio::time::resume();
    assert!(matches!(err, HaError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), "HA did not answer get_states within 1 s");
    // The states list arrives late and is dropped; get_config gets its own reply.
    for _ in 0..3 {
        assert_eq!(c.get_config().await.unwrap().time_zone, TIME_ZONE);
    }
}

#[tokio::test]
async fn a_silent_peer_is_unreachable_after_the_connect_timeout() {
    // A socket that accepts connections and never answers the websocket handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut opts = ClientOptions::new(&url, "t");
    opts.connect_timeout = std::time::Duration::from_millis(300);
    let t0 = std::time::Instant::now();
    let err = HaClient::new(opts).get_config().await.unwrap_err();
    assert!(matches!(err, HaError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().ends_with("no answer within 0.3 s"), "{err}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    drop(listener);
}
