//! `kb diff`: per KB, which pattern names only one side holds and which frequencies
//! differ, with a few examples each.
//!
//! Names are printed bare (40 hex digits, no `PTRN|`), as `kb dump` writes them and as
//! KATO's stores hold them (`<kb>:frequency:<name>` in Redis, the `name` column of
//! `kato.patterns_data`; storage/README.md): a name from `kb diff` can be looked up in
//! a dump or a store as it is. `PTRN|` is the wire form KATO's API returns.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// Differences of one KB held by either side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KbDifference {
    /// The KB id.
    pub kb_id: String,
    /// Names only A holds (count).
    pub only_in_a: u64,
    /// Names only B holds (count).
    pub only_in_b: u64,
    /// Names both hold with different frequencies (count).
    pub different_frequency: u64,
    /// Up to N examples of each: bare names, and (name, A's, B's) frequencies.
    pub examples_only_in_a: Vec<String>,
    pub examples_only_in_b: Vec<String>,
    pub examples_different_frequency: Vec<(String, u64, u64)>,
}

/// Every KB's comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    /// One entry per KB in A or B, sorted.
    pub kbs: Vec<KbDifference>,
}

impl DiffReport {
    /// True when no KB differs.
    pub fn same(&self) -> bool {
        self.kbs
            .iter()
            .all(|k| k.only_in_a + k.only_in_b + k.different_frequency == 0)
    }

    /// The text `kb diff` prints; names bare, as in dumps and stores.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for k in &self.kbs {
            let n = k.only_in_a + k.only_in_b + k.different_frequency;
            if n == 0 {
                let _ = writeln!(s, "{}: same", k.kb_id);
                continue;
            }
            let _ = writeln!(
                s,
                "{}: {} only in A, {} only in B, {} with different frequencies",
                k.kb_id, k.only_in_a, k.only_in_b, k.different_frequency
            );
            for name in &k.examples_only_in_a {
                let _ = writeln!(s, "    only in A: {name}");
            }
            for name in &k.examples_only_in_b {
                let _ = writeln!(s, "    only in B: {name}");
            }
            for (name, fa, fb) in &k.examples_different_frequency {
                let _ = writeln!(s, "    frequency A {fa}, B {fb}: {name}");
            }
        }
        let verdict = if self.same() {
            "A and B hold the same knowledge bases"
        } else {
            "A and B differ"
        };
        let _ = writeln!(s, "{verdict}");
        s
    }
}

/// Compares per-KB name counts of A and B, keeping `examples` of each difference.
pub fn compare(
    a: &BTreeMap<String, BTreeMap<String, u64>>,
    b: &BTreeMap<String, BTreeMap<String, u64>>,
    examples: usize,
) -> DiffReport {
    let empty = BTreeMap::new();
    let mut kbs: Vec<&String> = a.keys().chain(b.keys()).collect();
    kbs.sort();
    kbs.dedup();
    let mut report = DiffReport::default();
    for kb in kbs {
        let (left, right) = (a.get(kb).unwrap_or(&empty), b.get(kb).unwrap_or(&empty));
        let mut d = KbDifference {
            kb_id: kb.clone(),
            ..Default::default()
        };
        for (name, fa) in left {
            match right.get(name) {
                None => {
                    d.only_in_a += 1;
                    if d.examples_only_in_a.len() < examples {
                        d.examples_only_in_a.push(name.clone());
                    }
                }
                Some(fb) if fb != fa => {
                    d.different_frequency += 1;
                    if d.examples_different_frequency.len() < examples {
                        d.examples_different_frequency
                            .push((name.clone(), *fa, *fb));
                    }
                }
                Some(_) => {}
            }
        }
        for name in right.keys().filter(|n| !left.contains_key(*n)) {
            d.only_in_b += 1;
            if d.examples_only_in_b.len() < examples {
                d.examples_only_in_b.push(name.clone());
            }
        }
        report.kbs.push(d);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(entries: &[(&str, &str, u64)]) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut m: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (kb, n, f) in entries {
            m.entry(kb.to_string())
                .or_default()
                .insert(n.to_string(), *f);
        }
        m
    }

    #[test]
    fn names_on_one_side_and_frequency_changes_are_counted_per_kb() {
        let a = side(&[("k0", "aa", 1), ("k0", "bb", 2), ("k1", "cc", 1)]);
        let b = side(&[
            ("k0", "aa", 1),
            ("k0", "bb", 3),
            ("k0", "dd", 1),
            ("k2", "ee", 1),
        ]);
        let r = compare(&a, &b, 1);
        assert!(!r.same());
        let k0 = &r.kbs[0];
        assert_eq!(
            (k0.only_in_a, k0.only_in_b, k0.different_frequency),
            (0, 1, 1)
        );
        assert_eq!(
            k0.examples_different_frequency,
            vec![("bb".to_string(), 2, 3)]
        );
        assert_eq!((r.kbs[1].kb_id.as_str(), r.kbs[1].only_in_a), ("k1", 1));
        assert_eq!((r.kbs[2].kb_id.as_str(), r.kbs[2].only_in_b), ("k2", 1));
        // Bare, as `kb dump` and the stores spell names.
        assert!(
            r.text().contains("frequency A 2, B 3: bb\n"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains("PTRN|"));
        assert!(compare(&a, &a, 3).same());
    }
}
