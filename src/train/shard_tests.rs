//! The shard rule, table-tested: every sample in exactly one shard, shares that add
//! up, specs that parse or say why not, and journals that combine only when exact.

use super::*;
use crate::terms::DatasetFormat;
use crate::train::dataset::DatasetIdentity;

#[test]
fn every_sample_lands_in_exactly_one_shard_whatever_n_is() {
    for n in 1..=7u32 {
        let shards: Vec<Shard> = (0..n).map(|i| Shard::new(i, n).unwrap()).collect();
        for number in 0..100u64 {
            let owners = shards.iter().filter(|s| s.owns_sample(number)).count();
            assert_eq!(owners, 1, "sample {number} with N = {n}");
            let owners = shards.iter().filter(|s| s.owns_row(number)).count();
            assert_eq!(owners, 1, "row {number} with N = {n}");
        }
        for cap in 0..30u64 {
            let shares: Vec<u64> = shards.iter().map(|s| s.share_of(cap)).collect();
            assert_eq!(shares.iter().sum::<u64>(), cap, "cap {cap}, N = {n}");
            let (lo, hi) = (shares.iter().min(), shares.iter().max());
            assert!(hi.unwrap() - lo.unwrap() <= 1, "even shares: {shares:?}");
        }
    }
    let ten_in_three: Vec<u64> = (0..3)
        .map(|i| Shard::new(i, 3).unwrap().share_of(10))
        .collect();
    assert_eq!(ten_in_three, [4, 3, 3]);
}

#[test]
fn shard_specs_parse_or_say_the_allowed_form() {
    assert_eq!("2/5".parse::<Shard>().unwrap(), Shard::new(2, 5).unwrap());
    assert_eq!(Shard::new(1, 3).unwrap().to_string(), "1/3");
    for bad in ["3/3", "0/0", "x/2", "1", "-1/2", "1/2/3", ""] {
        let err = bad.parse::<Shard>().unwrap_err().to_string();
        assert!(
            err.contains("I/N") && err.contains("0 <= I < N"),
            "{bad}: {err}"
        );
    }
    let err = "3/3".parse::<Shard>().unwrap_err().to_string();
    assert!(err.contains("I must be below N"), "{err}");
}

#[test]
fn a_shard_file_names_its_shard_before_the_extensions() {
    let s = Shard::new(1, 3).unwrap();
    let named = |p: &str| s.suffixed(Path::new(p)).display().to_string();
    assert_eq!(
        named("runs/quick.kato.db"),
        "runs/quick.shard-1-of-3.kato.db"
    );
    assert_eq!(named("kb/mine"), "kb/mine.shard-1-of-3");
    assert_eq!(
        named("runs/quick.journal.json"),
        "runs/quick.shard-1-of-3.journal.json"
    );
}

/// Rows 0..rows read by shard `shard` from row 0, `filtered` rows not being samples:
/// the rows it trains.
fn trained(
    shard: Shard,
    rows: u64,
    filtered: &[u64],
    start_row: u64,
    cap: Option<u64>,
) -> Vec<u64> {
    let mut cursor = ShardCursor::new(shard, start_row, cap);
    let mut out = Vec::new();
    for row in 0..rows {
        if cursor.exhausted() {
            break;
        }
        let sample = !filtered.contains(&row);
        if cursor.place_readable(row, sample) == Place::Mine && sample {
            out.push(row);
        }
    }
    out
}

#[test]
fn shards_of_a_capped_filtered_corpus_cover_exactly_what_one_run_trains() {
    let filtered = [1, 2, 7];
    // One run with a cap of 10 trains the first 10 rows that are samples.
    let whole: Vec<u64> = (0..20).filter(|r| !filtered.contains(r)).take(10).collect();
    for n in 1..=4 {
        let mut union: Vec<u64> = (0..n)
            .flat_map(|i| trained(Shard::new(i, n).unwrap(), 20, &filtered, 0, Some(10)))
            .collect();
        union.sort_unstable();
        assert_eq!(union, whole, "N = {n}");
    }
    // A resumed shard numbers from the start again, so it trains the same rows past
    // its journal's row.
    let s = Shard::new(1, 3).unwrap();
    let full = trained(s, 20, &filtered, 0, Some(10));
    let resumed = trained(s, 20, &filtered, 9, Some(10));
    assert_eq!(
        resumed,
        full.into_iter().filter(|r| *r >= 9).collect::<Vec<_>>()
    );
}

fn journal(shard: Option<Shard>, next_row: u64, done: u64, at_risk: Vec<u64>) -> Journal {
    Journal {
        version: crate::train::journal::JOURNAL_VERSION,
        profile: "quick".into(),
        learning_hash: "abc".into(),
        dataset: DatasetIdentity {
            path: "data.jsonl".into(),
            format: DatasetFormat::Jsonl,
            bytes: 10,
            fingerprint: "f".into(),
            files: Vec::new(),
        },
        next_row,
        samples_done: done,
        at_risk_rows: at_risk,
        skipped_rows: Vec::new(),
        run_id: "r".into(),
        updated_at: String::new(),
        shard,
    }
}

#[test]
fn shard_journals_combine_only_when_every_shard_read_its_whole_share() {
    let third = |i| Some(Shard::new(i, 3).unwrap());
    let parts = [
        journal(third(0), 12, 4, vec![5]),
        journal(third(1), 12, 3, vec![]),
        journal(third(2), 12, 3, vec![2, 5]),
    ];
    let whole = combine_journals(&parts).unwrap();
    assert_eq!(
        (whole.shard, whole.next_row, whole.samples_done),
        (None, 12, 10)
    );
    assert_eq!(whole.at_risk_rows, [2, 5]);
    let err = combine_journals(&parts[..2]).unwrap_err();
    assert!(err.contains("shard 2/3 is missing"), "{err}");
    let mut behind = parts.clone();
    behind[1].next_row = 7;
    let err = combine_journals(&behind).unwrap_err();
    assert!(
        err.contains("stopped at row 7") && err.contains("--resume"),
        "{err}"
    );
    let err = combine_journals(&[journal(None, 12, 10, vec![])]).unwrap_err();
    assert!(err.contains("not a shard's"), "{err}");
}
