//! `pwsync --addon`: the configuration of a Home Assistant add-on.
//!
//! The Supervisor writes the user's options to `/data/options.json`, gives the add-on a
//! `SUPERVISOR_TOKEN`, tells it the MQTT broker through its services API
//! (`GET http://supervisor/services/mqtt`, for `services: ["mqtt:need"]`) and proxies HA's
//! websocket at `ws://supervisor/core/websocket` (for `homeassistant_api: true`), where the
//! token is the access token. Any `pwsync.toml` and `PWSYNC_*` variables are read first; the
//! add-on's values win. `PWSYNC_SUPERVISOR_URL` and `PWSYNC_ADDON_OPTIONS` point elsewhere
//! (a test's stand-in for the Supervisor).

use crate::{Config, Secret};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const OPTIONS: &str = "/data/options.json";
/// config.yaml's `ingress_port`, and the Supervisor's ingress proxy (HA's add-on docs).
const INGRESS_PORT: u16 = 8099;
const INGRESS_PROXY: &str = "172.30.32.2";
const SUPERVISOR: &str = "http://supervisor";

/// `/data/options.json`: the keys of `schema` in deploy/ha-addon/pwsync/config.yaml.
#[derive(Debug, Deserialize)]
struct Options {
    influxdb_url: String,
    influxdb_database: String,
    #[serde(default)]
    influxdb_username: Option<String>,
    #[serde(default)]
    influxdb_password: Option<String>,
    site: String,
    #[serde(default)]
    time_zone: Option<String>,
    poll_interval: u64,
}

/// The `data` of the Supervisor's `GET /services/mqtt` reply.
#[derive(Debug, Deserialize)]
struct MqttService {
    host: String,
    port: u16,
    #[serde(default)]
    ssl: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    result: String,
    #[serde(default)]
    message: Option<String>,
    data: Option<T>,
}

/// The configuration of `pwsync --addon`.
pub async fn load(config: Option<&Path>) -> Result<Config> {
    let token = std::env::var("SUPERVISOR_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context(
            "SUPERVISOR_TOKEN is not set: --addon runs only as a Home Assistant add-on \
             (homeassistant_api: true); elsewhere run pwsync without --addon",
        )?;
    let supervisor = env_or("PWSYNC_SUPERVISOR_URL", SUPERVISOR);
    let options_path = PathBuf::from(env_or("PWSYNC_ADDON_OPTIONS", OPTIONS));
    let options = read_options(&options_path)?;
    let mqtt = mqtt_service(&supervisor, &token).await?;
    let mut cfg = Config::load(config)?;
    apply(&mut cfg, options, mqtt, &supervisor, token)?;
    cfg.validate()?;
    Ok(cfg)
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn read_options(path: &Path) -> Result<Options> {
    let text = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the add-on options {}: is this running as the add-on?",
            path.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| {
        format!(
            "invalid add-on options in {}: check the add-on's Configuration tab",
            path.display()
        )
    })
}

async fn mqtt_service(supervisor: &str, token: &str) -> Result<MqttService> {
    let url = format!("{}/services/mqtt", supervisor.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let reply = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach the Supervisor at {url}"))?;
    let status = reply.status();
    let body: Envelope<MqttService> = reply.json().await.with_context(|| {
        format!("the Supervisor's reply from {url} (HTTP {status}) is not a service description")
    })?;
    match body.data {
        Some(data) if body.result == "ok" && status.is_success() => Ok(data),
        _ => bail!(
            "no MQTT broker from the Supervisor ({}): install and start the Mosquitto broker \
             add-on, or another add-on that provides mqtt",
            body.message.unwrap_or_else(|| format!("HTTP {status}"))
        ),
    }
}

/// The add-on's values over the loaded configuration.
fn apply(
    cfg: &mut Config,
    o: Options,
    mqtt: MqttService,
    supervisor: &str,
    token: String,
) -> Result<()> {
    cfg.site = o.site;
    cfg.influxdb.url = o.influxdb_url;
    cfg.influxdb.database = o.influxdb_database;
    cfg.influxdb.username = o.influxdb_username.filter(|u| !u.is_empty());
    cfg.influxdb.password = Secret::new(o.influxdb_password.unwrap_or_default());
    cfg.influxdb.password_file = None;
    // HA's own zone wins where HA is reachable; the Supervisor sets TZ to the host's.
    if let Some(tz) = o
        .time_zone
        .filter(|t| !t.is_empty())
        .or_else(|| std::env::var("TZ").ok().filter(|t| !t.is_empty()))
    {
        cfg.time_zone = tz;
    }
    cfg.mqtt.poll_interval_secs = o.poll_interval;
    let scheme = if mqtt.ssl { "mqtts" } else { "mqtt" };
    cfg.mqtt.url = format!("{scheme}://{}:{}", mqtt.host, mqtt.port);
    cfg.mqtt.username = mqtt.username.filter(|u| !u.is_empty());
    cfg.mqtt.password = Secret::new(mqtt.password.unwrap_or_default());
    cfg.mqtt.password_file = None;
    cfg.homeassistant.url = Some(core_websocket(supervisor)?);
    cfg.homeassistant.token = Secret::new(token);
    cfg.homeassistant.token_file = None;
    // The panel behind HA's ingress: `ingress_port` of config.yaml, only the proxy admitted.
    cfg.web.listen = format!("0.0.0.0:{INGRESS_PORT}");
    cfg.web.ingress_proxy = INGRESS_PROXY.into();
    Ok(())
}

/// `http://supervisor` → `ws://supervisor/core/websocket`.
fn core_websocket(supervisor: &str) -> Result<String> {
    let mut u = url::Url::parse(supervisor)
        .with_context(|| format!("PWSYNC_SUPERVISOR_URL '{supervisor}' is not a URL"))?;
    let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
    if u.set_scheme(scheme).is_err() {
        bail!("PWSYNC_SUPERVISOR_URL '{supervisor}' must be an http:// URL");
    }
    u.set_path(&format!(
        "{}/core/websocket",
        u.path().trim_end_matches('/')
    ));
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        serde_json::from_str(
            r#"{"influxdb_url":"http://10.0.0.5:8086","influxdb_database":"powerwall",
                "influxdb_username":"","site":"cabin","time_zone":"Europe/Berlin",
                "poll_interval":30}"#,
        )
        .unwrap()
    }

    #[test]
    fn options_and_broker_become_the_configuration() {
        let mut cfg = Config::default();
        let mqtt = MqttService {
            host: "core-mosquitto".into(),
            port: 1883,
            ssl: false,
            username: Some("addons".into()),
            password: Some("pw".into()),
        };
        apply(&mut cfg, options(), mqtt, "http://supervisor", "tok".into()).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.site, "cabin");
        assert_eq!(cfg.influxdb.url, "http://10.0.0.5:8086");
        assert_eq!(cfg.influxdb.username, None, "an empty user means none");
        assert_eq!(cfg.time_zone, "Europe/Berlin");
        assert_eq!(cfg.mqtt.url, "mqtt://core-mosquitto:1883");
        assert_eq!(cfg.mqtt.username.as_deref(), Some("addons"));
        assert_eq!(cfg.mqtt.password.expose(), "pw");
        assert_eq!(cfg.mqtt.poll_interval_secs, 30);
        assert_eq!(
            cfg.homeassistant.url.as_deref(),
            Some("ws://supervisor/core/websocket")
        );
        assert_eq!(cfg.homeassistant.token.expose(), "tok");
        let web = cfg.web.listen().unwrap().unwrap();
        assert_eq!(web.addr.port(), 8099);
        assert_eq!(web.ingress_proxy, Some("172.30.32.2".parse().unwrap()));
    }

    #[test]
    fn a_test_supervisor_url_keeps_its_port() {
        assert_eq!(
            core_websocket("http://127.0.0.1:4567/").unwrap(),
            "ws://127.0.0.1:4567/core/websocket"
        );
    }

    #[test]
    fn missing_option_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("options.json");
        std::fs::write(&p, r#"{"influxdb_url":"http://x:8086"}"#).unwrap();
        let e = format!("{:#}", read_options(&p).unwrap_err());
        assert!(e.contains("influxdb_database"), "{e}");
    }
}
