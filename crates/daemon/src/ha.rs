//! HA's side of `serve`: the websocket link (zone, version) and the hourly self-healing.

use super::clock::now;
use super::waiting::Attempt;
use chrono_tz::Tz;
use pwsync_config::source::Source;
use pwsync_config::target::ha_client;
use pwsync_config::Config;
use pwsync_energy::audit::Tolerance;
use pwsync_energy::{floor_hour, HOUR};
use pwsync_ha::{HaError, WsStore};
use pwsync_jobs::{heal, HealOptions, HealReport};
use std::time::Duration;

/// Heal at 16 past the hour: HA has compiled the previous hour and the compiled-hours rule
/// (now − 15 min) includes it.
pub(super) fn next_heal_time(now: i64) -> i64 {
    let t = floor_hour(now) + 16 * 60;
    if t > now {
        t
    } else {
        t + HOUR
    }
}

/// HA's websocket, when configured: its zone and version, and the store `heal` writes through.
pub(super) struct HaLink {
    pub(super) tz: Tz,
    pub(super) version: Option<String>,
    pub(super) configured: bool,
}

impl HaLink {
    /// For `serve --once`: HA if it answers now, else the configured zone (one run cannot
    /// wait); a refused token is the run's error.
    pub(super) async fn connect(cfg: &Config) -> anyhow::Result<HaLink> {
        match HaLink::reach(cfg).await {
            Ok(link) => Ok(link),
            Err(Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Wait(what)) => {
                let fallback = cfg.tz().unwrap_or(chrono_tz::UTC);
                tracing::warn!("cannot reach {what}; local days in {fallback}");
                Ok(HaLink {
                    tz: fallback,
                    version: None,
                    configured: true,
                })
            }
        }
    }

    /// HA's zone and version once it answers. Unreachable HA is waited for (at boot HA often
    /// starts after pwsync); a refused token is not: waiting cannot fix it.
    pub(super) async fn reach(cfg: &Config) -> Result<HaLink, Attempt> {
        let fallback = cfg.tz().unwrap_or(chrono_tz::UTC);
        let Ok(client) = ha_client(cfg) else {
            tracing::info!(
                "homeassistant.url/token not set: local days in {fallback}, no self-healing"
            );
            return Ok(HaLink {
                tz: fallback,
                version: None,
                configured: false,
            });
        };
        match client.get_config().await {
            Ok(c) => {
                tracing::info!("connected to Home Assistant {}", c.version);
                Ok(HaLink {
                    tz: c.time_zone.parse().unwrap_or(fallback),
                    version: Some(c.version),
                    configured: true,
                })
            }
            Err(e @ (HaError::InvalidToken | HaError::NotAdmin { .. })) => {
                Err(Attempt::Fatal(e.into()))
            }
            Err(HaError::Unreachable { url, reason }) => {
                Err(Attempt::Wait(format!("Home Assistant at {url} ({reason})")))
            }
            Err(e) => Err(Attempt::Wait(format!("Home Assistant ({e})"))),
        }
    }

    /// One self-healing cycle over the last 48 compiled hours; its report when it wrote (for
    /// the panel's Log). Errors are logged, not fatal.
    pub(super) async fn heal(&self, cfg: &Config, source: &Source) -> Option<HealReport> {
        if !self.configured {
            return None;
        }
        let client = ha_client(cfg).ok()?;
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
            live_lag_secs: pwsync_config::scope::live_lag_secs(cfg),
        };
        match heal(source, &store, &opts, now()).await {
            Ok(r) if r.rows > 0 => {
                tracing::warn!(
                    rows = r.rows,
                    "healed: {}",
                    serde_json::to_string(&r.statistics).unwrap_or_default()
                );
                Some(r)
            }
            Ok(_) => {
                tracing::debug!("heal: nothing to repair");
                None
            }
            Err(e) => {
                tracing::warn!("heal failed: {e}");
                None
            }
        }
    }
}

/// A persistent notification in HA (`id` replaces an earlier one of the same id), sent in the
/// background: the loop never waits for HA. A failure is logged.
pub(super) fn notify(cfg: &Config, id: String, title: String, message: String) {
    let Ok(client) = ha_client(cfg) else { return };
    tokio::spawn(async move {
        if let Err(e) = client.create_notification(&id, &title, &message).await {
            tracing::warn!("cannot notify Home Assistant ({title}): {e}");
        }
    });
}
