//! The one way jobs write energy into a statistic: read the chain around the range, splice,
//! and add the 5-minute rows where the store writes them.

use crate::JobError;
use pwsync_energy::splice::{splice, splice_short_term, SpliceInput};
use pwsync_energy::StatRow;
use pwsync_store::{StatMeta, StatWrite, StatisticsStore, Table};

/// A planned write of one statistic, and what the splice decided.
#[derive(Debug, Clone)]
pub struct Spliced {
    pub write: StatWrite,
    /// The statistic's rows in `[start, end)` before the write (and the last row before it).
    pub existing: Vec<StatRow>,
    pub kept_existing: usize,
    pub unchanged: usize,
}

/// Plan writing `energy` (`(hour start, kWh)`, ascending, all in `[start, end)`) into `meta`'s
/// chain: `states[i]` is the meter at the end of hour `i` (empty: `state` = `sum`). Without
/// `overwrite`, hours that already hold a row are kept.
pub async fn splice_into(
    store: &dyn StatisticsStore,
    meta: StatMeta,
    start: i64,
    end: i64,
    energy: &[(i64, f64)],
    states: &[f64],
    overwrite: bool,
) -> Result<Spliced, JobError> {
    let id = meta.statistic_id.clone();
    let mut existing: Vec<StatRow> = store
        .last_before(&id, Table::Hourly, start)
        .await?
        .into_iter()
        .collect();
    existing.extend(store.read(&id, Table::Hourly, start, end).await?);
    let sp = splice(&SpliceInput {
        existing: &existing,
        energy,
        states,
        overwrite,
    });
    let short_term = if store.writes_short_term() && !sp.rows.is_empty() {
        let old_short = store.read(&id, Table::ShortTerm, start, end).await?;
        splice_short_term(&old_short, &existing, &sp)
    } else {
        Vec::new()
    };
    Ok(Spliced {
        kept_existing: sp.kept_existing,
        unchanged: sp.unchanged,
        write: StatWrite {
            meta,
            shifts: sp.shifts,
            hourly: sp.rows,
            short_term,
        },
        existing,
    })
}
