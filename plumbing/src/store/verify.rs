//! What `gc` and `fsck` are built from: the inventory of files on disk,
//! verifying one image, and the repair and quarantine primitives.

use super::files::id_from_hex;
use super::files::list_dir;
use super::files::open_regular;
use super::files::open_temp;
use super::files::read_regular;
use super::files::remove_if_exists;
use super::files::sync_dir;
use super::files::walk_fanned;
use super::io_err;
use super::records::ImageRecord;
use super::Store;
use super::StoreError;
use std::fs::{self};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::id::{FastDigest, FastHasher, IdHasher, ImageId};
use crate::image::OpenImage;
use crate::index::EntryIndex;
use crate::manifest::ImageManifest;
use crate::temp::TempKind;
use std::os::unix::ffi::OsStrExt;

/// The top-level names of the layout; anything else at the root is a stray.
const TOP_LEVEL: [&str; 11] = [
    "builds",
    "trees",
    "oci-layers",
    "layers",
    "version",
    "lock",
    "blobs",
    "index",
    "images",
    "tmp",
    "quarantine",
];

/// What a store path holds, from `lstat` (links are never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl FileKind {
    /// The kind of the file `meta` was read from (with `symlink_metadata`).
    pub fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Regular
        }
    }

    /// The kind as messages name it.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A file found in the store by [`Store::inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFile {
    /// Its full path.
    pub path: PathBuf,
    /// What it is (from `lstat`).
    pub kind: FileKind,
    /// Its size in bytes (of the link itself for a symlink).
    pub size: u64,
}

/// A store file named after an image id: a blob, an index or a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFile {
    /// The id its name spells.
    pub id: ImageId,
    /// The file.
    pub file: StoreFile,
}

/// Everything on disk in a store, sorted by path, found without following
/// a link or opening a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Whether the `version` file exists (its content was checked).
    pub has_version: bool,
    /// Files under `blobs/sha512/XX/` named like an id.
    pub blobs: Vec<IdFile>,
    /// Files under `index/sha512/XX/` named like an id.
    pub indexes: Vec<IdFile>,
    /// Files `images/HEX.json`.
    pub records: Vec<IdFile>,
    /// Everything in `tmp/` except directories (but scratch directories,
    /// [`crate::temp::ScratchDir`]): in-flight or leftover writes.
    pub temps: Vec<StoreFile>,
    /// Anything the layout does not name: unknown files, misnamed or
    /// misplaced ids, directories in `tmp/`, a non-directory where a
    /// directory belongs.
    pub strays: Vec<StoreFile>,
}

impl Inventory {
    /// Whether nothing at all is stored (no blob, index, record, temp or stray).
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
            && self.indexes.is_empty()
            && self.records.is_empty()
            && self.temps.is_empty()
            && self.strays.is_empty()
    }
}

/// What [`Store::verify_blob`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// The blob hashes to its id.
    Intact {
        /// Its size in bytes.
        size: u64,
        /// Its BLAKE3 digest, taken in the same read as the id's hash (so
        /// it may be recorded in the index: see [`Store::repair_index`]).
        fast_digest: FastDigest,
    },
    /// There is no blob for this id.
    Missing,
    /// The blob path holds something other than a regular file; it was
    /// not opened.
    NotRegular {
        /// What it is.
        kind: FileKind,
    },
    /// The blob's bytes hash to another id.
    HashMismatch {
        /// What they hash to.
        found: ImageId,
        /// Its size in bytes.
        size: u64,
    },
}

/// What [`Store::check_index`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// The index equals a fresh scan of the blob and records the blob's
    /// fast digest.
    Current,
    /// The entries equal a fresh scan, but the index has no fast digest
    /// (written before issue 12, or rebuilt without re-hashing): not
    /// damage, renders check this blob by SHA-512; `fsck --repair` adds it.
    NoFastDigest,
    /// The entries equal a fresh scan, but the recorded fast digest is
    /// not the blob's: renders would refuse the intact blob.
    WrongFastDigest {
        /// The digest the index records.
        recorded: FastDigest,
    },
    /// There is no index file.
    Missing,
    /// The index path is not a regular file.
    NotRegular {
        /// What it is.
        kind: FileKind,
    },
    /// The index does not decode.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The index decodes but differs from a fresh scan of the blob.
    Stale,
}

/// What [`Store::check_record`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// The record matches the blob's manifest and size.
    Consistent,
    /// There is no record file.
    Missing,
    /// The record is not a regular file or not a readable record.
    Corrupt {
        /// Why.
        reason: String,
    },
    /// The record reads but disagrees with the blob.
    Differs {
        /// The first field that differs (`formatVersion`, `id`, `name`,
        /// `labels` or `size`).
        field: &'static str,
    },
}

/// What [`Store::sweep_temp`] did with one file in `tmp/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempSweep {
    /// The file was a leftover and is gone.
    Removed {
        /// Its size in bytes.
        bytes: u64,
    },
    /// A live process holds its lock: it was left alone.
    InUse,
    /// It had already disappeared (its writer finished).
    Gone,
    /// It is a directory; temps are files, so it was left alone.
    Directory,
}

impl Store {
    /// Lists everything on disk in the store. Nothing is followed or
    /// opened, so a blob replaced by a fifo or a symlink shows up as such.
    /// A missing store has an empty inventory; an unknown layout version
    /// is an error.
    pub fn inventory(&self) -> Result<Inventory, StoreError> {
        let mut inv = Inventory {
            has_version: self.check_version()?,
            ..Inventory::default()
        };
        let Some(top) = list_dir(&self.root)? else {
            return Ok(inv);
        };
        for file in top {
            let name = file.path.file_name().and_then(|n| n.to_str());
            let expect_dir = !matches!(name, Some("version" | "lock"));
            let known = name.is_some_and(|n| TOP_LEVEL.contains(&n));
            if !known || expect_dir != (file.kind == FileKind::Directory) {
                inv.strays.push(file);
                continue;
            }
            match name {
                Some("blobs") => walk_fanned(&file.path, &mut inv.blobs, &mut inv.strays)?,
                Some("index") => {
                    walk_fanned(&file.path, &mut inv.indexes, &mut inv.strays)?;
                }
                Some("images") => {
                    for entry in list_dir(&file.path)?.unwrap_or_default() {
                        let id = entry
                            .path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.strip_suffix(".json"))
                            .and_then(id_from_hex);
                        match id {
                            Some(id) => inv.records.push(IdFile { id, file: entry }),
                            None => inv.strays.push(entry),
                        }
                    }
                }
                Some("tmp") => {
                    for entry in list_dir(&file.path)?.unwrap_or_default() {
                        // A scratch directory (a registry push's layout)
                        // is a temp like the files; any other is a stray.
                        let scratch = entry
                            .path
                            .file_name()
                            .is_some_and(|n| TempKind::Scratch.matches(n.as_bytes()));
                        if entry.kind == FileKind::Directory && !scratch {
                            inv.strays.push(entry);
                        } else {
                            inv.temps.push(entry);
                        }
                    }
                }
                // version, lock, builds/ (derivable build states) and
                // quarantine/ hold nothing to list; trees/, oci-layers/
                // and layers/ have their own inventories
                // (Store::tree_inventory, Store::oci_layer_inventory,
                // Store::layer_inventory).
                _ => {}
            }
        }
        inv.strays.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(inv)
    }

    /// Re-hashes the blob of `id` (SHA-512, and BLAKE3 from the same
    /// read for the index's fast digest). The path is checked with `lstat` and
    /// opened without following links or blocking, so a symlink or fifo in
    /// its place is reported, never read.
    pub fn verify_blob(&self, id: &ImageId) -> Result<BlobState, StoreError> {
        let path = self.blob_path(id);
        let mut file = match open_regular(&path) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(BlobState::Missing),
            Err(StoreError::NotRegular { kind, .. }) => return Ok(BlobState::NotRegular { kind }),
            Err(e) => return Err(e),
        };
        let mut hasher = IdHasher::new();
        let mut fast = FastHasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            hasher.update(&buf[..n]);
            fast.update(&buf[..n]);
        }
        let size = hasher.len();
        let found = hasher.finish();
        Ok(if found == *id {
            BlobState::Intact {
                size,
                fast_digest: fast.finish(),
            }
        } else {
            BlobState::HashMismatch { found, size }
        })
    }

    /// Maps the blob of `id` and indexes it by scanning the tar afresh,
    /// ignoring the stored index (what `fsck` compares the index and the
    /// record against). A non-regular blob is an error, never opened.
    pub fn scan_image(&self, id: &ImageId) -> Result<OpenImage, StoreError> {
        let blob = self.blob_path(id);
        let Some(file) = open_regular(&blob)? else {
            return Err(StoreError::NotFound { id: id.to_string() });
        };
        Ok(OpenImage::index_file(*id, &blob, file, &self.limits)?)
    }

    /// Compares the stored index of `fresh`'s image with `fresh` (from
    /// [`Store::scan_image`]) and its fast digest with `fast_digest` (from
    /// [`Store::verify_blob`]).
    pub fn check_index(
        &self,
        fresh: &OpenImage,
        fast_digest: FastDigest,
    ) -> Result<IndexState, StoreError> {
        let path = self.index_path(&fresh.id());
        let bytes = match read_regular(&path, u64::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(IndexState::Missing),
            Err(StoreError::NotRegular { kind, .. }) => return Ok(IndexState::NotRegular { kind }),
            Err(e) => return Err(e),
        };
        Ok(match EntryIndex::decode(&bytes) {
            Err(e) => IndexState::Unreadable {
                reason: e.to_string(),
            },
            Ok(index) if index.entries != fresh.index().entries => IndexState::Stale,
            Ok(index) => match index.fast_digest {
                Some(recorded) if recorded == fast_digest => IndexState::Current,
                Some(recorded) => IndexState::WrongFastDigest { recorded },
                None => IndexState::NoFastDigest,
            },
        })
    }

    /// Compares the record of `fresh`'s image with what its manifest and
    /// size say (the import time is not derivable and not compared). A
    /// manifest that no longer parses is an error.
    pub fn check_record(&self, fresh: &OpenImage) -> Result<RecordState, StoreError> {
        let id = fresh.id();
        let manifest =
            ImageManifest::from_slice_with(fresh.manifest_bytes(), &self.limits.manifest())
                .map_err(|source| StoreError::Manifest {
                    input: id.to_string(),
                    source,
                })?;
        let record = match self.read_record_file(&self.record_path(&id)) {
            Ok(record) => record,
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(RecordState::Missing)
            }
            Err(StoreError::CorruptRecord { reason, .. }) => {
                return Ok(RecordState::Corrupt { reason })
            }
            Err(e) => return Err(e),
        };
        let expected = ImageRecord::from_manifest(id, &manifest, fresh.size(), 0);
        let field = if record.format_version != expected.format_version {
            Some("formatVersion")
        } else if record.id != expected.id {
            Some("id")
        } else if record.name != expected.name {
            Some("name")
        } else if record.labels != expected.labels {
            Some("labels")
        } else if record.size != expected.size {
            Some("size")
        } else {
            None
        };
        Ok(
            field.map_or(RecordState::Consistent, |field| RecordState::Differs {
                field,
            }),
        )
    }

    /// Rewrites the index of `fresh`'s image from `fresh`, with
    /// `fast_digest`, which must come from the read that found the blob
    /// intact ([`BlobState::Intact`]): a digest of damaged bytes would let
    /// renders publish them. Something other than a regular file at the
    /// index path is moved to `quarantine/` first.
    pub fn repair_index(
        &self,
        fresh: &OpenImage,
        fast_digest: FastDigest,
    ) -> Result<(), StoreError> {
        let path = self.index_path(&fresh.id());
        self.set_aside_non_regular(&path)?;
        let index = EntryIndex {
            entries: fresh.index().entries.clone(),
            fast_digest: Some(fast_digest),
        };
        self.write_index(&fresh.id(), &index)
    }

    /// Rewrites the record of `id` from its blob's manifest (see
    /// [`Store::rebuild_record`]), first moving something other than a
    /// regular file at the record path to `quarantine/`.
    pub fn repair_record(&self, id: &ImageId) -> Result<ImageRecord, StoreError> {
        self.set_aside_non_regular(&self.record_path(id))?;
        self.rebuild_record(id)
    }

    pub(super) fn set_aside_non_regular(&self, path: &Path) -> Result<(), StoreError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if FileKind::of(&meta) != FileKind::Regular => {
                self.quarantine_path(path)?;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The directory damaged blobs and unknown files are moved to.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Moves `path` (any kind of file, or a directory) into `quarantine/`
    /// under its own name, or with a `.N` suffix when that is taken; never
    /// replaces anything there. Returns the new path.
    pub fn quarantine_path(&self, path: &Path) -> Result<PathBuf, StoreError> {
        let dir = self.quarantine_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let name = path
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_else(|| "unnamed".into());
        for n in 0..1000u32 {
            let mut candidate = name.clone();
            if n > 0 {
                candidate.push(format!(".{n}"));
            }
            let dest = dir.join(&candidate);
            match nix::fcntl::renameat2(
                None,
                path,
                None,
                &dest,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => {
                    sync_dir(&dir)?;
                    return Ok(dest);
                }
                Err(Errno::EEXIST) => continue,
                Err(errno) => {
                    return Err(StoreError::Io {
                        path: path.to_owned(),
                        source: io::Error::from(errno),
                    })
                }
            }
        }
        Err(StoreError::QuarantineFull {
            path: path.to_owned(),
        })
    }

    /// Sets a damaged image aside: under the store lock its record and
    /// index go first (so no name resolves to it any more), then the blob
    /// path, whatever it holds, is moved to `quarantine/`. Returns where
    /// the blob went, or `None` when there was no blob.
    pub fn quarantine_image(&self, id: &ImageId) -> Result<Option<PathBuf>, StoreError> {
        let _guard = self.lock()?;
        for path in [self.record_path(id), self.index_path(id)] {
            match fs::symlink_metadata(&path) {
                Ok(meta) if FileKind::of(&meta) == FileKind::Directory => {
                    self.quarantine_path(&path)?;
                }
                Ok(_) => remove_if_exists(&path)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { path, source }),
            }
        }
        let blob = self.blob_path(id);
        match fs::symlink_metadata(&blob) {
            Ok(_) => self.quarantine_path(&blob).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path: blob, source }),
        }
    }

    /// Whether a live process holds the lock of the temp file at `path`.
    /// Regular files and scratch directories are locked by writers;
    /// anything else in `tmp/` is never in use. A file that vanished is
    /// not in use.
    pub fn temp_in_use(&self, path: &Path) -> Result<bool, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        let file = if is_dir {
            // A scratch directory is locked through its own fd.
            match fs::File::options()
                .read(true)
                .custom_flags(
                    (nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW).bits(),
                )
                .open(path)
            {
                Ok(dir) => dir,
                Err(_) => return Ok(false),
            }
        } else {
            let Some(file) = open_temp(path)? else {
                return Ok(false);
            };
            file
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_probe) => Ok(false),
            Err((_, Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, errno)) => Err(StoreError::Io {
                path: path.to_owned(),
                source: io::Error::from(errno),
            }),
        }
    }

    /// Removes the file at `path` in `tmp/` if no process holds its lock.
    /// A scratch directory ([`crate::temp::ScratchDir`]) is removed the
    /// same way; other directories are left alone.
    /// The lock is held while the name is checked to still be the same
    /// file and unlinked, so a writer that just created it either has not
    /// locked it yet (and then finds its name gone and starts over) or
    /// holds it (and it is left alone).
    pub fn sweep_temp(&self, path: &Path) -> Result<TempSweep, StoreError> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TempSweep::Gone),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        match FileKind::of(&meta) {
            FileKind::Directory => {
                // A scratch directory (a registry push's layout) is swept
                // by its own lock; any other directory is not ours.
                let name = path.file_name().unwrap_or_default();
                if !TempKind::Scratch.matches(name.as_bytes()) {
                    return Ok(TempSweep::Directory);
                }
                let bytes = crate::fs::file_bytes_under(path);
                let report = crate::temp::sweep_leftover(&self.tmp_dir(), name, TempKind::Scratch);
                return Ok(if report.removed > 0 {
                    TempSweep::Removed { bytes }
                } else if report.in_use > 0 {
                    TempSweep::InUse
                } else if fs::symlink_metadata(path).is_err() {
                    TempSweep::Gone
                } else {
                    TempSweep::Directory
                });
            }
            FileKind::Regular => {}
            // No writer creates these, so nothing can hold them.
            _ => {
                return match fs::remove_file(path) {
                    Ok(()) => Ok(TempSweep::Removed { bytes: 0 }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TempSweep::Gone),
                    Err(source) => Err(StoreError::Io {
                        path: path.to_owned(),
                        source,
                    }),
                };
            }
        }
        let Some(file) = open_temp(path)? else {
            return Ok(TempSweep::Gone);
        };
        let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(TempSweep::InUse),
            Err((_, errno)) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    source: io::Error::from(errno),
                })
            }
        };
        let held = locked.metadata().map_err(io_err(path))?;
        match fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {}
            // The name now holds another file (or none): not ours to judge.
            _ => return Ok(TempSweep::Gone),
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(TempSweep::Removed { bytes: held.len() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TempSweep::Gone),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Removes the index of `id` if its blob is absent (checked under the
    /// store lock, with `lstat`). Returns the bytes removed, or `None` when
    /// the blob exists or the index is already gone.
    pub fn remove_orphan_index(&self, id: &ImageId) -> Result<Option<u64>, StoreError> {
        self.remove_orphan(id, &self.index_path(id))
    }

    /// Removes the record of `id` if its blob is absent, like
    /// [`Store::remove_orphan_index`].
    pub fn remove_orphan_record(&self, id: &ImageId) -> Result<Option<u64>, StoreError> {
        self.remove_orphan(id, &self.record_path(id))
    }

    pub(super) fn remove_orphan(
        &self,
        id: &ImageId,
        path: &Path,
    ) -> Result<Option<u64>, StoreError> {
        let _guard = self.lock()?;
        if fs::symlink_metadata(self.blob_path(id)).is_ok() {
            return Ok(None);
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if meta.is_dir() {
            self.quarantine_path(path)?;
            return Ok(Some(0));
        }
        remove_if_exists(path)?;
        Ok(Some(meta.len()))
    }
}
