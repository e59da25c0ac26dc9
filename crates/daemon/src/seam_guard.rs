//! The seam guard: keep HA's live 5-minute chain continuous with the hourly rows before it.

use super::clock::now;
use super::ha::HaLink;
use super::meters::{Live, Marks};
use anyhow::Result;
use pwsync_config::target::ha_client;
use pwsync_config::Config;
use pwsync_energy::live::{seam, Seam};
use pwsync_energy::{floor_hour, Field, HOUR};
use pwsync_ha::WsStore;
use pwsync_store::{Shift, StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use std::collections::BTreeMap;

/// A previous hourly row whose `state` is this close (kWh) to pwsync's meter at its end was
/// written by pwsync (a reading step apart at most; more leaves room for InfluxDB revising a
/// minute after the backfill).
const SEAM_SCALE_TOLERANCE: f64 = 0.01;

impl HaLink {
    pub(super) async fn guard_seam(&self, cfg: &Config, live: &Live) {
        if self.configured {
            guard_seam(cfg, &live.marks).await;
        }
    }
}

/// Keep HA's live 5-minute chain continuous with the hourly rows before it (see [`seam`]):
/// after a backfill through the websocket HA starts a new meter's sum at 0. Run every few
/// polls, and by every job right before the check that ends it.
pub(super) async fn guard_seam(cfg: &Config, marks: &Marks) {
    let Ok(client) = ha_client(cfg) else { return };
    let store = WsStore::new(client);
    for f in Field::ALL {
        let id = cfg.meter_entity(f);
        let (from, found) = match seam_plan(&store, &id, marks.get(&f)).await {
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
