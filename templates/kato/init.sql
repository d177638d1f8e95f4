-- The table KATO 3.10 stores string patterns in (API.md section 9): one row per
-- (knowledge base, pattern name), partitioned by knowledge base.
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
    created_at DateTime64(3) DEFAULT now64(3),
    updated_at DateTime64(3) DEFAULT now64(3)
)
ENGINE = MergeTree()
PARTITION BY kb_id
ORDER BY (kb_id, name);
