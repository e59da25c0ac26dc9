//! pwsync's daemon (`pwsync serve`): the live sensors over MQTT discovery, hourly self-healing,
//! the jobs HA's buttons and the daily check start, and the web panel's backend. Its face is
//! small: [`Options`] and [`run`], which returns once a shutdown signal has been handled.
//!
//! Each poll is one InfluxDB request (power samples since the meters' anchor, battery level,
//! backup reserve, grid status). The lifetime meters come from
//! [`LiveMeter`](pwsync_energy::live::LiveMeter): computed once at start from the first InfluxDB
//! point, then extended by the poll's tail. On any InfluxDB error the availability topic says
//! `offline` and no value is published: never a 0.
//!
//! One concept per file: `meters` (the lifetime meters and period totals serve keeps between
//! polls), `poll` (one poll: read, compute, publish), `broker` (retained read-back, discovery
//! configs, waiting between polls, republishing), `ha` (HA's websocket link and the hourly
//! heal), `seam_guard` (keeping HA's live 5-minute chain on the hourly history), `jobs` (the
//! check, repair and backfill HA's buttons and the daily check start, one at a time), `gate`
//! (the one job that may write), `journal` (a job's record until it ends), `controls` (the
//! result entities' states), `panel` (the web panel's backend), `joblog` (the Log's words for
//! the jobs serve runs itself), `waiting` (start-up order),
//! `heartbeat` (what `pwsync health` reads), `doctor` (every part's findings, also
//! `pwsync doctor`'s), `progress` (how a panel job's child reports its steps).

mod broker;
mod clock;
mod controls;
pub mod doctor;
mod gate;
mod guide;
mod ha;
pub mod heartbeat;
mod joblog;
mod jobs;
mod journal;
mod meters;
mod panel;
mod poll;
pub mod progress;
mod seam_guard;
mod shutdown;
mod waiting;

use anyhow::Result;
use broker::{read_retained, subscribe, uninstall, wait, Discovery};
use clock::now;
use gate::JobGate;
use ha::{next_heal_time, HaLink};
use jobs::{Job, Jobs, Trigger};
use journal::Journal;
use meters::Live;
use poll::poll;
use pwsync_config::Config;
use pwsync_energy::local::next_local_time;
use pwsync_mqtt::discovery::{self, Device, Topics};
use pwsync_mqtt::{Mqtt, MqttError, MqttSettings};
use shutdown::Shutdown;
use std::process::ExitCode;
use std::time::Duration;
use waiting::{until_ready, Attempt, Waiting};

/// Seconds between seam checks (HA compiles 5-minute rows every 5 minutes).
const GUARD_EVERY: i64 = 20;

/// How to run: `pwsync serve`'s flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// One poll, publish, and exit (for cron, and to check a set-up).
    pub once: bool,
    /// Remove pwsync's sensors from HA (empty retained configs and states) and exit.
    pub uninstall: bool,
    /// Seconds between polls (default: mqtt.poll_interval_secs).
    pub interval: Option<u64>,
}

pub use panel::Invocation;

/// Run until a shutdown signal (or, with `once` or `uninstall`, one pass). The panel runs its
/// jobs as `invocation`, this same program as a child process.
pub async fn run(args: Options, cfg: &Config, invocation: Invocation) -> Result<ExitCode> {
    let topics = Topics {
        discovery_prefix: cfg.mqtt.discovery_prefix.clone(),
        site: cfg.site.clone(),
    };
    let mut stop = Shutdown::listen()?;
    if args.uninstall {
        let mqtt = Mqtt::connect(&mqtt_settings(cfg, &topics)).await?;
        uninstall(&mqtt, &topics).await?;
        mqtt.disconnect().await;
        println!(
            "Removed pwsync's {} sensors of site '{}' from MQTT discovery.",
            discovery::catalogue().len(),
            cfg.site
        );
        return Ok(ExitCode::SUCCESS);
    }
    let source = pwsync_config::source::from_config(cfg)?;
    let interval = Duration::from_secs(args.interval.unwrap_or(cfg.mqtt.poll_interval_secs).max(1));
    let mut heartbeat = crate::heartbeat::Beater::new(interval.as_secs());
    let mut waiting = Waiting::new();
    // One run fails fast; the daemon waits for what is not there yet (see `waiting`).
    let (ha, mut mqtt) = if args.once {
        let ha = HaLink::connect(cfg).await?;
        (ha, Mqtt::connect(&mqtt_settings(cfg, &topics)).await?)
    } else {
        let steps = async {
            let Some(ha) = until_ready(
                || HaLink::reach(cfg),
                &mut waiting,
                &mut heartbeat,
                &mut stop,
            )
            .await?
            else {
                return Ok(None);
            };
            let settings = mqtt_settings(cfg, &topics);
            let broker = until_ready(
                || reach_broker(&settings),
                &mut waiting,
                &mut heartbeat,
                &mut stop,
            )
            .await?;
            Ok::<_, anyhow::Error>(broker.map(|b| (ha, b)))
        };
        match steps.await? {
            Some(both) => both,
            None => return Ok(ExitCode::SUCCESS),
        }
    };
    waiting.over();
    let device = Device {
        name: cfg.device_name.clone(),
        sw_version: env!("CARGO_PKG_VERSION").to_string(),
        expire_after_secs: Some(expire_after(interval)),
    };
    let retained = read_retained(&mut mqtt, &topics).await?;
    // Jobs go through HA's websocket, and need a daemon to run in.
    let controls = ha.configured && !args.once;
    let disc = Discovery {
        topics: &topics,
        device: &device,
        ha: &ha,
        controls,
    };
    subscribe(&mqtt, &disc).await?;
    let gate = JobGate::default();
    let journal = Journal::in_state_dir();
    let interrupted = match controls {
        true => journal.unfinished(),
        false => None,
    };
    let web = match args.once {
        true => None,
        false => cfg.web.listen()?,
    };
    let (panel, mut panel_requests, web_stop) = match web {
        Some(listen) => {
            let (panel, rx) = panel::Panel::new(cfg, ha.tz, invocation, gate.clone(), controls);
            panel.set_interrupted(interrupted.clone());
            // The live sensors matter more than the panel: a port in use costs the panel only.
            match start_panel(&listen, &panel).await {
                Ok(stop) => (Some(panel), Some(rx), Some(stop)),
                Err(e) => {
                    tracing::error!("{}", pwsync_config::errors::one_line(&e));
                    (None, None, None)
                }
            }
        }
        None => (None, None, None),
    };
    let mut jobs = controls.then(|| Jobs::new(cfg, ha.tz, gate.clone(), panel.clone()));
    let daily = match controls {
        true => cfg.serve.daily_check()?,
        false => None,
    };
    if let Some(j) = &jobs {
        j.publish_start(interrupted.as_ref(), &mqtt, &topics)
            .await?;
    }
    let mut next_daily = daily.map(|at| next_local_time(now(), at, ha.tz));
    let mut state = Live::new(retained, ha.tz, source.gap_limit);
    let mut next_heal = next_heal_time(now());
    let mut last_guard = 0;
    // HA hears of the sensors once they have values: a database that is not there yet, or a
    // wrong name, must not leave a device of unavailable entities behind.
    let mut announced = false;
    loop {
        let announce = (!announced).then_some(&disc);
        let published = poll(&source, &mut state, &mqtt, &topics, announce).await;
        if published.is_ok() {
            heartbeat.beat(now());
            if waiting.over() && announced {
                tracing::info!("InfluxDB answers again: publishing");
            }
            if !announced {
                tracing::info!(
                    "connected to InfluxDB at {}, database '{}'",
                    pwsync_redact::url(&cfg.influxdb.url),
                    cfg.influxdb.database
                );
                announced = true;
            }
            if let Some(p) = &panel {
                p.set_meters(&state.last_states, now());
            }
        }
        if args.once {
            mqtt.disconnect().await;
            return published.map(|()| ExitCode::SUCCESS);
        }
        let busy = gate.busy();
        match published {
            // A wrong name or login in the configuration does not heal by waiting: say it and
            // stop. A database or measurement not created yet does.
            Err(e) if is_config_mistake(&e) => {
                mqtt.disconnect().await;
                return Err(e);
            }
            Err(e) => {
                let what = format!("InfluxDB ({})", pwsync_config::errors::one_line(&e));
                waiting.on(&what, &mut heartbeat, now());
            }
            Ok(()) if guard_due(now(), last_guard, busy) => {
                ha.guard_seam(cfg, &state).await;
                last_guard = now();
            }
            Ok(()) => {}
        }
        // The hourly heal and the daily check wait for a running job, then go.
        if now() >= next_heal && !busy && announced {
            let started = now();
            if let (Some(r), Some(p)) = (ha.heal(cfg, &source).await, &panel) {
                let report = joblog::heal_summary(&r, ha.tz);
                p.log_job("heal", "hourly heal", joblog::HEAL, started, Ok(report));
            }
            next_heal = next_heal_time(now());
        }
        if let (Some(at), Some(t), Some(j)) = (daily, next_daily, jobs.as_mut()) {
            if now() >= t && !busy && announced {
                j.request(Job::Check, Trigger::Daily, &state.marks, &mqtt, &topics)
                    .await?;
                next_daily = Some(next_local_time(now(), at, ha.tz));
            }
        }
        let asked = panel_requests.as_mut();
        if !wait(
            &mut mqtt,
            &mut stop,
            interval,
            &disc,
            &state,
            jobs.as_mut(),
            asked,
        )
        .await?
        {
            break;
        }
    }
    if let Some(j) = jobs.as_mut() {
        j.finish(&mqtt, &topics).await?;
    }
    // A job the panel started writes until it ends: stopping it halfway would leave half a
    // plan applied.
    while gate.busy() {
        tracing::info!("stopping once the panel's job has finished");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let Some(stop) = web_stop {
        let _ = stop.send(true);
    }
    let _ = mqtt.publish(&topics.availability(), "offline", true).await;
    mqtt.disconnect().await;
    Ok(ExitCode::SUCCESS)
}

/// The broker once it accepts the connection; a refused login or a TLS mismatch is not
/// waited for.
async fn reach_broker(settings: &MqttSettings) -> std::result::Result<Mqtt, Attempt> {
    match Mqtt::connect(settings).await {
        Ok(m) => Ok(m),
        Err(MqttError::Unreachable { broker, reason }) => Err(Attempt::Wait(format!(
            "the MQTT broker at {broker} ({reason})"
        ))),
        Err(e) => Err(Attempt::Fatal(e.into())),
    }
}

/// Whether the loop guards the seam now: every `GUARD_EVERY` seconds, but never while a job
/// runs. A job writes, then guards the seam itself; two guards that read the same out-of-step
/// chain before either moves it would move it twice.
fn guard_due(now: i64, last_guard: i64, job_busy: bool) -> bool {
    !job_busy && now - last_guard >= GUARD_EVERY
}

/// Listen for the panel and serve it in the background until the returned sender says stop.
async fn start_panel(
    listen: &pwsync_config::WebListen,
    panel: &panel::Panel,
) -> Result<tokio::sync::watch::Sender<bool>> {
    let listener = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (web.listen): {e}; choose another port, or \"\" to turn the panel off", listen.addr))?;
    let access = pwsync_web::Access::new(
        listen.token.clone(),
        listen.ingress_proxy,
        listen.hosts.clone(),
    );
    // More descriptors for the daemon; the panel takes a quarter of them at most.
    if let Err(e) = pwsync_web::server::raise_open_files() {
        tracing::debug!("cannot raise the open files limit: {e}");
    }
    let router = pwsync_web::router(std::sync::Arc::new(panel.clone()), access);
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tracing::info!("web panel on http://{}/", listen.addr);
    tokio::spawn(async move {
        if let Err(e) = pwsync_web::serve(listener, router, shutdown).await {
            tracing::warn!("the web panel stopped: {e}");
        }
    });
    panel.refresh_status_in_background();
    Ok(tx)
}

/// A mistake that waiting cannot heal. A database, retention policy or measurement that does
/// not exist yet is what a Powerwall-Dashboard being set up looks like: that is waited for.
fn is_config_mistake(e: &anyhow::Error) -> bool {
    use pwsync_influx::InfluxError as E;
    e.downcast_ref::<E>().is_some_and(|e| {
        e.is_config_mistake()
            && !matches!(
                e,
                E::DatabaseNotFound(_)
                    | E::RetentionPolicyNotFound(_)
                    | E::MeasurementNotFound { .. }
            )
    })
}

/// HA's `expire_after` for power, level and direction sensors: three polls. Stale samples are
/// not published (see [`poll::instant_states`]), so when Powerwall-Dashboard stops writing, HA
/// shows these sensors unavailable at most `STALE` plus three polls later instead of a frozen
/// reading.
fn expire_after(interval: Duration) -> u64 {
    3 * interval.as_secs().max(1)
}

fn mqtt_settings(cfg: &Config, topics: &Topics) -> MqttSettings {
    pwsync_config::broker::settings(
        cfg,
        None,
        Some((topics.availability(), "offline".into())),
        Duration::from_secs(10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_guards_the_seam_every_20_s_but_not_while_a_job_runs() {
        assert!(guard_due(1_000 + GUARD_EVERY, 1_000, false));
        assert!(!guard_due(1_000 + GUARD_EVERY - 1, 1_000, false));
        assert!(!guard_due(1_000 + 10 * GUARD_EVERY, 1_000, true));
    }
}
