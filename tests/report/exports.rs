//! Every exporter, snapshotted from the fixed fixture, and the export files.

use katotune::profile::schema::ReportFormat;
use katotune::report::export::csv::CsvExporter;
use katotune::report::export::html::HtmlExporter;
use katotune::report::export::json::JsonExporter;
use katotune::report::export::markdown::MarkdownExporter;
use katotune::report::export::table::TerminalTable;
use katotune::report::{Comparison, ExportSet, Exporter};

use super::fixture;

fn render(exporter: &dyn Exporter, c: &Comparison) -> String {
    let bytes = exporter.render(c).expect("the fixture renders");
    String::from_utf8(bytes).expect("exports are UTF-8")
}

/// The export with profile hashes replaced by placeholders, so a new profile field
/// elsewhere in katotune does not churn every snapshot (the schema test still checks
/// the full document).
fn stable(mut text: String, c: &Comparison) -> String {
    for p in &c.profiles {
        text = text.replace(&p.hash, &format!("[hash of {}]", p.name));
        text = text.replace(&p.learning_hash, "[learning hash]");
    }
    text
}

/// The JSON export with each resolved profile replaced by a placeholder, for the
/// same reason.
fn stable_json(c: &Comparison) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&render(&JsonExporter, c)).expect("the export is JSON");
    for p in value["profiles"].as_array_mut().into_iter().flatten() {
        p["resolved"] = "[resolved profile]".into();
    }
    stable(serde_json::to_string_pretty(&value).expect("json"), c)
}

/// The fixture gated against a baseline where phase3-parallel was faster, so the
/// snapshots show a regression section too.
fn gated() -> Comparison {
    let mut earlier = fixture::inputs();
    for r in &mut earlier[1].records {
        r.samples_per_second *= 1.5;
    }
    let baseline = Comparison::build(earlier, 0, None, None, fixture::meta());
    Comparison::build(
        fixture::inputs(),
        0,
        Some(&baseline),
        Some(0.10),
        fixture::meta(),
    )
}

#[test]
fn json_export_snapshot() {
    let c = gated();
    insta::assert_snapshot!(stable_json(&c));
}

#[test]
fn csv_export_snapshot() {
    let c = gated();
    insta::assert_snapshot!(stable(render(&CsvExporter, &c), &c));
}

#[test]
fn markdown_export_snapshot() {
    let c = gated();
    insta::assert_snapshot!(stable(render(&MarkdownExporter, &c), &c));
}

#[test]
fn html_export_snapshot() {
    let c = gated();
    insta::assert_snapshot!(stable(render(&HtmlExporter, &c), &c));
}

#[test]
fn terminal_table_snapshot() {
    let c = gated();
    insta::assert_snapshot!(stable(
        render(
            &TerminalTable {
                colour: false,
                width: None
            },
            &c
        ),
        &c
    ));
}

#[test]
fn markdown_names_the_differing_node_and_its_example_names() {
    let md = render(&MarkdownExporter, &fixture::comparison());
    assert!(md.contains("### broken-batch vs baseline"), "{md}");
    assert!(md.contains("| **node1** |"), "{md}");
    // Pipes are escaped inside Markdown table cells.
    let example = "| node1 | **PTRN\\|9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3** | **2** | 1 |";
    assert!(md.contains(example), "{md}");
    assert!(md.contains("| **4** |"), "four names differ: {md}");
    assert!(md.contains("**DIFFERS (node1) · stores**"), "{md}");
}

#[test]
fn html_marks_differences_red() {
    let html = render(&HtmlExporter, &fixture::comparison());
    assert!(
        html.contains("<td class=\"bad\">DIFFERS (node1) · stores</td>"),
        "{html}"
    );
    assert!(
        html.contains("class=\"bar bad\""),
        "the differing node's bar is red"
    );
    assert!(!html.contains("<script"), "no script");
    for fetch in ["src=", "href=", "<link", "@import", "url("] {
        assert!(
            !html.contains(fetch),
            "the page must not load anything: found {fetch}"
        );
    }
}

#[test]
fn terminal_table_colours_differences_red_only_when_asked() {
    let c = fixture::comparison();
    let coloured = render(
        &TerminalTable {
            colour: true,
            width: None,
        },
        &c,
    );
    assert!(
        coloured.contains("\u{1b}[31mKB DIFFERS: broken-batch node1 vs baseline: 4 names differ")
    );
    let plain = render(
        &TerminalTable {
            colour: false,
            width: None,
        },
        &c,
    );
    assert!(!plain.contains('\u{1b}'), "{plain}");
    assert!(
        plain.contains("KB DIFFERS: broken-batch node1 vs baseline: 4 names differ, learns 4 vs 2")
    );
}

#[test]
fn export_set_writes_every_format_and_rewrites_atomically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let set = ExportSet::in_dir(
        dir.path(),
        "compare",
        &[
            ReportFormat::Json,
            ReportFormat::Csv,
            ReportFormat::Markdown,
            ReportFormat::Html,
        ],
    );
    let mut partial = fixture::inputs();
    partial.truncate(1);
    set.write(&Comparison::build(partial, 0, None, None, fixture::meta()))
        .expect("first write");
    let first_csv = std::fs::read_to_string(dir.path().join("compare.csv")).expect("csv");
    assert_eq!(first_csv.lines().count(), 2, "header and one profile");
    set.write(&fixture::comparison()).expect("second write");
    let csv = std::fs::read_to_string(dir.path().join("compare.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 4, "header and three profiles");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["compare.csv", "compare.html", "compare.json", "compare.md"],
        "no temp files left"
    );
}

#[test]
fn export_to_a_missing_folder_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("no-such-dir").join("out.json");
    let mut set = ExportSet::new();
    set.add(ReportFormat::Json, &target);
    let err = set
        .write(&fixture::comparison())
        .expect_err("folder is missing");
    let message = err.to_string();
    assert!(
        message.contains("out.json") && message.contains("folder exists"),
        "{message}"
    );
}

#[test]
fn terminal_table_fits_a_narrow_terminal_and_names_what_it_left_out() {
    let c = gated();
    let wide = render(
        &TerminalTable {
            colour: false,
            width: None,
        },
        &c,
    );
    let table_width = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with(['┌', '│', '╞', '└']))
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
    };
    assert!(table_width(&wide) > 100, "the fixture's full table is wide");
    for width in [60u16, 80, 120] {
        let narrow = TerminalTable {
            colour: false,
            width: Some(width),
        }
        .render_text(&c);
        assert!(
            table_width(&narrow) <= width as usize,
            "a {width}-column terminal got a wider table:\n{narrow}"
        );
        // The first columns a user reads are kept; the dropped ones are named.
        assert!(
            narrow.contains("phase3-parallel") && narrow.contains("4.20"),
            "{narrow}"
        );
        assert!(narrow.contains("too narrow for"), "{narrow}");
    }
}

/// The lines of a Markdown export from `## {heading}` up to the next section.
fn markdown_section(c: &Comparison, heading: &str) -> String {
    let md = render(&MarkdownExporter, c);
    let start = md
        .find(&format!("## {heading}\n"))
        .unwrap_or_else(|| panic!("no {heading} section in:\n{md}"));
    let rest = &md[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    rest[..end].to_string()
}

#[test]
fn settings_difference_table_snapshot() {
    let section = markdown_section(&gated(), "What differs");
    // Same in every profile: not listed.
    assert!(!section.contains("training.chunk_sizes"), "{section}");
    insta::assert_snapshot!(section);
}

#[test]
fn a_profile_that_trained_nothing_shows_n_a_not_the_fastest_time() {
    let mut inputs = fixture::inputs();
    for r in &mut inputs[2].records {
        r.samples.done = 0;
        r.samples_per_second = 0.0;
    }
    let c = Comparison::build(inputs, 0, None, None, fixture::meta());
    let table = TerminalTable {
        colour: false,
        width: None,
    }
    .render_text(&c);
    let row = table
        .lines()
        .find(|l| l.contains("broken-batch"))
        .expect("a row for broken-batch");
    assert!(row.contains("n/a"), "{row}");
    assert!(!row.contains("0.0 ms") && !row.contains("0.00 ms"), "{row}");
    assert!(table.contains("broken-batch trained no samples"), "{table}");
}
