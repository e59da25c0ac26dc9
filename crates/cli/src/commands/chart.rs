//! `check --chart FILE.svg|png`: the chart of [`pwsync_jobs::check::chart`] written to a file;
//! a PNG is that SVG rasterised by resvg, with text in the system's fonts.

use anyhow::{anyhow, bail, Context, Result};
use pwsync_jobs::check::chart::svg;
use pwsync_jobs::CheckReport;
use resvg::{tiny_skia, usvg};
use std::path::Path;

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
