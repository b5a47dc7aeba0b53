//! The timeline chart: requests per bucket, stacked by kind, drawn with plotters as SVG, the
//! same picture in the PDF and the HTML. Labels are plain SVG text in Libertinus Serif, which
//! Typst draws from its embedded fonts and a browser replaces by its own serif.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::fmt;
use super::model::{Bucket, Report};
use super::{Lang, ReportError};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 360;
const FONT: &str = "Libertinus Serif";

struct Series {
    fr: &'static str,
    en: &'static str,
    color: RGBColor,
    value: fn(&Bucket) -> u64,
}

const SERIES: [Series; 6] = [
    Series {
        fr: "Pages",
        en: "Pages",
        color: RGBColor(0x4c, 0x6a, 0x92),
        value: |b| b.pages,
    },
    Series {
        fr: "Images du site",
        en: "Site images",
        color: RGBColor(0x3a, 0x9e, 0x8f),
        value: |b| b.site_images,
    },
    Series {
        fr: "Canaris",
        en: "Canaries",
        color: RGBColor(0xc8, 0x3e, 0x3a),
        value: |b| b.canaries,
    },
    Series {
        fr: "Galeries pièges",
        en: "Traps",
        color: RGBColor(0x8a, 0x5a, 0xa8),
        value: |b| b.traps,
    },
    Series {
        fr: "robots.txt",
        en: "robots.txt",
        color: RGBColor(0xe0, 0xa1, 0x2c),
        value: |b| b.robots,
    },
    Series {
        fr: "Autres",
        en: "Other",
        color: RGBColor(0xa8, 0xa8, 0xa8),
        value: |b| b.other,
    },
];

fn total(b: &Bucket) -> u64 {
    SERIES.iter().map(|s| (s.value)(b)).sum()
}

/// A round axis top a little above the tallest bar, on a 1-2-5 step of about a fifth of it.
pub fn axis_max(max: u64) -> u64 {
    let target = (max.max(1) as f64 * 1.1).max(2.0);
    let raw = target / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(mag * 10.0);
    let step = step.max(1.0);
    ((target / step).ceil() * step) as u64
}

/// The timeline of `report` as an SVG document (UTF-8 text).
pub fn chart_svg(report: &Report, lang: Lang) -> Result<String, ReportError> {
    let err = |e: &dyn std::fmt::Display| ReportError::Chart(e.to_string());
    let buckets = &report.timeline;
    let n = buckets.len().max(1);
    let top = axis_max(buckets.iter().map(total).max().unwrap_or(0));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (legend, plot) = root.split_vertically(40);

        let mut x = 70i32;
        let legend_font = (FONT, 19).into_font().color(&BLACK);
        for s in &SERIES {
            let name = match lang {
                Lang::Fr => s.fr,
                Lang::En => s.en,
            };
            legend
                .draw(&Rectangle::new([(x, 12), (x + 16, 28)], s.color.filled()))
                .map_err(|e| err(&e))?;
            legend
                .draw(&Text::new(
                    name,
                    (x + 22, 20),
                    legend_font.pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(|e| err(&e))?;
            x += 40 + (name.chars().count() as i32) * 9;
        }

        let label = (FONT, 18).into_font();
        let mut chart = ChartBuilder::on(&plot)
            .margin_right(40)
            .margin_top(6)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, 0f64..top as f64)
            .map_err(|e| err(&e))?;
        let every = n.div_ceil(8).max(1);
        let spanned = match (buckets.first(), buckets.last()) {
            (Some(a), Some(b)) => b.end_ms - a.start_ms,
            _ => 0,
        };
        // Minutes apart at most: the ticks need their seconds to differ.
        let clock = if spanned < 30 * 60_000 {
            fmt::clock_seconds
        } else {
            fmt::clock
        };
        let x_fmt = |v: &f64| {
            let i = v.round() as usize;
            match buckets.get(i) {
                Some(b) if i.is_multiple_of(every) => clock(b.start_ms),
                None if i == n => buckets.last().map(|b| clock(b.end_ms)).unwrap_or_default(),
                _ => String::new(),
            }
        };
        let y_fmt = |v: &f64| fmt::int(lang, v.round().max(0.0) as u64);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&x_fmt)
            .y_labels(6)
            .y_label_formatter(&y_fmt)
            .y_desc(match lang {
                Lang::Fr => "Requêtes",
                Lang::En => "Requests",
            })
            .x_desc("UTC")
            .label_style(label.clone())
            .axis_desc_style(label)
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(0xe2, 0xe6, 0xeb))
            .draw()
            .map_err(|e| err(&e))?;

        for (i, b) in buckets.iter().enumerate() {
            let mut low = 0u64;
            for s in &SERIES {
                let v = (s.value)(b);
                if v == 0 {
                    continue;
                }
                let x0 = i as f64 + 0.12;
                let x1 = i as f64 + 0.88;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, low as f64), (x1, (low + v) as f64)],
                        s.color.filled(),
                    )))
                    .map_err(|e| err(&e))?;
                low += v;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::axis_max;

    #[test]
    fn axis_top_is_round_and_above_the_bars() {
        assert_eq!(axis_max(0), 2);
        assert_eq!(axis_max(9), 10);
        assert_eq!(axis_max(10), 15);
        assert_eq!(axis_max(23), 30);
        assert_eq!(axis_max(180), 200);
    }
}
