//! HA's MQTT discovery for pwsync's sensors: which sensors exist, their topics and their
//! retained config payloads.

use pwsync_energy::Field;
use serde_json::{json, Value};

/// What a sensor measures, which decides its classes, unit and payload shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Lifetime kWh, `total_increasing`, never decreasing.
    Meter,
    /// kWh since local midnight / the first of the month: `total` with `last_reset`. The state
    /// payload is JSON `{"value": …, "last_reset": "…"}`.
    Period,
    /// kW, `measurement`.
    Power,
    /// %, `measurement`, with an optional device class (`battery`).
    Percent(Option<&'static str>),
    /// One of `options`.
    Enum(&'static [&'static str]),
    /// A number of things, no unit and no statistics (`history_problems`).
    Count,
    /// An instant, ISO 8601 with its offset (`last_check`).
    Timestamp,
    /// A `binary_sensor` of device class `problem`: `ON` when something is wrong.
    Problem,
    /// A `button`: pressing it in HA publishes this payload on [`Topics::command`].
    Button(&'static str),
}

impl Kind {
    /// HA's entity platform for this kind, part of its discovery topic and entity id.
    pub fn component(&self) -> &'static str {
        match self {
            Kind::Problem => "binary_sensor",
            Kind::Button(_) => "button",
            _ => "sensor",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// `home_usage`, `home_usage_today`, `battery_level`, …: entity id `sensor.<site>_<key>`.
    pub key: String,
    pub name: String,
    pub kind: Kind,
    /// A reading of the moment (power, level, direction): HA shows it unavailable when no
    /// fresh value has come for [`Device::expire_after_secs`], rather than a frozen number.
    pub expires: bool,
    /// Its state payload is JSON `{"state": …, "attributes": {…}}`: state and attributes in one
    /// retained message, so HA never shows one job's state with another's details.
    pub attributes: bool,
    /// HA's `entity_category` (`config`, `diagnostic`); `None` for a primary entity.
    pub category: Option<&'static str>,
}

pub const BATTERY_STATES: &[&str] = &["charging", "discharging", "idle"];
pub const GRID_STATES: &[&str] = &["importing", "exporting", "idle"];
pub const ISLAND_STATES: &[&str] = &["on_grid", "off_grid", "syncing"];

fn sensor(key: impl Into<String>, name: impl Into<String>, kind: Kind) -> Sensor {
    Sensor {
        key: key.into(),
        name: name.into(),
        kind,
        expires: false,
        attributes: false,
        category: None,
    }
}

fn in_category(category: &'static str, s: Sensor) -> Sensor {
    Sensor {
        category: Some(category),
        ..s
    }
}

fn with_attributes(s: Sensor) -> Sensor {
    Sensor {
        attributes: true,
        ..s
    }
}

fn expiring(s: Sensor) -> Sensor {
    Sensor { expires: true, ..s }
}

impl Kind {
    /// The unit of its state, as HA shows it.
    pub fn unit(&self) -> Option<&'static str> {
        match self {
            Kind::Meter | Kind::Period => Some("kWh"),
            Kind::Power => Some("kW"),
            Kind::Percent(_) => Some("%"),
            _ => None,
        }
    }

    /// A reading of the Powerwall (not a job's result or control).
    pub fn is_reading(&self) -> bool {
        matches!(
            self,
            Kind::Meter | Kind::Period | Kind::Power | Kind::Percent(_) | Kind::Enum(_)
        )
    }
}

/// Every sensor `serve` publishes.
pub fn catalogue() -> Vec<Sensor> {
    let mut out = Vec::new();
    for f in Field::ALL {
        out.push(sensor(f.sensor_key(), f.display_name(), Kind::Meter));
        out.push(sensor(
            format!("{}_today", f.sensor_key()),
            format!("{} today", f.display_name()),
            Kind::Period,
        ));
        out.push(sensor(
            format!("{}_this_month", f.sensor_key()),
            format!("{} this month", f.display_name()),
            Kind::Period,
        ));
    }
    for (key, name) in [
        ("load_power", "Load power"),
        ("solar_power", "Solar power"),
        ("battery_power", "Battery power"),
        ("grid_power", "Grid power"),
        ("battery_charge_power", "Battery charge power"),
        ("battery_discharge_power", "Battery discharge power"),
        ("grid_import_power", "Grid import power"),
        ("grid_export_power", "Grid export power"),
    ] {
        out.push(expiring(sensor(key, name, Kind::Power)));
    }
    out.push(expiring(sensor(
        "battery_level",
        "Battery level",
        Kind::Percent(Some("battery")),
    )));
    out.push(sensor(
        "backup_reserve",
        "Backup reserve",
        Kind::Percent(None),
    ));
    out.push(expiring(sensor(
        "battery_state",
        "Battery state",
        Kind::Enum(BATTERY_STATES),
    )));
    out.push(expiring(sensor(
        "grid_state",
        "Grid state",
        Kind::Enum(GRID_STATES),
    )));
    out.push(sensor(
        "island_status",
        "Island status",
        Kind::Enum(ISLAND_STATES),
    ));
    out
}

/// The job states of `last_job`.
pub const JOB_STATES: &[&str] = &["idle", "running", "succeeded", "failed", "interrupted"];

/// The jobs `serve` runs when HA presses a button: (key, name, command payload).
pub const BUTTONS: &[(&str, &str, &str)] = &[
    ("check_history", "Check history", "check"),
    ("repair_history", "Repair history", "repair"),
    ("backfill_missing", "Backfill missing hours", "backfill"),
];

/// The buttons and the entities that show what the jobs found, published by `serve` when it
/// can reach HA (its jobs go through HA's websocket).
pub fn controls() -> Vec<Sensor> {
    let mut out: Vec<Sensor> = BUTTONS
        .iter()
        .map(|(key, name, payload)| {
            in_category("config", sensor(*key, *name, Kind::Button(payload)))
        })
        .collect();
    out.push(in_category(
        "diagnostic",
        with_attributes(sensor("history_problems", "History problems", Kind::Count)),
    ));
    out.push(sensor("history_ok", "History", Kind::Problem));
    out.push(in_category(
        "diagnostic",
        sensor("last_check", "Last check", Kind::Timestamp),
    ));
    out.push(in_category(
        "diagnostic",
        with_attributes(sensor("last_job", "Last job", Kind::Enum(JOB_STATES))),
    ));
    out
}

/// Where pwsync's topics live for one site.
#[derive(Debug, Clone)]
pub struct Topics {
    pub discovery_prefix: String,
    pub site: String,
}

impl Topics {
    pub fn config(&self, s: &Sensor) -> String {
        format!(
            "{}/{}/pwsync_{}/{}/config",
            self.discovery_prefix,
            s.kind.component(),
            self.site,
            s.key
        )
    }
    pub fn state(&self, key: &str) -> String {
        format!("pwsync/{}/{key}/state", self.site)
    }
    /// Retained states of every sensor, for reading them back at start.
    pub fn all_states(&self) -> String {
        format!("pwsync/{}/+/state", self.site)
    }
    /// The key of a state topic.
    pub fn key_of_state<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(&format!("pwsync/{}/", self.site))?
            .strip_suffix("/state")
    }
    /// Where HA's buttons publish the job to run.
    pub fn command(&self) -> String {
        format!("pwsync/{}/command", self.site)
    }
    pub fn availability(&self) -> String {
        format!("pwsync/{}/availability", self.site)
    }
    /// HA's birth and last-will topic.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }
}

/// The device all sensors belong to.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub sw_version: String,
    /// HA's `expire_after` for the sensors that expire; `None` leaves them without one.
    pub expire_after_secs: Option<u64>,
}

/// Whether `ha_version` takes `default_entity_id` (2025.10 and later) rather than `object_id`.
/// Unknown versions get both: each version ignores the key it does not know.
fn entity_id_keys(ha_version: Option<&str>) -> (bool, bool) {
    let parsed = ha_version.and_then(|v| {
        let mut it = v.split('.');
        Some((
            it.next()?.parse::<u32>().ok()?,
            it.next()?.parse::<u32>().ok()?,
        ))
    });
    match parsed {
        Some(v) if v >= (2025, 10) => (false, true),
        Some(_) => (true, false),
        None => (true, true),
    }
}

/// The retained discovery config of `s`.
pub fn config(s: &Sensor, t: &Topics, d: &Device, ha_version: Option<&str>) -> Value {
    let object_id = format!("{}_{}", t.site, s.key);
    let mut c = json!({
        "name": s.name,
        "unique_id": format!("pwsync_{}_{}", t.site, s.key),
        "availability_topic": t.availability(),
        "device": {
            "identifiers": [format!("pwsync_{}", t.site)],
            "name": d.name,
            "manufacturer": "Tesla",
            "model": "Powerwall (Powerwall-Dashboard via pwsync)",
            "sw_version": d.sw_version,
        },
    });
    match s.kind {
        Kind::Button(_) => c["command_topic"] = json!(t.command()),
        _ => c["state_topic"] = json!(t.state(&s.key)),
    }
    if s.attributes {
        c["value_template"] = json!("{{ value_json.state }}");
        c["json_attributes_topic"] = json!(t.state(&s.key));
        c["json_attributes_template"] = json!("{{ value_json.attributes | tojson }}");
    }
    if let (true, Some(secs)) = (s.expires, d.expire_after_secs) {
        c["expire_after"] = json!(secs);
    }
    let (object, default_entity) = entity_id_keys(ha_version);
    if object {
        c["object_id"] = json!(object_id);
    }
    if default_entity {
        c["default_entity_id"] = json!(format!("{}.{object_id}", s.kind.component()));
    }
    if let Some(unit) = s.kind.unit() {
        c["unit_of_measurement"] = json!(unit);
    }
    match &s.kind {
        Kind::Meter => {
            c["device_class"] = json!("energy");
            c["state_class"] = json!("total_increasing");
            c["suggested_display_precision"] = json!(2);
        }
        Kind::Period => {
            c["device_class"] = json!("energy");
            c["state_class"] = json!("total");
            c["suggested_display_precision"] = json!(2);
            c["value_template"] = json!("{{ value_json.value }}");
            c["last_reset_value_template"] = json!("{{ value_json.last_reset }}");
        }
        Kind::Power => {
            c["device_class"] = json!("power");
            c["state_class"] = json!("measurement");
            c["suggested_display_precision"] = json!(2);
        }
        Kind::Percent(class) => {
            if let Some(class) = class {
                c["device_class"] = json!(class);
            }
            c["state_class"] = json!("measurement");
            c["suggested_display_precision"] = json!(0);
        }
        Kind::Enum(options) => {
            c["device_class"] = json!("enum");
            c["options"] = json!(options);
        }
        Kind::Count => {}
        Kind::Timestamp => {
            c["device_class"] = json!("timestamp");
        }
        Kind::Problem => {
            c["device_class"] = json!("problem");
            c["payload_on"] = json!("ON");
            c["payload_off"] = json!("OFF");
        }
        Kind::Button(payload) => {
            c["payload_press"] = json!(payload);
        }
    }
    if let Some(category) = s.category {
        c["entity_category"] = json!(category);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Site "cabin"; readings expire after 180 s.
    fn cabin() -> (Topics, Device) {
        let t = Topics {
            discovery_prefix: "homeassistant".into(),
            site: "cabin".into(),
        };
        let d = Device {
            name: "Powerwall".into(),
            sw_version: "0.1.0".into(),
            expire_after_secs: Some(180),
        };
        (t, d)
    }

    #[test]
    fn every_sensor_has_a_unique_key_and_stable_ids() {
        let all = catalogue();
        let mut keys: Vec<_> = all.iter().map(|s| s.key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), all.len());
        assert_eq!(all.len(), 6 * 3 + 8 + 2 + 3);
        let (t, d) = cabin();
        let c = config(&all[0], &t, &d, Some("2025.4.4"));
        assert_eq!(c["unique_id"], "pwsync_cabin_home_usage");
        assert_eq!(c["object_id"], "cabin_home_usage");
        assert!(c.get("default_entity_id").is_none());
        assert_eq!(c["state_class"], "total_increasing");
        let c = config(&all[1], &t, &d, Some("2025.11.1"));
        assert_eq!(c["default_entity_id"], "sensor.cabin_home_usage_today");
        assert!(c.get("object_id").is_none());
        assert_eq!(c["state_class"], "total");
        assert_eq!(t.key_of_state(&t.state("grid_power")), Some("grid_power"));
    }

    #[test]
    fn readings_of_the_moment_expire_and_totals_do_not() {
        let (t, d) = cabin();
        let expiring: Vec<String> = catalogue()
            .iter()
            .filter(|s| config(s, &t, &d, None).get("expire_after") == Some(&json!(180)))
            .map(|s| s.key.clone())
            .collect();
        assert_eq!(
            expiring,
            [
                "load_power",
                "solar_power",
                "battery_power",
                "grid_power",
                "battery_charge_power",
                "battery_discharge_power",
                "grid_import_power",
                "grid_export_power",
                "battery_level",
                "battery_state",
                "grid_state",
            ]
        );
        let none = Device {
            expire_after_secs: None,
            ..d
        };
        assert!(catalogue()
            .iter()
            .all(|s| config(s, &t, &none, None).get("expire_after").is_none()));
        assert_eq!(t.key_of_state("pwsync/other/x/state"), None);
    }

    #[test]
    fn buttons_command_and_results_carry_their_platform_and_attributes() {
        let (t, d) = cabin();
        let all = controls();
        let by_key = |k: &str| all.iter().find(|s| s.key == k).unwrap().clone();
        let check = by_key("check_history");
        assert_eq!(
            t.config(&check),
            "homeassistant/button/pwsync_cabin/check_history/config"
        );
        let c = config(&check, &t, &d, Some("2026.11.0"));
        assert_eq!(c["command_topic"], "pwsync/cabin/command");
        assert_eq!(c["payload_press"], "check");
        assert_eq!(c["default_entity_id"], "button.cabin_check_history");
        assert!(c.get("state_topic").is_none());
        let ok = by_key("history_ok");
        assert_eq!(
            t.config(&ok),
            "homeassistant/binary_sensor/pwsync_cabin/history_ok/config"
        );
        let c = config(&ok, &t, &d, Some("2025.4.4"));
        assert_eq!(c["device_class"], "problem");
        assert_eq!(c["object_id"], "cabin_history_ok");
        let c = config(&by_key("last_job"), &t, &d, None);
        assert_eq!(c["json_attributes_topic"], "pwsync/cabin/last_job/state");
        assert_eq!(c["state_topic"], "pwsync/cabin/last_job/state");
        assert_eq!(c["value_template"], "{{ value_json.state }}");
        assert_eq!(c["options"], json!(JOB_STATES));
        let c = config(&by_key("last_check"), &t, &d, None);
        assert_eq!(c["device_class"], "timestamp");
        assert_eq!(c["entity_category"], "diagnostic");
        assert_eq!(config(&check, &t, &d, None)["entity_category"], "config");
        assert!(config(&ok, &t, &d, None).get("entity_category").is_none());
        // No control shares a key with a sensor: their states share one topic space.
        let sensors: Vec<String> = catalogue().into_iter().map(|s| s.key).collect();
        assert!(all.iter().all(|s| !sensors.contains(&s.key)));
        assert_eq!(
            t.config(&catalogue()[0]),
            "homeassistant/sensor/pwsync_cabin/home_usage/config"
        );
    }
}
