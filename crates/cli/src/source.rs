//! The InfluxDB source as configured: client, field names, gap policy.

use crate::config::Config;
use anyhow::Result;
use async_trait::async_trait;
use pwsync_energy::{Field, Integration};
use pwsync_influx::{FieldMap, InfluxClient, InfluxConfig};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Source {
    pub client: InfluxClient,
    pub map: FieldMap,
    pub gap_limit: i64,
}

impl Source {
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

    /// Hourly energy per field over `[start, end)`.
    pub async fn hourly(
        &self,
        fields: &[Field],
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<Field, Integration>, pwsync_influx::InfluxError> {
        self.client
            .energy(
                &self.map,
                fields,
                start,
                end,
                pwsync_energy::HOUR,
                self.gap_limit,
            )
            .await
    }
}

#[async_trait]
impl pwsync_jobs::EnergySource for Source {
    async fn first_timestamp(&self, fields: &[Field]) -> Result<Option<i64>, String> {
        self.client
            .first_timestamp(&self.map, fields)
            .await
            .map_err(|e| e.to_string())
    }

    async fn energy(
        &self,
        fields: &[Field],
        start: i64,
        end: i64,
        bucket: i64,
    ) -> Result<BTreeMap<Field, Integration>, String> {
        self.client
            .energy(&self.map, fields, start, end, bucket, self.gap_limit)
            .await
            .map_err(|e| e.to_string())
    }
}
