//! `pwsync serve`: the live sensors over MQTT discovery, and hourly self-healing.
//!
//! Each poll is one InfluxDB request (power samples since the meters' anchor, battery level,
//! backup reserve, grid status). The lifetime meters come from [`LiveMeter`]: computed once at
//! start from the first InfluxDB point, then extended by the poll's tail. On any InfluxDB error
//! the availability topic says `offline` and no value is published: never a 0.

use crate::config::Config;
use crate::source::Source;
use crate::target::ha_client;
use anyhow::{Context, Result};
use chrono::TimeZone;
use chrono_tz::Tz;
use pwsync_energy::audit::Tolerance;
use pwsync_energy::live::{
    app_battery_level, battery_state, grid_state, island_status, seam, LiveMeter, Seam,
};
use pwsync_energy::local::{local_date, local_day_range, month_range};
use pwsync_energy::meter::format_reading;
use pwsync_energy::{floor_hour, floor_to, Field, Sample, HOUR};
use pwsync_ha::WsStore;
use pwsync_influx::LiveWindow;
use pwsync_jobs::{heal, HealOptions};
use pwsync_mqtt::discovery::{self, Device, Topics};
use pwsync_mqtt::{Incoming, Mqtt, MqttSettings};
use pwsync_store::{Shift, StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// Minutes younger than this may still be revised by InfluxDB; older ones move into the base.
const SETTLE: i64 = 15 * 60;
/// Period starts (local midnights, month starts) are on quarter hours in every zone.
const QUARTER: i64 = 15 * 60;
/// Instant sensors are not refreshed from a sample older than this.
const STALE: i64 = 10 * 60;
/// How far back the meter's hour-boundary readings are kept for the seam guard.
const MARKS_KEPT: i64 = 72 * 3600;
/// A previous hourly row whose `state` is this close (kWh) to pwsync's meter at its end was
/// written by pwsync (a reading step apart at most; more leaves room for InfluxDB revising a
/// minute after the backfill).
const SEAM_SCALE_TOLERANCE: f64 = 0.01;
/// Seconds between seam checks (HA compiles 5-minute rows every 5 minutes).
const GUARD_EVERY: i64 = 20;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// One poll, publish, and exit (for cron, and to check a set-up).
    #[arg(long)]
    pub once: bool,
    /// Remove pwsync's sensors from HA (empty retained configs and states) and exit.
    #[arg(long)]
    pub uninstall: bool,
    /// Seconds between polls (default: mqtt.poll_interval_secs).
    #[arg(long)]
    pub interval: Option<u64>,
}

pub async fn run(args: ServeArgs, cfg: &Config) -> Result<ExitCode> {
    let topics = Topics {
        discovery_prefix: cfg.mqtt.discovery_prefix.clone(),
        site: cfg.site.clone(),
    };
    let mut stop = Shutdown::listen()?;
    let mut mqtt = Mqtt::connect(&mqtt_settings(cfg, &topics)).await?;
    if args.uninstall {
        uninstall(&mqtt, &topics).await?;
        mqtt.disconnect().await;
        println!(
            "Removed pwsync's {} sensors of site '{}' from MQTT discovery.",
            discovery::catalogue().len(),
            cfg.site
        );
        return Ok(ExitCode::SUCCESS);
    }
    let source = crate::source::from_config(cfg)?;
    let ha = HaLink::connect(cfg).await;
    let interval = Duration::from_secs(args.interval.unwrap_or(cfg.mqtt.poll_interval_secs).max(1));
    let device = Device {
        name: cfg.device_name.clone(),
        sw_version: env!("CARGO_PKG_VERSION").to_string(),
        expire_after_secs: Some(expire_after(interval)),
    };
    let retained = read_retained(&mut mqtt, &topics).await?;
    mqtt.subscribe(&topics.ha_status()).await?;
    publish_configs(&mqtt, &topics, &device, ha.version.as_deref()).await?;
    let mut state = Live::new(retained, ha.tz, source.gap_limit);
    let mut next_heal = next_heal_time(now());
    let mut last_guard = 0;
    let mut heartbeat = crate::heartbeat::Beater::new(interval.as_secs());
    loop {
        let published = poll(&source, &mut state, &mqtt, &topics).await;
        if published.is_ok() {
            heartbeat.beat(now());
        }
        if args.once {
            mqtt.disconnect().await;
            return published.map(|()| ExitCode::SUCCESS);
        }
        match published {
            // A wrong name in the configuration does not heal by waiting: say it and stop.
            Err(e) if is_config_mistake(&e) => {
                mqtt.disconnect().await;
                return Err(e);
            }
            Err(e) => tracing::warn!(
                "poll failed, sensors unavailable: {}",
                crate::exit::one_line(&e)
            ),
            Ok(()) if now() - last_guard >= GUARD_EVERY => {
                ha.guard_seam(cfg, &state).await;
                last_guard = now();
            }
            Ok(()) => {}
        }
        if now() >= next_heal {
            ha.heal(cfg, &source).await;
            next_heal = next_heal_time(now());
        }
        if !wait(
            &mut mqtt, &mut stop, interval, &topics, &device, &ha, &state,
        )
        .await?
        {
            break;
        }
    }
    let _ = mqtt.publish(&topics.availability(), "offline", true).await;
    mqtt.disconnect().await;
    Ok(ExitCode::SUCCESS)
}

fn is_config_mistake(e: &anyhow::Error) -> bool {
    e.downcast_ref::<pwsync_influx::InfluxError>()
        .is_some_and(pwsync_influx::InfluxError::is_config_mistake)
}

/// HA's `expire_after` for power, level and direction sensors: three polls. Stale samples are
/// not published (see [`instant_states`]), so when Powerwall-Dashboard stops writing, HA shows
/// these sensors unavailable at most `STALE` plus three polls later instead of a frozen reading.
fn expire_after(interval: Duration) -> u64 {
    3 * interval.as_secs().max(1)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Heal at 16 past the hour: HA has compiled the previous hour and the compiled-hours rule
/// (now − 15 min) includes it.
fn next_heal_time(now: i64) -> i64 {
    let t = floor_hour(now) + 16 * 60;
    if t > now {
        t
    } else {
        t + HOUR
    }
}

fn mqtt_settings(cfg: &Config, topics: &Topics) -> MqttSettings {
    crate::broker::settings(
        cfg,
        cfg.mqtt.client_id.clone(),
        Some((topics.availability(), "offline".into())),
        Duration::from_secs(10),
    )
}

/// HA's websocket, when configured: its zone and version, and the store `heal` writes through.
struct HaLink {
    tz: Tz,
    version: Option<String>,
    configured: bool,
}

impl HaLink {
    async fn connect(cfg: &Config) -> HaLink {
        let fallback = cfg.tz().unwrap_or(chrono_tz::UTC);
        let Ok(client) = ha_client(cfg) else {
            tracing::info!(
                "homeassistant.url/token not set: local days in {fallback}, no self-healing"
            );
            return HaLink {
                tz: fallback,
                version: None,
                configured: false,
            };
        };
        match client.get_config().await {
            Ok(c) => HaLink {
                tz: c.time_zone.parse().unwrap_or(fallback),
                version: Some(c.version),
                configured: true,
            },
            Err(e) => {
                tracing::warn!("HA not reachable ({e}); local days in {fallback} until restart");
                HaLink {
                    tz: fallback,
                    version: None,
                    configured: true,
                }
            }
        }
    }

    /// Keep HA's live 5-minute chain continuous with the hourly rows before it (see
    /// [`seam`]): after a backfill through the websocket HA starts a new meter's sum at 0.
    async fn guard_seam(&self, cfg: &Config, live: &Live) {
        if !self.configured {
            return;
        }
        let Ok(client) = ha_client(cfg) else { return };
        let store = WsStore::new(client);
        for f in Field::ALL {
            let id = cfg.meter_entity(f);
            let (from, found) = match seam_plan(&store, &id, live.marks.get(&f)).await {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(statistic = %id, "seam check skipped: {e}");
                    continue;
                }
            };
            let delta = match found {
                Seam::Continuous => continue,
                Seam::Incomplete => {
                    tracing::debug!(statistic = %id, "seam: a row without state or sum, nothing to continue");
                    continue;
                }
                Seam::Foreign => {
                    tracing::debug!(statistic = %id, "seam: the last hourly state is not pwsync's meter (migrated or foreign rows); `pwsync check` reports the seam");
                    continue;
                }
                Seam::Below { below_by } => {
                    tracing::debug!(statistic = %id, below_by_kwh = below_by, "seam: the live meter reads below the last hourly state; the chain continues with no growth there");
                    continue;
                }
                Seam::Shift { delta, below_by } => {
                    if below_by > 0.0 {
                        tracing::warn!(statistic = %id, below_by_kwh = below_by, "seam: the live meter reads below the last hourly state; the chain continues with no growth there");
                    }
                    delta
                }
            };
            let shift = Shift { from, delta };
            let plan = WritePlan {
                writes: vec![StatWrite {
                    meta: StatMeta::energy_kwh(&id, f.display_name()),
                    shifts: vec![shift],
                    hourly: vec![],
                    short_term: vec![],
                }],
            };
            match store.apply(&plan).await {
                Ok(()) => {
                    tracing::warn!(statistic = %id, from, delta_kwh = delta, "moved HA's live 5-minute chain onto the hourly history (seam)")
                }
                Err(e) => tracing::warn!(statistic = %id, "seam shift failed: {e}"),
            }
        }
    }

    /// One self-healing cycle over the last 48 compiled hours; errors are logged, not fatal.
    async fn heal(&self, cfg: &Config, source: &Source) {
        if !self.configured {
            return;
        }
        let Ok(client) = ha_client(cfg) else { return };
        let store = WsStore::new(client);
        let opts = HealOptions {
            site: cfg.site.clone(),
            tz: self.tz,
            limit_kwh: cfg.limits.max_power_kw,
            // Live hours differ from InfluxDB's exact hours by up to a poll's energy at each
            // boundary; only real damage (an outage's energy in one hour, a spike) is healed.
            tolerance: Tolerance {
                wh: 100.0,
                pct: 10.0,
            },
            lookback: Duration::from_secs(48 * 3600),
            live_lag_secs: super::check::live_lag_secs(cfg),
        };
        match heal(source, &store, &opts, now()).await {
            Ok(r) if r.rows > 0 => tracing::warn!(
                rows = r.rows,
                "healed: {}",
                serde_json::to_string(&r.statistics).unwrap_or_default()
            ),
            Ok(_) => tracing::debug!("heal: nothing to repair"),
            Err(e) => tracing::warn!("heal failed: {e}"),
        }
    }
}

/// The seam of `id`: its newest 5-minute row against the last hourly row before that row's
/// hour, and where a shift would start (that hourly row's end). `None` when either row is
/// missing or serve has no meter reading for that hour's end.
async fn seam_plan(
    store: &WsStore,
    id: &str,
    marks: Option<&BTreeMap<i64, f64>>,
) -> Result<Option<(i64, Seam)>> {
    let Some(short) = store
        .last_before(id, Table::ShortTerm, now() + HOUR)
        .await?
    else {
        return Ok(None);
    };
    let Some(prev) = store
        .last_before(id, Table::Hourly, floor_hour(short.start))
        .await?
    else {
        return Ok(None);
    };
    let from = prev.start + HOUR;
    let Some(meter) = marks.and_then(|m| m.get(&from)) else {
        return Ok(None);
    };
    Ok(Some((
        from,
        seam(&prev, &short, *meter, SEAM_SCALE_TOLERANCE),
    )))
}

/// The lifetime meters read back from the broker (retained states from before a restart).
async fn read_retained(mqtt: &mut Mqtt, topics: &Topics) -> Result<BTreeMap<String, f64>> {
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

async fn publish_configs(
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

async fn uninstall(mqtt: &Mqtt, topics: &Topics) -> Result<()> {
    for s in discovery::catalogue() {
        mqtt.publish(&topics.config(&s.key), "", true).await?;
        mqtt.publish(&topics.state(&s.key), "", true).await?;
    }
    mqtt.publish(&topics.availability(), "", true).await?;
    Ok(())
}

/// A period total: where it starts and the meter there.
#[derive(Debug, Clone, Copy)]
struct Period {
    start: i64,
    meter_at_start: f64,
}

/// Everything `serve` keeps between polls.
struct Live {
    tz: Tz,
    gap_limit: i64,
    retained: BTreeMap<String, f64>,
    meters: Option<BTreeMap<Field, LiveMeter>>,
    today: BTreeMap<Field, Period>,
    month: BTreeMap<Field, Period>,
    /// The meter at recent hour boundaries, for the seam guard.
    marks: BTreeMap<Field, BTreeMap<i64, f64>>,
    /// The last values published, republished on HA's birth message.
    last_states: BTreeMap<String, String>,
}

impl Live {
    fn new(retained: BTreeMap<String, f64>, tz: Tz, gap_limit: i64) -> Live {
        Live {
            tz,
            gap_limit,
            retained,
            meters: None,
            today: BTreeMap::new(),
            month: BTreeMap::new(),
            marks: BTreeMap::new(),
            last_states: BTreeMap::new(),
        }
    }
}

/// Start the meters: energy from the first InfluxDB point up to the anchor, split at the month
/// and day starts so the period totals know their meter readings.
async fn start_meters(source: &Source, live: &mut Live, now: i64) -> Result<()> {
    // A misspelled name would otherwise make a meter of 0 (or a day of the whole lifetime).
    source.client.check_source(&source.map, &Field::ALL).await?;
    let first = source
        .client
        .first_timestamp(&source.map, &Field::ALL)
        .await?
        .context("InfluxDB has no power data yet")?;
    let meter_start = floor_hour(first);
    let anchor = floor_to(now - SETTLE, QUARTER).max(meter_start);
    let day = local_day_range(local_date(now, live.tz), live.tz).0;
    let month = month_start(now, live.tz);
    // [meter_start, month) by hours, then [month, anchor) by quarters for the day start.
    let split = month.clamp(meter_start, anchor);
    let before = source.client.energy(
        &source.map,
        &Field::ALL,
        meter_start,
        split,
        HOUR,
        source.gap_limit,
    );
    let recent = source.client.energy(
        &source.map,
        &Field::ALL,
        split,
        anchor,
        QUARTER,
        source.gap_limit,
    );
    let (before, recent) = tokio::try_join!(
        async {
            if split > meter_start {
                before.await.map(Some)
            } else {
                Ok(None)
            }
        },
        async {
            if anchor > split {
                recent.await.map(Some)
            } else {
                Ok(None)
            }
        }
    )?;
    let mut meters = BTreeMap::new();
    for f in Field::ALL {
        let base_month = before
            .as_ref()
            .and_then(|b| b.get(&f))
            .map(|i| i.total_wh() / 1000.0)
            .unwrap_or(0.0);
        let mut kwh = base_month;
        let mut at_day = if day <= split { None } else { Some(base_month) };
        if let Some(r) = recent.as_ref().and_then(|r| r.get(&f)) {
            let marks = live.marks.entry(f).or_default();
            for b in &r.buckets {
                if b.start == day {
                    at_day = Some(kwh);
                }
                if b.start % HOUR == 0 && b.start >= now - MARKS_KEPT {
                    marks.insert(b.start, kwh);
                }
                kwh += b.wh / 1000.0;
            }
            if day >= anchor {
                at_day = Some(kwh);
            }
        }
        let mut m = LiveMeter::new(anchor, kwh);
        if let Some(v) = live.retained.get(f.sensor_key()) {
            // Published before a restart: the meter never starts lower than that.
            m.hold_at_least(*v);
        }
        meters.insert(f, m);
        live.month.insert(
            f,
            Period {
                start: month,
                meter_at_start: if month <= meter_start {
                    0.0
                } else {
                    base_month
                },
            },
        );
        live.today.insert(
            f,
            Period {
                start: day,
                meter_at_start: if day <= meter_start {
                    0.0
                } else {
                    at_day.unwrap_or(kwh)
                },
            },
        );
    }
    live.meters = Some(meters);
    Ok(())
}

fn month_start(t: i64, tz: Tz) -> i64 {
    use chrono::Datelike;
    let d = local_date(t, tz);
    month_range(d.year(), d.month(), tz)
        .map(|r| r.0)
        .unwrap_or_else(|_| local_day_range(d, tz).0)
}

/// One poll: read, compute, publish. An error publishes `offline` and nothing else.
async fn poll(source: &Source, live: &mut Live, mqtt: &Mqtt, topics: &Topics) -> Result<()> {
    let result = poll_values(source, live).await;
    match result {
        Ok(states) => {
            for (key, value) in &states {
                mqtt.publish(&topics.state(key), value.clone(), true)
                    .await?;
            }
            mqtt.publish(&topics.availability(), "online", true).await?;
            tracing::debug!(
                home = states.get("home_usage").map(String::as_str).unwrap_or("-"),
                solar = states
                    .get("solar_generated")
                    .map(String::as_str)
                    .unwrap_or("-"),
                battery = states
                    .get("battery_level")
                    .map(String::as_str)
                    .unwrap_or("-"),
                "poll published {} states",
                states.len()
            );
            live.last_states.extend(states);
            Ok(())
        }
        Err(e) => {
            mqtt.publish(&topics.availability(), "offline", true)
                .await?;
            Err(e)
        }
    }
}

async fn poll_values(source: &Source, live: &mut Live) -> Result<BTreeMap<String, String>> {
    let now = now();
    if live.meters.is_none() {
        start_meters(source, live, now).await?;
    }
    let anchor = live
        .meters
        .as_ref()
        .map(|m| m.values().map(LiveMeter::anchor).min().unwrap_or(now))
        .unwrap_or(now);
    let window = source
        .client
        .live_window(&source.map, anchor - live.gap_limit)
        .await?;
    let mut out = BTreeMap::new();
    roll_periods(live, &window, now);
    let (gap, tz) = (live.gap_limit, live.tz);
    let meters = live.meters.as_mut().expect("started above");
    for f in Field::ALL {
        let m = meters.get_mut(&f).expect("every field");
        let samples = window.samples(f);
        let newest = samples.last().map(|x| x.t).unwrap_or(m.anchor());
        let marks = live.marks.entry(f).or_default();
        let mut t = floor_hour(m.anchor()) + HOUR;
        while t <= newest {
            marks.insert(t, m.value_at(samples, t, gap));
            t += HOUR;
        }
        marks.retain(|t, _| *t >= now - MARKS_KEPT);
        let kwh = m.update(samples, gap, now - SETTLE);
        out.insert(f.sensor_key().to_string(), format_reading(kwh));
        for (suffix, p) in [("today", live.today[&f]), ("this_month", live.month[&f])] {
            let value = (kwh - p.meter_at_start).max(0.0);
            let reset = tz
                .timestamp_opt(p.start, 0)
                .single()
                .map(|d| d.to_rfc3339())
                .unwrap_or_default();
            out.insert(
                format!("{}_{suffix}", f.sensor_key()),
                serde_json::json!({"value": (value * 1e6).round() / 1e6, "last_reset": reset})
                    .to_string(),
            );
        }
    }
    instant_states(&window, now, &mut out);
    Ok(out)
}

/// A new local day or month since the last poll: its meter reading from this poll's samples.
fn roll_periods(live: &mut Live, window: &LiveWindow, now: i64) {
    let day = local_day_range(local_date(now, live.tz), live.tz).0;
    let month = month_start(now, live.tz);
    let Some(meters) = live.meters.as_ref() else {
        return;
    };
    for f in Field::ALL {
        let m = &meters[&f];
        let at = |t: i64| m.value_at(window.samples(f), t, live.gap_limit).max(0.0);
        if live.today.get(&f).is_some_and(|p| p.start != day) {
            live.today.insert(
                f,
                Period {
                    start: day,
                    meter_at_start: at(day),
                },
            );
        }
        if live.month.get(&f).is_some_and(|p| p.start != month) {
            live.month.insert(
                f,
                Period {
                    start: month,
                    meter_at_start: at(month),
                },
            );
        }
    }
}

/// Power, battery and grid sensors from the newest samples (skipped when they are stale).
fn instant_states(w: &LiveWindow, now: i64, out: &mut BTreeMap<String, String>) {
    let latest = |f: Field| {
        w.samples(f)
            .last()
            .copied()
            .filter(|s: &Sample| now - s.t <= STALE)
    };
    let watts: Option<Vec<f64>> = Field::ALL
        .iter()
        .map(|f| latest(*f).map(|s| s.w.max(0.0)))
        .collect();
    if let Some(v) = watts {
        let [home, solar, from_grid, to_grid, from_pw, to_pw] =
            [v[0], v[1], v[2], v[3], v[4], v[5]];
        let kw = |w: f64| format!("{:.3}", w / 1000.0);
        for (key, value) in [
            ("load_power", kw(home)),
            ("solar_power", kw(solar)),
            ("battery_power", kw(from_pw - to_pw)),
            ("grid_power", kw(from_grid - to_grid)),
            ("battery_charge_power", kw(to_pw)),
            ("battery_discharge_power", kw(from_pw)),
            ("grid_import_power", kw(from_grid)),
            ("grid_export_power", kw(to_grid)),
            ("battery_state", battery_state(to_pw, from_pw).to_string()),
            ("grid_state", grid_state(from_grid, to_grid).to_string()),
        ] {
            out.insert(key.to_string(), value);
        }
    }
    if let Some(p) = w.percentage.filter(|s| now - s.t <= STALE) {
        out.insert(
            "battery_level".into(),
            format!("{:.1}", app_battery_level(p.w)),
        );
    }
    if let Some(r) = w.backup_reserve {
        out.insert("backup_reserve".into(), format!("{r:.0}"));
    }
    if let Some(s) = w.grid_status.and_then(island_status) {
        out.insert("island_status".into(), s.to_string());
    }
}

/// SIGTERM and SIGINT, listened to from the start: a signal that arrives during a poll is kept
/// until the next wait sees it (a stream created later would miss it).
struct Shutdown {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn listen() -> Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Sleep until the next poll, answering the broker meanwhile: republish after a reconnect or
/// HA's birth message. `false` on Ctrl-C / SIGTERM.
async fn wait(
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
