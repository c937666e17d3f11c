//! The report's charts as inline SVG, drawn with plotters' SVG backend (no fonts loaded:
//! text is SVG `<text>` the browser sets, so the page needs nothing from outside).
//!
//! Each function returns one `<svg>` element. Sizes are fixed (the page is for reading,
//! not for print), colours come from one small palette.

use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::prelude::*;

use crate::error::{Error, Result};

/// The palette: bars and lines, failures, the random-model diagonal.
const BLUE: RGBColor = RGBColor(49, 104, 172);
const RED: RGBColor = RGBColor(196, 58, 49);
const GREY: RGBColor = RGBColor(150, 150, 150);

const FONT: &str = "sans-serif";

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("drawing a report chart: {e}"))
}

/// A vertical bar chart of `values` over categorical `labels` (every `label_every`-th label
/// shown, so long month axes stay readable).
pub fn bars(
    labels: &[String],
    values: &[f64],
    y_desc: &str,
    label_every: usize,
    size: (u32, u32),
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (lo, hi) = value_range(values);
        let n = labels.len().max(1) as u32;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d((0u32..n).into_segmented(), lo..hi)
            .map_err(draw_err)?;
        let every = label_every.max(1) as u32;
        let fmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if i % every == 0 => {
                labels.get(*i as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len())
            .x_label_formatter(&fmt)
            .y_desc(y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let i = i as u32;
                let color = if *v < 0.0 { RED } else { BLUE };
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 2, 2);
                r
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// A horizontal bar chart (one row per label, longest labels on the left), each bar
/// coloured by `failed`.
pub fn hbars(
    labels: &[String],
    values: &[f64],
    failed: &[bool],
    x_desc: &str,
    width: u32,
) -> Result<String> {
    let mut svg = String::new();
    let n = labels.len().max(1) as u32;
    let height = 60 + 26 * n;
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let hi = values.iter().copied().fold(0.0f64, f64::max).max(1e-9) * 1.1;
        let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size((longest * 7 + 12).min(width / 2))
            .build_cartesian_2d(0.0..hi, (0u32..n).into_segmented())
            .map_err(draw_err)?;
        // Row 0 at the top: the first label is the first row.
        let fmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if *i < n => labels
                .get((n - 1 - i) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(labels.len())
            .y_label_formatter(&fmt)
            .x_desc(x_desc)
            .x_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(k, v)| {
                let row = n - 1 - k as u32;
                let color = if failed.get(k).copied().unwrap_or(false) {
                    RED
                } else {
                    BLUE
                };
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row)),
                        (*v, SegmentValue::Exact(row + 1)),
                    ],
                    color.filled(),
                );
                r.set_margin(3, 3, 0, 0);
                r
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Estimates with their intervals, one row per label (a forest plot): a dot at the estimate,
/// a line from low to high, and a grey line at 0; rows whose interval excludes 0 in red when
/// below it. `rows` are (label, estimate, low, high).
pub fn intervals(rows: &[(String, f64, f64, f64)], x_desc: &str, width: u32) -> Result<String> {
    let mut svg = String::new();
    let n = rows.len().max(1) as u32;
    let height = 60 + 24 * n;
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let lo = rows.iter().map(|r| r.2).fold(0.0f64, f64::min);
        let hi = rows.iter().map(|r| r.3).fold(0.0f64, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let longest = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(4) as u32;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size((longest * 7 + 12).min(width / 2))
            // n − 1 as the last value: a segmented range has one segment per value.
            .build_cartesian_2d(lo - pad..hi + pad, (0u32..n - 1).into_segmented())
            .map_err(draw_err)?;
        let fmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if *i < n => rows
                .get((n - 1 - i) as usize)
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&fmt)
            .x_desc(x_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        let zero = [(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(n))];
        chart
            .draw_series(std::iter::once(PathElement::new(zero, GREY)))
            .map_err(draw_err)?;
        for (k, (_, estimate, low, high)) in rows.iter().enumerate() {
            let row = SegmentValue::CenterOf(n - 1 - k as u32);
            let color = if *high < 0.0 { RED } else { BLUE };
            chart
                .draw_series([
                    PathElement::new(
                        vec![(*low, row.clone()), (*high, row.clone())],
                        color.stroke_width(2),
                    )
                    .into_dyn(),
                    Circle::new((*estimate, row), 4, color.filled()).into_dyn(),
                ])
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Lines on the unit square (ROC curves, cumulative gains): `series` in blue, and a grey
/// dashed diagonal for the random model.
pub fn unit_lines(
    series: &[(f64, f64)],
    x_desc: &str,
    y_desc: &str,
    legend: &str,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                5,
                5,
                GREY.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label("random")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREY));
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(legend)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Two lines over a shared x axis (actual in blue, expected in grey dashes, named by
/// `labels`), e.g. cumulative purchases week by week.
pub fn two_lines(
    actual: &[(f64, f64)],
    expected: &[(f64, f64)],
    labels: (&str, &str),
    x_desc: &str,
    y_desc: &str,
) -> Result<String> {
    let mut svg = String::new();
    let x_max = actual
        .iter()
        .chain(expected)
        .map(|p| p.0)
        .fold(1.0, f64::max);
    let y_max = actual
        .iter()
        .chain(expected)
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.05;
    {
        let root = SVGBackend::with_string(&mut svg, (720, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(DashedLineSeries::new(
                expected.iter().copied(),
                6,
                4,
                GREY.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(labels.1)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREY.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                actual.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(labels.0)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The series' legend in a white box at `at`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .border_style(GREY)
        .background_style(WHITE)
        .label_font((FONT, 12))
        .draw()
        .map_err(draw_err)
}

/// A heat map of `counts[row][col]` with the count written in each cell; rows are drawn top
/// to bottom in the given order.
pub fn heat_map(
    counts: &[Vec<u64>],
    row_labels: &[String],
    col_labels: &[String],
    x_desc: &str,
    y_desc: &str,
) -> Result<String> {
    let mut svg = String::new();
    let (rows, cols) = (row_labels.len() as u32, col_labels.len() as u32);
    {
        let root = SVGBackend::with_string(&mut svg, (460, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((0u32..cols).into_segmented(), (0u32..rows).into_segmented())
            .map_err(draw_err)?;
        let xfmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) => col_labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let yfmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if *i < rows => row_labels
                .get((rows - 1 - i) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(col_labels.len())
            .y_labels(row_labels.len())
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
        let mut cells = Vec::new();
        for (r, row) in counts.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let y = rows - 1 - r as u32;
                let t = v as f64 / max;
                // From near-white to the palette's blue.
                let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
                let color = RGBColor(mix(245, BLUE.0), mix(247, BLUE.1), mix(250, BLUE.2));
                cells.push((c as u32, y, v, color, t > 0.55));
            }
        }
        chart
            .draw_series(cells.iter().map(|&(c, y, _, color, _)| {
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                    ],
                    color.filled(),
                );
                r.set_margin(1, 1, 1, 1);
                r
            }))
            .map_err(draw_err)?;
        chart
            .draw_series(cells.iter().map(|&(c, y, v, _, dark)| {
                let ink = if dark { WHITE } else { BLACK };
                Text::new(
                    v.to_string(),
                    (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                    (FONT, 13)
                        .into_font()
                        .color(&ink)
                        .pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        )),
                )
            }))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The y range of a bar chart: from min(0, min) to max(0, max), padded.
fn value_range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(0.0f64, f64::min);
    let hi = values.iter().copied().fold(0.0f64, f64::max);
    let pad = (hi - lo).max(1e-9) * 0.08;
    (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad)
}

/// 1234567 → "1.2M", 12345 → "12k", 12.5 → "12.5".
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_elements_with_their_labels() {
        let labels: Vec<String> = ["2024-01", "2024-02", "2024-03"].map(String::from).to_vec();
        let svg = bars(&labels, &[10.0, -2.0, 30.5], "revenue", 1, (600, 300)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("2024-02") && svg.contains("revenue"));
        let svg = hbars(&labels, &[1.0, 2.0, 3.0], &[false, true, false], "s", 500).unwrap();
        assert!(svg.contains("2024-03"));
        let svg = unit_lines(
            &[(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)],
            "fpr",
            "tpr",
            "AUC 0.8",
        )
        .unwrap();
        assert!(svg.contains("AUC 0.8"));
        let counts = vec![vec![1, 2], vec![3, 40]];
        let two: Vec<String> = vec!["1".into(), "2".into()];
        let svg = heat_map(&counts, &two, &two, "F", "R").unwrap();
        assert!(svg.contains(">\n40\n<"));
        assert_eq!(short_number(1_234_567.0), "1.2M");
        assert_eq!(short_number(12.5), "12.50");
    }
}
