//! The one decoding layer every text reader goes through: compression found by magic
//! bytes and undone while streaming, then the text encoding found by byte order mark
//! or NUL pattern and turned into UTF-8.
//!
//! A file is sniffed once when the dataset is opened, so a corpus that cannot be read
//! (UTF-32, binary, a broken archive) is refused before a stack starts, and one that
//! needs decoding is said on the terminal. Decompression uses `flate2` (gzip), `zstd`,
//! `bzip2` and `liblzma` (xz); UTF-16 is decoded by `encoding_rs_io`.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use encoding_rs_io::DecodeReaderBytesBuilder;

use super::DatasetError;

/// Read buffer size; large enough that long documents need few system calls.
const BUFFER: usize = 1 << 20;
/// How many decompressed bytes the encoding check looks at.
const SNIFF: usize = 8 * 1024;

/// A compression a corpus file may be stored with, known by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`1f 8b`), e.g. `corpus.jsonl.gz`.
    Gzip,
    /// Zstandard (`28 b5 2f fd`), e.g. `corpus.jsonl.zst`.
    Zstd,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
}

impl Compression {
    /// The compression whose magic bytes `head` starts with, if any.
    pub fn from_magic(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else if head.starts_with(b"BZh") {
            Some(Self::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Self::Xz)
        } else {
            None
        }
    }

    /// The file extensions this compression is usually named with.
    pub fn extensions() -> &'static [&'static str] {
        &["gz", "gzip", "zst", "zstd", "bz2", "xz"]
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
        })
    }
}

/// The text encoding of a corpus file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 (or ASCII), with or without a byte order mark.
    Utf8,
    /// UTF-16 little-endian; `bom` tells whether the file says so itself.
    Utf16Le {
        /// Whether the file starts with a byte order mark.
        bom: bool,
    },
    /// UTF-16 big-endian.
    Utf16Be {
        /// Whether the file starts with a byte order mark.
        bom: bool,
    },
}

/// How one file is read: its compression and its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoding {
    /// The compression found by magic bytes, if any.
    pub compression: Option<Compression>,
    /// The text encoding of the (decompressed) content.
    pub encoding: TextEncoding,
}

impl Decoding {
    /// What the reader does to this file, in words, or `None` for plain UTF-8.
    pub fn note(&self, path: &Path) -> Option<String> {
        let mut steps = Vec::new();
        if let Some(c) = self.compression {
            steps.push(format!("{c}-compressed, decompressing while reading"));
        }
        let encoding = match self.encoding {
            TextEncoding::Utf8 => None,
            TextEncoding::Utf16Le { bom } => Some(("UTF-16LE", bom)),
            TextEncoding::Utf16Be { bom } => Some(("UTF-16BE", bom)),
        };
        if let Some((name, bom)) = encoding {
            let how = if bom {
                "byte order mark"
            } else {
                "NUL pattern, no byte order mark"
            };
            steps.push(format!("{name} ({how}), decoding to UTF-8"));
        }
        (!steps.is_empty()).then(|| format!("{}: {}", path.display(), steps.join("; ")))
    }
}

/// Sniffs `path`: its compression, then its encoding. Refuses UTF-32, binary data
/// and compressed data that does not decompress.
pub fn sniff(path: &Path) -> Result<Decoding, DatasetError> {
    let mut head = [0u8; 6];
    let n = read_up_to(open_file(path)?, &mut head).map_err(|e| unreadable(path, e))?;
    let compression = Compression::from_magic(&head[..n]);
    let mut sample = vec![0u8; SNIFF];
    let stream = decompressed(path, compression)?;
    let n = read_up_to(stream, &mut sample).map_err(|e| DatasetError::Undecodable {
        path: path.to_path_buf(),
        what: format!(
            "is not valid {} data ({e})",
            compression.map_or("text".into(), |c| c.to_string())
        ),
    })?;
    sample.truncate(n);
    let encoding = text_encoding(&sample).map_err(|what| DatasetError::Undecodable {
        path: path.to_path_buf(),
        what: what.to_string(),
    })?;
    Ok(Decoding {
        compression,
        encoding,
    })
}

/// Opens `path` as a stream of UTF-8 bytes, undoing `decoding`.
pub fn open(path: &Path, decoding: Decoding) -> Result<Box<dyn BufRead + Send>, DatasetError> {
    let stream = decompressed(path, decoding.compression)?;
    let text: Box<dyn Read + Send> = match decoding.encoding {
        TextEncoding::Utf8 => stream,
        TextEncoding::Utf16Le { .. } => utf16(stream, encoding_rs::UTF_16LE),
        TextEncoding::Utf16Be { .. } => utf16(stream, encoding_rs::UTF_16BE),
    };
    Ok(Box::new(BufReader::with_capacity(BUFFER, text)))
}

fn utf16(
    stream: Box<dyn Read + Send>,
    encoding: &'static encoding_rs::Encoding,
) -> Box<dyn Read + Send> {
    Box::new(
        DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding))
            .bom_override(true)
            .build(stream),
    )
}

fn decompressed(
    path: &Path,
    compression: Option<Compression>,
) -> Result<Box<dyn Read + Send>, DatasetError> {
    let file = BufReader::with_capacity(BUFFER, open_file(path)?);
    Ok(match compression {
        None => Box::new(file),
        Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Some(Compression::Zstd) => Box::new(
            zstd::stream::read::Decoder::with_buffer(file).map_err(|e| unreadable(path, e))?,
        ),
        Some(Compression::Bzip2) => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
        Some(Compression::Xz) => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(file)),
    })
}

/// Decides the encoding of the first bytes of a file, or says why it is not text.
///
/// A byte order mark decides; without one, NULs at every other byte mean UTF-16
/// (ASCII-range text in UTF-16 has a NUL in each pair), three NULs in four UTF-32,
/// and any other NUL binary data: UTF-8 text has no NUL bytes.
pub fn text_encoding(sample: &[u8]) -> Result<TextEncoding, &'static str> {
    const UTF32: &str = "is UTF-32 text, which is not read; convert it to UTF-8 first (e.g. `iconv -f UTF-32 -t UTF-8`)";
    if sample.starts_with(&[0xff, 0xfe, 0, 0]) || sample.starts_with(&[0, 0, 0xfe, 0xff]) {
        return Err(UTF32);
    }
    if sample.starts_with(&[0xff, 0xfe]) {
        return Ok(TextEncoding::Utf16Le { bom: true });
    }
    if sample.starts_with(&[0xfe, 0xff]) {
        return Ok(TextEncoding::Utf16Be { bom: true });
    }
    let nuls = |rem: usize, modulo: usize| {
        sample
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == 0 && i % modulo == rem)
            .count()
    };
    let total = nuls(0, 1);
    if total == 0 {
        return Ok(TextEncoding::Utf8);
    }
    let pairs = sample.len() / 2;
    let quads = sample.len() / 4;
    let (even, odd) = (nuls(0, 2), nuls(1, 2));
    if quads > 0 && (nuls(1, 4) + nuls(2, 4) + nuls(3, 4)) * 10 >= quads * 3 * 9 {
        return Err(UTF32);
    }
    if quads > 0 && (nuls(0, 4) + nuls(1, 4) + nuls(2, 4)) * 10 >= quads * 3 * 9 {
        return Err(UTF32);
    }
    if odd * 10 >= pairs * 3 && even * 20 <= odd {
        return Ok(TextEncoding::Utf16Le { bom: false });
    }
    if even * 10 >= pairs * 3 && odd * 20 <= even {
        return Ok(TextEncoding::Utf16Be { bom: false });
    }
    Err("holds NUL bytes, so it is binary data, not text; point `training.dataset.path` at a text, JSON Lines or Parquet corpus")
}

fn open_file(path: &Path) -> Result<File, DatasetError> {
    File::open(path).map_err(|e| unreadable(path, e))
}

fn unreadable(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Unreadable {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_up_to(mut reader: impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn nul_patterns_tell_utf16_utf32_and_binary_apart() {
        let text = "{\"text\": \"In the beginning\"}\n";
        assert_eq!(text_encoding(text.as_bytes()), Ok(TextEncoding::Utf8));
        assert_eq!(
            text_encoding(&utf16le(text)),
            Ok(TextEncoding::Utf16Le { bom: false })
        );
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(text_encoding(&be), Ok(TextEncoding::Utf16Be { bom: false }));
        let utf32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        assert!(text_encoding(&utf32).unwrap_err().contains("UTF-32"));
        let binary = [
            b'P', b'A', b'R', b'1', 0x15, 0x04, 0, 0x15, 0xff, 0x3c, 0, 0, 0, 1,
        ];
        assert!(text_encoding(&binary).unwrap_err().contains("binary"));
    }
}
