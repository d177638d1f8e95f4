//! Line-based formats: JSON Lines, one document per line, one per block of lines.

use std::io::BufRead;
use std::path::Path;

use serde_json::{Map, Value};

use super::decode::{self, Decoding};
use super::{json_kind, split_text_field, BadReason, BadSample, DatasetError, RawSample, Source};

/// The byte order mark some editors put at the start of a UTF-8 file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file read one line at a time as bytes, so a bad line does not stop the rest.
struct LineReader {
    name: String,
    reader: Box<dyn BufRead + Send>,
    /// Lines consumed so far (the 1-based number of the last line read).
    line: u64,
}

impl LineReader {
    fn open((path, decoding): (&Path, Decoding)) -> Result<Self, DatasetError> {
        Ok(Self {
            name: path.display().to_string(),
            reader: decode::open(path, decoding)?,
            line: 0,
        })
    }

    /// Reads the next line into `buf` without its `\n` or `\r\n`; `false` at the end.
    fn next_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        buf.clear();
        if self.reader.read_until(b'\n', buf)? == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.line == 1 && buf.starts_with(UTF8_BOM) {
            buf.drain(..UTF8_BOM.len());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(true)
    }

    /// Skips up to `n` lines without copying them; returns how many it skipped.
    fn skip_lines(&mut self, n: u64) -> Result<u64, DatasetError> {
        let mut skipped = 0;
        let mut partial = false;
        while skipped < n {
            let name = &self.name;
            let buf = self
                .reader
                .fill_buf()
                .map_err(|source| DatasetError::Unreadable {
                    path: name.into(),
                    source,
                })?;
            if buf.is_empty() {
                break;
            }
            let (used, ended) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            self.reader.consume(used);
            partial = !ended;
            if ended {
                skipped += 1;
                self.line += 1;
            }
        }
        if partial {
            // The file ended inside a last line that has no newline.
            skipped += 1;
            self.line += 1;
        }
        Ok(skipped)
    }

    fn origin(&self, line: u64) -> String {
        format!("{}:{line}", self.name)
    }

    fn read_error(&self, e: std::io::Error) -> DatasetError {
        DatasetError::Unreadable {
            path: self.name.clone().into(),
            source: e,
        }
    }

    /// A fatal bad sample for a read that failed after `line`.
    fn failed(&self, row: u64, e: std::io::Error) -> BadSample {
        BadSample {
            row,
            origin: self.origin(self.line + 1),
            reason: BadReason::Read(e.to_string()),
        }
    }
}

/// Decodes `bytes` as UTF-8, naming the first bad byte.
fn utf8(bytes: Vec<u8>) -> Result<String, BadReason> {
    String::from_utf8(bytes).map_err(|e| BadReason::InvalidUtf8(e.utf8_error().valid_up_to()))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// JSON Lines: row N is line N+1; blank lines count as rows but yield nothing.
pub(super) struct JsonLines {
    lines: LineReader,
    field: String,
    buf: Vec<u8>,
}

impl JsonLines {
    pub(super) fn open(path: (&Path, Decoding), field: String) -> Result<Self, DatasetError> {
        Ok(Self {
            lines: LineReader::open(path)?,
            field,
            buf: Vec::new(),
        })
    }

    fn parse(&self) -> Result<(String, Map<String, Value>), BadReason> {
        let line =
            std::str::from_utf8(&self.buf).map_err(|e| BadReason::InvalidUtf8(e.valid_up_to()))?;
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => split_text_field(fields, &self.field),
            Ok(other) => Err(BadReason::NotObject(json_kind(&other))),
            Err(e) => Err(BadReason::NotJson(e.to_string())),
        }
    }
}

impl Source for JsonLines {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        loop {
            let row = self.lines.line;
            match self.lines.next_line(&mut self.buf) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(self.lines.failed(row, e))),
            }
            if is_blank(&self.buf) {
                continue;
            }
            let origin = self.lines.origin(row + 1);
            return Some(RawSample::read(row, origin, self.parse()));
        }
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        self.lines.skip_lines(n)
    }
}

/// Plain text, one document per line (without its line ending); row N is line N+1.
pub(super) struct TextLines {
    lines: LineReader,
}

impl TextLines {
    pub(super) fn open(path: (&Path, Decoding)) -> Result<Self, DatasetError> {
        Ok(Self {
            lines: LineReader::open(path)?,
        })
    }
}

impl Source for TextLines {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        let row = self.lines.line;
        let mut buf = Vec::new();
        match self.lines.next_line(&mut buf) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(self.lines.failed(row, e))),
        }
        let origin = self.lines.origin(row + 1);
        Some(RawSample::read(
            row,
            origin,
            utf8(buf).map(|text| (text, Map::new())),
        ))
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        self.lines.skip_lines(n)
    }
}

/// Plain text, one document per block of non-blank lines, joined with `\n`.
/// Row N is the N+1th block; its origin is the block's first line.
pub(super) struct TextBlocks {
    lines: LineReader,
    blocks: u64,
    buf: Vec<u8>,
}

impl TextBlocks {
    pub(super) fn open(path: (&Path, Decoding)) -> Result<Self, DatasetError> {
        Ok(Self {
            lines: LineReader::open(path)?,
            blocks: 0,
            buf: Vec::new(),
        })
    }

    /// Reads the next block's bytes; `Ok(None)` at the end, else its first line.
    fn next_block(&mut self, block: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
        let mut first = None;
        while self.lines.next_line(&mut self.buf)? {
            if is_blank(&self.buf) {
                if first.is_some() {
                    break;
                }
                continue;
            }
            if first.is_some() {
                block.push(b'\n');
            } else {
                first = Some(self.lines.line);
            }
            block.extend_from_slice(&self.buf);
        }
        Ok(first)
    }
}

impl Source for TextBlocks {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        let row = self.blocks;
        let mut block = Vec::new();
        let first_line = match self.next_block(&mut block) {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(e) => return Some(Err(self.lines.failed(row, e))),
        };
        self.blocks += 1;
        let origin = self.lines.origin(first_line);
        Some(RawSample::read(
            row,
            origin,
            utf8(block).map(|text| (text, Map::new())),
        ))
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        let mut block = Vec::new();
        let mut skipped = 0;
        while skipped < n {
            block.clear();
            match self.next_block(&mut block) {
                Ok(Some(_)) => skipped += 1,
                Ok(None) => break,
                Err(e) => return Err(self.lines.read_error(e)),
            }
        }
        self.blocks += skipped;
        Ok(skipped)
    }
}
