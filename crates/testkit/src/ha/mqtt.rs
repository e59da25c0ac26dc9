//! The MQTT integration, added through HA's config-flow REST API.

use super::onboard::http;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Add the MQTT integration through the config-flow REST API.
pub(super) async fn add_mqtt(base: String, token: String, host: String, port: u16) -> Result<()> {
    let client = http()?;
    let flow: Value = client
        .post(format!("{base}/api/config/config_entries/flow"))
        .bearer_auth(&token)
        .json(&json!({"handler": "mqtt", "show_advanced_options": false}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let flow_id = flow["flow_id"]
        .as_str()
        .with_context(|| format!("mqtt config flow did not start: {flow}"))?;
    let done: Value = client
        .post(format!("{base}/api/config/config_entries/flow/{flow_id}"))
        .bearer_auth(&token)
        .json(&json!({"broker": host, "port": port}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if done["type"] != "create_entry" {
        bail!("adding the MQTT integration failed: {done}");
    }
    Ok(())
}
