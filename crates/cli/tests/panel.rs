//! `serve`'s web panel in a real browser (Debian's chromium, driven through chromedriver over
//! WebDriver), against a real InfluxDB, Mosquitto and HA (2025.4.4 or `PWSYNC_TEST_HA`); and
//! its doors over plain HTTP: which `Host` and `Origin` it serves, and idle connections.

mod common;

use common::browser::*;
use common::*;
use fantoccini::{Client, Locator};
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::{free_port, or_skip, ServerProcess};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// InfluxDB with the last two days and today, and a broker; `None` where they are absent.
fn influx_and_broker() -> Option<(InfluxServer, Mosquitto)> {
    or_skip(Mosquitto::available())?;
    let influx = or_skip(InfluxServer::start())?;
    let start = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    simulate(&influx.url(), &start, 3, 7);
    Some((influx, Mosquitto::start().unwrap()))
}

fn base_env(
    influx: &InfluxServer,
    broker: &Mosquitto,
    web: u16,
    state: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ("PWSYNC_MQTT__URL", broker.url()),
        ("PWSYNC_WEB__LISTEN", format!("127.0.0.1:{web}")),
        ("PWSYNC_STATE_DIR", state.display().to_string()),
        ("PWSYNC_SERVE__CHECK_DAILY_AT", String::new()),
    ]
}

/// The panel answers (serve has started it).
async fn wait_for_panel(http: &reqwest::Client, url: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status() != reqwest::StatusCode::NOT_FOUND {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the panel never answered at {url}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn screenshot(b: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// A Chrome DevTools command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(&'static str, serde_json::Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.0, "params": self.1 });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The page as a screen `width` px wide (a phone below 600: HA's app) in HA's light or dark
/// scheme, checked from inside the page: the emulation took.
async fn view_as(b: &Client, width: u32, dark: bool) {
    let phone = width < 600;
    let height = if phone { 844 } else { 900 };
    b.issue_cmd(Cdp(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone }),
    ))
    .await
    .unwrap();
    let scheme = if dark { "dark" } else { "light" };
    b.issue_cmd(Cdp(
        "Emulation.setEmulatedMedia",
        serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
    ))
    .await
    .unwrap();
    let seen = b
        .execute(
            "return [window.innerWidth, matchMedia('(prefers-color-scheme: dark)').matches]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(seen, serde_json::json!([width, dark]), "the emulation");
}

/// The relative luminance (0 black, 1 white) of a computed `rgb(r, g, b)` colour.
fn luminance(css: &str) -> f64 {
    let channels: Vec<f64> = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|c| c.trim().parse::<f64>().unwrap() / 255.0)
        .map(|c| {
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    assert_eq!(channels.len(), 3, "{css}");
    0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
}

/// What must hold in every width and scheme: no sideways scrolling of the page, the body's
/// background dark in dark and light in light, no text that asks for a shell command.
async fn check_look(b: &Client, what: &str, width: u32, dark: bool) {
    let m = b
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth,              getComputedStyle(document.body).backgroundColor, document.body.innerText]",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, inner) = (m[0].as_u64().unwrap(), m[1].as_u64().unwrap());
    assert!(
        scroll <= inner,
        "{what} at {width} px scrolls sideways: {scroll} px wide"
    );
    let bg = m[2].as_str().unwrap();
    let l = luminance(bg);
    if dark {
        assert!(l < 0.05, "{what} in dark: body background {bg}");
    } else {
        assert!(l > 0.8, "{what} in light: body background {bg}");
    }
    let text = m[3].as_str().unwrap();
    assert!(
        !pwsync_web::advice::asks_for_a_command(text),
        "{what} asks for a shell command: {text}"
    );
}

/// The screenshots the README may show (`docs/screenshots`): Status in all four, two of each
/// other page.
const KEPT: [&str; 10] = [
    "guide-light-1280",
    "guide-done-dark-390",
    "status-light-1280",
    "status-dark-1280",
    "status-light-390",
    "status-dark-390",
    "jobs-light-1280",
    "jobs-dark-390",
    "log-dark-1280",
    "log-light-390",
];

/// Each width and scheme of the page open in `b`: checked, and a screenshot `NAME-SCHEME-WIDTH`
/// in `shots` (and in `$PWSYNC_SCREENSHOTS`, for the README).
async fn look_at(b: &Client, shots: &Path, name: &str) {
    for width in [1280, 390] {
        for dark in [false, true] {
            view_as(b, width, dark).await;
            check_look(b, name, width, dark).await;
            let shot = format!("{name}-{}-{width}", if dark { "dark" } else { "light" });
            let png = screenshot(b, shots, &shot).await;
            if !KEPT.contains(&shot.as_str()) {
                continue;
            }
            if let Some(out) = std::env::var_os("PWSYNC_SCREENSHOTS") {
                std::fs::create_dir_all(&out).unwrap();
                std::fs::copy(&png, Path::new(&out).join(format!("{shot}.png"))).unwrap();
            }
        }
    }
}

/// Status's meters: each shows its number at a readable precision, the exact one in `title`.
async fn check_meters(b: &Client) {
    let tiles = b
        .execute(
            "return [...document.querySelectorAll('section.meters .num')]\
               .map(e => [e.textContent, e.title])",
            vec![],
        )
        .await
        .unwrap();
    let tiles = tiles.as_array().unwrap();
    assert!(tiles.len() >= 18, "{tiles:?}");
    let mut shortened = 0;
    for t in tiles {
        let (shown, exact) = (t[0].as_str().unwrap(), t[1].as_str().unwrap());
        let Some(kwh) = exact.strip_suffix(" kWh") else {
            continue;
        };
        let v: f64 = kwh.parse().unwrap_or_else(|_| panic!("title {exact}"));
        assert_eq!(
            shown,
            pwsync_web::format::reading(v, Some("kWh")),
            "{exact}"
        );
        shortened += usize::from(!shown.starts_with(kwh));
    }
    assert!(
        shortened > 0,
        "no meter is shown shorter than exact: {tiles:?}"
    );
}

/// Jobs → backfill → Dry run with no dates (everything); the plan's report.
async fn dry_run_everything(b: &Client, base: &str) -> String {
    b.goto(&format!("{base}jobs")).await.unwrap();
    let plan = Locator::Id("plan-report");
    let report = click_then_wait(b, "backfill-dry-run", plan, Duration::from_secs(120));
    report.await.unwrap().text().await.unwrap()
}

/// Reload `url` until `css` is on the page, and return its text.
async fn reload_until(b: &Client, url: &str, css: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        b.goto(url).await.unwrap();
        if let Ok(e) = b.find(Locator::Css(css)).await {
            return e.text().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{css} never appeared on {url}: {}",
            b.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a browser test of the panel with HA needs: InfluxDB with the last days, a broker,
/// chromedriver and HA; `None` where they are absent.
struct WithHa {
    influx: InfluxServer,
    broker: Mosquitto,
    dir: tempfile::TempDir,
    _driver: ServerProcess,
    driver_port: u16,
    ha: HaInstance,
}

fn with_ha() -> Option<WithHa> {
    let (influx, broker) = influx_and_broker()?;
    let dir = tempfile::tempdir().unwrap();
    let (driver, driver_port) = chromedriver(dir.path())?;
    let ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    Some(WithHa {
        influx,
        broker,
        dir,
        _driver: driver,
        driver_port,
        ha,
    })
}

/// `serve` with HA and its panel, answering: the child, the panel's address, serve's log.
async fn serve_with_ha(
    w: &WithHa,
    http: &reqwest::Client,
) -> (std::process::Child, String, PathBuf) {
    serve_for(&w.influx, &w.broker, &w.ha, w.dir.path(), http).await
}

/// `serve` with HA's websocket (so its jobs) and the panel on a free port, its state and log
/// in `dir`, once the panel answers: the process, the panel's address and serve's log.
async fn serve_for(
    influx: &InfluxServer,
    broker: &Mosquitto,
    ha: &HaInstance,
    dir: &Path,
    http: &reqwest::Client,
) -> (std::process::Child, String, PathBuf) {
    let web = free_port();
    let mut e = base_env(influx, broker, web, dir);
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    let log = dir.join("serve.log");
    let serve = spawn_serve_with(&e, "2", "info", std::fs::File::create(&log).unwrap().into());
    let base = format!("http://127.0.0.1:{web}/");
    wait_for_panel(http, &base, &log).await;
    (serve, base, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_then_apply_backfills_with_progress_and_history_turns_clean() {
    let Some(w) = with_ha() else {
        return;
    };
    let (dir, driver_port) = (&w.dir, w.driver_port);
    let c = ha_client(&w.ha);
    let http = reqwest::Client::new();
    let (mut serve, base, log) = serve_with_ha(&w, &http).await;

    // Every link, script and stylesheet is relative: the same pages work under HA's ingress.
    let pages = [
        "",
        "history",
        "jobs",
        "log",
        "panel.css",
        "panel.js",
        "history.css",
        "history.js",
    ];
    for page in pages {
        let text = http
            .get(format!("{base}{page}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for attr in ["href=", "src=", "action=", "url(", "EventSource(", "fetch("] {
            for absolute in ["\"/", "\"http", "'/", "(/"] {
                let bad = format!("{attr}{absolute}");
                assert!(!text.contains(&bad), "{page}: {bad} in {text}");
            }
        }
    }
    // A form posted without the page's CSRF token changes nothing.
    let forged = http
        .post(format!("{base}dry-run"))
        .form(&[("job", "backfill"), ("csrf", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), reqwest::StatusCode::FORBIDDEN);

    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let b = browser(driver_port, &dir.path().join("profile")).await;

    // Status: doctor's findings (made in the background) and the live meters.
    let influx_part = reload_until(&b, &base, "section.part", Duration::from_secs(90)).await;
    assert!(influx_part.contains("InfluxDB"), "{influx_part}");
    let meters = reload_until(&b, &base, "section.meters .num", Duration::from_secs(60)).await;
    assert!(meters.contains("kWh"), "{meters}");
    screenshot(&b, &shots, "status").await;

    // Jobs: a dry run of "backfill everything" shows the CLI's report and writes nothing.
    let now = chrono::Utc::now().timestamp();
    let day_ago = now - 3 * 86_400;
    let report = dry_run_everything(&b, &base).await;
    assert!(report.contains("Dry run, nothing written"), "{report}");
    assert!(report.contains(HOME), "{report}");
    assert!(
        ha_rows(&c, HOME, day_ago, now).await.is_empty(),
        "the dry run wrote"
    );

    // Apply that plan: the progress bar runs to the end, and HA holds the hours.
    let done = Locator::Css("#run[data-state='succeeded']");
    click_then_wait(&b, "apply", done, Duration::from_secs(240))
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()));
    let bar = b
        .execute("return document.getElementById('progress').value", vec![])
        .await
        .unwrap();
    assert_eq!(bar.as_f64(), Some(1.0), "{bar}");
    screenshot(&b, &shots, "jobs").await;
    let rows = ha_rows(&c, HOME, day_ago, now).await;
    assert!(rows.len() >= 24, "{} hours written", rows.len());

    // History: the check serve runs after the job says "clean", with the daily chart.
    let verdict = reload_until(
        &b,
        &format!("{base}history"),
        "#verdict",
        Duration::from_secs(120),
    )
    .await;
    assert!(verdict.starts_with("clean"), "{verdict}");
    chart_drawn(&b).await;
    screenshot(&b, &shots, "history").await;

    // Log: the check serve ran after the job, the real run, then its dry run, each with what
    // started it and its report.
    b.goto(&format!("{base}log")).await.unwrap();
    let entries = b.find_all(Locator::Css("details")).await.unwrap();
    assert_eq!(entries.len(), 3);
    let check = entries[0].text().await.unwrap();
    assert!(
        check.contains("check · panel") && check.contains("no problems"),
        "{check}"
    );
    let run = entries[1].text().await.unwrap();
    assert!(
        run.contains("backfill · panel") && !run.contains("dry run"),
        "{run}"
    );
    assert!(entries[2].text().await.unwrap().contains("(dry run)"));
    screenshot(&b, &shots, "log").await;

    // A second dry run: HA holds every hour now, so there is nothing to apply, and it says so.
    let report = dry_run_everything(&b, &base).await;
    assert!(
        report.contains("incomplete: hours InfluxDB covers only in part"),
        "the legend: {report}"
    );
    let nothing = b.find(Locator::Id("nothing")).await.unwrap();
    assert!(nothing.text().await.unwrap().contains("Nothing to write"));
    assert!(
        b.find(Locator::Id("apply")).await.is_err(),
        "a plan of 0 rows offers Apply"
    );

    // HA's look, light and dark, on a desktop and on a phone: Jobs (that plan), Status, Log.
    look_at(&b, &shots, "jobs").await;
    b.goto(&base).await.unwrap();
    check_meters(&b).await;
    look_at(&b, &shots, "status").await;
    b.goto(&format!("{base}log")).await.unwrap();
    look_at(&b, &shots, "log").await;
    b.goto(&format!("{base}history")).await.unwrap();
    check_look(&b, "history", 390, true).await;
    b.close().await.unwrap();
    // The panel open, every page served, a job run: serve's memory stays small (target 40 MB).
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", serve.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    eprintln!("serve's resident memory with the panel open: {} kB", rss_kb);
    assert!(rss_kb < 40 * 1024, "serve uses {rss_kb} kB");

    // The log outlives serve (the state directory).
    stop(&mut serve);
    let kept = std::fs::read_to_string(dir.path().join("panel-log.json")).unwrap();
    assert!(kept.contains("backfill --all"), "{kept}");

    // `PWSYNC_PANEL_SCREENSHOTS=DIR` keeps the four pages for the README.
    if let Some(out) = std::env::var_os("PWSYNC_PANEL_SCREENSHOTS") {
        for name in ["status", "history", "jobs", "log"] {
            std::fs::copy(
                shots.join(format!("{name}.png")),
                Path::new(&out).join(format!("panel-{name}.png")),
            )
            .unwrap();
        }
    }
}

/// History's chart has drawn its canvas (uPlot, from `history/series.json`).
async fn chart_drawn(b: &Client) {
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#chart-plot canvas"))
        .await
        .unwrap_or_else(|e| panic!("no chart: {e}"));
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The x range History's chart shows, from the page's hook.
async fn chart_x(b: &Client) -> (i64, i64) {
    let x = b
        .execute(
            "const x = window.pwsyncChart.scales.x; return [x.min, x.max];",
            vec![],
        )
        .await
        .unwrap();
    let v = |i: usize| x[i].as_f64().unwrap().round() as i64;
    (v(0), v(1))
}

/// Wait until the chart shows `[min, max)`.
async fn chart_shows(b: &Client, min: i64, max: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let x = chart_x(b).await;
        if x == (min, max) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the chart shows {x:?}, not {:?}",
            (min, max)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_chart_shows_each_hour_and_a_click_on_a_problem_zooms_to_its_day() {
    let Some(w) = with_ha() else {
        return;
    };
    let c = ha_client(&w.ha);
    // HA holds InfluxDB's hours of the home meter, but one hour holds 5 kWh too much.
    let now = chrono::Utc::now().timestamp();
    let compiled = pwsync_energy::floor_hour(now - 900);
    let home = influx_hourly(
        &w.influx.url(),
        pwsync_energy::Field::Home,
        now - 4 * 86_400,
        compiled,
    )
    .await;
    let first = *home.keys().next().unwrap();
    let wrong = first + 30 * pwsync_energy::HOUR;
    assert!(home.contains_key(&wrong));
    let mut rows = chain_of(&home, 1000.0);
    for r in rows.iter_mut().filter(|r| r.start >= wrong) {
        r.sum = r.sum.map(|s| s + 5.0);
        r.state = r.state.map(|s| s + 5.0);
    }
    import_and_wait(&c, HOME, &rows).await;
    let http = reqwest::Client::new();
    let (mut serve, base, _) = serve_with_ha(&w, &http).await;
    let b = browser(w.driver_port, &w.dir.path().join("profile")).await;

    // "Check now", then the page shows the problems and the chart of the home meter.
    b.goto(&format!("{base}history")).await.unwrap();
    let before = pwsync_energy::floor_hour(chrono::Utc::now().timestamp() - 900);
    b.find(Locator::Id("check-now"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = reload_until(
        &b,
        &format!("{base}history"),
        "#verdict.problems",
        Duration::from_secs(120),
    )
    .await;
    let after = pwsync_energy::floor_hour(chrono::Utc::now().timestamp() - 900);
    assert!(verdict.contains("problem"), "{verdict}");
    chart_drawn(&b).await;
    let statistic = b
        .execute(
            "return document.getElementById('chart-statistic').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        statistic.as_str(),
        Some(HOME),
        "the meter with the wrong hour first"
    );

    // Its data: one value per hour from InfluxDB's first hour to the last compiled one, HA's
    // 5 kWh above InfluxDB's in the wrong hour.
    let series: serde_json::Value = http
        .get(format!("{base}history/series.json?statistic={HOME}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hours = &series["hours"];
    assert_eq!(hours["start"].as_i64(), Some(first), "{hours}");
    let count = hours["ha"].as_array().unwrap().len() as i64;
    assert!(
        ((before - first) / 3600..=(after - first) / 3600).contains(&count),
        "{count} hours from {first} to {before}..{after}"
    );
    assert_eq!(hours["influx"].as_array().unwrap().len() as i64, count);
    let i = ((wrong - first) / 3600) as usize;
    let (ha_kwh, influx_kwh) = (
        hours["ha"][i].as_f64().unwrap(),
        hours["influx"][i].as_f64().unwrap(),
    );
    assert!(
        (ha_kwh - influx_kwh - 5.0).abs() < 0.01,
        "{ha_kwh} {influx_kwh}"
    );
    assert!((influx_kwh - home[&wrong]).abs() < 0.001, "{influx_kwh}");

    // The wrong hour is listed; a click on it shows its day (12 hours either side).
    let row = format!("#problems tr[data-statistic='{HOME}'][data-start='{wrong}']");
    let listed = b
        .find(Locator::Css(&format!("{row} button.show-problem")))
        .await;
    let Ok(listed) = listed else {
        panic!(
            "{row} is not listed: {}",
            b.source().await.unwrap_or_default()
        );
    };
    listed.click().await.unwrap();
    let hour = pwsync_energy::HOUR;
    chart_shows(&b, wrong - 12 * hour, wrong + 13 * hour).await;
    b.find(Locator::Css(&format!("{row}.picked")))
        .await
        .unwrap();
    let shots = w.dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    screenshot(&b, &shots, "history-problem").await;

    // The range buttons: everything, then the last day of it.
    click(&b, "#chart .chart-ranges button[data-days='0']").await;
    let end = first + count * hour;
    chart_shows(&b, first, end).await;
    click(&b, "#chart .chart-ranges button[data-days='1']").await;
    chart_shows(&b, end - 24 * hour, end).await;
    b.close().await.unwrap();
    stop(&mut serve);
    if let Some(out) = std::env::var_os("PWSYNC_PANEL_SCREENSHOTS") {
        std::fs::copy(
            shots.join("history-problem.png"),
            Path::new(&out).join("panel-history-chart.png"),
        )
        .unwrap();
    }
}

/// The panel's HTTP side alone on a free loopback port, holding a check of three years of one
/// meter with one problem; its address and the problem's hour.
async fn panel_with_years() -> (String, i64, i64, i64) {
    use pwsync_web::*;
    const DAYS: i64 = 1096;
    let start = 1_701_417_600; // 2023-12-01 00:00 PST
    let hours = (DAYS * 24) as usize;
    let value = |i: usize| (i % 24) as f32 * 0.125;
    let day_sum: f32 = (0..24).map(value).sum();
    let problem = start + 500 * 86_400 + 10 * 3600;
    let series = ChartSeries {
        statistic: HOME.into(),
        time_zone: ZONE.into(),
        hours: HourColumns {
            start,
            step: 3600,
            ha: (0..hours).map(value).collect(),
            influx: (0..hours).map(value).collect(),
        },
        days: DayColumns {
            start: (0..DAYS).map(|d| start + d * 86_400).collect(),
            ha: vec![day_sum; DAYS as usize],
            influx: vec![day_sum; DAYS as usize],
        },
    };
    let history = HistoryView {
        checked: Some(CheckedView {
            at: "now".into(),
            by: "test".into(),
            from: "2023-12-01".into(),
            to: "2026-12-01".into(),
            problems: vec![ProblemRow {
                hour: "2025-04-14 03:00 PDT".into(),
                statistic: HOME.into(),
                kind: "spike".into(),
                found: "9.000".into(),
                expected: "1.000".into(),
                cause: "a test".into(),
                start: problem,
                end: problem + 3600,
            }],
            series: vec![std::sync::Arc::new(series)],
        }),
    };
    let backend = fixed::Fixed::new(StatusView::default(), history, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let router = router(
        std::sync::Arc::new(backend),
        Access::new(None, None, Hosts::default()),
    );
    tokio::spawn(pwsync_web::serve(listener, router, std::future::pending()));
    (base, start, start + DAYS * 86_400, problem)
}

/// What History's chart draws now: "days" or "hours", and how many x values.
async fn chart_mode(b: &Client) -> (String, u64) {
    let v = b
        .execute(
            "return [document.getElementById('chart').dataset.mode, window.pwsyncChart.data[0].length];",
            vec![],
        )
        .await
        .unwrap();
    (v[0].as_str().unwrap().to_string(), v[1].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_years_the_history_chart_shows_days_and_each_hour_once_zoomed_in() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, driver_port)) = chromedriver(dir.path()) else {
        return;
    };
    let (base, first, end, problem) = panel_with_years().await;
    let b = browser(driver_port, &dir.path().join("profile")).await;
    b.goto(&format!("{base}history")).await.unwrap();
    chart_drawn(&b).await;
    // Three years: daily sums (each day and the end), all of them shown.
    chart_shows(&b, first, end).await;
    assert_eq!(chart_mode(&b).await, ("days".into(), 1097));
    // A month: each hour.
    click(&b, "#chart .chart-ranges button[data-days='30']").await;
    chart_shows(&b, end - 30 * 86_400, end).await;
    assert_eq!(chart_mode(&b).await, ("hours".into(), 26_305));
    // A double click shows everything again, as days.
    b.execute(
        "document.querySelector('#chart-plot .u-over').dispatchEvent(new MouseEvent('dblclick', {bubbles: true}));",
        vec![],
    )
    .await
    .unwrap();
    chart_shows(&b, first, end).await;
    assert_eq!(chart_mode(&b).await.0, "days");
    // The problem: its day, in hours.
    click(&b, "#problems button.show-problem").await;
    chart_shows(&b, problem - 12 * 3600, problem + 13 * 3600).await;
    assert_eq!(chart_mode(&b).await.0, "hours");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_request_needs_it_and_it_is_never_shown() {
    let Some((influx, broker)) = influx_and_broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let token = "panel-T0KEN-93f1";
    let mut e = base_env(&influx, &broker, web, dir.path());
    // Reachable from other machines, so the token is required (loopback is where it listens).
    e.retain(|(k, _)| *k != "PWSYNC_WEB__LISTEN");
    e.push(("PWSYNC_WEB__LISTEN", format!("0.0.0.0:{web}")));
    e.push(("PWSYNC_WEB__TOKEN", token.to_string()));
    let log = dir.path().join("serve.log");
    let mut serve = spawn_serve_with(&e, "2", "info", std::fs::File::create(&log).unwrap().into());
    let base = format!("http://127.0.0.1:{web}/");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    wait_for_panel(&http, &base, &log).await;

    let without = http.get(&base).send().await.unwrap();
    assert_eq!(without.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(!without.text().await.unwrap().contains(token));
    let wrong = http
        .get(&base)
        .bearer_auth("panel-T0KEN-93f0")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    let bearer = http.get(&base).bearer_auth(token).send().await.unwrap();
    assert_eq!(bearer.status(), reqwest::StatusCode::OK);
    // Once in the address, then a cookie that the next request carries instead.
    let once = http
        .get(format!("{base}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(once.status(), reqwest::StatusCode::OK);
    let cookie = once.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = http
        .get(format!("{base}jobs"))
        .header(reqwest::header::COOKIE, pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), reqwest::StatusCode::OK);
    let page = with_cookie.text().await.unwrap();
    assert!(!page.contains(token), "the token is in the page");
    stop(&mut serve);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("web panel on"), "{said}");
    assert!(!said.contains(token), "the token is in serve's log: {said}");
}

/// The CSRF token of the panel's forms, from the Jobs page at `base`.
async fn csrf_of(http: &reqwest::Client, base: &str) -> String {
    let page = http
        .get(format!("{base}jobs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[at..at + 64].to_string()
}

/// How many jobs the panel's Log holds.
async fn logged_jobs(http: &reqwest::Client, base: &str) -> usize {
    let page = http.get(format!("{base}log")).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    page.text().await.unwrap().matches("<details").count()
}

/// Request headers: name, value.
type Headers<'a> = &'a [(&'static str, &'a str)];

/// A dry run of "backfill everything" posted with the page's token and `headers`.
async fn post_dry_run(
    http: &reqwest::Client,
    base: &str,
    csrf: &str,
    headers: Headers<'_>,
) -> reqwest::Response {
    let mut req = http
        .post(format!("{base}dry-run"))
        .form(&[("job", "backfill"), ("csrf", csrf)]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// `serve` (no HA) with its panel on a free loopback port and `extra` settings, ready.
struct Served {
    _servers: (InfluxServer, Mosquitto),
    _dir: tempfile::TempDir,
    serve: std::process::Child,
    web: u16,
    base: String,
    http: reqwest::Client,
}

async fn serve_panel(extra: &[(&'static str, &str)]) -> Option<Served> {
    let (influx, broker) = influx_and_broker()?;
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let mut e = base_env(&influx, &broker, web, dir.path());
    e.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let log = dir.path().join("serve.log");
    let serve = spawn_serve_with(&e, "2", "info", std::fs::File::create(&log).unwrap().into());
    let base = format!("http://127.0.0.1:{web}/");
    let http = reqwest::Client::new();
    wait_for_panel(&http, &base, &log).await;
    Some(Served {
        _servers: (influx, broker),
        _dir: dir,
        serve,
        web,
        base,
        http,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebound_name_and_a_cross_site_form_are_refused_and_the_panels_own_pages_work() {
    let Some(mut p) = serve_panel(&[("PWSYNC_WEB__HOSTS", "pwsync.test, other.test:1")]).await
    else {
        return;
    };
    let (http, base, web) = (&p.http, p.base.as_str(), p.web);
    let csrf = csrf_of(http, base).await;
    let rebound = format!("attacker.example:{web}");
    let own = format!("http://127.0.0.1:{web}");
    let own_jobs = format!("{own}/jobs");

    // DNS rebinding: the attacker's name, the panel's address. Nothing is served, not even
    // the Jobs page with its token, and a form gets no further.
    for page in ["", "jobs", "log", "events"] {
        let r = http
            .get(format!("{base}{page}"))
            .header("host", rebound.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            reqwest::StatusCode::MISDIRECTED_REQUEST,
            "{page}"
        );
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let body = r.text().await.unwrap();
        assert!(
            body.contains("web.hosts") && !body.contains(&csrf),
            "{body}"
        );
    }
    let r = post_dry_run(
        http,
        base,
        &csrf,
        &[
            ("host", rebound.as_str()),
            ("origin", "http://attacker.example"),
        ],
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::MISDIRECTED_REQUEST);
    let other_port = post_dry_run(http, base, &csrf, &[("host", "other.test:2")]).await;
    assert_eq!(
        other_port.status(),
        reqwest::StatusCode::MISDIRECTED_REQUEST
    );
    // Another site's page posting to the panel's own name, with the right token: refused.
    for cross in [
        [("origin", "http://attacker.example")],
        [("origin", "null")],
        [("referer", "http://attacker.example/x.html")],
    ] {
        let r = post_dry_run(http, base, &csrf, &cross).await;
        assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN, "{cross:?}");
        assert!(r.text().await.unwrap().contains("another site"));
    }
    assert_eq!(logged_jobs(http, base).await, 0, "a refused form ran a job");

    // The panel's own pages: by address, by localhost, by a name in web.hosts.
    for host in [
        format!("127.0.0.1:{web}"),
        format!("localhost:{web}"),
        format!("pwsync.test:{web}"),
    ] {
        let r = http.get(base).header("host", &host).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{host}");
    }
    // A form from its own page runs; so does one without Origin or Referer (curl).
    let r = post_dry_run(
        http,
        base,
        &csrf,
        &[("origin", own.as_str()), ("referer", own_jobs.as_str())],
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert!(
        r.text().await.unwrap().contains("csrf"),
        "the Jobs page again"
    );
    assert_eq!(logged_jobs(http, base).await, 1);
    let r = post_dry_run(http, base, &csrf, &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(logged_jobs(http, base).await, 2);
    stop(&mut p.serve);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_the_ingress_proxy_any_host_is_served_but_not_a_cross_site_form() {
    // The test is the ingress proxy: HA forwards the browser's Host, HA's own name.
    let Some(mut p) = serve_panel(&[("PWSYNC_WEB__INGRESS_PROXY", "127.0.0.1")]).await else {
        return;
    };
    let (http, base) = (&p.http, p.base.as_str());
    let ha = "homeassistant.local:8123";
    let ha_origin = format!("http://{ha}");
    let r = http
        .get(base)
        .header("host", ha)
        .header("x-ingress-path", "/api/hassio_ingress/abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let csrf = csrf_of(http, base).await;

    // HA's page through the proxy; through a proxy in front of HA that rewrote Host but
    // said which name it was for; another site's page.
    let cases: [(Headers, reqwest::StatusCode, usize); 3] = [
        (
            &[("host", ha), ("origin", &ha_origin)],
            reqwest::StatusCode::OK,
            1,
        ),
        (
            &[("x-forwarded-host", ha), ("origin", &ha_origin)],
            reqwest::StatusCode::OK,
            2,
        ),
        (
            &[("host", ha), ("origin", "http://evil.example")],
            reqwest::StatusCode::FORBIDDEN,
            2,
        ),
    ];
    for (headers, status, jobs) in cases {
        let r = post_dry_run(http, base, &csrf, headers).await;
        assert_eq!(r.status(), status, "{headers:?}");
        assert_eq!(logged_jobs(http, base).await, jobs, "{headers:?}");
    }

    // Anyone else than the proxy (here from 127.0.0.2) is turned away, whatever its Host.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = elsewhere.get(base).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    stop(&mut p.serve);
}

/// The soft limit on open files raised to the hard one; the limit now.
fn raise_own_open_files() -> libc::rlim_t {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only touch the struct they are given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

/// `pwsync serve --interval 1` with at most `files` open files (soft and hard), as a
/// default 1,024 leaves it.
fn spawn_serve_limited(env: &[(&str, String)], files: u64, log: &Path) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pwsync"));
    cmd.args(["serve", "--interval", "1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PWSYNC_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let limit = libc::rlimit {
        rlim_cur: files as libc::rlim_t,
        rlim_max: files as libc::rlim_t,
    };
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    cmd.spawn().unwrap()
}

fn last_poll(state: &Path) -> Option<i64> {
    let beat = std::fs::read_to_string(state.join("heartbeat.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&beat).ok()?["last_poll"].as_i64()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread")]
async fn eleven_hundred_idle_connections_stop_neither_polls_nor_the_panel() {
    const IDLE: usize = 1_100;
    let Some((influx, broker)) = influx_and_broker() else {
        return;
    };
    let own = raise_own_open_files();
    assert!(
        own > IDLE as libc::rlim_t + 200,
        "this test opens {IDLE} sockets: raise the hard open files limit (now {own})"
    );
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let e = base_env(&influx, &broker, web, dir.path());
    let log = dir.path().join("serve.log");
    let mut serve = spawn_serve_limited(&e, 1024, &log);
    let base = format!("http://127.0.0.1:{web}/");
    let http = reqwest::Client::new();
    wait_for_panel(&http, &base, &log).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while last_poll(dir.path()).is_none() {
        assert!(Instant::now() < deadline, "no first poll");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Half of them send nothing, half stop in the middle of their headers.
    let t0 = Instant::now();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], web).into();
    let idle = tokio::task::spawn_blocking(move || {
        (0..IDLE)
            .map(|i| {
                let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .expect("the panel's port took the connection");
                if i % 2 == 1 {
                    use std::io::Write;
                    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        .unwrap();
                }
                s
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let opened = chrono::Utc::now().timestamp();
    eprintln!(
        "{IDLE} idle connections opened in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // The panel answers a normal visit at once, on a new connection, and polls go on.
    let t1 = Instant::now();
    let r = reqwest::Client::new()
        .get(&base)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the panel answers");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    eprintln!(
        "a page with {IDLE} idle connections open: {} ms",
        t1.elapsed().as_millis()
    );
    assert!(t1.elapsed() < Duration::from_secs(3), "{:?}", t1.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut polls = 0;
    let mut seen = last_poll(dir.path()).unwrap();
    while polls < 3 {
        let now = last_poll(dir.path()).unwrap_or(seen);
        if now > seen && now > opened {
            polls += 1;
            seen = now;
        }
        assert!(
            Instant::now() < deadline,
            "polls stopped with {IDLE} idle connections open ({polls} since): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What made room: the panel holds a quarter of the limit at most.
    let fds = open_fds(serve.id());
    eprintln!("serve holds {fds} descriptors (limit 1024)");
    assert!(fds < 512, "serve holds {fds} descriptors");
    drop(idle);
    stop(&mut serve);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("poll failed"), "{said}");
}

const TESLA_GRID: &str = "sensor.my_home_grid_imported";

/// HA's storage with Teslemetry's grid meter in the Energy dashboard (and in the registry), as
/// a Teslemetry user has it before pwsync.
fn teslemetry_dashboard() -> Vec<(String, String)> {
    let registry = serde_json::json!({
        "version": 1, "minor_version": 1, "key": "core.entity_registry",
        "data": {"entities": [{
            "entity_id": TESLA_GRID, "platform": "teslemetry",
            "unique_id": "2252168612345-grid_energy_imported",
            "original_name": "Grid imported", "unit_of_measurement": "kWh",
        }]}
    });
    let energy = serde_json::json!({
        "version": 1, "minor_version": 1, "key": "energy",
        "data": {
            "energy_sources": [{"type": "grid", "flow_from": [{"stat_energy_from": TESLA_GRID,
                "stat_cost": null, "entity_energy_price": null, "number_energy_price": 0.31}],
                "flow_to": [], "cost_adjustment_day": 0.0}],
            "device_consumption": [],
        }
    });
    vec![
        ("core.entity_registry".into(), registry.to_string()),
        ("energy".into(), energy.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_run_guide_backfills_then_sets_up_the_energy_dashboard_with_a_replace_choice() {
    let Some((influx, broker)) = influx_and_broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, driver_port)) = chromedriver(dir.path()) else {
        return;
    };
    let ha = HaInstance::start(HaOptions {
        storage_files: teslemetry_dashboard(),
        extra_config: "energy:\n".into(),
        ..HaOptions::default().with_time_zone(ZONE)
    })
    .unwrap();
    let c = ha_client(&ha);
    let version = c.ha_version().await.unwrap();
    let seeded = c
        .energy_get_prefs()
        .await
        .unwrap()
        .expect("seeded preferences");
    let web = free_port();
    let mut e = base_env(&influx, &broker, web, dir.path());
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    let log = dir.path().join("serve.log");
    let mut serve = spawn_serve_with(&e, "2", "info", std::fs::File::create(&log).unwrap().into());
    let base = format!("http://127.0.0.1:{web}/");
    wait_for_panel(&reqwest::Client::new(), &base, &log).await;
    let b = browser(driver_port, &dir.path().join("profile")).await;
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();

    // A new install: the guide asks for the days InfluxDB has and HA lacks, the dashboard, a check.
    let step = guide_step(
        &b,
        &base,
        "Backfill 3 days",
        "next",
        Duration::from_secs(90),
    )
    .await;
    assert!(
        step.contains("all of it for pwsync's 6 meters"),
        "what HA lacks: {step}"
    );
    guide_step(
        &b,
        &base,
        "Set up the Energy dashboard",
        "todo",
        Duration::ZERO,
    )
    .await;
    guide_step(&b, &base, "Check the history", "todo", Duration::ZERO).await;
    let main = b
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !pwsync_web::advice::asks_for_a_command(&main),
        "the guide asks for a command: {main}"
    );
    look_at(&b, &shots, "guide").await;

    // Its button is the backfill's dry run; Apply writes; the guide then says it is done.
    let now = chrono::Utc::now().timestamp();
    let plan = Locator::Id("plan-report");
    click_then_wait(&b, "guide-backfill", plan, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(
        ha_rows(&c, HOME, now - 3 * 86_400, now).await.is_empty(),
        "the dry run wrote"
    );
    apply_and_wait(&b, &log).await;
    guide_step(
        &b,
        &base,
        "History backfilled",
        "done",
        Duration::from_secs(180),
    )
    .await;
    guide_step(
        &b,
        &base,
        "History checked: clean",
        "done",
        Duration::from_secs(60),
    )
    .await;

    // The dashboard step: Teslemetry's grid meter is in the way, offered as a checkbox, no Apply.
    let choices = click_then_wait(
        &b,
        "guide-energy_dashboard",
        Locator::Id("choices"),
        Duration::from_secs(60),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(choices.contains(TESLA_GRID), "{choices}");
    assert!(
        b.find(Locator::Id("apply")).await.is_err(),
        "Apply while blocked"
    );
    assert_eq!(c.energy_get_prefs().await.unwrap().as_ref(), Some(&seeded));
    b.find(Locator::Id("replace-grid_import"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The blocked plan's page has a report too: the new plan is the one with Apply.
    click_then_wait(
        &b,
        "choices-dry-run",
        Locator::Id("apply"),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let report = b.find(plan).await.unwrap().text().await.unwrap();
    assert!(
        report.contains("replace") && report.contains(TESLA_GRID),
        "{report}"
    );
    apply_and_wait(&b, &log).await;

    // HA's preferences, read back: pwsync's meters in every slot, Teslemetry's gone, and on HA
    // 2025.12 and later pwsync's power sensors for the flows.
    let after = c.energy_get_prefs().await.unwrap().unwrap().to_string();
    for id in [
        "sensor.powerwall_grid_imported",
        "sensor.powerwall_grid_exported",
        "sensor.powerwall_solar_generated",
        "sensor.powerwall_battery_discharged",
        "sensor.powerwall_battery_charged",
    ] {
        assert!(after.contains(id), "{id} on HA {version}: {after}");
    }
    assert!(!after.contains(TESLA_GRID), "{after}");
    let power = pwsync_jobs::dashboard::has_power(&version);
    assert_eq!(
        after.contains("sensor.powerwall_grid_power"),
        power,
        "{after}"
    );
    guide_step(
        &b,
        &base,
        "Energy dashboard set up",
        "done",
        Duration::from_secs(60),
    )
    .await;
    // The guide, not the health cards above it, in the screenshots.
    let to_guide = "document.getElementById('guide').scrollIntoView()";
    b.execute(to_guide, vec![]).await.unwrap();
    look_at(&b, &shots, "guide-done").await;

    // The preferences before were saved in the state directory: putting them back is a dry
    // run and Apply too.
    b.goto(&format!("{base}jobs")).await.unwrap();
    let restore = Locator::Css("form.restore button");
    b.find(restore).await.unwrap().click().await.unwrap();
    b.wait()
        .at_most(Duration::from_secs(60))
        .for_element(plan)
        .await
        .unwrap();
    apply_and_wait(&b, &log).await;
    assert_eq!(c.energy_get_prefs().await.unwrap().as_ref(), Some(&seeded));
    b.close().await.unwrap();
    stop(&mut serve);
}

/// What the panel answers at `url`.
async fn text_of(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The Log page's entries as HTML, newest first.
async fn log_entries(http: &reqwest::Client, base: &str) -> Vec<String> {
    let page = text_of(http, &format!("{base}log")).await;
    page.split("<details").skip(1).map(str::to_string).collect()
}

/// The Log's entries once one of them holds every one of `needles`.
async fn logged(http: &reqwest::Client, base: &str, needles: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries = log_entries(http, base).await;
        if entries
            .iter()
            .any(|e| needles.iter().all(|n| e.contains(n)))
        {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "no entry with {needles:?} in the Log: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// HA's persistent notification `id`, once HA has it (`persistent_notification/get`: since
/// HA 2023.6 notifications are no states).
async fn notification(c: &pwsync_ha::HaClient, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = c
            .call("persistent_notification/get", serde_json::json!({}))
            .await
            .unwrap();
        if let Some(n) = all
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["notification_id"] == id)
        {
            return n.clone();
        }
        assert!(Instant::now() < deadline, "no notification {id}: {all}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Issue #22, item 3: a job HA's button starts is in the panel's Log with its trigger and its
/// report; a press refused while another job runs shows on `last_job`, in a notification in HA
/// and in the Log.
#[tokio::test(flavor = "multi_thread")]
async fn button_jobs_and_a_refused_press_show_in_the_log_and_in_ha() {
    let Some((influx, broker)) = influx_and_broker() else {
        return;
    };
    let ha = ha_with_broker(broker.port());
    let c = ha_client(&ha);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (mut serve, base, _) = serve_for(&influx, &broker, &ha, dir.path(), &http).await;
    for b in ["check_history", "backfill_missing"] {
        wait_entity(
            &c,
            &format!("button.powerwall_{b}"),
            Duration::from_secs(60),
            |s| s.state != "unavailable",
        )
        .await;
    }
    assert!(log_entries(&http, &base).await.is_empty());

    // HA's "Backfill missing hours": in the Log as a button job with the rows it wrote and
    // the check that ended it.
    let t = chrono::Utc::now().timestamp();
    press(&c, &["backfill_missing"]).await;
    let done = job_done(&c, "backfill", t).await;
    assert_eq!(done.state, "succeeded", "{done:?}");
    let rows = done.attributes["rows_written"].as_u64().unwrap();
    assert!(rows > 0, "{done:?}");
    let entries = logged(&http, &base, &["backfill"]).await;
    let entry = &entries[0];
    for said in [
        "<span class=\"trigger\">button</span>",
        "pwsync backfill --all",
        &format!("Wrote {rows} rows"),
        "Checked 6 statistic(s)",
        "no problems",
    ] {
        assert!(entry.contains(said), "{said} not in {entry}");
    }
    assert!(entry.contains("class=\"ok\""), "{entry}");

    // Two presses at once: one job runs, the other is refused. HA's `last_job` keeps the
    // running job and says what was refused; HA has a notification; the Log a failed entry.
    let t = chrono::Utc::now().timestamp();
    press(&c, &["check_history", "backfill_missing"]).await;
    let seen = wait_entity(
        &c,
        "sensor.powerwall_last_job",
        Duration::from_secs(120),
        |s| s.attributes["refused"].is_object(),
    )
    .await;
    let refused = &seen.attributes["refused"];
    let (ran, turned_away) = (
        seen.attributes["job"].as_str().unwrap(),
        refused["job"].as_str().unwrap(),
    );
    assert!(
        ["running", "succeeded"].contains(&seen.state.as_str()) && ran != turned_away,
        "{seen:?}"
    );
    assert_eq!(refused["trigger"], "button", "{seen:?}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("{turned_away} refused: {ran} has been running")),
        "{reason}"
    );
    let started = seen.attributes["started"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(started)
            .unwrap()
            .timestamp()
            >= t,
        "{seen:?}"
    );
    let n = notification(&c, "pwsync_powerwall_refused").await;
    let message = n["message"].as_str().unwrap();
    assert!(
        n["title"] == format!("pwsync: {turned_away} refused")
            && message.contains(&format!("HA's button asked for {turned_away}"))
            && message.contains(&format!("{ran} has been running")),
        "{n}"
    );
    let entries = logged(&http, &base, &["refused: "]).await;
    let entry = entries.iter().find(|e| e.contains("refused: ")).unwrap();
    assert!(
        entry.contains("class=\"bad\"")
            && entry.contains("<span class=\"trigger\">button</span>")
            && entry.contains(&format!("refused: {ran} has been running")),
        "{entry}"
    );
    // The job that ran ends in the Log too, above its refusal, and `last_job` still says
    // what was refused.
    let done = job_done(&c, ran, t).await;
    assert_eq!(done.attributes["refused"], *refused, "{done:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let entries = log_entries(&http, &base).await;
        if entries.len() >= 3 {
            break entries;
        }
        assert!(Instant::now() < deadline, "{entries:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert!(
        entries[0].contains(&format!("pwsync {ran}"))
            && entries[0].contains("button</span>")
            && entries[0].contains("Checked 6 statistic(s)"),
        "{}",
        entries[0]
    );
    assert!(entries[1].contains("refused: "), "{}", entries[1]);
    stop(&mut serve);
}
