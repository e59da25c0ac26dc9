//! `serve`'s web panel in a real browser (Debian's chromium, driven through chromedriver over
//! WebDriver), against a real InfluxDB, Mosquitto and HA (2025.4.4 or `PWSYNC_TEST_HA`).

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::{free_port, or_skip, require, ServerProcess};
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

/// chromedriver on a free port, stopped when dropped.
fn chromedriver(dir: &Path) -> Option<(ServerProcess, u16)> {
    let driver = or_skip(require("chromedriver", "apt-get install chromium-driver"))?;
    or_skip(require("chromium", "apt-get install chromium"))?;
    let port = free_port();
    let p = ServerProcess::spawn(
        "chromedriver",
        Command::new(driver).arg(format!("--port={port}")),
        &dir.join("chromedriver.log"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((p, port))
}

/// Headless chromium with a fresh profile and nothing that reaches for the network.
async fn browser(driver_port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver speaks plain HTTP on loopback: no TLS stack for the tests to build.
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a chromium session")
}

async fn screenshot(b: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
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

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_then_apply_backfills_with_progress_and_history_turns_clean() {
    let Some((influx, broker)) = influx_and_broker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((_driver, driver_port)) = chromedriver(dir.path()) else {
        return;
    };
    let ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let c = ha_client(&ha);
    let web = free_port();
    let mut e = base_env(&influx, &broker, web, dir.path());
    e.push(("PWSYNC_HOMEASSISTANT__URL", ha.url()));
    e.push(("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()));
    let log = dir.path().join("serve.log");
    let mut serve = spawn_serve_with(&e, "2", "info", std::fs::File::create(&log).unwrap().into());
    let base = format!("http://127.0.0.1:{web}/");
    let http = reqwest::Client::new();
    wait_for_panel(&http, &base, &log).await;

    // Every link, script and stylesheet is relative: the same pages work under HA's ingress.
    for page in ["", "history", "jobs", "log", "panel.css", "panel.js"] {
        let text = http
            .get(format!("{base}{page}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for attr in ["href=", "src=", "action=", "url(", "EventSource("] {
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
    let meters = reload_until(&b, &base, "section.meters td.num", Duration::from_secs(60)).await;
    assert!(meters.contains("kWh"), "{meters}");
    screenshot(&b, &shots, "status").await;

    // Jobs: a dry run of "backfill everything" shows the CLI's report and writes nothing.
    let now = chrono::Utc::now().timestamp();
    let day_ago = now - 3 * 86_400;
    b.goto(&format!("{base}jobs")).await.unwrap();
    b.find(Locator::Id("backfill-dry-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = b
        .wait()
        .at_most(Duration::from_secs(120))
        .for_element(Locator::Id("plan-report"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(report.contains("Dry run, nothing written"), "{report}");
    assert!(report.contains(HOME), "{report}");
    assert!(
        ha_rows(&c, HOME, day_ago, now).await.is_empty(),
        "the dry run wrote"
    );

    // Apply that plan: the progress bar runs to the end, and HA holds the hours.
    b.find(Locator::Id("apply"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .at_most(Duration::from_secs(240))
        .for_element(Locator::Css("#run[data-state='succeeded']"))
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
    b.find(Locator::Css(".chart svg")).await.unwrap();
    screenshot(&b, &shots, "history").await;

    // Log: the real run, then its dry run, each with its report.
    b.goto(&format!("{base}log")).await.unwrap();
    let entries = b.find_all(Locator::Css("details")).await.unwrap();
    assert_eq!(entries.len(), 2);
    let newest = entries[0].text().await.unwrap();
    assert!(
        newest.contains("backfill") && !newest.contains("dry run"),
        "{newest}"
    );
    assert!(entries[1].text().await.unwrap().contains("(dry run)"));
    screenshot(&b, &shots, "log").await;
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
