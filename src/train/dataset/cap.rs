//! Oversized documents: what the reader keeps of each paragraph.
//!
//! Path A trains at most `paragraph_token_cap` tokens of a paragraph (TRAINING.md 2.3:
//! "tokenize and keep at most 2048 tokens"), so holding the rest of a 50 MB paragraph
//! only costs memory. [`CappedText`] takes a document in pieces as it is read and
//! keeps each paragraph whole up to [`TextCap::keep_bytes`] bytes (counted from its
//! first non-space character: enough for the cap's tokens, since no token stands for
//! more than GPT-2's longest), then up to the next place where the tokenizer's pieces
//! surely split ([`is_token_boundary`]); the rest of that paragraph is tokenized only
//! to be counted, in pieces cut at such places, and dropped. The kept text therefore
//! gives exactly the tokens the whole text would give, up to and past the cap, and the
//! counts in the run record stay exact ([`CappedText::finish`]). Paragraphs are split
//! as the segmenter splits them (Python's `\n\s*\n`), and every separator is kept.

use std::io::Read;
use std::sync::Arc;

use super::BadReason;
use crate::train::segment::is_python_space;
use crate::train::tokenizer::{is_token_boundary, last_token_boundary};

/// How many tokens a text holds (GPT-2's count, `Gpt2Tokenizer::count`).
pub type CountTokens = Arc<dyn Fn(&str) -> u64 + Send + Sync>;

/// Dropped text is counted in pieces of about this many bytes.
const COUNT_PIECE: usize = 256 * 1024;
/// Lines up to this long are read whole, as they always were.
const WHOLE_LINE: usize = 1 << 20;

/// What the reader keeps of each paragraph (path A's cap, applied while reading).
#[derive(Clone)]
pub struct TextCap {
    keep_bytes: usize,
    count: CountTokens,
    /// Dropped text is counted in pieces of about this many bytes.
    count_piece: usize,
}

impl std::fmt::Debug for TextCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCap")
            .field("keep_bytes", &self.keep_bytes)
            .finish()
    }
}

impl TextCap {
    /// A cap of `token_cap` tokens per paragraph for a tokenizer whose longest token
    /// stands for `longest_token_bytes` bytes, counting dropped text with `count`.
    pub fn new(token_cap: usize, longest_token_bytes: usize, count: CountTokens) -> Self {
        Self {
            // 11 characters pass the reference filter; a few more bytes than that.
            keep_bytes: token_cap.saturating_mul(longest_token_bytes).max(64),
            count,
            count_piece: COUNT_PIECE,
        }
    }

    /// Bytes of a paragraph, from its first non-space character, kept before a cut.
    pub fn keep_bytes(&self) -> usize {
        self.keep_bytes
    }

    /// Lines up to this many bytes are read whole; longer ones are streamed.
    pub fn whole_line(&self) -> usize {
        self.keep_bytes.max(WHOLE_LINE)
    }
}

impl TextCap {
    /// The same cap counting dropped text in pieces of `bytes` (tests: small pieces).
    #[cfg(test)]
    fn counting_in(self, bytes: usize) -> Self {
        Self {
            count_piece: bytes,
            ..self
        }
    }
}

/// Where the paragraph being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Under the cap: keep everything.
    Keep,
    /// Past the cap's bytes: keep until a token boundary.
    Seek,
    /// Past the cut: count and drop until the paragraph ends.
    Drop,
}

/// One document on its way in, capped per paragraph ([`TextCap`]).
#[derive(Debug)]
pub struct CappedText {
    cap: TextCap,
    text: String,
    mode: Mode,
    /// Bytes of this paragraph since its first non-space character; `None` before it.
    paragraph: Option<usize>,
    /// Newlines in the whitespace run the reader is in (0: in no run after a newline).
    newlines: u32,
    /// While dropping: that whitespace run, kept if it turns out to be a separator.
    run: String,
    /// While seeking: a space after the last kept character, held back because the
    /// cut may fall before it.
    held_space: bool,
    /// Dropped text not yet counted; it starts at a token boundary.
    dropped: String,
    tokens_cut: u64,
}

impl CappedText {
    /// An empty document under `cap`.
    pub fn new(cap: TextCap) -> Self {
        Self {
            cap,
            text: String::new(),
            mode: Mode::Keep,
            paragraph: None,
            newlines: 0,
            run: String::new(),
            held_space: false,
            dropped: String::new(),
            tokens_cut: 0,
        }
    }

    /// Adds the next piece of the document.
    pub fn push(&mut self, mut piece: &str) {
        while !piece.is_empty() {
            piece = match self.mode {
                _ if self.newlines > 0 && self.mode != Mode::Drop => self.kept_run(piece),
                Mode::Keep => self.keep(piece),
                Mode::Seek => self.seek(piece),
                Mode::Drop if self.newlines > 0 => self.dropped_run(piece),
                Mode::Drop => self.drop_text(piece),
            };
        }
    }

    /// The kept text, and how many tokens the dropped text held.
    pub fn finish(mut self) -> (String, u64) {
        if self.held_space {
            self.text.push(' ');
        }
        if self.mode == Mode::Drop {
            self.count_dropped();
            // A separator at the very end still makes the segmenter's last, empty piece.
            if self.newlines >= 2 {
                self.text.push_str(&self.run);
            }
        }
        (self.text, self.tokens_cut)
    }

    /// Keeps text up to the next newline, or up to where the paragraph reaches the
    /// cap's bytes (then a cut is sought).
    fn keep<'a>(&mut self, piece: &'a str) -> &'a str {
        let mut end = memchr::memchr(b'\n', piece.as_bytes()).map_or(piece.len(), |i| i + 1);
        // Where this paragraph's counted bytes start in `piece`, and how many came before.
        let (before, from) = match self.paragraph {
            Some(n) => (n, 0),
            None => (0, piece[..end].find(|c| !is_python_space(c)).unwrap_or(end)),
        };
        let room = self.cap.keep_bytes.saturating_sub(before);
        let reached = from < end && end - from >= room;
        if reached {
            let mut stop = from + room;
            while !piece.is_char_boundary(stop) {
                stop += 1;
            }
            end = stop.min(end);
            self.mode = Mode::Seek;
        }
        let part = &piece[..end];
        self.text.push_str(part);
        if from < end {
            self.paragraph = Some(before + end - from);
        }
        if part.ends_with('\n') {
            self.newlines = 1;
        }
        &piece[end..]
    }

    /// Keeps a whitespace run after a newline; a run with a second newline ends the
    /// paragraph (the segmenter's separator), anything else continues it.
    fn kept_run<'a>(&mut self, piece: &'a str) -> &'a str {
        for (i, c) in piece.char_indices() {
            if !is_python_space(c) {
                if self.newlines >= 2 {
                    self.paragraph = None;
                    self.mode = Mode::Keep;
                }
                self.newlines = 0;
                return &piece[i..];
            }
            if c == '\n' {
                self.newlines += 1;
            }
            self.text.push(c);
            self.paragraph = self.paragraph.map(|n| n + c.len_utf8());
        }
        ""
    }

    /// Keeps characters until a token boundary, where dropping starts.
    fn seek<'a>(&mut self, piece: &'a str) -> &'a str {
        for (i, c) in piece.char_indices() {
            if self.held_space {
                self.held_space = false;
                let last = self.text.chars().next_back();
                if last.is_some_and(|l| is_token_boundary(l, ' ', Some(c))) {
                    self.start_drop(" ");
                    return &piece[i..];
                }
                // No cut: the space stays, and no piece ends at a space.
                self.text.push(' ');
            } else if let Some(last) = self.text.chars().next_back() {
                if c == ' ' {
                    // Whether to cut before it depends on the character after it.
                    self.held_space = true;
                    continue;
                }
                if is_token_boundary(last, c, None) {
                    self.start_drop("");
                    return &piece[i..];
                }
            }
            self.text.push(c);
            if c == '\n' {
                self.newlines = 1;
                return &piece[i + 1..];
            }
        }
        ""
    }

    fn start_drop(&mut self, first: &str) {
        self.mode = Mode::Drop;
        self.dropped.push_str(first);
    }

    /// Drops text up to the next newline, counting it in pieces.
    fn drop_text<'a>(&mut self, piece: &'a str) -> &'a str {
        let rest = match memchr::memchr(b'\n', piece.as_bytes()) {
            Some(i) => {
                self.dropped.push_str(&piece[..i]);
                self.run.push('\n');
                self.newlines = 1;
                &piece[i + 1..]
            }
            None => {
                self.dropped.push_str(piece);
                ""
            }
        };
        if self.dropped.len() >= self.cap.count_piece {
            if let Some(cut) = last_token_boundary(&self.dropped) {
                self.tokens_cut += (self.cap.count)(&self.dropped[..cut]);
                self.dropped.drain(..cut);
            }
        }
        rest
    }

    /// A whitespace run while dropping: a separator ends the paragraph (the run is
    /// kept), anything else is dropped with the paragraph.
    fn dropped_run<'a>(&mut self, piece: &'a str) -> &'a str {
        for (i, c) in piece.char_indices() {
            if !is_python_space(c) {
                if self.newlines >= 2 {
                    self.count_dropped();
                    self.text.push_str(&self.run);
                    self.paragraph = None;
                    self.mode = Mode::Keep;
                } else {
                    self.dropped.push_str(&self.run);
                }
                self.run.clear();
                self.newlines = 0;
                return &piece[i..];
            }
            if c == '\n' {
                self.newlines += 1;
            }
            self.run.push(c);
        }
        ""
    }

    /// Counts the rest of the dropped paragraph, without the trailing whitespace the
    /// segmenter strips.
    fn count_dropped(&mut self) {
        let rest = self.dropped.trim_end_matches(is_python_space);
        self.tokens_cut += (self.cap.count)(rest);
        self.dropped.clear();
    }
}

/// Bytes to text, one chunk at a time: a character split between chunks waits for the
/// next, and the first byte that is not UTF-8 is reported by its offset in the stream.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
    offset: usize,
}

impl Utf8Stream {
    /// Decodes `bytes`, handing the text to `out`; `Err(offset)` names the first byte
    /// that is not UTF-8, counted from the start of the stream.
    pub fn push(&mut self, mut bytes: &[u8], mut out: impl FnMut(&str)) -> Result<(), usize> {
        while !self.pending.is_empty() && !bytes.is_empty() {
            self.pending.push(bytes[0]);
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.pending) {
                Ok(c) => {
                    out(c);
                    self.offset += self.pending.len();
                    self.pending.clear();
                }
                Err(e) if e.error_len().is_some() => return Err(self.offset),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                out(text);
                self.offset += bytes.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // Checked by `from_utf8` just now.
                out(std::str::from_utf8(&bytes[..valid]).unwrap_or_default());
                self.offset += valid;
                if e.error_len().is_some() {
                    return Err(self.offset);
                }
                self.pending.extend_from_slice(&bytes[valid..]);
            }
        }
        Ok(())
    }

    /// Ends the stream: a character cut off at the end is not UTF-8.
    pub fn finish(&self) -> Result<(), usize> {
        match self.pending.is_empty() {
            true => Ok(()),
            false => Err(self.offset),
        }
    }
}

/// Reads a long document (a line or a file): `head`, then `rest`, as UTF-8 under `cap`. `Err` only when
/// reading failed; the stream is always read to its end.
pub fn read_capped(
    head: &[u8],
    mut rest: impl Read,
    cap: TextCap,
) -> std::io::Result<Result<(String, u64), BadReason>> {
    let mut utf8 = Utf8Stream::default();
    let mut capped = CappedText::new(cap);
    let mut bad = utf8.push(head, |piece| capped.push(piece)).err();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rest.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if bad.is_none() {
            bad = utf8.push(&buf[..n], |piece| capped.push(piece)).err();
        }
    }
    let bad = bad.or(utf8.finish().err());
    Ok(match bad {
        Some(at) => Err(BadReason::InvalidUtf8(at)),
        None => Ok(capped.finish()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;
    use crate::train::segment::{ChunkPlan, Segmentation, Segmenter};
    use crate::train::tokenizer::Gpt2Tokenizer;

    static GPT2: LazyLock<Gpt2Tokenizer> = LazyLock::new(|| Gpt2Tokenizer::new().unwrap());

    /// Path A's plan of `text` with a cap of `cap` tokens, plus `cut` dropped tokens.
    fn plan(text: &str, cap: usize, cut: u64) -> ChunkPlan {
        let segmenter = Segmenter::new(Segmentation::Paragraphs, 5)
            .and_then(|s| s.with_paragraph_token_cap(cap))
            .unwrap();
        let mut plan = segmenter.plan(text, &|t: &str| GPT2.tokenize(t));
        plan.counts.tokens += cut;
        plan.counts.tokens_over_cap += cut;
        plan
    }

    fn capped(cap: usize, pieces: &[&str]) -> (String, u64) {
        let count: CountTokens = Arc::new(|t: &str| GPT2.count(t) as u64);
        let cap = TextCap::new(cap, GPT2.longest_token_bytes(), count).counting_in(50);
        let mut text = CappedText::new(cap);
        for piece in pieces {
            text.push(piece);
        }
        text.finish()
    }

    /// Words, spaces, newlines, blank-line separators and the characters that decide
    /// where a cut may fall.
    fn document() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            "[a-zA-Z]{1,9}",
            "[0-9]{1,4}",
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just("\n\n".to_string()),
            Just(" \n \t\n".to_string()),
            Just("\r\n".to_string()),
            "[.,;'|!?-]",
            Just("<|endoftext|>".to_string()),
            Just("é中，\u{1c}".to_string()),
        ];
        proptest::collection::vec(word, 0..700).prop_map(|w| w.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the document and however it arrives, the capped text trains the
        /// same chunks, and the counts say the same, as the whole text.
        #[test]
        fn capped_text_plans_like_the_whole_text(doc in document(), cuts in proptest::collection::vec(0..4000usize, 0..8)) {
            let mut at: Vec<usize> = cuts
                .into_iter()
                .map(|c| c.min(doc.len()))
                .filter(|&c| doc.is_char_boundary(c))
                .collect();
            at.sort_unstable();
            let mut pieces = Vec::new();
            let mut from = 0;
            for c in at.into_iter().chain([doc.len()]) {
                pieces.push(&doc[from..c]);
                from = c;
            }
            let (text, cut) = capped(1, &pieces);
            prop_assert_eq!(plan(&text, 1, cut), plan(&doc, 1, 0));
            prop_assert!(text.len() <= doc.len());
        }
    }

    #[test]
    fn a_paragraph_past_the_cap_is_kept_only_to_a_token_boundary_after_its_bytes() {
        let long = "In the beginning God created the heaven and the earth. ".repeat(200);
        let doc = format!("First paragraph here.\n\n{long}\n \n  Last one, short.\n\n");
        let (text, cut) = capped(1, &[&doc]);
        // One token's worth of bytes (128) and a little more, then the separator.
        let kept = text.split("\n \n").next().unwrap();
        assert!(kept.len() < 23 + 128 + 20, "{kept:?}");
        assert!(text.ends_with("\n \n  Last one, short.\n\n"), "{text:?}");
        assert!(cut > 2000, "{cut}");
        assert_eq!(plan(&text, 1, cut), plan(&doc, 1, 0));
    }

    #[test]
    fn utf8_split_between_chunks_waits_and_a_bad_byte_is_named_by_offset() {
        let mut stream = Utf8Stream::default();
        let mut out = String::new();
        let bytes = "aé中".as_bytes();
        for b in bytes {
            stream.push(&[*b], |t| out.push_str(t)).unwrap();
        }
        assert_eq!(out, "aé中");
        assert_eq!(stream.finish(), Ok(()));
        assert_eq!(stream.push(b"ok\xff", |_| ()), Err(8));
        let mut cut_off = Utf8Stream::default();
        cut_off
            .push("ab\u{e9}".as_bytes().split_last().unwrap().1, |_| ())
            .unwrap();
        assert_eq!(cut_off.finish(), Err(2));
    }
}
