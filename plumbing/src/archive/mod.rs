//! Reading ACI archives: compression detection, decompression, hashing and
//! tar scanning with layout checks (aci-format §1–3, §11.1).
//!
//! - [`detect()`] names the compression from the first bytes.
//! - [`hash_stream`] decompresses to the end and hashes: the image id,
//!   without any layout check (what `hash-object` needs).
//! - [`scan`] does the same while copying every decompressed byte to a
//!   writer (the store's temp file), parsing the tar into [`Entry`]s with
//!   exact offsets, and checking the layout; [`Scanner`] is the same
//!   for uncompressed bytes pushed in by their producer.
//! - [`scan_blob`] re-indexes an already uncompressed tar held in memory.
//!
//! Decompression runs on its own thread (see [`decompress`]); hashing,
//! writing and parsing run on the caller's.

pub mod decompress;
pub mod detect;
pub mod layout;
pub mod tar;

use std::io::{self, Read, Write};

use crate::compression::Compression;
use crate::entry::Entry;
use crate::id::{HashThread, IdHasher, ImageId};
use crate::limits::LimitKind;

pub use self::decompress::{decoder, Chunks};
// The bounds moved to `crate::limits`; this name stays for the fuzz
// targets and for callers that learned it here.
pub use self::detect::detect;
pub use self::layout::{check_layout, clean_path, LayoutError};
pub use self::tar::{EntryRef, TarError, TarParser};
pub use crate::limits::Limits;

/// Why an archive could not be read, hashed or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The input holds no bytes at all.
    #[error("empty input (not an ACI)")]
    EmptyInput,
    /// A known compression or archive format that ACIs may not use.
    #[error("{format} data is not supported (ACIs are plain tar, gzip, bzip2 or xz)")]
    UnsupportedFormat {
        /// The format found (`zstd`, `lz4`, `zip`).
        format: &'static str,
    },
    /// The input starts with zero bytes only: an empty tar with no entries.
    #[error("input starts with zero blocks only (an empty tar, not an ACI)")]
    OnlyZeroBlocks,
    /// Nothing recognisable.
    #[error("unknown format (first bytes: {})", hex_bytes(first_bytes))]
    UnknownFormat {
        /// Up to 8 leading bytes.
        first_bytes: Vec<u8>,
    },
    /// Reading the (compressed) input failed.
    #[error("reading input: {source}")]
    Read {
        /// The I/O error.
        source: io::Error,
    },
    /// The compressed stream is truncated or corrupt.
    #[error(
        "{compression} stream truncated or corrupt after {offset} decompressed bytes: {source}"
    )]
    Decompress {
        /// The detected compression.
        compression: Compression,
        /// How many bytes were decompressed before the failure.
        offset: u64,
        /// The decoder's error.
        source: io::Error,
    },
    /// Writing the decompressed copy failed.
    #[error("writing decompressed copy: {source}")]
    Write {
        /// The I/O error.
        source: io::Error,
    },
    /// A helper thread (the decoder's, the SHA-512 one) could not be
    /// started or stopped on the way.
    #[error("decompression or hashing thread: {source}")]
    Thread {
        /// The I/O error.
        source: io::Error,
    },
    /// The decompressed stream is larger than [`Limits::max_decompressed_size`].
    #[error(
        "{}maximum decompressed size exceeded (more than {max} bytes)",
        at_entry(entry)
    )]
    TooLarge {
        /// The limit.
        max: u64,
        /// The entry being read when the limit was reached, when the tar
        /// was being parsed (`hash_stream` does not parse).
        entry: Option<EntryRef>,
    },
    /// The tar stream is malformed or exceeds a limit.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// The entries do not form a valid ACI layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// `"ENTRY: "`, or nothing when no entry is known.
fn at_entry(entry: &Option<EntryRef>) -> String {
    entry.as_ref().map(|e| format!("{e}: ")).unwrap_or_default()
}

impl ArchiveError {
    /// The bound this error reports as exceeded, if any. `TooLarge` is
    /// built outside this crate too, so it names its bound here rather
    /// than through a [`crate::limits::LimitExceeded`] source; the others forward theirs.
    pub fn limit_kind(&self) -> Option<LimitKind> {
        match self {
            ArchiveError::TooLarge { .. } => Some(LimitKind::Size),
            other => crate::limits::limit_kind(other),
        }
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() >= 8 { " ..." } else { "" };
    format!("{}{more}", hex.join(" "))
}

/// The result of [`hash_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashOutcome {
    /// SHA-512 of the whole decompressed stream.
    pub id: ImageId,
    /// Length of the decompressed stream.
    pub size: u64,
    /// The detected compression.
    pub compression: Compression,
}

/// The result of [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// SHA-512 of the whole decompressed stream (aci-format §3), including
    /// the end-of-archive blocks and anything after them.
    pub id: ImageId,
    /// Length of the decompressed stream.
    pub size: u64,
    /// The detected compression.
    pub compression: Compression,
    /// Every entry in archive order, with cleaned paths and exact offsets.
    pub entries: Vec<Entry>,
    /// The `manifest` entry's bytes, as stored (not parsed here).
    pub manifest: Vec<u8>,
}

/// Decompresses `input` to its end and hashes it: the image id.
///
/// No tar parsing and no layout check, so any well-compressed stream gets
/// an id; only an unknown format or a truncated/corrupt compressed stream
/// fails (aci-format §1 step 7: a missing gzip trailer fails here).
/// No size limit: see [`hash_stream_limited`] for untrusted input.
pub fn hash_stream(input: impl Read + Send + 'static) -> Result<HashOutcome, ArchiveError> {
    hash_stream_limited(input, u64::MAX)
}

/// [`hash_stream`] that stops with [`ArchiveError::TooLarge`] as soon as
/// the decompressed stream grows past `max_size` bytes, so a decompression
/// bomb costs at most `max_size` bytes of decoding, never unbounded time.
pub fn hash_stream_limited(
    input: impl Read + Send + 'static,
    max_size: u64,
) -> Result<HashOutcome, ArchiveError> {
    let chunks = Chunks::start(input)?;
    let compression = chunks.compression();
    let mut hasher = IdHasher::new();
    let size = chunks.for_each(|chunk| {
        if hasher.len().saturating_add(chunk.len() as u64) > max_size {
            return Err(ArchiveError::TooLarge {
                max: max_size,
                entry: None,
            });
        }
        hasher.update(chunk);
        Ok(())
    })?;
    Ok(HashOutcome {
        id: hasher.finish(),
        size,
        compression,
    })
}

/// Decompresses, hashes, copies and parses `input` in one pass, then checks
/// the layout.
///
/// Every decompressed byte is written to `copy_to`, so on success it holds
/// exactly the tar whose SHA-512 is the returned id and whose offsets the
/// entries give. On error `copy_to` holds a prefix and must be discarded.
pub fn scan(
    input: impl Read + Send + 'static,
    copy_to: &mut dyn Write,
    limits: &Limits,
) -> Result<Scanned, ArchiveError> {
    let chunks = Chunks::start(input)?;
    let compression = chunks.compression();
    let mut scanner = Scanner::new(limits);
    chunks.for_each(|chunk| scanner.feed(chunk, copy_to))?;
    scanner.finish(compression)
}

/// [`scan`] driven by its caller: uncompressed tar bytes pushed in as they
/// are made (the store's staged import, which a converter or a packer
/// writes into), hashed, copied and parsed with the same checks and the
/// same errors as [`scan`] gives for the same bytes.
pub struct Scanner<'l> {
    hasher: HashThread,
    parser: TarParser<'l>,
    limits: &'l Limits,
}

impl<'l> Scanner<'l> {
    /// A scanner applying `limits`.
    pub fn new(limits: &'l Limits) -> Self {
        Scanner {
            hasher: HashThread::new(),
            parser: TarParser::new(limits),
            limits,
        }
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.len() == 0
    }

    /// Hashes and parses `chunk`, the next bytes of the tar, and writes
    /// them to `copy_to`. After an error the scan is over: `copy_to` holds
    /// a prefix and must be discarded.
    pub fn feed(&mut self, chunk: &[u8], copy_to: &mut dyn Write) -> Result<(), ArchiveError> {
        let max = self.limits.max_decompressed_size;
        if self.hasher.len().saturating_add(chunk.len() as u64) > max {
            // Parse up to the limit to name the entry it cuts into (a tar
            // error before that point is the better report). `room` is
            // less than the chunk's length, so it fits in usize.
            let room = max.saturating_sub(self.hasher.len());
            self.parser.feed(&chunk[..room as usize])?;
            return Err(ArchiveError::TooLarge {
                max,
                entry: Some(self.parser.current_entry()),
            });
        }
        self.hasher.update(chunk);
        copy_to
            .write_all(chunk)
            .map_err(|source| ArchiveError::Write { source })?;
        self.parser.feed(chunk)?;
        Ok(())
    }

    /// Ends the tar: the parser's end checks and the layout check. The
    /// stream was compressed with `compression` (only reported).
    pub fn finish(self, compression: Compression) -> Result<Scanned, ArchiveError> {
        let size = self.hasher.len();
        let parsed = self.parser.finish()?;
        check_layout(&parsed.entries)?;
        let id = self
            .hasher
            .finish()
            .map_err(|source| ArchiveError::Thread { source })?;
        Ok(Scanned {
            id,
            size,
            compression,
            entries: parsed.entries,
            // check_layout guarantees one regular manifest, whose data the
            // parser kept; an empty one is left to the manifest parser.
            manifest: parsed.manifest.unwrap_or_default(),
        })
    }
}

/// Parses an uncompressed tar held in memory (a stored blob, e.g. through
/// an mmap) into its entries and checks the layout: an index rebuild.
pub fn scan_blob(tar: &[u8], limits: &Limits) -> Result<Vec<Entry>, ArchiveError> {
    if tar.len() as u64 > limits.max_decompressed_size {
        return Err(ArchiveError::TooLarge {
            max: limits.max_decompressed_size,
            entry: None,
        });
    }
    let mut parser = TarParser::new(limits);
    parser.feed(tar)?;
    let parsed = parser.finish()?;
    check_layout(&parsed.entries)?;
    Ok(parsed.entries)
}

#[cfg(test)]
mod tests {
    use super::tar::tests::{fix_checksum, header, minimal, push};
    use super::*;
    use crate::entry::EntryKind;
    use proptest::prelude::*;

    fn scan_vec(bytes: Vec<u8>) -> Result<Scanned, ArchiveError> {
        scan(io::Cursor::new(bytes), &mut io::sink(), &Limits::default())
    }

    #[test]
    fn scan_keeps_hard_links_and_skips_the_root_entry() {
        let mut t = Vec::new();
        push(&mut t, header(b"./", b'5', 0), b"");
        push(&mut t, header(b"./manifest", b'0', 2), b"{}");
        push(&mut t, header(b"./rootfs/", b'5', 0), b"");
        push(&mut t, header(b"rootfs/a", b'0', 1), b"a");
        let mut link = header(b"rootfs/b", b'1', 0);
        link[157..167].copy_from_slice(b"./rootfs/a");
        fix_checksum(&mut link);
        push(&mut t, link, b"");
        t.extend_from_slice(&[0; 1024]);
        let scanned = scan_vec(t.clone()).unwrap();
        assert_eq!(scanned.manifest, b"{}");
        assert_eq!(scanned.entries.len(), 4, "the ./ entry is not kept");
        let b = &scanned.entries[3];
        assert_eq!(b.kind, EntryKind::HardLink);
        assert_eq!(b.link_target.as_deref(), Some(&b"rootfs/a"[..]));
        assert_eq!(scan_blob(&t, &Limits::default()).unwrap(), scanned.entries);
    }

    #[test]
    fn scan_rejects_a_link_to_a_later_entry() {
        let mut t = Vec::new();
        push(&mut t, header(b"manifest", b'0', 2), b"{}");
        push(&mut t, header(b"rootfs", b'5', 0), b"");
        let mut link = header(b"rootfs/b", b'1', 0);
        link[157..165].copy_from_slice(b"rootfs/a");
        fix_checksum(&mut link);
        push(&mut t, link, b"");
        push(&mut t, header(b"rootfs/a", b'0', 1), b"a");
        let err = scan_vec(t).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rootfs/b: hard link target rootfs/a is not an earlier file inside rootfs/"
        );
    }

    #[test]
    fn hashing_covers_bytes_after_the_end_marker() {
        let t = minimal();
        let mut padded = t.clone();
        padded.extend_from_slice(&[0; 8192]);
        let a = scan_vec(t).unwrap();
        let b = scan_vec(padded.clone()).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(b.size, padded.len() as u64);
        assert_eq!(a.entries, b.entries);
        let mut hasher = IdHasher::new();
        hasher.update(&padded);
        assert_eq!(b.id, hasher.finish());
    }

    #[test]
    fn write_errors_are_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = scan(io::Cursor::new(minimal()), &mut Full, &Limits::default()).unwrap_err();
        assert_eq!(err.to_string(), "writing decompressed copy: disk full");
    }

    #[test]
    fn the_size_limit_names_the_entry_it_cuts_into() {
        let mut t = Vec::new();
        push(&mut t, header(b"manifest", b'0', 2), b"{}");
        push(&mut t, header(b"rootfs", b'5', 0), b"");
        push(&mut t, header(b"rootfs/big", b'0', 4000), &[7; 4000]);
        t.extend_from_slice(&[0; 1024]);
        let limits = Limits {
            max_decompressed_size: 2048,
            ..Limits::default()
        };
        let err = scan(io::Cursor::new(t.clone()), &mut io::sink(), &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rootfs/big: maximum decompressed size exceeded (more than 2048 bytes)"
        );
        // Exactly the stream's size is allowed.
        let exact = Limits {
            max_decompressed_size: t.len() as u64,
            ..Limits::default()
        };
        assert!(scan(io::Cursor::new(t.clone()), &mut io::sink(), &exact).is_ok());
    }

    #[test]
    fn hash_stream_limited_stops_at_the_limit() {
        let t = minimal();
        let len = t.len() as u64;
        let full = hash_stream(io::Cursor::new(t.clone())).unwrap();
        let same = hash_stream_limited(io::Cursor::new(t.clone()), len).unwrap();
        assert_eq!(full, same);
        let err = hash_stream_limited(io::Cursor::new(t), len - 1).unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooLarge { max, entry: None } if max == len - 1),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "maximum decompressed size exceeded (more than {} bytes)",
                len - 1
            )
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn scan_never_panics_on_mutated_input(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
            gzip in any::<bool>(),
        ) {
            let mut t = minimal();
            for (at, value) in &flips {
                let len = t.len();
                t[at % len] = *value;
            }
            let input = if gzip {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&t).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut gz = enc.finish().map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some((at, value)) = flips.first() {
                    let len = gz.len();
                    gz[at % len] = *value;
                }
                gz
            } else {
                t
            };
            let _ = scan_vec(input.clone());
            let _ = hash_stream(io::Cursor::new(input));
        }
    }
}
