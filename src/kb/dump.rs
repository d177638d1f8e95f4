//! The dump: a knowledge base as one portable, streamable text file.
//!
//! Format `katotune-kb-dump`, version 1: JSON Lines (UTF-8, one JSON object per line,
//! `\n` separated). Line 1 is the header, then one line per pattern, then one line per
//! affinity entry, and a last `end` line with the counts, so a cut file is detected:
//!
//! ```text
//! {"type":"header","format":"katotune-kb-dump","format_version":1,"katotune_version":"0.1.0",
//!  "naming_rule":"kato-3.10/sha1-pystr-sorted-events","service_name":"kato",
//!  "created":"2026-11-30T03:00:00Z","kb_ids":["node0_kato","node1_kato"]}
//! {"type":"pattern","kb_id":"node0_kato","node":"node0","name":"<40 hex>",
//!  "events":[["a","b"],["c"]],"frequency":2,"emotives":[{"joy":0.5}],"metadata":{"k":["v"]}}
//! {"type":"affinity","kb_id":"node0_kato","node":"node0","symbol":"a","sums":{"joy":"0.5"}}
//! {"type":"end","patterns":1,"affinity":1}
//! ```
//!
//! (Each record is on one line in the file.) `name` is the bare hex KATO stores (no
//! `PTRN|`); `events` have their symbols sorted inside each event; `emotives` is KATO's
//! rolling window, oldest first; `metadata` values are sorted unique strings; affinity
//! sums are Redis's `HINCRBYFLOAT` text. `node` is informative (the KB id is the key).
//! `kb_ids` in the header lists every KB the dump holds, so a loader can check its
//! target before it writes anything. Records of one KB need not be contiguous.
//!
//! Readers refuse another `format_version` or `naming_rule`: names computed under a
//! different rule would not be the names KATO computes for the same events.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AffinityEntry, PatternEntry};

/// The format name in every dump header.
pub const FORMAT: &str = "katotune-kb-dump";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// KATO's pattern naming rule the names follow: `PTRN|` + SHA-1 of Python's `str()` of
/// the event list with symbols sorted per event (KATO 3.10, API.md 3.2).
pub const NAMING_RULE: &str = "kato-3.10/sha1-pystr-sorted-events";

/// Line 1 of a dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    /// The katotune that wrote the dump.
    pub katotune_version: String,
    /// [`NAMING_RULE`] when written by this build.
    pub naming_rule: String,
    /// KATO's `SERVICE_NAME` the KB ids were derived with.
    pub service_name: String,
    /// When the dump was started (RFC 3339, UTC).
    pub created: String,
    /// Every KB id the dump holds.
    pub kb_ids: Vec<String>,
}

impl DumpHeader {
    /// A header for this build, dated now.
    pub fn new(service_name: &str, kb_ids: Vec<String>) -> Self {
        DumpHeader {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            katotune_version: env!("CARGO_PKG_VERSION").into(),
            naming_rule: NAMING_RULE.into(),
            service_name: service_name.into(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            kb_ids,
        }
    }
}

/// One record after the header.
#[derive(Debug, Clone, PartialEq)]
pub enum DumpItem {
    /// A stored pattern.
    Pattern(PatternEntry),
    /// One symbol's affinity sums.
    Affinity(AffinityEntry),
}

impl DumpItem {
    /// The KB the record belongs to.
    pub fn kb_id(&self) -> &str {
        match self {
            DumpItem::Pattern(p) => &p.kb_id,
            DumpItem::Affinity(a) => &a.kb_id,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Header(DumpHeader),
    Pattern {
        kb_id: String,
        #[serde(default)]
        node: String,
        name: String,
        events: Vec<Vec<String>>,
        frequency: u64,
        #[serde(default)]
        emotives: Vec<BTreeMap<String, f64>>,
        #[serde(default)]
        metadata: BTreeMap<String, BTreeSet<String>>,
    },
    Affinity {
        kb_id: String,
        #[serde(default)]
        node: String,
        symbol: String,
        sums: BTreeMap<String, String>,
    },
    End {
        patterns: u64,
        affinity: u64,
    },
}

/// A dump that cannot be read or written; every message names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Bad {
        path: PathBuf,
        line: u64,
        what: String,
    },
    #[error(
        "{path}: the dump ends after line {line} without its `end` line: it was cut short \
         (disk full, or the dump was killed); dump the source again"
    )]
    Truncated { path: PathBuf, line: u64 },
}

/// The node id a KB id was derived from, when it ends with `_<service>`.
pub fn node_of(kb_id: &str, service_name: &str) -> String {
    let suffix = format!("_{}", service_name.replace('-', "_"));
    kb_id.strip_suffix(&suffix).unwrap_or(kb_id).to_string()
}

/// Writes a dump record by record; [`DumpWriter::finish`] writes the `end` line.
pub struct DumpWriter<W: Write> {
    out: W,
    path: PathBuf,
    service_name: String,
    patterns: u64,
    affinity: u64,
}

impl<W: Write> DumpWriter<W> {
    /// Writes the header. `path` only names the destination in errors.
    pub fn new(mut out: W, path: &Path, header: &DumpHeader) -> Result<Self, DumpError> {
        let io = |source| DumpError::Io {
            path: path.to_path_buf(),
            source,
        };
        serde_json::to_writer(&mut out, &Line::Header(header.clone())).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        Ok(DumpWriter {
            out,
            path: path.to_path_buf(),
            service_name: header.service_name.clone(),
            patterns: 0,
            affinity: 0,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, item: &DumpItem) -> Result<(), DumpError> {
        let node = node_of(item.kb_id(), &self.service_name);
        let line = match item {
            DumpItem::Pattern(p) => {
                self.patterns += 1;
                Line::Pattern {
                    kb_id: p.kb_id.clone(),
                    node,
                    name: p.name.clone(),
                    events: p.events.clone(),
                    frequency: p.frequency,
                    emotives: p.emotives.clone(),
                    metadata: p.metadata.clone(),
                }
            }
            DumpItem::Affinity(a) => {
                self.affinity += 1;
                Line::Affinity {
                    kb_id: a.kb_id.clone(),
                    node,
                    symbol: a.symbol.clone(),
                    sums: a.sums.clone(),
                }
            }
        };
        self.put(&line)
    }

    fn put(&mut self, line: &Line) -> Result<(), DumpError> {
        let path = &self.path;
        let io = |source| DumpError::Io {
            path: path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, line).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)
    }

    /// Writes the `end` line and flushes; returns (patterns, affinity entries) written.
    pub fn finish(mut self) -> Result<(u64, u64), DumpError> {
        let end = Line::End {
            patterns: self.patterns,
            affinity: self.affinity,
        };
        self.put(&end)?;
        self.out.flush().map_err(|source| DumpError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok((self.patterns, self.affinity))
    }
}

/// Reads a dump record by record, in bounded memory (one line at a time).
pub struct DumpReader<R: BufRead> {
    input: R,
    path: PathBuf,
    header: DumpHeader,
    line_no: u64,
    seen: (u64, u64),
    ended: bool,
    buf: String,
}

impl<R: BufRead> DumpReader<R> {
    /// Reads and checks the header. `path` only names the source in errors.
    pub fn new(mut input: R, path: &Path) -> Result<Self, DumpError> {
        let mut buf = String::new();
        let bad = |what: String| DumpError::Bad {
            path: path.to_path_buf(),
            line: 1,
            what,
        };
        input.read_line(&mut buf).map_err(|source| DumpError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let header = match serde_json::from_str::<Line>(buf.trim_end()) {
            Ok(Line::Header(h)) => h,
            _ => {
                return Err(bad(format!(
                    "not a katotune KB dump (line 1 is not a `{FORMAT}` header); \
                     make one with `katotune kb dump TARGET -o FILE`"
                )))
            }
        };
        check_header(&header).map_err(bad)?;
        Ok(DumpReader {
            input,
            path: path.to_path_buf(),
            header,
            line_no: 1,
            seen: (0, 0),
            ended: false,
            buf,
        })
    }

    /// The checked header.
    pub fn header(&self) -> &DumpHeader {
        &self.header
    }

    /// The next record, `None` after a complete `end` line.
    pub fn next_item(&mut self) -> Result<Option<DumpItem>, DumpError> {
        if self.ended {
            return Ok(None);
        }
        self.buf.clear();
        let n = self
            .input
            .read_line(&mut self.buf)
            .map_err(|source| DumpError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(DumpError::Truncated {
                path: self.path.clone(),
                line: self.line_no,
            });
        }
        self.line_no += 1;
        let line: Line = serde_json::from_str(self.buf.trim_end()).map_err(|e| {
            self.bad(format!(
                "not a dump record ({e}); the file is damaged: dump the source again"
            ))
        })?;
        self.item(line)
    }

    fn item(&mut self, line: Line) -> Result<Option<DumpItem>, DumpError> {
        let item = match line {
            Line::Header(_) => return Err(self.bad("a second header".into())),
            Line::End { patterns, affinity } => {
                if (patterns, affinity) != self.seen {
                    return Err(self.bad(format!(
                        "the end line counts {patterns} patterns and {affinity} affinity \
                         entries but the file holds {} and {}: lines were lost; dump again",
                        self.seen.0, self.seen.1
                    )));
                }
                self.ended = true;
                return Ok(None);
            }
            Line::Pattern {
                kb_id,
                name,
                events,
                frequency,
                emotives,
                metadata,
                ..
            } => {
                self.seen.0 += 1;
                DumpItem::Pattern(PatternEntry {
                    kb_id,
                    name,
                    events,
                    frequency,
                    emotives,
                    metadata,
                })
            }
            Line::Affinity {
                kb_id,
                symbol,
                sums,
                ..
            } => {
                self.seen.1 += 1;
                DumpItem::Affinity(AffinityEntry {
                    kb_id,
                    symbol,
                    sums,
                })
            }
        };
        self.check_item(&item)?;
        Ok(Some(item))
    }

    fn check_item(&self, item: &DumpItem) -> Result<(), DumpError> {
        if !self.header.kb_ids.iter().any(|k| k == item.kb_id()) {
            return Err(self.bad(format!(
                "KB `{}` is not listed in the header's kb_ids",
                item.kb_id()
            )));
        }
        if let DumpItem::Pattern(p) = item {
            let hex_ok = p.name.len() == 40 && p.name.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok {
                return Err(self.bad(format!(
                    "pattern name `{}` is not a bare 40-hex SHA-1",
                    p.name
                )));
            }
            if p.frequency == 0 || p.events.is_empty() {
                return Err(self.bad(format!("pattern {} has frequency 0 or no events", p.name)));
            }
        }
        Ok(())
    }

    fn bad(&self, what: String) -> DumpError {
        DumpError::Bad {
            path: self.path.clone(),
            line: self.line_no,
            what,
        }
    }
}

impl<R: BufRead> Iterator for DumpReader<R> {
    type Item = Result<DumpItem, DumpError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// Refuses headers this build cannot load, saying what to do.
fn check_header(h: &DumpHeader) -> Result<(), String> {
    if h.format != FORMAT {
        return Err(format!("format `{}` is not `{FORMAT}`", h.format));
    }
    if h.format_version != FORMAT_VERSION {
        return Err(format!(
            "dump format version {} (written by katotune {}); this katotune reads version \
             {FORMAT_VERSION}: load it with a katotune that reads it, or dump the source \
             again with this one",
            h.format_version, h.katotune_version
        ));
    }
    if h.naming_rule != NAMING_RULE {
        return Err(format!(
            "pattern naming rule `{}`, but this katotune and KATO 3.10 name patterns by \
             `{NAMING_RULE}`: its names would not be the names KATO computes; retrain the \
             KB with this katotune instead of loading it",
            h.naming_rule
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "dump_tests.rs"]
mod tests;
