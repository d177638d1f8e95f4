//! Horizontal grouped bar charts as inline SVG, drawn by hand so the HTML report
//! needs no script, font or network: bars with optional error bars, value labels,
//! a value axis with round ticks, and a legend.

use std::fmt::Write;

/// Fill colours of the series (red is kept for problems).
pub(crate) const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac",
];
/// Fill of a bar that shows a problem.
const BAD: &str = "#c62828";

const WIDTH: f64 = 900.0;
const LABEL_WIDTH: f64 = 170.0;
const VALUE_ROOM: f64 = 230.0;
const BAR_HEIGHT: f64 = 16.0;
const BAR_GAP: f64 = 3.0;
const GROUP_GAP: f64 = 14.0;
const TITLE_HEIGHT: f64 = 28.0;
const LEGEND_HEIGHT: f64 = 22.0;
const AXIS_HEIGHT: f64 = 26.0;

/// One bar.
pub(crate) struct Bar {
    /// Index into the chart's series (its colour and legend entry).
    pub series: usize,
    pub value: f64,
    /// Low and high end of an error bar.
    pub error: Option<(f64, f64)>,
    /// Text after the bar, e.g. `12.3 ± 0.4`.
    pub label: String,
    /// Draw it red: it shows a problem.
    pub bad: bool,
}

/// Bars drawn together under one label.
pub(crate) struct Group {
    pub label: String,
    pub bars: Vec<Bar>,
}

/// A chart.
pub(crate) struct BarChart {
    /// Element id, e.g. `chart-throughput`.
    pub id: &'static str,
    pub title: String,
    /// Axis unit, e.g. `samples/s`.
    pub unit: String,
    /// Series names; a legend is drawn when `legend` is set.
    pub series: Vec<String>,
    pub legend: bool,
    pub groups: Vec<Group>,
    /// A log10 value axis (decades), for measures spanning orders of magnitude such
    /// as latency percentiles; bars then start at the decade below the smallest value.
    pub log: bool,
}

/// The value-to-x mapping of a chart and its axis.
enum Scale {
    Linear {
        end: f64,
        step: f64,
    },
    /// Decades from `10^lo` to `10^hi`.
    Log {
        lo: i32,
        hi: i32,
    },
}

impl Scale {
    fn of(values: impl Iterator<Item = f64> + Clone, log: bool) -> Scale {
        let max = values.clone().fold(0.0, f64::max);
        let min = values.filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        if log && max > 0.0 && min.is_finite() {
            let lo = min.log10().floor() as i32;
            let hi = (max.log10().ceil() as i32).max(lo + 1);
            return Scale::Log { lo, hi };
        }
        let (end, step) = axis(max);
        Scale::Linear { end, step }
    }

    /// Where `v` lies between 0 (axis start) and 1 (axis end).
    fn fraction(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear { end, .. } => v.max(0.0) / end,
            Scale::Log { lo, hi } => {
                let l = v.max(10f64.powi(lo)).log10();
                (l - lo as f64) / (hi - lo) as f64
            }
        }
    }

    /// The tick values and their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            Scale::Linear { end, step } => (0..=(end / step).round() as usize)
                .map(|i| step * i as f64)
                .map(|v| (v, tick_text(v, step)))
                .collect(),
            Scale::Log { lo, hi } => (lo..=hi)
                .map(|d| 10f64.powi(d))
                .map(|v| {
                    (
                        v,
                        if v >= 1.0 {
                            format!("{v:.0}")
                        } else {
                            format!("{v}")
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Escapes text for HTML and SVG.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A short number for labels: `1234`, `12.3`, `1.23`.
pub(crate) fn short_number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A tick label with as many decimals as the step needs: `0`, `2.5`, `0.25`.
fn tick_text(v: f64, step: f64) -> String {
    let decimals = (0..3)
        .find(|d| {
            let scaled = step * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-9
        })
        .unwrap_or(3) as usize;
    format!("{v:.decimals$}")
}

/// A round axis end and tick step covering `max`.
pub(crate) fn axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

impl BarChart {
    /// The `<svg>` element.
    pub fn to_svg(&self) -> String {
        let values = self
            .groups
            .iter()
            .flat_map(|g| &g.bars)
            .map(|b| b.error.map_or(b.value, |(_, hi)| hi.max(b.value)));
        let scale = Scale::of(values, self.log);
        let plot = WIDTH - LABEL_WIDTH - VALUE_ROOM;
        let x = |v: f64| LABEL_WIDTH + scale.fraction(v) * plot;
        let top = TITLE_HEIGHT + if self.legend { LEGEND_HEIGHT } else { 0.0 };
        let bars: usize = self.groups.iter().map(|g| g.bars.len().max(1)).sum();
        let body = bars as f64 * (BAR_HEIGHT + BAR_GAP) + self.groups.len() as f64 * GROUP_GAP;
        let height = top + body + AXIS_HEIGHT;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg id=\"{}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
             viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\">\
             <title>{}</title>\
             <text class=\"chart-title\" x=\"0\" y=\"18\">{}</text>",
            self.id,
            escape(&self.title),
            escape(&self.title)
        );
        if self.legend {
            self.draw_legend(&mut s);
        }
        draw_axis(&mut s, &scale.ticks(), top, top + body, &x);
        let _ = write!(
            s,
            "<text class=\"unit\" x=\"{:.1}\" y=\"{:.1}\">{}{}</text>",
            LABEL_WIDTH + plot + 24.0,
            top + body + 14.0,
            escape(&self.unit),
            if matches!(scale, Scale::Log { .. }) {
                " (log scale)"
            } else {
                ""
            }
        );
        let mut y = top;
        for group in &self.groups {
            y = self.draw_group(&mut s, group, y, &x);
        }
        s.push_str("</svg>");
        s
    }

    fn draw_legend(&self, s: &mut String) {
        let mut lx = LABEL_WIDTH;
        for (i, name) in self.series.iter().enumerate() {
            let _ = write!(
                s,
                "<g class=\"legend\"><rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text></g>",
                TITLE_HEIGHT,
                PALETTE[i % PALETTE.len()],
                lx + 16.0,
                TITLE_HEIGHT + 10.5,
                escape(name)
            );
            lx += 28.0 + 7.0 * name.chars().count() as f64;
        }
    }

    fn draw_group(&self, s: &mut String, group: &Group, mut y: f64, x: &dyn Fn(f64) -> f64) -> f64 {
        let rows = group.bars.len().max(1) as f64;
        let middle = y + rows * (BAR_HEIGHT + BAR_GAP) / 2.0;
        let _ = write!(
            s,
            "<text class=\"group-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LABEL_WIDTH - 8.0,
            middle + 4.0,
            escape(&group.label)
        );
        for bar in &group.bars {
            let series = self.series.get(bar.series).map_or("", String::as_str);
            let fill = if bar.bad {
                BAD
            } else {
                PALETTE[bar.series % PALETTE.len()]
            };
            let width = x(bar.value) - LABEL_WIDTH;
            let _ = write!(
                s,
                "<rect class=\"bar{}\" data-series=\"{}\" data-value=\"{}\" x=\"{LABEL_WIDTH}\" \
                 y=\"{y:.1}\" width=\"{width:.1}\" height=\"{BAR_HEIGHT}\" fill=\"{fill}\">\
                 <title>{}: {}</title></rect>",
                if bar.bad { " bad" } else { "" },
                escape(series),
                bar.value,
                escape(&format!("{} {series}", group.label)),
                escape(&bar.label)
            );
            let mut label_x = x(bar.value) + 5.0;
            if let Some((lo, hi)) = bar.error {
                let (x0, x1, cy) = (x(lo), x(hi), y + BAR_HEIGHT / 2.0);
                let _ = write!(
                    s,
                    "<g class=\"error-bar\"><line x1=\"{x0:.1}\" y1=\"{cy:.1}\" x2=\"{x1:.1}\" y2=\"{cy:.1}\"/>\
                     <line x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x0:.1}\" y2=\"{:.1}\"/>\
                     <line x1=\"{x1:.1}\" y1=\"{:.1}\" x2=\"{x1:.1}\" y2=\"{:.1}\"/></g>",
                    cy - 5.0,
                    cy + 5.0,
                    cy - 5.0,
                    cy + 5.0
                );
                label_x = label_x.max(x1 + 5.0);
            }
            let _ = write!(
                s,
                "<text class=\"value{}\" x=\"{label_x:.1}\" y=\"{:.1}\">{}</text>",
                if bar.bad { " bad" } else { "" },
                y + BAR_HEIGHT - 4.0,
                escape(&bar.label)
            );
            y += BAR_HEIGHT + BAR_GAP;
        }
        if group.bars.is_empty() {
            y += BAR_HEIGHT + BAR_GAP;
        }
        y + GROUP_GAP
    }
}

fn draw_axis(
    s: &mut String,
    ticks: &[(f64, String)],
    top: f64,
    bottom: f64,
    x: &dyn Fn(f64) -> f64,
) {
    for (v, label) in ticks {
        let tx = x(*v);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{top:.1}\" x2=\"{tx:.1}\" y2=\"{bottom:.1}\"/>\
             <text class=\"tick\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            escape(label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ends_on_a_round_number_above_the_largest_value() {
        assert_eq!(axis(9.3), (10.0, 2.0));
        assert_eq!(axis(1234.0), (1250.0, 250.0));
        assert_eq!(axis(0.0), (1.0, 0.25));
    }

    #[test]
    fn ticks_show_only_the_decimals_the_step_needs() {
        assert_eq!(tick_text(4.0, 2.0), "4");
        assert_eq!(tick_text(7.5, 2.5), "7.5");
        assert_eq!(tick_text(0.5, 0.25), "0.50");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
