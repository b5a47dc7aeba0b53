//! The dashboard's charts: counts per time bucket, stacked by series, drawn on the server with
//! plotters as SVG and placed inline in the page (no script; colours are SVG attributes, which
//! the page's CSP allows, not inline styles). The legend is HTML beside it.

use maud::{html, Markup};
use plotters::prelude::*;

const FONT: &str = "sans-serif";

/// One stacked series: its name and colour.
pub struct Series {
    pub name: &'static str,
    pub color: RGBColor,
}

/// A series.
pub const fn series(name: &'static str, color: RGBColor) -> Series {
    Series { name, color }
}

/// Each kind of request has its colour in every chart (those of the evidence report's
/// timeline), and so does each level.
pub const PAGES: RGBColor = RGBColor(0x4c, 0x6a, 0x92);
pub const SITE_IMAGES: RGBColor = RGBColor(0x3a, 0x9e, 0x8f);
pub const ASSETS: RGBColor = RGBColor(0xb8, 0xc4, 0xd4);
pub const ROBOTS: RGBColor = RGBColor(0xe0, 0xa1, 0x2c);
pub const CANARIES: RGBColor = RGBColor(0xc8, 0x3e, 0x3a);
pub const TRAPS: RGBColor = RGBColor(0x8a, 0x5a, 0xa8);
pub const OTHER: RGBColor = RGBColor(0x9c, 0xa3, 0xaf);
pub const WATCH: RGBColor = RGBColor(0xd9, 0xa4, 0x06);
pub const SUSPECT: RGBColor = RGBColor(0xea, 0x6c, 0x0c);
pub const HARVESTER: RGBColor = RGBColor(0xb9, 0x1c, 0x1c);

/// Counts per bucket, one value per series, with the buckets' start times.
pub struct Bars<'a> {
    pub series: &'a [Series],
    pub starts: Vec<i64>,
    pub values: Vec<Vec<u64>>,
    /// How a bucket's start is written under the axis.
    pub tick: fn(i64) -> String,
    /// What the chart shows, for screen readers.
    pub label: String,
}

/// Stacked bars as an inline SVG element drawn at `(width, height)`; it scales to the width
/// of its box (draw a chart for a half-width box half as wide, so its text stays readable).
pub fn stacked(bars: &Bars, (width, height): (u32, u32)) -> String {
    let n = bars.starts.len().max(1);
    let totals = bars.values.iter().map(|v| v.iter().sum::<u64>());
    let top = crate::evidence::report::axis_max(totals.max().unwrap_or(0));
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let label = (FONT, 15).into_font().color(&RGBColor(0x4b, 0x55, 0x63));
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(20)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..n as f64, 0f64..top as f64)?;
        let every = n.div_ceil((width / 120).max(2) as usize).max(1);
        let tick = |v: &f64| {
            let i = v.round() as usize;
            match bars.starts.get(i) {
                Some(&ms) if i.is_multiple_of(every) && (*v - i as f64).abs() < 1e-6 => {
                    (bars.tick)(ms)
                }
                _ => String::new(),
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&tick)
            .y_labels(5)
            .y_label_formatter(&|v: &f64| super::layout::int(v.round().max(0.0) as u64))
            .label_style(label)
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(0xe5, 0xe7, 0xeb))
            .axis_style(RGBColor(0x9c, 0xa3, 0xaf))
            .draw()?;
        for (i, values) in bars.values.iter().enumerate() {
            let mut low = 0u64;
            for (v, s) in values.iter().zip(bars.series) {
                if *v == 0 {
                    continue;
                }
                chart.draw_series(std::iter::once(Rectangle::new(
                    [
                        (i as f64 + 0.1, low as f64),
                        (i as f64 + 0.9, (low + v) as f64),
                    ],
                    s.color.filled(),
                )))?;
                low += v;
            }
        }
        root.present()?;
        Ok(())
    })();
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "a dashboard chart could not be drawn");
        return String::new();
    }
    responsive(&svg, (width, height), &bars.label)
}

/// Makes the root element scale with the page and names what it shows.
fn responsive(svg: &str, (width, height): (u32, u32), label: &str) -> String {
    let body = svg.find('>').map(|end| &svg[end + 1..]).unwrap_or_default();
    let label = maud::html! { (label) }.into_string();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         class=\"plot\" role=\"img\" aria-label=\"{label}\">{body}"
    )
}

/// The legend: a swatch and a name per series, with each series' total.
pub fn legend(series: &[Series], totals: &[u64]) -> Markup {
    html! {
        ul.legend {
            @for (s, t) in series.iter().zip(totals) {
                li {
                    svg.swatch viewBox="0 0 10 10" aria-hidden="true" {
                        rect width="10" height="10" rx="2"
                            fill=(format!("#{:02x}{:02x}{:02x}", s.color.0, s.color.1, s.color.2)) {}
                    }
                    (s.name) " " span.count { (super::layout::int(*t)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [Series; 2] = [
        Series {
            name: "a",
            color: RGBColor(1, 2, 3),
        },
        Series {
            name: "b",
            color: RGBColor(4, 5, 6),
        },
    ];

    #[test]
    fn bars_are_one_inline_svg_that_scales_and_carries_no_style_attribute() {
        let bars = Bars {
            series: &S,
            starts: vec![0, 60_000, 120_000],
            values: vec![vec![1, 2], vec![0, 0], vec![5, 0]],
            tick: |ms| format!("t{ms}"),
            label: "requests \"per\" <minute>".into(),
        };
        let svg = stacked(&bars, (960, 240));
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 960 240\"")
        );
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("style="), "CSP forbids inline styles");
        assert!(svg.contains("aria-label=\"requests &quot;per&quot; &lt;minute&gt;\""));
        // Three bars' worth of rectangles: 1 + 2 (first bucket) and 5 (third).
        assert!(svg.contains("#010203") && svg.contains("#040506"));
        assert!(svg.contains(">\nt0\n<") && svg.contains(">\nt120000\n<"));
    }
}
