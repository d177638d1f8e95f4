//! Folding a batch of Redis writes into fewer commands with the same end state.
//!
//! A batch of 5,000 five-symbol patterns is about 100,000 of KATO's commands, most of
//! them `HINCRBY` on the same two hashes (`symbols:freq`, `symbols:pmf`), `INCRBY` on
//! the same three counters and `SADD` of one member each. Integer increments and set
//! additions commute, so per key they fold into one command (`HINCRBY` per field, one
//! multi-member `SADD`) without changing what Redis ends up holding. Writes whose
//! order matters (`SET`, `HSET`, `HINCRBYFLOAT`, whose float text depends on the
//! order of additions) stay in order after whatever was folded before them for the
//! same key.

use std::collections::HashMap;

use crate::kb::kato_form::RedisWrite;

/// One command after folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// One write as KATO sends it.
    One(RedisWrite),
    /// `HINCRBY key field by` per field (sent as one command each, in field order).
    HashIncr(String, Vec<(String, i64)>),
    /// `SADD key m1 m2 ...`.
    SAddMany(String, Vec<String>),
    /// `MSET k1 v1 k2 v2 ...`: keys whose only write in the batch is one `SET`.
    MSet(Vec<(String, String)>),
}

#[derive(Default)]
struct KeyState {
    done: Vec<Folded>,
    incr: Option<i64>,
    hincr: Vec<(String, i64)>,
    hincr_index: HashMap<String, usize>,
    members: Vec<String>,
}

impl KeyState {
    fn flush_pending(&mut self, key: &str) {
        if let Some(by) = self.incr.take() {
            self.done.push(Folded::One(RedisWrite::IncrBy {
                key: key.to_string(),
                by,
            }));
        }
        if !self.hincr.is_empty() {
            self.hincr_index.clear();
            self.done.push(Folded::HashIncr(
                key.to_string(),
                std::mem::take(&mut self.hincr),
            ));
        }
        if !self.members.is_empty() {
            self.done.push(Folded::SAddMany(
                key.to_string(),
                std::mem::take(&mut self.members),
            ));
        }
    }
}

fn key_of(w: &RedisWrite) -> &str {
    match w {
        RedisWrite::Set { key, .. }
        | RedisWrite::IncrBy { key, .. }
        | RedisWrite::HIncrBy { key, .. }
        | RedisWrite::HIncrByFloat { key, .. }
        | RedisWrite::HSet { key, .. }
        | RedisWrite::SAdd { key, .. } => key,
    }
}

/// Folds `writes`; the result leaves Redis as the writes one by one would.
pub fn fold(writes: impl IntoIterator<Item = RedisWrite>) -> Vec<Folded> {
    let mut order: Vec<String> = Vec::new();
    let mut states: HashMap<String, KeyState> = HashMap::new();
    for w in writes {
        let key = key_of(&w).to_string();
        let state = states.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            KeyState::default()
        });
        match w {
            RedisWrite::IncrBy { by, .. } => *state.incr.get_or_insert(0) += by,
            RedisWrite::HIncrBy { field, by, .. } => match state.hincr_index.get(&field) {
                Some(&i) => state.hincr[i].1 += by,
                None => {
                    state.hincr_index.insert(field.clone(), state.hincr.len());
                    state.hincr.push((field, by));
                }
            },
            RedisWrite::SAdd { member, .. } => state.members.push(member),
            other => {
                state.flush_pending(&key);
                state.done.push(Folded::One(other));
            }
        }
    }
    let mut out = Vec::new();
    let mut lone_sets = Vec::new();
    for key in order {
        let mut state = states.remove(&key).unwrap_or_default();
        state.flush_pending(&key);
        match state.done.as_slice() {
            [Folded::One(RedisWrite::Set { .. })] => {
                if let Some(Folded::One(RedisWrite::Set { key, value })) = state.done.pop() {
                    lone_sets.push((key, value));
                }
            }
            _ => out.append(&mut state.done),
        }
    }
    if !lone_sets.is_empty() {
        out.push(Folded::MSet(lone_sets));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hincr(key: &str, field: &str, by: i64) -> RedisWrite {
        RedisWrite::HIncrBy {
            key: key.into(),
            field: field.into(),
            by,
        }
    }

    #[test]
    fn increments_and_set_members_fold_per_key() {
        let writes = vec![
            hincr("k:symbols:freq", "a", 2),
            RedisWrite::IncrBy {
                key: "g".into(),
                by: 1,
            },
            hincr("k:symbols:freq", "b", 1),
            hincr("k:symbols:freq", "a", 3),
            RedisWrite::SAdd {
                key: "s".into(),
                member: "x".into(),
            },
            RedisWrite::IncrBy {
                key: "g".into(),
                by: 4,
            },
            RedisWrite::SAdd {
                key: "s".into(),
                member: "y".into(),
            },
        ];
        let folded = fold(writes);
        assert_eq!(
            folded,
            vec![
                Folded::HashIncr(
                    "k:symbols:freq".into(),
                    vec![("a".into(), 5), ("b".into(), 1)]
                ),
                Folded::One(RedisWrite::IncrBy {
                    key: "g".into(),
                    by: 5
                }),
                Folded::SAddMany("s".into(), vec!["x".into(), "y".into()]),
            ]
        );
    }

    #[test]
    fn order_sensitive_writes_keep_their_place_on_their_key() {
        let set = |v: &str| RedisWrite::Set {
            key: "f".into(),
            value: v.into(),
        };
        let writes = vec![
            RedisWrite::IncrBy {
                key: "f".into(),
                by: 2,
            },
            set("10"),
            RedisWrite::IncrBy {
                key: "f".into(),
                by: 1,
            },
        ];
        let folded = fold(writes);
        assert_eq!(
            folded,
            vec![
                Folded::One(RedisWrite::IncrBy {
                    key: "f".into(),
                    by: 2
                }),
                Folded::One(set("10")),
                Folded::One(RedisWrite::IncrBy {
                    key: "f".into(),
                    by: 1
                }),
            ]
        );
    }

    #[test]
    fn keys_set_once_go_into_one_mset() {
        let set = |k: &str, v: &str| RedisWrite::Set {
            key: k.into(),
            value: v.into(),
        };
        let folded = fold(vec![set("a", "1"), set("b", "2"), set("a", "3")]);
        assert_eq!(
            folded,
            vec![
                Folded::One(set("a", "1")),
                Folded::One(set("a", "3")),
                Folded::MSet(vec![("b".into(), "2".into())]),
            ]
        );
    }
}
