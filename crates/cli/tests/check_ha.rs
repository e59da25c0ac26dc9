//! `pwsync check` and `pwsync repair` end to end against a real Home Assistant (2025.4.4, or
//! the release `PWSYNC_TEST_HA` names) and a real InfluxDB. HA's statistics are damaged the ways users report (imported through HA, or
//! written into its recorder database with HA stopped for what only the database holds), then
//! `check` must find each damage (and nothing on a clean chain), `repair --dry-run` must change
//! nothing, `repair` must fix everything, `check` must be clean after, and a second `repair`
//! must write nothing.

mod common;

use common::*;
use pwsync_energy::{Field, StatRow, FIVE_MIN, HOUR};
use pwsync_ha::HaClient;
use pwsync_recorder::RecorderDb;
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::or_skip;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

const SOLAR: &str = "sensor.powerwall_solar_generated";
/// The meters HA holds, from the day their chains start: InfluxDB's first day and the other
/// four meters are missing history (see `tests/missing_history.rs`), not this test's damage.
const SCOPE: [&str; 6] = ["--since", "2025-10-21", "--entity", HOME, "--entity", SOLAR];

/// `(hour, kind)` of every finding of `id` in a `check --json` report.
fn findings(report: &Value, id: &str) -> Vec<(i64, String)> {
    report["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["statistic_id"] == id)
        .flat_map(|s| s["findings"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["hour"].as_i64().unwrap(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Run `check --json` and return its exit code and report.
fn check(env: &[(&str, String)], extra: &[&str]) -> (i32, Value) {
    check_json(env, extra)
}

/// `(start, sum)` of the rows of `id` HA reports over `[start, end)`.
async fn sums(c: &HaClient, id: &str, start: i64, end: i64) -> Vec<(i64, Option<f64>)> {
    ha_rows(c, id, start, end)
        .await
        .iter()
        .map(|v| (v.start_secs(), v.sum))
        .collect()
}

/// Every hour of `id` after the chain's first equals InfluxDB's energy within 1 Wh, and every
/// hour InfluxDB has data for has a row.
async fn assert_matches_influx(
    c: &HaClient,
    iurl: &str,
    id: &str,
    field: Field,
    start: i64,
    end: i64,
) {
    let want = influx_hourly(iurl, field, start, end).await;
    let rows = ha_rows(c, id, start, end).await;
    let got: BTreeMap<i64, f64> = rows
        .iter()
        .skip(1)
        .map(|r| (r.start_secs(), r.change.unwrap()))
        .collect();
    for (t, kwh) in want.iter().skip(1) {
        let g = got.get(t).unwrap_or_else(|| panic!("{id}: no row at {t}"));
        assert!(
            (g - kwh).abs() < 1e-3,
            "{id} hour {t}: HA {g} kWh, InfluxDB {kwh} kWh"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_finds_each_damage_and_repair_through_the_websocket_fixes_it() {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    simulate(&iurl, "2025-10-20", 20, 5);
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let c = ha_client(&ha);
    let env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", "Asia/Tokyo".to_string()),
        ("PWSYNC_HOMEASSISTANT__URL", ha.url()),
        ("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()),
    ];
    // To past InfluxDB's last point: the chains end where the data does.
    let (start, end) = (day_start("2025-10-21"), day_start("2025-11-10"));
    let home = influx_hourly(&iurl, Field::Home, start, end).await;
    let solar = influx_hourly(&iurl, Field::Solar, start, end).await;
    let clean = chain_of(&home, 7000.0);
    import_and_wait(&c, HOME, &clean).await;
    import_and_wait(&c, SOLAR, &chain_of(&solar, 300.0)).await;

    // A clean chain (InfluxDB's own gaps included) has no finding.
    let (code, report) = check(&env, &SCOPE);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["problems"], 0);
    // Over all of InfluxDB's data, InfluxDB's first day is missing from both chains, and all
    // of it from the four meters HA has no statistic of.
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    let kinds: Vec<String> = report["statistics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().clone())
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["missing_history"; 6], "{report}");
    assert_eq!(findings(&report, HOME)[0].0, day_start("2025-10-20"));

    // The damage, all in the home meter.
    let hour = |day: &str, h: i64| day_start(day) + h * HOUR;
    let spike = hour("2025-10-24", 14); // 3 hours imported with a foreign sum baseline
    let negative = hour("2025-10-27", 3); // the sum falls
    let outage = hour("2025-10-30", 9); // two hours stale, the third holds all three
    let dst_lost = day_start("2025-11-02") + 2 * HOUR; // 01:00 PST, the repeated hour
    for t in [spike, negative, outage, dst_lost] {
        assert!(
            home.contains_key(&t) && home.contains_key(&(t + 3 * HOUR)),
            "data at {t}"
        );
    }
    let mut damaged: Vec<StatRow> = Vec::new();
    let sum_at = |t: i64| clean.iter().find(|r| r.start == t).unwrap().sum.unwrap();
    for r in &clean {
        let mut r = *r;
        let s = r.sum.unwrap();
        if (spike..spike + 3 * HOUR).contains(&r.start) {
            r.sum = Some(s + 25_000.0);
        }
        if r.start >= negative {
            r.sum = Some(r.sum.unwrap() - home[&negative] - 1.5);
        }
        if r.start == outage || r.start == outage + HOUR {
            r.sum = Some(sum_at(outage - HOUR) - home[&negative] - 1.5);
        }
        if r.start == dst_lost {
            continue;
        }
        damaged.push(r);
    }
    c.clear_statistics(&[HOME.to_string()]).await.unwrap();
    import_and_wait(&c, HOME, &damaged).await;

    let (code, report) = check(&env, &SCOPE);
    assert_eq!(code, 3, "problems found: exit 3");
    let found = findings(&report, HOME);
    for want in [
        (spike, "spike"),
        (spike + 3 * HOUR, "negative"),
        (negative, "negative"),
        (outage, "mismatch"),
        (outage + HOUR, "mismatch"),
        (outage + 2 * HOUR, "mismatch"),
        (dst_lost + HOUR, "hole"),
    ] {
        assert!(
            found.contains(&(want.0, want.1.to_string())),
            "{want:?} not in {found:?}"
        );
    }
    assert_eq!(found.len(), 7, "nothing else: {found:?}");
    assert!(findings(&report, SOLAR).is_empty());
    // The table names the hour in local time and the likely cause.
    let table = pwsync(&env, &[&["check"], &SCOPE[..]].concat());
    assert_eq!(table.status.code(), Some(3));
    let text = String::from_utf8_lossy(&table.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("2025-11-02 02:00 PST") && text.contains("hole"),
        "{text}"
    );
    assert!(text.contains("foreign sum baseline"), "{text}");

    let before = sums(&c, HOME, start, end).await;
    let dry = ok(pwsync(
        &env,
        &[&["repair", "--dry-run", "--json"], &SCOPE[..]].concat(),
    ));
    let fixes = dry["statistics"][0]["fixes"].as_array().unwrap();
    assert_eq!(
        fixes.len(),
        8,
        "the 7 hours found and the hole's lost hour: {dry}"
    );
    assert!(fixes.iter().all(|f| f["how"] == "from_influx"), "{dry}");
    assert_eq!(
        sums(&c, HOME, start, end).await,
        before,
        "a dry run writes nothing"
    );

    let first = ok_timed(
        "repair",
        &env,
        &[&["repair", "--json"], &SCOPE[..]].concat(),
    );
    assert_eq!(
        first["rows"], dry["rows"],
        "the dry run reported the real run"
    );
    let (code, after) = check(&env, &SCOPE);
    assert_eq!(code, 0, "clean after repair: {after}");
    assert_matches_influx(&c, &iurl, HOME, Field::Home, start, end).await;
    assert_matches_influx(&c, &iurl, SOLAR, Field::Solar, start, end).await;

    let repaired = sums(&c, HOME, start, end).await;
    let second = ok(pwsync(&env, &[&["repair", "--json"], &SCOPE[..]].concat()));
    assert_eq!(second["rows"], 0, "a second repair writes nothing");
    assert_eq!(second["statistics"], serde_json::json!([]), "{second}");
    assert_eq!(sums(&c, HOME, start, end).await, repaired);

    // Bad input: one line naming the fix, exit 1, nothing written.
    for (args, says) in [
        (vec!["check", "--entity", "sensor.nope"], "not in HA"),
        (vec!["check", "--since", "2025-13-01"], "2025-13-01"),
        (vec!["check", "--chart", "/tmp/x.jpg"], ".svg or .png"),
        (vec!["repair", "--since", "2099-01-01"], "nothing to do"),
    ] {
        let o = pwsync(&env, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(says) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    assert_eq!(sums(&c, HOME, start, end).await, repaired);

    // Any energy statistic by id, and the chart.
    let svg = std::env::temp_dir().join(format!("pwsync-check-{}.svg", std::process::id()));
    let (code, one) = check(
        &env,
        &[
            "--since",
            SCOPE[1],
            "--entity",
            SOLAR,
            "--chart",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!((code, one["statistics"].as_array().unwrap().len()), (0, 1));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains(SOLAR) && drawn.contains("polyline"));
    let _ = std::fs::remove_file(&svg);
    chart_as_png(&env);
    foreign_statistic_in_wh(&env, &c).await;
    doctor(&env, &ha);
    ha.stop_async().await.unwrap();
}

/// `--chart FILE.png`: the same chart rasterised, with both lines and the title's text drawn.
fn chart_as_png(env: &[(&str, String)]) {
    let path = std::env::temp_dir().join(format!("pwsync-check-{}.png", std::process::id()));
    let (code, _) = check(
        env,
        &[
            "--since",
            SCOPE[1],
            "--entity",
            SOLAR,
            "--chart",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0);
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let png = resvg::tiny_skia::Pixmap::decode_png(&bytes).unwrap();
    // One panel: 40 px of title, 170 per panel, 20 below.
    assert_eq!((png.width(), png.height()), (960, 230));
    // The lines by hue (anti-aliased edges blend into white; on clean data they overlap).
    let pixels = png.pixels();
    let orange = pixels
        .iter()
        .filter(|p| p.red() > p.blue().saturating_add(60))
        .count();
    let blue = pixels
        .iter()
        .filter(|p| p.blue() > p.red().saturating_add(60))
        .count();
    assert!(orange > 100 && blue > 100, "orange {orange}, blue {blue}");
    let title_ink = pixels[..960 * 30]
        .iter()
        .filter(|p| p.red() < 60 && p.green() < 60 && p.blue() < 60)
        .count();
    assert!(
        title_ink > 200,
        "the title is drawn as text: {title_ink} dark pixels"
    );
}

/// Any energy statistic, here one kept in Wh with no InfluxDB field behind it: a negative hour
/// and a spike are found, and repaired to 0 kWh (InfluxDB has no data for them), in Wh.
async fn foreign_statistic_in_wh(env: &[(&str, String)], c: &HaClient) {
    const ID: &str = "sensor.grid_meter_wh";
    let t0 = day_start("2025-10-22");
    let wh = [1000.0, 1800.0, 1300.0, 2100.0, 90_000.0, 90_700.0, 91_500.0];
    let rows: Vec<StatRow> = wh
        .iter()
        .enumerate()
        .map(|(i, &v)| StatRow {
            start: t0 + i as i64 * HOUR,
            state: Some(v),
            sum: Some(v),
        })
        .collect();
    let meta = StatMeta {
        unit_of_measurement: Some("Wh".into()),
        ..StatMeta::energy_kwh(ID, "Grid meter")
    };
    c.import_statistics(&meta, &rows).await.unwrap();
    let end = t0 + 7 * HOUR;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while ha_rows(c, ID, t0, end).await.len() < rows.len() {
        assert!(Instant::now() < deadline, "HA did not write {ID}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let scope = ["--entity", ID, "--since", "2025-10-21"];
    let (code, report) = check(env, &scope);
    assert_eq!(code, 3);
    assert_eq!(
        findings(&report, ID),
        vec![
            (t0 + 2 * HOUR, "negative".into()),
            (t0 + 4 * HOUR, "spike".into())
        ]
    );
    let fixed = ok(pwsync(env, &[&["repair", "--json"], &scope[..]].concat()));
    let how: Vec<&str> = fixed["statistics"][0]["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["how"].as_str().unwrap())
        .collect();
    assert_eq!(how, ["zero", "zero"]);
    assert_eq!(check(env, &scope).0, 0);
    let kwh: Vec<f64> = ha_rows(c, ID, t0, end)
        .await
        .iter()
        .map(|r| r.sum.unwrap())
        .collect();
    // Changes 0.8, 0, 0.8, 0, 0.7, 0.8 kWh: both impossible hours removed, the rest kept.
    let want = [1.0, 1.8, 1.8, 2.6, 2.6, 3.3, 4.1];
    for (g, w) in kwh.iter().zip(want) {
        assert!((g - w).abs() < 1e-9, "{kwh:?}");
    }
}

/// `doctor` with everything reachable (a broker that wants the login written in the URL),
/// then with a wrong MQTT password (a warning) and a bad HA token (one line, exit 1): secrets
/// never printed.
fn doctor(env: &[(&str, String)], ha: &HaInstance) {
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start_with_login("pwsync", "mqtt-secret").unwrap();
    let mut env = env.to_vec();
    let mqtt = format!("mqtt://pwsync:mqtt-secret@127.0.0.1:{}", broker.port());
    env.push(("PWSYNC_MQTT__URL", mqtt));
    let o = pwsync(&env, &["doctor", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !out.contains(ha.token()) && !out.contains("mqtt-secret"),
        "{out}"
    );
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["homeassistant"]["version"], ha.version());
    // Each release the harness runs is one pwsync lists as tested.
    assert_eq!(d["homeassistant"]["version_tested"], true, "{d}");
    assert_eq!(d["homeassistant"]["time_zone"], ZONE);
    assert_eq!(
        d["homeassistant"]["pwsync_statistics"],
        serde_json::json!([HOME, SOLAR])
    );
    assert_eq!(d["mqtt"][1], true, "{d}");
    assert!(d["influxdb"]["version"].is_string() && d["influxdb"]["first"].is_i64());
    let queries = d["influxdb"]["recent_queries"].as_array().unwrap().len();
    assert!((1..=20).contains(&queries), "{queries}");
    assert!(
        d["next_action"].as_str().unwrap().contains("backfill"),
        "{d}"
    );
    let text = pwsync(&env, &["doctor"]);
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(
        shown.contains("Next: ")
            && shown.contains("time zone America/Los_Angeles")
            && shown.contains(&format!("pwsync is tested with HA {}", ha.version())),
        "{shown}"
    );

    const MQTT: &str = "PWSYNC_MQTT__URL";
    let mut wrong: Vec<_> = env.iter().filter(|e| e.0 != MQTT).cloned().collect();
    let url = format!("mqtt://pwsync:not-it-456@127.0.0.1:{}", broker.port());
    wrong.push((MQTT, url));
    let o = pwsync(&wrong, &["doctor", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["mqtt"][1], false, "{d}");
    assert!(
        out.contains("refused the login") && !out.contains("not-it-456"),
        "{out}"
    );

    const TOKEN: &str = "PWSYNC_HOMEASSISTANT__TOKEN";
    let mut bad: Vec<_> = env.iter().filter(|e| e.0 != TOKEN).cloned().collect();
    bad.push((TOKEN, "tok-wrong-123".to_string()));
    let o = pwsync(&bad, &["doctor"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("Home Assistant") && !err.contains("tok-wrong-123"),
        "{err}"
    );
}

/// 5-minute rows `start ..` spreading each hour's change evenly, as HA's compile leaves them,
/// plus `trailing` rows after the last hour (the hour HA is compiling).
fn five_minute_rows(hourly: &[StatRow], trailing: usize) -> Vec<StatRow> {
    let mut out = Vec::new();
    for w in hourly.windows(2) {
        let (prev, h) = (w[0], w[1]);
        let (s0, s1) = (prev.sum.unwrap(), h.sum.unwrap());
        let (m0, m1) = (prev.state.unwrap(), h.state.unwrap());
        for k in 0..12 {
            let f = (k + 1) as f64 / 12.0;
            out.push(StatRow {
                start: h.start + k * FIVE_MIN,
                state: Some(m0 + (m1 - m0) * f),
                sum: Some(s0 + (s1 - s0) * f),
            });
        }
    }
    let last = hourly[hourly.len() - 1];
    for k in 0..trailing as i64 {
        out.push(StatRow {
            start: last.start + HOUR + k * FIVE_MIN,
            state: Some(last.state.unwrap() + 0.01 * (k + 1) as f64),
            sum: Some(last.sum.unwrap() + 0.01 * (k + 1) as f64),
        });
    }
    out
}

/// Close `db` and wait until this process no longer holds `file` open (SQLite's worker thread
/// closes it after the pool returns), or pwsync rightly sees a process using the database.
async fn close(db: RecorderDb, file: &std::path::Path) {
    db.close().await;
    drop(db);
    let file = file.canonicalize().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|p| p == file))
    {
        assert!(
            Instant::now() < deadline,
            "the test still holds {}",
            file.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_on_the_recorder_database_puts_the_5_minute_chain_back_in_step() {
    let Some(influx) = servers() else { return };
    let iurl = influx.url();
    simulate(&iurl, "2025-10-20", 12, 9);
    let mut ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let (start, end) = (day_start("2025-10-21"), day_start("2025-10-30"));
    let home = influx_hourly(&iurl, Field::Home, start, end).await;
    let clean = chain_of(&home, 7000.0);
    import_and_wait(&ha_client(&ha), HOME, &clean).await;
    ha.stop_async().await.unwrap();
    let url = format!("sqlite://{}", ha.db_path().display());

    // HA stopped: the last two days' 5-minute rows, shifted by 4 kWh from `shifted` on (as a
    // 5-minute repair that ran before an import left them), and one negative hourly row.
    let tail: Vec<StatRow> = clean
        .iter()
        .filter(|r| r.start >= end - 2 * 86_400 - HOUR)
        .copied()
        .collect();
    let shifted = end - 10 * HOUR;
    let short: Vec<StatRow> = five_minute_rows(&tail, 4)
        .into_iter()
        .map(|r| StatRow {
            sum: r.sum.map(|s| if r.start >= shifted { s + 4.0 } else { s }),
            ..r
        })
        .collect();
    let negative = end - 30 * HOUR;
    let mut low = *clean.iter().find(|r| r.start == negative).unwrap();
    low.sum = Some(low.sum.unwrap() - home[&negative] - 2.0);
    let db = RecorderDb::open(&url).await.unwrap();
    db.apply(&WritePlan {
        writes: vec![StatWrite {
            meta: StatMeta::energy_kwh(HOME, "Home usage"),
            shifts: vec![],
            hourly: vec![low],
            short_term: short.clone(),
        }],
    })
    .await
    .unwrap();
    close(db, &ha.db_path()).await;

    let env = [
        ("PWSYNC_INFLUXDB__URL", iurl.clone()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_HOMEASSISTANT__RECORDER_DB", url.clone()),
    ];
    // The chain's days: InfluxDB's first day is missing history, not this test's damage (the
    // days after the chain are not: HA compiles the meter, as its 5-minute rows show).
    let scope = ["--target", "db", "--entity", HOME, "--since", "2025-10-21"];
    let (code, report) = check(&env, &scope);
    assert_eq!(code, 3);
    let found = findings(&report, HOME);
    let out_of_step: Vec<i64> = found
        .iter()
        .filter(|f| f.1 == "out_of_step")
        .map(|f| f.0)
        .collect();
    // The lowered hourly row no longer matches its own 5-minute rows either.
    let mut want = vec![negative];
    want.extend((shifted..end).step_by(HOUR as usize));
    assert_eq!(out_of_step, want);
    assert!(found.contains(&(negative, "negative".into())), "{found:?}");
    assert!(
        found.contains(&(negative + HOUR, "mismatch".into())),
        "{found:?}"
    );

    let args = [&["repair", "--json"], &scope[..]].concat();
    let before = sha_file(&ha.db_path());
    let dry = ok(pwsync(&env, &[&args[..], &["--dry-run"]].concat()));
    assert!(dry["rows"].as_u64().unwrap() > 10 * 12, "{dry}");
    assert_eq!(sha_file(&ha.db_path()), before, "a dry run writes nothing");
    let first = ok(pwsync(&env, &args));
    assert_eq!(first["rows"], dry["rows"]);
    let (code, after) = check(&env, &scope);
    assert_eq!(code, 0, "clean after repair: {after}");

    // The 5-minute rows of the hour HA compiles next continue from the last hourly row again.
    let db = RecorderDb::open(&url).await.unwrap();
    let last = db
        .last_before(HOME, Table::Hourly, end)
        .await
        .unwrap()
        .unwrap();
    let next = db
        .read(HOME, Table::ShortTerm, end, end + HOUR)
        .await
        .unwrap();
    assert!(
        (next[0].sum.unwrap() - last.sum.unwrap() - 0.01).abs() < 1e-9,
        "{next:?} after {last:?}"
    );
    db.close().await;

    let repaired = sha_file(&ha.db_path());
    let second = ok(pwsync(&env, &args));
    assert_eq!(second["rows"], 0, "a second repair writes nothing");
    assert_eq!(second["statistics"], serde_json::json!([]), "{second}");
    assert_eq!(sha_file(&ha.db_path()), repaired);
}
