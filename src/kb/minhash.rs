//! The MinHash signature and LSH bands KATO stores in each ClickHouse pattern row.
//!
//! KATO 3.10.1 (`kato/storage/clickhouse_writer.py`, `_prepare_row`) builds a
//! datasketch `MinHash(num_perm=100)` with its defaults and updates it with the UTF-8
//! bytes of every symbol of the flattened pattern, in order. datasketch 1.7.0 hashes a
//! symbol to the first 4 bytes of its SHA-1, read little-endian, and for each
//! permutation `(a, b)` keeps the minimum of `((a * h + b) mod (2^61 - 1)) & (2^32 - 1)`,
//! where `a * h + b` is numpy `uint64` arithmetic and so wraps at 2^64. Band `i` of the
//! 20 LSH bands is `abs(hash(tuple(sig[5i..5i+5])))` with CPython's tuple hash.

use sha1::{Digest, Sha1};

use super::minhash_perm::{PERM_A, PERM_B};

/// Permutations per signature (`num_perm`).
pub const NUM_PERM: usize = 100;
/// LSH bands per row.
pub const BANDS: usize = 20;
/// Signature values per band.
pub const ROWS_PER_BAND: usize = NUM_PERM / BANDS;

const MERSENNE_PRIME: u64 = (1 << 61) - 1;
const MAX_HASH: u64 = (1 << 32) - 1;

/// datasketch's `sha1_hash32`: the first 4 bytes of SHA-1, little-endian.
pub fn sha1_hash32(bytes: &[u8]) -> u32 {
    let digest = Sha1::digest(bytes);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The 100-value signature of the symbols, as `MinHash.hashvalues` after updating
/// with each symbol's UTF-8 bytes in order. No symbol gives 100 times `2^32 - 1`.
pub fn signature<'a>(symbols: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    let mut values = [MAX_HASH; NUM_PERM];
    for symbol in symbols {
        let hv = u64::from(sha1_hash32(symbol.as_bytes()));
        for (slot, (a, b)) in values.iter_mut().zip(PERM_A.iter().zip(PERM_B.iter())) {
            let permuted = (a.wrapping_mul(hv).wrapping_add(*b) % MERSENNE_PRIME) & MAX_HASH;
            *slot = (*slot).min(permuted);
        }
    }
    // Every value is masked to 32 bits above.
    values
        .iter()
        .map(|v| u32::try_from(*v).unwrap_or(u32::MAX))
        .collect()
}

/// The 20 LSH bands of a signature: `abs(hash(tuple(band)))` per 5 values.
pub fn lsh_bands(signature: &[u32]) -> Vec<u64> {
    signature
        .chunks(ROWS_PER_BAND)
        .map(|band| python_int_tuple_hash(band).unsigned_abs())
        .collect()
}

/// CPython 3.8+ `tuple.__hash__` (the xxHash-based one) of a tuple of small
/// non-negative ints, which hash to themselves (they are below `2^61 - 1`).
pub fn python_int_tuple_hash(items: &[u32]) -> i64 {
    const PRIME_1: u64 = 11_400_714_785_074_694_791;
    const PRIME_2: u64 = 14_029_467_366_897_019_727;
    const PRIME_5: u64 = 2_870_177_450_012_600_261;
    let mut acc = PRIME_5;
    for item in items {
        let lane = u64::from(*item);
        acc = acc.wrapping_add(lane.wrapping_mul(PRIME_2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(PRIME_1);
    }
    let len = u64::try_from(items.len()).unwrap_or(u64::MAX);
    acc = acc.wrapping_add(len ^ (PRIME_5 ^ 3_527_539));
    if acc == u64::MAX {
        return 1_546_275_796;
    }
    // Py_hash_t is the same 64 bits read as signed.
    i64::from_ne_bytes(acc.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_symbols_give_the_golden_signature_and_first_band() {
        // emotives-metadata.json, pattern [["p", "q"]].
        let sig = signature(["p", "q"]);
        assert_eq!(sig.len(), NUM_PERM);
        assert_eq!(
            &sig[..5],
            &[
                1_718_780_660,
                3_502_717_660,
                2_716_433_300,
                1_917_593_290,
                27_150_418
            ]
        );
        let bands = lsh_bands(&sig);
        assert_eq!(bands.len(), BANDS);
        assert_eq!(bands[0], 6_592_762_081_477_132_052);
    }

    #[test]
    fn tuple_hash_matches_cpython() {
        // python3 -c 'print(hash(()), hash((1, 2, 3)))'
        assert_eq!(python_int_tuple_hash(&[]), 5_740_354_900_026_072_187);
        assert_eq!(python_int_tuple_hash(&[1, 2, 3]), 529_344_067_295_497_451);
    }
}
