//! Energy per period (normally one UTC hour) from a power series, as an exact partition of
//! the piecewise-linear power curve, with a gap policy.
//!
//! Why not InfluxDB's `integral()`: it draws a straight line across missing data and, grouped by
//! time, adds the area of empty windows to the next window with data (a 48 h outage once became a
//! 21 kWh hour). Here a segment between two samples further apart than `gap_limit` carries no
//! energy at all: the energy over a gap is unknown, so it is reported as a gap, never invented.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One power reading: `t` epoch seconds, `w` watts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t: i64,
    pub w: f64,
}

impl Sample {
    pub fn new(t: i64, w: f64) -> Self {
        Sample { t, w }
    }
}

/// Energy of one period. `covered` counts the seconds of the period backed by data
/// (inside the data range and not inside a gap); the period is complete when it equals its length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub start: i64,
    pub wh: f64,
    pub covered: i64,
}

/// A stretch between two consecutive samples longer than the gap limit, clipped to the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub start: i64,
    pub end: i64,
}

impl Gap {
    pub fn seconds(&self) -> i64 {
        self.end - self.start
    }
}

/// The result of integrating a series over `[range_start, range_end)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub bucket: i64,
    /// Every period overlapping the range, in order, including periods with no data.
    pub buckets: Vec<Bucket>,
    pub gaps: Vec<Gap>,
    /// First and last sample time inside the range.
    pub first: Option<i64>,
    pub last: Option<i64>,
}

impl Integration {
    pub fn total_wh(&self) -> f64 {
        self.buckets.iter().map(|b| b.wh).sum()
    }

    pub fn is_complete(&self, b: &Bucket) -> bool {
        b.covered >= self.bucket
    }
}

/// Integrate `samples` (sorted by time; a repeated time keeps the last value) over
/// `[range_start, range_end)` split into periods of `bucket` seconds aligned to the epoch.
///
/// To make results independent of how a long range is chunked, pass the last sample before
/// `range_start` and the first one at or after `range_end` too: segments are clipped to the range
/// with linear interpolation, so adjacent ranges add up to the whole. Negative watts count as 0
/// (every field is a magnitude), which keeps every meter built on this non-decreasing.
pub fn integrate(
    samples: &[Sample],
    range_start: i64,
    range_end: i64,
    bucket: i64,
    gap_limit: i64,
) -> Integration {
    assert!(bucket > 0, "bucket must be positive");
    let mut acc: BTreeMap<i64, Bucket> = BTreeMap::new();
    let mut t = crate::floor_to(range_start, bucket);
    while t < range_end {
        acc.insert(
            t,
            Bucket {
                start: t,
                wh: 0.0,
                covered: 0,
            },
        );
        t += bucket;
    }
    let mut gaps: Vec<Gap> = Vec::new();
    let in_range = |t: i64| t >= range_start && t < range_end;
    let first = samples.iter().map(|s| s.t).find(|&t| in_range(t));
    let last = samples.iter().rev().map(|s| s.t).find(|&t| in_range(t));

    for (a, b) in dedup_pairs(samples) {
        let (lo, hi) = (a.t.max(range_start), b.t.min(range_end));
        if lo >= hi {
            continue;
        }
        if b.t - a.t > gap_limit {
            push_gap(&mut gaps, Gap { start: lo, end: hi });
            continue;
        }
        add_segment(&mut acc, bucket, a, b, lo, hi);
    }
    Integration {
        bucket,
        buckets: acc.into_values().collect(),
        gaps,
        first,
        last,
    }
}

/// The last sample before a range and the first one at or after its end, wherever they are:
/// a range fetched in chunks sees only a little past each chunk's edges, so a gap longer than
/// that, across a chunk's edge or the range's, shows up in no chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Neighbours {
    pub before: Option<i64>,
    pub after: Option<i64>,
}

/// Join the integrations of adjacent chunks that partition `[start, end)`, in order, each
/// integrated with the samples from `gap_limit` before to `gap_limit` after its own range.
///
/// Buckets and energy need nothing more (a segment carries energy only if it is at most
/// `gap_limit` long, so each chunk sees every segment that reaches it). Gaps do: a gap across a
/// chunk's edge is seen whole by neither chunk, or not at all. So each gap between the last
/// sample of the chunks so far (or `edges.before`) and the first sample of the next chunk with
/// data (or `edges.after`) is added, and gaps that meet are joined. The result equals
/// [`integrate`] over the whole range with every sample, for any chunking.
pub fn join_chunks(
    parts: impl IntoIterator<Item = Integration>,
    start: i64,
    end: i64,
    bucket: i64,
    gap_limit: i64,
    edges: Neighbours,
) -> Integration {
    let mut out = Integration {
        bucket,
        ..Default::default()
    };
    let mut gaps = Vec::new();
    let mut last_sample = edges.before;
    let seam = |last: Option<i64>, next: i64, gaps: &mut Vec<Gap>| {
        if let Some(a) = last {
            if next - a > gap_limit {
                let g = Gap {
                    start: a.max(start),
                    end: next.min(end),
                };
                if g.start < g.end {
                    gaps.push(g);
                }
            }
        }
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
        gaps.extend_from_slice(&p.gaps);
        if let Some(first) = p.first {
            seam(last_sample, first, &mut gaps);
        }
        last_sample = p.last.or(last_sample);
        out.first = out.first.or(p.first);
        out.last = p.last.or(out.last);
    }
    if let Some(after) = edges.after {
        seam(last_sample, after, &mut gaps);
    }
    gaps.sort_by_key(|g| g.start);
    for g in gaps {
        match out.gaps.last_mut() {
            Some(last) if g.start <= last.end => last.end = last.end.max(g.end),
            _ => out.gaps.push(g),
        }
    }
    out
}

/// Consecutive pairs of samples with distinct times; of equal times the later value wins.
fn dedup_pairs(samples: &[Sample]) -> impl Iterator<Item = (Sample, Sample)> + '_ {
    let mut prev: Option<Sample> = None;
    let mut it = samples.iter().peekable();
    std::iter::from_fn(move || loop {
        let s = *it.next()?;
        if let Some(n) = it.peek() {
            if n.t == s.t {
                continue;
            }
        }
        let s = Sample::new(s.t, s.w.max(0.0));
        match prev.replace(s) {
            Some(p) if p.t < s.t => return Some((p, s)),
            _ => continue,
        }
    })
}

fn push_gap(gaps: &mut Vec<Gap>, g: Gap) {
    match gaps.last_mut() {
        Some(last) if last.end == g.start => last.end = g.end,
        _ => gaps.push(g),
    }
}

/// Add the trapezoid area of segment a→b restricted to [lo, hi), split at bucket boundaries.
fn add_segment(
    acc: &mut BTreeMap<i64, Bucket>,
    bucket: i64,
    a: Sample,
    b: Sample,
    lo: i64,
    hi: i64,
) {
    let dt = (b.t - a.t) as f64;
    let at = |x: i64| a.w + (b.w - a.w) * ((x - a.t) as f64 / dt);
    let mut x0 = lo;
    while x0 < hi {
        let bstart = crate::floor_to(x0, bucket);
        let x1 = (bstart + bucket).min(hi);
        let wh = 0.5 * (at(x0) + at(x1)) * (x1 - x0) as f64 / 3600.0;
        if let Some(bk) = acc.get_mut(&bstart) {
            bk.wh += wh;
            bk.covered += x1 - x0;
        }
        x0 = x1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_power_one_hour_is_its_watts_in_wh() {
        let s: Vec<Sample> = (0..=60).map(|m| Sample::new(m * 60, 1000.0)).collect();
        let r = integrate(&s, 0, 3600, 3600, 300);
        assert_eq!(r.buckets.len(), 1);
        assert!((r.buckets[0].wh - 1000.0).abs() < 1e-9);
        assert!(r.is_complete(&r.buckets[0]));
        assert!(r.gaps.is_empty());
    }

    #[test]
    fn a_long_gap_carries_no_energy_and_is_reported() {
        let s = vec![
            Sample::new(0, 1000.0),
            Sample::new(60, 1000.0),
            Sample::new(7260, 1000.0),
        ];
        let r = integrate(&s, 0, 3 * 3600, 3600, 300);
        assert_eq!(
            r.gaps,
            vec![Gap {
                start: 60,
                end: 7260
            }]
        );
        assert!((r.total_wh() - 1000.0 / 60.0).abs() < 1e-9);
        assert!(r.buckets.iter().all(|b| !r.is_complete(b)));
    }

    #[test]
    fn a_segment_across_an_hour_boundary_is_split_by_interpolation() {
        let s = vec![Sample::new(3540, 0.0), Sample::new(3660, 1200.0)];
        let r = integrate(&s, 0, 7200, 3600, 300);
        // value at 3600 is 600 W: first part 60 s * 300 W avg, second 60 s * 900 W avg
        assert!((r.buckets[0].wh - 300.0 * 60.0 / 3600.0).abs() < 1e-9);
        assert!((r.buckets[1].wh - 900.0 * 60.0 / 3600.0).abs() < 1e-9);
    }
}
