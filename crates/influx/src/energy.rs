//! Hourly energy computed by pwsync from raw points. Chosen over InfluxDB's `integral()` because
//! that bridges gaps and dumps the area of empty windows into the next one (SPEC §2); the cost is
//! measured by `cargo bench -p pwsync-influx --bench extract`.

use crate::client::{Cell, InfluxClient, InfluxError};
use crate::Ident;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use pwsync_energy::{integrate, join_chunks, Field, Integration, Neighbours, Sample};
use std::collections::BTreeMap;

/// InfluxDB field name of each pwsync field.
#[derive(Debug, Clone)]
pub struct FieldMap(BTreeMap<Field, Ident>);

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap(
            Field::ALL
                .iter()
                .map(|f| (*f, Ident::new("field", f.influx_name()).expect("valid")))
                .collect(),
        )
    }
}

impl FieldMap {
    /// Defaults with `overrides` applied; every name is validated.
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = (Field, &'a str)>,
    ) -> Result<Self, InfluxError> {
        let mut m = FieldMap::default();
        for (f, name) in overrides {
            m.0.insert(f, Ident::new("field", name)?);
        }
        Ok(m)
    }

    pub fn name(&self, f: Field) -> &Ident {
        &self.0[&f]
    }
}

/// Fetch chunk length: bounded memory per request, and ~2 requests in flight.
const CHUNK: i64 = 14 * 86_400;
const IN_FLIGHT: usize = 2;

/// Far beyond any clock error (2100-01-01), below InfluxDB's largest time.
const FAR_FUTURE: i64 = 4_102_444_800;

impl InfluxClient {
    fn source_path(&self) -> String {
        format!("{}.{}.{}", self.db, self.rp, self.measurement)
    }

    /// Database, retention policy and every mapped field exist.
    pub async fn check_source(&self, map: &FieldMap, fields: &[Field]) -> Result<(), InfluxError> {
        let dbs = self.show("SHOW DATABASES").await?;
        if !dbs.iter().any(|d| d == self.db.as_str()) {
            return Err(InfluxError::DatabaseNotFound(self.db.as_str().into()));
        }
        let rps = self
            .show(&format!("SHOW RETENTION POLICIES ON {}", self.db))
            .await?;
        if !rps.iter().any(|r| r == self.rp.as_str()) {
            return Err(InfluxError::RetentionPolicyNotFound(
                self.rp.as_str().into(),
            ));
        }
        let keys = self
            .show(&format!(
                "SHOW FIELD KEYS FROM {}.{}",
                self.rp, self.measurement
            ))
            .await?;
        for f in fields {
            let name = map.name(*f).as_str();
            if !keys.iter().any(|k| k == name) {
                return Err(InfluxError::UnknownField {
                    field: name.into(),
                    rp: self.rp.as_str().into(),
                    measurement: self.measurement.as_str().into(),
                });
            }
        }
        Ok(())
    }

    async fn edge_timestamp(
        &self,
        map: &FieldMap,
        fields: &[Field],
        selector: &str,
    ) -> Result<Vec<i64>, InfluxError> {
        let q: Vec<String> = fields
            .iter()
            .map(|f| {
                format!(
                    "SELECT {selector}({}) FROM {}",
                    map.name(*f),
                    self.source_path()
                )
            })
            .collect();
        let r = self.query_as::<Cell>(&q.join("; ")).await?;
        Ok(r.into_iter()
            .flat_map(|s| s.series)
            .flat_map(|s| s.values)
            .filter_map(|row| match row.first() {
                Some(Cell::Num(t)) => Some(*t as i64),
                _ => None,
            })
            .collect())
    }

    /// Earliest point of any of `fields`, epoch seconds.
    pub async fn first_timestamp(
        &self,
        map: &FieldMap,
        fields: &[Field],
    ) -> Result<Option<i64>, InfluxError> {
        Ok(self
            .edge_timestamp(map, fields, "first")
            .await?
            .into_iter()
            .min())
    }

    /// Points of `fields` stamped after `now` (a gateway or simulator with a clock ahead):
    /// how many rows hold one, and the latest time, or `None` when there are none. Every read
    /// that computes energy ignores them.
    pub async fn future_points(
        &self,
        map: &FieldMap,
        fields: &[Field],
        now: i64,
    ) -> Result<Option<(u64, i64)>, InfluxError> {
        let cols: Vec<String> = fields.iter().map(|f| map.name(*f).to_string()).collect();
        let q = format!(
            // InfluxDB 1.x bounds a query with only a lower time bound at its own now().
            "SELECT {} FROM {} WHERE time > {now}s AND time < {FAR_FUTURE}s",
            cols.join(","),
            self.source_path()
        );
        let r = self.query_as::<Option<f64>>(&q).await?;
        let times: Vec<i64> = r
            .into_iter()
            .flat_map(|s| s.series)
            .flat_map(|s| s.values)
            .filter_map(|row| row.first().copied().flatten().map(|t| t as i64))
            .collect();
        Ok(times.iter().max().map(|&t| (times.len() as u64, t)))
    }

    /// Latest point of any of `fields`, epoch seconds.
    pub async fn last_timestamp(
        &self,
        map: &FieldMap,
        fields: &[Field],
    ) -> Result<Option<i64>, InfluxError> {
        Ok(self
            .edge_timestamp(map, fields, "last")
            .await?
            .into_iter()
            .max())
    }

    /// Raw samples of `fields` with `start <= t < end` and never after now (a point stamped
    /// in the future, from a gateway whose clock is ahead, must not move any meter ahead), one
    /// vector per field (nulls skipped).
    pub async fn samples(
        &self,
        map: &FieldMap,
        fields: &[Field],
        start: i64,
        end: i64,
    ) -> Result<Vec<Vec<Sample>>, InfluxError> {
        let end = end.min(crate::now() + 1);
        if end <= start {
            return Ok(vec![Vec::new(); fields.len()]);
        }
        let cols: Vec<String> = fields.iter().map(|f| map.name(*f).to_string()).collect();
        let q = format!(
            "SELECT {} FROM {} WHERE time >= {start}s AND time < {end}s",
            cols.join(","),
            self.source_path()
        );
        let r = self.query_as::<Option<f64>>(&q).await?;
        let mut out = vec![Vec::new(); fields.len()];
        for series in r.into_iter().flat_map(|s| s.series) {
            for row in series.values {
                let Some(Some(t)) = row.first() else { continue };
                for (i, v) in row.iter().skip(1).enumerate().take(fields.len()) {
                    if let Some(w) = v {
                        out[i].push(Sample::new(*t as i64, *w));
                    }
                }
            }
        }
        for v in &mut out {
            // Several series (month/year tags) are merged by time already; sort defensively.
            v.sort_by_key(|s| s.t);
        }
        Ok(out)
    }

    /// Per field, the last point before `start` and the first at or after `end`: the ends of
    /// gaps that reach past the range (one request).
    async fn neighbours(
        &self,
        map: &FieldMap,
        fields: &[Field],
        start: i64,
        end: i64,
    ) -> Result<Vec<Neighbours>, InfluxError> {
        let q: Vec<String> = fields
            .iter()
            .flat_map(|f| {
                let (name, src) = (map.name(*f), self.source_path());
                [
                    format!("SELECT last({name}) FROM {src} WHERE time < {start}s"),
                    format!("SELECT first({name}) FROM {src} WHERE time >= {end}s"),
                ]
            })
            .collect();
        let r = self.query_as::<Cell>(&q.join("; ")).await?;
        let time = |i: usize| {
            r.get(i)
                .into_iter()
                .flat_map(|s| &s.series)
                .flat_map(|s| &s.values)
                .find_map(|row| match row.first() {
                    Some(Cell::Num(t)) => Some(*t as i64),
                    _ => None,
                })
        };
        Ok((0..fields.len())
            .map(|i| Neighbours {
                before: time(2 * i),
                after: time(2 * i + 1),
            })
            .collect())
    }

    /// Energy per `bucket` over `[start, end)` for each field, with the gap policy of
    /// `pwsync_energy::integrate`. Fetched in chunks; each chunk also reads `gap_limit` seconds
    /// either side, and the points just outside the range are looked up, so neither energy nor
    /// gaps depend on the chunking.
    pub async fn energy(
        &self,
        map: &FieldMap,
        fields: &[Field],
        start: i64,
        end: i64,
        bucket: i64,
        gap_limit: i64,
    ) -> Result<BTreeMap<Field, Integration>, InfluxError> {
        self.energy_chunked(map, fields, start, end, bucket, gap_limit, CHUNK)
            .await
    }

    /// [`InfluxClient::energy`] fetched in chunks of about `chunk` seconds (a multiple of
    /// `bucket`): a test hook to show that results do not depend on it.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub async fn energy_chunked(
        &self,
        map: &FieldMap,
        fields: &[Field],
        start: i64,
        end: i64,
        bucket: i64,
        gap_limit: i64,
        chunk: i64,
    ) -> Result<BTreeMap<Field, Integration>, InfluxError> {
        let chunk = (chunk / bucket).max(1) * bucket;
        let mut bounds = Vec::new();
        let mut c0 = start;
        while c0 < end {
            let c1 = (pwsync_energy::floor_to(c0, chunk) + chunk).min(end);
            bounds.push((c0, c1));
            c0 = c1;
        }
        let edges = self.neighbours(map, fields, start, end).await?;
        let parts: Vec<Vec<Integration>> = stream::iter(bounds)
            .map(|(c0, c1)| async move {
                let s = self
                    .samples(map, fields, c0 - gap_limit, c1 + gap_limit)
                    .await?;
                Ok::<_, InfluxError>(
                    s.iter()
                        .map(|ss| integrate(ss, c0, c1, bucket, gap_limit))
                        .collect(),
                )
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut out = BTreeMap::new();
        for (i, f) in fields.iter().enumerate() {
            let chunks = parts.iter().map(|p| p[i].clone());
            let joined = join_chunks(chunks, start, end, bucket, gap_limit, edges[i]);
            out.insert(*f, joined);
        }
        Ok(out)
    }
}
