//! Line-based formats: JSON Lines, one document per line, one per block of lines.

use std::io::{BufRead, Read};
use std::path::Path;

use serde_json::{Map, Value};

use super::cap::{read_capped, TextCap};
use super::decode::{self, Decoding};
use super::json_stream::{self, LongRow};
use super::{json_kind, split_text_field, BadReason, BadSample, DatasetError, RawSample, Source};

/// The byte order mark some editors put at the start of a UTF-8 file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file read one line at a time as bytes, so a bad line does not stop the rest.
pub(super) struct LineReader {
    name: String,
    reader: Box<dyn BufRead + Send>,
    /// Lines consumed so far (the 1-based number of the last line read).
    pub(super) line: u64,
}

impl LineReader {
    pub(super) fn open((path, decoding): (&Path, Decoding)) -> Result<Self, DatasetError> {
        Ok(Self {
            name: path.display().to_string(),
            reader: decode::open(path, decoding)?,
            line: 0,
        })
    }

    /// Reads the next line into `buf` without its `\n` or `\r\n` (and, on line 1,
    /// a UTF-8 byte order mark) when it has at most `limit` bytes; a longer line leaves
    /// its first `limit` bytes in `buf` and the rest for
    /// [`rest_of_line`](Self::rest_of_line).
    pub(super) fn next_line_upto(
        &mut self,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> std::io::Result<Line> {
        buf.clear();
        let mut started = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            if !started {
                started = true;
                self.line += 1;
            }
            let (used, ended) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = limit.saturating_sub(buf.len());
            if used > room && !(ended && used - 1 <= room) {
                buf.extend_from_slice(&chunk[..room]);
                self.reader.consume(room);
                self.strip_bom(buf);
                return Ok(Line::Long);
            }
            buf.extend_from_slice(&chunk[..used]);
            self.reader.consume(used);
            if ended {
                break;
            }
        }
        if !started {
            return Ok(Line::End);
        }
        self.strip_bom(buf);
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Line::Whole)
    }

    fn strip_bom(&self, buf: &mut Vec<u8>) {
        if self.line == 1 && buf.starts_with(UTF8_BOM) {
            buf.drain(..UTF8_BOM.len());
        }
    }

    /// The rest of a line [`next_line_upto`](Self::next_line_upto) found long, without
    /// its line ending; read it to the end before the next line.
    pub(super) fn rest_of_line(&mut self) -> LineRest<'_> {
        LineRest {
            reader: &mut *self.reader,
            done: false,
            pending_cr: false,
        }
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

    pub(super) fn origin(&self, line: u64) -> String {
        format!("{}:{line}", self.name)
    }

    pub(super) fn read_error(&self, e: std::io::Error) -> DatasetError {
        DatasetError::Unreadable {
            path: self.name.clone().into(),
            source: e,
        }
    }

    /// A fatal bad sample for a read that failed after `line`.
    pub(super) fn failed(&self, row: u64, e: std::io::Error) -> BadSample {
        BadSample {
            row,
            origin: self.origin(self.line + 1),
            reason: BadReason::Read(e.to_string()),
        }
    }
}

/// How [`LineReader::next_line_upto`] found the next line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// No more lines.
    End,
    /// The whole line is in the buffer.
    Whole,
    /// The buffer holds its start; the rest is still to be read.
    Long,
}

/// The rest of one long line as a stream, stopping at (and consuming) its `\n`; a
/// `\r` right before the `\n` is left out, as for a short line.
pub(super) struct LineRest<'a> {
    reader: &'a mut (dyn BufRead + Send),
    done: bool,
    /// A `\r` was read at the end of a chunk: part of the line ending or of the line.
    pending_cr: bool,
}

impl Read for LineRest<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            let chunk = self.reader.fill_buf()?;
            if self.pending_cr {
                self.pending_cr = false;
                if chunk.first() == Some(&b'\n') {
                    self.reader.consume(1);
                    self.done = true;
                    return Ok(0);
                }
                self.done = chunk.is_empty();
                out[0] = b'\r';
                return Ok(1);
            }
            let Some(&first) = chunk.first() else {
                self.done = true;
                return Ok(0);
            };
            let data = &chunk[..memchr::memchr(b'\n', chunk).unwrap_or(chunk.len())];
            if data.is_empty() || data == b"\r" {
                self.reader.consume(1);
                self.done = first == b'\n';
                self.pending_cr = first == b'\r';
                continue;
            }
            // A last `\r` is handed out only once it is known not to end the line.
            let give = data.len() - usize::from(data.last() == Some(&b'\r'));
            let n = give.min(out.len());
            out[..n].copy_from_slice(&data[..n]);
            self.reader.consume(n);
            return Ok(n);
        }
    }
}

/// Decodes `bytes` as UTF-8, naming the first bad byte.
pub(super) fn utf8(bytes: Vec<u8>) -> Result<String, BadReason> {
    String::from_utf8(bytes).map_err(|e| BadReason::InvalidUtf8(e.utf8_error().valid_up_to()))
}

pub(super) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// JSON Lines: row N is line N+1; blank lines count as rows but yield nothing.
pub(super) struct JsonLines {
    lines: LineReader,
    field: String,
    buf: Vec<u8>,
    cap: Option<TextCap>,
}

impl JsonLines {
    pub(super) fn open(path: (&Path, Decoding), field: String) -> Result<Self, DatasetError> {
        Ok(Self {
            lines: LineReader::open(path)?,
            field,
            buf: Vec::new(),
            cap: None,
        })
    }

    /// A row longer than the cap's whole-line limit, streamed.
    fn long_row(&mut self, row: u64, cap: TextCap) -> Option<Result<RawSample, BadSample>> {
        let origin = self.lines.origin(row + 1);
        let rest = self.lines.rest_of_line();
        match json_stream::read_row(&self.buf, rest, &self.field, cap) {
            Ok(LongRow::Blank) => None,
            Ok(LongRow::Read(Ok((text, metadata, cut)))) => {
                Some(RawSample::read(row, origin, Ok((text, metadata))).map(|s| s.cut(cut)))
            }
            Ok(LongRow::Read(Err(reason))) => Some(RawSample::read(row, origin, Err(reason))),
            Err(e) => Some(Err(self.lines.failed(row, e))),
        }
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
            let limit = self.cap.as_ref().map_or(usize::MAX, TextCap::whole_line);
            match self.lines.next_line_upto(&mut self.buf, limit) {
                Ok(Line::Whole) => {}
                Ok(Line::End) => return None,
                Ok(Line::Long) => match self.cap.clone().and_then(|c| self.long_row(row, c)) {
                    Some(found) => return Some(found),
                    None => continue,
                },
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

    fn cap(&mut self, cap: TextCap) {
        self.cap = Some(cap);
    }
}

/// Plain text, one document per line (without its line ending); row N is line N+1.
pub(super) struct TextLines {
    lines: LineReader,
    cap: Option<TextCap>,
}

impl TextLines {
    pub(super) fn open(path: (&Path, Decoding)) -> Result<Self, DatasetError> {
        Ok(Self {
            lines: LineReader::open(path)?,
            cap: None,
        })
    }
}

impl Source for TextLines {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        let row = self.lines.line;
        let mut buf = Vec::new();
        let limit = self.cap.as_ref().map_or(usize::MAX, TextCap::whole_line);
        let line = match self.lines.next_line_upto(&mut buf, limit) {
            Ok(line) => line,
            Err(e) => return Some(Err(self.lines.failed(row, e))),
        };
        let origin = self.lines.origin(row + 1);
        let text = match (line, self.cap.clone()) {
            (Line::End, _) => return None,
            (Line::Long, Some(cap)) => match read_capped(&buf, self.lines.rest_of_line(), cap) {
                Ok(read) => read,
                Err(e) => return Some(Err(self.lines.failed(row, e))),
            },
            _ => utf8(buf).map(|text| (text, 0)),
        };
        let cut = text.as_ref().map_or(0, |(_, cut)| *cut);
        let read = RawSample::read(row, origin, text.map(|(t, _)| (t, Map::new())));
        Some(read.map(|s| s.cut(cut)))
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        self.lines.skip_lines(n)
    }

    fn cap(&mut self, cap: TextCap) {
        self.cap = Some(cap);
    }
}
