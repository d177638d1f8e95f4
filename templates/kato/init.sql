-- The table KATO 3.10.1 stores string patterns in (KATO config/clickhouse/init.sql,
-- API.md section 9): one row per (knowledge base, pattern name), partitioned by
-- knowledge base so one KB drops as one partition. Same columns, types, partitioning
-- and sort key as KATO's; katotune's KB loader writes into it.
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
