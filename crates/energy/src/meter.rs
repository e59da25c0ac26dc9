//! The lifetime meter: energy since the first data point, extended incrementally.
//!
//! The live sensors publish it as a `total_increasing` meter, and backfilled rows use its value at
//! each hour's end as `state`; both come from the same trapezoids and gap policy as
//! [`crate::integrate`], so the seam between backfilled and live statistics shows no jump.

use crate::hourly::{Gap, Integration, Sample};
use serde::{Deserialize, Serialize};

/// Meter state, small enough to keep between polls and to persist (serde).
///
/// Invariant: the value never decreases. Samples at or before the last one used are ignored, so
/// InfluxDB revising its most recent minutes cannot pull the meter back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LifetimeMeter {
    kwh: f64,
    last: Option<Sample>,
}

/// What one [`LifetimeMeter::advance`] did, for logs and the gap report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Advance {
    /// Energy added, kWh (never negative).
    pub kwh: f64,
    /// Samples taken into the meter.
    pub samples: usize,
    /// Stretches between accepted samples longer than the gap limit: no energy was added for them.
    pub gaps: Vec<Gap>,
}

impl LifetimeMeter {
    /// A meter at 0 kWh that starts at the first sample it is given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Continue a meter from a persisted value (e.g. the retained MQTT state) and the sample it
    /// was computed up to. A negative or non-finite value is taken as 0.
    pub fn resume(kwh: f64, last: Option<Sample>) -> Self {
        let kwh = if kwh.is_finite() && kwh > 0.0 {
            kwh
        } else {
            0.0
        };
        LifetimeMeter { kwh, last }
    }

    /// Energy since the first sample, kWh.
    pub fn value_kwh(&self) -> f64 {
        self.kwh
    }

    /// The newest sample taken in; the next poll only needs samples after its time.
    pub fn last(&self) -> Option<Sample> {
        self.last
    }

    /// Add the energy of the segments after the last sample. `samples` ascending by time; of
    /// samples with equal times the later one counts, as in [`crate::integrate`]; a sample not
    /// after the newest accepted one is ignored. Negative watts count as 0 and a segment longer
    /// than `gap_limit` seconds adds nothing, so the meter at a sample time `t` equals the
    /// integral over `[first sample, t)`.
    pub fn advance(&mut self, samples: &[Sample], gap_limit: i64) -> Advance {
        let mut report = Advance::default();
        let mut pending: Option<Sample> = None;
        for &s in samples {
            let after = |t: i64| match (pending, self.last) {
                (Some(p), _) => t >= p.t,
                (None, Some(l)) => t > l.t,
                (None, None) => true,
            };
            if !after(s.t) {
                continue;
            }
            let s = Sample::new(s.t, s.w.max(0.0));
            match pending {
                Some(p) if p.t == s.t => pending = Some(s),
                Some(p) => {
                    self.take(p, gap_limit, &mut report);
                    pending = Some(s);
                }
                None => pending = Some(s),
            }
        }
        if let Some(p) = pending {
            self.take(p, gap_limit, &mut report);
        }
        report
    }

    fn take(&mut self, s: Sample, gap_limit: i64, report: &mut Advance) {
        if let Some(a) = self.last {
            let dt = s.t - a.t;
            if dt > gap_limit {
                report.gaps.push(Gap {
                    start: a.t,
                    end: s.t,
                });
            } else {
                let kwh = 0.5 * (a.w + s.w) * dt as f64 / 3600.0 / 1000.0;
                if kwh > 0.0 {
                    self.kwh += kwh;
                    report.kwh += kwh;
                }
            }
        }
        self.last = Some(s);
        report.samples += 1;
    }
}

/// Decimals of a lifetime meter reading, kWh: 1 mWh.
pub const READING_DECIMALS: usize = 6;
/// One step of a reading, kWh: two readings closer than this are the same reading.
pub const READING_STEP: f64 = 1e-6;

/// The lifetime meter as HA sees it: `kwh` rounded to [`READING_DECIMALS`], exactly the number
/// HA parses from [`format_reading`]. The `state` written for an hour's end and the value `serve`
/// publishes both go through it, so a meter idle since the last written hour reads exactly that
/// hour's `state` (SPEC §6b): HA takes any reading below the previous state of a
/// `total_increasing` sensor for a decrease.
pub fn meter_reading(kwh: f64) -> f64 {
    format_reading(kwh).parse().unwrap_or(kwh)
}

/// `kwh` as published: [`READING_DECIMALS`] decimals (a string HA parses back to
/// [`meter_reading`]`(kwh)`).
pub fn format_reading(kwh: f64) -> String {
    format!("{kwh:.READING_DECIMALS$}")
}

/// The lifetime meter at the end of each period of `integ`: `(period start, kWh at its end)`.
/// `base_kwh` is the meter at the start of the integration's first period (0 when the
/// integration starts at or before the first data point). These are the `state`s of backfilled
/// hourly rows: the value the live sensor published at that time.
pub fn meter_at_hour_ends(integ: &Integration, base_kwh: f64) -> Vec<(i64, f64)> {
    let mut kwh = base_kwh;
    integ
        .buckets
        .iter()
        .map(|b| {
            kwh += b.wh / 1000.0;
            (b.start, kwh)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{integrate, HOUR};

    #[test]
    fn constant_power_for_an_hour_is_one_kwh_per_kw() {
        let s: Vec<Sample> = (0..=60).map(|m| Sample::new(m * 60, 2000.0)).collect();
        let mut m = LifetimeMeter::new();
        let r = m.advance(&s, 300);
        assert!((m.value_kwh() - 2.0).abs() < 1e-12);
        assert_eq!(r.samples, 61);
        assert!(r.gaps.is_empty());
        assert_eq!(m.last(), Some(Sample::new(3600, 2000.0)));
    }

    #[test]
    fn revised_and_stale_samples_are_ignored() {
        let mut m = LifetimeMeter::new();
        m.advance(&[Sample::new(0, 1000.0), Sample::new(60, 1000.0)], 300);
        let v = m.value_kwh();
        // InfluxDB revised the minute at 60 to 0 W and re-sent an older one: nothing changes.
        let r = m.advance(&[Sample::new(0, 0.0), Sample::new(60, 0.0)], 300);
        assert_eq!(m.value_kwh(), v);
        assert_eq!(r.samples, 0);
        m.advance(&[Sample::new(120, 1000.0)], 300);
        assert!((m.value_kwh() - 2.0 * 1000.0 / 60.0 / 1000.0).abs() < 1e-12);
    }

    #[test]
    fn a_gap_adds_nothing_and_is_reported() {
        let mut m = LifetimeMeter::new();
        let r = m.advance(
            &[
                Sample::new(0, 5000.0),
                Sample::new(7200, 5000.0),
                Sample::new(7260, 5000.0),
            ],
            300,
        );
        assert_eq!(
            r.gaps,
            vec![Gap {
                start: 0,
                end: 7200
            }]
        );
        assert!((m.value_kwh() - 5.0 / 60.0).abs() < 1e-12);
    }

    #[test]
    fn equal_times_keep_the_later_value_like_integrate() {
        let s = [
            Sample::new(0, 0.0),
            Sample::new(60, 100.0),
            Sample::new(60, 600.0),
            Sample::new(120, 600.0),
        ];
        let mut m = LifetimeMeter::new();
        m.advance(&s, 300);
        let i = integrate(&s, 0, HOUR, HOUR, 300);
        assert!((m.value_kwh() - i.total_wh() / 1000.0).abs() < 1e-12);
    }

    #[test]
    fn a_reading_is_what_ha_parses_from_the_published_text() {
        for kwh in [
            462.0808444756,
            0.0,
            1e-7,
            293.9149995,
            12345.678901234,
            0.1 + 0.2,
        ] {
            let r = meter_reading(kwh);
            assert_eq!(format_reading(r), format_reading(kwh), "{kwh}");
            assert_eq!(format_reading(kwh).parse::<f64>().unwrap(), r, "{kwh}");
            assert!((r - kwh).abs() <= READING_STEP / 2.0 + 1e-12, "{kwh}");
        }
    }

    #[test]
    fn resume_and_hour_ends() {
        let m = LifetimeMeter::resume(f64::NAN, None);
        assert_eq!(m.value_kwh(), 0.0);
        let s: Vec<Sample> = (0..=120).map(|m| Sample::new(m * 60, 1000.0)).collect();
        let i = integrate(&s, 0, 2 * HOUR, HOUR, 300);
        let ends = meter_at_hour_ends(&i, 10.0);
        assert_eq!(ends.len(), 2);
        assert_eq!(ends[0].0, 0);
        assert!((ends[0].1 - 11.0).abs() < 1e-9 && (ends[1].1 - 12.0).abs() < 1e-9);
    }
}
