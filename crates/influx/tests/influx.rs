//! Against a real InfluxDB 1.6 (Debian `influxdb`), started per test on a free loopback port.

use chrono_tz::Tz;
use pwsync_energy::{Field, HOUR};
use pwsync_influx::sim::{self, Simulator, MAX_POWER_W};
use pwsync_influx::{FieldMap, InfluxClient, InfluxConfig, InfluxError};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::or_skip;
use std::collections::BTreeMap;
use std::time::Duration;

const TZ: &str = "America/Los_Angeles";
/// 2025-01-01T00:00Z: the year spans both DST changes.
const ORIGIN: i64 = 1_735_689_600;

fn server() -> Option<InfluxServer> {
    or_skip(InfluxServer::start())
}

fn client(url: &str, f: impl FnOnce(&mut InfluxConfig)) -> InfluxClient {
    let mut cfg = InfluxConfig {
        url: url.into(),
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    f(&mut cfg);
    InfluxClient::new(cfg).unwrap()
}

async fn load(c: &InfluxClient, days: i64, seed: u64) -> Simulator {
    sim::create_schema(c).await.unwrap();
    let tz: Tz = TZ.parse().unwrap();
    let mut s = Simulator::new(seed, ORIGIN, tz);
    sim::write(c, &mut s, ORIGIN, ORIGIN + days * 86_400)
        .await
        .unwrap();
    Simulator::new(seed, ORIGIN, tz)
}

/// Trapezoids between consecutive minute samples, written plainly; only for hours whose 61
/// samples (:00 of this hour to :00 of the next) all exist.
fn independent_hours(sim: &mut Simulator, end: i64, f: Field) -> BTreeMap<i64, f64> {
    let samples: BTreeMap<i64, f64> = sim
        .minutes(ORIGIN, end)
        .map(|m| (m.t, m.field(f)))
        .collect();
    let mut out = BTreeMap::new();
    let mut h = ORIGIN;
    while h + HOUR < end {
        let pts: Vec<f64> = (0..=60)
            .filter_map(|k| samples.get(&(h + k * 60)).copied())
            .collect();
        if pts.len() == 61 {
            let wh: f64 = pts
                .windows(2)
                .map(|w| (w[0] + w[1]) / 2.0 * 60.0 / 3600.0)
                .sum();
            out.insert(h, wh);
        }
        h += HOUR;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_year_matches_an_independent_computation_and_influx_integral() {
    let Some(srv) = server() else { return };
    let c = client(&srv.url(), |_| {});
    let end = ORIGIN + 365 * 86_400;
    load(&c, 365, 42).await;
    let map = FieldMap::default();
    c.check_source(&map, &Field::ALL).await.unwrap();
    assert_eq!(
        c.first_timestamp(&map, &Field::ALL).await.unwrap(),
        Some(ORIGIN)
    );

    let got = c
        .energy(&map, &Field::ALL, ORIGIN, end, HOUR, 300)
        .await
        .unwrap();
    for f in [Field::Home, Field::Solar, Field::FromGrid] {
        let mine = &got[&f];
        assert_eq!(mine.buckets.len(), 365 * 24);
        let expected =
            independent_hours(&mut Simulator::new(42, ORIGIN, TZ.parse().unwrap()), end, f);
        assert!(
            expected.len() > 8000,
            "most hours are gap-free: {}",
            expected.len()
        );
        for b in &mine.buckets {
            if let Some(e) = expected.get(&b.start) {
                assert!(
                    (b.wh - e).abs() < 1.0,
                    "{f} hour {}: {} vs {}",
                    b.start,
                    b.wh,
                    e
                );
                assert!(mine.is_complete(b));
            }
            assert!(
                b.wh <= MAX_POWER_W + 1e-6,
                "{f} hour {} has {} Wh",
                b.start,
                b.wh
            );
        }

        // InfluxDB's own integral is exact on hours where this and the previous hour are gap-free.
        let q = format!(
            "SELECT integral(\"{}\",1h) FROM \"powerwall\".\"autogen\".\"http\" WHERE time >= {ORIGIN}s AND time < {end}s GROUP BY time(1h)",
            f.influx_name()
        );
        let text = reqwest::Client::new()
            .get(format!("{}/query", srv.url()))
            .query(&[("db", "powerwall"), ("q", q.as_str()), ("epoch", "s")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = v["results"][0]["series"][0]["values"].as_array().unwrap();
        let by_hour: BTreeMap<i64, f64> = mine.buckets.iter().map(|b| (b.start, b.wh)).collect();
        let mut compared = 0;
        for r in rows {
            let (t, wh) = (r[0].as_i64().unwrap(), r[1].as_f64().unwrap_or(0.0));
            if expected.contains_key(&t) && expected.contains_key(&(t - HOUR)) {
                assert!(
                    (by_hour[&t] - wh).abs() < 1.0,
                    "{f} {t}: pwsync {} influx {wh}",
                    by_hour[&t]
                );
                compared += 1;
            }
        }
        assert!(compared > 7000, "{compared}");
    }

    // The 48-hour outage (day 100, 06:00 UTC) is a gap, and no hour after it holds its energy.
    let outage = ORIGIN + 100 * 86_400 + 6 * 3600;
    let home = &got[&Field::Home];
    let g = home
        .gaps
        .iter()
        .find(|g| g.start <= outage + 60 && g.end >= outage + 48 * 3600)
        .expect("outage reported as a gap");
    assert!(g.seconds() >= 48 * 3600);
    let after = home
        .buckets
        .iter()
        .find(|b| b.start == pwsync_energy::floor_hour(g.end))
        .unwrap();
    assert!(
        after.wh <= MAX_POWER_W,
        "the hour after the outage holds only its own energy"
    );
    let inside: f64 = home
        .buckets
        .iter()
        .filter(|b| b.start >= g.start + HOUR && b.start + HOUR <= g.end)
        .map(|b| b.wh)
        .sum();
    assert_eq!(inside, 0.0, "no energy invented inside the outage");

    // Chunking: two halves equal the whole.
    let mid = ORIGIN + 123 * 86_400 + 7 * HOUR;
    let a = c
        .energy(&map, &[Field::Solar], ORIGIN, mid, HOUR, 300)
        .await
        .unwrap();
    let b = c
        .energy(&map, &[Field::Solar], mid, end, HOUR, 300)
        .await
        .unwrap();
    let whole = &got[&Field::Solar].buckets;
    let halves: Vec<_> = a[&Field::Solar]
        .buckets
        .iter()
        .chain(&b[&Field::Solar].buckets)
        .collect();
    assert_eq!(whole.len(), halves.len());
    for (w, h) in whole.iter().zip(halves) {
        assert!(
            (w.wh - h.wh).abs() < 1e-6 && w.covered == h.covered,
            "{w:?} {h:?}"
        );
    }
    assert!(c.recent_queries().len() <= 20 && !c.recent_queries().is_empty());
}

#[tokio::test]
async fn bad_input_gives_distinct_errors() {
    let Some(srv) = server() else { return };
    let ok = client(&srv.url(), |_| {});
    assert!(ok.ping().await.unwrap().starts_with("1."));
    load(&ok, 2, 1).await;
    let map = FieldMap::default();

    let e = client(&srv.url(), |c| c.database = "nope".into())
        .check_source(&map, &Field::ALL)
        .await
        .unwrap_err();
    assert!(
        matches!(e, InfluxError::DatabaseNotFound(ref d) if d == "nope"),
        "{e}"
    );
    let e = client(&srv.url(), |c| c.retention_policy = "nope".into())
        .check_source(&map, &Field::ALL)
        .await
        .unwrap_err();
    assert!(matches!(e, InfluxError::RetentionPolicyNotFound(_)), "{e}");
    let bad = FieldMap::with_overrides([(Field::Home, "house")]).unwrap();
    let e = ok.check_source(&bad, &Field::ALL).await.unwrap_err();
    assert!(
        matches!(e, InfluxError::UnknownField { ref field, .. } if field == "house"),
        "{e}"
    );
    assert!(FieldMap::with_overrides([(Field::Home, "x\" OR 1=1")]).is_err());

    let dead = format!("http://127.0.0.1:{}", pwsync_testkit::free_port());
    let e = client(&dead, |_| {}).ping().await.unwrap_err();
    assert!(matches!(e, InfluxError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("influxdb.url"));
    // The error message is one line.
    assert!(!e.to_string().contains('\n'));
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_and_never_printed() {
    let Some(srv) = or_skip(InfluxServer::start_with_auth("admin", "right-pw")) else {
        return;
    };
    let good = client(&srv.url(), |c| {
        c.username = Some("admin".into());
        c.password = Some("right-pw".into());
    });
    sim::create_schema(&good).await.unwrap();
    let bad = client(&srv.url(), |c| {
        c.username = Some("admin".into());
        c.password = Some("wrong-pw".into());
    });
    let e = bad
        .check_source(&FieldMap::default(), &Field::ALL)
        .await
        .unwrap_err();
    assert!(matches!(e, InfluxError::Auth), "{e}");
    let shown = format!("{e} {:?} {:?}", bad.config(), bad.recent_queries());
    assert!(!shown.contains("wrong-pw"), "{shown}");
}

/// Fault injection a real InfluxDB cannot produce: a peer that accepts and never answers.
#[tokio::test]
async fn a_silent_server_is_a_timeout_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let c = client(&url, |c| c.timeout = Duration::from_millis(500));
    let e = c.ping().await.unwrap_err();
    assert!(matches!(e, InfluxError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("timeout_secs"), "{e}");
    drop(listener);
}

/// A point stamped an hour after now (a gateway whose clock runs ahead) moves nothing: not the
/// samples, the hourly energy nor a live poll; the simulator never writes one.
#[tokio::test(flavor = "multi_thread")]
async fn points_after_now_are_never_read_nor_simulated() {
    let Some(srv) = server() else { return };
    let c = client(&srv.url(), |_| {});
    sim::create_schema(&c).await.unwrap();
    let tz: Tz = TZ.parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    let start = pwsync_energy::floor_hour(now) - 3 * HOUR;
    // Asked for a day that ends tomorrow: the simulator stops at now.
    let mut s = Simulator::new(5, start - 86_400, tz);
    sim::write(&c, &mut s, start, start + 86_400).await.unwrap();
    let map = FieldMap::default();
    let last = c.last_timestamp(&map, &Field::ALL).await.unwrap().unwrap();
    assert!(
        last <= chrono::Utc::now().timestamp(),
        "simulated up to {last}, now {now}"
    );
    assert!(last >= now - 120, "simulated up to now: {last} vs {now}");

    let window = start - 60;
    let before = c
        .energy(&map, &[Field::Home], window, now + 2 * HOUR, HOUR, 300)
        .await
        .unwrap();
    let live_before = c.live_window(&map, window).await.unwrap();
    // 30 kW for a minute an hour from now.
    let future = now + HOUR;
    let fields: Vec<String> = Field::ALL
        .iter()
        .map(|f| format!("{}=30000", map.name(*f).as_str()))
        .collect();
    let lines = format!(
        "http,month=Jan,year=2030 {} {future}\nhttp,month=Jan,year=2030 {} {}\n",
        fields.join(","),
        fields.join(","),
        future + 60
    );
    c.write_lines("autogen", lines).await.unwrap();
    assert_eq!(
        c.future_points(&map, &Field::ALL, chrono::Utc::now().timestamp())
            .await
            .unwrap(),
        Some((2, future + 60))
    );
    let after = c
        .energy(&map, &[Field::Home], window, now + 2 * HOUR, HOUR, 300)
        .await
        .unwrap();
    assert_eq!(
        after[&Field::Home].total_wh(),
        before[&Field::Home].total_wh(),
        "energy moved by a future point"
    );
    let live = c.live_window(&map, window).await.unwrap();
    for f in Field::ALL {
        assert!(
            live.samples(f)
                .iter()
                .all(|x| x.t <= chrono::Utc::now().timestamp()),
            "{f:?}"
        );
        assert_eq!(live.samples(f).len(), live_before.samples(f).len(), "{f:?}");
    }
    let samples = c
        .samples(&map, &Field::ALL, window, future + HOUR)
        .await
        .unwrap();
    assert!(
        samples.iter().flatten().all(|x| x.t < future),
        "a future sample was read"
    );
}

/// Gaps across chunk edges (and the range's edges) are whole, whatever the chunk size: a
/// minute series with gaps placed on 14-day, day and hour boundaries.
#[tokio::test]
async fn gaps_do_not_depend_on_the_chunk_size() {
    let Some(srv) = server() else { return };
    let c = client(&srv.url(), |_| {});
    sim::create_schema(&c).await.unwrap();
    const DAY: i64 = 86_400;
    // ORIGIN + 1 day is a 14-day boundary of the epoch, where the default chunks meet.
    assert_eq!((ORIGIN + DAY) % (14 * DAY), 0);
    let missing = [
        (DAY - 2 * HOUR, DAY + 3 * HOUR), // across the 14-day and a day boundary
        (2 * DAY + 20 * HOUR, 4 * DAY + 2 * HOUR), // whole days without a point
        (5 * DAY - 300, 5 * DAY + 600),   // across an hour, just over the limit
        (11 * HOUR, 13 * HOUR),           // across the range's start
        (6 * DAY - 3 * HOUR, 6 * DAY - 30 * 60), // across the range's end
    ];
    let is_missing = |rel: i64| missing.iter().any(|&(a, b)| rel >= a && rel < b);
    let mut lines = String::new();
    for rel in (0..7 * DAY).step_by(60) {
        if !is_missing(rel) {
            let w = 800.0 + (rel % 3600) as f64 / 10.0;
            lines.push_str(&format!("http home={w} {}\n", ORIGIN + rel));
        }
    }
    c.write_lines("autogen", lines).await.unwrap();

    let (start, end) = (ORIGIN + 12 * HOUR, ORIGIN + 6 * DAY - 2 * HOUR);
    // A gap runs from the last point before the missing minutes to the first after them.
    let mut expected: Vec<(i64, i64)> = missing
        .iter()
        .map(|&(a, b)| ((ORIGIN + a - 60).max(start), (ORIGIN + b).min(end)))
        .collect();
    expected.sort_unstable();
    let map = FieldMap::default();
    let mut totals = Vec::new();
    for chunk in [HOUR, 5 * HOUR, DAY, 3 * DAY, 14 * DAY] {
        let got = c
            .energy_chunked(&map, &[Field::Home], start, end, HOUR, 300, chunk)
            .await
            .unwrap();
        let home = &got[&Field::Home];
        let gaps: Vec<(i64, i64)> = home.gaps.iter().map(|g| (g.start, g.end)).collect();
        assert_eq!(gaps, expected, "chunks of {chunk} s");
        totals.push(home.total_wh());
    }
    let default = c
        .energy(&map, &[Field::Home], start, end, HOUR, 300)
        .await
        .unwrap();
    assert_eq!(default[&Field::Home].gaps.len(), expected.len());
    for t in &totals {
        assert!((t - totals[0]).abs() < 1e-6, "{totals:?}");
    }
}
