//! `pwsync backfill` without `--overwrite` into a live sensor's chain with a two-hour outage,
//! against a real Home Assistant 2025.4.4 and a real InfluxDB: through the websocket (HA
//! running) and through the recorder database (HA stopped, 5-minute rows included).
//!
//! The chain is the one HA leaves when it was down for two hours while the meter kept counting:
//! every compiled hour changes by the meter's growth (InfluxDB's energy, as `serve` publishes
//! it), the two hours have no row, and the first row after them carries the meter's whole jump.
//! A fill must count that jump once: the hole and the row after it get InfluxDB's energy.

mod common;

use common::*;
use pwsync_energy::{Field, StatRow, FIVE_MIN, HOUR};
use pwsync_recorder::RecorderDb;
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use pwsync_testkit::ha::{HaInstance, HaOptions};
use serde_json::Value;
use std::collections::BTreeMap;

const FIRST_DAY: &str = "2025-10-20";
/// The chain covers these local days; the outage is inside them.
const CHAIN_FROM: &str = "2025-10-22";
const CHAIN_TO: &str = "2025-10-24";

struct Outage {
    /// InfluxDB's energy per hour (kWh) over the chain's days, and whether the hour is complete.
    hours: BTreeMap<i64, (f64, bool)>,
    /// The chain as HA left it (rows with the outage's two hours missing).
    chain: Vec<StatRow>,
    /// First missing hour; the row after the hole starts two hours later.
    hole: i64,
}

impl Outage {
    fn row_after(&self) -> i64 {
        self.hole + 2 * HOUR
    }
    fn kwh(&self, t: i64) -> f64 {
        self.hours[&t].0
    }
}

/// The live sensor's chain over the chain's days: `state` is pwsync's lifetime meter (energy
/// since the first InfluxDB point) at each hour's end, `sum` grows with it from 0 at the first
/// row; HA was down for the two hours from the first complete three-hour stretch at 09:00 of
/// the middle day, so they have no row and the next row's change is the meter's whole jump.
async fn outage(iurl: &str) -> Outage {
    let (first, start, end) = (
        day_start(FIRST_DAY),
        day_start(CHAIN_FROM),
        day_start(CHAIN_TO) + 86_400,
    );
    let all = influx_hours(iurl, Field::Home, first, end).await;
    let hole = (day_start("2025-10-23") + 9 * HOUR..)
        .step_by(HOUR as usize)
        .find(|t| (0..4).all(|k| all.get(&(t + k * HOUR)).is_some_and(|h| h.1)))
        .unwrap();
    let mut meter = 0.0;
    let mut sum = None;
    let mut chain = Vec::new();
    for (&t, &(kwh, _)) in &all {
        meter += kwh;
        if t < start || t >= end || t == hole || t == hole + HOUR {
            continue;
        }
        // HA's compile: the first row's sum is 0; each later one grows by the meter's change.
        let s = sum.map_or(0.0, |(s, m): (f64, f64)| s + meter - m);
        sum = Some((s, meter));
        chain.push(StatRow {
            start: t,
            state: Some(meter),
            sum: Some(s),
        });
    }
    let hours = all.into_iter().filter(|(t, _)| *t >= start).collect();
    Outage { hours, chain, hole }
}

/// The outage's hole in a backfill report of the home meter; any other hole is one of
/// InfluxDB's own gaps, which HA has no row for either and which is kept.
fn reported_hole<'a>(report: &'a Value, o: &Outage) -> &'a Value {
    let holes = report["fields"][0]["holes"].as_array().unwrap();
    for h in holes.iter().filter(|h| h["start"] != o.hole) {
        assert_eq!(h["kept"]["why"], "no_data", "{h}");
    }
    holes
        .iter()
        .find(|h| h["start"] == o.hole)
        .unwrap_or_else(|| panic!("the outage is not listed: {report}"))
}

/// After the fill: every hour of the stretch is InfluxDB's energy within 1 Wh, every hour after
/// it keeps its change, the total over the chain moved by (stretch − what the row carried).
fn assert_filled(what: &str, o: &Outage, got: &[(i64, f64)]) -> f64 {
    let got: BTreeMap<i64, f64> = got.iter().copied().collect();
    for t in [o.hole, o.hole + HOUR, o.row_after()] {
        let g = got
            .get(&t)
            .unwrap_or_else(|| panic!("{what}: no row at {t}"));
        assert!(
            (g - o.kwh(t)).abs() < 0.001,
            "{what} hour {t}: HA {g} kWh, InfluxDB {} kWh",
            o.kwh(t)
        );
    }
    let seeded: BTreeMap<i64, f64> = changes(&o.chain).into_iter().collect();
    for (t, c) in seeded.range(o.row_after() + HOUR..) {
        assert!(
            (got[t] - c).abs() < 1e-6,
            "{what}: hour {t} after the stretch changed from {c} to {}",
            got[t]
        );
    }
    // The first row's change counts from 0 (HA's convention), both before and after.
    let total = |m: &BTreeMap<i64, f64>| m.values().sum::<f64>();
    let moved = total(&got) - total(&seeded);
    eprintln!(
        "{what}: hole {:.3} kWh; the row after carried {:.3} kWh, now {:.3} kWh; chain total moved by {moved:.6} kWh",
        o.kwh(o.hole) + o.kwh(o.hole + HOUR),
        seeded[&o.row_after()],
        got[&o.row_after()]
    );
    assert!(
        moved.abs() < 0.001,
        "{what}: the hole's energy is counted once, the total moved by {moved} kWh"
    );
    moved
}

fn assert_report(report: &Value, o: &Outage) {
    let h = reported_hole(report, o);
    assert_eq!(h["start"], o.hole, "{h}");
    assert_eq!(h["row_after"], o.row_after(), "{h}");
    assert!(h["kept"].is_null(), "{h}");
    let hole_kwh = o.kwh(o.hole) + o.kwh(o.hole + HOUR);
    let carried = h["carried_kwh"].as_f64().unwrap();
    assert!(
        (carried - hole_kwh - o.kwh(o.row_after())).abs() < 1e-6,
        "{h}"
    );
    assert!((h["carries_kwh"].as_f64().unwrap() - o.kwh(o.row_after())).abs() < 1e-9);
    assert!((h["filled_kwh"].as_f64().unwrap() - hole_kwh).abs() < 1e-9);
}

/// `check` of the home meter finds nothing in the chain's days: its one finding is the
/// history after them (InfluxDB has two more days), missing as the chain never had it.
fn check_clean(env: &[(&str, String)], extra: &[&str]) {
    let scope = ["check", "--json", "--since", CHAIN_FROM, "--entity", HOME];
    let o = pwsync(env, &[&scope[..], extra].concat());
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let findings = &report["statistics"][0]["findings"];
    assert_eq!(
        (o.status.code(), findings.as_array().map(|f| f.len())),
        (Some(3), Some(1)),
        "check finds only the days after the chain: {report} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(findings[0]["kind"], "missing_history", "{report}");
    assert!(
        findings[0]["hour"].as_i64().unwrap() >= day_start(CHAIN_TO) + 86_400,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fill_through_the_websocket_counts_an_outage_once() {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    simulate(&iurl, FIRST_DAY, 6, 21);
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let c = ha_client(&ha);
    let o = outage(&iurl).await;
    import_and_wait(&c, HOME, &o.chain).await;
    let env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_HOMEASSISTANT__URL", ha.url()),
        ("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()),
    ];
    let args = [
        "backfill", "--start", CHAIN_FROM, "--end", CHAIN_TO, "--fields", "home", "--json",
    ];
    // The summary names the hole and what the row after it carried.
    let text = pwsync(&env, &[&args[..args.len() - 1], &["--dry-run"]].concat());
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("(2 h without a row) filled") && l.contains("carried")),
        "{text}"
    );

    let report = ok(pwsync(&env, &args));
    assert_report(&report, &o);
    let (start, end) = (day_start(CHAIN_FROM), day_start(CHAIN_TO) + 86_400);
    let got = ha_changes(&ha_rows(&c, HOME, start, end).await);
    assert_filled("websocket", &o, &got);
    check_clean(&env, &[]);
    let again = ok(pwsync(&env, &args));
    assert_eq!(again["rows"], 0, "a second fill writes nothing: {again}");
    ha.stop_async().await.unwrap();
}

/// The 5-minute rows HA leaves for `hourly`: each hour's change spread over its twelve rows;
/// after a hole, the first row carries the meter's jump since the last row before the hole.
fn five_minute_rows(hourly: &[StatRow]) -> Vec<StatRow> {
    let mut out = Vec::new();
    for w in hourly.windows(2) {
        let (prev, h) = (w[0], w[1]);
        let (s0, s1) = (prev.sum.unwrap(), h.sum.unwrap());
        let (m0, m1) = (prev.state.unwrap(), h.state.unwrap());
        let gap = (h.start - prev.start) / HOUR;
        // The meter's growth outside this hour lands on its first row, the rest is spread.
        let own = (s1 - s0) / gap as f64;
        let jump = (s1 - s0) - own;
        for k in 0..12 {
            let f = (k + 1) as f64 / 12.0;
            out.push(StatRow {
                start: h.start + k * FIVE_MIN,
                state: Some(m0 + jump + own * f),
                sum: Some(s0 + jump + own * f),
            });
        }
        out.last_mut().unwrap().state = Some(m1);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fill_of_the_recorder_database_counts_an_outage_once_in_both_tables() {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    simulate(&iurl, FIRST_DAY, 6, 21);
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let o = outage(&iurl).await;
    import_and_wait(&ha_client(&ha), HOME, &o.chain).await;
    ha.stop_async().await.unwrap();
    let url = format!("sqlite://{}", ha.db_path().display());
    let db = RecorderDb::open(&url).await.unwrap();
    db.apply(&WritePlan {
        writes: vec![StatWrite {
            meta: StatMeta::energy_kwh(HOME, "Home usage"),
            shifts: vec![],
            hourly: vec![],
            short_term: five_minute_rows(&o.chain),
        }],
    })
    .await
    .unwrap();
    db.close().await;
    drop(db);

    let env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_HOMEASSISTANT__RECORDER_DB", url.clone()),
    ];
    let args = [
        "backfill", "--start", CHAIN_FROM, "--end", CHAIN_TO, "--fields", "home", "--target", "db",
        "--json",
    ];
    let report = ok(pwsync(&env, &args));
    assert_report(&report, &o);
    assert_eq!(report["fields"][0]["short_term_rows"], 12, "{report}");

    let db = RecorderDb::open(&url).await.unwrap();
    let (start, end) = (day_start(CHAIN_FROM), day_start(CHAIN_TO) + 86_400);
    let hourly = db.read(HOME, Table::Hourly, start, end).await.unwrap();
    let short = db.read(HOME, Table::ShortTerm, start, end).await.unwrap();
    db.close().await;
    drop(db);
    assert_filled("recorder", &o, &changes(&hourly));
    // The 5-minute chain ends every hour on its hourly row, and the last one is where HA's next
    // compile continues from.
    assert!(pwsync_energy::stats::short_term_out_of_step(&hourly, &short, 1e-6).is_empty());
    let (last, last_hour) = (short.last().unwrap(), hourly.last().unwrap());
    assert!((last.sum.unwrap() - last_hour.sum.unwrap()).abs() < 1e-6);
    check_clean(&env, &["--target", "db"]);
    let again = ok(pwsync(&env, &args));
    assert_eq!(again["rows"], 0, "a second fill writes nothing: {again}");
}
