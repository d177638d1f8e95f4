//! The HTML report as headless Chromium renders it: the SVG charts with their bars,
//! the latency distributions, and the explanations (KB read back, idle levels,
//! `--max-runs`, n/a) are in the rendered page; a screenshot is left for a person.

use std::path::Path;
use std::process::Command;

use katotune::report::export::html::HtmlExporter;
use katotune::report::Exporter;

use super::fixture;

const INSTALL: &str = "headless Chromium is needed for this test: install it with \
    `apt-get update && apt-get install -y chromium` (Debian), or put a `chromium` or \
    `chromium-browser` on PATH";

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new(name).arg("--version").output();
        if found.is_ok_and(|out| out.status.success()) {
            return name.to_string();
        }
    }
    panic!("{INSTALL}");
}

fn dump_dom(browser: &str, page: &Path, profile_dir: &Path) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .arg("--dump-dom")
        .arg(page)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {browser}: {e}; {INSTALL}"));
    assert!(
        out.status.success(),
        "{browser} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fixture plus what the report must explain: a run whose engine kept another KB
/// than it answered, a profile that trained nothing, and `--max-runs` reached early.
fn explained() -> katotune::report::Comparison {
    let mut inputs = fixture::inputs();
    let mut idle = inputs[1].clone();
    let check = inputs[1].records[1].kb_check.as_mut().expect("read back");
    check.nodes[0].kb.learns -= 1;
    check.nodes[0].kb.digest = "e".repeat(40);
    inputs[0].max_runs_reached = Some(katotune::report::warnings::MaxRunsReached {
        max_runs: 3,
        measured_seconds: 1.2,
        min_seconds: 3.0,
    });
    idle.profile.name = "trained-nothing".into();
    for r in &mut idle.records {
        r.samples.done = 0;
        r.samples_per_second = 0.0;
        r.calls.latency = Default::default();
    }
    inputs.push(idle);
    katotune::report::Comparison::build(inputs, 0, None, None, fixture::meta())
}

/// Where the screenshot is left for a person to look at.
fn screenshot_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-report.png")
}

fn screenshot(browser: &str, page: &Path, profile_dir: &Path) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args(["--hide-scrollbars", "--window-size=1280,6200"])
        .arg(format!("--screenshot={}", screenshot_path().display()))
        .arg(page)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {browser}: {e}; {INSTALL}"));
    assert!(
        out.status.success(),
        "{browser} failed to take a screenshot"
    );
    eprintln!("screenshot of the report: {}", screenshot_path().display());
}

/// The rendered SVG element with `id`.
fn chart<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("{id} is not in the rendered page"));
    let chart = &dom[start..];
    &chart[..chart.find("</svg>").expect("the chart's svg is closed")]
}

#[test]
fn chromium_renders_the_charts_and_the_explanations() {
    let browser = chromium();
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("compare.html");
    let html = HtmlExporter
        .render(&explained())
        .expect("the comparison renders");
    std::fs::write(&page, html).expect("write page");
    let dom = dump_dom(&browser, &page, &dir.path().join("chromium-profile"));
    let throughput = chart(&dom, "chart-throughput");
    assert_eq!(throughput.matches("<rect class=\"bar").count(), 4);
    assert_eq!(throughput.matches("class=\"error-bar\"").count(), 3);
    assert!(throughput.contains("n/a: trained nothing"));
    // One row per profile with a histogram (5 non-empty buckets each); none for the
    // profile that measured nothing.
    let latency = chart(&dom, "chart-latency-distribution");
    assert_eq!(latency.matches("<rect class=\"hist-bar\"").count(), 15);
    assert_eq!(
        latency.matches("data-profile=\"trained-nothing\"").count(),
        0
    );
    assert!(latency.contains("ms (log scale)"));
    assert_eq!(latency.matches("<line class=\"marker\"").count(), 3 * 3 + 3);
    let patterns = chart(&dom, "chart-patterns");
    assert_eq!(patterns.matches("<rect class=\"bar").count(), 9);
    assert_eq!(patterns.matches("class=\"bar bad\"").count(), 1);
    for text in [
        "DIFFERS (node1) · stores",
        "same KB; repeats disagree · ENGINE ≠ tally (node0)",
        "NO: node0",
        "node2 (baseline, phase3-parallel, broken-batch): fewer than 9 names reached this level",
        "--max-runs 3 reached after 1.20 s",
        "trained-nothing trained no samples",
    ] {
        assert!(dom.contains(text), "the page says `{text}`");
    }
    screenshot(&browser, &page, &dir.path().join("chromium-profile"));
}
