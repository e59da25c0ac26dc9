//! The other port: what a job needs from the energy source (InfluxDB in production;
//! `pwsync-influx`'s `InfluxSource` implements it).

use async_trait::async_trait;
use pwsync_energy::{Field, Integration};
use std::collections::BTreeMap;

#[async_trait]
pub trait EnergySource: Send + Sync {
    /// Earliest data point of any of `fields` (epoch s), `None` if there is no data.
    async fn first_timestamp(&self, fields: &[Field]) -> Result<Option<i64>, String>;

    /// Energy per `bucket` over `[start, end)` for each field, with the gap policy.
    async fn energy(
        &self,
        fields: &[Field],
        start: i64,
        end: i64,
        bucket: i64,
    ) -> Result<BTreeMap<Field, Integration>, String>;
}
