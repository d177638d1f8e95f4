//! One JSON Lines row too long to hold whole, read as a stream.
//!
//! `struson` (a streaming JSON reader: it hands out a string value as a `Read`) walks
//! the row's object: the text field's string goes through [`CappedText`] piece by
//! piece, every other field is copied out as JSON text and parsed by `serde_json`, as
//! a short row's fields are, so metadata reads the same either way. The row's bytes
//! are checked as UTF-8 on the way in, so a bad byte is reported by its offset, as for
//! a short row, whatever the JSON reader made of it.

use std::io::{self, Read};

use serde_json::{Map, Value};
use struson::reader::{JsonReader, JsonStreamReader, ReaderError, ValueType};
use struson::writer::{JsonStreamWriter, JsonWriter};

use super::cap::{CappedText, TextCap, Utf8Stream};
use super::BadReason;

/// A document's text, the row's other fields, and the tokens the cap dropped.
pub(super) type Document = (String, Map<String, Value>, u64);

/// What a long row held.
pub(super) enum LongRow {
    /// Only whitespace: no row, as a blank short line.
    Blank,
    /// A document, or why the row is bad.
    Read(Result<Document, BadReason>),
}

/// Reads a row that starts with `head` and goes on in `rest` (to the end of the line),
/// keeping `field` under `cap`. `Err` only when reading itself failed.
pub(super) fn read_row(
    head: &[u8],
    rest: impl Read,
    field: &str,
    cap: TextCap,
) -> io::Result<LongRow> {
    let mut input = Checked {
        inner: head.chain(rest),
        utf8: Utf8Stream::default(),
        bad_byte: None,
        failed: None,
        blank: true,
    };
    let parsed = parse(&mut input, field, cap);
    // Whatever the parser stopped at, the row is read to its end (and checked).
    let drained = io::copy(&mut input, &mut io::sink());
    if let Some(e) = input.failed.take() {
        return Err(e);
    }
    drained?;
    Ok(match (input.bad_byte, input.blank) {
        (Some(at), _) => LongRow::Read(Err(BadReason::InvalidUtf8(at))),
        (None, true) => LongRow::Blank,
        (None, false) => LongRow::Read(parsed),
    })
}

/// The row's bytes, checked as UTF-8 while they pass.
struct Checked<R> {
    inner: R,
    utf8: Utf8Stream,
    /// Offset of the first byte that is not UTF-8.
    bad_byte: Option<usize>,
    /// The read error, when reading itself failed.
    failed: Option<io::Error>,
    /// Only ASCII whitespace so far.
    blank: bool,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(out) {
            Ok(n) => n,
            Err(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                return Err(again);
            }
        };
        let bytes = &out[..n];
        self.blank &= bytes.iter().all(u8::is_ascii_whitespace);
        if self.bad_byte.is_none() {
            let checked = match n {
                0 => self.utf8.finish(),
                _ => self.utf8.push(bytes, |_| ()),
            };
            self.bad_byte = checked.err();
        }
        Ok(n)
    }
}

/// Walks the row's object.
fn parse(input: &mut impl Read, field: &str, cap: TextCap) -> Result<Document, BadReason> {
    let mut json = JsonStreamReader::new(input);
    let not_json = |e: ReaderError| BadReason::NotJson(e.to_string());
    let kind = json.peek().map_err(not_json)?;
    if kind != ValueType::Object {
        json.skip_value().map_err(not_json)?;
        json.consume_trailing_whitespace().map_err(not_json)?;
        return Err(BadReason::NotObject(kind_name(kind)));
    }
    json.begin_object().map_err(not_json)?;
    let mut text: Option<Result<(String, u64), BadReason>> = None;
    let mut metadata = Map::new();
    while json.has_next().map_err(not_json)? {
        let name = json.next_name_owned().map_err(not_json)?;
        if name == field {
            // A later occurrence replaces an earlier one, as serde_json's map does.
            text = Some(field_text(&mut json, field, cap.clone())?);
        } else {
            metadata.insert(name, field_value(&mut json)?);
        }
    }
    json.end_object().map_err(not_json)?;
    json.consume_trailing_whitespace().map_err(not_json)?;
    match text {
        Some(found) => found.map(|(text, cut)| (text, metadata, cut)),
        None => Err(BadReason::MissingField(field.to_string())),
    }
}

/// The text field's value: the capped text, or why it is not text. The outer error is
/// a JSON error, which wins over what the field holds (as for a short row).
fn field_text<R: Read>(
    json: &mut JsonStreamReader<R>,
    field: &str,
    cap: TextCap,
) -> Result<Result<(String, u64), BadReason>, BadReason> {
    let not_json = |e: ReaderError| BadReason::NotJson(e.to_string());
    let kind = json.peek().map_err(not_json)?;
    if kind != ValueType::String {
        json.skip_value().map_err(not_json)?;
        return Ok(Err(match kind {
            ValueType::Null => BadReason::NullText(field.to_string()),
            other => BadReason::FieldNotString {
                field: field.to_string(),
                kind: kind_name(other),
            },
        }));
    }
    let mut capped = CappedText::new(cap);
    let mut utf8 = Utf8Stream::default();
    let mut reader = json.next_string_reader().map_err(not_json)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| BadReason::NotJson(e.to_string()))?;
        if n == 0 {
            break;
        }
        // The reader hands out UTF-8; only a character cut between reads waits.
        let decoded = utf8.push(&buf[..n], |piece| capped.push(piece));
        decoded.map_err(BadReason::InvalidUtf8)?;
    }
    Ok(Ok(capped.finish()))
}

/// Any other field's value, parsed by `serde_json` from its JSON text.
fn field_value<R: Read>(json: &mut JsonStreamReader<R>) -> Result<Value, BadReason> {
    let mut writer = JsonStreamWriter::new(Vec::new());
    json.transfer_to(&mut writer)
        .map_err(|e| BadReason::NotJson(e.to_string()))?;
    let bytes = writer
        .finish_document()
        .map_err(|e| BadReason::NotJson(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| BadReason::NotJson(e.to_string()))
}

/// The words the short-row reader uses for each kind of JSON value.
fn kind_name(kind: ValueType) -> &'static str {
    match kind {
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Array => "an array",
        ValueType::Object => "an object",
    }
}
