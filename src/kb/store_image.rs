//! An in-memory image of KATO's stores: Redis keys as Redis would hold them after a
//! sequence of [`RedisWrite`]s, plus the ClickHouse pattern rows. Used to check a
//! conversion against the golden dumps (`../shared/kato/storage/*.json`) and to read
//! back what a load should have produced.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::kato_form::{PatternRow, RedisWrite};
use super::redis_float::{hincrbyfloat, RedisFloatError};

/// One Redis value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisValue {
    /// A string.
    Str(String),
    /// A hash: field to value text.
    Hash(BTreeMap<String, String>),
    /// A set.
    Set(BTreeSet<String>),
}

/// A write Redis would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreImageError {
    /// The key holds another type (Redis `WRONGTYPE`).
    #[error("{key}: WRONGTYPE, the key holds a value of another kind")]
    WrongType { key: String },
    /// An integer command on a value that is not an integer, or an overflow.
    #[error("{key}: value is not an integer or out of range")]
    NotAnInteger { key: String },
    /// `HINCRBYFLOAT` refused.
    #[error("{key} {field}: {source}")]
    Float {
        key: String,
        field: String,
        source: RedisFloatError,
    },
}

/// Redis keys and ClickHouse rows, as the stores would hold them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreImage {
    /// Every key.
    pub redis: BTreeMap<String, RedisValue>,
    /// `kato.patterns_data` rows, in insertion order.
    pub rows: Vec<PatternRow>,
}

fn add_int(key: &str, current: Option<&str>, by: i64) -> Result<String, StoreImageError> {
    let bad = || StoreImageError::NotAnInteger {
        key: key.to_owned(),
    };
    let now: i64 = match current {
        Some(text) => text.parse().map_err(|_| bad())?,
        None => 0,
    };
    Ok(now.checked_add(by).ok_or_else(bad)?.to_string())
}

impl StoreImage {
    /// Applies one write as Redis does.
    ///
    /// # Errors
    /// [`StoreImageError`] where Redis would answer with an error; the image is unchanged.
    pub fn apply(&mut self, write: &RedisWrite) -> Result<(), StoreImageError> {
        match write {
            RedisWrite::Set { key, value } => {
                self.redis
                    .insert(key.clone(), RedisValue::Str(value.clone()));
            }
            RedisWrite::IncrBy { key, by } => {
                let current = match self.redis.get(key) {
                    None => None,
                    Some(RedisValue::Str(text)) => Some(text.as_str()),
                    Some(_) => return Err(StoreImageError::WrongType { key: key.clone() }),
                };
                let next = add_int(key, current, *by)?;
                self.redis.insert(key.clone(), RedisValue::Str(next));
            }
            RedisWrite::HIncrBy { key, field, by } => {
                let next = add_int(key, self.field(key, field)?, *by)?;
                self.hash(key)?.insert(field.clone(), next);
            }
            RedisWrite::HIncrByFloat { key, field, by } => {
                let next = hincrbyfloat(self.field(key, field)?, by).map_err(|source| {
                    StoreImageError::Float {
                        key: key.clone(),
                        field: field.clone(),
                        source,
                    }
                })?;
                self.hash(key)?.insert(field.clone(), next);
            }
            RedisWrite::HSet { key, field, value } => {
                self.hash(key)?.insert(field.clone(), value.clone());
            }
            RedisWrite::SAdd { key, member } => {
                let entry = self
                    .redis
                    .entry(key.clone())
                    .or_insert_with(|| RedisValue::Set(BTreeSet::new()));
                let RedisValue::Set(set) = entry else {
                    return Err(StoreImageError::WrongType { key: key.clone() });
                };
                set.insert(member.clone());
            }
        }
        Ok(())
    }

    /// Applies every write in order, stopping at the first Redis would refuse.
    ///
    /// # Errors
    /// The first [`StoreImageError`].
    pub fn apply_all<'a>(
        &mut self,
        writes: impl IntoIterator<Item = &'a RedisWrite>,
    ) -> Result<(), StoreImageError> {
        writes.into_iter().try_for_each(|w| self.apply(w))
    }

    /// A hash field's text, without creating the key.
    fn field(&self, key: &str, field: &str) -> Result<Option<&str>, StoreImageError> {
        match self.redis.get(key) {
            None => Ok(None),
            Some(RedisValue::Hash(hash)) => Ok(hash.get(field).map(String::as_str)),
            Some(_) => Err(StoreImageError::WrongType {
                key: key.to_owned(),
            }),
        }
    }

    fn hash(&mut self, key: &str) -> Result<&mut BTreeMap<String, String>, StoreImageError> {
        let entry = self
            .redis
            .entry(key.to_owned())
            .or_insert_with(|| RedisValue::Hash(BTreeMap::new()));
        match entry {
            RedisValue::Hash(hash) => Ok(hash),
            _ => Err(StoreImageError::WrongType {
                key: key.to_owned(),
            }),
        }
    }

    /// The image in the golden dump's shape (`../shared/kato/storage/README.md`):
    /// `{"redis": {key: {"type", "value"}}, "clickhouse": [row...]}`, strings that hold
    /// JSON parsed, hashes as objects, sets and `token_set` sorted, rows ordered by
    /// `kb_id` then `name`.
    pub fn to_golden_json(&self) -> Value {
        let redis: Map<String, Value> = self
            .redis
            .iter()
            .map(|(key, value)| (key.clone(), golden_value(value)))
            .collect();
        let mut rows: Vec<&PatternRow> = self.rows.iter().collect();
        rows.sort_by(|a, b| (&a.kb_id, &a.name).cmp(&(&b.kb_id, &b.name)));
        let clickhouse: Vec<Value> = rows.into_iter().map(golden_row).collect();
        json!({ "redis": redis, "clickhouse": clickhouse })
    }
}

fn golden_value(value: &RedisValue) -> Value {
    match value {
        RedisValue::Str(text) => json!({
            "type": "string",
            "value": serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.clone())),
        }),
        RedisValue::Hash(hash) => json!({ "type": "hash", "value": hash }),
        RedisValue::Set(set) => json!({ "type": "set", "value": set }),
    }
}

fn golden_row(row: &PatternRow) -> Value {
    let mut token_set = row.token_set.clone();
    token_set.sort_unstable();
    json!({
        "first_token": row.first_token,
        "kb_id": row.kb_id,
        "last_token": row.last_token,
        "length": row.length,
        "lsh_bands": row.lsh_bands,
        "minhash_sig": row.minhash_sig,
        "name": row.name,
        "pattern_data": row.pattern_data,
        "token_count": row.token_count,
        "token_set": token_set,
    })
}
