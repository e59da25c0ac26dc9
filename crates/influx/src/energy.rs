//! Hourly energy computed by pwsync from raw points. Chosen over InfluxDB's `integral()` because
//! that bridges gaps and dumps the area of empty windows into the next one (SPEC §2); the cost is
//! measured by `cargo bench -p pwsync-influx --bench extract`.

use crate::client::{Cell, InfluxClient, InfluxError};
use crate::Ident;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use pwsync_energy::{integrate, Field, Gap, Integration, Sample};
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

impl InfluxClient {
    fn source_path(&self) -> String {
        format!("{}.{}.{}", self.db, self.rp, self.measurement)
    }

    /// Database, retention policy, measurement and every mapped field exist: the one check
    /// every command that reads InfluxDB runs first, so a misspelled name is an error that names
    /// it, never a meter of 0.
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
        // A measurement without field keys in this retention policy holds no data there.
        if keys.is_empty() {
            return Err(InfluxError::MeasurementNotFound {
                rp: self.rp.as_str().into(),
                measurement: self.measurement.as_str().into(),
            });
        }
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

    /// Raw samples of `fields` with `start <= t < end`, one vector per field (nulls skipped).
    pub async fn samples(
        &self,
        map: &FieldMap,
        fields: &[Field],
        start: i64,
        end: i64,
    ) -> Result<Vec<Vec<Sample>>, InfluxError> {
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

    /// Energy per `bucket` over `[start, end)` for each field, with the gap policy of
    /// `pwsync_energy::integrate`. Fetched in chunks; each chunk also reads `gap_limit` seconds
    /// either side, so chunking does not change the result.
    pub async fn energy(
        &self,
        map: &FieldMap,
        fields: &[Field],
        start: i64,
        end: i64,
        bucket: i64,
        gap_limit: i64,
    ) -> Result<BTreeMap<Field, Integration>, InfluxError> {
        let chunk = (CHUNK / bucket).max(1) * bucket;
        let mut bounds = Vec::new();
        let mut c0 = start;
        while c0 < end {
            let c1 = (pwsync_energy::floor_to(c0, chunk) + chunk).min(end);
            bounds.push((c0, c1));
            c0 = c1;
        }
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
            let merged = merge(parts.iter().map(|p| &p[i]), bucket);
            out.insert(*f, merged);
        }
        Ok(out)
    }
}

/// Concatenate integrations of adjacent ranges, joining gaps that meet at a seam.
fn merge<'a>(parts: impl Iterator<Item = &'a Integration>, bucket: i64) -> Integration {
    let mut out = Integration {
        bucket,
        ..Default::default()
    };
    for p in parts {
        match out.buckets.last_mut() {
            // A chunk boundary inside a bucket (unaligned start) splits it in two.
            Some(last) if p.buckets.first().map(|b| b.start) == Some(last.start) => {
                last.wh += p.buckets[0].wh;
                last.covered += p.buckets[0].covered;
                out.buckets.extend_from_slice(&p.buckets[1..]);
            }
            _ => out.buckets.extend_from_slice(&p.buckets),
        }
        for g in &p.gaps {
            match out.gaps.last_mut() {
                Some(last) if last.end == g.start => last.end = g.end,
                _ => out.gaps.push(Gap { ..*g }),
            }
        }
        out.first = out.first.or(p.first);
        out.last = p.last.or(out.last);
    }
    out
}
