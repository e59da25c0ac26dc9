//! `pwsync energy --json` in zones whose local midnight is not on a UTC hour (Adelaide +9:30 and
//! +10:30, Kathmandu +5:45, Lord Howe +10:30 and +11 with a 30-minute DST shift), against a real
//! InfluxDB holding 1-minute points written here (not the simulator): every local day's energy
//! equals a plain computation from the same points between the exact local midnights, DST days
//! have their real length, and a gap across local midnight leaves both days incomplete.

mod common;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use common::{ok, pwsync};
use pwsync_influx::{sim, InfluxClient, InfluxConfig};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::or_skip;
use std::collections::BTreeMap;

const FIELDS: [&str; 6] = ["home", "solar", "from_grid", "to_grid", "from_pw", "to_pw"];
const GAP_LIMIT: i64 = 300;

fn utc(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

/// Two windows of points: around the April DST end (Adelaide and Lord Howe, 2025-04-06) and
/// the October DST start (2025-10-05).
const WINDOWS: [(&str, &str, &str, &str); 2] = [
    (
        "2025-04-03T00:00:00Z",
        "2025-04-09T00:00:00Z",
        "2025-04-04",
        "2025-04-08",
    ),
    (
        "2025-10-02T00:00:00Z",
        "2025-10-08T00:00:00Z",
        "2025-10-03",
        "2025-10-07",
    ),
];

/// Minutes without points, UTC `[from, to)`: each across some zone's local midnight.
const MISSING: [(&str, &str); 4] = [
    // Adelaide's midnight starting 2025-04-07 (+09:30) is 14:30Z: a 41-minute gap.
    ("2025-04-06T14:10:00Z", "2025-04-06T14:50:00Z"),
    // Lord Howe's 2025-04-08 (+10:30) starts at 13:30Z.
    ("2025-04-07T13:20:00Z", "2025-04-07T13:40:00Z"),
    // Kathmandu's 2025-10-06 (+05:45) starts at 18:15Z.
    ("2025-10-05T18:05:00Z", "2025-10-05T18:25:00Z"),
    // Three minutes across Kathmandu's 2025-04-05 midnight (18:15Z): a 4-minute step, within the
    // 5-minute limit, so bridged: no gap.
    ("2025-04-04T18:14:00Z", "2025-04-04T18:17:00Z"),
];

/// Each field's watts at `t`: shaped over the day so that half an hour moves real energy.
fn watts(field: usize, t: i64) -> f64 {
    let day = (t.rem_euclid(86_400)) as f64 / 86_400.0 * std::f64::consts::TAU;
    let minute = (t / 60) % 11;
    let base = [900.0, 2500.0, 700.0, 600.0, 800.0, 750.0][field];
    (base * (1.0 + (day + field as f64).sin()) + 17.0 * minute as f64).max(0.0)
}

fn points() -> Vec<i64> {
    let missing: Vec<(i64, i64)> = MISSING.iter().map(|(a, b)| (utc(a), utc(b))).collect();
    WINDOWS
        .iter()
        .flat_map(|(a, b, _, _)| (utc(a)..=utc(b)).step_by(60))
        .filter(|t| !missing.iter().any(|(a, b)| t >= a && t < b))
        .collect()
}

/// Local midnight of `d` computed with chrono-tz alone (every midnight here exists once).
fn midnight(d: NaiveDate, tz: Tz) -> i64 {
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .timestamp()
}

/// kWh of one field over `[s, e)`: trapezoids between consecutive points at most the gap limit
/// apart, a segment across `s` or `e` cut by linear interpolation; and the seconds of `[s, e)`
/// those segments cover.
fn independent(times: &[i64], field: usize, s: i64, e: i64) -> (f64, i64) {
    let mut wh = 0.0;
    let mut covered = 0;
    for w in times.windows(2) {
        let (t0, t1) = (w[0], w[1]);
        let (lo, hi) = (t0.max(s), t1.min(e));
        if lo >= hi || t1 - t0 > GAP_LIMIT {
            continue;
        }
        let at = |x: i64| {
            let (w0, w1) = (watts(field, t0), watts(field, t1));
            w0 + (w1 - w0) * (x - t0) as f64 / (t1 - t0) as f64
        };
        wh += 0.5 * (at(lo) + at(hi)) * (hi - lo) as f64 / 3600.0;
        covered += hi - lo;
    }
    (wh / 1000.0, covered)
}

async fn load(url: &str) -> Vec<i64> {
    let c = InfluxClient::new(InfluxConfig {
        url: url.into(),
        ..InfluxConfig::default()
    })
    .unwrap();
    sim::create_schema(&c).await.unwrap();
    let times = points();
    for chunk in times.chunks(5000) {
        let mut lines = String::new();
        for &t in chunk {
            let values: Vec<String> = FIELDS
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{f}={}", watts(i, t)))
                .collect();
            lines.push_str(&format!("http {} {t}\n", values.join(",")));
        }
        c.write_lines("autogen", lines).await.unwrap();
    }
    times
}

fn energy(url: &str, zone: &str, start: &str, end: &str) -> serde_json::Value {
    let env = [
        ("PWSYNC_INFLUXDB__URL", url.to_string()),
        ("PWSYNC_TIME_ZONE", zone.to_string()),
    ];
    ok(pwsync(
        &env,
        &["energy", "--start", start, "--end", end, "--json"],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn local_days_are_cut_at_the_exact_local_midnight() {
    let Some(influx) = or_skip(InfluxServer::start()) else {
        return;
    };
    let times = load(&influx.url()).await;
    // (zone, day, hours it has, complete): the DST days and the days either side of a gap.
    let expected: BTreeMap<(&str, &str), (f64, bool)> = [
        (("Australia/Adelaide", "2025-04-06"), (25.0, false)),
        (("Australia/Adelaide", "2025-04-07"), (24.0, false)),
        (("Australia/Adelaide", "2025-10-05"), (23.0, true)),
        (("Australia/Lord_Howe", "2025-04-06"), (24.5, true)),
        (("Australia/Lord_Howe", "2025-04-07"), (24.0, false)),
        (("Australia/Lord_Howe", "2025-04-08"), (24.0, false)),
        (("Australia/Lord_Howe", "2025-10-05"), (23.5, true)),
        (("Asia/Kathmandu", "2025-04-04"), (24.0, true)),
        (("Asia/Kathmandu", "2025-04-05"), (24.0, true)),
        (("Asia/Kathmandu", "2025-10-05"), (24.0, false)),
        (("Asia/Kathmandu", "2025-10-06"), (24.0, false)),
    ]
    .into_iter()
    .collect();
    let mut seen = 0;
    let mut shifted_wh = 0.0_f64;
    for zone in [
        "Australia/Adelaide",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
    ] {
        let tz: Tz = zone.parse().unwrap();
        for (_, _, first, last) in WINDOWS {
            let t0 = std::time::Instant::now();
            let json = energy(&influx.url(), zone, first, last);
            eprintln!(
                "{zone} {first}..{last}: pwsync energy in {:.2} s",
                t0.elapsed().as_secs_f64()
            );
            let days = json["days"].as_array().unwrap();
            assert_eq!(days.len(), 5, "{zone}: {json}");
            for day in days {
                let date: NaiveDate = day["date"].as_str().unwrap().parse().unwrap();
                let (s, e) = (midnight(date, tz), midnight(date.succ_opt().unwrap(), tz));
                let hours = (e - s) as f64 / 3600.0;
                assert_eq!(day["expected_hours"].as_f64(), Some(hours), "{zone} {day}");
                let mut complete = true;
                for (i, f) in FIELDS.iter().enumerate() {
                    let (kwh, covered) = independent(&times, i, s, e);
                    complete &= covered == e - s;
                    assert_eq!(
                        day["minutes_without_data"].as_f64(),
                        Some((e - s - covered) as f64 / 60.0),
                        "{zone} {day}"
                    );
                    let got = day["kwh"][f].as_f64().unwrap();
                    assert!(
                        (got - kwh).abs() < 1e-6,
                        "{zone} {date} {f}: pwsync {got} kWh, independent {kwh} kWh"
                    );
                    // The day of whole UTC hours starting in it, as before this was fixed.
                    let hour_day =
                        independent(&times, i, s - s.rem_euclid(3600), e - e.rem_euclid(3600)).0;
                    shifted_wh = shifted_wh.max((hour_day - kwh).abs() * 1000.0);
                }
                assert_eq!(day["complete"], complete, "{zone} {day}");
                if let Some(&(h, c)) = expected.get(&(zone, day["date"].as_str().unwrap())) {
                    // What `--json` readers see, whole hours as integers: 24, 25, 23.5.
                    assert_eq!(
                        day["expected_hours"].to_string(),
                        h.to_string(),
                        "{zone} {date}"
                    );
                    assert_eq!(hours, h, "{zone} {date}");
                    assert_eq!(day["complete"], c, "{zone} {date}");
                    seen += 1;
                }
            }
            if first == "2025-04-04" && zone == "Australia/Adelaide" {
                // The 41-minute gap from 23:39 to 00:20 local is cut at midnight: 21 + 20
                // (the 7th also has Lord Howe's gap at 22:49 local, 21 minutes).
                let missing = |d: &str| {
                    days.iter().find(|x| x["date"] == d).unwrap()["minutes_without_data"]
                        .as_f64()
                        .unwrap()
                };
                assert_eq!((missing("2025-04-06"), missing("2025-04-07")), (21.0, 41.0));
                // The gap across Adelaide's midnight is listed whole, in local time.
                let gaps = json["gaps"].as_array().unwrap();
                assert!(
                    gaps.iter()
                        .any(|g| g["start"].as_str().unwrap().contains("2025-04-06")
                            && g["end"].as_str().unwrap().contains("2025-04-07")
                            && g["minutes"] == 41.0),
                    "{json}"
                );
            }
        }
    }
    assert_eq!(seen, expected.len());
    // The data is shaped so that cutting at the UTC hour instead would be visibly wrong.
    assert!(shifted_wh > 50.0, "half an hour moves {shifted_wh} Wh");
}
