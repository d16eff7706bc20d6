//! An image opened for reading: the uncompressed tar mapped into memory
//! with its entry index, so the manifest and any file's data are slices of
//! the map and nothing is decompressed or parsed twice (DESIGN §2).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::archive::{self, ArchiveError};
use crate::entry::{Entry, EntryKind};
use crate::id::{IdHasher, ImageId};
use crate::index::EntryIndex;
use crate::limits::Limits;

/// Why an image could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The blob or archive file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The archive could not be read as an ACI.
    #[error("{path}: {source}")]
    Archive {
        /// The blob or archive file.
        path: PathBuf,
        /// What is wrong with it.
        source: ArchiveError,
    },
    /// The image has no `manifest` entry.
    #[error("{id}: image has no manifest")]
    NoManifest {
        /// The image.
        id: String,
    },
    /// An index entry points outside the blob: the index is stale or the
    /// blob was truncated.
    #[error("{id}: entry {path:?} lies outside the image data (index or blob damaged)")]
    EntryOutOfBounds {
        /// The image.
        id: String,
        /// The entry path, lossily decoded for the message.
        path: String,
    },
    /// The blob no longer hashes to its id.
    #[error("{expected}: stored data hashes to {found} (blob damaged)")]
    HashMismatch {
        /// The id the blob is stored under.
        expected: String,
        /// What its bytes hash to now.
        found: String,
    },
}

/// An uncompressed image tar, memory-mapped, with its entry index.
#[derive(Debug)]
pub struct OpenImage {
    id: ImageId,
    path: PathBuf,
    map: Mmap,
    index: EntryIndex,
}

#[allow(unsafe_code)]
fn map_file(file: &File, path: &Path) -> Result<Mmap, ImageError> {
    // SAFETY: store blobs are written once through a temp file, made
    // read-only and never modified in place (DESIGN §2); archive copies
    // are private temp files of this process. A blob truncated behind our
    // back by another program would fault on access: that is the one
    // hazard mmap brings, and the store's write protocol rules it out.
    unsafe { Mmap::map(file) }.map_err(|source| ImageError::Io {
        path: path.to_owned(),
        source,
    })
}

impl OpenImage {
    /// Maps `file` (the blob of `id` at `path`) and pairs it with `index`.
    /// Index entries that point past the end of the blob are rejected.
    pub fn from_file(
        id: ImageId,
        path: &Path,
        file: File,
        index: EntryIndex,
    ) -> Result<Self, ImageError> {
        let map = map_file(&file, path)?;
        let image = OpenImage {
            id,
            path: path.to_owned(),
            map,
            index,
        };
        image.check_bounds()?;
        Ok(image)
    }

    /// Maps `file` and builds its index by scanning the mapped tar.
    pub fn index_file(
        id: ImageId,
        path: &Path,
        file: File,
        limits: &Limits,
    ) -> Result<Self, ImageError> {
        let map = map_file(&file, path)?;
        let entries = archive::scan_blob(&map, limits).map_err(|source| ImageError::Archive {
            path: path.to_owned(),
            source,
        })?;
        Ok(OpenImage {
            id,
            path: path.to_owned(),
            map,
            // Scanned from the map without re-hashing it: no fast digest
            // (index.rs says when one may be recorded).
            index: EntryIndex {
                entries,
                fast_digest: None,
            },
        })
    }

    /// Opens an `.aci` file outside the store (any compression) for the
    /// read-only commands: it is decompressed once into an unnamed temp
    /// file in `scratch_dir`, checked like an import, and mapped.
    pub fn open_archive(
        path: &Path,
        scratch_dir: &Path,
        limits: &Limits,
    ) -> Result<Self, ImageError> {
        let io_err = |source| ImageError::Io {
            path: path.to_owned(),
            source,
        };
        let input = File::open(path).map_err(io_err)?;
        let mut copy = tempfile::tempfile_in(scratch_dir).map_err(|source| ImageError::Io {
            path: scratch_dir.to_owned(),
            source,
        })?;
        let scanned = {
            let mut writer = io::BufWriter::with_capacity(1 << 20, &mut copy);
            let scanned = archive::scan(input, &mut writer, limits).map_err(|source| {
                ImageError::Archive {
                    path: path.to_owned(),
                    source,
                }
            })?;
            io::Write::flush(&mut writer).map_err(io_err)?;
            scanned
        };
        let map = map_file(&copy, path)?;
        Ok(OpenImage {
            id: scanned.id,
            path: path.to_owned(),
            map,
            index: EntryIndex {
                entries: scanned.entries,
                fast_digest: None,
            },
        })
    }

    fn check_bounds(&self) -> Result<(), ImageError> {
        let len = self.map.len() as u64;
        for entry in &self.index.entries {
            let end = entry.data_offset.checked_add(entry.size);
            if entry.header_offset >= len || end.is_none_or(|end| end > len) {
                return Err(ImageError::EntryOutOfBounds {
                    id: self.id.to_string(),
                    path: String::from_utf8_lossy(&entry.path).into_owned(),
                });
            }
        }
        Ok(())
    }

    /// The image id.
    pub fn id(&self) -> ImageId {
        self.id
    }

    /// The file the image was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the uncompressed tar.
    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    /// The whole uncompressed tar.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The entry index.
    pub fn index(&self) -> &EntryIndex {
        &self.index
    }

    /// Every entry, in archive order.
    pub fn entries(&self) -> &[Entry] {
        &self.index.entries
    }

    /// The data of a regular-file entry (empty for other kinds).
    pub fn data(&self, entry: &Entry) -> &[u8] {
        if entry.kind != EntryKind::Regular {
            return &[];
        }
        let start = usize::try_from(entry.data_offset).unwrap_or(usize::MAX);
        let end =
            usize::try_from(entry.data_offset.saturating_add(entry.size)).unwrap_or(usize::MAX);
        // check_bounds or scan_blob vouched for every entry; an empty slice
        // is the safe answer should that ever not hold.
        self.map.get(start..end).unwrap_or(&[])
    }

    /// The stored manifest bytes, exactly as in the archive.
    pub fn manifest_bytes(&self) -> &[u8] {
        self.index
            .entries
            .iter()
            .find(|e| e.path == b"manifest")
            .map(|e| self.data(e))
            .unwrap_or(&[])
    }

    /// Whether the image has a manifest entry.
    pub fn has_manifest(&self) -> bool {
        self.index.entries.iter().any(|e| e.path == b"manifest")
    }

    /// Re-hashes the whole blob and checks it still matches the id.
    pub fn verify(&self) -> Result<(), ImageError> {
        let mut hasher = IdHasher::new();
        for chunk in self.map.chunks(1 << 22) {
            hasher.update(chunk);
        }
        let found = hasher.finish();
        if found == self.id {
            Ok(())
        } else {
            Err(ImageError::HashMismatch {
                expected: self.id.to_string(),
                found: found.to_string(),
            })
        }
    }
}
