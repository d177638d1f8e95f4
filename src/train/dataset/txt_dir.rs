//! A directory of `.txt` files, one document per file.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Map;

use super::cap::{read_capped, TextCap};
use super::decode::{self, Decoding};
use super::{BadReason, BadSample, DatasetError, RawSample, Source};

/// The files in name order; row N is the N+1th file.
pub(super) struct TextFiles {
    files: Vec<PathBuf>,
    decodings: Vec<Decoding>,
    next: usize,
    cap: Option<TextCap>,
}

/// A whole file as UTF-8.
fn read_whole(mut reader: impl Read) -> std::io::Result<Result<(String, u64), BadReason>> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    Ok(String::from_utf8(bytes)
        .map(|text| (text, 0))
        .map_err(|e| BadReason::InvalidUtf8(e.utf8_error().valid_up_to())))
}

impl TextFiles {
    /// `decodings[i]` is how `files[i]` is read ([`decode::sniff`]).
    pub(super) fn new(files: Vec<PathBuf>, decodings: Vec<Decoding>) -> Self {
        Self {
            files,
            decodings,
            next: 0,
            cap: None,
        }
    }
}

impl Source for TextFiles {
    fn next_row(&mut self) -> Option<Result<RawSample, BadSample>> {
        let path = self.files.get(self.next)?;
        let row = self.next as u64;
        self.next += 1;
        let origin = path.display().to_string();
        let bad = |reason| {
            Some(Err(BadSample {
                row,
                origin: origin.clone(),
                reason,
            }))
        };
        let reader = match decode::open(path, self.decodings[self.next - 1]) {
            Ok(reader) => reader,
            Err(e) => return bad(BadReason::Read(e.to_string())),
        };
        let read = match &self.cap {
            Some(cap) => read_capped(&[], reader, cap.clone()),
            None => read_whole(reader),
        };
        match read {
            Ok(Ok((text, cut))) => Some(Ok(RawSample {
                row,
                text,
                metadata: Map::new(),
                origin,
                tokens_cut: cut,
            })),
            Ok(Err(reason)) => bad(reason),
            Err(e) => bad(BadReason::Read(e.to_string())),
        }
    }

    fn cap(&mut self, cap: TextCap) {
        self.cap = Some(cap);
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        let left = (self.files.len() - self.next) as u64;
        let skipped = n.min(left);
        self.next += skipped as usize;
        Ok(skipped)
    }
}
