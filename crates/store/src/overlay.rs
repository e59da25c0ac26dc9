//! [`Overlay`]: a store as it would be after a plan, without writing it.
//!
//! A job of two phases (migrate, then backfill) plans its second phase against what the first
//! wrote. On a dry run nothing is written, so the second phase reads through an overlay of the
//! first phase's plan: the dry run reports what the real run would do.

use crate::{StatMeta, StatWrite, StatisticsStore, StoreError, Table, WritePlan};
use async_trait::async_trait;
use pwsync_energy::splice::apply_writes;
use pwsync_energy::{StatRow, FIVE_MIN, HOUR};

/// `inner` as it reads after `plan` is applied. Read-only: `apply` is refused.
pub struct Overlay<'a> {
    inner: &'a dyn StatisticsStore,
    plan: &'a WritePlan,
}

impl<'a> Overlay<'a> {
    pub fn new(inner: &'a dyn StatisticsStore, plan: &'a WritePlan) -> Self {
        Overlay { inner, plan }
    }

    fn writes_of<'s>(&self, statistic_id: &'s str) -> impl Iterator<Item = &'a StatWrite> + 's
    where
        'a: 's,
    {
        self.plan
            .writes
            .iter()
            .filter(move |w| w.meta.statistic_id == statistic_id)
    }

    /// `rows` (of `table`, all with start in `[start, end)`) with the plan's writes of that
    /// statistic applied, restricted to `[start, end)`.
    fn overlaid(
        &self,
        statistic_id: &str,
        table: Table,
        mut rows: Vec<StatRow>,
        start: i64,
        end: i64,
    ) -> Vec<StatRow> {
        let period = match table {
            Table::Hourly => HOUR,
            Table::ShortTerm => FIVE_MIN,
        };
        for w in self.writes_of(statistic_id) {
            let upserts: Vec<StatRow> = match table {
                Table::Hourly => &w.hourly,
                Table::ShortTerm => &w.short_term,
            }
            .iter()
            .filter(|r| r.start >= start && r.start < end)
            .copied()
            .collect();
            rows = apply_writes(&rows, &w.shifts, &upserts, period);
        }
        rows
    }
}

#[async_trait]
impl StatisticsStore for Overlay<'_> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn writes_short_term(&self) -> bool {
        self.inner.writes_short_term()
    }

    async fn metadata(&self, ids: &[String]) -> Result<Vec<StatMeta>, StoreError> {
        let mut metas = self.inner.metadata(ids).await?;
        for w in &self.plan.writes {
            let wanted = ids.contains(&w.meta.statistic_id);
            let known = metas.iter().any(|m| m.statistic_id == w.meta.statistic_id);
            if wanted && !known {
                metas.push(w.meta.clone());
            }
        }
        Ok(metas)
    }

    async fn list(&self) -> Result<Vec<StatMeta>, StoreError> {
        let mut metas = self.inner.list().await?;
        for w in &self.plan.writes {
            if !metas.iter().any(|m| m.statistic_id == w.meta.statistic_id) {
                metas.push(w.meta.clone());
            }
        }
        Ok(metas)
    }

    async fn read(
        &self,
        statistic_id: &str,
        table: Table,
        start: i64,
        end: i64,
    ) -> Result<Vec<StatRow>, StoreError> {
        let rows = self.inner.read(statistic_id, table, start, end).await?;
        Ok(self.overlaid(statistic_id, table, rows, start, end))
    }

    async fn last_before(
        &self,
        statistic_id: &str,
        table: Table,
        before: i64,
    ) -> Result<Option<StatRow>, StoreError> {
        // The overlay's last row before `before` is either the inner store's (shifted) or the
        // latest planned row before it: overlay the window from the earlier of the two.
        let inner = self.inner.last_before(statistic_id, table, before).await?;
        let planned = self
            .writes_of(statistic_id)
            .flat_map(|w| match table {
                Table::Hourly => w.hourly.iter(),
                Table::ShortTerm => w.short_term.iter(),
            })
            .filter(|r| r.start < before)
            .map(|r| r.start)
            .max();
        let from = match (inner.map(|r| r.start), planned) {
            (None, None) => return Ok(None),
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        let rows = inner.into_iter().filter(|r| r.start >= from).collect();
        Ok(self
            .overlaid(statistic_id, table, rows, from, before)
            .last()
            .copied())
    }

    async fn apply(&self, _plan: &WritePlan) -> Result<(), StoreError> {
        Err(StoreError::Refused(
            "a preview of a plan cannot be written to".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shift;

    /// Hourly rows of one statistic in memory.
    struct Mem(Vec<StatRow>);

    #[async_trait]
    impl StatisticsStore for Mem {
        fn kind(&self) -> &'static str {
            "memory"
        }
        fn writes_short_term(&self) -> bool {
            false
        }
        async fn metadata(&self, _: &[String]) -> Result<Vec<StatMeta>, StoreError> {
            Ok(vec![StatMeta::energy_kwh("sensor.x", "x")])
        }
        async fn list(&self) -> Result<Vec<StatMeta>, StoreError> {
            self.metadata(&[]).await
        }
        async fn read(
            &self,
            _: &str,
            _: Table,
            s: i64,
            e: i64,
        ) -> Result<Vec<StatRow>, StoreError> {
            Ok(self
                .0
                .iter()
                .filter(|r| r.start >= s && r.start < e)
                .copied()
                .collect())
        }
        async fn last_before(
            &self,
            _: &str,
            _: Table,
            b: i64,
        ) -> Result<Option<StatRow>, StoreError> {
            Ok(self.0.iter().rfind(|r| r.start < b).copied())
        }
        async fn apply(&self, _: &WritePlan) -> Result<(), StoreError> {
            unreachable!()
        }
    }

    fn row(h: i64, sum: f64) -> StatRow {
        StatRow {
            start: h * HOUR,
            state: Some(sum),
            sum: Some(sum),
        }
    }

    #[tokio::test]
    async fn reads_as_after_the_plan() {
        let mem = Mem(vec![row(0, 1.0), row(1, 2.0), row(5, 3.0), row(6, 4.0)]);
        let plan = WritePlan {
            writes: vec![StatWrite {
                meta: StatMeta::energy_kwh("sensor.x", "x"),
                shifts: vec![Shift {
                    from: 5 * HOUR,
                    delta: 10.0,
                }],
                hourly: vec![row(3, 7.0)],
                short_term: vec![],
            }],
        };
        let o = Overlay::new(&mem, &plan);
        let all = o
            .read("sensor.x", Table::Hourly, 0, 10 * HOUR)
            .await
            .unwrap();
        let sums: Vec<_> = all
            .iter()
            .map(|r| (r.start / HOUR, r.sum.unwrap()))
            .collect();
        assert_eq!(
            sums,
            vec![(0, 1.0), (1, 2.0), (3, 7.0), (5, 13.0), (6, 14.0)]
        );
        let last = |b| o.last_before("sensor.x", Table::Hourly, b * HOUR);
        assert_eq!(
            last(5).await.unwrap().unwrap().start,
            3 * HOUR,
            "a planned row"
        );
        assert_eq!(
            last(6).await.unwrap().unwrap().sum,
            Some(13.0),
            "a shifted row"
        );
        assert_eq!(last(3).await.unwrap().unwrap().sum, Some(2.0));
        assert_eq!(last(0).await.unwrap(), None);
        // Another statistic is untouched; writing is refused.
        assert!(o.apply(&plan).await.is_err());
    }
}
