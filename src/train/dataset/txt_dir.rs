//! A directory of `.txt` files, one document per file.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Map;

use super::decode::{self, Decoding};
use super::{BadReason, BadSample, DatasetError, RawSample, Source};

/// The files in name order; row N is the N+1th file.
pub(super) struct TextFiles {
    files: Vec<PathBuf>,
    decodings: Vec<Decoding>,
    next: usize,
}

impl TextFiles {
    /// `decodings[i]` is how `files[i]` is read ([`decode::sniff`]).
    pub(super) fn new(files: Vec<PathBuf>, decodings: Vec<Decoding>) -> Self {
        Self {
            files,
            decodings,
            next: 0,
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
        let mut bytes = Vec::new();
        let read = decode::open(path, self.decodings[self.next - 1])
            .map_err(|e| e.to_string())
            .and_then(|mut r| r.read_to_end(&mut bytes).map_err(|e| e.to_string()));
        if let Err(e) = read {
            return bad(BadReason::Read(e));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Some(Ok(RawSample {
                row,
                text,
                metadata: Map::new(),
                origin,
            })),
            Err(e) => bad(BadReason::InvalidUtf8(e.utf8_error().valid_up_to())),
        }
    }

    fn skip(&mut self, n: u64) -> Result<u64, DatasetError> {
        let left = (self.files.len() - self.next) as u64;
        let skipped = n.min(left);
        self.next += skipped as usize;
        Ok(skipped)
    }
}
