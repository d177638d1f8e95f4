//! Reads a whole dataset once and prints rows, bad rows, bytes and speed.
//!
//! `cargo run --release --example dataset_scan -- PATH [FORMAT]`

use std::time::Instant;

use katotune::train::dataset::{passes_reference_filter, Dataset, DatasetFormat, DatasetSpec};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: dataset_scan PATH [FORMAT]"))?;
    let format: DatasetFormat = match args.next() {
        Some(f) => serde_json::from_value(serde_json::Value::String(f))?,
        None => DatasetFormat::Auto,
    };
    let spec = DatasetSpec {
        format,
        ..DatasetSpec::new(path)
    };
    let start = Instant::now();
    let dataset = Dataset::open(&spec)?;
    let identity = dataset.identity();
    let (mut rows, mut kept, mut bad, mut bytes) = (0u64, 0u64, 0u64, 0usize);
    for sample in dataset {
        rows += 1;
        match sample {
            Ok(s) => {
                bytes += s.text.len();
                kept += u64::from(passes_reference_filter(&s.text));
            }
            Err(e) => {
                bad += 1;
                if bad <= 5 {
                    eprintln!("{e}");
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{identity:?}");
    println!(
        "{rows} rows ({kept} pass the reference filter, {bad} bad), {:.1} MB of text in {secs:.2} s = {:.0} rows/s",
        bytes as f64 / 1e6,
        rows as f64 / secs
    );
    Ok(())
}
