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
    let mut input = json!({"broker": host, "port": port});
    // Newer releases (2026.11) group TLS and transport in a required `other_settings` section.
    let fields = flow["data_schema"].as_array().into_iter().flatten();
    if fields.into_iter().any(|f| f["name"] == "other_settings") {
        input["protocol"] = json!("5");
        input["other_settings"] =
            json!({"set_client_cert": false, "set_ca_cert": "off", "transport": "tcp"});
    }
    let done: Value = client
        .post(format!("{base}/api/config/config_entries/flow/{flow_id}"))
        .bearer_auth(&token)
        .json(&input)
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
