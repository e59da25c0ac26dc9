//! `serve` and the broker: retained meters read back at start, discovery configs, uninstall,
//! and the wait between polls (signals, reconnects, HA's birth message, republishing).

use super::ha::HaLink;
use super::jobs::{Job, Jobs, Trigger};
use super::meters::Live;
use super::shutdown::Shutdown;
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

pub(super) async fn publish_configs(mqtt: &Mqtt, d: &Discovery<'_>) -> Result<()> {
    let mut all = discovery::catalogue();
    let sensors = all.len();
    if d.controls {
        all.extend(discovery::controls());
    }
    let controls = match all.len() - sensors {
        0 => String::new(),
        n => format!(" and {n} controls"),
    };
    for s in all {
        let c = discovery::config(&s, d.topics, d.device, d.ha.version.as_deref());
        mqtt.publish(&d.topics.config(&s), c.to_string(), true)
            .await?;
    }
    tracing::info!(
        "published {sensors} sensors{controls} to HA (MQTT discovery under {}/)",
        d.topics.discovery_prefix
    );
    Ok(())
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
                _ = stop.signalled() => return Ok(false),
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
                        j.request(job, Trigger::Resume, &live.marks, mqtt, d.topics)
                            .await?
                    }
                    _ => tracing::warn!("cannot resume {name:?}: not a job this serve runs"),
                }
            }
            Event::Broker(Some(Incoming::Connected)) => {
                subscribe(mqtt, d).await?;
                republish(mqtt, d, live).await?;
                if let Some(j) = jobs.as_deref() {
                    j.republish(mqtt, d.topics).await?;
                }
            }
            Event::Broker(Some(Incoming::Message {
                topic,
                payload,
                retained,
            })) => {
                if topic == d.topics.command() {
                    on_command(mqtt, d, live, jobs.as_deref_mut(), &payload, retained).await?;
                } else if payload.len() > MAX_PAYLOAD {
                    tracing::warn!(
                        "dropped a message of {} bytes on {topic}: over pwsync's limit of {MAX_PAYLOAD}",
                        payload.len()
                    );
                } else if topic == d.topics.ha_status() && payload == "online" {
                    tracing::info!("HA came online: republishing discovery and states");
                    republish(mqtt, d, live).await?;
                    if let Some(j) = jobs.as_deref() {
                        j.republish(mqtt, d.topics).await?;
                    }
                }
            }
            Event::Broker(None) => {}
        }
    }
}

/// A message on the command topic: start the job it names, unless it was retained (then it is
/// cleared) or is no command.
async fn on_command(
    mqtt: &Mqtt,
    d: &Discovery<'_>,
    live: &Live,
    jobs: Option<&mut Jobs>,
    payload: &str,
    retained: bool,
) -> Result<()> {
    let topic = d.topics.command();
    match (command(payload, retained), jobs) {
        (Command::Run(job), Some(j)) => {
            j.request(job, Trigger::Button, &live.marks, mqtt, d.topics)
                .await?
        }
        (Command::Run(_), None) => {
            tracing::warn!("ignored a command on {topic}: this serve runs no jobs")
        }
        (Command::Retained, _) => {
            // An empty retained message deletes the retained one.
            mqtt.publish(&topic, "", true).await?;
            tracing::warn!(
                "ignored a retained command on {topic} and cleared it: whoever publishes \
                 commands there must not set retain (a retained command would run again at \
                 every start)"
            );
        }
        (Command::Nothing, _) => {}
        (Command::TooLong, _) => tracing::warn!(
            "dropped a message of {} bytes on {topic}: a command is one word (check, repair \
             or backfill)",
            payload.len()
        ),
        (Command::Unknown, _) => tracing::warn!(
            "ignored command {:?} on {topic}: not check, repair or backfill",
            short(payload)
        ),
    }
    Ok(())
}

/// The most a message on a topic pwsync listens to may carry (commands are one word, HA's
/// status `online` or `offline`); a longer one is dropped unread and never logged.
const MAX_PAYLOAD: usize = 1024;

/// What a message on the command topic asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Run(Job),
    /// Left on the broker by a publisher that set retain: it would run at every start and
    /// every reconnect, so it is never run, and cleared.
    Retained,
    /// Empty: the echo of clearing a retained command.
    Nothing,
    TooLong,
    Unknown,
}

fn command(payload: &str, retained: bool) -> Command {
    match Job::from_command(payload) {
        _ if retained && !payload.is_empty() => Command::Retained,
        _ if payload.is_empty() => Command::Nothing,
        _ if payload.len() > MAX_PAYLOAD => Command::TooLong,
        Some(job) => Command::Run(job),
        None => Command::Unknown,
    }
}

/// At most 40 characters of `s`, for a log line.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_short_command_runs() {
        assert_eq!(command("check", false), Command::Run(Job::Check));
        assert_eq!(command(" repair\n", false), Command::Run(Job::Repair));
        assert_eq!(command("check", true), Command::Retained);
        assert_eq!(command(&"x".repeat(5000), true), Command::Retained);
        assert_eq!(command("", true), Command::Nothing);
        assert_eq!(command("", false), Command::Nothing);
        assert_eq!(command(&"check ".repeat(300), false), Command::TooLong);
        assert_eq!(command("chekc", false), Command::Unknown);
        assert_eq!(short(&"é".repeat(50)).chars().count(), 41);
    }
}
