//! The MQTT broker as configured.

use crate::Config;
use pwsync_mqtt::MqttSettings;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Settings for a connection with an optional last will. The client id is `mqtt.client_id` as
/// configured, else `pwsync-<site>-<random>`, new in every process: a broker drops the older of
/// two connections under one id, so a shared default would let `serve --once` or a second
/// daemon take `serve`'s place. `role` names a second connection of the same set-up
/// (`doctor`), so it never takes the daemon's id either.
pub fn settings(
    cfg: &Config,
    role: Option<&str>,
    will: Option<(String, String)>,
    connect_timeout: Duration,
) -> MqttSettings {
    let m = &cfg.mqtt;
    let configured = !m.client_id.trim().is_empty();
    let base = match configured {
        true => m.client_id.clone(),
        false => format!("pwsync-{}-{}", cfg.site, random_suffix()),
    };
    MqttSettings {
        url: m.url.clone(),
        ca_file: m.ca_file.clone(),
        username: m.username.clone(),
        password: (!m.password.is_empty()).then(|| m.password.expose().to_string()),
        client_id: match role {
            Some(role) => format!("{base}-{role}"),
            None => base,
        },
        configured_client_id: configured,
        will,
        connect_timeout,
    }
}

/// Six hex digits from the standard library's per-process random hash keys (no RNG needed for
/// an id that only has to differ between processes).
fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:06x}", h.finish() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_client_id_is_unique_and_a_configured_one_is_kept() {
        let mut cfg = Config {
            site: "cabin".into(),
            ..Config::default()
        };
        let t = Duration::from_secs(1);
        let (a, b) = (settings(&cfg, None, None, t), settings(&cfg, None, None, t));
        assert!(a.client_id.starts_with("pwsync-cabin-"), "{}", a.client_id);
        assert_ne!(a.client_id, b.client_id);
        assert!(!a.configured_client_id);
        cfg.mqtt.client_id = "garage".into();
        let s = settings(&cfg, None, None, t);
        assert_eq!(
            (s.client_id.as_str(), s.configured_client_id),
            ("garage", true)
        );
        assert_eq!(
            settings(&cfg, Some("doctor"), None, t).client_id,
            "garage-doctor"
        );
    }
}
