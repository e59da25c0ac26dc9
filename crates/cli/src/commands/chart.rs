//! `check --chart FILE.svg|png`: daily energy of each statistic, HA versus InfluxDB, one panel
//! per statistic. Plain SVG written here (no plotting dependency): two polylines per panel; a
//! PNG is that SVG rasterised by resvg, with text in the system's fonts.

use anyhow::{anyhow, bail, Context, Result};
use pwsync_jobs::check::StatisticCheck;
use pwsync_jobs::CheckReport;
use resvg::{tiny_skia, usvg};
use std::fmt::Write as _;
use std::path::Path;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const PLOT: f64 = 120.0;

/// The chart formats pwsync writes, from the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

/// The format of `path`, or a one-line refusal, before any work is done.
pub fn validate_path(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
        Some(e) if e.eq_ignore_ascii_case("png") => Ok(Format::Png),
        _ => bail!(
            "--chart {}: pwsync draws SVG or PNG charts: pass a file name ending in .svg or .png",
            path.display()
        ),
    }
}

pub fn write(path: &Path, report: &CheckReport) -> Result<()> {
    let svg = svg(report);
    let bytes = match validate_path(path)? {
        Format::Svg => svg.into_bytes(),
        Format::Png => png(&svg)?,
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Rasterise `svg` at its own size.
fn png(svg: &str) -> Result<Vec<u8>> {
    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    match sans_serif_family(fonts) {
        Some(family) => fonts.set_sans_serif_family(family),
        None => tracing::warn!(
            "no system fonts found: the PNG chart has lines but no text (install a font package, \
             e.g. fonts-dejavu-core, or write .svg)"
        ),
    }
    let tree = usvg::Tree::from_str(svg, &options).context("rendering the chart")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| anyhow!("the chart has no area ({size:?})"))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("encoding the chart as PNG")
}

/// A sans-serif family the system has: a common one if present, else any.
fn sans_serif_family(fonts: &usvg::fontdb::Database) -> Option<String> {
    let families: Vec<String> = fonts
        .faces()
        .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
        .collect();
    [
        "DejaVu Sans",
        "Liberation Sans",
        "Noto Sans",
        "Arial",
        "Helvetica",
    ]
    .iter()
    .find(|want| families.iter().any(|f| f == *want))
    .map(|f| f.to_string())
    .or_else(|| families.into_iter().next())
}

pub(crate) fn svg(report: &CheckReport) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_and_png_are_accepted_and_nothing_else() {
        assert_eq!(validate_path(Path::new("out.svg")).unwrap(), Format::Svg);
        assert_eq!(validate_path(Path::new("OUT.PNG")).unwrap(), Format::Png);
        for bad in ["out.jpg", "out"] {
            let e = validate_path(Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains(".svg or .png"), "{e}");
        }
    }
}
