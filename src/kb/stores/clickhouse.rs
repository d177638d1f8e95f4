//! `kato.patterns_data` over ClickHouse's HTTP interface: checks, bulk RowBinary
//! inserts, paged reads and partition drops.
//!
//! RowBinary (ClickHouse docs, "Formats: RowBinary"): per row, the columns in the
//! INSERT's order; `String` is a LEB128 length then the bytes, `Array(T)` a LEB128
//! count then the elements, `UInt32`/`UInt64` little-endian. `created_at` and
//! `updated_at` are left to their `DEFAULT now()`, as KATO sets both to the insert time.

use std::collections::HashSet;

use reqwest::blocking::Client;
use serde::Deserialize;

use super::{redacted, StoreError, CONNECT_TIMEOUT};
use crate::kb::kato_form::PatternRow;

/// The columns katotune inserts, in RowBinary order.
pub const INSERT_COLUMNS: &str = "kb_id, name, pattern_data, length, token_set, token_count, \
                                  minhash_sig, lsh_bands, first_token, last_token";

/// A pattern's bare name and events, as a page of [`ClickHouse::page`] holds them.
pub type NamedEvents = (String, Vec<Vec<String>>);

/// A ClickHouse HTTP endpoint.
pub struct ClickHouse {
    http: Client,
    base: reqwest::Url,
    user: Option<(String, Option<String>)>,
    shown: String,
}

impl ClickHouse {
    /// Parses the URL (credentials move to Basic auth) and checks `GET /ping`.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redacted(url);
        let unreachable = |detail: String| StoreError::Unreachable {
            what: "ClickHouse",
            flag: "clickhouse",
            url: shown.clone(),
            detail,
        };
        let mut base = reqwest::Url::parse(url).map_err(|e| unreachable(e.to_string()))?;
        let user = (!base.username().is_empty()).then(|| {
            (
                base.username().to_string(),
                base.password().map(str::to_string),
            )
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let http = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let ch = ClickHouse {
            http,
            base,
            user,
            shown: shown.clone(),
        };
        let ping = ch
            .http
            .get(
                ch.base
                    .join("ping")
                    .map_err(|e| unreachable(e.to_string()))?,
            )
            .timeout(CONNECT_TIMEOUT)
            .send()
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        if !ping.status().is_success() {
            return Err(unreachable(format!("/ping answered {}", ping.status())));
        }
        Ok(ch)
    }

    fn error(&self, detail: String) -> StoreError {
        StoreError::ClickHouse {
            url: self.shown.clone(),
            detail,
        }
    }

    /// Runs `query` (params as `{name:Type}` placeholders) with `body` appended; returns
    /// the response text.
    fn run(
        &self,
        query: &str,
        params: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        let mut url = self.base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("query", query);
            for (k, v) in params {
                pairs.append_pair(&format!("param_{k}"), v);
            }
        }
        let mut req = self.http.post(url);
        if let Some((u, p)) = &self.user {
            req = req.basic_auth(u, p.as_ref());
        }
        let resp = req
            .body(body)
            .send()
            .map_err(|e| self.error(e.without_url().to_string()))?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| self.error(e.without_url().to_string()))?;
        if !status.is_success() {
            let first = query.lines().next().unwrap_or_default();
            return Err(self.error(format!("`{first}` failed ({status}): {}", text.trim())));
        }
        Ok(text)
    }

    /// Fails with [`StoreError::NoTable`] unless `kato.patterns_data` exists.
    pub fn check_table(&self) -> Result<(), StoreError> {
        let out = self.run("EXISTS TABLE kato.patterns_data", &[], Vec::new())?;
        match out.trim() {
            "1" => Ok(()),
            _ => Err(StoreError::NoTable {
                url: self.shown.clone(),
            }),
        }
    }

    /// KB ids with at least one row, sorted.
    pub fn kb_ids(&self) -> Result<Vec<String>, StoreError> {
        #[derive(Deserialize)]
        struct R {
            kb_id: String,
        }
        let q = "SELECT DISTINCT kb_id FROM kato.patterns_data ORDER BY kb_id FORMAT JSONEachRow";
        let text = self.run(q, &[], Vec::new())?;
        text.lines()
            .map(|l| {
                serde_json::from_str::<R>(l)
                    .map(|r| r.kb_id)
                    .map_err(|e| self.error(format!("unreadable answer: {e}")))
            })
            .collect()
    }

    /// Rows of one KB.
    pub fn count(&self, kb: &str) -> Result<u64, StoreError> {
        let q = "SELECT count() FROM kato.patterns_data WHERE kb_id = {kb:String}";
        let text = self.run(q, &[("kb", kb)], Vec::new())?;
        text.trim()
            .parse()
            .map_err(|_| self.error(format!("count() answered `{}`", text.trim())))
    }

    /// Inserts rows in one RowBinary request.
    pub fn insert(&self, rows: &[PatternRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut body = Vec::with_capacity(rows.len() * 1024);
        for row in rows {
            encode_row(&mut body, row);
        }
        let q = format!("INSERT INTO kato.patterns_data ({INSERT_COLUMNS}) FORMAT RowBinary");
        self.run(&q, &[], body).map(drop)
    }

    /// Up to `limit` (name, pattern_data) of one KB with names after `after`, by name.
    pub fn page(
        &self,
        kb: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<NamedEvents>, StoreError> {
        #[derive(Deserialize)]
        struct R {
            name: String,
            pattern_data: Vec<Vec<String>>,
        }
        let q = format!(
            "SELECT name, pattern_data FROM kato.patterns_data \
             WHERE kb_id = {{kb:String}} AND name > {{after:String}} \
             ORDER BY name LIMIT {limit} FORMAT JSONEachRow"
        );
        let text = self.run(&q, &[("kb", kb), ("after", after)], Vec::new())?;
        text.lines()
            .map(|l| {
                serde_json::from_str::<R>(l)
                    .map(|r| (r.name, r.pattern_data))
                    .map_err(|e| self.error(format!("unreadable row: {e}")))
            })
            .collect()
    }

    /// Which of `names` already have a row in `kb`.
    pub fn existing(&self, kb: &str, names: &[&str]) -> Result<HashSet<String>, StoreError> {
        let q = "SELECT name FROM kato.patterns_data WHERE kb_id = {kb:String} \
                 AND has({names:Array(String)}, name) FORMAT TSVRaw";
        let mut found = HashSet::new();
        // The names travel in the URL: 500 keep it far below the 64 KiB URI limit.
        for chunk in names.chunks(500) {
            let list = serde_json::to_string(chunk).unwrap_or_default();
            let text = self.run(
                q,
                &[("kb", kb), ("names", &list.replace('"', "'"))],
                Vec::new(),
            )?;
            found.extend(text.lines().map(str::to_string));
        }
        Ok(found)
    }

    /// `ALTER TABLE kato.patterns_data DROP PARTITION '<kb>'` (what KATO's own
    /// `delete_all_patterns` runs); a missing partition is not an error.
    pub fn drop_partition(&self, kb: &str) -> Result<(), StoreError> {
        let literal = kb.replace('\\', "\\\\").replace('\'', "\\'");
        let q = format!("ALTER TABLE kato.patterns_data DROP PARTITION '{literal}'");
        self.run(&q, &[], Vec::new()).map(drop)
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_strs(out: &mut Vec<u8>, items: &[String]) {
    put_len(out, items.len());
    for s in items {
        put_str(out, s);
    }
}

/// Appends one row in RowBinary, columns as [`INSERT_COLUMNS`].
pub fn encode_row(out: &mut Vec<u8>, row: &PatternRow) {
    put_str(out, &row.kb_id);
    put_str(out, &row.name);
    put_len(out, row.pattern_data.len());
    for event in &row.pattern_data {
        put_strs(out, event);
    }
    out.extend_from_slice(&row.length.to_le_bytes());
    put_strs(out, &row.token_set);
    out.extend_from_slice(&row.token_count.to_le_bytes());
    put_len(out, row.minhash_sig.len());
    for v in &row.minhash_sig {
        out.extend_from_slice(&v.to_le_bytes());
    }
    put_len(out, row.lsh_bands.len());
    for v in &row.lsh_bands {
        out.extend_from_slice(&v.to_le_bytes());
    }
    put_str(out, &row.first_token);
    put_str(out, &row.last_token);
}
