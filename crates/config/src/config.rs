//! `pwsync.toml`, overridden by `PWSYNC_*` environment variables, overridden by flags.
//!
//! Environment variables name a key by its path with `__` between levels, for example
//! `PWSYNC_INFLUXDB__URL` or `PWSYNC_HOMEASSISTANT__TOKEN`. Secrets may instead come from a file
//! (`password_file`, `token_file`); they are held in [`Secret`], which never prints its value.

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use pwsync_energy::Field;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string: Debug and Display print `***`, Serialize writes `"***"`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Prefix of entity ids: `sensor.<site>_home_usage`, unique ids `pwsync_<site>_<key>`.
    pub site: String,
    /// Name of the HA device that holds the sensors.
    pub device_name: String,
    /// IANA zone for local days when HA is not reachable (HA's own zone wins when it is).
    pub time_zone: String,
    pub influxdb: InfluxSection,
    pub homeassistant: HaSection,
    pub mqtt: MqttSection,
    pub limits: Limits,
    pub serve: ServeSection,
    pub web: WebSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            site: "powerwall".into(),
            device_name: "Powerwall".into(),
            time_zone: "UTC".into(),
            influxdb: InfluxSection::default(),
            homeassistant: HaSection::default(),
            mqtt: MqttSection::default(),
            limits: Limits::default(),
            serve: ServeSection::default(),
            web: WebSection::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxSection {
    pub url: String,
    pub database: String,
    pub username: Option<String>,
    pub password: Secret,
    pub password_file: Option<PathBuf>,
    pub retention_policy: String,
    pub measurement: String,
    pub timeout_secs: u64,
    /// A stretch without data longer than this is a gap: its energy is unknown, never bridged.
    pub gap_limit_secs: i64,
    /// InfluxDB field name per pwsync field, for installations that renamed them.
    pub fields: BTreeMap<Field, String>,
}

impl Default for InfluxSection {
    fn default() -> Self {
        InfluxSection {
            url: "http://localhost:8086".into(),
            database: "powerwall".into(),
            username: None,
            password: Secret::default(),
            password_file: None,
            retention_policy: "autogen".into(),
            measurement: "http".into(),
            timeout_secs: 30,
            gap_limit_secs: 300,
            fields: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaSection {
    /// e.g. `http://homeassistant.local:8123`; the websocket URL is derived from it.
    pub url: Option<String>,
    pub token: Secret,
    pub token_file: Option<PathBuf>,
    /// Recorder database for offline writes (HA stopped): `sqlite:///config/home-assistant_v2.db`,
    /// `mysql://…`, `postgresql://…`.
    pub recorder_db: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    pub url: String,
    pub username: Option<String>,
    pub password: Secret,
    pub password_file: Option<PathBuf>,
    /// mqtts: the CA certificate (PEM) that signed the broker's; default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Empty: `pwsync-<site>-<random>`, new in every process (see [`crate::broker::settings`]).
    pub client_id: String,
    pub discovery_prefix: String,
    pub poll_interval_secs: u64,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            url: "mqtt://localhost:1883".into(),
            username: None,
            password: Secret::default(),
            password_file: None,
            ca_file: None,
            client_id: String::new(),
            discovery_prefix: "homeassistant".into(),
            poll_interval_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The most power any one field can physically reach, kW; an hour above it is a spike.
    pub max_power_kw: f64,
    /// `check`: an hour differing from InfluxDB by more than this many Wh …
    pub tolerance_wh: f64,
    /// … and more than this percentage of InfluxDB's energy is wrong.
    pub tolerance_pct: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_power_kw: 30.0,
            tolerance_wh: 10.0,
            tolerance_pct: 1.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSection {
    /// Local time of day (HA's zone) at which `serve` runs `check` by itself, `HH:MM`; empty
    /// turns the daily check off. Needs `homeassistant.url` and a token.
    pub check_daily_at: String,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            check_daily_at: "03:30".into(),
        }
    }
}

impl ServeSection {
    /// The daily check's time of day, `None` when turned off.
    pub fn daily_check(&self) -> Result<Option<chrono::NaiveTime>> {
        let s = self.check_daily_at.trim();
        if s.is_empty() {
            return Ok(None);
        }
        match chrono::NaiveTime::parse_from_str(s, "%H:%M") {
            Ok(t) => Ok(Some(t)),
            Err(_) => bail!(
                "serve.check_daily_at = '{s}' is not a time of day: write HH:MM, e.g. \"03:30\", or \"\" to turn the daily check off"
            ),
        }
    }
}

/// The web panel `serve` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    /// `address:port` the panel listens on; empty turns it off.
    pub listen: String,
    /// Required on every request when set (`Authorization: Bearer`, or `?token=` once). An
    /// address other than loopback needs one.
    pub token: Secret,
    /// Only HA's ingress proxy may connect (the add-on sets it; HA authenticates the person).
    pub ingress_proxy: String,
    /// Names the panel answers to besides its own addresses and `localhost`: `name` (any
    /// port) or `name:port`. A list, or in the environment one string with commas.
    #[serde(deserialize_with = "one_or_many")]
    pub hosts: Vec<String>,
}

impl Default for WebSection {
    fn default() -> Self {
        WebSection {
            listen: "127.0.0.1:8099".into(),
            token: Secret::default(),
            ingress_proxy: String::new(),
            hosts: Vec::new(),
        }
    }
}

/// A list, or one string of comma-separated items (`PWSYNC_WEB__HOSTS=a.lan,b.lan:8099`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Where and for whom the panel listens, checked.
#[derive(Debug, Clone)]
pub struct WebListen {
    pub addr: std::net::SocketAddr,
    pub token: Option<String>,
    pub ingress_proxy: Option<std::net::IpAddr>,
    pub hosts: pwsync_web::Hosts,
}

impl WebSection {
    /// `None` when the panel is off. A panel other machines could reach must be guarded by
    /// a token or the ingress proxy: anything else is refused here, before `serve` starts.
    pub fn listen(&self) -> Result<Option<WebListen>> {
        let s = self.listen.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let Ok(addr) = s.parse::<std::net::SocketAddr>() else {
            bail!("web.listen = '{s}' is not an address:port: write e.g. \"127.0.0.1:8099\", or \"\" to turn the panel off")
        };
        let ingress = self.ingress_proxy.trim();
        let ingress_proxy = match ingress {
            "" => None,
            ip => Some(ip.parse::<std::net::IpAddr>().map_err(|_| {
                anyhow::anyhow!("web.ingress_proxy = '{ip}' is not an IP address: the Supervisor's ingress proxy is 172.30.32.2")
            })?),
        };
        let token = Some(self.token.expose().to_string()).filter(|t| !t.is_empty());
        if !addr.ip().is_loopback() && token.is_none() && ingress_proxy.is_none() {
            bail!("web.listen = '{s}' can be reached from other machines: set web.token, or listen on 127.0.0.1")
        }
        let hosts = pwsync_web::Hosts::new(&self.hosts)?;
        Ok(Some(WebListen {
            addr,
            token,
            ingress_proxy,
            hosts,
        }))
    }
}

/// `PWSYNC_*` variables of the program itself, not of the configuration's schema.
const PROGRAM_VARS: [&str; 7] = [
    "CONFIG",
    "LOG",
    "ADDON",
    "ADDON_OPTIONS",
    "PROGRESS",
    "STATE_DIR",
    "SUPERVISOR_URL",
];
/// Variables of pwsync's own tests, benches and packaging scripts, which run the binary with
/// them set: `PWSYNC_TEST_*`, `PWSYNC_BENCH_*` and these.
const TOOL_PREFIXES: [&str; 2] = ["TEST_", "BENCH_"];
const TOOL_VARS: [&str; 9] = [
    "HA_VENV",
    "HA_PYTHON",
    "HA_CHROOT",
    "CACHE",
    "PG_BIN",
    "PANEL_SCREENSHOTS",
    "DEBIAN_MIRROR",
    "IMAGE",
    "DOCKER_ROOT",
];

/// The configuration's keys as `PWSYNC_*` names take them (`INFLUXDB__URL`, `SITE`), from the
/// schema itself, so a new key is known here without a list to keep; `open` are the tables
/// whose keys are the user's (`INFLUXDB__FIELDS__HOME`).
#[derive(Clone)]
struct EnvKeys {
    keys: Vec<String>,
    open: Vec<String>,
}

impl EnvKeys {
    fn of_schema() -> EnvKeys {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut EnvKeys) {
            let serde_json::Value::Object(map) = v else {
                out.keys.push(prefix.to_string());
                return;
            };
            if map.is_empty() {
                out.open.push(format!("{prefix}__"));
            }
            for (k, v) in map {
                let name = k.to_ascii_uppercase();
                match prefix {
                    "" => walk(&name, v, out),
                    _ => walk(&format!("{prefix}__{name}"), v, out),
                }
            }
        }
        let mut out = EnvKeys {
            keys: Vec::new(),
            open: Vec::new(),
        };
        let schema = serde_json::to_value(Config::default()).expect("the defaults serialize");
        walk("", &schema, &mut out);
        out
    }

    /// `name` (after `PWSYNC_`, any case) sets a configuration key.
    fn configures(&self, name: &str) -> bool {
        let name = name.to_ascii_uppercase();
        self.keys.contains(&name)
            || self
                .open
                .iter()
                .any(|p| name.len() > p.len() && name.starts_with(p.as_str()))
    }

    /// `name` (after `PWSYNC_`) is the program's, a tool's or a configuration key.
    fn known(&self, name: &str) -> bool {
        let upper = name.to_ascii_uppercase();
        self.configures(name)
            || PROGRAM_VARS.contains(&upper.as_str())
            || TOOL_VARS.contains(&upper.as_str())
            || TOOL_PREFIXES.iter().any(|p| upper.starts_with(p))
    }

    /// The valid name closest to `name` (after `PWSYNC_`), for the error.
    fn nearest(&self, name: &str) -> String {
        let upper = name.to_ascii_uppercase();
        let valid = self.keys.iter().map(String::as_str).chain(PROGRAM_VARS);
        valid
            .min_by_key(|k| strsim::levenshtein(&upper, k))
            .unwrap_or("SITE")
            .to_string()
    }

    /// A `PWSYNC_*` variable that is neither a key nor the program's is a typo: an error naming
    /// the nearest valid name, as a misspelled key in `pwsync.toml` is. Silently ignored, it
    /// would leave the setting it meant at its default.
    fn check(&self, vars: impl Iterator<Item = String>) -> Result<()> {
        for var in vars {
            let Some(name) = var.strip_prefix("PWSYNC_") else {
                continue;
            };
            if name.is_empty() || self.known(name) {
                continue;
            }
            bail!(
                "unknown environment variable {}: did you mean PWSYNC_{}? (a configuration key is \
                 PWSYNC_<KEY> or PWSYNC_<SECTION>__<KEY>, e.g. PWSYNC_MQTT__URL)",
                var,
                self.nearest(name)
            );
        }
        Ok(())
    }
}

/// The `PWSYNC_*` variables that name configuration keys; the program's own (such as
/// `PWSYNC_CONFIG` or `PWSYNC_LOG`) are not part of the file's schema.
fn config_env(keys: EnvKeys) -> Env {
    Env::prefixed("PWSYNC_")
        .filter(move |k| keys.configures(k.as_str()))
        .split("__")
}

impl Config {
    /// Load defaults ← `path` (if given, it must exist; else `./pwsync.toml` if present) ← env.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => {
                if !p.is_file() {
                    bail!(
                        "config file {} not found: pass an existing file to --config",
                        p.display()
                    );
                }
                fig = fig.merge(Toml::file(p));
            }
            None => fig = fig.merge(Toml::file("pwsync.toml")),
        }
        let keys = EnvKeys::of_schema();
        keys.check(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()))?;
        fig = fig.merge(config_env(keys));
        let mut cfg: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        cfg.read_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn read_secret_files(&mut self) -> Result<()> {
        fn read(file: &Option<PathBuf>, into: &mut Secret, what: &str) -> Result<()> {
            if let Some(f) = file {
                let s = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {what} file {}", f.display()))?;
                *into = Secret::new(s.trim_end_matches(['\n', '\r']));
            }
            Ok(())
        }
        read(
            &self.influxdb.password_file,
            &mut self.influxdb.password,
            "influxdb.password",
        )?;
        read(
            &self.homeassistant.token_file,
            &mut self.homeassistant.token,
            "homeassistant.token",
        )?;
        read(
            &self.mqtt.password_file,
            &mut self.mqtt.password,
            "mqtt.password",
        )
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.site.is_empty()
            || !self
                .site
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!(
                "invalid site '{}': use lowercase letters, digits and _ (it becomes part of entity ids)",
                self.site
            );
        }
        self.tz()?;
        if self.influxdb.gap_limit_secs < 60 {
            bail!("influxdb.gap_limit_secs must be at least 60 (the data is 1-minute means)");
        }
        if self.influxdb.timeout_secs == 0 {
            bail!("influxdb.timeout_secs must be at least 1 (seconds to wait for InfluxDB; default 30)");
        }
        let kw = self.limits.max_power_kw;
        if !(kw.is_finite() && kw > 0.0) {
            bail!(
                "limits.max_power_kw must be a number above 0 (the most power one field can reach, e.g. 30), not {kw}"
            );
        }
        self.serve.daily_check()?;
        self.web.listen()?;
        self.validate_urls()
    }

    /// Every URL is checked here, so a typo is named by its key before any connection is tried.
    /// Values are not echoed: a URL may carry a password.
    fn validate_urls(&self) -> Result<()> {
        pwsync_influx::check_url(&self.influxdb.url)?;
        if let Some(u) = &self.homeassistant.url {
            // This build's websocket has no TLS: refused here, not at the first connection.
            check_url(
                "homeassistant.url",
                u,
                &["http", "ws"],
                &["https", "wss"],
                "http://homeassistant.local:8123 (HA's plain address on your network), or run pwsync as HA's app, which reaches HA through the Supervisor",
            )?;
        }
        check_url(
            "mqtt.url",
            &self.mqtt.url,
            &["mqtt", "mqtts", "tcp", "ssl"],
            &[],
            "mqtt://localhost:1883",
        )?;
        if let Some(db) = &self.homeassistant.recorder_db {
            check_recorder_url(db.expose())?;
        }
        Ok(())
    }

    /// The configured fallback zone.
    pub fn tz(&self) -> Result<chrono_tz::Tz> {
        self.time_zone.parse().map_err(|_| {
            anyhow::anyhow!(
                "unknown time zone '{}': use an IANA name such as Europe/Berlin",
                self.time_zone
            )
        })
    }

    /// Entity id of a lifetime meter: `sensor.<site>_<key>`.
    pub fn meter_entity(&self, field: Field) -> String {
        format!("sensor.{}_{}", self.site, field.sensor_key())
    }
}

/// `url` parses, has one of the `supported` schemes and a host; a scheme of `no_tls_yet` (TLS
/// this build lacks) is named as such rather than as unknown.
fn check_url(
    key: &str,
    url: &str,
    supported: &[&str],
    no_tls_yet: &[&str],
    example: &str,
) -> Result<()> {
    let why = match url::Url::parse(url) {
        _ if url.trim().is_empty() => "it is empty".to_string(),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            format!("no scheme ({}://)", supported[0])
        }
        Err(e) => e.to_string(),
        Ok(u) if no_tls_yet.contains(&u.scheme()) => {
            format!(
                "{}:// is not supported yet (this build has no TLS for it)",
                u.scheme()
            )
        }
        Ok(u) if !supported.contains(&u.scheme()) => {
            format!("unsupported scheme '{}'", u.scheme().escape_debug())
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => "no host".to_string(),
        Ok(_) => return Ok(()),
    };
    bail!("invalid {key}: {why}: expected e.g. {example}")
}

/// The recorder URL's scheme; the rest (path, host, credentials) is checked when it is opened.
fn check_recorder_url(url: &str) -> Result<()> {
    const SCHEMES: [&str; 5] = ["sqlite", "mysql", "mariadb", "postgres", "postgresql"];
    let scheme = url.split_once(':').map(|(s, _)| s);
    if scheme.is_some_and(|s| SCHEMES.contains(&s)) {
        return Ok(());
    }
    bail!(
        "invalid homeassistant.recorder_db: {}: expected sqlite:////config/home-assistant_v2.db, mysql://user:password@host/db or postgresql://user:password@host/db",
        match scheme {
            None => "no scheme".to_string(),
            Some(s) => format!("unsupported scheme '{}'", s.escape_debug()),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.influxdb.password = Secret::new("hunter2");
        c.homeassistant.token = Secret::new("eyJtoken");
        let dbg = format!("{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        for out in [dbg, json] {
            assert!(
                !out.contains("hunter2") && !out.contains("eyJtoken"),
                "{out}"
            );
            assert!(out.contains("***"));
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn file_env_and_secret_file_layer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let toml = dir.path().join("pwsync.toml");
        std::fs::write(
            &toml,
            format!(
                "site = \"home\"\n[influxdb]\nurl = \"http://a:1\"\npassword_file = \"{}\"\n",
                pw.display()
            ),
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("PWSYNC_INFLUXDB__DATABASE", "pw2");
            jail.set_env("PWSYNC_LOG", "debug");
            jail.set_env("PWSYNC_SITE", "cabin");
            jail.set_env("PWSYNC_TIME_ZONE", "Europe/Berlin");
            let c = Config::load(Some(&toml)).unwrap();
            assert_eq!(c.site, "cabin", "env overrides the file");
            assert_eq!(c.time_zone, "Europe/Berlin");
            assert_eq!(c.influxdb.url, "http://a:1");
            assert_eq!(c.influxdb.database, "pw2");
            assert_eq!(c.influxdb.password.expose(), "s3cret");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn web_hosts_is_a_list_in_the_file_and_commas_in_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("pwsync.toml");
        std::fs::write(
            &toml,
            "[web]\nhosts = [\"nas.lan\", \"pwsync.example:443\"]\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            let c = Config::load(Some(&toml)).unwrap();
            assert_eq!(c.web.hosts, ["nas.lan", "pwsync.example:443"]);
            jail.set_env("PWSYNC_WEB__HOSTS", "a.lan, b.lan:8099");
            let c = Config::load(Some(&toml)).unwrap();
            assert_eq!(c.web.hosts, ["a.lan", "b.lan:8099"]);
            jail.set_env("PWSYNC_WEB__HOSTS", "[c.lan]");
            assert_eq!(Config::load(Some(&toml)).unwrap().web.hosts, ["c.lan"]);
            jail.set_env("PWSYNC_WEB__HOSTS", "http://c.lan");
            let e = Config::load(Some(&toml)).unwrap_err().to_string();
            assert!(e.contains("web.hosts") && e.contains("http://c.lan"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn unknown_keys_and_bad_zone_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("pwsync.toml");
        // Inside a Jail: the Jail holds a process-wide lock, so the other test's PWSYNC_*
        // variables cannot leak into this one while they run in parallel.
        figment::Jail::expect_with(|_jail| {
            std::fs::write(&toml, "sitee = \"x\"\n").unwrap();
            let e = Config::load(Some(&toml)).unwrap_err().to_string();
            assert!(e.contains("sitee"), "{e}");
            std::fs::write(&toml, "time_zone = \"Mars/Base\"\n").unwrap();
            let e = Config::load(Some(&toml)).unwrap_err().to_string();
            assert!(e.contains("Mars/Base"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn a_misspelled_variable_is_an_error_naming_the_nearest_key() {
        figment::Jail::expect_with(|jail| {
            // The program's and the tools' own variables, and every key, pass.
            for (k, v) in [
                ("PWSYNC_LOG", "debug"),
                ("PWSYNC_PROGRESS", "lines"),
                ("PWSYNC_STATE_DIR", "/tmp"),
                ("PWSYNC_TEST_HA", "2026.11.0"),
                ("PWSYNC_HA_VENV", "/v"),
                ("PWSYNC_MQTT__PASSWORD_FILE", "/dev/null"),
                ("PWSYNC_INFLUXDB__FIELDS__HOME", "load_instant_power"),
                ("PWSYNC_time_zone", "Europe/Berlin"),
            ] {
                jail.set_env(k, v);
            }
            let c = Config::load(None).unwrap();
            assert_eq!(c.time_zone, "Europe/Berlin");
            for (typo, nearest) in [
                ("PWSYNC_SITEE", "PWSYNC_SITE"),
                ("PWSYNC_TIMEZONE", "PWSYNC_TIME_ZONE"),
                ("PWSYNC_INFLUXDB_URL", "PWSYNC_INFLUXDB__URL"),
                ("PWSYNC_MQTT__CLIENTID", "PWSYNC_MQTT__CLIENT_ID"),
            ] {
                jail.set_env(typo, "x");
                let e = Config::load(None).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("unknown environment variable {typo}"))
                        && e.contains(&format!("did you mean {nearest}?"))
                        && !e.contains('\n'),
                    "{e}"
                );
                std::env::remove_var(typo);
            }
            Ok(())
        });
    }

    /// The first error line of `c`'s validation.
    fn invalid(c: &Config) -> String {
        let e = c.validate().expect_err("must be refused").to_string();
        assert!(!e.contains('\n'), "one line: {e:?}");
        e
    }

    #[test]
    fn impossible_values_are_refused_with_the_valid_range() {
        let mut c = Config::default();
        c.validate().unwrap();
        for kw in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            c.limits.max_power_kw = kw;
            let e = invalid(&c);
            assert!(
                e.contains("limits.max_power_kw") && e.contains("above 0"),
                "{e}"
            );
        }
        c.limits.max_power_kw = 0.5;
        c.validate().unwrap();
        c.influxdb.timeout_secs = 0;
        let e = invalid(&c);
        assert!(
            e.contains("influxdb.timeout_secs must be at least 1"),
            "{e}"
        );
        c.influxdb.timeout_secs = 30;
        for typo in ["3:3o", "25:00", "03:30:00", "half past three"] {
            c.serve.check_daily_at = typo.into();
            let e = invalid(&c);
            assert!(
                e.contains("serve.check_daily_at") && e.contains(typo) && e.contains("HH:MM"),
                "{e}"
            );
        }
        c.serve.check_daily_at = "".into();
        assert_eq!(c.serve.daily_check().unwrap(), None);
        for (listen, token, proxy, needle) in [
            ("localhost:8099", "", "", "not an address:port"),
            ("127.0.0.1", "", "", "not an address:port"),
            ("0.0.0.0:8099", "", "", "set web.token"),
            ("0.0.0.0:8099", "", "supervisor", "web.ingress_proxy"),
        ] {
            c.web = WebSection {
                listen: listen.into(),
                token: Secret::new(token),
                ingress_proxy: proxy.into(),
                hosts: Vec::new(),
            };
            let e = invalid(&c);
            assert!(e.contains(needle), "{listen}: {e}");
        }
        c.web.ingress_proxy = "172.30.32.2".into();
        c.validate().unwrap();
        c.web = WebSection {
            listen: "0.0.0.0:8099".into(),
            token: Secret::new("t0ken"),
            ingress_proxy: String::new(),
            hosts: Vec::new(),
        };
        assert_eq!(
            c.web.listen().unwrap().unwrap().token.as_deref(),
            Some("t0ken")
        );
        c.web.listen = String::new();
        assert!(c.web.listen().unwrap().is_none());
        c.web = WebSection::default();
        c.web.hosts = vec!["pwsync.lan".into(), "https://pwsync.lan/".into()];
        let e = invalid(&c);
        assert!(
            e.contains("web.hosts") && e.contains("'https://pwsync.lan/'"),
            "{e}"
        );
        c.web = WebSection::default();
        c.serve.check_daily_at = "03:30".into();
        assert_eq!(
            c.serve.daily_check().unwrap(),
            chrono::NaiveTime::from_hms_opt(3, 30, 0)
        );
    }

    #[test]
    fn every_malformed_url_is_named_by_its_key() {
        let influx = [
            ("localhost", "no scheme"),
            ("", "empty"),
            ("http://localhost:99999", "invalid port"),
            ("ftp://localhost:8086", "unsupported scheme 'ftp'"),
            ("localhost:8086", "unsupported scheme 'localhost'"),
            ("http://", "empty host"),
            ("https://localhost:8086", "https:// is not supported yet"),
        ];
        for (url, why) in influx {
            let mut c = Config::default();
            c.influxdb.url = url.into();
            let e = invalid(&c);
            assert!(
                e.contains("influxdb.url") && e.contains(why),
                "{url:?}: {e}"
            );
        }
        let mut c = Config::default();
        c.homeassistant.url = Some("homeassistant.local".into());
        let e = invalid(&c);
        assert!(
            e.contains("homeassistant.url") && e.contains("no scheme"),
            "{e}"
        );
        for tls in ["https://ha.example:8123", "WSS://ha.example:8123"] {
            c.homeassistant.url = Some(tls.into());
            let e = invalid(&c);
            assert!(
                e.contains("homeassistant.url") && e.contains("not supported yet"),
                "{e}"
            );
        }
        c.homeassistant.url = Some("http://homeassistant.local:8123".into());
        c.validate().unwrap();
        c.mqtt.url = "http://broker:1883".into();
        let e = invalid(&c);
        assert!(e.contains("mqtt.url") && e.contains("'http'"), "{e}");
        c.mqtt.url = "mqtts://broker:8883".into();
        c.validate().unwrap();
        c.homeassistant.recorder_db = Some(Secret::new("/config/home-assistant_v2.db"));
        let e = invalid(&c);
        assert!(
            e.contains("homeassistant.recorder_db") && e.contains("no scheme"),
            "{e}"
        );
        c.homeassistant.recorder_db = Some(Secret::new("oracle://ha:hunter2@db/ha"));
        let e = invalid(&c);
        assert!(e.contains("'oracle'") && !e.contains("hunter2"), "{e}");
        c.homeassistant.recorder_db = Some(Secret::new("sqlite:////config/home-assistant_v2.db"));
        c.validate().unwrap();
    }
}
