//! Segmentation: one sample's text becomes the ordered node0 chunks.
//!
//! Two rules, matching the reference trainer's two live paths (TRAINING.md 2.3):
//!
//! - [`Segmentation::Paragraphs`] (path A, the default): split the text at blank
//!   lines (a newline, optional whitespace, a newline; "whitespace" as Python's
//!   `\s`), strip each piece, drop pieces shorter than 10 characters, tokenize, keep
//!   the first 2048 tokens of each paragraph, then cut chunk_size pieces where a
//!   tail of 1 or 2 tokens is merged into the piece before it and a paragraph with
//!   fewer than 3 tokens is dropped. Chunks never span paragraphs.
//! - [`Segmentation::Slices`] (path B): tokenize the raw text as it is and slice it
//!   into consecutive chunk_size pieces.
//!
//! One deviation from path B, deliberate (TRAINING.md 10.23): a final slice of a
//! single token is not put in the plan. KATO stores nothing for a one-symbol pattern,
//! and the reference then passed the placeholder `UNKNOWN` upward; katotune never
//! sends it and counts the token in [`SegmentCounts::tokens_dropped`] instead. The
//! node0 knowledge base is the same either way.

use serde::{Deserialize, Serialize};

use super::tokenizer::Symbol;
pub use crate::terms::Segmentation;

/// Pieces shorter than this many characters (after stripping) are dropped (path A).
pub const MIN_PARAGRAPH_CHARS: usize = 10;
/// Paragraphs with fewer tokens are dropped, and shorter tails merged (path A).
pub const MIN_CHUNK_TOKENS: usize = 3;
/// Tokens kept per paragraph unless configured otherwise (path A).
pub const DEFAULT_PARAGRAPH_TOKEN_CAP: usize = 2048;

/// Turns text into the symbols node0 observes, one symbol per token.
///
/// The GPT-2 tokenizer implements it; so does any `Fn(&str) -> Vec<Symbol>`.
pub trait Tokenize {
    /// The token strings of `text`, in order.
    fn tokenize(&self, text: &str) -> Vec<Symbol>;
}

impl<F: Fn(&str) -> Vec<Symbol>> Tokenize for F {
    fn tokenize(&self, text: &str) -> Vec<Symbol> {
        self(text)
    }
}

/// A segmentation setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// A chunk of fewer than 2 tokens can never be stored by KATO.
    #[error(
        "node0 chunk size {chunk_size} is too small: KATO stores only patterns of 2 or more \
         symbols; set the node0 chunk size to 2 or more"
    )]
    ChunkSizeTooSmall {
        /// The rejected chunk size.
        chunk_size: usize,
    },
    /// A cap of 0 tokens would drop every paragraph.
    #[error("the paragraph token cap is 0, which drops every paragraph; use 1 or more (the reference uses 2048)")]
    ZeroTokenCap,
}

/// What happened to one sample's text on its way to chunks, for the run record.
///
/// Always `tokens == tokens_over_cap + tokens_dropped + (tokens in chunks)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentCounts {
    /// Pieces the text was split into at blank lines (always 1 for slices).
    pub pieces: u64,
    /// Pieces dropped before tokenizing: empty, or shorter than 10 characters once stripped.
    pub pieces_too_short: u64,
    /// Paragraphs dropped because they held fewer than 3 tokens after the cap.
    pub paragraphs_too_few_tokens: u64,
    /// Tokens the tokenizer produced for the text it was given.
    pub tokens: u64,
    /// Tokens cut off by the per-paragraph cap.
    pub tokens_over_cap: u64,
    /// Tokens of dropped paragraphs, and a lone final token of a slice plan.
    pub tokens_dropped: u64,
}

impl SegmentCounts {
    /// Adds another sample's counts to these.
    pub fn add(&mut self, other: &SegmentCounts) {
        self.pieces += other.pieces;
        self.pieces_too_short += other.pieces_too_short;
        self.paragraphs_too_few_tokens += other.paragraphs_too_few_tokens;
        self.tokens += other.tokens;
        self.tokens_over_cap += other.tokens_over_cap;
        self.tokens_dropped += other.tokens_dropped;
    }
}

/// One sample's node0 chunks, in the order node0 learns them, and how they came about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Each chunk is one node0 learn: its tokens, one symbol per event.
    pub chunks: Vec<Vec<Symbol>>,
    /// Counts for the run record.
    pub counts: SegmentCounts,
}

/// Cuts samples into node0 chunks under one validated setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmenter {
    segmentation: Segmentation,
    chunk_size: usize,
    paragraph_token_cap: usize,
}

impl Segmenter {
    /// A segmenter with node0 chunk size `chunk_size` and the reference's 2048-token cap.
    pub fn new(segmentation: Segmentation, chunk_size: usize) -> Result<Self, SegmentError> {
        if chunk_size < 2 {
            return Err(SegmentError::ChunkSizeTooSmall { chunk_size });
        }
        Ok(Segmenter {
            segmentation,
            chunk_size,
            paragraph_token_cap: DEFAULT_PARAGRAPH_TOKEN_CAP,
        })
    }

    /// The same segmenter keeping at most `cap` tokens per paragraph (path A only).
    pub fn with_paragraph_token_cap(self, cap: usize) -> Result<Self, SegmentError> {
        if cap == 0 {
            return Err(SegmentError::ZeroTokenCap);
        }
        Ok(Segmenter {
            paragraph_token_cap: cap,
            ..self
        })
    }

    /// The rule this segmenter applies.
    pub fn segmentation(&self) -> Segmentation {
        self.segmentation
    }

    /// Tokens kept per paragraph (path A; path B keeps every token).
    pub fn paragraph_token_cap(&self) -> usize {
        self.paragraph_token_cap
    }

    /// Node0's chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Cuts one sample's `text` into node0 chunks.
    pub fn plan(&self, text: &str, tokenizer: &dyn Tokenize) -> ChunkPlan {
        match self.segmentation {
            Segmentation::Paragraphs => self.plan_paragraphs(text, tokenizer),
            Segmentation::Slices => self.plan_slices(text, tokenizer),
        }
    }

    fn plan_paragraphs(&self, text: &str, tokenizer: &dyn Tokenize) -> ChunkPlan {
        let mut plan = ChunkPlan::default();
        for piece in split_paragraphs(text) {
            plan.counts.pieces += 1;
            let paragraph = piece.trim_matches(is_python_space);
            if paragraph.chars().count() < MIN_PARAGRAPH_CHARS {
                plan.counts.pieces_too_short += 1;
                continue;
            }
            let mut tokens = tokenizer.tokenize(paragraph);
            plan.counts.tokens += tokens.len() as u64;
            if tokens.len() > self.paragraph_token_cap {
                plan.counts.tokens_over_cap += (tokens.len() - self.paragraph_token_cap) as u64;
                tokens.truncate(self.paragraph_token_cap);
            }
            if tokens.len() < MIN_CHUNK_TOKENS {
                if !tokens.is_empty() {
                    plan.counts.paragraphs_too_few_tokens += 1;
                    plan.counts.tokens_dropped += tokens.len() as u64;
                }
                continue;
            }
            push_paragraph_chunks(&mut plan.chunks, tokens, self.chunk_size);
        }
        plan
    }

    fn plan_slices(&self, text: &str, tokenizer: &dyn Tokenize) -> ChunkPlan {
        let mut plan = ChunkPlan::default();
        plan.counts.pieces = 1;
        let tokens = tokenizer.tokenize(text);
        plan.counts.tokens = tokens.len() as u64;
        let mut chunks: Vec<Vec<Symbol>> = tokens
            .chunks(self.chunk_size)
            .map(<[Symbol]>::to_vec)
            .collect();
        if chunks.last().is_some_and(|last| last.len() < 2) {
            chunks.pop();
            plan.counts.tokens_dropped = 1;
        }
        plan.chunks = chunks;
        plan
    }
}

/// Cuts one paragraph of at least [`MIN_CHUNK_TOKENS`] tokens into chunks of
/// `chunk_size`, merging a 1- or 2-token tail into the piece before it.
fn push_paragraph_chunks(out: &mut Vec<Vec<Symbol>>, tokens: Vec<Symbol>, chunk_size: usize) {
    if tokens.len() <= chunk_size {
        out.push(tokens);
        return;
    }
    let mut rest = tokens.as_slice();
    while !rest.is_empty() {
        let left_after = rest.len().saturating_sub(chunk_size);
        if left_after > 0 && left_after < MIN_CHUNK_TOKENS {
            out.push(rest.to_vec());
            return;
        }
        let (piece, tail) = rest.split_at(chunk_size.min(rest.len()));
        out.push(piece.to_vec());
        rest = tail;
    }
}

/// Whether Python's `str.isspace()` (and so `\s` and `str.strip()`) holds for `c`.
///
/// Python also counts the four information separators U+001C..U+001F as whitespace;
/// Rust's `char::is_whitespace` does not.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Splits `text` the way Python's `re.split(r'\n\s*\n', text)` does.
///
/// A separator starts at a newline and, `\s*` being greedy, ends at the last newline
/// of the whitespace run that follows it.
pub fn split_paragraphs(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find('\n') {
        let newline = search_from + offset;
        let after = newline + 1;
        let mut separator_end = None;
        for (i, c) in text[after..].char_indices() {
            if !is_python_space(c) {
                break;
            }
            if c == '\n' {
                separator_end = Some(after + i + 1);
            }
        }
        match separator_end {
            Some(end) => {
                pieces.push(&text[piece_start..newline]);
                piece_start = end;
                search_from = end;
            }
            None => search_from = after,
        }
    }
    pieces.push(&text[piece_start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Symbol> {
        text.split_whitespace().map(Symbol::from).collect()
    }

    fn sizes(plan: &ChunkPlan) -> Vec<usize> {
        plan.chunks.iter().map(Vec::len).collect()
    }

    /// `n` tokens; from 2 tokens on, the text is at least 10 characters.
    fn numbered(n: usize) -> String {
        (0..n)
            .map(|i| format!("tok{i:03}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn blank_lines_split_like_python_regex() {
        assert_eq!(split_paragraphs("a\n\n\nb"), ["a", "b"]);
        assert_eq!(split_paragraphs("a\n \n b"), ["a", " b"]);
        assert_eq!(split_paragraphs("a\n \n\n c\nd"), ["a", " c\nd"]);
        assert_eq!(split_paragraphs("a\nb"), ["a\nb"]);
        assert_eq!(split_paragraphs("\n\nx\n\n"), ["", "x", ""]);
        assert_eq!(split_paragraphs("a\r\n\r\nb"), ["a\r", "b"]);
        assert_eq!(split_paragraphs("a\n\u{a0}\u{1c}\nb"), ["a", "b"]);
        assert_eq!(split_paragraphs("a\n x \nb"), ["a\n x \nb"]);
        assert_eq!(split_paragraphs(""), [""]);
    }

    #[test]
    fn pieces_under_ten_characters_are_dropped_and_ten_is_kept() {
        let seg = Segmenter::new(Segmentation::Paragraphs, 5).unwrap();
        let plan = seg.plan("a b c d e\n\na b c d ef\n\n  \n\né é é é é", &words);
        assert_eq!(plan.chunks, vec![words("a b c d ef")]);
        assert_eq!(plan.counts.pieces, 3);
        assert_eq!(plan.counts.pieces_too_short, 2);
        // Python strips U+001C..U+001F too, leaving 9 characters here.
        let plan = seg.plan("\u{1c}abc def g\u{1f}", &words);
        assert_eq!(plan.counts.pieces_too_short, 1);
    }

    #[test]
    fn paragraph_chunking_merges_short_tails() {
        let seg = Segmenter::new(Segmentation::Paragraphs, 5).unwrap();
        let table: [(usize, &[usize]); 12] = [
            (3, &[3]),
            (4, &[4]),
            (5, &[5]),
            (6, &[6]),
            (7, &[7]),
            (8, &[5, 3]),
            (10, &[5, 5]),
            (11, &[5, 6]),
            (12, &[5, 7]),
            (13, &[5, 5, 3]),
            (23, &[5, 5, 5, 5, 3]),
            (22, &[5, 5, 5, 7]),
        ];
        for (n, expected) in table {
            let plan = seg.plan(&numbered(n), &words);
            assert_eq!(sizes(&plan), expected, "{n} tokens");
            assert_eq!(plan.chunks.concat(), words(&numbered(n)));
        }
    }

    #[test]
    fn paragraphs_with_fewer_than_three_tokens_are_dropped() {
        let seg = Segmenter::new(Segmentation::Paragraphs, 5).unwrap();
        let plan = seg.plan("abcdefghij klm\n\nt0 t1 t2 t3", &words);
        assert_eq!(plan.chunks, vec![words("t0 t1 t2 t3")]);
        assert_eq!(plan.counts.paragraphs_too_few_tokens, 1);
        assert_eq!(plan.counts.tokens_dropped, 2);
        assert_eq!(plan.counts.tokens, 6);
    }

    #[test]
    fn chunks_never_span_paragraphs() {
        let seg = Segmenter::new(Segmentation::Paragraphs, 5).unwrap();
        let plan = seg.plan("a0 a1 a2 a3\n\nb0 b1 b2 b3 b4 b5 b6 b7", &words);
        assert_eq!(sizes(&plan), [4, 5, 3]);
    }

    #[test]
    fn paragraph_cap_keeps_the_first_tokens() {
        let seg = Segmenter::new(Segmentation::Paragraphs, 5)
            .unwrap()
            .with_paragraph_token_cap(11)
            .unwrap();
        let plan = seg.plan(&numbered(30), &words);
        assert_eq!(sizes(&plan), [5, 6]);
        assert_eq!(plan.counts.tokens, 30);
        assert_eq!(plan.counts.tokens_over_cap, 19);
    }

    #[test]
    fn slices_keep_raw_text_and_drop_only_a_lone_last_token() {
        let chars = |text: &str| -> Vec<Symbol> {
            text.chars().map(|c| Symbol::from(c.to_string())).collect()
        };
        let seg = Segmenter::new(Segmentation::Slices, 4).unwrap();
        let plan = seg.plan(" ab\n\ncd \n", &chars);
        assert_eq!(sizes(&plan), [4, 4]);
        assert_eq!(plan.counts.tokens_dropped, 1);
        let plan = seg.plan(" ab\n\ncd ", &chars);
        assert_eq!(sizes(&plan), [4, 4]);
        assert_eq!(plan.counts.tokens_dropped, 0);
        let plan = seg.plan(" ab\n\ncd \n\n", &chars);
        assert_eq!(sizes(&plan), [4, 4, 2]);
    }

    #[test]
    fn unusable_settings_are_rejected() {
        assert_eq!(
            Segmenter::new(Segmentation::Slices, 1),
            Err(SegmentError::ChunkSizeTooSmall { chunk_size: 1 })
        );
        let seg = Segmenter::new(Segmentation::Paragraphs, 5).unwrap();
        assert_eq!(
            seg.with_paragraph_token_cap(0),
            Err(SegmentError::ZeroTokenCap)
        );
    }
}
