-- The table KATO 3.10.1 stores string patterns in (KATO config/clickhouse/init.sql,
-- API.md section 9): one row per (knowledge base, pattern name), partitioned by
-- knowledge base so one KB drops as one partition. Same tables, columns, types,
-- partitioning, sort keys and skip indexes as KATO's file (written here from those
-- facts, with table names qualified instead of `USE kato`); nothing differs in what
-- the server sees. katotune's KB loader writes into patterns_data.
CREATE DATABASE IF NOT EXISTS kato;

CREATE TABLE IF NOT EXISTS kato.patterns_data
(
    kb_id String,
    name String,
    pattern_data Array(Array(String)),
    length UInt32,
    token_set Array(String),
    token_count UInt32,
    minhash_sig Array(UInt32),
    lsh_bands Array(UInt64),
    first_token String,
    last_token String,
    created_at DateTime DEFAULT now(),
    updated_at DateTime DEFAULT now()
)
ENGINE = MergeTree()
PARTITION BY kb_id
ORDER BY (kb_id, length, name)
SETTINGS index_granularity = 8192;

ALTER TABLE kato.patterns_data ADD INDEX IF NOT EXISTS idx_length length TYPE minmax GRANULARITY 4;
ALTER TABLE kato.patterns_data ADD INDEX IF NOT EXISTS idx_token_bloom token_set TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE kato.patterns_data ADD INDEX IF NOT EXISTS idx_token_count token_count TYPE minmax GRANULARITY 4;

-- KATO's two optional tables, created as its init file creates them (KATO 3.10.1's
-- server does not write them; kept so the schema is KATO's whole schema).
CREATE TABLE IF NOT EXISTS kato.lsh_buckets
(
    kb_id String,
    band_index UInt8,
    band_hash UInt64,
    pattern_name String
)
ENGINE = MergeTree()
PARTITION BY kb_id
ORDER BY (kb_id, band_hash, pattern_name);

CREATE TABLE IF NOT EXISTS kato.pattern_stats
(
    kb_id String,
    date Date,
    total_patterns UInt64,
    avg_length Float64,
    avg_token_count Float64,
    min_length UInt32,
    max_length UInt32
)
ENGINE = MergeTree()
PARTITION BY kb_id
ORDER BY (kb_id, date);
