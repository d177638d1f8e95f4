//! KATO's own stores, read and written directly: Redis (per-pattern and per-symbol keys)
//! and ClickHouse (`kato.patterns_data`, one row per pattern, partitioned by KB id).
//!
//! Redis goes through the `redis` crate's synchronous connection with pipelines (a
//! batch of a few thousand patterns is one `MULTI`/`EXEC`, so a kill leaves whole
//! batches, never half of one). ClickHouse goes over its HTTP interface with `reqwest`
//! (already a dependency) and `INSERT ... FORMAT RowBinary`: one bulk insert per batch,
//! the most compact format the server parses without a schema round trip, and no
//! second HTTP stack as the `clickhouse` crate would bring. Key layout: API.md section
//! 9 and KATO `kato/storage/redis_writer.py`; the row: `clickhouse_writer.py`.
//!
//! Everything here is blocking: run it on a blocking thread (`spawn_blocking`).

pub mod clickhouse;
pub mod coalesce;
pub mod load;
pub mod read;
pub mod redis_store;

use std::time::Duration;

pub use clickhouse::ClickHouse;
pub use redis_store::RedisStore;

/// How long a store may take to accept a connection or answer a check.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where KATO's stores are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrls {
    /// `redis://[:password@]host:port[/db]`.
    pub redis: String,
    /// `http://[user:password@]host:port` (ClickHouse's HTTP interface).
    pub clickhouse: String,
    /// KATO's `SERVICE_NAME` (KB ids are `<node>_<service>`).
    pub service_name: String,
}

/// A store problem; every message names the store by its URL without the password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach {what} at {url}: {detail}; start it, or pass the right --{flag} URL")]
    Unreachable {
        what: &'static str,
        flag: &'static str,
        url: String,
        detail: String,
    },
    #[error(
        "ClickHouse at {url} has no table kato.patterns_data: create it with KATO's init SQL \
         (templates/kato/init.sql) before loading"
    )]
    NoTable { url: String },
    #[error(
        "Redis at {url} has maxmemory-policy `{policy}`, which may evict knowledge-base keys \
         and silently lose patterns: set `maxmemory-policy noeviction` (or a volatile-* \
         policy) in its redis.conf or with `redis-cli CONFIG SET maxmemory-policy \
         noeviction`, or pass --allow-eviction to load anyway"
    )]
    Eviction { url: String, policy: String },
    #[error("Redis at {url}: {detail}")]
    Redis { url: String, detail: String },
    #[error("ClickHouse at {url}: {detail}")]
    ClickHouse { url: String, detail: String },
    #[error("{kb}: stored data is inconsistent: {detail}")]
    Inconsistent { kb: String, detail: String },
}

/// `url` with any password replaced by `***`, for messages.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

/// Both stores, connected and checked for reading.
pub struct Stores {
    /// The Redis connection.
    pub redis: RedisStore,
    /// The ClickHouse client.
    pub clickhouse: ClickHouse,
    /// KATO's `SERVICE_NAME`.
    pub service_name: String,
}

impl Stores {
    /// Connects to both and checks that `kato.patterns_data` exists.
    pub fn connect(urls: &StoreUrls) -> Result<Self, StoreError> {
        let redis = RedisStore::connect(&urls.redis)?;
        let clickhouse = ClickHouse::connect(&urls.clickhouse)?;
        clickhouse.check_table()?;
        Ok(Stores {
            redis,
            clickhouse,
            service_name: urls.service_name.clone(),
        })
    }

    /// Every KB id with ClickHouse rows, Redis keys of a pattern, or a load marker,
    /// sorted. Redis-only KBs are found by their `global:total_unique_patterns` key.
    pub fn kb_ids(&mut self) -> Result<Vec<String>, StoreError> {
        let mut ids: std::collections::BTreeSet<String> =
            self.clickhouse.kb_ids()?.into_iter().collect();
        ids.extend(self.redis.kbs_with_counters()?);
        ids.extend(self.redis.markers()?.into_keys());
        Ok(ids.into_iter().collect())
    }

    /// True when the KB holds anything in either store.
    pub fn kb_is_empty(&mut self, kb: &str) -> Result<bool, StoreError> {
        Ok(self.clickhouse.count(kb)? == 0 && !self.redis.has_kb_keys(kb)?)
    }

    /// Removes one KB: its ClickHouse partition and every Redis key `<kb>:*`, and its
    /// load marker. Returns (rows, keys) removed.
    pub fn remove_kb(&mut self, kb: &str) -> Result<(u64, u64), StoreError> {
        let rows = self.clickhouse.count(kb)?;
        self.clickhouse.drop_partition(kb)?;
        let keys = self.redis.delete_kb_keys(kb)?;
        self.redis.clear_marker(kb)?;
        Ok((rows, keys))
    }
}
