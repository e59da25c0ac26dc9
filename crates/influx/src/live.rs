//! What the live sensors need from InfluxDB each poll, in one request of three statements:
//! the power samples since an instant up to now (never a point stamped later), the battery
//! level with them, and the latest backup reserve and grid status.

use crate::{FieldMap, InfluxClient, InfluxError};
use pwsync_energy::{Field, Sample};

/// One poll's data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveWindow {
    /// Samples per field, in the order of [`Field::ALL`].
    pub power: Vec<Vec<Sample>>,
    /// The latest battery level on the gateway's scale, with its time.
    pub percentage: Option<Sample>,
    /// `pod.http` `backup_reserve_percent` (app scale).
    pub backup_reserve: Option<f64>,
    /// `grid.http` `grid_status`: 1 up, 0 islanded, −1 syncing.
    pub grid_status: Option<i64>,
}

impl LiveWindow {
    pub fn samples(&self, f: Field) -> &[Sample] {
        let i = Field::ALL.iter().position(|x| *x == f).unwrap_or(0);
        self.power.get(i).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// How far back the status points may be (Powerwall-Dashboard writes them every few minutes).
const STATUS_LOOKBACK: i64 = 3600;

impl InfluxClient {
    /// Everything since `since` (epoch seconds) for one poll.
    pub async fn live_window(&self, map: &FieldMap, since: i64) -> Result<LiveWindow, InfluxError> {
        let cols: Vec<String> = Field::ALL
            .iter()
            .map(|f| map.name(*f).to_string())
            .collect();
        // Nothing after now: a gateway with a clock ahead must not move the meters ahead.
        let now = crate::now();
        let status_since = since.min(now - STATUS_LOOKBACK);
        let q = format!(
            "SELECT {},\"percentage\" FROM {}.{}.{} WHERE time >= {since}s AND time <= {now}s; \
             SELECT last(\"backup_reserve_percent\") FROM {}.\"pod\".\"http\" WHERE time >= {status_since}s AND time <= {now}s; \
             SELECT last(\"grid_status\") FROM {}.\"grid\".\"http\" WHERE time >= {status_since}s AND time <= {now}s",
            cols.join(","),
            self.db,
            self.rp,
            self.measurement,
            self.db,
            self.db,
        );
        let r = self.query_as::<Option<f64>>(&q).await?;
        let mut w = LiveWindow {
            power: vec![Vec::new(); Field::ALL.len()],
            ..LiveWindow::default()
        };
        let mut statements = r.into_iter();
        for series in statements.next().into_iter().flat_map(|s| s.series) {
            for row in series.values {
                let Some(Some(t)) = row.first() else { continue };
                let t = *t as i64;
                for (i, v) in row.iter().skip(1).enumerate() {
                    match (i < Field::ALL.len(), v) {
                        (true, Some(w_)) => w.power[i].push(Sample::new(t, *w_)),
                        (false, Some(p)) if w.percentage.is_none_or(|s| s.t <= t) => {
                            w.percentage = Some(Sample::new(t, *p));
                        }
                        _ => {}
                    }
                }
            }
        }
        for v in &mut w.power {
            v.sort_by_key(|s| s.t);
        }
        let last_value = |s: Option<crate::client::StatementResult<Option<f64>>>| {
            s.into_iter()
                .flat_map(|s| s.series)
                .flat_map(|s| s.values)
                .filter_map(|row| row.get(1).copied().flatten())
                .next_back()
        };
        w.backup_reserve = last_value(statements.next());
        w.grid_status = last_value(statements.next()).map(|v| v.round() as i64);
        Ok(w)
    }
}
