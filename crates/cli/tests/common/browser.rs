//! The browser of the panel tests: Debian's chromium driven through chromedriver (WebDriver).

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use pwsync_testkit::{free_port, or_skip, require, ServerProcess};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// chromedriver on a free port, stopped when dropped.
pub fn chromedriver(dir: &Path) -> Option<(ServerProcess, u16)> {
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
pub async fn browser(driver_port: u16, profile: &Path) -> Client {
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

/// Click the button `id`, then wait up to `limit` for `then` on the page that follows.
pub async fn click_then_wait(
    b: &Client,
    id: &str,
    then: Locator<'_>,
    limit: Duration,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    b.find(Locator::Id(id)).await?.click().await?;
    b.wait().at_most(limit).for_element(then).await
}

/// The guide's step whose title contains `title`: its class and text, once it is there.
pub async fn guide_step(
    b: &Client,
    base: &str,
    title: &str,
    class: &str,
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        b.goto(base).await.unwrap();
        for step in b.find_all(Locator::Css("#guide li.step")).await.unwrap() {
            let text = step.text().await.unwrap();
            let classes = step.attr("class").await.unwrap().unwrap_or_default();
            if text.contains(title) && classes.split(' ').any(|c| c == class) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {class} step \"{title}\" in the guide: {}",
            b.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Click Apply and wait for the job the Jobs page runs to succeed.
pub async fn apply_and_wait(b: &Client, log: &Path) {
    let done = Locator::Css("#run[data-state='succeeded']");
    click_then_wait(b, "apply", done, Duration::from_secs(240))
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(log).unwrap_or_default()));
}
