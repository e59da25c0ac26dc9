//! `pwsync migrate` end to end: a real HA (2025.4.4, or the release `PWSYNC_TEST_HA` names)
//! whose entity registry holds Teslemetry's
//! energy-site sensors (platform `teslemetry`, real unique ids) and whose recorder holds their
//! statistics as Teslemetry's daily-resetting meters leave them (state back to 0 at local
//! midnight, sum continuous on its own scale, one entity in Wh, one negative glitch, a missing
//! day), over a longer range than the real InfluxDB covers.

mod common;

use common::*;
use pwsync_energy::local::local_day_range;
use pwsync_energy::{Field, StatRow, HOUR};
use pwsync_ha::HaClient;
use pwsync_store::StatMeta;
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SITE_ID: &str = "2252168612345";

/// The Teslemetry entities: entity id, unique-id key, field, unit.
const SOURCES: [(&str, &str, Field, &str); 3] = [
    (
        "sensor.my_home_home_usage",
        "total_home_usage",
        Field::Home,
        "kWh",
    ),
    (
        "sensor.my_home_solar_generated",
        "total_solar_generation",
        Field::Solar,
        "kWh",
    ),
    (
        "sensor.my_home_grid_imported",
        "grid_energy_imported",
        Field::FromGrid,
        "Wh",
    ),
];

/// The recorded range (local days) and InfluxDB's, which starts later.
const TESLA_FIRST: &str = "2025-09-15";
const TESLA_END: &str = "2025-11-14";
const INFLUX_FIRST: &str = "2025-10-20";
/// A local day Teslemetry did not record, and the hour of its negative glitch.
const TESLA_MISSING_DAY: &str = "2025-11-05";
const GLITCH: &str = "2025-10-01T12:00:00-07:00";

fn target(field: Field) -> String {
    format!("sensor.powerwall_{}", field.sensor_key())
}

fn glitch() -> i64 {
    chrono::DateTime::parse_from_rfc3339(GLITCH)
        .unwrap()
        .timestamp()
}

/// Teslemetry's hourly energy (kWh) for source `k` at hour `h`: uneven, never round in binary.
fn tesla_kwh(k: usize, h: i64) -> f64 {
    let i = (h / HOUR) as usize;
    0.05 + ((i * 7919 + k * 104_729) % 41) as f64 / 23.0 + k as f64 / 7.0
}

/// The hours Teslemetry has rows for.
fn tesla_hours() -> Vec<i64> {
    let (missing_s, missing_e) = local_day_range(date(TESLA_MISSING_DAY), tz());
    (day_start(TESLA_FIRST)..day_start(TESLA_END))
        .step_by(HOUR as usize)
        .filter(|h| !(missing_s..missing_e).contains(h))
        .collect()
}

/// Rows as HA compiles a daily-resetting meter: `state` since local midnight, `sum` continuous
/// from a foreign baseline; in the entity's unit. The glitch hour's sum falls by 2.5 kWh.
fn tesla_rows(k: usize, unit: &str) -> Vec<StatRow> {
    let f = if unit == "Wh" { 1000.0 } else { 1.0 };
    let (mut sum, mut since_midnight, mut day) = (31_337.25, 0.0, None);
    tesla_hours()
        .into_iter()
        .map(|h| {
            let today = pwsync_energy::local::local_date(h, tz());
            if day != Some(today) {
                since_midnight = 0.0;
                day = Some(today);
            }
            let e = if h == glitch() { -2.5 } else { tesla_kwh(k, h) };
            sum += e;
            since_midnight = (since_midnight + e).max(0.0);
            StatRow {
                start: h,
                state: Some(since_midnight * f),
                sum: Some(sum * f),
            }
        })
        .collect()
}

fn registry() -> String {
    let mut entities: Vec<serde_json::Value> = SOURCES
        .iter()
        .map(|(id, key, _, unit)| {
            serde_json::json!({
                "entity_id": id,
                "platform": "teslemetry",
                "unique_id": format!("{SITE_ID}-{key}"),
                "original_name": key,
                "unit_of_measurement": unit,
            })
        })
        .collect();
    // A power sensor of the same site: never a migration source.
    entities.push(serde_json::json!({
        "entity_id": "sensor.my_home_load_power",
        "platform": "teslemetry",
        "unique_id": format!("{SITE_ID}-load_power"),
        "original_name": "Load power",
        "unit_of_measurement": "kW",
    }));
    serde_json::json!({
        "version": 1,
        "minor_version": 1,
        "key": "core.entity_registry",
        "data": {"entities": entities}
    })
    .to_string()
}

struct Setup {
    influx: InfluxServer,
    ha: HaInstance,
}

impl Setup {
    /// pwsync's environment; `influx_url` overrides the (real) InfluxDB's.
    fn env(&self, influx_url: Option<&str>) -> Vec<(&'static str, String)> {
        vec![
            (
                "PWSYNC_INFLUXDB__URL",
                influx_url.map(str::to_string).unwrap_or(self.influx.url()),
            ),
            ("PWSYNC_TIME_ZONE", "UTC".to_string()),
            ("PWSYNC_HOMEASSISTANT__URL", self.ha.url()),
            ("PWSYNC_HOMEASSISTANT__TOKEN", self.ha.token().to_string()),
        ]
    }

    fn client(&self) -> HaClient {
        ha_client(&self.ha)
    }
}

/// InfluxDB with 25 simulated days, HA with Teslemetry's registry entries and statistics.
async fn setup() -> Option<Setup> {
    let influx = servers()?;
    ok(pwsync(
        &[
            ("PWSYNC_INFLUXDB__URL", influx.url()),
            ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ],
        &[
            "simulate",
            "--start",
            INFLUX_FIRST,
            "--days",
            "25",
            "--seed",
            "21",
        ],
    ));
    let ha = HaInstance::start(HaOptions {
        storage_files: vec![("core.entity_registry".into(), registry())],
        ..HaOptions::default().with_time_zone(ZONE)
    })
    .unwrap();
    let c = ha_client(&ha);
    for (k, (id, _, _, unit)) in SOURCES.iter().enumerate() {
        let meta = StatMeta {
            unit_of_measurement: Some(unit.to_string()),
            ..StatMeta::energy_kwh(id, id)
        };
        let rows = tesla_rows(k, unit);
        c.import_statistics(&meta, &rows).await.unwrap();
        wait_for_rows(&c, id, rows.len()).await;
    }
    Some(Setup { influx, ha })
}

async fn wait_for_rows(c: &HaClient, id: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while all_rows(c, id).await.len() < n {
        assert!(Instant::now() < deadline, "HA did not write {id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn all_rows(c: &HaClient, id: &str) -> Vec<pwsync_ha::StatValue> {
    ha_rows(c, id, day_start("2025-09-01"), day_start("2025-12-01")).await
}

/// `(hour, change)` of a pwsync meter as HA reports it; the first row's change is its sum.
async fn meter_changes(c: &HaClient, field: Field) -> BTreeMap<i64, f64> {
    ha_changes(&all_rows(c, &target(field)).await)
        .into_iter()
        .collect()
}

/// What each hour of a migrated meter must hold: Teslemetry's energy (not the first hour: it
/// only anchors the differences; not the glitch), replaced (`Some(true)`: where InfluxDB covers
/// the whole hour) or filled (`Some(false)`) by InfluxDB's from the first InfluxDB local day on.
async fn expected(s: &Setup, k: usize, field: Field, influx: Option<bool>) -> BTreeMap<i64, f64> {
    let hours = tesla_hours();
    let mut want: BTreeMap<i64, f64> = hours
        .iter()
        .skip(1)
        .filter(|h| **h != glitch())
        .map(|h| (*h, tesla_kwh(k, *h)))
        .collect();
    // The first hour after the missing day spans it: its energy cannot be placed.
    let (_, missing_end) = local_day_range(date(TESLA_MISSING_DAY), tz());
    want.remove(&missing_end);
    if let Some(overwrite) = influx {
        let from = day_start(INFLUX_FIRST);
        let to = day_start(TESLA_END);
        let measured = influx_hours(&s.influx.url(), field, from, to).await;
        if overwrite {
            for (h, (kwh, complete)) in measured {
                if complete || !want.contains_key(&h) {
                    want.insert(h, kwh);
                }
            }
        } else {
            fill_as_backfill_does(&mut want, &measured, from, to);
        }
    }
    want
}

/// A fill without overwrite: hours after the chain's last row take InfluxDB's energy; a hole
/// between rows is filled together with the row after it (that row may carry the hole's
/// energy) when InfluxDB covers every hour of that stretch completely, and otherwise both stay
/// as they are.
fn fill_as_backfill_does(
    want: &mut BTreeMap<i64, f64>,
    measured: &BTreeMap<i64, (f64, bool)>,
    from: i64,
    to: i64,
) {
    let last_row = want.keys().next_back().copied().unwrap_or(i64::MIN);
    let mut h = from;
    while h < to {
        if want.contains_key(&h) {
            h += HOUR;
            continue;
        }
        if h > last_row {
            if let Some((kwh, _)) = measured.get(&h) {
                want.insert(h, *kwh);
            }
            h += HOUR;
            continue;
        }
        let row_after = *want.range(h..).next().unwrap().0;
        let stretch: Vec<i64> = (h..=row_after).step_by(HOUR as usize).collect();
        if stretch.iter().all(|t| measured.get(t).is_some_and(|m| m.1)) {
            for t in &stretch {
                want.insert(*t, measured[t].0);
            }
        }
        h = row_after + HOUR;
    }
}

fn assert_meter(field: Field, got: &BTreeMap<i64, f64>, want: &BTreeMap<i64, f64>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{field}: the meter's hours"
    );
    for (h, w) in want {
        let g = got[h];
        assert!(
            (g - w).abs() < 0.001,
            "{field} hour {h}: {g} kWh, expected {w} kWh"
        );
    }
    assert!(got.values().all(|c| *c >= 0.0), "{field}: no negative hour");
    assert!(got.values().all(|c| *c < 30.0), "{field}: no spike");
}

async fn snapshot(c: &HaClient) -> Vec<Vec<pwsync_ha::StatValue>> {
    let mut all = Vec::new();
    for f in Field::ALL {
        all.push(all_rows(c, &target(f)).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_then_influx_replaces_migrated_hours_and_a_rerun_changes_nothing() {
    let Some(s) = setup().await else { return };
    let c = s.client();
    let env = s.env(None);
    let stats_db = format!("sqlite://{}", s.ha.db_path().display());

    let before = checksum(&stats_db).await;
    let dry = ok(pwsync(&env, &["migrate", "--dry-run", "--json"]));
    assert_eq!(
        checksum(&stats_db).await,
        before,
        "a dry run writes nothing"
    );
    assert!(dry["rows"].as_u64().unwrap() > 3 * 1000, "{dry}");
    assert_eq!(dry["phase2"]["ran"], true, "the dry run computes phase 2");
    assert!(dry["phase2"]["backfill"]["rows"].as_u64().unwrap() > 3 * 400);
    // The simulated InfluxDB data has gaps: migrated hours it covers only partly are kept.
    let kept_partial: u64 = dry["phase2"]["backfill"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kept_partial"].as_u64().unwrap())
        .sum();
    assert!(kept_partial > 0, "{}", dry["phase2"]);

    let out = pwsync(&env, &["migrate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("What maps to what"), "{text}");
    assert!(
        text.contains("InfluxDB data starts 2025-10-20; replaced"),
        "{text}"
    );
    assert!(
        text.contains("negative energy"),
        "the glitch is reported: {text}"
    );
    assert!(!text.contains("load_power"), "no power sensor: {text}");

    for (k, (_, _, field, _)) in SOURCES.iter().enumerate() {
        let want = expected(&s, k, *field, Some(true)).await;
        assert_meter(*field, &meter_changes(&c, *field).await, &want);
    }
    // Dry run and real run agree on what phase 1 writes.
    let real = snapshot(&c).await;
    let again = ok(pwsync(&env, &["migrate", "--json"]));
    assert_eq!(again["rows"], 0, "a second migration writes nothing");
    assert_eq!(again["phase2"]["ran"], false);
    assert_eq!(snapshot(&c).await, real);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_auto_backfill_is_phase_one_only_with_the_wh_entity_converted() {
    let Some(s) = setup().await else { return };
    let c = s.client();
    let r = ok(pwsync(
        &s.env(None),
        &["migrate", "--no-auto-backfill", "--json"],
    ));
    assert_eq!(r["phase2"]["ran"], false);
    assert!(r["phase2"]["why"]
        .as_str()
        .unwrap()
        .contains("--no-auto-backfill"));
    let rejected = &r["sources"][0]["rejected"];
    assert_eq!(rejected[0]["start"], glitch(), "{rejected}");
    for (k, (_, _, field, _)) in SOURCES.iter().enumerate() {
        let want = expected(&s, k, *field, None).await;
        assert_meter(*field, &meter_changes(&c, *field).await, &want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prioritize_teslemetry_only_fills_hours_without_migrated_data() {
    let Some(s) = setup().await else { return };
    let c = s.client();
    ok(pwsync(
        &s.env(None),
        &["migrate", "--merge-strategy", "prioritize-teslemetry"],
    ));
    let (missing_s, _) = local_day_range(date(TESLA_MISSING_DAY), tz());
    for (k, (_, _, field, _)) in SOURCES.iter().enumerate() {
        let want = expected(&s, k, *field, Some(false)).await;
        let got = meter_changes(&c, *field).await;
        assert_meter(*field, &got, &want);
        assert!(
            got.contains_key(&missing_s),
            "InfluxDB filled the missing day"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn influx_unreachable_in_phase_two_keeps_phase_one_with_a_distinct_exit_code() {
    let Some(s) = setup().await else { return };
    let c = s.client();
    let dead = format!("http://127.0.0.1:{}", pwsync_testkit::free_port());
    let out = pwsync(&s.env(Some(&dead)), &["migrate"]);
    assert_eq!(out.status.code(), Some(4), "migrated, backfill failed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the migration is kept"), "{err}");
    assert!(
        err.contains("pwsync backfill --"),
        "how to rerun phase 2: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for (k, (_, _, field, _)) in SOURCES.iter().enumerate() {
        let want = expected(&s, k, *field, None).await;
        assert_meter(*field, &meter_changes(&c, *field).await, &want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn through_the_recorder_database_with_ha_stopped() {
    let Some(mut s) = setup().await else { return };
    s.ha.stop_async().await.unwrap();
    let db = s.ha.db_path();
    let mut env = s.env(None);
    env.push((
        "PWSYNC_HOMEASSISTANT__RECORDER_DB",
        format!("sqlite://{}", db.display()),
    ));
    let before = sha_file(&db);
    let dry = ok(pwsync(
        &env,
        &["migrate", "--target", "db", "--dry-run", "--json"],
    ));
    assert_eq!(
        sha_file(&db),
        before,
        "a dry run leaves the file byte-identical"
    );
    assert_eq!(dry["phase2"]["ran"], true);
    let r = ok(pwsync(&env, &["migrate", "--target", "db", "--json"]));
    assert_eq!(r["rows"], dry["rows"]);
    assert_eq!(
        r["phase2"]["backfill"]["rows"], dry["phase2"]["backfill"]["rows"],
        "the dry run's phase 2 is what the real run wrote"
    );
    // Read back through HA itself.
    s.ha.start_again().unwrap();
    let c = s.client();
    for (k, (_, _, field, _)) in SOURCES.iter().enumerate() {
        let want = expected(&s, k, *field, Some(true)).await;
        assert_meter(*field, &meter_changes(&c, *field).await, &want);
    }
}
