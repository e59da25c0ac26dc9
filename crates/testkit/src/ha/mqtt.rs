//! The MQTT integration, added through HA's config-flow REST API.

use super::onboard::http;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Add the MQTT integration through the config-flow REST API. HA 2026.11 under libfaketime
/// once answered the flow's step with a 500 (the step tests the broker connection): a failed
/// flow is removed and the integration added again, three times at most.
pub(super) async fn add_mqtt(base: String, token: String, host: String, port: u16) -> Result<()> {
    let mut last = None;
    for attempt in 1..=3 {
        match add_mqtt_once(&base, &token, &host, port).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                eprintln!("adding HA's MQTT integration, attempt {attempt}: {e:#}");
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
    Err(last.expect("three attempts"))
}

async fn add_mqtt_once(base: &str, token: &str, host: &str, port: u16) -> Result<()> {
    let client = http()?;
    let flow: Value = client
        .post(format!("{base}/api/config/config_entries/flow"))
        .bearer_auth(token)
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
    let step = client
        .post(format!("{base}/api/config/config_entries/flow/{flow_id}"))
        .bearer_auth(token)
        .json(&input)
        .send()
        .await?;
    if let Err(e) = step.error_for_status_ref() {
        // The failed flow would hold the handler: remove it before another try.
        let _ = client
            .delete(format!("{base}/api/config/config_entries/flow/{flow_id}"))
            .bearer_auth(token)
            .send()
            .await;
        return Err(e.into());
    }
    let done: Value = step.json().await?;
    if done["type"] != "create_entry" {
        bail!("adding the MQTT integration failed: {done}");
    }
    Ok(())
}
