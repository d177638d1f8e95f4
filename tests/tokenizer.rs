//! GPT-2 tokenizer: Hugging Face's golden vectors and byte round-trips.

use std::sync::OnceLock;

use katotune::train::tokenizer::{ByteTable, Gpt2Tokenizer};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    text: String,
    tokens: Vec<String>,
    ids: Vec<u32>,
}

fn tokenizer() -> &'static Gpt2Tokenizer {
    static TOKENIZER: OnceLock<Gpt2Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Gpt2Tokenizer::new().expect("GPT-2 vocabulary loads"))
}

fn vectors() -> Vec<Vector> {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/gpt2-token-vectors.json"
    ))
    .expect("golden vectors are in tests/data");
    serde_json::from_str(&raw).expect("golden vectors parse")
}

#[test]
fn matches_hugging_face_on_all_golden_vectors() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 77);
    let mut failures = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let tokens: Vec<String> = tokenizer()
            .tokenize(&v.text)
            .iter()
            .map(|t| t.to_string())
            .collect();
        let ids = tokenizer().encode(&v.text);
        if tokens != v.tokens || ids != v.ids {
            failures.push(format!(
                "vector {i} {:?}:\n  want {:?}\n  got  {:?}",
                v.text.chars().take(60).collect::<String>(),
                v.tokens,
                tokens
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn count_agrees_with_tokenize() {
    for v in vectors() {
        assert_eq!(tokenizer().count(&v.text), v.tokens.len(), "{:?}", v.text);
    }
}

#[test]
fn clones_share_one_vocabulary_and_agree() {
    let copy = tokenizer().clone();
    let tokens = copy.tokenize("Hello world.");
    assert_eq!(
        tokens.iter().map(|t| &**t).collect::<Vec<_>>(),
        ["Hello", "Ġworld", "."]
    );
    assert_eq!(copy.token(995), Some("Ġworld"));
    assert_eq!(copy.token(50257), None);
}

proptest! {
    #[test]
    fn tokens_map_back_to_the_texts_bytes(text in any::<String>()) {
        let table = ByteTable::new();
        let mut bytes = Vec::new();
        for token in tokenizer().tokenize(&text) {
            prop_assert!(!token.is_empty());
            bytes.extend(table.decode(&token).expect("every token char stands for a byte"));
        }
        prop_assert_eq!(bytes, text.as_bytes());
    }

    #[test]
    fn whitespace_heavy_text_round_trips(text in "[ \t\n\r\u{a0}\u{2029}a-zé'0-9<|>]{0,40}") {
        let table = ByteTable::new();
        let bytes: Vec<u8> = tokenizer()
            .tokenize(&text)
            .iter()
            .flat_map(|t| table.decode(t).expect("token chars stand for bytes"))
            .collect();
        prop_assert_eq!(bytes, text.as_bytes());
    }
}

#[test]
fn no_token_stands_for_more_bytes_than_the_longest() {
    let t = tokenizer();
    let longest = t.longest_token_bytes();
    assert!((13..=256).contains(&longest), "{longest}");
    // Every token's text is at most that long, and some token is exactly that long.
    let lengths: Vec<usize> = (0..50257)
        .map(|id| t.token(id).unwrap().chars().count())
        .collect();
    assert_eq!(lengths.iter().max(), Some(&longest));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Wherever the boundary rule allows a cut, the two parts' tokens are the whole's.
    #[test]
    fn a_cut_at_a_token_boundary_keeps_every_token(
        text in r"([a-zA-Z0-9 '|<>.,!?\n\t\u{1c}é中文，。١٢ـ\u{301}-]|<\|endoftext\|>){0,40}"
    ) {
        use katotune::train::tokenizer::is_token_boundary;
        let t = tokenizer();
        let whole = t.tokenize(&text);
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        for k in 1..chars.len() {
            let (at, after) = chars[k];
            let then = chars.get(k + 1).map(|(_, c)| *c);
            if !is_token_boundary(chars[k - 1].1, after, then) {
                continue;
            }
            let mut parts = t.tokenize(&text[..at]);
            parts.extend(t.tokenize(&text[at..]));
            proptest::prop_assert_eq!(&parts, &whole, "cut at {} of {:?}", at, text);
        }
    }
}

#[test]
fn the_last_token_boundary_is_found_from_the_end() {
    use katotune::train::tokenizer::last_token_boundary;
    assert_eq!(last_token_boundary("In the beginning"), Some(6));
    assert_eq!(last_token_boundary("word."), Some(4));
    assert_eq!(last_token_boundary("aaaa"), None);
    assert_eq!(last_token_boundary("don't"), None);
    assert_eq!(last_token_boundary("<|endoftext|>"), None);
    assert_eq!(last_token_boundary("中文，"), Some(6));
}

/// tiktoken's own GPT-2 encoder, with its pre-tokenizer's lookahead: the oracle for
/// katotune's faster split of the same pattern.
fn tiktoken_ids(text: &str) -> Vec<u32> {
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::r50k_base().expect("tiktoken's GPT-2 loads"))
        .encode_ordinary(text)
}

#[test]
fn every_shipped_sample_tokenizes_as_tiktoken_does() {
    let raw = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/kjv-100.jsonl"))
        .expect("the shipped corpus is in data/");
    let mut texts = 0;
    for line in raw.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
        let text = row["text"].as_str().expect("a text field");
        // Chapters have many whitespace runs before words and line ends: the places
        // the lookahead decides.
        assert_eq!(tokenizer().encode(text), tiktoken_ids(text), "{text:.80}");
        let spaced = text.replace(' ', "  \t ").replace('\n', " \n\n\u{a0}");
        assert_eq!(
            tokenizer().encode(&spaced),
            tiktoken_ids(&spaced),
            "{spaced:.80}"
        );
        texts += 1;
    }
    assert_eq!(texts, 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn whitespace_runs_split_as_tiktoken_splits_them(
        text in "([ \t\n\r\u{a0}\u{3000}\u{2029}\u{85}]{0,4}[a-zé'0-9.,中١]{0,3}){0,12}"
    ) {
        prop_assert_eq!(tokenizer().encode(&text), tiktoken_ids(&text));
    }

    #[test]
    fn any_text_tokenizes_as_tiktoken_does(text in any::<String>()) {
        prop_assume!(!text.contains("<|endoftext|>"));
        prop_assert_eq!(tokenizer().encode(&text), tiktoken_ids(&text));
    }

    #[test]
    fn long_pieces_tokenize_as_tiktoken_does(
        word in "[a-zA-Zé]{90,300}", spaces in "[ \n]{0,150}", tail in "[a-z]{0,3}"
    ) {
        let text = format!("{word}{spaces}{tail}");
        prop_assert_eq!(tokenizer().encode(&text), tiktoken_ids(&text));
    }
}
