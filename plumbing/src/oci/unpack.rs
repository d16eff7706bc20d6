//! One layer, decompressed into a scratch file while its diff id is
//! checked and its entries are parsed (the first half of a pull's
//! conversion; [`super::convert`] applies the result).

use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::Flock;

use super::digest::{Sha256Digest, Sha256Hasher};
use super::source::LayerCompression;
use super::OciError;
use crate::archive::tar::TarParser;
use crate::compression::Compression;
use crate::entry::Entry;
use crate::limits::{LimitExceeded, LimitKind, Limits};

/// A scratch file and the lock that keeps sweepers (`gc`) away from it.
pub struct ScratchFile {
    file: tempfile::NamedTempFile,
    _lock: Flock<File>,
}

impl ScratchFile {
    pub(super) fn create(scratch: &Path, prefix: &str) -> io::Result<ScratchFile> {
        let (file, lock) = crate::temp::create_locked_file(scratch, prefix, "", 0o600)?;
        Ok(ScratchFile { file, _lock: lock })
    }

    /// The open file.
    pub fn as_file(&self) -> &File {
        self.file.as_file()
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl std::fmt::Debug for ScratchFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScratchFile({})", self.path().display())
    }
}

/// A layer decompressed into a scratch file, its diff id checked, and its
/// entries (paths cleaned, `./` left out) with their data offsets.
#[derive(Debug)]
pub struct LayerTar {
    pub(super) file: ScratchFile,
    pub(super) entries: Vec<Entry>,
    pub(super) root: Option<Entry>,
    /// Bytes of the uncompressed stream.
    pub size: u64,
}

/// Decompresses layer `number` (1 = base) of `image` from `input` into a
/// scratch file in `scratch`, bounded by `limits.max_decompressed_size`;
/// fails unless the whole stream (padding and trailing bytes included)
/// hashes to `diff_id` and parses as tar.
#[allow(clippy::too_many_arguments)]
pub fn unpack_layer(
    image: &str,
    number: usize,
    mut input: Box<dyn Read + Send>,
    compression: LayerCompression,
    diff_id: Sha256Digest,
    limits: &Limits,
    scratch: &Path,
    interrupt: Option<&AtomicBool>,
    progress: &mut dyn FnMut(u64),
) -> Result<LayerTar, OciError> {
    let what = format!("layer {number}");
    let read_err = |source: io::Error| OciError::Read {
        image: image.to_owned(),
        what: what.clone(),
        source,
    };
    let mut head = Vec::with_capacity(crate::archive::detect::SNIFF_LEN);
    (&mut input)
        .take(crate::archive::detect::SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let compression = match compression {
        LayerCompression::None => Compression::None,
        LayerCompression::Gzip => Compression::Gzip,
        LayerCompression::Sniff if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) => {
            return Err(OciError::Invalid {
                image: image.to_owned(),
                what,
                problem: "zstd layers are not supported (an ACI cannot carry zstd)".to_owned(),
            })
        }
        LayerCompression::Sniff => {
            crate::archive::detect(&head).map_err(|source| OciError::Decompress {
                image: image.to_owned(),
                layer: number,
                source,
            })?
        }
    };
    // The network, the blob's digest and the decoder run a few chunks
    // ahead on their own thread, while this one takes the diff id, parses
    // and writes the scratch file.
    let mut decoded = crate::archive::decompress::ReadAhead::start(crate::archive::decoder(
        compression,
        Cursor::new(head).chain(input),
    ))
    .map_err(read_err)?;
    let file = ScratchFile::create(scratch, "pull-layer-").map_err(|source| OciError::Write {
        image: image.to_owned(),
        layer: number,
        dir: scratch.to_owned(),
        source,
    })?;
    let write_err = |source: io::Error| OciError::Write {
        image: image.to_owned(),
        layer: number,
        dir: scratch.to_owned(),
        source,
    };
    let mut out = BufWriter::with_capacity(1 << 20, file.as_file());
    let mut hasher = Sha256Hasher::new();
    let mut parser = TarParser::new(limits);
    let mut buf = vec![0u8; 1 << 20];
    let mut tar_error = None;
    loop {
        if interrupt.is_some_and(|flag| flag.load(Ordering::SeqCst)) {
            return Err(OciError::Interrupted {
                image: image.to_owned(),
            });
        }
        let n = match decoded.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        if hasher.len() > limits.max_decompressed_size {
            return Err(OciError::LimitExceeded {
                image: image.to_owned(),
                what,
                limit: LimitExceeded::new(LimitKind::Size),
                value: hasher.len(),
                max: limits.max_decompressed_size,
            });
        }
        if tar_error.is_some() {
            // Past a parse error only the digest is still of interest.
            continue;
        }
        out.write_all(chunk).map_err(write_err)?;
        if let Err(source) = parser.feed(chunk) {
            // A blob that is not what the manifest names is reported as
            // such, not as whatever its bytes happen to break: read on to
            // the end, where the digest and the diff id are checked.
            tar_error = Some(OciError::Tar {
                image: image.to_owned(),
                layer: number,
                source,
            });
        }
        progress(n as u64);
    }
    out.flush().map_err(write_err)?;
    drop(out);
    let size = hasher.len();
    let found = hasher.finish();
    // Very old `docker save` layers may be empty files, not tars: they
    // hold nothing (oci-bridge §6), and their diff id still has to match.
    if found != diff_id {
        return Err(OciError::DigestMismatch {
            image: image.to_owned(),
            what: format!("{what} (uncompressed)"),
            expected: diff_id.to_string(),
            found: found.to_string(),
        });
    }
    if let Some(error) = tar_error {
        return Err(error);
    }
    let parsed = parser.finish().map_err(|source| OciError::Tar {
        image: image.to_owned(),
        layer: number,
        source,
    })?;
    Ok(LayerTar {
        file,
        entries: parsed.entries,
        root: parsed.root,
        size,
    })
}
