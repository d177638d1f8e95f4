//! Oversized documents: read under path A's paragraph cap, a document far past it is
//! held only as far as the cap trains, and trains exactly what the whole text trains.

use std::sync::{Arc, LazyLock};

use katotune::train::dataset::cap::TextCap;
use katotune::train::dataset::{BadReason, Dataset, DatasetFormat, RawSample};
use katotune::train::segment::{ChunkPlan, Segmentation, Segmenter};
use katotune::train::tokenizer::Gpt2Tokenizer;
use serde_json::json;
use tempfile::TempDir;

use super::{open, write};

static GPT2: LazyLock<Gpt2Tokenizer> = LazyLock::new(|| Gpt2Tokenizer::new().unwrap());

/// The reference's cap, 2048 tokens per paragraph.
fn cap() -> TextCap {
    TextCap::new(
        2048,
        GPT2.longest_token_bytes(),
        Arc::new(|text: &str| GPT2.count(text) as u64),
    )
}

fn capped(path: &std::path::Path, format: DatasetFormat) -> Dataset {
    let mut dataset = open(path, format);
    dataset.cap_paragraphs(cap());
    dataset
}

/// What path A trains of `text`, with `cut` tokens the reader dropped added back.
fn plan(text: &str, cut: u64) -> ChunkPlan {
    let segmenter = Segmenter::new(Segmentation::Paragraphs, 5).unwrap();
    let mut plan = segmenter.plan(text, &|t: &str| GPT2.tokenize(t));
    plan.counts.tokens += cut;
    plan.counts.tokens_over_cap += cut;
    plan
}

/// A 3 MB document: a short paragraph, one paragraph of real prose far past the cap,
/// another short one.
fn document() -> String {
    let prose = "And God said, Let there be light: and there was light. And God saw \
                 the light, that it was good; and God divided the light from the darkness. ";
    let long = prose.repeat(3_000_000 / prose.len());
    format!("In the beginning God created the heaven and the earth.\n\n{long}\n \nAnd the evening and the morning were the first day.")
}

/// The sample trains what the whole document trains, and the reader held only about
/// the cap's bytes of the long paragraph (256 KiB of its 3 MB).
fn assert_trains_the_whole_document(sample: &RawSample, doc: &str) {
    assert_eq!(plan(&sample.text, sample.tokens_cut), plan(doc, 0));
    assert!(sample.tokens_cut > 500_000, "{}", sample.tokens_cut);
    let held = sample.text.len();
    assert!(held < cap().keep_bytes() + 1_000, "held {held} bytes");
    assert!(sample
        .text
        .ends_with("\n \nAnd the evening and the morning were the first day."));
}

#[test]
fn an_oversized_document_trains_the_same_first_cap_tokens_in_every_text_format() {
    let dir = TempDir::new().unwrap();
    let doc = document();
    let row = json!({"id": 7, "text": doc, "tags": ["a", 1.5, {"deep": null}]});
    let short = json!({"text": "A short row after the long one."});
    let jsonl = write(&dir, "big.jsonl", format!("{row}\n{short}\n").as_bytes());
    let rows: Vec<RawSample> = capped(&jsonl, DatasetFormat::Jsonl)
        .map(|r| r.unwrap())
        .collect();
    assert_trains_the_whole_document(&rows[0], &doc);
    // The other fields, as a short row keeps them, and the next row after it.
    assert_eq!(
        rows[0].metadata,
        *json!({"id": 7, "tags": ["a", 1.5, {"deep": null}]})
            .as_object()
            .unwrap()
    );
    assert_eq!((rows[1].row, rows[1].origin.ends_with(":2")), (1, true));

    let one_line = doc.replace('\n', " ");
    let lines = write(
        &dir,
        "big.txt",
        format!("{one_line}\r\nnext line\n").as_bytes(),
    );
    let rows: Vec<RawSample> = capped(&lines, DatasetFormat::Lines)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(plan(&rows[0].text, rows[0].tokens_cut), plan(&one_line, 0));
    assert!(rows[0].text.len() < cap().keep_bytes() + 1_000);
    assert_eq!(rows[1].text, "next line");

    let books = dir.path().join("books");
    std::fs::create_dir(&books).unwrap();
    std::fs::write(books.join("genesis.txt"), &doc).unwrap();
    let file = capped(&books, DatasetFormat::TxtDir)
        .next()
        .unwrap()
        .unwrap();
    assert_trains_the_whole_document(&file, &doc);
}

#[test]
fn a_document_under_the_cap_reads_exactly_as_without_it() {
    let dir = TempDir::new().unwrap();
    let text = "Short and sweet.\n\nTwo paragraphs, well under any cap.";
    let path = write(
        &dir,
        "c.jsonl",
        format!("{}\n", json!({"text": text})).as_bytes(),
    );
    let sample = capped(&path, DatasetFormat::Jsonl).next().unwrap().unwrap();
    assert_eq!((sample.text.as_str(), sample.tokens_cut), (text, 0));
}

#[test]
fn a_long_row_is_still_bad_where_its_tail_is_bad_and_blank_long_lines_are_no_rows() {
    let dir = TempDir::new().unwrap();
    let long = "word ".repeat(400_000);
    let mut bytes = format!("{}\n", json!({"text": long})).into_bytes();
    // Line 2: a bad byte near the end of a 2 MB row.
    let mut bad = format!("{{\"text\": \"{long}").into_bytes();
    let at = bad.len();
    bad.extend_from_slice(b"\xff\"}\n");
    bytes.extend_from_slice(&bad);
    // Line 3: JSON cut short; line 4: 2 MB of spaces; line 5: a short row.
    bytes.extend_from_slice(format!("{{\"text\": \"{long}\"\n").as_bytes());
    bytes.extend_from_slice(format!("{}\n", " ".repeat(2_000_000)).as_bytes());
    bytes.extend_from_slice(b"{\"text\": \"the end of the corpus\"}\n");
    let path = write(&dir, "bad.jsonl", &bytes);
    let rows: Vec<_> = capped(&path, DatasetFormat::Jsonl).collect();
    assert_eq!(rows.len(), 4, "the blank line is no row");
    assert!(rows[0].as_ref().unwrap().tokens_cut > 0);
    // The same offset a short row's check gives: the byte's place in its line.
    let second = rows[1].as_ref().unwrap_err();
    assert_eq!(
        (second.row, &second.reason),
        (1, &BadReason::InvalidUtf8(at))
    );
    let uncapped: Vec<_> = open(&path, DatasetFormat::Jsonl).collect();
    assert_eq!(uncapped[1].as_ref().unwrap_err().reason, second.reason);
    let third = rows[2].as_ref().unwrap_err();
    assert!(matches!(third.reason, BadReason::NotJson(_)), "{third}");
    assert!(third.origin.ends_with(":3"), "{}", third.origin);
    let last = rows[3].as_ref().unwrap();
    assert_eq!((last.row, last.text.as_str()), (4, "the end of the corpus"));
}
