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
        let o = docker(&["logs", "--tail", "30", &self.0]);
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

/// A stand-in for the two Supervisor endpoints the add-on uses: `GET /services/mqtt` (answered
/// with the real broker, for the add-on's token only) and the `/core/websocket` proxy
/// (forwarded byte for byte to the real HA's `/api/websocket`). The real Supervisor swaps the
/// add-on's token for its own on the way; this one forwards it, so the test gives the add-on
/// HA's token as its SUPERVISOR_TOKEN.
struct Supervisor {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Supervisor {
    async fn start(token: String, broker_port: u16, ha_port: u16) -> Supervisor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (token, seen) = (token.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = serve_one(conn, &token, broker_port, ha_port, &seen).await;
                });
            }
        });
        Supervisor { port, requests }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve_one(
    mut conn: tokio::net::TcpStream,
    token: &str,
    broker_port: u16,
    ha_port: u16,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let request_line = head.lines().next().unwrap_or_default().to_string();
    seen.lock().unwrap().push(request_line.clone());
    let authorized = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {token}")));
    let reply = |status: &str, body: String| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match request_line.split(' ').nth(1).unwrap_or_default() {
        "/services/mqtt" if authorized => {
            let body = serde_json::json!({"result": "ok", "data": {
                "addon": "core_mosquitto", "host": "127.0.0.1", "port": broker_port,
                "ssl": false, "protocol": "3.1.1", "username": "addons", "password": "pw"}});
            conn.write_all(reply("200 OK", body.to_string()).as_bytes())
                .await
        }
        "/services/mqtt" => {
            let body = r#"{"result":"error","message":"Unauthorized"}"#.to_string();
            conn.write_all(reply("401 Unauthorized", body).as_bytes())
                .await
        }
        "/core/websocket" => {
            let mut ha = tokio::net::TcpStream::connect(("127.0.0.1", ha_port)).await?;
            let forwarded = head.replacen("/core/websocket", "/api/websocket", 1);
            ha.write_all(forwarded.as_bytes()).await?;
            tokio::io::copy_bidirectional(&mut conn, &mut ha).await?;
            Ok(())
        }
        _ => {
            let body = r#"{"result":"error","message":"not found"}"#.to_string();
            conn.write_all(reply("404 Not Found", body).as_bytes())
                .await
        }
    }
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

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the images and .deb: eval \"$(deploy/scripts/package.sh)\"; cargo test --workspace --test deploy -- --ignored"]
async fn addon_gets_broker_and_ha_from_the_supervisor_and_publishes() {
    let Some(image) = built("PWSYNC_TEST_ADDON_IMAGE") else {
        return;
    };
    let (influx, broker) = influx_and_broker();
    let ha = ha_with(&broker);
    let supervisor = Supervisor::start(ha.token().to_string(), broker.port(), ha.port()).await;

    // The options the Supervisor writes: config.yaml's defaults, the required URL filled in.
    let config = yaml(&addon_dir().join("config.yaml"));
    let mut options: serde_json::Value = serde_json::to_value(config["options"].clone()).unwrap();
    options["influxdb_url"] = influx.url().into();
    options["site"] = "addon".into();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("options.json"), options.to_string()).unwrap();

    let mut args = env_args(&[
        ("SUPERVISOR_TOKEN", ha.token().to_string()),
        ("PWSYNC_SUPERVISOR_URL", supervisor.url()),
        ("TZ", ZONE.to_string()),
    ]);
    args.extend(["-v".to_string(), format!("{}:/data", data.path().display())]);
    // The image's own command, as the Supervisor starts it.
    let c = Container::run(&image, &args, &[]);
    let states = wait_for_sensors(&ha_client(&ha), "addon").await;
    assert!(
        states.contains_key("sensor.addon_battery_level"),
        "{states:?}"
    );

    let requests = supervisor.requests();
    for path in ["GET /services/mqtt ", "GET /core/websocket "] {
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
