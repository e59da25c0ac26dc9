//! The MQTT broker as configured.

use crate::config::Config;
use pwsync_mqtt::MqttSettings;
use std::time::Duration;

/// Settings for a connection as client `client_id` (a second connection under `serve`'s own
/// id would make the broker drop `serve`'s), with an optional last will.
pub fn settings(
    cfg: &Config,
    client_id: String,
    will: Option<(String, String)>,
    connect_timeout: Duration,
) -> MqttSettings {
    let m = &cfg.mqtt;
    MqttSettings {
        url: m.url.clone(),
        ca_file: m.ca_file.clone(),
        username: m.username.clone(),
        password: (!m.password.is_empty()).then(|| m.password.expose().to_string()),
        client_id,
        will,
        connect_timeout,
    }
}
