//! `serve` and the broker: retained meters read back at start, discovery configs, uninstall,
//! and the wait between polls (signals, reconnects, HA's birth message, republishing).

use super::ha::HaLink;
use super::meters::Live;
use anyhow::Result;
use pwsync_mqtt::discovery::{self, Device, Topics};
use pwsync_mqtt::{Incoming, Mqtt};
use std::collections::BTreeMap;
use std::time::Duration;

/// The lifetime meters read back from the broker (retained states from before a restart).
pub(super) async fn read_retained(
    mqtt: &mut Mqtt,
    topics: &Topics,
) -> Result<BTreeMap<String, f64>> {
    mqtt.subscribe(&topics.all_states()).await?;
    let mut out = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        match mqtt.next(Duration::from_millis(700)).await {
            Some(Incoming::Message { topic, payload, .. }) => {
                if let (Some(key), Ok(v)) =
                    (topics.key_of_state(&topic), payload.trim().parse::<f64>())
                {
                    out.insert(key.to_string(), v);
                }
            }
            Some(Incoming::Connected) => {}
            // The broker sends retained messages right after the subscription: a quiet spell
            // means there are no more.
            None => break,
        }
    }
    mqtt.unsubscribe(&topics.all_states()).await?;
    Ok(out)
}

pub(super) async fn publish_configs(
    mqtt: &Mqtt,
    topics: &Topics,
    device: &Device,
    ha_version: Option<&str>,
) -> Result<()> {
    for s in discovery::catalogue() {
        let c = discovery::config(&s, topics, device, ha_version);
        mqtt.publish(&topics.config(&s.key), c.to_string(), true)
            .await?;
    }
    Ok(())
}

pub(super) async fn uninstall(mqtt: &Mqtt, topics: &Topics) -> Result<()> {
    for s in discovery::catalogue() {
        mqtt.publish(&topics.config(&s.key), "", true).await?;
        mqtt.publish(&topics.state(&s.key), "", true).await?;
    }
    mqtt.publish(&topics.availability(), "", true).await?;
    Ok(())
}

/// SIGTERM and SIGINT, listened to from the start: a signal that arrives during a poll is kept
/// until the next wait sees it (a stream created later would miss it).
pub(super) struct Shutdown {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    pub(super) fn listen() -> Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Sleep until the next poll, answering the broker meanwhile: republish after a reconnect or
/// HA's birth message. `false` on Ctrl-C / SIGTERM.
pub(super) async fn wait(
    mqtt: &mut Mqtt,
    stop: &mut Shutdown,
    interval: Duration,
    topics: &Topics,
    device: &Device,
    ha: &HaLink,
    live: &Live,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + interval;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(true);
        }
        tokio::select! {
            _ = stop.term.recv() => return Ok(false),
            _ = stop.int.recv() => return Ok(false),
            ev = mqtt.next(left) => match ev {
                Some(Incoming::Connected) => {
                    mqtt.subscribe(&topics.ha_status()).await?;
                    republish(mqtt, topics, device, ha, live).await?;
                }
                Some(Incoming::Message { topic, payload, .. }) if topic == topics.ha_status() && payload == "online" => {
                    tracing::info!("HA came online: republishing discovery and states");
                    republish(mqtt, topics, device, ha, live).await?;
                }
                _ => {}
            }
        }
    }
}

async fn republish(
    mqtt: &Mqtt,
    topics: &Topics,
    device: &Device,
    ha: &HaLink,
    live: &Live,
) -> Result<()> {
    publish_configs(mqtt, topics, device, ha.version.as_deref()).await?;
    for (key, value) in &live.last_states {
        mqtt.publish(&topics.state(key), value.clone(), true)
            .await?;
    }
    if !live.last_states.is_empty() {
        mqtt.publish(&topics.availability(), "online", true).await?;
    }
    Ok(())
}
