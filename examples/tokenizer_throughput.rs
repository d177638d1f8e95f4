//! Measures GPT-2 tokenization speed over a JSON Lines corpus on one core.
//!
//! `cargo run --release --example tokenizer_throughput -- /work/shared/corpus/kjv-chapters.jsonl`

use std::time::Instant;

use katotune::train::tokenizer::Gpt2Tokenizer;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: tokenizer_throughput FILE.jsonl [ROUNDS]"))?;
    let rounds: usize = std::env::args().nth(2).map_or(Ok(3), |r| r.parse())?;
    let texts: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line)?;
            Ok(row["text"].as_str().unwrap_or_default().to_string())
        })
        .collect::<anyhow::Result<_>>()?;
    let bytes: usize = texts.iter().map(String::len).sum();
    let load = Instant::now();
    let tokenizer = Gpt2Tokenizer::new()?;
    println!("vocabulary loaded in {:.3} s", load.elapsed().as_secs_f64());
    for round in 1..=rounds {
        let start = Instant::now();
        let tokens: usize = texts.iter().map(|t| tokenizer.tokenize(t).len()).sum();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "round {round}: {} texts, {:.1} MB, {tokens} tokens in {secs:.3} s = {:.0} tokens/s, {:.1} MB/s",
            texts.len(),
            bytes as f64 / 1e6,
            tokens as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    }
    Ok(())
}
