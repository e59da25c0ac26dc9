//! How an instance is configured: the options a test sets and the `configuration.yaml` made
//! from them.

use std::path::PathBuf;

/// How to configure an instance.
#[derive(Debug, Clone)]
pub struct HaOptions {
    /// HA's `time_zone` (IANA name).
    pub time_zone: String,
    /// `recorder: db_url`; `None` = SQLite `home-assistant_v2.db` in the config dir.
    /// `mysql://` is rewritten to `mysql+pymysql://`; the MariaDB/PostgreSQL driver is
    /// pip-installed into the venv when missing.
    pub recorder_db_url: Option<String>,
    /// Add the MQTT integration for this broker (through the config-flow REST API).
    pub mqtt_broker: Option<(String, u16)>,
    /// Files written into `config/.storage/` before the first start, `(name, contents)`,
    /// e.g. a pre-seeded `core.entity_registry`.
    pub storage_files: Vec<(String, String)>,
    /// A SQLite recorder database copied to `config/home-assistant_v2.db` before the first start
    /// (e.g. a [`reference_sqlite_db`] with rows seeded). Ignored with `recorder_db_url`.
    pub sqlite_db: Option<PathBuf>,
    /// YAML appended to `configuration.yaml` (e.g. `template:` sensors).
    pub extra_config: String,
    /// Run HA's wall clock this many seconds off the real one (libfaketime; the monotonic clock
    /// stays real): a test can put HA a minute before an hour boundary to see it compile.
    pub clock_offset_secs: Option<i64>,
}

impl Default for HaOptions {
    fn default() -> Self {
        HaOptions {
            time_zone: "America/Los_Angeles".to_string(),
            recorder_db_url: None,
            mqtt_broker: None,
            storage_files: Vec::new(),
            sqlite_db: None,
            extra_config: String::new(),
            clock_offset_secs: None,
        }
    }
}

impl HaOptions {
    pub fn with_time_zone(mut self, tz: &str) -> Self {
        self.time_zone = tz.to_string();
        self
    }
    /// HA's MQTT integration on a broker of the test's, on loopback.
    pub fn with_broker(mut self, port: u16) -> Self {
        self.mqtt_broker = Some(("127.0.0.1".into(), port));
        self
    }
}

pub(super) fn configuration_yaml(opts: &HaOptions, port: u16) -> String {
    let db_url = opts
        .recorder_db_url
        .as_ref()
        .map(|u| format!("  db_url: \"{u}\"\n"))
        .unwrap_or_default();
    // No default_config: it pulls integrations that want the network (cloud, zeroconf, ...).
    format!(
        "homeassistant:\n  name: pwsync-test\n  latitude: 37.77\n  longitude: -122.42\n  \
         elevation: 10\n  unit_system: metric\n  time_zone: \"{tz}\"\n  currency: USD\n  \
         country: US\n\
         {http}\
         recorder:\n  commit_interval: 1\n{db_url}\
         logger:\n  default: warning\n{extra}\n",
        tz = opts.time_zone,
        http = crate::ha_chroot::http_config(crate::ha_chroot::selected(), port).0,
        extra = opts.extra_config,
    )
}
