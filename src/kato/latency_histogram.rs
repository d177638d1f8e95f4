//! A compact latency distribution for run records: request counts in log-spaced
//! buckets, ten a decade.
//!
//! The client measures latency in an HDR histogram (`hdrhistogram`, 3 significant
//! digits); a run record keeps percentiles from it, and this: bucket `i` counts the
//! requests that took from 10^(i/10) µs up to 10^((i+1)/10) µs (each bucket about 26 %
//! wide). Requests between 10 µs and 100 s fit in 70 buckets, and only the span from
//! the first to the last non-empty bucket is stored, so a record stays small while the
//! shape of the distribution (where the bulk is, how long the tail) survives. Buckets
//! of the same layout add up, so repeats merge into one distribution per profile.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Buckets per decade of microseconds.
pub const BUCKETS_PER_DECADE: u32 = 10;

/// Request counts in log-spaced latency buckets (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Buckets per decade of microseconds ([`BUCKETS_PER_DECADE`]).
    pub buckets_per_decade: u32,
    /// Index of `counts[0]`: that bucket starts at 10^(first / buckets_per_decade) µs.
    pub first: u32,
    /// Requests per bucket, from bucket `first` to the last non-empty one.
    pub counts: Vec<u64>,
}

impl LatencyHistogram {
    /// The buckets of an HDR histogram of latencies in microseconds; `None` when it is
    /// empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        let mut out: Option<LatencyHistogram> = None;
        for v in histogram.iter_recorded() {
            let index = bucket_of(v.value_iterated_to());
            let h = out.get_or_insert_with(|| LatencyHistogram {
                buckets_per_decade: BUCKETS_PER_DECADE,
                first: index,
                counts: Vec::new(),
            });
            h.add(index, v.count_at_value());
        }
        out
    }

    /// Adds `count` requests to bucket `index`, growing the stored span as needed.
    fn add(&mut self, index: u32, count: u64) {
        if self.counts.is_empty() {
            self.first = index;
        }
        if index < self.first {
            let grow = (self.first - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = index;
        }
        let at = (index - self.first) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += count;
    }

    /// Adds `other`'s requests (repeats of one profile). A histogram of another layout
    /// is left out (none is written so far).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.buckets_per_decade != self.buckets_per_decade {
            return;
        }
        for (i, count) in other.counts.iter().enumerate() {
            if *count > 0 {
                self.add(other.first + i as u32, *count);
            }
        }
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The non-empty buckets as (lower bound, upper bound, requests), bounds in ms.
    pub fn buckets_ms(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        let per = f64::from(self.buckets_per_decade.max(1));
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(move |(i, c)| {
                let index = f64::from(self.first + i as u32);
                let bound = |k: f64| 10f64.powf(k / per) / 1000.0;
                (bound(index), bound(index + 1.0), *c)
            })
    }
}

/// The bucket of a latency of `micros` µs (at least 1).
fn bucket_of(micros: u64) -> u32 {
    let decades = (micros.max(1) as f64).log10();
    // A hair of slack so exact powers of ten land in the bucket they start.
    (decades * f64::from(BUCKETS_PER_DECADE) + 1e-9).floor() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(micros: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for m in micros {
            h.record(*m).unwrap();
        }
        h
    }

    #[test]
    fn latencies_land_in_ten_buckets_a_decade() {
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(1000), 30, "1 ms starts bucket 30");
        assert_eq!(bucket_of(1200), 30, "1.2 ms is below 10^0.1 ms = 1.259 ms");
        assert_eq!(bucket_of(1300), 31);
        assert_eq!(bucket_of(999), 29);
    }

    #[test]
    fn only_the_span_between_the_first_and_last_request_is_kept() {
        let h = LatencyHistogram::of(&histogram(&[1000, 1100, 10_000])).unwrap();
        assert_eq!(h.first, 30);
        assert_eq!(h.counts.len(), 11, "buckets 30..=40");
        assert_eq!((h.counts[0], h.counts[10], h.total()), (2, 1, 3));
        let (lo, hi, n) = h.buckets_ms().next().unwrap();
        assert!((lo - 1.0).abs() < 1e-9 && (hi - 1.2589).abs() < 1e-3 && n == 2);
        assert!(LatencyHistogram::of(&histogram(&[])).is_none());
    }

    #[test]
    fn repeats_merge_bucket_by_bucket_on_either_side() {
        let mut a = LatencyHistogram::of(&histogram(&[1000])).unwrap();
        let b = LatencyHistogram::of(&histogram(&[100, 1000, 100_000])).unwrap();
        a.merge(&b);
        assert_eq!(a.first, 20);
        assert_eq!(a.total(), 4);
        assert_eq!(a.counts[10], 2, "both 1 ms requests in bucket 30");
        assert_eq!(*a.counts.last().unwrap(), 1, "100 ms in bucket 50");
    }
}
