//! The InfluxDB source as configured.

use crate::Config;
use anyhow::Result;
use pwsync_influx::{FieldMap, InfluxClient, InfluxConfig};
use std::time::Duration;

pub use pwsync_influx::InfluxSource as Source;

/// The configured InfluxDB: client, field names and gap policy.
pub fn from_config(cfg: &Config) -> Result<Source> {
    let i = &cfg.influxdb;
    let client = InfluxClient::new(InfluxConfig {
        url: i.url.clone(),
        database: i.database.clone(),
        username: i.username.clone(),
        password: (!i.password.is_empty()).then(|| i.password.expose().to_string()),
        retention_policy: i.retention_policy.clone(),
        measurement: i.measurement.clone(),
        timeout: Duration::from_secs(i.timeout_secs),
    })?;
    let map = FieldMap::with_overrides(i.fields.iter().map(|(f, n)| (*f, n.as_str())))?;
    Ok(Source {
        client,
        map,
        gap_limit: i.gap_limit_secs,
    })
}
