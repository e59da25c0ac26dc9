//! Reading statistics metadata and rows.

use crate::engine::{int, table_name};
use crate::schema::EnergyUnit;
use crate::{RecorderDb, Result};
use pwsync_energy::StatRow;
use pwsync_store::{StatMeta, Table};
use sqlx::Row;

impl RecorderDb {
    /// Columns of `statistics_meta` pwsync reads, in this order. Text columns are cast: since
    /// schema 53 HA makes MySQL tables with a binary collation, which MySQL reports as
    /// VARBINARY, and sqlx will not decode that as a string.
    fn meta_select(&self) -> String {
        format!(
            "SELECT {}, {}, {}, has_sum, mean_type, {} FROM statistics_meta",
            self.text_cast("statistic_id"),
            self.text_cast("source"),
            self.text_cast("unit_of_measurement"),
            self.text_cast("name"),
        )
    }

    /// `(id, unit)` of the statistic bound to `?` (the unit cast as in [`Self::meta_select`]).
    pub(crate) fn lookup_sql(&self) -> String {
        self.sql(&format!(
            "SELECT id, {} FROM statistics_meta WHERE statistic_id = ?",
            self.text_cast("unit_of_measurement")
        ))
    }

    pub(crate) async fn meta_rows(&self, filter: Option<&[String]>) -> Result<Vec<StatMeta>> {
        let sql = match filter {
            Some(ids) => self.sql(&format!(
                "{} WHERE statistic_id IN ({}) ORDER BY statistic_id",
                self.meta_select(),
                vec!["?"; ids.len()].join(", ")
            )),
            None => format!("{} ORDER BY statistic_id", self.meta_select()),
        };
        let ids = filter.unwrap_or(&[]);
        on_pool!(&self.pool, p => {
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(p).await?.iter().map(meta_from_row).collect()
        })
    }

    /// `(id, unit)` of a statistic.
    async fn lookup(&self, statistic_id: &str) -> Result<Option<(i64, Option<String>)>> {
        let sql = self.lookup_sql();
        on_pool!(&self.pool, p => {
            match sqlx::query(&sql).bind(statistic_id).fetch_optional(p).await? {
                Some(r) => Ok(Some((int(&r, 0)?.unwrap_or_default(), r.try_get(1)?))),
                None => Ok(None),
            }
        })
    }

    pub(crate) async fn rows(
        &self,
        statistic_id: &str,
        table: Table,
        range: (Option<i64>, i64),
        last_only: bool,
    ) -> Result<Vec<StatRow>> {
        let Some((meta_id, unit)) = self.lookup(statistic_id).await? else {
            return Ok(Vec::new());
        };
        let unit = EnergyUnit::parse(unit.as_deref());
        let (from, to) = range;
        let sql = self.sql(&format!(
            "SELECT start_ts, state, sum FROM {} WHERE metadata_id = ?{} AND start_ts < ? \
             ORDER BY start_ts {}",
            table_name(table),
            if from.is_some() {
                " AND start_ts >= ?"
            } else {
                ""
            },
            if last_only { "DESC LIMIT 1" } else { "ASC" },
        ));
        let rows: Vec<StatRow> = on_pool!(&self.pool, p => {
            let mut q = sqlx::query(&sql).bind(meta_id);
            if let Some(from) = from {
                q = q.bind(from as f64);
            }
            q.bind(to as f64)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| -> Result<StatRow> {
                    let start: Option<f64> = r.try_get(0)?;
                    Ok(StatRow {
                        start: start.unwrap_or_default().round() as i64,
                        state: r.try_get(1)?,
                        sum: r.try_get(2)?,
                    })
                })
                .collect::<Result<_>>()?
        });
        Ok(match unit {
            Some(u) => rows
                .into_iter()
                .map(|r| StatRow {
                    start: r.start,
                    state: r.state.map(|v| u.to_kwh(v)),
                    sum: r.sum.map(|v| u.to_kwh(v)),
                })
                .collect(),
            None => rows,
        })
    }
}

fn meta_from_row<R>(row: &R) -> Result<StatMeta>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i16>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let statistic_id: Option<String> = row.try_get(0)?;
    let source: Option<String> = row.try_get(1)?;
    Ok(StatMeta {
        statistic_id: statistic_id.unwrap_or_default(),
        source: source.unwrap_or_default(),
        unit_of_measurement: row.try_get(2)?,
        has_sum: row.try_get::<Option<bool>, _>(3)?.unwrap_or(false),
        // HA's reading since schema 49: only an arithmetic mean (1) is `has_mean`.
        has_mean: int(row, 4)? == Some(1),
        name: row.try_get(5)?,
    })
}
