//! `serve` and the broker: retained meters read back at start, discovery configs, uninstall,
//! and the wait between polls (signals, reconnects, HA's birth message, republishing).

use super::ha::HaLink;
use super::jobs::{Job, Jobs, Trigger};
use super::meters::Live;
use anyhow::Result;
use pwsync_mqtt::discovery::{self, Device, Topics};
use pwsync_mqtt::{Incoming, Mqtt};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

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

/// What `serve` announces to HA: the sensors, and the job controls when it runs jobs.
pub(super) struct Discovery<'a> {
    pub(super) topics: &'a Topics,
    pub(super) device: &'a Device,
    pub(super) ha: &'a HaLink,
    pub(super) controls: bool,
}

/// The discovery configs; how many.
pub(super) async fn publish_configs(mqtt: &Mqtt, d: &Discovery<'_>) -> Result<usize> {
    let mut all = discovery::catalogue();
    if d.controls {
        all.extend(discovery::controls());
    }
    for s in &all {
        let c = discovery::config(s, d.topics, d.device, d.ha.version.as_deref());
        mqtt.publish(&d.topics.config(s), c.to_string(), true)
            .await?;
    }
    Ok(all.len())
}

/// Empty retained configs and states of every entity pwsync may have announced.
pub(super) async fn uninstall(mqtt: &Mqtt, topics: &Topics) -> Result<()> {
    for s in discovery::catalogue()
        .into_iter()
        .chain(discovery::controls())
    {
        mqtt.publish(&topics.config(&s), "", true).await?;
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

    /// Sleep for `d`; `true` when a signal asked to stop meanwhile.
    pub(super) async fn wait(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = self.term.recv() => true,
            _ = self.int.recv() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }
}

/// Sleep until the next poll, answering the broker meanwhile: republish after a reconnect or
/// HA's birth message, start the job a button asks for, publish a finished job's outcome.
/// `false` on Ctrl-C / SIGTERM.
pub(super) async fn wait(
    mqtt: &mut Mqtt,
    stop: &mut Shutdown,
    interval: Duration,
    d: &Discovery<'_>,
    live: &Live,
    mut jobs: Option<&mut Jobs>,
    mut panel: Option<&mut mpsc::UnboundedReceiver<super::panel::Request>>,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + interval;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(true);
        }
        let event = {
            let finished = async {
                match jobs.as_deref_mut() {
                    Some(j) => j.finished().await,
                    None => std::future::pending().await,
                }
            };
            let asked = async {
                match panel.as_deref_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.term.recv() => return Ok(false),
                _ = stop.int.recv() => return Ok(false),
                outcome = finished => Event::Finished(outcome),
                Some(request) = asked => Event::Panel(request),
                ev = mqtt.next(left) => Event::Broker(ev),
            }
        };
        match event {
            Event::Finished(outcome) => {
                if let Some(j) = jobs.as_deref() {
                    j.publish(&outcome, mqtt, d.topics).await?;
                }
            }
            Event::Panel(super::panel::Request::Check) => match jobs.as_deref_mut() {
                Some(j) => {
                    j.request(Job::Check, Trigger::Panel, &live.marks, mqtt, d.topics)
                        .await?
                }
                None => tracing::warn!("the panel asked for a check, but serve runs no jobs"),
            },
            Event::Panel(super::panel::Request::Resume(name)) => {
                match (Job::from_command(&name), jobs.as_deref_mut()) {
                    (Some(job), Some(j)) => {
                        j.request(job, Trigger::Panel, &live.marks, mqtt, d.topics)
                            .await?
                    }
                    _ => tracing::warn!("cannot resume {name:?}: not a job this serve runs"),
                }
            }
            Event::Broker(Some(Incoming::Connected)) => {
                subscribe(mqtt, d).await?;
                republish(mqtt, d, live).await?;
            }
            Event::Broker(Some(Incoming::Message { topic, payload, .. })) => {
                if topic == d.topics.ha_status() && payload == "online" {
                    tracing::info!("HA came online: republishing discovery and states");
                    republish(mqtt, d, live).await?;
                } else if topic == d.topics.command() {
                    match (Job::from_command(&payload), jobs.as_deref_mut()) {
                        (Some(job), Some(j)) => {
                            j.request(job, Trigger::Button, &live.marks, mqtt, d.topics)
                                .await?
                        }
                        _ => tracing::warn!(
                            "ignored command {payload:?} on {topic}: not a job this serve runs"
                        ),
                    }
                }
            }
            Event::Broker(None) => {}
        }
    }
}

enum Event {
    Finished(super::jobs::Outcome),
    Panel(super::panel::Request),
    Broker(Option<Incoming>),
}

/// HA's birth topic, and the buttons' command topic when serve runs jobs.
pub(super) async fn subscribe(mqtt: &Mqtt, d: &Discovery<'_>) -> Result<()> {
    mqtt.subscribe(&d.topics.ha_status()).await?;
    if d.controls {
        mqtt.subscribe(&d.topics.command()).await?;
    }
    Ok(())
}

async fn republish(mqtt: &Mqtt, d: &Discovery<'_>, live: &Live) -> Result<()> {
    // Before the first successful poll HA has not heard of the sensors, and must not yet.
    if live.last_states.is_empty() {
        return Ok(());
    }
    publish_configs(mqtt, d).await?;
    for (key, value) in &live.last_states {
        mqtt.publish(&d.topics.state(key), value.clone(), true)
            .await?;
    }
    if !live.last_states.is_empty() {
        mqtt.publish(&d.topics.availability(), "online", true)
            .await?;
    }
    Ok(())
}
