//! Applying a write plan: one transaction, metadata created where missing, shifts, upserts.

use crate::engine::{int, table_name};
use crate::schema::EnergyUnit;
use crate::{Engine, RecorderDb, RecorderError, Result};
use pwsync_energy::{floor_hour, StatRow};
use pwsync_store::{StatWrite, Table, WritePlan};
use sqlx::Row;
use std::collections::BTreeMap;

/// Rows per multi-row INSERT: 5 parameters each, far below every engine's limit
/// (SQLite 32766, MySQL and PostgreSQL 65535).
const ROWS_PER_INSERT: usize = 500;

impl RecorderDb {
    /// Apply `plan` in one transaction. See the crate docs.
    pub async fn apply_plan(&self, plan: &WritePlan) -> Result<()> {
        let writes: Vec<&StatWrite> = plan.writes.iter().filter(|w| !w.is_empty()).collect();
        if writes.is_empty() {
            return Ok(());
        }
        validate(&writes)?;
        let _guard = self.apply_lock.lock().await;
        self.check_writable().await?;
        let made_backup = self.backup_once().await?;
        match self.write_in_one_transaction(plan, &writes).await {
            Err(e) if made_backup => Err(self.discard_backup(e)),
            r => r,
        }
    }

    async fn write_in_one_transaction(
        &self,
        plan: &WritePlan,
        writes: &[&StatWrite],
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let stmts = Statements::new(self);
        on_pool!(&self.pool, p => {
            let mut tx = if self.engine == Engine::Sqlite {
                // Take the write lock up front rather than on the first write.
                p.begin_with("BEGIN IMMEDIATE").await?
            } else {
                p.begin().await?
            };
            for w in writes {
                // The statistic: its id and the unit its rows are stored in.
                let existing = sqlx::query(&stmts.lookup)
                    .bind(&w.meta.statistic_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (meta_id, unit) = match existing {
                    Some(r) => (int(&r, 0)?.unwrap_or_default(), r.try_get::<Option<String>, _>(1)?),
                    None => {
                        let m = &w.meta;
                        let mut q = sqlx::query(&stmts.insert_meta)
                            .bind(&m.statistic_id)
                            .bind(&m.source)
                            .bind(&m.unit_of_measurement)
                            .bind(m.has_sum)
                            .bind(&m.name)
                            .bind(if m.has_mean { 1i16 } else { 0i16 });
                        if self.columns.unit_class {
                            let class = EnergyUnit::parse(m.unit_of_measurement.as_deref())
                                .map(|_| "energy");
                            q = q.bind(class);
                        }
                        q.execute(&mut *tx).await?;
                        let r = sqlx::query(&stmts.lookup)
                            .bind(&m.statistic_id)
                            .fetch_one(&mut *tx)
                            .await?;
                        (int(&r, 0)?.unwrap_or_default(), m.unit_of_measurement.clone())
                    }
                };
                let Some(unit) = EnergyUnit::parse(unit.as_deref()) else {
                    return Err(RecorderError::Invalid(format!(
                        "{} is stored in {:?}, not an energy unit (Wh, kWh, MWh, GWh): pwsync \
                         only writes energy statistics",
                        w.meta.statistic_id,
                        unit.unwrap_or_default()
                    )));
                };
                for s in &w.shifts {
                    let delta = unit.from_kwh(s.delta);
                    for (sql, from) in [
                        (&stmts.shift_hourly, floor_hour(s.from)),
                        (&stmts.shift_short, s.from),
                    ] {
                        sqlx::query(sql)
                            .bind(delta)
                            .bind(meta_id)
                            .bind(from as f64)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for (table, rows) in [(Table::Hourly, &w.hourly), (Table::ShortTerm, &w.short_term)] {
                    // One row per start, the last one given winning (PostgreSQL refuses to
                    // update a row twice in one statement).
                    let rows: Vec<StatRow> = rows
                        .iter()
                        .map(|r| (r.start, *r))
                        .collect::<BTreeMap<_, _>>()
                        .into_values()
                        .collect();
                    for chunk in rows.chunks(ROWS_PER_INSERT) {
                        let sql = stmts.upsert(table, chunk.len());
                        let mut q = sqlx::query(&sql);
                        for r in chunk {
                            q = q
                                .bind(now)
                                .bind(meta_id)
                                .bind(r.start as f64)
                                .bind(r.state.map(|v| unit.from_kwh(v)))
                                .bind(r.sum.map(|v| unit.from_kwh(v)));
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await?;
        });
        tracing::info!(
            statistics = writes.len(),
            rows = plan.row_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plan applied to the recorder database"
        );
        Ok(())
    }
}

/// SQL of one `apply`, built once per call for the engine and the columns at hand.
struct Statements {
    engine: Engine,
    lookup: String,
    insert_meta: String,
    shift_hourly: String,
    shift_short: String,
}

impl Statements {
    fn new(db: &RecorderDb) -> Self {
        let (cols, marks) = if db.columns.unit_class {
            (", unit_class", ", ?")
        } else {
            ("", "")
        };
        // has_mean stays NULL: since schema 50 HA reads mean_type only and the migration to 50
        // cleared has_mean.
        let insert_meta = db.sql(&format!(
            "INSERT INTO statistics_meta \
             (statistic_id, source, unit_of_measurement, has_mean, has_sum, name, mean_type{cols}) \
             VALUES (?, ?, ?, NULL, ?, ?, ?{marks})"
        ));
        let shift = |table: &str| {
            db.sql(&format!(
                "UPDATE {table} SET sum = sum + ? WHERE metadata_id = ? AND start_ts >= ?"
            ))
        };
        Statements {
            engine: db.engine,
            lookup: db.lookup_sql(),
            insert_meta,
            shift_hourly: shift("statistics"),
            shift_short: shift("statistics_short_term"),
        }
    }

    /// A multi-row upsert of `n` rows `(created_ts, metadata_id, start_ts, state, sum)`. An
    /// existing row keeps its id and `created_ts` and gets the new `state`/`sum` with `mean`,
    /// `min`, `max`, `last_reset_ts` cleared, as HA's own import updates rows. The columns left
    /// out (legacy `created`, `start`, `last_reset`, and `mean`…) are NULL on insert.
    fn upsert(&self, table: Table, n: usize) -> String {
        let table = table_name(table);
        let mut sql =
            format!("INSERT INTO {table} (created_ts, metadata_id, start_ts, state, sum) VALUES ");
        let mut p = 0;
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            if self.engine == Engine::Postgres {
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                ));
                p += 5;
            } else {
                sql.push_str("(?, ?, ?, ?, ?)");
            }
        }
        sql.push_str(match self.engine {
            Engine::MySql => {
                " ON DUPLICATE KEY UPDATE `state` = VALUES(`state`), `sum` = VALUES(`sum`), \
                 `mean` = NULL, `min` = NULL, `max` = NULL, `last_reset_ts` = NULL"
            }
            _ => {
                " ON CONFLICT (metadata_id, start_ts) DO UPDATE SET state = excluded.state, \
                 sum = excluded.sum, mean = NULL, min = NULL, max = NULL, last_reset_ts = NULL"
            }
        });
        sql
    }
}

/// Non-finite values would be stored as NULL (SQLite) or NaN, breaking the chain.
fn validate(writes: &[&StatWrite]) -> Result<()> {
    for w in writes {
        let bad_row = w.hourly.iter().chain(&w.short_term).find(|r| {
            r.state.is_some_and(|v| !v.is_finite()) || r.sum.is_some_and(|v| !v.is_finite())
        });
        if let Some(r) = bad_row {
            return Err(RecorderError::Invalid(format!(
                "{}: the row starting at {} has a non-finite value; nothing was written",
                w.meta.statistic_id, r.start
            )));
        }
        if let Some(s) = w.shifts.iter().find(|s| !s.delta.is_finite()) {
            return Err(RecorderError::Invalid(format!(
                "{}: the shift from {} has a non-finite delta; nothing was written",
                w.meta.statistic_id, s.from
            )));
        }
        if w.meta.statistic_id.is_empty() {
            return Err(RecorderError::Invalid("a statistic without an id".into()));
        }
    }
    Ok(())
}
