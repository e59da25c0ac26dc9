//! Missing history end to end against a real Home Assistant (2025.4.4, or the release
//! `PWSYNC_TEST_HA` names) and a real InfluxDB: a backfill that covered only part of InfluxDB's
//! data (one meter from a later day to an earlier one, one whole, four never, as a backfill
//! killed half-way leaves them) must make `check` exit 3 naming each meter's missing range;
//! `repair --dry-run` must write nothing, `repair` must fill every hour with InfluxDB's
//! energy and leave `check` clean, and `backfill --all` must do the same for meters it fills.

mod common;

use common::*;
use pwsync_energy::{Field, HOUR};
use pwsync_ha::HaClient;
use pwsync_testkit::ha::{HaInstance, HaOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const FIRST_DAY: &str = "2025-10-20";
/// The home meter was backfilled for these local days only.
const PART_FROM: &str = "2025-10-21";
const PART_TO: &str = "2025-10-23";

fn meter(f: Field) -> String {
    format!("sensor.powerwall_{}", f.sensor_key())
}

/// Run `check --json` and return its exit code and report.
fn check(env: &[(&str, String)]) -> (i32, Value) {
    check_json(env, &[])
}

/// `(from, to, hours, kWh expected)` of each missing-history finding of `id`, and how many
/// findings of other kinds it has.
fn missing(report: &Value, id: &str) -> (Vec<(i64, i64, i64, f64)>, usize) {
    let s = report["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["statistic_id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {report}"));
    let findings = s["findings"].as_array().unwrap();
    let ranges: Vec<_> = findings
        .iter()
        .filter(|f| f["kind"] == "missing_history")
        .map(|f| {
            assert_eq!(f["found"], 0.0, "{f}");
            (
                f["hour"].as_i64().unwrap(),
                f["to"].as_i64().unwrap(),
                f["hours"].as_i64().unwrap(),
                f["expected"].as_f64().unwrap(),
            )
        })
        .collect();
    (ranges.clone(), findings.len() - ranges.len())
}

/// The missing range `check` must report for InfluxDB's `hours` (start → kWh) in `[from, to)`:
/// it ends at the chain's first row when one follows (`row_after`), else after its last hour.
fn range_of(
    hours: &BTreeMap<i64, f64>,
    from: i64,
    to: i64,
    row_after: Option<i64>,
) -> (i64, i64, i64, f64) {
    let inside: Vec<(&i64, &f64)> = hours.range(from..to).collect();
    (
        *inside[0].0,
        row_after.unwrap_or(inside[inside.len() - 1].0 + HOUR),
        inside.len() as i64,
        inside.iter().map(|(_, k)| **k).sum(),
    )
}

fn assert_ranges(id: &str, got: &[(i64, i64, i64, f64)], want: &[(i64, i64, i64, f64)]) {
    assert_eq!(got.len(), want.len(), "{id}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.0, g.1, g.2),
            (w.0, w.1, w.2),
            "{id}: {got:?} vs {want:?}"
        );
        assert!((g.3 - w.3).abs() < 1e-6, "{id}: {got:?} vs {want:?}");
    }
}

/// `(start, sum)` of every row of each meter HA holds over `[start, end)`.
async fn all_sums(c: &HaClient, start: i64, end: i64) -> Vec<Vec<(i64, Option<f64>)>> {
    let mut out = Vec::new();
    for f in Field::ALL {
        let rows = ha_rows(c, &meter(f), start, end).await;
        out.push(rows.iter().map(|r| (r.start_secs(), r.sum)).collect());
    }
    out
}

/// HA's hourly energy of `f` (the first row counted from 0) is InfluxDB's in every hour with
/// data, and HA has no other hour.
async fn assert_equals_influx(
    c: &HaClient,
    f: Field,
    want: &BTreeMap<i64, f64>,
    start: i64,
    end: i64,
) {
    let got: BTreeMap<i64, f64> = ha_changes(&ha_rows(c, &meter(f), start, end).await)
        .into_iter()
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{f}: a row for every hour with data"
    );
    for (t, kwh) in want {
        assert!(
            (got[t] - kwh).abs() < 1e-3,
            "{f} hour {t}: HA {} kWh, InfluxDB {kwh} kWh",
            got[t]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partial_backfill_is_missing_history_that_repair_fills() {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    simulate(&iurl, FIRST_DAY, 6, 17);
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let c = ha_client(&ha);
    let env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_HOMEASSISTANT__URL", ha.url()),
        ("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()),
    ];
    // Wider than the data on both sides.
    let (start, end) = (day_start("2025-10-19"), day_start("2025-10-28"));
    let mut influx_kwh = BTreeMap::new();
    for f in Field::ALL {
        influx_kwh.insert(f, influx_hourly(&iurl, f, start, end).await);
    }
    let home = &influx_kwh[&Field::Home];
    let (part_from, part_to) = (day_start(PART_FROM), day_start(PART_TO) + 86_400);

    // The backfill that stopped short: home for three middle days, solar whole, four never.
    ok(pwsync(
        &env,
        &[
            "backfill", "--start", PART_FROM, "--end", PART_TO, "--fields", "home", "--json",
        ],
    ));
    ok(pwsync(
        &env,
        &["backfill", "--all", "--fields", "solar", "--json"],
    ));

    let (code, report) = check(&env);
    assert_eq!(code, 3, "missing history is a problem: {report}");
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    let (got, others) = missing(&report, HOME);
    assert_eq!(others, 0, "nothing else is wrong with home: {report}");
    assert_ranges(
        HOME,
        &got,
        &[
            range_of(
                home,
                start,
                part_from,
                home.range(part_from..).next().map(|h| *h.0),
            ),
            range_of(home, part_to, end, None),
        ],
    );
    assert_eq!(missing(&report, &meter(Field::Solar)), (vec![], 0));
    for f in &Field::ALL[2..] {
        let (got, others) = missing(&report, &meter(*f));
        assert_eq!(others, 0, "{f}: {report}");
        assert_ranges(
            &meter(*f),
            &got,
            &[range_of(&influx_kwh[f], start, end, None)],
        );
        let s = report["statistics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["statistic_id"] == meter(*f).as_str())
            .unwrap();
        assert_eq!(s["hourly_rows"], 0);
    }
    assert_eq!(report["problems"], 2 + 4, "{report}");

    // The table names the kind and its range in local time.
    let table = pwsync(&env, &["check"]);
    assert_eq!(table.status.code(), Some(3));
    let text = String::from_utf8_lossy(&table.stdout);
    let home_to = pwsync_jobs::range::fmt_ts(part_to, tz());
    assert!(
        text.contains("missing history") && text.contains(&format!("{home_to} →")),
        "{text}"
    );

    // A dry run says what it would write and writes nothing.
    let before = all_sums(&c, start, end).await;
    let dry = ok(pwsync(&env, &["repair", "--dry-run", "--json"]));
    let filled: Vec<(String, i64)> = dry["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            let id = s["statistic_id"].as_str().unwrap().to_string();
            s["fixes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["how"] == "filled")
                .map(move |f| (id.clone(), f["hours"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(filled.len(), 6, "{dry}");
    let want_rows: usize = influx_kwh.values().map(|h| h.len()).sum::<usize>()
        - influx_kwh[&Field::Solar].len()
        - home.range(part_from..part_to).count();
    assert!(
        dry["rows"].as_u64().unwrap() as usize >= want_rows,
        "at least every missing hour: {dry}"
    );
    assert_eq!(
        all_sums(&c, start, end).await,
        before,
        "a dry run writes nothing"
    );

    let t = Instant::now();
    let done = ok(pwsync(&env, &["repair", "--json"]));
    eprintln!(
        "repair of {} rows: {:.1} s",
        done["rows"],
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        done["rows"], dry["rows"],
        "the dry run reported the real run"
    );
    let (code, after) = check(&env);
    assert_eq!(code, 0, "clean after repair: {after}");
    for f in Field::ALL {
        assert_equals_influx(&c, f, &influx_kwh[&f], start, end).await;
    }
    let again = ok(pwsync(&env, &["repair", "--json"]));
    assert_eq!(again["rows"], 0, "a second repair writes nothing: {again}");

    // `backfill --all` fills what is missing as well.
    let gone = [meter(Field::FromGrid), meter(Field::ToPw)];
    c.clear_statistics(&gone).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ha_rows(&c, &gone[1], start, end).await.is_empty() {
        assert!(Instant::now() < deadline, "HA did not clear {gone:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, report) = check(&env);
    assert_eq!(code, 3, "{report}");
    for id in &gone {
        assert_eq!(missing(&report, id).0.len(), 1, "{id}: {report}");
    }
    ok(pwsync(&env, &["backfill", "--all", "--json"]));
    let (code, after) = check(&env);
    assert_eq!(code, 0, "clean after backfill --all: {after}");
    for f in [Field::FromGrid, Field::ToPw] {
        assert_equals_influx(&c, f, &influx_kwh[&f], start, end).await;
    }
    ha.stop_async().await.unwrap();
}
