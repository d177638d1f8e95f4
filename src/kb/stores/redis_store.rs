//! KATO's Redis, per knowledge base: pipelined atomic batches of writes, reads of a
//! page of patterns' keys, key scans (`SCAN MATCH <kb>:*`, never `KEYS`) and the load
//! markers katotune leaves while it loads (`katotune:load:<kb>`, a hash).

use std::collections::{BTreeMap, BTreeSet};

use redis::{Connection, Pipeline};

use super::coalesce::{fold, Folded};
use super::{redacted, StoreError, CONNECT_TIMEOUT};
use crate::kb::kato_form::{PriorPattern, RedisWrite};

/// Prefix of the hash katotune keeps per KB while loading it.
pub const MARKER_PREFIX: &str = "katotune:load:";
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: u32 = 2000;

/// One Redis stream's size, from [`RedisStore::stm_streams`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamSize {
    /// The stream's key, e.g. `stm:global`.
    pub key: String,
    /// `XLEN`: entries in the stream.
    pub entries: u64,
    /// `MEMORY USAGE`: bytes the key takes, as Redis estimates them.
    pub bytes: u64,
}

/// One KATO Redis connection.
pub struct RedisStore {
    con: Connection,
    client: redis::Client,
    shown: String,
}

/// `s` with Redis glob characters escaped, for `SCAN MATCH`.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// Connects and checks `PING`.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redacted(url);
        let unreachable = |detail: String| StoreError::Unreachable {
            what: "Redis",
            flag: "redis",
            url: shown.clone(),
            detail,
        };
        let client = redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
        let mut con = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| unreachable(e.to_string()))?;
        redis::cmd("PING")
            .query::<String>(&mut con)
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(RedisStore { con, client, shown })
    }

    /// A second connection to the same Redis.
    pub fn another(&self) -> Result<Self, StoreError> {
        let con = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| self.err(e))?;
        Ok(RedisStore {
            con,
            client: self.client.clone(),
            shown: self.shown.clone(),
        })
    }

    fn err(&self, e: redis::RedisError) -> StoreError {
        StoreError::Redis {
            url: self.shown.clone(),
            detail: e.to_string(),
        }
    }

    /// Refuses an evicting `maxmemory-policy` (`allkeys-*`) unless `allow`.
    pub fn check_eviction(&mut self, allow: bool) -> Result<(), StoreError> {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query(&mut self.con)
            .map_err(|e| self.err(e))?;
        let policy = pair.get(1).cloned().unwrap_or_default();
        if policy.starts_with("allkeys-") && !allow {
            return Err(StoreError::Eviction {
                url: self.shown.clone(),
                policy,
            });
        }
        Ok(())
    }

    /// Applies `writes` (folded, see [`fold`]) and then `marker` increments, as one
    /// `MULTI`/`EXEC` transaction: Redis applies all of it or none. Returns the number
    /// of commands sent.
    pub fn apply(
        &mut self,
        writes: Vec<RedisWrite>,
        marker: &[(String, &str, i64)],
    ) -> Result<usize, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for f in fold(writes) {
            add_folded(&mut pipe, f);
        }
        let commands = pipe.cmd_iter().count() + marker.len();
        for (kb, field, by) in marker {
            pipe.cmd("HINCRBY")
                .arg(format!("{MARKER_PREFIX}{kb}"))
                .arg(*field)
                .arg(*by)
                .ignore();
        }
        pipe.query::<()>(&mut self.con).map_err(|e| self.err(e))?;
        Ok(commands)
    }

    /// Every key matching `pattern`, step by step, to `each` (a batch at a time).
    fn scan(
        &mut self,
        pattern: &str,
        mut each: impl FnMut(&mut Connection, Vec<String>) -> Result<bool, redis::RedisError>,
    ) -> Result<(), StoreError> {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query(&mut self.con)
                .map_err(|e| self.err(e))?;
            let go_on = each(&mut self.con, keys).map_err(|e| self.err(e))?;
            if next == 0 || !go_on {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// True when any key `<kb>:*` exists.
    pub fn has_kb_keys(&mut self, kb: &str) -> Result<bool, StoreError> {
        let mut found = false;
        self.scan(&format!("{}:*", glob_escape(kb)), |_, keys| {
            found = !keys.is_empty();
            Ok(!found)
        })?;
        Ok(found)
    }

    /// `CONFIG GET key`: the value, or `None` when the server has no such setting.
    pub fn config_get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let pairs: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(key)
            .query(&mut self.con)
            .map_err(|e| self.err(e))?;
        Ok(pairs.into_iter().nth(1))
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub fn used_memory(&mut self) -> Result<u64, StoreError> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut self.con)
            .map_err(|e| self.err(e))?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    /// How many keys match the glob `pattern` (counted by `SCAN`, never `KEYS`).
    pub fn count_keys(&mut self, pattern: &str) -> Result<u64, StoreError> {
        let mut n = 0u64;
        self.scan(pattern, |_, keys| {
            n += keys.len() as u64;
            Ok(true)
        })?;
        Ok(n)
    }

    /// Deletes every key `<kb>:*` (`UNLINK` per scanned batch); returns how many.
    pub fn delete_kb_keys(&mut self, kb: &str) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        self.scan(&format!("{}:*", glob_escape(kb)), |con, keys| {
            if !keys.is_empty() {
                removed += redis::cmd("UNLINK").arg(&keys).query::<u64>(con)?;
            }
            Ok(true)
        })?;
        Ok(removed)
    }

    /// KATO's STM streams: every key `stm:*` of type stream (`stm:global` and
    /// `stm:events:<kb>`, to which KATO appends every observation and which it never
    /// trims: API.md 9, "Redis growth"), each with its length and `MEMORY USAGE`
    /// (Redis's sampled estimate, bytes), sorted by key.
    pub fn stm_streams(&mut self) -> Result<Vec<StreamSize>, StoreError> {
        let mut out = Vec::new();
        self.scan("stm:*", |con, keys| {
            for key in keys {
                let kind: String = redis::cmd("TYPE").arg(&key).query(con)?;
                if kind != "stream" {
                    continue;
                }
                let entries: u64 = redis::cmd("XLEN").arg(&key).query(con)?;
                let bytes: Option<u64> = redis::cmd("MEMORY").arg("USAGE").arg(&key).query(con)?;
                out.push(StreamSize {
                    key,
                    entries,
                    bytes: bytes.unwrap_or(0),
                });
            }
            Ok(true)
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// KB ids that have KATO's `global:total_unique_patterns` counter.
    pub fn kbs_with_counters(&mut self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let suffix = ":global:total_unique_patterns";
        self.scan(&format!("*{suffix}"), |_, keys| {
            out.extend(
                keys.iter()
                    .filter_map(|k| k.strip_suffix(suffix).map(str::to_string)),
            );
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every load marker: KB id to its fields.
    pub fn markers(&mut self) -> Result<BTreeMap<String, BTreeMap<String, String>>, StoreError> {
        let mut keys = Vec::new();
        self.scan(&format!("{}*", glob_escape(MARKER_PREFIX)), |_, k| {
            keys.extend(k);
            Ok(true)
        })?;
        let mut out = BTreeMap::new();
        for key in keys {
            let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
                .arg(&key)
                .query(&mut self.con)
                .map_err(|e| self.err(e))?;
            out.insert(key[MARKER_PREFIX.len()..].to_string(), fields);
        }
        Ok(out)
    }

    /// `kb`'s load marker, if one is left.
    pub fn marker(&mut self, kb: &str) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{MARKER_PREFIX}{kb}"))
            .query(&mut self.con)
            .map_err(|e| self.err(e))?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// Writes a fresh marker for `kb`.
    pub fn set_marker(&mut self, kb: &str, fields: &[(&str, String)]) -> Result<(), StoreError> {
        let key = format!("{MARKER_PREFIX}{kb}");
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&key).ignore();
        for (f, v) in fields {
            pipe.cmd("HSET").arg(&key).arg(*f).arg(v).ignore();
        }
        pipe.query::<()>(&mut self.con).map_err(|e| self.err(e))
    }

    /// Removes `kb`'s marker (the load finished or the KB was removed).
    pub fn clear_marker(&mut self, kb: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(format!("{MARKER_PREFIX}{kb}"))
            .query::<u64>(&mut self.con)
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Frequency, emotives and metadata of each name (None where no frequency key).
    pub fn patterns(
        &mut self,
        kb: &str,
        names: &[&str],
    ) -> Result<Vec<Option<PriorPattern>>, StoreError> {
        let mut pipe = redis::pipe();
        for name in names {
            for family in ["frequency", "emotives", "metadata"] {
                pipe.cmd("GET").arg(format!("{kb}:{family}:{name}"));
            }
        }
        let values: Vec<Option<String>> = pipe.query(&mut self.con).map_err(|e| self.err(e))?;
        let bad = |name: &str, what: &str, e: String| StoreError::Inconsistent {
            kb: kb.to_string(),
            detail: format!("{kb}:{what}:{name} is unreadable ({e})"),
        };
        let mut out = Vec::with_capacity(names.len());
        for (name, v) in names.iter().zip(values.chunks(3)) {
            let Some(freq) = &v[0] else {
                out.push(None);
                continue;
            };
            let frequency = freq
                .trim()
                .parse()
                .map_err(|_| bad(name, "frequency", freq.clone()))?;
            let emotives = match &v[1] {
                Some(t) => {
                    serde_json::from_str(t).map_err(|e| bad(name, "emotives", e.to_string()))?
                }
                None => Vec::new(),
            };
            let metadata: BTreeMap<String, BTreeSet<String>> = match &v[2] {
                Some(t) => {
                    serde_json::from_str(t).map_err(|e| bad(name, "metadata", e.to_string()))?
                }
                None => BTreeMap::new(),
            };
            out.push(Some(PriorPattern {
                frequency,
                emotives,
                metadata,
            }));
        }
        Ok(out)
    }

    /// Every `<kb>:affinity:<symbol>` hash, a scanned batch at a time, to `each`.
    pub fn affinity(
        &mut self,
        kb: &str,
        mut each: impl FnMut(Vec<(String, BTreeMap<String, String>)>),
    ) -> Result<(), StoreError> {
        let prefix = format!("{kb}:affinity:");
        self.scan(&format!("{}*", glob_escape(&prefix)), |con, keys| {
            if keys.is_empty() {
                return Ok(true);
            }
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("HGETALL").arg(k);
            }
            let hashes: Vec<BTreeMap<String, String>> = pipe.query(con)?;
            let batch = keys
                .into_iter()
                .zip(hashes)
                .map(|(k, h)| (k[prefix.len()..].to_string(), h))
                .collect();
            each(batch);
            Ok(true)
        })
    }

    /// `HLEN <kb>:symbols:freq`: distinct symbols KATO has counted in the KB.
    pub fn distinct_symbols(&mut self, kb: &str) -> Result<u64, StoreError> {
        redis::cmd("HLEN")
            .arg(format!("{kb}:symbols:freq"))
            .query(&mut self.con)
            .map_err(|e| self.err(e))
    }
}

fn add_folded(pipe: &mut Pipeline, f: Folded) {
    match f {
        Folded::One(w) => match w {
            RedisWrite::Set { key, value } => pipe.cmd("SET").arg(key).arg(value),
            RedisWrite::IncrBy { key, by } => pipe.cmd("INCRBY").arg(key).arg(by),
            RedisWrite::HIncrBy { key, field, by } => {
                pipe.cmd("HINCRBY").arg(key).arg(field).arg(by)
            }
            RedisWrite::HIncrByFloat { key, field, by } => {
                pipe.cmd("HINCRBYFLOAT").arg(key).arg(field).arg(by)
            }
            RedisWrite::HSet { key, field, value } => {
                pipe.cmd("HSET").arg(key).arg(field).arg(value)
            }
            RedisWrite::SAdd { key, member } => pipe.cmd("SADD").arg(key).arg(member),
        }
        .ignore(),
        Folded::HashIncr(key, fields) => {
            for (field, by) in fields {
                pipe.cmd("HINCRBY").arg(&key).arg(field).arg(by).ignore();
            }
            pipe
        }
        Folded::SAddMany(key, members) => pipe.cmd("SADD").arg(key).arg(members).ignore(),
        Folded::MSet(pairs) => {
            for chunk in pairs.chunks(1000) {
                let cmd = pipe.cmd("MSET");
                for (k, v) in chunk {
                    cmd.arg(k).arg(v);
                }
                cmd.ignore();
            }
            pipe
        }
    };
}
