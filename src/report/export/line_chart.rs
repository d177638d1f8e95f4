//! The scan chart: samples/s (mean ± one standard deviation) against the value of
//! the scanned setting, as an inline SVG line chart with error bars. Values are
//! evenly spaced in the order given (1, 2, 4, 8 read as steps, not distances).

use std::fmt::Write;

use super::svg::{escape, short_number};
use crate::report::Comparison;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// One value of the scan; `y` is `None` when that value trained nothing.
pub(crate) struct Point {
    pub label: String,
    pub y: Option<f64>,
    pub error: Option<f64>,
}

/// A line chart of one measure over the scanned values.
pub(crate) struct LineChart {
    pub id: &'static str,
    pub title: String,
    pub x_title: String,
    pub y_unit: String,
    pub points: Vec<Point>,
}

/// The chart of a scan comparison, `None` for an ordinary one.
pub(crate) fn scan_chart(c: &Comparison) -> Option<LineChart> {
    let axis = c.scan.as_ref()?;
    let points = c
        .profiles
        .iter()
        .zip(&axis.values)
        .map(|(p, v)| Point {
            label: v.clone(),
            y: (p.samples.done > 0).then_some(p.samples_per_second.mean),
            error: p.samples_per_second.stddev,
        })
        .collect();
    Some(LineChart {
        id: "chart-scan",
        title: format!(
            "Samples/s against {}: mean over the runs, ± one standard deviation",
            axis.setting
        ),
        x_title: axis.setting.clone(),
        y_unit: "samples/s".into(),
        points,
    })
}

impl LineChart {
    /// The `<svg>` element; each point is a `circle.point` with `data-value`.
    pub fn to_svg(&self) -> String {
        let top_value = self
            .points
            .iter()
            .filter_map(|p| p.y.map(|y| y + p.error.unwrap_or(0.0)))
            .fold(0.0, f64::max);
        let (end, step) = super::svg::axis(top_value);
        let n = self.points.len().max(1);
        let plot_w = WIDTH - LEFT - RIGHT;
        let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
        let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v.max(0.0) / end);
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg id=\"{}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\"><title>{}</title>\
             <text class=\"chart-title\" x=\"0\" y=\"18\">{}</text>",
            self.id,
            escape(&self.title),
            escape(&self.title)
        );
        let ticks = (end / step).round() as usize;
        for i in 0..=ticks {
            let v = step * i as f64;
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\"/>\
                 <text class=\"tick\" x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
                y(v),
                WIDTH - RIGHT,
                LEFT - 6.0,
                y(v) + 4.0,
                short_number(v)
            );
        }
        let _ = write!(
            s,
            "<text class=\"unit\" x=\"{LEFT}\" y=\"{:.1}\">{}</text>\
             <text class=\"unit\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP - 8.0,
            escape(&self.y_unit),
            LEFT + plot_w / 2.0,
            HEIGHT - 8.0,
            escape(&self.x_title)
        );
        let line: Vec<String> = self
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.y.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"scan-line\" fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for (i, p) in self.points.iter().enumerate() {
            self.draw_point(&mut s, p, x(i), &y);
        }
        s.push_str("</svg>");
        s
    }

    fn draw_point(&self, s: &mut String, p: &Point, px: f64, y: &dyn Fn(f64) -> f64) {
        let _ = write!(
            s,
            "<text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            HEIGHT - BOTTOM + 16.0,
            escape(&p.label)
        );
        let Some(v) = p.y else {
            let _ = write!(
                s,
                "<text class=\"value bad\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">n/a</text>",
                y(0.0) - 6.0
            );
            return;
        };
        if let Some(e) = p.error {
            let (lo, hi) = (y((v - e).max(0.0)), y(v + e));
            let _ = write!(
                s,
                "<g class=\"error-bar\"><line x1=\"{px:.1}\" y1=\"{lo:.1}\" x2=\"{px:.1}\" y2=\"{hi:.1}\"/>\
                 <line x1=\"{:.1}\" y1=\"{lo:.1}\" x2=\"{:.1}\" y2=\"{lo:.1}\"/>\
                 <line x1=\"{:.1}\" y1=\"{hi:.1}\" x2=\"{:.1}\" y2=\"{hi:.1}\"/></g>",
                px - 5.0,
                px + 5.0,
                px - 5.0,
                px + 5.0
            );
        }
        let label = match p.error {
            Some(e) => format!("{} ± {}", short_number(v), short_number(e)),
            None => short_number(v),
        };
        let _ = write!(
            s,
            "<circle class=\"point\" data-value=\"{v}\" cx=\"{px:.1}\" cy=\"{0:.1}\" r=\"4\" fill=\"#4e79a7\">\
             <title>{1} = {2}: {3} {4}</title></circle>\
             <text class=\"value\" x=\"{5:.1}\" y=\"{6:.1}\">{3}</text>",
            y(v),
            escape(&self.x_title),
            escape(&p.label),
            escape(&label),
            escape(&self.y_unit),
            px + 7.0,
            y(v) - 6.0
        );
    }
}
