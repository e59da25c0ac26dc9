//! One real Home Assistant per test binary (started on first use, stopped when the binary
//! exits), and helpers to build statistic rows.
#![allow(dead_code)]

use pwsync_energy::{StatRow, HOUR};
use pwsync_ha::{ClientOptions, HaClient, WsStore};
use pwsync_testkit::ha::{self, HaInstance, HaOptions};
use std::sync::OnceLock;

/// The time zone of the shared instance.
pub const TIME_ZONE: &str = "America/Los_Angeles";

/// The shared HA, or `None` to skip (HA cannot be installed here and CI is unset).
pub fn shared_ha() -> Option<&'static HaInstance> {
    static HA: OnceLock<Option<HaInstance>> = OnceLock::new();
    HA.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        ha::venv_or_skip()?;
        Some(HaInstance::start(HaOptions::default().with_time_zone(TIME_ZONE)).unwrap())
    })
    .as_ref()
}

/// A client of `ha` (one per test: its connection task lives on the test's runtime).
pub fn client(ha: &HaInstance) -> HaClient {
    HaClient::new(ClientOptions::new(&ha.url(), ha.token()))
}

pub fn store(ha: &HaInstance) -> WsStore {
    WsStore::new(client(ha))
}

/// The start of the UTC hour `hours_ago` hours before now.
pub fn hours_ago(hours_ago: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(HOUR) * HOUR - hours_ago * HOUR
}

/// `n` hourly rows from `start`, a meter that grows by an uneven amount every hour: `state` is
/// the meter at the hour's end (from `meter0`), `sum` the growth since `sum0`.
pub fn meter_rows(start: i64, n: usize, sum0: f64, meter0: f64) -> Vec<StatRow> {
    let (mut sum, mut meter) = (sum0, meter0);
    (0..n)
        .map(|i| {
            // 0.1 .. 3.2 kWh, not round in binary: exact equality checks mean something.
            let kwh = 0.1 + ((i * 7919) % 31) as f64 / 10.0 + 1.0 / 3.0;
            sum += kwh;
            meter += kwh;
            StatRow {
                start: start + i as i64 * HOUR,
                state: Some(meter),
                sum: Some(sum),
            }
        })
        .collect()
}
