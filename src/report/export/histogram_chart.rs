//! Latency distributions per profile as inline SVG: one row per profile, the share of
//! its requests in each log-spaced bucket of the recorded histograms
//! ([`crate::kato::latency_histogram`]), on one log-scale time axis shared by every
//! row, with the p50, p95 and p99 marked. Each row is scaled to its own tallest
//! bucket, so a profile with few requests keeps its shape.

use std::fmt::Write;

use super::svg::{escape, PALETTE};
use crate::kato::latency_histogram::LatencyHistogram;
use crate::report::Comparison;

const WIDTH: f64 = 900.0;
const LABEL_WIDTH: f64 = 170.0;
const RIGHT_ROOM: f64 = 40.0;
const TITLE_HEIGHT: f64 = 28.0;
const LEGEND_HEIGHT: f64 = 24.0;
const ROW_HEIGHT: f64 = 62.0;
const BAR_ROOM: f64 = 44.0;
const AXIS_HEIGHT: f64 = 30.0;

/// The percentile markers: name and dash pattern.
const MARKERS: [(&str, &str); 3] = [("p50", ""), ("p95", "5 3"), ("p99", "2 2")];

/// One profile's row.
struct Row<'a> {
    name: &'a str,
    series: usize,
    histogram: &'a LatencyHistogram,
    /// p50, p95, p99 in ms.
    marks: [f64; 3],
}

/// The chart, or `None` when no profile has a recorded histogram (older records).
pub(crate) fn latency_distribution(c: &Comparison) -> Option<String> {
    let rows: Vec<Row<'_>> = c
        .profiles
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let l = &p.calls.latency;
            let histogram = l.histogram.as_ref().filter(|h| h.total() > 0)?;
            Some(Row {
                name: &p.name,
                series: i,
                histogram,
                marks: [l.p50_ms, l.p95_ms, l.p99_ms],
            })
        })
        .collect();
    let (lo, hi) = decades(&rows)?;
    let plot = WIDTH - LABEL_WIDTH - RIGHT_ROOM;
    let x = |ms: f64| LABEL_WIDTH + (ms.max(1e-9).log10() - lo) / (hi - lo) * plot;
    let top = TITLE_HEIGHT + LEGEND_HEIGHT;
    let bottom = top + rows.len() as f64 * ROW_HEIGHT;
    let title = "Request latency distribution per profile: share of requests per bucket \
                 (all endpoints, every run), log time axis";
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"chart-latency-distribution\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         role=\"img\" viewBox=\"0 0 {WIDTH} {:.1}\" width=\"100%\"><title>{}</title>\
         <text class=\"chart-title\" x=\"0\" y=\"18\">{}</text>",
        bottom + AXIS_HEIGHT,
        escape(title),
        escape(title)
    );
    legend(&mut s);
    axis(&mut s, lo, hi, top, bottom, &x);
    for (k, row) in rows.iter().enumerate() {
        draw_row(&mut s, row, top + k as f64 * ROW_HEIGHT, &x);
    }
    s.push_str("</svg>");
    Some(s)
}

/// Whole decades of ms covering every non-empty bucket and every marker.
fn decades(rows: &[Row<'_>]) -> Option<(f64, f64)> {
    let bounds = rows.iter().flat_map(|r| r.histogram.buckets_ms());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (a, b, _) in bounds {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    for mark in rows.iter().flat_map(|r| r.marks).filter(|m| *m > 0.0) {
        lo = lo.min(mark);
        hi = hi.max(mark);
    }
    if !lo.is_finite() {
        return None;
    }
    let lo = (lo.log10() + 1e-9).floor();
    let hi = (hi.log10() - 1e-9).ceil().max(lo + 1.0);
    Some((lo, hi))
}

fn legend(s: &mut String) {
    let y = TITLE_HEIGHT + 12.0;
    let mut lx = LABEL_WIDTH;
    for (name, dash) in MARKERS {
        let _ = write!(
            s,
            "<g class=\"legend\"><line class=\"marker\" x1=\"{lx}\" y1=\"{:.1}\" x2=\"{:.1}\" \
             y2=\"{:.1}\" stroke-dasharray=\"{dash}\"/><text x=\"{:.1}\" y=\"{:.1}\">{name}</text></g>",
            y - 5.0,
            lx + 18.0,
            y - 5.0,
            lx + 22.0,
            y
        );
        lx += 70.0;
    }
}

fn axis(s: &mut String, lo: f64, hi: f64, top: f64, bottom: f64, x: &dyn Fn(f64) -> f64) {
    for d in lo as i32..=hi as i32 {
        let ms = 10f64.powi(d);
        let tx = x(ms);
        let label = if ms >= 1.0 {
            format!("{ms:.0}")
        } else {
            format!("{ms}")
        };
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{top:.1}\" x2=\"{tx:.1}\" y2=\"{bottom:.1}\"/>\
             <text class=\"tick\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            bottom + 14.0
        );
    }
    let _ = write!(
        s,
        "<text class=\"unit\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">ms (log scale)</text>",
        WIDTH - RIGHT_ROOM,
        bottom + 27.0
    );
}

fn draw_row(s: &mut String, row: &Row<'_>, y: f64, x: &dyn Fn(f64) -> f64) {
    let total = row.histogram.total() as f64;
    let peak = row
        .histogram
        .counts
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let base = y + BAR_ROOM + 6.0;
    let _ = write!(
        s,
        "<text class=\"group-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} requests</text>\
         <line class=\"grid\" x1=\"{LABEL_WIDTH}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\"/>",
        LABEL_WIDTH - 8.0,
        y + 24.0,
        escape(row.name),
        LABEL_WIDTH - 8.0,
        y + 39.0,
        row.histogram.total(),
        WIDTH - RIGHT_ROOM
    );
    let fill = PALETTE[row.series % PALETTE.len()];
    for (lo, hi, n) in row.histogram.buckets_ms() {
        let height = n as f64 / peak * BAR_ROOM;
        let (x0, x1) = (x(lo), x(hi));
        let _ = write!(
            s,
            "<rect class=\"hist-bar\" data-profile=\"{}\" data-count=\"{n}\" x=\"{x0:.1}\" \
             y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{fill}\">\
             <title>{}: {n} requests ({:.1}%) took {} to {} ms</title></rect>",
            escape(row.name),
            base - height,
            (x1 - x0 - 0.6).max(0.6),
            escape(row.name),
            100.0 * n as f64 / total,
            ms_text(lo),
            ms_text(hi)
        );
    }
    for ((name, dash), ms) in MARKERS.iter().zip(row.marks) {
        let mx = x(ms);
        let _ = write!(
            s,
            "<line class=\"marker\" x1=\"{mx:.1}\" y1=\"{:.1}\" x2=\"{mx:.1}\" y2=\"{base:.1}\" \
             stroke-dasharray=\"{dash}\"><title>{} {name}: {} ms</title></line>",
            y + 2.0,
            escape(row.name),
            ms_text(ms)
        );
    }
}

/// Milliseconds with three significant digits below 100 (`0.0126`, `1.26`, `12.6`).
fn ms_text(v: f64) -> String {
    if v >= 100.0 || v <= 0.0 {
        return format!("{v:.0}");
    }
    let decimals = (2 - v.log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::ms_text;

    #[test]
    fn milliseconds_keep_three_significant_digits() {
        assert_eq!(ms_text(0.012_589), "0.0126");
        assert_eq!(ms_text(1.2589), "1.26");
        assert_eq!(ms_text(12.589), "12.6");
        assert_eq!(ms_text(125.89), "126");
    }
}
