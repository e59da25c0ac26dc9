//! The lifetime meters and period totals `serve` keeps between polls: started once from the
//! first InfluxDB point, rolled over at local midnights and month starts.

use anyhow::{Context, Result};
use chrono_tz::Tz;
use pwsync_config::source::Source;
use pwsync_energy::live::LiveMeter;
use pwsync_energy::local::{day_slice, local_date, local_day_range, month_range};
use pwsync_energy::{floor_hour, floor_to, Field, HOUR};
use pwsync_influx::LiveWindow;
use std::collections::BTreeMap;

/// The meters start on a quarter hour, settled minutes before now.
const QUARTER: i64 = 15 * 60;
/// A period whose start came after the meters' anchor: the first poll's samples open it (see
/// [`roll_periods`]), at the exact instant.
const OPENED_BY_FIRST_POLL: i64 = i64::MIN;

/// A period total: where it starts and the meter there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Period {
    pub(super) start: i64,
    pub(super) meter_at_start: f64,
}

/// Minutes younger than this may still be revised by InfluxDB; older ones move into the base.
pub(super) const SETTLE: i64 = 15 * 60;
/// How far back the meter's hour-boundary readings are kept for the seam guard.
pub(super) const MARKS_KEPT: i64 = 72 * 3600;

/// The meters' readings at hour boundaries, per field (see [`Live::marks`]): what the seam
/// guard and a job's closing guard compare HA's hourly rows with.
pub(super) type Marks = BTreeMap<Field, BTreeMap<i64, f64>>;

/// Everything `serve` keeps between polls.
pub(super) struct Live {
    pub(super) tz: Tz,
    pub(super) gap_limit: i64,
    pub(super) retained: BTreeMap<String, f64>,
    pub(super) meters: Option<BTreeMap<Field, LiveMeter>>,
    pub(super) today: BTreeMap<Field, Period>,
    pub(super) month: BTreeMap<Field, Period>,
    /// The meter at recent hour boundaries, for the seam guard.
    pub(super) marks: Marks,
    /// The last values published, republished on HA's birth message.
    pub(super) last_states: BTreeMap<String, String>,
}

impl Live {
    pub(super) fn new(retained: BTreeMap<String, f64>, tz: Tz, gap_limit: i64) -> Live {
        Live {
            tz,
            gap_limit,
            retained,
            meters: None,
            today: BTreeMap::new(),
            month: BTreeMap::new(),
            marks: BTreeMap::new(),
            last_states: BTreeMap::new(),
        }
    }
}

/// Start the meters: energy from the first InfluxDB point up to the anchor, split at the month
/// and day starts so the period totals know their meter readings.
pub(super) async fn start_meters(source: &Source, live: &mut Live, now: i64) -> Result<()> {
    // A misspelled name would otherwise make a meter of 0 (or a day of the whole lifetime).
    source.client.check_source(&source.map, &Field::ALL).await?;
    let first = source
        .client
        .first_timestamp(&source.map, &Field::ALL)
        .await?
        .context("InfluxDB has no power data yet")?;
    let meter_start = floor_hour(first);
    let anchor = floor_to(now - SETTLE, QUARTER).max(meter_start);
    let day = local_day_range(local_date(now, live.tz), live.tz).0;
    let month = month_start(now, live.tz);
    // [meter_start, month) by hours, then [month, anchor) in slices that local midnight lies
    // on (30 or 15 minutes where it falls inside a UTC hour), for the meter at the day start.
    let split = month.clamp(meter_start, anchor);
    let slice = day_slice(split, anchor, live.tz);
    let before = source.client.energy(
        &source.map,
        &Field::ALL,
        meter_start,
        split,
        HOUR,
        source.gap_limit,
    );
    let recent = source.client.energy(
        &source.map,
        &Field::ALL,
        split,
        anchor,
        slice,
        source.gap_limit,
    );
    let (before, recent) = tokio::try_join!(
        async {
            if split > meter_start {
                before.await.map(Some)
            } else {
                Ok(None)
            }
        },
        async {
            if anchor > split {
                recent.await.map(Some)
            } else {
                Ok(None)
            }
        }
    )?;
    let mut meters = BTreeMap::new();
    for f in Field::ALL {
        let base_month = before
            .as_ref()
            .and_then(|b| b.get(&f))
            .map(|i| i.total_wh() / 1000.0)
            .unwrap_or(0.0);
        let mut kwh = base_month;
        let mut at_day = if day <= split { None } else { Some(base_month) };
        if let Some(r) = recent.as_ref().and_then(|r| r.get(&f)) {
            let marks = live.marks.entry(f).or_default();
            for b in &r.buckets {
                if b.start == day {
                    at_day = Some(kwh);
                }
                if b.start % HOUR == 0 && b.start >= now - MARKS_KEPT {
                    marks.insert(b.start, kwh);
                }
                kwh += b.wh / 1000.0;
            }
            if day >= anchor {
                at_day = Some(kwh);
            }
        }
        let mut m = LiveMeter::new(anchor, kwh);
        if let Some(v) = live.retained.get(f.sensor_key()) {
            // Published before a restart: the meter never starts lower than that.
            m.hold_at_least(*v);
        }
        meters.insert(f, m);
        // A day or month that began after the anchor (serve started just after midnight) is
        // opened by the first poll, from its samples: the meter at the anchor would count the
        // minutes before midnight into today.
        let opened = |start: i64| {
            if start > anchor {
                OPENED_BY_FIRST_POLL
            } else {
                start
            }
        };
        live.month.insert(
            f,
            Period {
                start: opened(month),
                meter_at_start: if month <= meter_start {
                    0.0
                } else {
                    base_month
                },
            },
        );
        live.today.insert(
            f,
            Period {
                start: opened(day),
                meter_at_start: if day <= meter_start {
                    0.0
                } else {
                    at_day.unwrap_or(kwh)
                },
            },
        );
    }
    live.meters = Some(meters);
    Ok(())
}

fn month_start(t: i64, tz: Tz) -> i64 {
    use chrono::Datelike;
    let d = local_date(t, tz);
    month_range(d.year(), d.month(), tz)
        .map(|r| r.0)
        .unwrap_or_else(|_| local_day_range(d, tz).0)
}

/// A new local day or month since the last poll: its meter reading from this poll's samples,
/// at the exact local midnight (also where it falls inside a UTC hour).
pub(super) fn roll_periods(live: &mut Live, window: &LiveWindow, now: i64) {
    let day = local_day_range(local_date(now, live.tz), live.tz).0;
    let month = month_start(now, live.tz);
    let Some(meters) = live.meters.as_ref() else {
        return;
    };
    for f in Field::ALL {
        let m = &meters[&f];
        let at = |t: i64| m.value_at(window.samples(f), t, live.gap_limit).max(0.0);
        if live.today.get(&f).is_some_and(|p| p.start != day) {
            live.today.insert(
                f,
                Period {
                    start: day,
                    meter_at_start: at(day),
                },
            );
        }
        if live.month.get(&f).is_some_and(|p| p.start != month) {
            live.month.insert(
                f,
                Period {
                    start: month,
                    meter_at_start: at(month),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsync_energy::live::LiveMeter;
    use pwsync_energy::Sample;

    /// 2025-06-02T00:00 in Adelaide (+09:30) is 2025-06-01T14:30Z, mid-hour.
    const MIDNIGHT: i64 = 1_748_788_200;

    fn adelaide() -> Tz {
        "Australia/Adelaide".parse().unwrap()
    }

    /// 1 kW every minute from `from` to `to`.
    fn window(from: i64, to: i64) -> LiveWindow {
        let kw: Vec<Sample> = (from..=to)
            .step_by(60)
            .map(|t| Sample::new(t, 1000.0))
            .collect();
        LiveWindow {
            power: vec![kw; Field::ALL.len()],
            ..LiveWindow::default()
        }
    }

    fn live_anchored_at(anchor: i64, base: f64, today: i64, month: i64) -> Live {
        let mut live = Live::new(BTreeMap::new(), adelaide(), 300);
        live.meters = Some(
            Field::ALL
                .iter()
                .map(|f| (*f, LiveMeter::new(anchor, base)))
                .collect(),
        );
        for f in Field::ALL {
            let p = |start| Period {
                start,
                meter_at_start: 0.0,
            };
            live.today.insert(f, p(today));
            live.month.insert(f, p(month));
        }
        live
    }

    #[test]
    fn a_day_rolls_at_the_exact_local_midnight_in_a_half_hour_zone() {
        assert_eq!(
            local_day_range(local_date(MIDNIGHT, adelaide()), adelaide()).0,
            MIDNIGHT
        );
        // Anchored at 14:00Z (23:30 local), base 100 kWh; polled at 14:40Z (00:10 local).
        let anchor = MIDNIGHT - 1800;
        let june = month_start(MIDNIGHT, adelaide());
        assert_eq!(june, MIDNIGHT - 86_400);
        let mut live = live_anchored_at(anchor, 100.0, MIDNIGHT - 86_400, june);
        roll_periods(
            &mut live,
            &window(anchor - 300, MIDNIGHT + 600),
            MIDNIGHT + 600,
        );
        for f in Field::ALL {
            let today = live.today[&f];
            assert_eq!(today.start, MIDNIGHT, "{f:?}");
            // Half an hour at 1 kW since the anchor: 0.5 kWh, to the second at 00:00 local.
            assert!((today.meter_at_start - 100.5).abs() < 1e-9, "{today:?}");
            // June is not a new month: that period stays as it was.
            assert_eq!(live.month[&f].start, june);
        }
    }

    #[test]
    fn a_period_opened_by_the_first_poll_starts_at_midnight_not_at_the_anchor() {
        // 2025-07-01T00:00 in Adelaide: a new month and day, 10 minutes before serve's start.
        let midnight = local_day_range(
            chrono::NaiveDate::from_ymd_opt(2025, 7, 1).unwrap(),
            adelaide(),
        )
        .0;
        assert_eq!(month_start(midnight + 600, adelaide()), midnight);
        let anchor = floor_to(midnight + 600 - SETTLE, QUARTER);
        assert!(anchor < midnight);
        let mut live = live_anchored_at(anchor, 7.0, OPENED_BY_FIRST_POLL, OPENED_BY_FIRST_POLL);
        roll_periods(
            &mut live,
            &window(anchor - 300, midnight + 600),
            midnight + 600,
        );
        let expected = 7.0 + (midnight - anchor) as f64 / 3600.0;
        for f in Field::ALL {
            for p in [live.today[&f], live.month[&f]] {
                assert_eq!(p.start, midnight);
                assert!((p.meter_at_start - expected).abs() < 1e-9, "{p:?}");
            }
        }
    }
}
