//! The HTML report as headless Chromium renders it: the three SVG charts and their
//! bars are in the rendered page.

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

#[test]
fn chromium_renders_the_three_charts_with_their_bars() {
    let browser = chromium();
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("compare.html");
    let html = HtmlExporter
        .render(&fixture::comparison())
        .expect("the fixture renders");
    std::fs::write(&page, html).expect("write page");
    let dom = dump_dom(&browser, &page, &dir.path().join("chromium-profile"));
    for id in ["chart-throughput", "chart-latency", "chart-patterns"] {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} is not in the rendered page"));
        let chart = &dom[start..];
        let chart = &chart[..chart.find("</svg>").expect("the chart's svg is closed")];
        let bars = chart.matches("<rect class=\"bar").count();
        let expected = match id {
            "chart-throughput" => 3,
            "chart-latency" => 12,
            _ => 9,
        };
        assert_eq!(bars, expected, "{id} has {bars} bars");
        if id == "chart-throughput" {
            assert_eq!(
                chart.matches("class=\"error-bar\"").count(),
                3,
                "error bars"
            );
        }
        if id == "chart-patterns" {
            assert_eq!(
                chart.matches("class=\"bar bad\"").count(),
                1,
                "node1 of broken-batch is red"
            );
        }
    }
    assert!(
        dom.contains("DIFFERS (node1)"),
        "the correctness column is rendered"
    );
}
