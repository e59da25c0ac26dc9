//! `heal` (serve's hourly self-healing) against a real Home Assistant (2025.4.4, or the release
//! `PWSYNC_TEST_HA` names) and a real InfluxDB.
//! pwsync's serve stopped for two hours while HA kept running: HA's compile left the
//! outage's energy in the hour after it (the sensor stale: two hours of 0, or unavailable: two
//! hours without rows). One healing cycle must make those hours match InfluxDB, touch nothing
//! outside its 48 hours, and a second cycle must write nothing.

use pwsync_energy::audit::Tolerance;
use pwsync_energy::{Field, StatRow, HOUR};
use pwsync_ha::{ClientOptions, HaClient, Period, StatType, WsStore};
use pwsync_influx::sim::{self, Simulator};
use pwsync_influx::{FieldMap, InfluxClient, InfluxConfig, InfluxSource};
use pwsync_jobs::{compiled_limit, heal, HealOptions};
use pwsync_store::{EnergySource, StatMeta};
use pwsync_testkit::ha::{self, HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::or_skip;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ZONE: &str = "America/Los_Angeles";
const HOME: &str = "sensor.powerwall_home_usage";
const SOLAR: &str = "sensor.powerwall_solar_generated";

async fn hourly(source: &InfluxSource, field: Field, start: i64, end: i64) -> BTreeMap<i64, f64> {
    source.energy(&[field], start, end, HOUR).await.unwrap()[&field]
        .buckets
        .iter()
        .filter(|b| b.covered > 0)
        .map(|b| (b.start, b.wh / 1000.0))
        .collect()
}

async fn changes(c: &HaClient, id: &str, start: i64, end: i64) -> BTreeMap<i64, Option<f64>> {
    let mut m = c
        .statistics_during_period(
            start,
            end,
            &[id.to_string()],
            Period::Hour,
            &[StatType::Change, StatType::Sum],
            Some("kWh"),
        )
        .await
        .unwrap();
    m.remove(id)
        .unwrap_or_default()
        .iter()
        .map(|v| (v.start_secs(), v.change))
        .collect()
}

/// HA's compile of the live sensor over `energy`, with serve down for `outage`'s two hours:
/// `stale` keeps rows with no change, otherwise HA wrote no rows; the hour after holds all.
fn compiled(energy: &BTreeMap<i64, f64>, outages: &[i64], stale: bool) -> Vec<StatRow> {
    let (mut sum, mut owed) = (0.0, 0.0);
    let mut rows = Vec::new();
    for (&t, &kwh) in energy {
        let down = outages.iter().any(|&o| t == o || t == o + HOUR);
        if down {
            owed += kwh;
            if stale {
                rows.push(StatRow {
                    start: t,
                    state: Some(sum),
                    sum: Some(sum),
                });
            }
            continue;
        }
        sum += kwh + owed;
        owed = 0.0;
        rows.push(StatRow {
            start: t,
            state: Some(sum),
            sum: Some(sum),
        });
    }
    rows
}

async fn import(c: &HaClient, id: &str, rows: &[StatRow]) {
    c.import_statistics(&StatMeta::energy_kwh(id, id), rows)
        .await
        .unwrap();
    let (start, end) = (rows[0].start, rows[rows.len() - 1].start + HOUR);
    let deadline = Instant::now() + Duration::from_secs(60);
    while changes(c, id, start, end).await.len() < rows.len() {
        assert!(Instant::now() < deadline, "HA did not write {id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_healing_cycle_makes_an_outage_match_influxdb() {
    if ha::venv_or_skip().is_none() {
        return;
    }
    let Some(mut server) = or_skip(InfluxServer::start()) else {
        return;
    };
    let tz: chrono_tz::Tz = ZONE.parse().unwrap();
    let client = InfluxClient::new(InfluxConfig {
        url: server.url(),
        ..InfluxConfig::default()
    })
    .unwrap();
    // A week of data up to 2025-06-11T06:00Z; "now" is 22:20 PDT on 2025-06-10.
    let origin = 1_749_020_400; // 2025-06-04T07:00Z, local midnight
    let now = 1_749_619_200; // 2025-06-11T05:20Z
    sim::create_schema(&client).await.unwrap();
    sim::write(
        &client,
        &mut Simulator::new(21, origin, tz),
        origin,
        now + HOUR,
    )
    .await
    .unwrap();
    let source = InfluxSource {
        client,
        map: FieldMap::default(),
        gap_limit: 300,
    };
    let end = compiled_limit(now);
    let outage = end - 10 * HOUR; // 12:00 PDT, in the sun
    let old_outage = end - 60 * HOUR; // outside the 48 hours healed
    let home = hourly(&source, Field::Home, origin, end).await;
    let solar = hourly(&source, Field::Solar, origin, end).await;
    assert!(solar[&(outage + HOUR)] > 0.5, "a sunny hour");

    let mut ha_server = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let c = HaClient::new(ClientOptions::new(&ha_server.url(), ha_server.token()));
    import(&c, HOME, &compiled(&home, &[outage, old_outage], true)).await;
    import(&c, SOLAR, &compiled(&solar, &[outage], false)).await;
    let before_old = changes(&c, HOME, old_outage, old_outage + 3 * HOUR).await;

    let store = WsStore::new(HaClient::new(ClientOptions::new(
        &ha_server.url(),
        ha_server.token(),
    )));
    let opts = HealOptions {
        site: "powerwall".into(),
        tz,
        limit_kwh: 30.0,
        tolerance: Tolerance::default(),
        lookback: Duration::from_secs(48 * 3600),
        // No live sensors here, so the lag never applies; serve's: a poll plus two minutes.
        live_lag_secs: 60 + 120,
    };
    let t0 = Instant::now();
    let report = heal(&source, &store, &opts, now).await.unwrap();
    eprintln!(
        "heal: {} rows in {:.1} s",
        report.rows,
        t0.elapsed().as_secs_f64()
    );
    let healed: Vec<&str> = report
        .statistics
        .iter()
        .map(|s| s.statistic_id.as_str())
        .collect();
    assert_eq!(healed, [HOME, SOLAR]);
    assert_eq!(
        report.statistics[0].fixes.len(),
        3,
        "{:?}",
        report.statistics[0]
    );
    assert_eq!(
        report.statistics[1].fixes.len(),
        3,
        "{:?}",
        report.statistics[1]
    );

    for (id, field) in [(HOME, Field::Home), (SOLAR, Field::Solar)] {
        let want = hourly(&source, field, end - 48 * HOUR, end).await;
        let got = changes(&c, id, end - 48 * HOUR - HOUR, end).await;
        for (t, kwh) in &want {
            let g = got[t].unwrap();
            assert!((g - kwh).abs() < 1e-3, "{id} {t}: HA {g}, InfluxDB {kwh}");
        }
    }
    assert_eq!(
        changes(&c, HOME, old_outage, old_outage + 3 * HOUR).await,
        before_old,
        "hours before the 48 h are left to `repair`"
    );
    let again = heal(&source, &store, &opts, now).await.unwrap();
    assert_eq!(
        again.rows, 0,
        "a second cycle writes nothing: {:?}",
        again.statistics
    );
    ha_server.stop_async().await.unwrap();
    server.stop();
}
