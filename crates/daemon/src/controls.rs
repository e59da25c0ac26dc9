//! The states of the result entities (`last_job`, `history_problems`, `history_ok`,
//! `last_check`): published retained, and kept in the state directory (`controls.json`), so
//! they are published again at every start, every reconnect and on HA's birth message. A broker
//! that keeps no retained messages, or an HA that restarts, shows the last check at once instead
//! of `unknown` until the next one.

use super::journal::write_atomically;
use anyhow::Result;
use pwsync_mqtt::discovery::Topics;
use pwsync_mqtt::Mqtt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FILE: &str = "controls.json";

pub(super) struct Controls {
    path: Option<PathBuf>,
    /// Entity key → the retained payload last published.
    states: Mutex<BTreeMap<String, String>>,
}

impl Controls {
    pub(super) fn in_state_dir() -> Controls {
        Controls::at(crate::heartbeat::state_dir().as_deref())
    }

    /// The states kept in `dir`; an unreadable file counts as none (the next check rewrites
    /// it).
    pub(super) fn at(dir: Option<&Path>) -> Controls {
        let path = dir.map(|d| d.join(FILE));
        let states = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Controls {
            path,
            states: Mutex::new(states),
        }
    }

    /// Publish a control's retained state (with its attributes in the same message, see
    /// [`pwsync_mqtt::discovery::Sensor::attributes`]) and keep it.
    pub(super) async fn publish(
        &self,
        mqtt: &Mqtt,
        topics: &Topics,
        key: &str,
        state: &str,
        attributes: Option<Value>,
    ) -> Result<()> {
        let payload = match attributes {
            Some(a) => json!({"state": state, "attributes": a}).to_string(),
            None => state.to_string(),
        };
        mqtt.publish(&topics.state(key), payload.clone(), true)
            .await?;
        let kept = {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            states.insert(key.to_string(), payload);
            serde_json::to_vec(&*states).unwrap_or_default()
        };
        if let Some(p) = &self.path {
            if let Err(e) = write_atomically(p, &kept, false) {
                tracing::warn!("cannot keep the result entities in {}: {e}", p.display());
            }
        }
        Ok(())
    }

    /// Publish every kept state again (retained).
    pub(super) async fn republish(&self, mqtt: &Mqtt, topics: &Topics) -> Result<()> {
        let states = self
            .states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (key, payload) in states {
            mqtt.publish(&topics.state(&key), payload, true).await?;
        }
        Ok(())
    }

    /// The kept state of `key` (`state` of a payload with attributes).
    pub(super) fn state_of(&self, key: &str) -> Option<String> {
        self.kept(key).map(|(state, _)| state)
    }

    /// The kept state of `key` and its attributes (`Null` when it has none).
    pub(super) fn kept(&self, key: &str) -> Option<(String, Value)> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let payload = states.get(key)?;
        Some(
            match serde_json::from_str::<Value>(payload)
                .ok()
                .filter(|v| v["state"].is_string())
            {
                Some(mut v) => (
                    v["state"].as_str().unwrap_or_default().to_string(),
                    v["attributes"].take(),
                ),
                None => (payload.clone(), Value::Null),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_states_come_back_in_the_next_process_and_a_bad_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let c = Controls::at(Some(dir.path()));
        c.states
            .lock()
            .unwrap()
            .insert("history_ok".into(), "OFF".into());
        c.states.lock().unwrap().insert(
            "last_job".into(),
            json!({"state": "succeeded", "attributes": {"job": "check"}}).to_string(),
        );
        let bytes = serde_json::to_vec(&*c.states.lock().unwrap()).unwrap();
        write_atomically(&dir.path().join(FILE), &bytes, false).unwrap();
        let again = Controls::at(Some(dir.path()));
        assert_eq!(again.state_of("history_ok").as_deref(), Some("OFF"));
        assert_eq!(again.state_of("last_job").as_deref(), Some("succeeded"));
        assert_eq!(again.state_of("last_check"), None);
        std::fs::write(dir.path().join(FILE), b"[not json").unwrap();
        assert_eq!(Controls::at(Some(dir.path())).state_of("history_ok"), None);
    }
}
