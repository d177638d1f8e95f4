//! The decoding layer: compressed corpora, UTF-16/32 and binary files, null text.

use std::io::Write;

use katotune::train::dataset::{BadReason, Dataset, DatasetFormat, DatasetSpec};
use tempfile::TempDir;

use super::{open, open_err, texts, write};

const CORPUS: &str = "{\"text\": \"In the beginning God created the heaven\"}\n{\"text\": \"And the earth was without form\"}\n";

fn expected() -> Vec<(u64, String)> {
    vec![
        (0, "In the beginning God created the heaven".to_string()),
        (1, "And the earth was without form".to_string()),
    ]
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn compressed_jsonl_is_found_by_magic_bytes_and_read_in_full() {
    let dir = TempDir::new().unwrap();
    let zst = zstd::encode_all(CORPUS.as_bytes(), 3).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("corpus.jsonl.gz", gzip(CORPUS.as_bytes()), "gzip"),
        ("corpus.jsonl.zst", zst, "zstd"),
        ("corpus.jsonl.bz2", bzip2(CORPUS.as_bytes()), "bzip2"),
        ("corpus.jsonl.xz", xz(CORPUS.as_bytes()), "xz"),
    ];
    for (name, bytes, kind) in cases {
        let path = write(&dir, name, &bytes);
        // `auto` looks through the compression extension to `.jsonl`.
        let dataset = open(&path, DatasetFormat::Auto);
        assert_eq!(dataset.identity().format, DatasetFormat::Jsonl, "{name}");
        assert!(
            dataset.notes()[0].contains(&format!("{kind}-compressed")),
            "{name}"
        );
        assert_eq!(texts(dataset), expected(), "{name}");
        // The setting the old error suggested now works too.
        assert_eq!(
            texts(open(&path, DatasetFormat::Jsonl)),
            expected(),
            "{name}"
        );
    }
}

#[test]
fn compressed_data_under_a_plain_name_is_still_decompressed() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "corpus.jsonl", &gzip(CORPUS.as_bytes()));
    let mut dataset = open(&path, DatasetFormat::Auto);
    assert_eq!(dataset.skip_rows(1).unwrap(), 1);
    assert_eq!(dataset.next().unwrap().unwrap().row, 1);
}

#[test]
fn a_truncated_archive_is_refused_when_opened() {
    let dir = TempDir::new().unwrap();
    let big: String = CORPUS.repeat(2000);
    let bytes = gzip(big.as_bytes());
    let path = write(&dir, "corpus.jsonl.gz", &bytes[..bytes.len() / 3]);
    // The first 8 KiB still decompress; the cut shows at the end as a fatal row.
    let rows: Vec<_> = open(&path, DatasetFormat::Auto).collect();
    let last = rows.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(last.reason, BadReason::Read(_)), "{last}");
    let path = write(&dir, "tiny.jsonl.gz", &bytes[..12]);
    let err = open_err(&path, DatasetFormat::Auto).to_string();
    assert!(err.contains("not valid gzip data"), "{err}");
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xff, 0xfe] } else { vec![] };
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

#[test]
fn utf16_with_or_without_a_bom_is_decoded_and_said() {
    let dir = TempDir::new().unwrap();
    for bom in [true, false] {
        let path = write(&dir, "corpus.jsonl", &utf16le(CORPUS, bom));
        let dataset = open(&path, DatasetFormat::Auto);
        let note = dataset.notes()[0].clone();
        assert!(
            note.contains("UTF-16LE") && note.contains("decoding to UTF-8"),
            "{note}"
        );
        assert_eq!(texts(dataset), expected(), "bom {bom}");
    }
    let be: Vec<u8> = "one line of plain text\nand another one\n"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let path = write(&dir, "plain.txt", &be);
    let got: Vec<String> = texts(open(&path, DatasetFormat::Auto))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(got, ["one line of plain text", "and another one"]);
}

#[test]
fn utf32_and_binary_files_are_refused_before_anything_starts() {
    let dir = TempDir::new().unwrap();
    let utf32: Vec<u8> = CORPUS
        .chars()
        .flat_map(|c| (c as u32).to_le_bytes())
        .collect();
    let path = write(&dir, "corpus.jsonl", &utf32);
    let err = open_err(&path, DatasetFormat::Auto).to_string();
    assert!(
        err.contains("UTF-32") && err.contains("convert it to UTF-8"),
        "{err}"
    );
    let mut binary = b"PAR1".to_vec();
    binary.extend((0u8..=255).cycle().take(4096));
    let path = write(&dir, "corpus.txt", &binary);
    let err = open_err(&path, DatasetFormat::Auto).to_string();
    assert!(err.contains("binary data, not text"), "{err}");
    // A directory of .txt files is checked file by file, also before reading.
    let sub = dir.path().join("docs");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("a.txt"), "a fine document of text").unwrap();
    std::fs::write(sub.join("b.txt"), &binary).unwrap();
    let err = Dataset::open(&DatasetSpec::new(&sub))
        .unwrap_err()
        .to_string();
    assert!(err.contains("b.txt") && err.contains("binary"), "{err}");
}

#[test]
fn a_null_text_says_the_row_has_no_text_not_to_change_the_field() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "corpus.jsonl",
        b"{\"text\": null, \"id\": 1}\n{\"text\": \"a document of some length\"}\n",
    );
    let rows: Vec<_> = open(&path, DatasetFormat::Auto).collect();
    let bad = rows[0].as_ref().unwrap_err();
    assert_eq!(bad.reason, BadReason::NullText("text".into()));
    let message = bad.to_string();
    assert!(message.contains("corpus.jsonl:1: field `text` is null: this row has no text"));
    assert!(!message.contains("text_field"), "{message}");
    assert_eq!(rows[1].as_ref().unwrap().text, "a document of some length");
}
