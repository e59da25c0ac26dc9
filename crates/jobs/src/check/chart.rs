//! The daily chart of a check, HA against InfluxDB, one panel per statistic, as plain SVG
//! (no plotting dependency): two polylines per panel. `check --chart` writes it (or rasterises
//! it to PNG); the panel shows it.

use super::{CheckReport, StatisticCheck};
use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const PLOT: f64 = 120.0;

pub fn svg(report: &CheckReport) -> String {
    let height = TOP + PANEL * report.statistics.len().max(1) as f64 + 20.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="20" font-size="15">Daily energy, HA (blue) versus InfluxDB (orange, dashed), {} ({} problem(s))</text>
"##,
        report.time_zone, report.problems
    );
    for (i, stat) in report.statistics.iter().enumerate() {
        panel(&mut s, stat, TOP + PANEL * i as f64);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, stat: &StatisticCheck, y0: f64) {
    let days = &stat.daily;
    let max = days
        .iter()
        .flat_map(|d| [Some(d.ha_kwh), d.influx_kwh])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-3);
    let n = days.len().max(2) as f64 - 1.0;
    let x = |i: usize| LEFT + (WIDTH - LEFT - RIGHT) * i as f64 / n;
    let y = |v: f64| y0 + 18.0 + PLOT * (1.0 - (v / max).clamp(-0.1, 1.05));
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{}" font-weight="bold">{} ({} finding(s))</text>
<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#999"/>
<text x="{}" y="{}" text-anchor="end">{max:.1} kWh</text><text x="{}" y="{}" text-anchor="end">0</text>"##,
        y0 + 12.0,
        escape(&stat.statistic_id),
        stat.findings.len(),
        y(0.0),
        WIDTH - RIGHT,
        y(0.0),
        LEFT - 6.0,
        y(max) + 4.0,
        LEFT - 6.0,
        y(0.0) + 4.0,
    );
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            y(0.0) + 14.0,
            first.date,
            WIDTH - RIGHT,
            y(0.0) + 14.0,
            last.date
        );
    }
    let line = |values: Vec<(usize, f64)>| {
        values
            .iter()
            .map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let influx: Vec<(usize, f64)> = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.influx_kwh.map(|v| (i, v)))
        .collect();
    let ha: Vec<(usize, f64)> = days
        .iter()
        .enumerate()
        .filter(|(_, d)| d.ha_kwh.is_finite())
        .map(|(i, d)| (i, d.ha_kwh))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#e8871e" stroke-width="2" stroke-dasharray="5,3" points="{}"/>
<polyline fill="none" stroke="#1f6fb2" stroke-width="1.2" points="{}"/>"##,
        line(influx),
        line(ha)
    );
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
