//! One poll: one InfluxDB request, the meters extended by its tail, the states published (or
//! `offline` on an error, never a 0).

use super::broker::{publish_configs, Discovery};
use super::clock::now;
use super::meters::{roll_periods, start_meters, Live, Period, MARKS_KEPT, SETTLE};
use anyhow::Result;
use chrono::TimeZone;
use chrono_tz::Tz;
use pwsync_config::source::Source;
use pwsync_energy::live::{app_battery_level, battery_state, grid_state, island_status, LiveMeter};
use pwsync_energy::meter::format_reading;
use pwsync_energy::{floor_hour, Field, Sample, HOUR};
use pwsync_influx::LiveWindow;
use pwsync_mqtt::discovery::Topics;
use pwsync_mqtt::Mqtt;
use std::collections::BTreeMap;

/// Instant sensors are not refreshed from a sample older than this.
const STALE: i64 = 10 * 60;

/// One poll: read, compute, publish. An error publishes `offline` and nothing else. With
/// `announce` (the first successful poll), the discovery configs go out first, once the values
/// are known: HA hears of no sensor before there is something to show, and finds each state
/// right after its entity.
pub(super) async fn poll(
    source: &Source,
    live: &mut Live,
    mqtt: &Mqtt,
    topics: &Topics,
    announce: Option<&Discovery<'_>>,
) -> Result<()> {
    let result = poll_values(source, live).await;
    match result {
        Ok(states) => {
            if let Some(d) = announce {
                publish_configs(mqtt, d).await?;
            }
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
        for t in hour_boundaries(m.anchor(), newest) {
            marks.insert(t, m.value_at(samples, t, gap));
        }
        marks.retain(|t, _| *t >= now - MARKS_KEPT);
        let kwh = m.update(samples, gap, now - SETTLE);
        out.insert(f.sensor_key().to_string(), format_reading(kwh));
        for (suffix, p) in [("today", live.today[&f]), ("this_month", live.month[&f])] {
            out.insert(
                format!("{}_{suffix}", f.sensor_key()),
                period_state(kwh, p, tz),
            );
        }
    }
    instant_states(&window, now, &mut out);
    Ok(out)
}

/// A period total's state: the energy since the period's start, and `last_reset` at that start
/// in HA's zone with its offset (local midnight, e.g. `2025-06-02T00:00:00+09:30` in Adelaide).
fn period_state(kwh: f64, p: Period, tz: Tz) -> String {
    let value = (kwh - p.meter_at_start).max(0.0);
    let reset = tz
        .timestamp_opt(p.start, 0)
        .single()
        .map(|d| d.to_rfc3339())
        .unwrap_or_default();
    serde_json::json!({"value": (value * 1e6).round() / 1e6, "last_reset": reset}).to_string()
}

/// Power, battery and grid sensors from the newest samples (skipped when they are stale).
pub(super) fn instant_states(w: &LiveWindow, now: i64, out: &mut BTreeMap<String, String>) {
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

/// The hour boundaries in `[anchor, newest]`, where the seam guard needs the meter. The anchor
/// itself counts: `serve` starting 15 to 30 minutes after an hour anchors its meters on that
/// hour, and without its mark the guard could not move HA's first 5-minute rows of the hour onto
/// the hourly history (a new sum at 0, then a hugely negative hour at HA's hourly compile).
fn hour_boundaries(anchor: i64, newest: i64) -> impl Iterator<Item = i64> {
    let first = floor_hour(anchor + HOUR - 1);
    (first..=newest).step_by(HOUR as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_total_resets_at_local_midnight_with_the_zones_offset() {
        let p = Period {
            start: 1_748_788_200, // 2025-06-02T00:00 in Adelaide, 14:30 UTC
            meter_at_start: 100.25,
        };
        for (zone, reset) in [
            ("Australia/Adelaide", "2025-06-02T00:00:00+09:30"),
            ("Asia/Kathmandu", "2025-06-01T20:15:00+05:45"),
        ] {
            let v: serde_json::Value =
                serde_json::from_str(&period_state(101.5, p, zone.parse().unwrap())).unwrap();
            assert_eq!(v["last_reset"], reset, "{zone}");
            assert_eq!(v["value"], 1.25);
        }
        // A meter that reads below the period's start (an InfluxDB revision) shows 0, never less.
        let v: serde_json::Value = serde_json::from_str(&period_state(
            100.0,
            p,
            "Australia/Adelaide".parse().unwrap(),
        ))
        .unwrap();
        assert_eq!(v["value"], 0.0);
    }

    #[test]
    fn an_anchor_on_the_hour_has_its_own_mark() {
        let h = 1_796_223_600;
        let at = |a, n| hour_boundaries(a, n).collect::<Vec<_>>();
        assert_eq!(at(h, h + 90), vec![h]);
        assert_eq!(at(h, h + HOUR), vec![h, h + HOUR]);
        assert_eq!(at(h + 1, h + HOUR - 1), Vec::<i64>::new());
        assert_eq!(
            at(h - 600, h + 2 * HOUR + 5),
            vec![h, h + HOUR, h + 2 * HOUR]
        );
    }
}
