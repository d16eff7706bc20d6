//! The content-addressed image store (DESIGN §2, `man/acido-store.5`).
//!
//! Layout, version 1:
//!
//! ```text
//! version                         "1\n"
//! blobs/sha512/<2 hex>/<128 hex>  uncompressed tar exactly as hashed, mode 0444
//! index/sha512/<2 hex>/<128 hex>  entry index of that blob (derivable)
//! images/<128 hex>.json           image record: id, name, labels, import time, size (derivable)
//! tmp/                            in-flight writes; anything here is garbage once unlocked
//! lock                            flock(2) target serialising record updates
//! quarantine/                     damaged blobs and unknown files set aside by `fsck --repair`
//! trees/                          the rendered-tree cache (see `trees.rs`; derivable)
//! oci-layers/                     the OCI layer cache of `push` (see `oci_layers.rs`; derivable)
//! layers/                         Acidofile step layers (see `layers.rs`; derivable)
//! ```
//!
//! Write protocol of [`Store::import`] (and of [`Store::stage`], which it
//! is built on: a producer writes the uncompressed tar into the temp
//! itself and commits when it chooses): the input streams through the
//! decompressor into a temp file in `tmp/` while it is hashed, parsed and
//! checked; the manifest is validated; the temp file is fsynced and linked
//! into place with a no-replace link, so a blob name never holds partial
//! content and an existing blob is never touched; the blob directory is
//! fsynced; then the index and the record are written with temp + rename,
//! the record under an exclusive `flock` on `lock`. Every step before the
//! link leaves the store's visible state as it was.
//!
//! Every temp file in `tmp/` is held under an exclusive `flock` by the
//! process writing it, so [`Store::sweep_temp`] can tell a live write from
//! the leftover of a killed one: a temp it can lock is garbage. The rest of
//! the module is what `gc` and `fsck` are built from: [`Store::inventory`]
//! lists what is on disk without following links or opening fifos,
//! [`Store::verify_blob`], [`Store::check_index`] and [`Store::check_record`]
//! judge one image, and the repair primitives rebuild what is derivable or
//! move what is damaged to `quarantine/`.
//!
//! This file holds [`Store`] itself: its paths, the layout version and the
//! lock. The jobs live beside it: `stage` (the write protocol, for bytes
//! written in by their producer), `import` (an input read through it),
//! `records` (image records), `build_state` (what `startbuild` leaves for
//! `build`), `verify` (inventory, verification, repair and quarantine),
//! `export` (writing an image out), `trees` (the rendered-tree cache),
//! `oci_layers` (the OCI layer cache), `layers` (Acidofile step layers)
//! and `files` (the file helpers they share).

mod build_state;
mod export;
mod files;
mod import;
mod layers;
mod oci_layers;
mod records;
mod stage;
#[cfg(test)]
mod tests;
mod trees;
mod verify;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};

use crate::archive::{ArchiveError, Limits};
use crate::compression::CompressError;
use crate::id::ImageId;
use crate::image::{ImageError, OpenImage};
use crate::index::EntryIndex;
use crate::manifest::ManifestError;

pub use build_state::{image_list, OverlayDirs, OverlayState, StateLayer, OVERLAY_STATE_VERSION};
pub use export::{ExportOptions, ExportReport};
use files::*;
use import::Hook;
pub use import::{ImportHook, ImportOutcome, ImportStep};
pub use layers::{Layer, LayerInventory, LayerStaging};
pub use oci_layers::{
    CachedOciLayer, OciLayerEntry, OciLayerInventory, OciLayerKey, OciLayerRecord, OciLayerState,
    OCI_LAYER_NAME_LEN,
};
pub use records::{ImageRecord, RecordLabel};
pub use stage::{Staged, Staging};
pub use trees::{CachedTree, TreeInfo, TreeInventory, TreeKey, TreeStaging, TREE_NAME_LEN};
pub use verify::{
    BlobState, FileKind, IdFile, IndexState, Inventory, RecordState, StoreFile, TempSweep,
};

/// The layout version this code reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation on the store failed.
    #[error("{path}: {source}")]
    Io {
        /// The store file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The store's root (`--store`, `ACIDO_STORE`...) exists but is not a
    /// directory, or lies below a file.
    #[error("{}: the store path is not a directory", path.display())]
    NotADirectory {
        /// The store's root.
        path: PathBuf,
    },
    /// The store's `version` file names a layout this code does not know.
    #[error("{path}: store layout version {found:?} is not supported (this acido reads version {LAYOUT_VERSION})")]
    UnsupportedVersion {
        /// The version file.
        path: PathBuf,
        /// What it contained.
        found: String,
    },
    /// The input is not a readable ACI.
    #[error("{input}: {source}")]
    Archive {
        /// The input as the user named it.
        input: String,
        /// What is wrong with it.
        source: ArchiveError,
    },
    /// The input's manifest is invalid.
    #[error("{input}: {source}")]
    Manifest {
        /// The input as the user named it.
        input: String,
        /// What is wrong with it.
        source: ManifestError,
    },
    /// No stored image has this id.
    #[error("{id}: no such image in the store")]
    NotFound {
        /// The id that was asked for.
        id: String,
    },
    /// A stored image record could not be read.
    #[error("{path}: corrupt image record: {reason}")]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored blob could not be opened as an image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A store path that must be a regular file is something else (a
    /// symlink, fifo, directory or device); it is never followed or opened.
    #[error("{path}: is a {kind}, not a regular file")]
    NotRegular {
        /// The store file concerned.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// A blob no longer hashes to the id it is stored under.
    #[error("{id}: stored data hashes to {found} (blob damaged; see acido fsck)")]
    HashMismatch {
        /// The id the blob is stored under.
        id: String,
        /// What its bytes hash to now.
        found: String,
    },
    /// The export's encoder could not be set up.
    #[error("{id}: {source}")]
    Compress {
        /// The image being exported.
        id: ImageId,
        /// Why the encoder refused.
        source: CompressError,
    },
    /// Writing the exported image failed.
    #[error("{id}: writing the export: {source}")]
    ExportWrite {
        /// The image being exported.
        id: ImageId,
        /// The underlying error.
        source: io::Error,
    },
    /// No free name was found in `quarantine/` for a file being set aside.
    #[error("{path}: no free name in the quarantine directory")]
    QuarantineFull {
        /// The file that could not be moved.
        path: PathBuf,
    },
    /// The import was interrupted (by a signal, through the flag given to
    /// [`Store::with_interrupt`]); nothing was stored.
    #[error("{input}: import interrupted")]
    Interrupted {
        /// The input being imported.
        input: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A store rooted at a directory. Opening never writes; the layout is
/// created by the first write.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    limits: Limits,
    hook: Hook,
    interrupt: Option<Arc<AtomicBool>>,
}

impl Store {
    /// A handle on the store at `root`. Nothing is read or created yet.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Store {
            root: root.into(),
            limits: Limits::default(),
            hook: Hook::default(),
            interrupt: None,
        }
    }

    /// Call `hook` at each [`ImportStep`] of every import through this
    /// handle. Meant for fault-injection tests: the hook may block (so a
    /// test can kill the process at that step) but cannot change the
    /// import's course.
    pub fn with_hook(mut self, hook: ImportHook) -> Self {
        self.hook = Hook(Some(hook));
        self
    }

    /// Stop imports once `flag` is up: the input's next read fails, and an
    /// import that has read everything stops before it stores anything.
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// Use `limits` when reading archives into this store.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits applied to imported archives.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Where the blob of `id` lives (whether or not it exists).
    pub fn blob_path(&self, id: &ImageId) -> PathBuf {
        let hex = id.hex();
        self.root.join("blobs/sha512").join(&hex[..2]).join(&hex)
    }

    /// Where the entry index of `id` lives.
    pub fn index_path(&self, id: &ImageId) -> PathBuf {
        let hex = id.hex();
        self.root.join("index/sha512").join(&hex[..2]).join(&hex)
    }

    /// Where the record of `id` lives.
    pub fn record_path(&self, id: &ImageId) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    /// The directory for in-flight writes.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A new temp file in `tmp/`, locked so `gc` and `fsck --repair` leave
    /// it alone until the returned lock is dropped (a build's ACI before
    /// its import, for one). Creates the layout when needed.
    pub fn create_temp(
        &self,
        prefix: &str,
    ) -> Result<(tempfile::NamedTempFile, Flock<File>), StoreError> {
        self.ensure_layout()?;
        create_locked_temp(&self.tmp_dir(), prefix)
    }

    /// Checks that the root is a directory, or does not exist yet (a
    /// missing store is an empty one, created by the first write). A
    /// symlink to a directory is fine.
    pub fn check_root(&self) -> Result<(), StoreError> {
        let not_a_dir = || StoreError::NotADirectory {
            path: self.root.clone(),
        };
        match fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(not_a_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(not_a_dir()),
            // Missing, or unreadable: the operation itself says what and where.
            Err(_) => Ok(()),
        }
    }

    /// Checks the version file of an existing store; a missing store is fine.
    fn check_version(&self) -> Result<bool, StoreError> {
        self.check_root()?;
        let path = self.root.join("version");
        match fs::read_to_string(&path) {
            Ok(text) if text.trim() == LAYOUT_VERSION.to_string() => Ok(true),
            Ok(text) => Err(StoreError::UnsupportedVersion {
                path,
                found: text.trim().to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Creates the layout if it is missing (first write).
    pub fn ensure_layout(&self) -> Result<(), StoreError> {
        if self.check_version()? {
            return Ok(());
        }
        for dir in ["blobs/sha512", "index/sha512", "images", "tmp"] {
            let path = self.root.join(dir);
            fs::create_dir_all(&path).map_err(io_err(&path))?;
        }
        let lock = self.root.join("lock");
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock)
            .map_err(io_err(&lock))?;
        // The version file goes last: its presence means the layout is complete.
        let version = self.root.join("version");
        write_atomically(
            &self.tmp_dir(),
            &version,
            format!("{LAYOUT_VERSION}\n").as_bytes(),
        )?;
        Ok(())
    }

    /// Takes the store-wide lock that serialises record updates.
    pub(super) fn lock(&self) -> Result<Flock<File>, StoreError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| StoreError::Io {
            path,
            source: io::Error::from(errno),
        })
    }

    /// Whether the blob of `id` is stored.
    pub fn contains(&self, id: &ImageId) -> bool {
        self.blob_path(id).is_file()
    }

    /// Opens the blob of `id` through mmap with its entry index. A missing
    /// or unreadable index is rebuilt from the blob (and saved when the
    /// store is writable; a read-only store still answers).
    pub fn open(&self, id: &ImageId) -> Result<OpenImage, StoreError> {
        let blob = self.blob_path(id);
        let Some(file) = open_regular(&blob)? else {
            return Err(StoreError::NotFound { id: id.to_string() });
        };
        let index_path = self.index_path(id);
        let index = read_regular(&index_path, u64::MAX)
            .ok()
            .flatten()
            .and_then(|bytes| EntryIndex::decode(&bytes).ok());
        match index {
            Some(index) => Ok(OpenImage::from_file(*id, &blob, file, index)?),
            None => {
                let image = OpenImage::index_file(*id, &blob, file, &self.limits)?;
                // Best effort: a read-only store still serves the image.
                let _ = self.write_index(id, image.index());
                Ok(image)
            }
        }
    }

    /// Removes the blob, index and record of `id` (no dependency checks:
    /// that is porcelain's job), and every cached tree holding it.
    pub fn remove(&self, id: &ImageId) -> Result<(), StoreError> {
        // Trees and the layer first: neither may outlive its image.
        self.remove_trees_of(id)?;
        self.remove_layer_of(id)?;
        let _guard = self.lock()?;
        let record = self.record_path(id);
        remove_if_exists(&record)?;
        remove_if_exists(&self.index_path(id))?;
        let blob = self.blob_path(id);
        if !blob.exists() {
            return Err(StoreError::NotFound { id: id.to_string() });
        }
        remove_if_exists(&blob)
    }
}
