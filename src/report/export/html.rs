//! One self-contained HTML file: the shared outline with light CSS, differences in
//! red, and inline SVG charts (throughput with error bars, latency distributions from
//! the recorded histograms, or percentiles for records without them, patterns per
//! node, and a scan's line chart). No script, no font, nothing fetched.

use super::details::node_names;
use super::markup::{ChartKind, Markup, Table, Tone};
use super::svg::{escape, short_number, Bar, BarChart, Group};
use super::{sections, ExportError, Exporter};
use crate::report::correctness::CheckStatus;
use crate::report::Comparison;

/// The HTML report.
#[derive(Debug, Clone, Copy, Default)]
pub struct HtmlExporter;

impl Exporter for HtmlExporter {
    fn render(&self, comparison: &Comparison) -> Result<Vec<u8>, ExportError> {
        let mut doc = Html::default();
        sections::document(&mut doc, comparison);
        let page = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>katotune comparison: {}</title>\n<style>{STYLE}</style>\n</head>\n\
             <body>\n<main>\n{}</main>\n</body>\n</html>\n",
            escape(&comparison.reference),
            doc.body
        );
        Ok(page.into_bytes())
    }
}

const STYLE: &str = "
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 20px 0 8px; }
div.table { overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
td:first-child { white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
tr:nth-child(even) td { background: #fbfcfd; }
.num { text-align: right; white-space: nowrap; }
.bad { color: #c62828; font-weight: 600; }
.good { color: #1a7f37; }
.warn { color: #9a6700; }
p.bad, li.bad { background: #ffebe9; border-left: 3px solid #c62828; padding: 6px 10px; }
p.good { background: #dafbe1; border-left: 3px solid #1a7f37; padding: 6px 10px; }
p.warn { background: #fff8c5; border-left: 3px solid #9a6700; padding: 6px 10px; }
figure { margin: 10px 0 18px; }
svg.chart { max-width: 100%; height: auto; font-size: 12px; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: #1f2328; }
svg .grid { stroke: #e5e8eb; }
svg .tick, svg .unit { fill: #57606a; font-size: 11px; }
svg .group-label { fill: #1f2328; }
svg .value { fill: #1f2328; }
svg .value.bad { fill: #c62828; font-weight: 600; }
svg .error-bar line { stroke: #1f2328; stroke-width: 1.4; }
svg .legend text { fill: #1f2328; }
svg .marker { stroke: #1f2328; stroke-width: 1.3; }
";

#[derive(Default)]
struct Html {
    body: String,
}

fn class(tone: Tone) -> &'static str {
    match tone {
        Tone::Plain => "",
        Tone::Good => "good",
        Tone::Bad => "bad",
        Tone::Warn => "warn",
    }
}

fn class_attr(classes: &[&str]) -> String {
    let classes: Vec<&str> = classes.iter().copied().filter(|c| !c.is_empty()).collect();
    if classes.is_empty() {
        String::new()
    } else {
        format!(" class=\"{}\"", classes.join(" "))
    }
}

impl Markup for Html {
    fn heading(&mut self, level: usize, text: &str) {
        let level = level.clamp(1, 6);
        self.body
            .push_str(&format!("<h{level}>{}</h{level}>\n", escape(text)));
    }

    fn paragraph(&mut self, text: &str, tone: Tone) {
        self.body.push_str(&format!(
            "<p{}>{}</p>\n",
            class_attr(&[class(tone)]),
            escape(text)
        ));
    }

    fn list(&mut self, items: &[(String, Tone)]) {
        self.body.push_str("<ul>\n");
        for (text, tone) in items {
            self.body.push_str(&format!(
                "<li{}>{}</li>\n",
                class_attr(&[class(*tone)]),
                escape(text)
            ));
        }
        self.body.push_str("</ul>\n");
    }

    fn table(&mut self, table: &Table) {
        self.body
            .push_str("<div class=\"table\"><table>\n<thead><tr>");
        for c in &table.columns {
            let num = if c.numeric { "num" } else { "" };
            self.body.push_str(&format!(
                "<th{}>{}</th>",
                class_attr(&[num]),
                escape(&c.title)
            ));
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for row in &table.rows {
            self.body.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let num = table.columns.get(i).is_some_and(|c| c.numeric);
                self.body.push_str(&format!(
                    "<td{}>{}</td>",
                    class_attr(&[if num { "num" } else { "" }, class(cell.tone)]),
                    escape(&cell.text)
                ));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody>\n</table></div>\n");
    }

    fn chart(&mut self, kind: ChartKind, comparison: &Comparison) {
        if kind == ChartKind::Scan {
            if let Some(chart) = super::line_chart::scan_chart(comparison) {
                self.body
                    .push_str(&format!("<figure>{}</figure>\n", chart.to_svg()));
            }
            return;
        }
        if kind == ChartKind::Latency {
            if let Some(svg) = super::histogram_chart::latency_distribution(comparison) {
                self.body.push_str(&format!("<figure>{svg}</figure>\n"));
                return;
            }
        }
        let chart = match kind {
            ChartKind::Scan => return,
            ChartKind::Throughput => throughput_chart(comparison),
            ChartKind::Latency => latency_chart(comparison),
            ChartKind::Patterns => patterns_chart(comparison),
        };
        self.body
            .push_str(&format!("<figure>{}</figure>\n", chart.to_svg()));
    }
}

fn throughput_chart(c: &Comparison) -> BarChart {
    let groups = c
        .profiles
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let s = &p.samples_per_second;
            let trained = p.samples.done > 0;
            Group {
                label: p.name.clone(),
                bars: vec![Bar {
                    series: i,
                    value: if trained { s.mean } else { 0.0 },
                    error: s
                        .stddev
                        .filter(|_| trained)
                        .map(|sd| ((s.mean - sd).max(0.0), s.mean + sd)),
                    label: match trained {
                        true => format!(
                            "{}/s ({}x)",
                            s.display(2),
                            super::sections::relative_text(p)
                        ),
                        false => "n/a: trained nothing".into(),
                    },
                    bad: p.correctness.status == CheckStatus::Differs,
                }],
            }
        })
        .collect();
    BarChart {
        id: "chart-throughput",
        title: "Throughput: mean samples/s over the repeats, ± one standard deviation".into(),
        unit: "samples/s".into(),
        series: c.profiles.iter().map(|p| p.name.clone()).collect(),
        legend: false,
        groups,
        log: false,
    }
}

/// Percentiles per profile, for records without histograms (before record version 2).
fn latency_chart(c: &Comparison) -> BarChart {
    let groups = c
        .profiles
        .iter()
        .filter(|p| p.calls.latency.samples > 0)
        .map(|p| {
            let l = &p.calls.latency;
            let values = [l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms];
            Group {
                label: p.name.clone(),
                bars: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Bar {
                        series: i,
                        value: *v,
                        error: None,
                        label: format!("{} ms", short_number(*v)),
                        bad: false,
                    })
                    .collect(),
            }
        })
        .collect();
    BarChart {
        id: "chart-latency",
        title: "Request latency per profile (log scale: percentiles stay visible next to max)"
            .into(),
        unit: "ms".into(),
        series: ["p50", "p95", "p99", "max"].map(String::from).to_vec(),
        legend: true,
        groups,
        log: true,
    }
}

fn patterns_chart(c: &Comparison) -> BarChart {
    let groups = node_names(c)
        .into_iter()
        .map(|node| Group {
            bars: c
                .profiles
                .iter()
                .enumerate()
                .filter(|(_, p)| p.samples.done > 0)
                .filter_map(|(i, p)| {
                    let n = p.nodes.iter().find(|n| n.node == node)?;
                    Some(Bar {
                        series: i,
                        value: n.learns as f64,
                        error: None,
                        label: format!("{} learns, {} distinct", n.learns, n.distinct),
                        bad: p.correctness.differences.iter().any(|d| d.node == node),
                    })
                })
                .collect(),
            label: node,
        })
        .collect();
    BarChart {
        id: "chart-patterns",
        title: "Patterns learned per node (red: differs from the reference)".into(),
        unit: "learns".into(),
        series: c.profiles.iter().map(|p| p.name.clone()).collect(),
        legend: true,
        groups,
        log: false,
    }
}
