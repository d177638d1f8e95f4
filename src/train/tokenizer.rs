//! GPT-2's tokenizer, as KATO training sees it.
//!
//! The reference trainer feeds KATO the raw token strings that Hugging Face's GPT-2
//! tokenizer's `tokenize()` returns (TRAINING.md section 2.2): byte-level BPE over
//! GPT-2's pre-tokenizer pieces, each token's bytes written through GPT-2's
//! byte-to-unicode table (`Ġ` for a space, `Ċ` for a newline, `Ã©` for `é`). The
//! vocabulary and merges come from tiktoken's embedded `r50k_base`, which is GPT-2's
//! vocabulary, so nothing is downloaded. The literal `<|endoftext|>` stays one token,
//! as Hugging Face's added-token splitting keeps it.
//!
//! Checked against 77 vectors from Hugging Face's own tokenizer in
//! `tests/data/gpt2-token-vectors.json`.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use tiktoken_rs::{CoreBPE, Rank};

/// GPT-2's only special token; Hugging Face never splits it.
/// One token or pattern name as the trainer passes it around: shared, so handing a
/// token from the tokenizer to a worker and into a request body never copies it.
pub type Symbol = Arc<str>;

pub const END_OF_TEXT: &str = "<|endoftext|>";
/// The id of [`END_OF_TEXT`].
pub const END_OF_TEXT_ID: u32 = 50256;
/// Number of ids in GPT-2's vocabulary, special token included.
const VOCAB_SIZE: u32 = 50257;

/// Why the tokenizer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// tiktoken's embedded GPT-2 ranks did not load.
    #[error("could not load GPT-2's embedded vocabulary (tiktoken r50k_base): {0}; this is a build problem, reinstall katotune")]
    Vocabulary(String),
    /// A token id of GPT-2's vocabulary has no bytes in tiktoken's table.
    #[error(
        "GPT-2's embedded vocabulary has no token {0}; this is a build problem, reinstall katotune"
    )]
    MissingToken(u32),
}

/// GPT-2's byte-level BPE tokenizer. Cloning shares the vocabulary.
#[derive(Clone)]
pub struct Gpt2Tokenizer {
    inner: Arc<Vocabulary>,
}

struct Vocabulary {
    /// tiktoken's GPT-2 encoder, for pieces of [`LONG_PIECE`] bytes or more.
    bpe: CoreBPE,
    /// Token bytes to id, for whole pieces and for BPE's merged parts (tiktoken's
    /// `r50k_base` ranks; its map type, which [`tiktoken_rs::byte_pair_split`] takes).
    ranks: FxHashMap<Vec<u8>, Rank>,
    /// The pre-tokenizer without its lookahead; see [`Gpt2Tokenizer::encode_ordinary`].
    pieces: regex::Regex,
    /// The token string of each id, already mapped through the byte table.
    strings: Vec<Symbol>,
    /// Bytes of text the longest token stands for.
    longest: usize,
}

/// GPT-2's pre-tokenizer (tiktoken's `r50k_base` pattern) without its two whitespace
/// rules `\s++$|\s+(?!\S)`: plain `\s+` in their place, which the `regex` crate runs as a
/// DFA; the lookahead needs `fancy_regex`'s backtracking, which was most of a training
/// run's tokenizing time. [`Gpt2Tokenizer::encode_ordinary`] restores what the
/// lookahead decides.
const PIECES_WITHOUT_LOOKAHEAD: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// Pieces this long (bytes) go to tiktoken whole: its merge for long pieces is
/// O(n log n) where [`tiktoken_rs::byte_pair_split`] is quadratic (tiktoken's own
/// threshold). Its pattern finds the same single piece in a piece.
const LONG_PIECE: usize = 100;

impl std::fmt::Debug for Gpt2Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpt2Tokenizer")
            .field("vocabulary", &self.inner.strings.len())
            .finish()
    }
}

impl Gpt2Tokenizer {
    /// Loads GPT-2's vocabulary from tiktoken's embedded `r50k_base` ranks.
    pub fn new() -> Result<Self, TokenizerError> {
        let bpe =
            tiktoken_rs::r50k_base().map_err(|e| TokenizerError::Vocabulary(e.to_string()))?;
        let table = ByteTable::new();
        let strings = (0..VOCAB_SIZE)
            .map(|id| {
                let bytes = bpe
                    .decode_bytes(&[id as Rank])
                    .map_err(|_| TokenizerError::MissingToken(id))?;
                Ok(if id == END_OF_TEXT_ID {
                    Symbol::from(END_OF_TEXT)
                } else {
                    Symbol::from(table.encode(&bytes))
                })
            })
            .collect::<Result<Vec<_>, TokenizerError>>()?;
        // Each stand-in character is one byte of text; the special token is its 13 bytes.
        let longest = strings.iter().map(|s| s.chars().count()).max().unwrap_or(1);
        let ranks = (0..END_OF_TEXT_ID)
            .map(|id| {
                let bytes = bpe
                    .decode_bytes(&[id as Rank])
                    .map_err(|_| TokenizerError::MissingToken(id))?;
                Ok((bytes, id as Rank))
            })
            .collect::<Result<FxHashMap<_, _>, TokenizerError>>()?;
        let pieces = regex::Regex::new(PIECES_WITHOUT_LOOKAHEAD)
            .map_err(|e| TokenizerError::Vocabulary(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Vocabulary {
                bpe,
                ranks,
                pieces,
                strings,
                longest,
            }),
        })
    }

    /// The process's one tokenizer, loaded on first use and shared by every later run
    /// (a vocabulary takes tens of milliseconds to build and to drop, which `compare`
    /// paid on every run). Errors as [`Gpt2Tokenizer::new`]; a failed load is not kept.
    pub fn shared() -> Result<Self, TokenizerError> {
        static SHARED: std::sync::OnceLock<Gpt2Tokenizer> = std::sync::OnceLock::new();
        if let Some(tokenizer) = SHARED.get() {
            return Ok(tokenizer.clone());
        }
        let loaded = Self::new()?;
        Ok(SHARED.get_or_init(|| loaded).clone())
    }

    /// The token strings of `text`, as Hugging Face's GPT-2 `tokenize()` returns them.
    pub fn tokenize(&self, text: &str) -> Vec<Symbol> {
        self.encode(text)
            .into_iter()
            .map(|id| self.inner.strings[id as usize].clone())
            .collect()
    }

    /// The token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let mut parts = text.split(END_OF_TEXT);
        if let Some(first) = parts.next() {
            self.encode_ordinary(first, &mut ids);
        }
        for part in parts {
            ids.push(END_OF_TEXT_ID);
            self.encode_ordinary(part, &mut ids);
        }
        ids
    }

    /// Appends the ids of `text` (no special tokens) to `ids`: tiktoken's
    /// `encode_ordinary` for GPT-2, with its pre-tokenizer's lookahead done by hand.
    ///
    /// [`PIECES_WITHOUT_LOOKAHEAD`] splits `text` exactly as GPT-2's pattern does except
    /// at a run of two or more whitespace characters that a non-space follows: there
    /// `\s+(?!\S)` takes the run but its last character, which then starts the next
    /// piece (` word`, or a lone `\n`), where plain `\s+` takes the whole run. So such a
    /// piece gives back its last character and the search goes on from it. Every other
    /// alternative is unchanged (possessive `++` equals greedy `+` when nothing follows
    /// it in the alternative), and a run at the end of the text is whole under both.
    /// Checked against tiktoken's own `r50k_base` on the KJV corpus and random text
    /// (`tests/tokenizer.rs`).
    fn encode_ordinary(&self, text: &str, ids: &mut Vec<u32>) {
        let vocabulary = &*self.inner;
        let mut at = 0;
        while let Some(found) = vocabulary.pieces.find_at(text, at) {
            let mut piece = found.as_str();
            if found.end() < text.len() {
                let mut chars = piece.char_indices();
                if let (Some((_, first)), Some((last_at, _))) = (chars.next(), chars.next_back()) {
                    if first.is_whitespace()
                        && last_at > 0
                        && piece.chars().all(char::is_whitespace)
                    {
                        piece = &piece[..last_at];
                    }
                }
            }
            at = found.start() + piece.len();
            let bytes = piece.as_bytes();
            match vocabulary.ranks.get(bytes) {
                Some(&id) => ids.push(id),
                None if bytes.len() >= LONG_PIECE => {
                    ids.extend(vocabulary.bpe.encode_ordinary(piece))
                }
                None => ids.extend(
                    tiktoken_rs::byte_pair_split(bytes, &vocabulary.ranks)
                        .into_iter()
                        .map(|part| vocabulary.ranks[part]),
                ),
            }
        }
    }

    /// The number of tokens in `text`.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// The most bytes of text one token stands for: `n` tokens never span more than
    /// `n` times this, so a text's first `n` tokens lie within that many bytes.
    pub fn longest_token_bytes(&self) -> usize {
        self.inner.longest
    }

    /// The token string of `id`, or `None` outside GPT-2's vocabulary.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.inner.strings.get(id as usize).map(|s| &**s)
    }
}

/// Whether a text may be cut between `before` and `after` (and `then`, the character
/// after `after`, when known) so that its tokens are the tokens of the part before the
/// cut followed by those of the part after it, whatever else the text holds.
///
/// GPT-2's pre-tokenizer (tiktoken's `r50k_base` pattern, `'(?:[sdmt]|ll|ve|re)|
/// ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`) splits text into
/// pieces and BPE never merges across pieces, so a cut where a piece surely ends and
/// the next surely starts the same way from either side changes nothing. Two such
/// places, both needing no whitespace before the cut (so `\s` runs and the end-of-text
/// rule never reach it) and no `'` beside it (contractions):
///
/// - between a letter, a digit and any other character (`\p{L}`, `\p{N}`, the rest),
///   where the class changes, neither being `|` (so never inside `<|endoftext|>`);
/// - before a space that a non-space character follows: the space starts the next
///   piece (` ?\p{L}++` and its kin) on either side.
///
/// Python's extra separators U+001C..U+001F count as spaces here too, so a cut never
/// leaves one at the end of a paragraph that `str.strip()` would remove. Checked by a
/// property test against the tokenizer itself (`tests/tokenizer.rs`).
pub fn is_token_boundary(before: char, after: char, then: Option<char>) -> bool {
    let Some(class) = piece_class(before) else {
        return false;
    };
    if after == ' ' {
        return then.is_some_and(|c| !is_space(c));
    }
    piece_class(after).is_some_and(|next| next != class)
}

/// The last place in `text` (a byte offset, neither 0 nor `text.len()`) where
/// [`is_token_boundary`] allows a cut, looking at the characters around it.
pub fn last_token_boundary(text: &str) -> Option<usize> {
    let mut after: Option<(usize, char)> = None;
    let mut then: Option<char> = None;
    for (i, before) in text.char_indices().rev() {
        if let Some((at, c)) = after {
            if is_token_boundary(before, c, then) {
                return Some(at);
            }
        }
        then = after.map(|(_, c)| c);
        after = Some((i, before));
    }
    None
}

/// Letters, digits and the rest, as GPT-2's pre-tokenizer groups characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceClass {
    Letter,
    Number,
    Other,
}

/// The class of a character a cut may touch; `None` for whitespace (`\s`, and Python's
/// U+001C..U+001F), `'` and `|`.
fn piece_class(c: char) -> Option<PieceClass> {
    use std::sync::LazyLock;
    // The same Unicode tables tiktoken's regex engine uses (regex-syntax, one version
    // for both through Cargo.lock).
    static LETTER: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"\A\p{L}\z").ok());
    static NUMBER: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"\A\p{N}\z").ok());
    if is_space(c) || c == '\'' || c == '|' {
        return None;
    }
    if c.is_ascii() {
        return Some(if c.is_ascii_alphabetic() {
            PieceClass::Letter
        } else if c.is_ascii_digit() {
            PieceClass::Number
        } else {
            PieceClass::Other
        });
    }
    let mut buf = [0u8; 4];
    let text = c.encode_utf8(&mut buf);
    let is = |re: &Option<regex::Regex>| re.as_ref().map(|re| re.is_match(text));
    match (is(&LETTER), is(&NUMBER)) {
        (Some(true), _) => Some(PieceClass::Letter),
        (_, Some(true)) => Some(PieceClass::Number),
        (Some(false), Some(false)) => Some(PieceClass::Other),
        // A class that cannot be told is no place to cut.
        _ => None,
    }
}

/// `\s` of the pre-tokenizer (Unicode White_Space) or Python's `str.isspace()`.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// GPT-2's `bytes_to_unicode` table: every byte gets a printable stand-in character.
///
/// The printable ranges `!`..`~`, `¡`..`¬` and `®`..`ÿ` stand for themselves; the other
/// bytes, in increasing order, get U+0100, U+0101, and so on.
#[derive(Debug, Clone)]
pub struct ByteTable {
    chars: [char; 256],
    /// Indexed by stand-in code point (all below U+0144).
    bytes: [Option<u8>; 0x144],
}

impl Default for ByteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ByteTable {
    /// Builds the table from its definition.
    pub fn new() -> Self {
        let mut chars = ['\0'; 256];
        let mut next = 256u32;
        for (byte, slot) in chars.iter_mut().enumerate() {
            let code = byte as u32;
            let printable = (0x21..=0x7E).contains(&code)
                || (0xA1..=0xAC).contains(&code)
                || (0xAE..=0xFF).contains(&code);
            let mapped = if printable {
                code
            } else {
                next += 1;
                next - 1
            };
            // Every value is below U+0144, so never a surrogate.
            *slot = char::from_u32(mapped).unwrap_or(char::REPLACEMENT_CHARACTER);
        }
        let mut bytes = [None; 0x144];
        for (byte, &c) in chars.iter().enumerate() {
            bytes[c as usize] = Some(byte as u8);
        }
        Self { chars, bytes }
    }

    /// The stand-in character of `byte`.
    pub fn char_of(&self, byte: u8) -> char {
        self.chars[byte as usize]
    }

    /// `bytes` written with the stand-in characters.
    pub fn encode(&self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.char_of(b)).collect()
    }

    /// The bytes behind a token string, or `None` if it holds a character that stands
    /// for no byte.
    pub fn decode(&self, token: &str) -> Option<Vec<u8>> {
        token.chars().map(|c| self.byte_of(c)).collect()
    }

    /// The byte `c` stands for, if any.
    pub fn byte_of(&self, c: char) -> Option<u8> {
        self.bytes.get(c as usize).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2_landmarks() {
        let table = ByteTable::new();
        assert_eq!(table.char_of(b' '), 'Ġ');
        assert_eq!(table.char_of(b'\n'), 'Ċ');
        assert_eq!(table.char_of(b'\t'), 'ĉ');
        assert_eq!(table.char_of(0), 'Ā');
        assert_eq!(table.char_of(b'A'), 'A');
        assert_eq!(table.char_of(0xAD), 'Ń');
        for byte in 0..=255u8 {
            assert_eq!(table.byte_of(table.char_of(byte)), Some(byte));
        }
        assert_eq!(table.byte_of('中'), None);
    }
}
