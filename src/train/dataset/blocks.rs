//! Plain text, one document per block of lines separated by blank lines.

use std::io::Read;
use std::path::Path;

use serde_json::Map;

use super::cap::{CappedText, TextCap, Utf8Stream};
use super::decode::Decoding;
use super::lines::{is_blank, utf8, Line, LineReader};
use super::{BadReason, BadSample, DatasetError, RawSample, Source};

/// Plain text, one document per block of non-blank lines, joined with `\n`.
/// Row N is the N+1th block; its origin is the block's first line.
pub(super) struct TextBlocks {
    lines: LineReader,
    blocks: u64,
    buf: Vec<u8>,
    cap: Option<TextCap>,
}

/// Where a block's bytes go: kept whole, or through the cap.
enum BlockText {
    Whole(Vec<u8>),
    Capped {
        utf8: Utf8Stream,
        text: CappedText,
        bad: Option<usize>,
    },
}

impl BlockText {
    fn new(cap: Option<TextCap>) -> Self {
        match cap {
            None => Self::Whole(Vec::new()),
            Some(cap) => Self::Capped {
                utf8: Utf8Stream::default(),
                text: CappedText::new(cap),
                bad: None,
            },
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        match self {
            Self::Whole(block) => block.extend_from_slice(bytes),
            Self::Capped { utf8, text, bad } => {
                if bad.is_none() {
                    *bad = utf8.push(bytes, |piece| text.push(piece)).err();
                }
            }
        }
    }

    /// The block's text and the tokens its cap dropped.
    fn finish(self) -> Result<(String, u64), BadReason> {
        match self {
            Self::Whole(block) => utf8(block).map(|text| (text, 0)),
            Self::Capped { utf8, text, bad } => match bad.or(utf8.finish().err()) {
                Some(at) => Err(BadReason::InvalidUtf8(at)),
                None => Ok(text.finish()),
            },
        }
    }
}

impl TextBlocks {
    pub(super) fn open(path: (&Path, Decoding)) -> Result<Self, DatasetError> {
        Ok(Self {
            lines: LineReader::open(path)?,
            blocks: 0,
            buf: Vec::new(),
            cap: None,
        })
    }

    /// Reads the next block into `block`; `Ok(None)` at the end, else its first line.
    fn next_block(&mut self, block: &mut BlockText) -> std::io::Result<Option<u64>> {
        let limit = self.cap.as_ref().map_or(usize::MAX, TextCap::whole_line);
        let mut first = None;
        loop {
            let mut line = self.lines.next_line_upto(&mut self.buf, limit)?;
            if line == Line::End {
                break;
            }
            if line == Line::Long && is_blank(&self.buf) {
                // Only whitespace so far: whether it ends the block needs the whole line.
                self.lines.rest_of_line().read_to_end(&mut self.buf)?;
                line = Line::Whole;
            }
            if line == Line::Whole && is_blank(&self.buf) {
                if first.is_some() {
                    break;
                }
                continue;
            }
            if first.is_some() {
                block.add(b"\n");
            } else {
                first = Some(self.lines.line);
            }
            block.add(&self.buf);
            if line == Line::Long {
                let mut rest = self.lines.rest_of_line();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = rest.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    block.add(&chunk[..n]);
                }
            }
        }
        Ok(first)
    }
}

impl Source for TextBlocks {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        let row = self.blocks;
        let mut block = BlockText::new(self.cap.clone());
        let first_line = match self.next_block(&mut block) {
            Ok(Some(line)) => line,
            Ok(None) => return None,
            Err(e) => return Some(Err(self.lines.failed(row, e))),
        };
        self.blocks += 1;
        let origin = self.lines.origin(first_line);
        let text = block.finish();
        let cut = text.as_ref().map_or(0, |(_, cut)| *cut);
        let read = RawSample::read(row, origin, text.map(|(t, _)| (t, Map::new())));
        Some(read.map(|s| s.cut(cut)))
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        let mut skipped = 0;
        while skipped < n {
            let mut block = BlockText::new(self.cap.clone());
            match self.next_block(&mut block) {
                Ok(Some(_)) => skipped += 1,
                Ok(None) => break,
                Err(e) => return Err(self.lines.read_error(e)),
            }
        }
        self.blocks += skipped;
        Ok(skipped)
    }

    fn cap(&mut self, cap: TextCap) {
        self.cap = Some(cap);
    }
}
