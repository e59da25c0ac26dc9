//! [`InfluxSource`]: the InfluxDB as the jobs' [`EnergySource`] (the port in `pwsync-store`) — client, field names, gap policy.

use crate::{FieldMap, InfluxClient, InfluxError};
use async_trait::async_trait;
use chrono_tz::Tz;
use pwsync_energy::local::day_slice;
use pwsync_energy::{Field, Integration, HOUR};
use pwsync_store::EnergySource;
use std::collections::BTreeMap;

pub struct InfluxSource {
    pub client: InfluxClient,
    pub map: FieldMap,
    /// A stretch without data longer than this many seconds is a gap, never bridged.
    pub gap_limit: i64,
}

impl InfluxSource {
    /// Hourly energy per field over `[start, end)`.
    pub async fn hourly(
        &self,
        fields: &[Field],
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<Field, Integration>, InfluxError> {
        self.client
            .energy(&self.map, fields, start, end, HOUR, self.gap_limit)
            .await
    }

    /// Energy per field over `[start, end)` in slices that every local midnight of `tz` in the
    /// range lies on ([`day_slice`]: hours, or 30 or 15 minutes where midnight falls inside a
    /// UTC hour), for grouping by local day or month cut at the exact midnights.
    pub async fn local_slices(
        &self,
        fields: &[Field],
        start: i64,
        end: i64,
        tz: Tz,
    ) -> Result<BTreeMap<Field, Integration>, InfluxError> {
        let slice = day_slice(start, end, tz);
        self.client
            .energy(&self.map, fields, start, end, slice, self.gap_limit)
            .await
    }
}

#[async_trait]
impl EnergySource for InfluxSource {
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
