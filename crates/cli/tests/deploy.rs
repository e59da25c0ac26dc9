//! The ways users install pwsync, tested as they run: the container image and the Home
//! Assistant add-on image (Docker, `--network host`) against a real InfluxDB, Mosquitto and HA;
//! the add-on's config.yaml against the Supervisor's schema rules; the .deb installed by dpkg
//! in a clean Debian root.
//!
//! The images and the .deb are built once by `deploy/scripts/package.sh` (scripts/test.sh runs
//! it and exports what it built); outside CI a test without them is skipped with a message.

mod common;

use common::*;
use pwsync_ha::HaClient;
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::or_skip;
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const METERS: [&str; 6] = [
    "home_usage",
    "solar_generated",
    "grid_imported",
    "grid_exported",
    "battery_discharged",
    "battery_charged",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What package.sh built, from its environment variable, or `None` to skip outside CI.
fn built(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: run the suite through scripts/test.sh (it runs deploy/scripts/package.sh)")
        }
        _ => {
            eprintln!(
                "skipping: {var} not set (run deploy/scripts/package.sh, or scripts/test.sh)"
            );
            None
        }
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new(docker_bin()).args(args).output().unwrap()
}

fn docker_bin() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn succeeded(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// A running container, removed when dropped (also when a test fails).
struct Container(String);

impl Container {
    fn run(image: &str, docker_args: &[String], cmd: &[&str]) -> Container {
        let name = format!("pwsync-test-{}-{}", std::process::id(), rand_suffix());
        let mut args = vec!["run", "-d", "--name", &name, "--network", "host"];
        args.extend(docker_args.iter().map(String::as_str));
        args.push(image);
        args.extend(cmd);
        succeeded("docker run", docker(&args));
        Container(name)
    }

    fn health(&self) -> String {
        stdout(&docker(&[
            "inspect",
            "-f",
            "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
            &self.0,
        ]))
    }

    /// Wait for the HEALTHCHECK's verdict; the last check's output on failure.
    fn wait_health(&self, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.health() != want {
            assert!(
                Instant::now() < deadline,
                "container not {want} within {timeout:?} (is {}): {}\nlogs: {}",
                self.health(),
                self.health_log(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn health_log(&self) -> String {
        stdout(&docker(&[
            "inspect",
            "-f",
            "{{range .State.Health.Log}}{{.ExitCode}}: {{.Output}}{{end}}",
            &self.0,
        ]))
    }

    fn logs(&self) -> String {
        let o = docker(&["logs", "--tail", "60", &self.0]);
        format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn env_args(env: &[(&str, String)]) -> Vec<String> {
    env.iter()
        .flat_map(|(k, v)| ["-e".to_string(), format!("{k}={v}")])
        .collect()
}

/// InfluxDB with the last two days and today simulated, and an anonymous broker.
fn influx_and_broker() -> (InfluxServer, Mosquitto) {
    let influx = or_skip(InfluxServer::start()).expect("influxd (apt-get install influxdb)");
    let broker = Mosquitto::start().unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    simulate(&influx.url(), &start, 3, 5);
    (influx, broker)
}

fn ha_with(broker: &Mosquitto) -> HaInstance {
    HaInstance::start(
        HaOptions::default()
            .with_time_zone(ZONE)
            .with_broker(broker.port()),
    )
    .unwrap()
}

/// Wait until HA has every one of `site`'s 31 sensors and its six meters hold numbers.
async fn wait_for_sensors(c: &HaClient, site: &str) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: BTreeMap<String, String> = c
            .get_states()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.entity_id.starts_with(&format!("sensor.{site}_")))
            .map(|s| (s.entity_id.clone(), s.state.clone()))
            .collect();
        let meter = |k: &str| {
            states
                .get(&format!("sensor.{site}_{k}"))
                .and_then(|v| v.parse::<f64>().ok())
        };
        // December days may never export: every meter a number, the home's above 0.
        let meters_up = METERS.iter().all(|k| meter(k).is_some())
            && meter("home_usage").is_some_and(|v| v > 0.0);
        if states.len() >= 31 && meters_up {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "HA shows {} of {site}'s 31 sensors: {states:?}",
            states.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
async fn image_serve_once_publishes_the_sensors_ha_shows() {
    let Some(image) = built("PWSYNC_TEST_IMAGE") else {
        return;
    };
    let _one = one_serve_on_8099().await;
    let (influx, broker) = influx_and_broker();
    let ha = ha_with(&broker);
    let env = [
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_MQTT__URL", broker.url()),
        ("PWSYNC_HOMEASSISTANT__URL", ha.url()),
        ("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()),
    ];
    let mut args = vec!["run", "--rm", "--network", "host"];
    let env = env_args(&env);
    args.extend(env.iter().map(String::as_str));
    args.extend([image.as_str(), "serve", "--once"]);
    succeeded("serve --once in the image", docker(&args));
    let states = wait_for_sensors(&ha_client(&ha), "powerwall").await;
    assert!(states["sensor.powerwall_load_power"].parse::<f64>().is_ok());

    // As users run it: not root, the documented entry point, small.
    let inspect = |f: &str| succeeded("docker inspect", docker(&["inspect", "-f", f, &image]));
    assert_eq!(inspect("{{.Config.User}}"), "10001:10001");
    assert_eq!(inspect("{{json .Config.Entrypoint}}"), r#"["pwsync"]"#);
    assert_eq!(inspect("{{json .Config.Cmd}}"), r#"["serve"]"#);
    let mb = inspect("{{.Size}}").parse::<f64>().unwrap() / 1e6;
    eprintln!("image {image}: {mb:.1} MB");
    assert!(mb < 40.0, "the image grew to {mb:.1} MB (target < 40 MB)");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
async fn image_healthcheck_passes_then_fails_when_influxdb_stops() {
    let Some(image) = built("PWSYNC_TEST_IMAGE") else {
        return;
    };
    let _one = one_serve_on_8099().await;
    let (mut influx, broker) = influx_and_broker();
    let mut args = env_args(&[
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_INFLUXDB__TIMEOUT_SECS", "3".into()),
        ("PWSYNC_MQTT__URL", broker.url()),
    ]);
    // The image's own HEALTHCHECK command, checked every second instead of every minute.
    args.extend(
        [
            "--health-interval=1s",
            "--health-retries=1",
            "--health-start-period=0s",
        ]
        .map(String::from),
    );
    let c = Container::run(&image, &args, &["serve", "--interval", "2"]);
    c.wait_health("healthy", Duration::from_secs(90));

    // Polls fail from now on: the heartbeat ages past 3 polls + 30 s.
    influx.stop();
    c.wait_health("unhealthy", Duration::from_secs(90));
    let log = c.health_log();
    assert!(log.contains("stale: serve's last successful poll"), "{log}");
}

/// A stand-in for the Supervisor endpoints the add-on uses, forwarding to the real servers:
/// `GET /services/mqtt` (the real broker, for the add-on's SUPERVISOR_TOKEN only) and the
/// `/core/websocket` proxy to HA. As the real Supervisor does, it answers the add-on's `auth`
/// itself (SUPERVISOR_TOKEN) and logs in to HA with HA's own token, which the add-on never
/// sees. pwsync uses HA's websocket only, so `/core/api/*` is not stood in for.
struct Supervisor {
    port: u16,
    /// The add-on's SUPERVISOR_TOKEN.
    token: String,
    requests: Arc<Mutex<Vec<String>>>,
}

/// What the stand-in forwards to and the two tokens it holds.
#[derive(Clone)]
struct Upstream {
    supervisor_token: String,
    ha_token: String,
    broker_port: u16,
    ha_port: u16,
}

impl Supervisor {
    async fn start(up: Upstream) -> Supervisor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, token) = (requests.clone(), up.supervisor_token.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (up, seen) = (up.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = serve_one(conn, &up, &seen).await;
                });
            }
        });
        Supervisor {
            port,
            token,
            requests,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A request's head, left in the socket (a websocket handshake reads it again).
async fn peek_head(conn: &tokio::net::TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = conn.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf[..end + 4]).into_owned()));
        }
        if n == buf.len() {
            return Ok(None);
        }
        // peek returns what has come so far at once: wait for the rest of the head.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve_one(
    mut conn: tokio::net::TcpStream,
    up: &Upstream,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(head) = peek_head(&conn).await? else {
        return Ok(());
    };
    let request_line = head.lines().next().unwrap_or_default().to_string();
    seen.lock().unwrap().push(request_line.clone());
    if request_line.split(' ').nth(1) == Some("/core/websocket") {
        return proxy_websocket(conn, up, seen).await;
    }
    conn.read_exact(&mut vec![0; head.len()]).await?;
    let authorized = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {}", up.supervisor_token)));
    let reply = |status: &str, body: String| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let answer = match request_line.split(' ').nth(1).unwrap_or_default() {
        "/services/mqtt" if authorized => {
            let body = serde_json::json!({"result": "ok", "data": {
                "addon": "core_mosquitto", "host": "127.0.0.1", "port": up.broker_port,
                "ssl": false, "protocol": "3.1.1", "username": "addons", "password": "pw"}});
            reply("200 OK", body.to_string())
        }
        "/services/mqtt" => reply(
            "401 Unauthorized",
            r#"{"result":"error","message":"Unauthorized"}"#.into(),
        ),
        _ => reply(
            "404 Not Found",
            r#"{"result":"error","message":"not found"}"#.into(),
        ),
    };
    conn.write_all(answer.as_bytes()).await
}

/// HA's websocket as the Supervisor proxies it: HA's `auth_required` to the add-on, the
/// add-on's `auth` checked against SUPERVISOR_TOKEN, HA logged in to with HA's token, then
/// every message passed on both ways.
async fn proxy_websocket(
    conn: tokio::net::TcpStream,
    up: &Upstream,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};
    let io = |e: tokio_tungstenite::tungstenite::Error| std::io::Error::other(e);
    // A transparent proxy: no smaller a message limit than the add-on's or HA's own.
    let config = WebSocketConfig {
        max_message_size: None,
        max_frame_size: None,
        ..Default::default()
    };
    let mut addon = tokio_tungstenite::accept_async_with_config(conn, Some(config))
        .await
        .map_err(io)?;
    let url = format!("ws://127.0.0.1:{}/api/websocket", up.ha_port);
    let (mut ha, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .map_err(io)?;
    let text = |m: Option<Result<Message, _>>| -> serde_json::Value {
        match m {
            Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    };
    let required = text(ha.next().await);
    addon
        .send(Message::Text(required.to_string()))
        .await
        .map_err(io)?;
    let auth = text(addon.next().await);
    if auth["type"] != "auth" || auth["access_token"] != up.supervisor_token.as_str() {
        seen.lock().unwrap().push("websocket auth refused".into());
        let invalid = serde_json::json!({"type": "auth_invalid", "message": "Invalid access"});
        let _ = addon.send(Message::Text(invalid.to_string())).await;
        return Ok(());
    }
    let login = serde_json::json!({"type": "auth", "access_token": up.ha_token});
    ha.send(Message::Text(login.to_string()))
        .await
        .map_err(io)?;
    let ok = text(ha.next().await);
    assert_eq!(
        ok["type"], "auth_ok",
        "HA refused the stand-in's login: {ok}"
    );
    seen.lock().unwrap().push("websocket auth ok".into());
    addon
        .send(Message::Text(ok.to_string()))
        .await
        .map_err(io)?;
    let (mut to_addon, mut from_addon) = addon.split();
    let (mut to_ha, mut from_ha) = ha.split();
    let upward = async {
        while let Some(Ok(m)) = from_addon.next().await {
            if to_ha.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_ha.close().await;
    };
    let downward = async {
        while let Some(Ok(m)) = from_ha.next().await {
            if to_addon.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_addon.close().await;
    };
    tokio::join!(upward, downward);
    Ok(())
}

/// The address the Supervisor's ingress proxy connects from (crates/config/src/addon.rs admits
/// only it), put on `lo` for a test and taken off again; the add-on on the host network sees
/// the proxy's connections come from it, as on HA OS. Needs root (CAP_NET_ADMIN).
struct IngressAddress(std::net::Ipv4Addr);

impl IngressAddress {
    fn add() -> IngressAddress {
        let ip = std::net::Ipv4Addr::new(172, 30, 32, 2);
        let cidr = format!("{ip}/32");
        let o = Command::new("ip")
            .args(["addr", "add", &cidr, "dev", "lo"])
            .output()
            .expect("ip (apt-get install iproute2)");
        assert!(
            o.status.success(),
            "cannot put the ingress address {cidr} on lo (the test needs root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        IngressAddress(ip)
    }
}

impl Drop for IngressAddress {
    fn drop(&mut self) {
        let cidr = format!("{}/32", self.0);
        let _ = Command::new("ip")
            .args(["addr", "del", &cidr, "dev", "lo"])
            .output();
    }
}

/// A stand-in for HA's ingress in front of the add-on's panel: the browser asks for
/// `/api/hassio_ingress/<token>/…`; the proxy strips that prefix, tells the panel it with
/// `X-Ingress-Path`, and connects to the panel from the ingress address. One request per
/// upstream connection (`Connection: close`), its bytes copied as they come, so server-sent
/// events pass through unbuffered.
struct Ingress {
    port: u16,
    prefix: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Ingress {
    async fn start(from: std::net::Ipv4Addr, panel: std::net::SocketAddr) -> Ingress {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let prefix = format!("/api/hassio_ingress/{}", rand_suffix());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, p) = (requests.clone(), prefix.clone());
        tokio::spawn(async move {
            while let Ok((conn, peer)) = listener.accept().await {
                let (seen, p) = (seen.clone(), p.clone());
                tokio::spawn(async move {
                    let _ = ingress_one(conn, peer, &p, from, panel, &seen).await;
                });
            }
        });
        Ingress {
            port,
            prefix,
            requests,
        }
    }

    /// The panel's Status page as the browser opens it in HA's sidebar.
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}{}/", self.port, self.prefix)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Headers the proxy sets itself, or that name the connection rather than the request.
const HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "x-ingress-path",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

async fn ingress_one(
    mut browser: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    prefix: &str,
    from: std::net::Ipv4Addr,
    panel: std::net::SocketAddr,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(head) = peek_head(&browser).await? else {
        return Ok(());
    };
    browser.read_exact(&mut vec![0; head.len()]).await?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    seen.lock().unwrap().push(format!("{method} {target}"));
    let Some(rest) = target.strip_prefix(prefix) else {
        let body = "not an ingress path";
        let reply = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        return browser.write_all(reply.as_bytes()).await;
    };
    let path = if rest.is_empty() { "/" } else { rest };
    let mut host = String::new();
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("host") {
            host = line[name.len() + 1..].trim().to_string();
        }
        if !HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "X-Ingress-Path: {prefix}\r\nX-Hass-Source: core.ingress\r\nX-Forwarded-For: {}\r\n\
         X-Forwarded-Host: {host}\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n",
        peer.ip()
    ));
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    let mut upstream = socket.connect(panel).await?;
    upstream.write_all(out.as_bytes()).await?;
    tokio::io::copy_bidirectional(&mut browser, &mut upstream).await?;
    Ok(())
}

/// The arm64 release binary under qemu-user, with Debian's arm64 glibc (libc6-arm64-cross) as
/// its root for libraries.
fn on_arm64(bin: &str, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new("qemu-aarch64-static");
    cmd.args(["-L", "/usr/aarch64-linux-gnu", bin])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("qemu-aarch64-static (apt-get install qemu-user-static)")
}

fn on_amd64(bin: &str, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
fn the_arm64_binary_reads_influxdb_exactly_as_the_amd64_one_does() {
    let (Some(arm), Some(amd)) = (
        built("PWSYNC_TEST_BIN_ARM64"),
        built("PWSYNC_TEST_BIN_AMD64"),
    ) else {
        return;
    };
    let elf = std::fs::read(&arm).unwrap();
    // ELF machine 0xB7: AArch64.
    assert_eq!(
        &elf[18..20],
        &[0xB7, 0x00],
        "{arm} is not an aarch64 binary"
    );
    let version = succeeded("--version on arm64", on_arm64(&arm, &[], &["--version"]));
    assert_eq!(
        version,
        succeeded("--version", on_amd64(&amd, &[], &["--version"]))
    );
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    let influx = or_skip(InfluxServer::start()).expect("influxd (apt-get install influxdb)");
    simulate(&influx.url(), "2025-03-07", 4, 21);
    let env = [
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    let args = [
        "energy",
        "--json",
        "--start",
        "2025-03-08",
        "--end",
        "2025-03-09",
    ];
    let arm_json = succeeded("energy on arm64", on_arm64(&arm, &env, &args));
    let amd_json = succeeded("energy on amd64", on_amd64(&amd, &env, &args));
    assert_eq!(arm_json, amd_json, "the two architectures disagree");
    let v: serde_json::Value = serde_json::from_str(&arm_json).unwrap();
    let days = v["days"].as_array().expect("days");
    assert_eq!(days.len(), 2, "{v}");
    // 2025-03-09 is the spring-forward day in Los Angeles: 23 hours, on both machines.
    assert!(arm_json.contains("home"), "{arm_json}");
}

#[test]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
fn the_arm64_image_runs_under_emulation_and_doctor_answers() {
    let Some(image) = built("PWSYNC_TEST_IMAGE_ARM64") else {
        return;
    };
    let arch = succeeded(
        "docker image inspect",
        docker(&["image", "inspect", "-f", "{{.Architecture}}", &image]),
    );
    assert_eq!(arch, "arm64");
    let influx = or_skip(InfluxServer::start()).expect("influxd (apt-get install influxdb)");
    simulate(&influx.url(), "2025-03-07", 2, 22);
    let mut args = vec![
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--network",
        "host",
    ];
    let env = env_args(&[
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ]);
    args.extend(env.iter().map(String::as_str));
    args.extend([image.as_str(), "doctor", "--json"]);
    let o = docker(&args);
    let out = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "doctor in the arm64 image ({}): {e}: {out}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(
        v.to_string().contains("1.6.7"),
        "doctor reached InfluxDB 1.6.7 from the arm64 image: {v}"
    );
}

fn addon_dir() -> PathBuf {
    repo().join("deploy/ha-addon/pwsync")
}

fn yaml(path: &Path) -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `serve` in a container on the host network binds the panel's port 8099 (the add-on's
/// ingress port, the image's default `web.listen`): one such container at a time.
async fn one_serve_on_8099() -> tokio::sync::MutexGuard<'static, ()> {
    // Not std's: the guard is held across awaits, and a failed test must not poison it.
    static SERVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERVE.lock().await
}

/// The add-on's token is the Supervisor's, never HA's: the stand-in swaps them.
fn upstream(ha: &HaInstance, broker: &Mosquitto) -> Upstream {
    Upstream {
        supervisor_token: format!("supervisor-{}", rand_suffix()),
        ha_token: ha.token().to_string(),
        broker_port: broker.port(),
        ha_port: ha.port(),
    }
}

/// The add-on container as the Supervisor starts it: config.yaml's options (the required URL
/// and the site filled in) in `/data/options.json`, SUPERVISOR_TOKEN, TZ, the host network and
/// the image's own command.
fn run_addon(
    image: &str,
    supervisor: &Supervisor,
    influx_url: &str,
    site: &str,
    data: &Path,
) -> Container {
    let config = yaml(&addon_dir().join("config.yaml"));
    let mut options: serde_json::Value = serde_json::to_value(config["options"].clone()).unwrap();
    options["influxdb_url"] = influx_url.into();
    options["site"] = site.into();
    std::fs::write(data.join("options.json"), options.to_string()).unwrap();
    let mut args = env_args(&[
        ("SUPERVISOR_TOKEN", supervisor.token.clone()),
        ("PWSYNC_SUPERVISOR_URL", supervisor.url()),
        ("TZ", ZONE.to_string()),
    ]);
    args.extend(["-v".to_string(), format!("{}:/data", data.display())]);
    Container::run(image, &args, &[])
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
async fn addon_gets_broker_and_ha_from_the_supervisor_and_publishes() {
    let Some(image) = built("PWSYNC_TEST_ADDON_IMAGE") else {
        return;
    };
    let _one = one_serve_on_8099().await;
    let (influx, broker) = influx_and_broker();
    let ha = ha_with(&broker);
    let supervisor = Supervisor::start(upstream(&ha, &broker)).await;
    let data = tempfile::tempdir().unwrap();
    let c = run_addon(&image, &supervisor, &influx.url(), "addon", data.path());
    let refused = reqwest::Client::new()
        .get(format!("{}/services/mqtt", supervisor.url()))
        .bearer_auth(ha.token())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "HA's token is not the Supervisor's");
    let states = wait_for_sensors(&ha_client(&ha), "addon").await;
    assert!(
        states.contains_key("sensor.addon_battery_level"),
        "{states:?}"
    );

    let requests = supervisor.requests();
    for path in [
        "GET /services/mqtt ",
        "GET /core/websocket ",
        "websocket auth ok",
    ] {
        assert!(
            requests.iter().any(|r| r.starts_with(path)),
            "the add-on never asked the Supervisor for {path}: {requests:?}"
        );
    }
    // State in /data: the heartbeat the health check reads.
    assert!(data.path().join("heartbeat.json").is_file());
    succeeded(
        "pwsync health in the add-on",
        docker(&["exec", &c.0, "pwsync", "health"]),
    );
}

/// Click Apply and wait for the job the Jobs page runs to succeed; a refusal fails at once.
async fn apply(b: &fantoccini::Client, what: &str, addon: &Container) {
    use fantoccini::Locator;
    // Done, or refused (the page's error).
    let done = Locator::Css("#run[data-state='succeeded'], main p.error");
    let outcome =
        common::browser::click_then_wait(b, "apply", done, Duration::from_secs(600)).await;
    if let Ok(e) = &outcome {
        if e.attr("class").await.unwrap().as_deref() == Some("error") {
            panic!("{what}: {}", e.text().await.unwrap());
        }
    }
    if let Err(e) = outcome {
        let run = b.find(Locator::Id("run")).await.ok();
        let run = match run {
            Some(r) => r.html(false).await.unwrap_or_default(),
            None => b.source().await.unwrap_or_default(),
        };
        panic!("{what}: {e}: {run}\n{}", addon.logs());
    }
}

/// The HA OS path as a new user walks it, and its headline time: the add-on container from the
/// amd64 image, started as the Supervisor starts it beside 3 years of 1-minute history, then in
/// chromium through the ingress stand-in the first-run guide's Backfill, Apply, Energy
/// dashboard, Apply, and History's clean check.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
async fn addon_e2e_install_backfill_energy_dashboard_clean_check_through_ingress() {
    use common::browser::*;
    use fantoccini::Locator;
    use pwsync_energy::Field;
    let Some(image) = built("PWSYNC_TEST_ADDON_IMAGE") else {
        return;
    };
    let _one = one_serve_on_8099().await;
    let influx = or_skip(InfluxServer::start()).expect("influxd (apt-get install influxdb)");
    let broker = Mosquitto::start().unwrap();
    let today = chrono::Utc::now().with_timezone(&tz()).date_naive();
    let first_day = (today - chrono::Duration::days(1095)).to_string();
    let t = Instant::now();
    simulate(&influx.url(), &first_day, 1096, 31);
    eprintln!("simulated 3 years of 1-minute data in {:.0?}", t.elapsed());
    let ha = HaInstance::start(HaOptions {
        extra_config: "energy:\n".into(),
        ..HaOptions::default()
            .with_time_zone(ZONE)
            .with_broker(broker.port())
    })
    .unwrap();
    let c = ha_client(&ha);
    let version = c.ha_version().await.unwrap();
    let supervisor = Supervisor::start(upstream(&ha, &broker)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_driver, driver_port) = chromedriver(dir.path()).expect("chromedriver");
    let ingress_ip = IngressAddress::add();
    let ingress = Ingress::start(ingress_ip.0, (ingress_ip.0, 8099).into()).await;
    let base = ingress.base();
    let data = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let addon = run_addon(&image, &supervisor, &influx.url(), "powerwall", data.path());
    let run_at = chrono::Utc::now().timestamp();
    let b = browser(driver_port, &dir.path().join("profile")).await;
    let logs = || addon.logs();

    // Status: the guide, from what the add-on found; three years to backfill.
    let step = guide_step(
        &b,
        &base,
        "Backfill 3.0 years",
        "next",
        Duration::from_secs(180),
    )
    .await;
    assert!(step.contains("all of it for pwsync's 6 meters"), "{step}");
    for id in ["guide-backfill", "guide-energy_dashboard", "guide-check"] {
        assert!(
            b.find(Locator::Id(id)).await.is_ok(),
            "no #{id} in the guide: {}",
            b.source().await.unwrap_or_default()
        );
    }

    // Backfill: its dry run, then Apply; the progress comes as server-sent events.
    let plan = Locator::Id("plan-report");
    let report = click_then_wait(&b, "guide-backfill", plan, Duration::from_secs(180))
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", logs()))
        .text()
        .await
        .unwrap();
    assert!(report.contains("Dry run, nothing written"), "{report}");
    apply(&b, "the backfill", &addon).await;
    let backfilled = started.elapsed();
    eprintln!("backfill applied at {backfilled:.0?}");

    // The Energy dashboard, pressed at once: HA's preferences are empty, so no rival and no
    // choice; its Apply waits for the check the backfill started by itself (not refused).
    b.goto(&base).await.unwrap();
    click_then_wait(&b, "guide-energy_dashboard", plan, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", logs()));
    assert!(b.find(Locator::Id("choices")).await.is_err(), "a choice");
    apply(&b, "the Energy dashboard", &addon).await;
    eprintln!("Energy dashboard set at {:.0?}", started.elapsed());

    // History: clean once the check the backfill started has run.
    let history = format!("{base}history");
    let deadline = Instant::now() + Duration::from_secs(600);
    let verdict = loop {
        b.goto(&history).await.unwrap();
        if let Ok(v) = b.find(Locator::Id("verdict")).await {
            let v = v.text().await.unwrap();
            if v.starts_with("clean") {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "History never read clean: {}\n{}",
            b.source().await.unwrap_or_default(),
            logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let headline = started.elapsed();
    eprintln!(
        "add-on headline (HA {version}, 3 years of 1-minute data): {:.0} s from docker run to a \
         clean check with the Energy dashboard set (backfill applied at {:.0} s); History: {verdict}",
        headline.as_secs_f64(),
        backfilled.as_secs_f64()
    );
    b.close().await.unwrap();

    // HA's own reads: every hour before the add-on started is InfluxDB's energy, to the Wh
    // (but the last whole one, where the backfill meets HA's live chain: the seam's).
    let (from, to) = (
        day_start(&first_day),
        run_at - run_at.rem_euclid(3600) - 3600,
    );
    for f in Field::ALL {
        let id = format!("sensor.powerwall_{}", f.sensor_key());
        let got = ha_changes(&ha_rows(&c, &id, from, to).await);
        let want = influx_hourly(&influx.url(), f, from, to).await;
        // Three years less the outages the simulator makes.
        assert!(want.len() > 1000 * 24, "{id}: {} hours", want.len());
        assert_hours_match(&id, &got, &want, from, to);
    }
    let prefs = c.energy_get_prefs().await.unwrap().expect("preferences");
    for f in [
        "grid_imported",
        "grid_exported",
        "solar_generated",
        "battery_discharged",
        "battery_charged",
    ] {
        let id = format!("sensor.powerwall_{f}");
        assert!(prefs.to_string().contains(&id), "{id}: {prefs}");
    }
    // A problem sensor: off is no problem.
    wait_entity(
        &c,
        "binary_sensor.powerwall_history_ok",
        Duration::from_secs(30),
        |s| s.state == "off",
    )
    .await;

    // Every page came through the ingress path, the panel's events too, as the Supervisor's
    // token and not HA's reached the stand-in.
    let through = ingress.requests();
    assert!(
        through
            .iter()
            .any(|r| r.contains(&format!("{}/events", ingress.prefix))),
        "{through:?}"
    );
    assert!(supervisor
        .requests()
        .contains(&"websocket auth ok".to_string()));
}

#[test]
fn addon_without_supervisor_token_says_so() {
    let o = pwsync(&[("PWSYNC_ADDON", "1".to_string())], &["serve", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("SUPERVISOR_TOKEN is not set"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// One option type of the Supervisor's schema language, with its optional `?`.
fn schema_type_ok(t: &str) -> bool {
    let t = t.strip_suffix('?').unwrap_or(t);
    let range = r"(\((-?[0-9.]+)?,(-?[0-9.]+)?\))?";
    let simple = regex::Regex::new(&format!(
        r"^(bool|email|url|password|port|device|device\(subsystem=\w+\)|(str|int|float){range})$"
    ))
    .unwrap();
    if simple.is_match(t) {
        return true;
    }
    if let Some(re) = t.strip_prefix("match(").and_then(|r| r.strip_suffix(')')) {
        return regex::Regex::new(re).is_ok();
    }
    t.strip_prefix("list(")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|vals| vals.split('|').all(|v| !v.is_empty()))
}

/// Whether a default value fits its schema type.
fn default_fits(t: &str, v: &Yaml) -> bool {
    let t = t.strip_suffix('?').unwrap_or(t);
    let bounds = |t: &str| -> (Option<f64>, Option<f64>) {
        let Some(inner) = t.split_once('(').map(|(_, r)| r.trim_end_matches(')')) else {
            return (None, None);
        };
        let (lo, hi) = inner.split_once(',').unwrap();
        (lo.parse().ok(), hi.parse().ok())
    };
    let within = |x: f64| {
        let (lo, hi) = bounds(t);
        lo.is_none_or(|lo| x >= lo) && hi.is_none_or(|hi| x <= hi)
    };
    match v {
        Yaml::Null => true, // required, to be given by the user
        Yaml::Bool(_) => t == "bool",
        Yaml::Number(n) if t.starts_with("int") => n.as_i64().is_some_and(|x| within(x as f64)),
        Yaml::Number(n) if t.starts_with("float") || t == "port" => n.as_f64().is_some_and(within),
        Yaml::String(s) => {
            if let Some(re) = t.strip_prefix("match(").and_then(|r| r.strip_suffix(')')) {
                regex::Regex::new(re).unwrap().is_match(s)
            } else if let Some(vals) = t.strip_prefix("list(").and_then(|r| r.strip_suffix(')')) {
                vals.split('|').any(|x| x == s)
            } else if t == "url" {
                url_ok(s)
            } else {
                t.starts_with("str") || t == "password" || t == "email"
            }
        }
        _ => false,
    }
}

fn url_ok(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// config.yaml, translations and repository.yaml against the rules of HA's add-on (app)
/// documentation (developers.home-assistant.io, "Add-on configuration", "Create an add-on
/// repository").
#[test]
fn addon_config_follows_the_supervisor_rules() {
    let dir = addon_dir();
    let c = yaml(&dir.join("config.yaml"));
    let str_of = |k: &str| {
        c[k].as_str()
            .unwrap_or_else(|| panic!("config.yaml: required `{k}` missing or not a string"))
            .to_string()
    };
    for k in ["name", "version", "slug", "description"] {
        assert!(!str_of(k).is_empty(), "config.yaml: `{k}` is empty");
    }
    assert_eq!(
        str_of("version"),
        env!("CARGO_PKG_VERSION"),
        "the add-on's version is pwsync's"
    );
    let slug = str_of("slug");
    assert!(
        regex::Regex::new("^[a-z0-9_]+$").unwrap().is_match(&slug),
        "slug `{slug}` is not URI friendly"
    );
    assert_eq!(slug, dir.file_name().unwrap().to_str().unwrap());
    let arch: Vec<&str> = c["arch"]
        .as_sequence()
        .expect("config.yaml: `arch` must be a list")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(!arch.is_empty());
    for a in &arch {
        assert!(
            ["armhf", "armv7", "aarch64", "amd64", "i386"].contains(a),
            "unknown arch {a}"
        );
    }
    for k in ["homeassistant_api", "hassio_api", "ingress", "host_network"] {
        assert!(
            c.get(k).is_none_or(|v| v.is_bool()),
            "config.yaml: `{k}` must be a bool"
        );
    }
    assert_eq!(
        c["homeassistant_api"],
        Yaml::Bool(true),
        "HA through the proxy"
    );
    let services: Vec<&str> = c["services"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for s in &services {
        let (_, f) = s.split_once(':').expect("service:function");
        assert!(["provide", "want", "need"].contains(&f), "{s}");
    }
    assert!(services.contains(&"mqtt:need"), "{services:?}");
    // The panel in HA's sidebar: the port `--addon` gives web.listen (crates/config/src/addon.rs).
    assert_eq!(c["ingress"], Yaml::Bool(true), "the panel through ingress");
    assert_eq!(c["ingress_port"].as_i64(), Some(8099));
    assert!(
        c["panel_icon"]
            .as_str()
            .is_some_and(|i| i.starts_with("mdi:")),
        "panel_icon is an mdi: icon"
    );

    let options = c["options"].as_mapping().expect("`options` is a dict");
    let schema = c["schema"].as_mapping().expect("`schema` is a dict");
    for (k, t) in schema {
        let (k, t) = (k.as_str().unwrap(), t.as_str().unwrap());
        assert!(schema_type_ok(t), "schema `{k}`: unknown type `{t}`");
        match options.get(k) {
            // "Put a ? at the end of the data type and do not define any default value."
            Some(_) if t.ends_with('?') => panic!("optional `{k}` has a default in options"),
            Some(v) => assert!(default_fits(t, v), "default of `{k}` ({v:?}) is not a {t}"),
            None => assert!(t.ends_with('?'), "required `{k}` has no entry in options"),
        }
    }
    for k in options.keys() {
        assert!(schema.contains_key(k), "option {k:?} is not in the schema");
    }

    // Today's Supervisor builds nothing: the app names a prebuilt multi-arch image, and only
    // amd64 and aarch64 remain (armv7, armhf and i386 were dropped in 2025.12).
    let image = str_of("image");
    assert!(
        regex::Regex::new("^ghcr\\.io/[a-z0-9-]+/[a-z0-9-]+$")
            .unwrap()
            .is_match(&image),
        "image `{image}`: a registry name without a tag (the Supervisor adds `version`)"
    );
    let mut sorted = arch.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["aarch64", "amd64"],
        "the architectures HA OS still runs on"
    );
    for gone in ["build.yaml", "build.json", "Dockerfile"] {
        assert!(
            !dir.join(gone).exists(),
            "{gone}: the Supervisor no longer builds apps (BUILD_FROM is not supplied)"
        );
    }
    let docs = std::fs::read_to_string(dir.join("DOCS.md")).unwrap();
    for stale in ["terminal", "Add-on store", "Add-ons →"] {
        assert!(
            !docs.contains(stale),
            "DOCS.md still says {stale:?}: an app user has no terminal, and HA says Apps"
        );
    }

    let tr = yaml(&dir.join("translations/en.yaml"));
    let tr = tr["configuration"].as_mapping().unwrap();
    for k in schema.keys() {
        let entry = tr.get(k.as_str().unwrap()).unwrap_or(&Yaml::Null);
        assert!(
            entry["name"].is_string() && entry["description"].is_string(),
            "translations/en.yaml: {k:?} needs a name and a description"
        );
    }
    for k in tr.keys() {
        assert!(
            schema.contains_key(k),
            "translation of unknown option {k:?}"
        );
    }
    assert!(dir.join("DOCS.md").is_file() && dir.join("icon.png").is_file());
    let png = std::fs::read(dir.join("icon.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "icon.png is a PNG");
    let repo_yaml = yaml(&repo().join("repository.yaml"));
    assert!(
        repo_yaml["name"].is_string(),
        "repository.yaml needs `name`"
    );
}

#[test]
fn schema_checks_reject_what_the_supervisor_rejects() {
    assert!(schema_type_ok("int(10,3600)") && schema_type_ok("str?"));
    assert!(schema_type_ok("match(^[a-z]+$)") && schema_type_ok("list(a|b)"));
    assert!(!schema_type_ok("integer") && !schema_type_ok("string"));
    assert!(!default_fits("int(10,3600)", &Yaml::from(5)));
    assert!(!default_fits("match(^[a-z]+$)", &Yaml::from("Bad")));
    assert!(!default_fits("bool", &Yaml::from("yes")));
}

/// Run a command in the chroot at `root`, as `uid:gid` if given.
fn chroot(root: &Path, user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("chroot");
    if let Some(u) = user {
        cmd.arg(format!("--userspec={u}"));
    }
    cmd.arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8");
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
async fn deb_installs_in_clean_debian_and_its_unit_verifies() {
    let (Some(deb), Some(root_tar)) = (built("PWSYNC_TEST_DEB"), built("PWSYNC_TEST_ROOT_TAR"))
    else {
        return;
    };
    assert!(
        Path::new(&deb)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(&format!("pwsync_{}_amd64.deb", env!("CARGO_PKG_VERSION"))),
        "{deb}"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let o = Command::new("tar")
        .args(["-xf", &root_tar, "-C"])
        .arg(&root)
        .output()
        .unwrap();
    succeeded("unpacking the Debian root", o);
    std::fs::copy(&deb, root.join("tmp/pwsync.deb")).unwrap();
    succeeded(
        "dpkg -i",
        chroot(&root, None, &["dpkg", "-i", "/tmp/pwsync.deb"]),
    );

    let version = succeeded(
        "pwsync --version",
        chroot(&root, None, &["pwsync", "--version"]),
    );
    assert_eq!(version, format!("pwsync {}", env!("CARGO_PKG_VERSION")));
    let user = succeeded(
        "getent",
        chroot(&root, None, &["getent", "passwd", "pwsync"]),
    );
    let fields: Vec<&str> = user.split(':').collect();
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system user: {user}"
    );
    assert!(fields[6].ends_with("nologin"), "no login shell: {user}");
    let conffiles = succeeded(
        "dpkg-query",
        chroot(
            &root,
            None,
            &["dpkg-query", "-W", "-f", "${Conffiles}", "pwsync"],
        ),
    );
    assert!(conffiles.contains("/etc/pwsync/pwsync.toml"), "{conffiles}");
    let perms = succeeded(
        "stat",
        chroot(
            &root,
            None,
            &["stat", "-c", "%U:%G %a", "/etc/pwsync/pwsync.toml"],
        ),
    );
    assert_eq!(
        perms, "root:pwsync 640",
        "secrets readable by the daemon only"
    );

    // doctor as the service runs it: user pwsync, the installed config, real servers.
    let (influx, broker) = influx_and_broker();
    let ha = ha_with(&broker);
    let toml = format!(
        "time_zone = \"{ZONE}\"\n[influxdb]\nurl = \"{}\"\n[homeassistant]\nurl = \"{}\"\ntoken = \"{}\"\n[mqtt]\nurl = \"{}\"\n",
        influx.url(),
        ha.url(),
        ha.token(),
        broker.url()
    );
    std::fs::write(root.join("etc/pwsync/pwsync.toml"), toml).unwrap();
    let doctor = chroot(
        &root,
        Some(&format!("{}:{}", fields[2], fields[3])),
        &[
            "pwsync",
            "--config",
            "/etc/pwsync/pwsync.toml",
            "doctor",
            "--json",
        ],
    );
    let report: serde_json::Value =
        serde_json::from_str(&succeeded("pwsync doctor", doctor)).unwrap();
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["homeassistant"]["version"], ha.version(), "{report}");

    // The unit: systemd's own verifier, on the installed tree.
    let unit = root.join("lib/systemd/system/pwsync.service");
    let unit = if unit.exists() {
        unit
    } else {
        root.join("usr/lib/systemd/system/pwsync.service")
    };
    let text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "User=pwsync",
        "Restart=always",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/pwsync",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
    // Verified against the host's systemd (the clean root has none), with the binary the
    // package installed in place of /usr/bin/pwsync, which the verifier requires to exist.
    let host_unit = dir.path().join("pwsync.service");
    let bin = root.join("usr/bin/pwsync");
    std::fs::write(
        &host_unit,
        text.replace("/usr/bin/pwsync", bin.to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&host_unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );

    // The man page renders without warnings and documents the commands.
    let page = root.join("usr/share/man/man1/pwsync.1.gz");
    let o = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
        .unwrap();
    let text = succeeded("man -l", o);
    for word in ["pwsync", "serve", "backfill", "completions"] {
        assert!(text.contains(word), "man page lacks {word}: {text}");
    }
    assert!(root.join("usr/share/man/man1/pwsync-serve.1.gz").is_file());
    let bash = root.join("usr/share/bash-completion/completions/pwsync");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p pwsync", bash.display()))
        .output()
        .unwrap();
    succeeded("the bash completion loads", o);
}
