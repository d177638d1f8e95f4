//! Dataset readers: every format, skipping, row numbering, bad data and identity.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use katotune::train::dataset::{
    passes_reference_filter, BadReason, Dataset, DatasetError, DatasetFormat, DatasetSpec,
    RawSample,
};
use serde_json::json;
use tempfile::TempDir;

#[path = "dataset/parquet.rs"]
mod parquet_datasets;

#[path = "dataset/decoding.rs"]
mod decoding;

#[path = "dataset/oversized.rs"]
mod oversized;

fn write(dir: &TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write test file");
    path
}

fn open(path: &Path, format: DatasetFormat) -> Dataset {
    let spec = DatasetSpec {
        format,
        ..DatasetSpec::new(path)
    };
    Dataset::open(&spec).expect("dataset opens")
}

fn open_err(path: &Path, format: DatasetFormat) -> DatasetError {
    let spec = DatasetSpec {
        format,
        ..DatasetSpec::new(path)
    };
    Dataset::open(&spec).expect_err("dataset refuses to open")
}

fn samples(dataset: Dataset) -> Vec<RawSample> {
    dataset.map(|s| s.expect("row reads")).collect()
}

fn texts(dataset: Dataset) -> Vec<(u64, String)> {
    samples(dataset)
        .into_iter()
        .map(|s| (s.row, s.text))
        .collect()
}

#[test]
fn jsonl_keeps_the_other_fields_as_metadata() {
    let kjv = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/kjv-100.jsonl");
    let rows = samples(open(&kjv, DatasetFormat::Auto));
    assert_eq!(rows.len(), 100);
    assert!(rows[0].text.starts_with("In the beginning God created"));
    assert_eq!(
        rows[0].metadata,
        json!({"id": 0, "title": "Genesis 1"})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert_eq!(rows[99].row, 99);
    assert!(
        rows[99].origin.ends_with("kjv-100.jsonl:100"),
        "{}",
        rows[99].origin
    );
}

#[test]
fn jsonl_reads_a_configured_text_field() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "web.jsonl",
        b"{\"content\":\"page one\",\"url\":\"a\"}\n",
    );
    let spec = DatasetSpec {
        text_field: "content".into(),
        ..DatasetSpec::new(&path)
    };
    let rows = samples(Dataset::open(&spec).unwrap());
    assert_eq!(rows[0].text, "page one");
    assert_eq!(rows[0].metadata.get("url"), Some(&json!("a")));
}

#[test]
fn a_leading_byte_order_mark_is_not_part_of_the_first_row() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "bom.jsonl", b"\xEF\xBB\xBF{\"text\":\"first\"}\n");
    assert_eq!(
        texts(open(&path, DatasetFormat::Auto)),
        [(0, "first".to_string())]
    );
}

#[test]
fn lines_give_one_document_per_line_without_line_endings() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "corpus.txt",
        b"first line\r\n\nthird line\nlast, no newline",
    );
    let got = texts(open(&path, DatasetFormat::Auto));
    let want = [
        (0, "first line"),
        (1, ""),
        (2, "third line"),
        (3, "last, no newline"),
    ];
    assert_eq!(got, want.map(|(r, t)| (r, t.to_string())));
}

#[test]
fn blocks_give_one_document_per_blank_line_separated_block() {
    let dir = TempDir::new().unwrap();
    let text = b"\npara one\nstill one\n\n  \n\npara two\n\n\nthree\n";
    let path = write(&dir, "book.txt", text);
    let rows = samples(open(&path, DatasetFormat::Blocks));
    let got: Vec<_> = rows.iter().map(|s| (s.row, s.text.as_str())).collect();
    assert_eq!(
        got,
        [(0, "para one\nstill one"), (1, "para two"), (2, "three")]
    );
    assert!(rows[1].origin.ends_with("book.txt:7"), "{}", rows[1].origin);
}

#[test]
fn txt_dir_reads_txt_files_in_name_order() {
    let dir = TempDir::new().unwrap();
    write(&dir, "b.txt", b"second file\n");
    write(&dir, "a.txt", b"first file");
    write(&dir, "c.md", b"not a text file");
    write(&dir, "c.txt", b"");
    let rows = samples(open(dir.path(), DatasetFormat::Auto));
    let got: Vec<_> = rows.iter().map(|s| (s.row, s.text.as_str())).collect();
    assert_eq!(got, [(0, "first file"), (1, "second file\n"), (2, "")]);
    assert!(rows[1].origin.ends_with("b.txt"));
}

#[test]
fn skip_rows_resumes_at_the_raw_row() {
    let dir = TempDir::new().unwrap();
    let jsonl: String = (0..10)
        .map(|i| format!("{{\"text\":\"row {i}\"}}\n"))
        .collect();
    let path = write(&dir, "d.jsonl", jsonl.as_bytes());
    let mut dataset = open(&path, DatasetFormat::Auto);
    assert_eq!(dataset.skip_rows(7).unwrap(), 7);
    assert_eq!(
        texts(dataset),
        [(7, "row 7"), (8, "row 8"), (9, "row 9")].map(|(r, t)| (r, t.to_string()))
    );

    let mut dataset = open(&path, DatasetFormat::Auto);
    assert_eq!(
        dataset.skip_rows(25).unwrap(),
        10,
        "skipping past the end stops at the end"
    );
    assert!(dataset.next().is_none());

    let path = write(&dir, "d.txt", b"a\n\nb\n\nc\nc2\n\nd");
    let mut dataset = open(&path, DatasetFormat::Blocks);
    assert_eq!(dataset.skip_rows(2).unwrap(), 2);
    assert_eq!(
        texts(dataset),
        [(2, "c\nc2".to_string()), (3, "d".to_string())]
    );

    let mut dataset = open(&path, DatasetFormat::Lines);
    assert_eq!(dataset.skip_rows(7).unwrap(), 7);
    assert_eq!(texts(dataset), [(7, "d".to_string())]);
}

#[test]
fn skip_rows_does_not_parse_the_skipped_lines() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "d.jsonl",
        b"not json\n\xff\xfe\n{\"text\":\"good\"}\n",
    );
    let mut dataset = open(&path, DatasetFormat::Jsonl);
    assert_eq!(dataset.skip_rows(2).unwrap(), 2);
    assert_eq!(texts(dataset), [(2, "good".to_string())]);
}

#[test]
fn row_numbers_count_rows_the_filter_drops() {
    let dir = TempDir::new().unwrap();
    let lines = [
        "a long enough first text",
        "short",
        "",
        "   padded   ",
        "another text long enough",
    ];
    let jsonl: String = lines
        .iter()
        .map(|t| format!("{}\n", json!({ "text": t })))
        .collect();
    let path = write(&dir, "d.jsonl", jsonl.as_bytes());
    let kept: Vec<u64> = samples(open(&path, DatasetFormat::Jsonl))
        .into_iter()
        .filter(|s| passes_reference_filter(&s.text))
        .map(|s| s.row)
        .collect();
    assert_eq!(kept, [0, 4]);
}

#[test]
fn reference_filter_counts_characters_after_python_strip() {
    assert!(!passes_reference_filter("ten chars!"));
    assert!(passes_reference_filter("eleven char"));
    assert!(!passes_reference_filter("  \n ten chars! \t\n"));
    assert!(passes_reference_filter(" = Title Here = \n"));
    // Eleven characters but 22 bytes: characters count, not bytes.
    assert!(passes_reference_filter("ééééééééééé"));
    assert!(!passes_reference_filter("éééééééééé"));
    // Python's str.strip() also strips U+001C..U+001F and Unicode spaces.
    assert!(!passes_reference_filter(
        "\u{1c}\u{3000}ten chars!\u{a0}\u{1f}"
    ));
    assert!(!passes_reference_filter(""));
}

#[test]
fn each_bad_row_names_its_file_and_line_and_reading_goes_on() {
    let dir = TempDir::new().unwrap();
    let content: &[u8] = b"{\"text\":\"ok one\"}\n\
        {\"text\":\"bad \xff byte\"}\n\
        this is not json\n\
        [\"an\",\"array\"]\n\
        {\"body\":\"no text field\"}\n\
        {\"text\":42}\n\
        \n\
        {\"text\":\"ok two\"}\n";
    let path = write(&dir, "mixed.jsonl", content);
    let rows: Vec<_> = open(&path, DatasetFormat::Jsonl).collect();
    assert_eq!(
        rows.len(),
        7,
        "the blank line yields nothing; every other line yields a row"
    );
    let messages: Vec<String> = rows
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|bad| {
            assert!(!bad.is_fatal());
            bad.to_string()
        })
        .collect();
    let expect = [
        ("mixed.jsonl:2", "not valid UTF-8"),
        ("mixed.jsonl:3", "not JSON"),
        ("mixed.jsonl:4", "holds an array, not a JSON object"),
        ("mixed.jsonl:5", "no `text` field"),
        ("mixed.jsonl:6", "field `text` is a number, not a string"),
    ];
    assert_eq!(messages.len(), expect.len(), "{messages:#?}");
    for (message, (place, what)) in messages.iter().zip(expect) {
        assert!(
            message.contains(place) && message.contains(what),
            "{message}"
        );
    }
    let last = rows.last().unwrap().as_ref().unwrap();
    assert_eq!((last.row, last.text.as_str()), (7, "ok two"));
    let bad = rows[1].as_ref().unwrap_err();
    assert_eq!((bad.row, &bad.reason), (1, &BadReason::InvalidUtf8(13)));
}

#[test]
fn invalid_utf8_in_plain_text_names_the_line() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "latin1.txt", b"fine\ncaf\xe9\nfine again\n");
    let rows: Vec<_> = open(&path, DatasetFormat::Lines).collect();
    let bad = rows[1].as_ref().unwrap_err();
    assert!(
        bad.to_string().contains("latin1.txt:2: not valid UTF-8"),
        "{bad}"
    );
    assert_eq!(rows[2].as_ref().unwrap().text, "fine again");
}

#[test]
fn open_refuses_empty_missing_and_unknown_inputs() {
    let dir = TempDir::new().unwrap();
    let empty = write(&dir, "empty.jsonl", b"");
    let message = open_err(&empty, DatasetFormat::Auto).to_string();
    assert!(
        message.contains("empty.jsonl") && message.contains("is empty"),
        "{message}"
    );

    let missing = dir.path().join("nowhere.jsonl");
    let message = open_err(&missing, DatasetFormat::Auto).to_string();
    assert!(
        message.contains("nowhere.jsonl") && message.contains("does not exist"),
        "{message}"
    );

    let csv = write(&dir, "table.csv", b"a,b\n");
    let message = open_err(&csv, DatasetFormat::Auto).to_string();
    assert!(
        message.contains("table.csv") && message.contains("dataset.format"),
        "{message}"
    );

    let sub = dir.path().join("nothing-here");
    std::fs::create_dir(&sub).unwrap();
    write(&dir, "nothing-here/readme.md", b"hi");
    let message = open_err(&sub, DatasetFormat::Auto).to_string();
    assert!(
        message.contains("nothing-here") && message.contains(".txt or .parquet"),
        "{message}"
    );

    let message = open_err(dir.path(), DatasetFormat::Jsonl).to_string();
    assert!(message.contains("format jsonl reads a file"), "{message}");
}

#[test]
fn open_refuses_an_unreadable_file() {
    // A directory where a JSON Lines file should be cannot be read by anyone, root
    // included (file modes would not stop root).
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("secret.jsonl");
    std::fs::create_dir(&path).unwrap();
    let message = open_err(&path, DatasetFormat::Jsonl).to_string();
    assert!(message.contains("secret.jsonl"), "{message}");
}

#[test]
fn identity_changes_when_the_data_changes() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "d.jsonl", b"{\"text\":\"version one\"}\n");
    let first = open(&path, DatasetFormat::Auto).identity();
    assert_eq!(first.format, DatasetFormat::Jsonl);
    assert_eq!(first.bytes, 23);
    assert_eq!(
        open(&path, DatasetFormat::Auto).identity(),
        first,
        "stable across opens"
    );

    write(&dir, "d.jsonl", b"{\"text\":\"version two\"}\n");
    let same_size = open(&path, DatasetFormat::Auto).identity();
    assert_eq!(same_size.bytes, first.bytes);
    assert_ne!(same_size.fingerprint, first.fingerprint);

    let copy = write(&dir, "copy.jsonl", b"{\"text\":\"version one\"}\n");
    let moved = open(&copy, DatasetFormat::Auto).identity();
    assert_eq!(
        moved.fingerprint, first.fingerprint,
        "content, not the path, is fingerprinted"
    );
    assert_ne!(moved, first, "the path still tells them apart");
}

#[test]
fn identity_of_a_directory_covers_every_file() {
    let dir = TempDir::new().unwrap();
    write(&dir, "a.txt", b"one");
    write(&dir, "b.txt", b"two");
    let before = open(dir.path(), DatasetFormat::Auto).identity();
    assert_eq!((before.format, before.bytes), (DatasetFormat::TxtDir, 6));
    write(&dir, "b.txt", b"TWO");
    assert_ne!(
        open(dir.path(), DatasetFormat::Auto).identity().fingerprint,
        before.fingerprint
    );
}

#[test]
fn spec_reads_kebab_case_formats_and_defaults() {
    let spec: DatasetSpec =
        serde_json::from_value(json!({"path": "books", "format": "txt-dir"})).unwrap();
    assert_eq!(spec.format, DatasetFormat::TxtDir);
    assert_eq!(spec.text_field, "text");
    let spec: DatasetSpec =
        serde_json::from_value(json!({"path": "x.jsonl", "text-field": "content"})).unwrap();
    assert_eq!(
        (spec.format, spec.text_field.as_str()),
        (DatasetFormat::Auto, "content")
    );
    assert!(serde_json::from_value::<DatasetSpec>(json!({"path": "x", "format": "csv"})).is_err());
}

#[test]
fn a_large_jsonl_file_streams_to_the_end() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("big.jsonl");
    let mut out = BufWriter::new(File::create(&path).unwrap());
    let text = "word ".repeat(200);
    let rows = 50_000u64;
    for id in 0..rows {
        writeln!(out, "{}", json!({"id": id, "text": text})).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    assert!(std::fs::metadata(&path).unwrap().len() > 50_000_000);
    let mut dataset = open(&path, DatasetFormat::Jsonl);
    assert_eq!(dataset.skip_rows(10_000).unwrap(), 10_000);
    let (mut count, mut last) = (0u64, 0u64);
    for sample in dataset {
        let sample = sample.unwrap();
        assert_eq!(sample.metadata["id"], json!(sample.row));
        count += 1;
        last = sample.row;
    }
    assert_eq!((count, last), (rows - 10_000, rows - 1));
}
