//! Writing a stored image out as an ACI, verified while it streams.

use super::files::open_regular;
use super::verify::BlobState;
use super::Store;
use super::StoreError;
use std::io::{self, Read, Write};

use crate::compression::Compression;
use crate::compression::Encoder;
use crate::id::{IdHasher, ImageId};

/// How [`Store::export`] encodes the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The compression of the written ACI.
    pub compression: Compression,
    /// Compression level; the compression's default when `None`.
    pub level: Option<u32>,
    /// xz worker threads (0: one per core).
    pub xz_threads: u32,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            compression: Compression::Xz,
            level: None,
            xz_threads: 0,
        }
    }
}

/// What [`Store::export`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// The exported image.
    pub id: ImageId,
    /// Size of the uncompressed tar.
    pub size: u64,
    /// Bytes written (after compression).
    pub written: u64,
}

impl Store {
    /// Writes the image `id` to `out` as an ACI compressed as `opts` asks.
    ///
    /// The blob is re-hashed first and a damaged one is refused before a
    /// byte is written; it is hashed again as it streams out, and a
    /// difference (a blob changed underneath) fails the export at the end,
    /// so a caller writing to a temp file never publishes it. The
    /// compressed bytes decompress to exactly the blob, so the exported
    /// ACI has the same id whatever the compression.
    pub fn export(
        &self,
        id: &ImageId,
        out: impl Write,
        opts: &ExportOptions,
    ) -> Result<ExportReport, StoreError> {
        let path = self.blob_path(id);
        match self.verify_blob(id)? {
            BlobState::Intact { .. } => {}
            BlobState::Missing => return Err(StoreError::NotFound { id: id.to_string() }),
            BlobState::NotRegular { kind } => return Err(StoreError::NotRegular { path, kind }),
            BlobState::HashMismatch { found, .. } => {
                return Err(StoreError::HashMismatch {
                    id: id.to_string(),
                    found: found.to_string(),
                })
            }
        }
        let Some(mut blob) = open_regular(&path)? else {
            return Err(StoreError::NotFound { id: id.to_string() });
        };
        let write_err = |source| StoreError::ExportWrite { id: *id, source };
        let mut counter = CountingWriter { inner: out, n: 0 };
        let mut encoder = Encoder::new(&mut counter, opts.compression, opts.level, opts.xz_threads)
            .map_err(|source| StoreError::Compress { id: *id, source })?;
        let mut hasher = IdHasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match blob.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            hasher.update(&buf[..n]);
            encoder.write_all(&buf[..n]).map_err(write_err)?;
        }
        encoder.finish().map_err(write_err)?;
        let size = hasher.len();
        let found = hasher.finish();
        if found != *id {
            return Err(StoreError::HashMismatch {
                id: id.to_string(),
                found: found.to_string(),
            });
        }
        Ok(ExportReport {
            id: *id,
            size,
            written: counter.n,
        })
    }
}

/// Counts the bytes that go through to `inner`.
struct CountingWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
