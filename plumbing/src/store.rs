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
//! ```
//!
//! Write protocol of [`Store::import`]: the input streams through the
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use serde::{Deserialize, Serialize};

use crate::archive::{self, ArchiveError, Limits};
use crate::compression::Compression;
use crate::compression::{CompressError, Encoder};
use crate::id::{IdHasher, IdPrefix, ImageId};
use crate::image::{ImageError, OpenImage};
use crate::index::EntryIndex;
use crate::interrupt::Interruptible;
use crate::manifest::{ImageManifest, ManifestError};

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

/// What the store knows about one image without opening its blob
/// (`images/<hex>.json`). Derivable from the blob's manifest, so
/// `fsck --repair` can rebuild it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The record format version (1).
    pub format_version: u32,
    /// The image id.
    #[serde(with = "id_serde")]
    pub id: ImageId,
    /// The manifest's `name`.
    pub name: String,
    /// The manifest's labels, in manifest order.
    pub labels: Vec<RecordLabel>,
    /// When the image was first imported, in nanoseconds since the epoch.
    pub import_time_ns: u128,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
}

/// One label of an [`ImageRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLabel {
    /// Label name.
    pub name: String,
    /// Label value.
    pub value: String,
}

impl ImageRecord {
    /// The value of label `name`, if the image has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    fn from_manifest(
        id: ImageId,
        manifest: &ImageManifest,
        size: u64,
        import_time_ns: u128,
    ) -> Self {
        ImageRecord {
            format_version: 1,
            id,
            name: manifest.name.to_string(),
            labels: manifest
                .labels
                .iter()
                .map(|l| RecordLabel {
                    name: l.name.to_string(),
                    value: l.value.clone(),
                })
                .collect(),
            import_time_ns,
            size,
        }
    }
}

mod id_serde {
    use crate::id::ImageId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &ImageId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ImageId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The record of the stored image.
    pub record: ImageRecord,
    /// False when the image was already in the store (the import changed nothing).
    pub newly_stored: bool,
}

/// The steps of [`Store::import`] at which an [`ImportHook`] is called,
/// in order. They mark the points where a crash leaves a different
/// state behind, so tests can kill the process at each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportStep {
    /// The locked temp file in `tmp/` exists and is empty.
    AfterTempCreate,
    /// The first decompressed chunk has been written to the temp file;
    /// the rest of the input is still to be read.
    MidStream,
    /// The input is complete and valid and the temp file is synced and
    /// read-only; the no-replace link into `blobs/` comes next. Not
    /// reached when the blob is already stored.
    BeforeLink,
    /// The blob is in place (linked now or before); its index and record
    /// are still to be written.
    AfterLinkBeforeRecord,
}

/// A callback run at each [`ImportStep`] of an import (fault injection:
/// the library never reads the environment, the binary's tests do).
pub type ImportHook = Arc<dyn Fn(ImportStep) + Send + Sync>;

/// An optional [`ImportHook`] that lets [`Store`] keep deriving `Debug`.
#[derive(Clone, Default)]
struct Hook(Option<ImportHook>);

impl Hook {
    fn call(&self, step: ImportStep) {
        if let Some(hook) = &self.0 {
            hook(step);
        }
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Hook(set)"
        } else {
            "Hook(none)"
        })
    }
}

/// Writes through to the temp file and, on the first write, flushes it
/// so the bytes are on disk and calls the hook at [`ImportStep::MidStream`].
struct MidStreamHook<'h, W: Write> {
    inner: W,
    hook: &'h Hook,
    fired: bool,
}

impl<W: Write> Write for MidStreamHook<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if !self.fired && n > 0 && self.hook.0.is_some() {
            self.fired = true;
            self.inner.flush()?;
            self.hook.call(ImportStep::MidStream);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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

    /// Where the build state (the stat snapshot `startbuild` took) of the
    /// build tree at `dir` lives: `builds/<hash of the canonical path>`.
    /// Outside the tree, so it can never end up in an image.
    pub fn build_state_path(&self, dir: &Path) -> Result<PathBuf, StoreError> {
        use std::os::unix::ffi::OsStrExt;
        let canonical = fs::canonicalize(dir).map_err(io_err(dir))?;
        let mut hasher = crate::id::IdHasher::new();
        hasher.update(canonical.as_os_str().as_bytes());
        let key = hasher.finish().hex();
        Ok(self.root.join("builds").join(&key[..32]))
    }

    /// Saves the build state of the tree at `dir` (replacing an older one).
    pub fn save_build_state(&self, dir: &Path, state: &[u8]) -> Result<(), StoreError> {
        self.ensure_layout()?;
        let path = self.build_state_path(dir)?;
        let builds = self.root.join("builds");
        fs::create_dir_all(&builds).map_err(io_err(&builds))?;
        write_atomically(&self.tmp_dir(), &path, state)
    }

    /// The saved build state of the tree at `dir`, if there is one.
    pub fn load_build_state(&self, dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.build_state_path(dir)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Checks the version file of an existing store; a missing store is fine.
    fn check_version(&self) -> Result<bool, StoreError> {
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
    fn lock(&self) -> Result<Flock<File>, StoreError> {
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

    /// Imports one ACI read from `input` (any supported compression).
    ///
    /// `input_name` names the input in errors. The archive is validated
    /// (layout and manifest) while it streams; a rejected input leaves the
    /// store exactly as it was. Importing an image that is already stored
    /// changes nothing and reports `newly_stored: false`.
    pub fn import(
        &self,
        input: impl Read + Send + 'static,
        input_name: &str,
    ) -> Result<ImportOutcome, StoreError> {
        self.ensure_layout()?;
        // The lock marks the temp as in flight, so `gc` can tell a live
        // import from the leftovers of a killed one.
        let (temp, in_flight) = create_locked_temp(&self.tmp_dir(), "import-")?;
        self.hook.call(ImportStep::AfterTempCreate);

        let mut writer = MidStreamHook {
            inner: BufWriter::with_capacity(1 << 20, temp.as_file()),
            hook: &self.hook,
            fired: false,
        };
        let input: Box<dyn Read + Send> = match &self.interrupt {
            Some(flag) => Box::new(Interruptible::new(input, Arc::clone(flag))),
            None => Box::new(input),
        };
        let scanned = archive::scan(input, &mut writer, &self.limits).map_err(|source| {
            StoreError::Archive {
                input: input_name.to_owned(),
                source,
            }
        })?;
        writer.flush().map_err(io_err(temp.path()))?;
        drop(writer);
        let manifest = ImageManifest::from_slice_with(&scanned.manifest, &self.limits.manifest())
            .map_err(|source| StoreError::Manifest {
            input: input_name.to_owned(),
            source,
        })?;

        // The last moment to stop: after this, the store changes.
        if self
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
        {
            return Err(StoreError::Interrupted {
                input: input_name.to_owned(),
            });
        }
        let id = scanned.id;
        let blob = self.blob_path(&id);
        let newly_stored = if blob.exists() {
            false
        } else {
            temp.as_file().sync_all().map_err(io_err(temp.path()))?;
            set_read_only(temp.as_file(), temp.path())?;
            let dir = blob.parent().expect("blob paths have a fan-out parent");
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            self.hook.call(ImportStep::BeforeLink);
            match temp.persist_noclobber(&blob) {
                Ok(_) => {
                    sync_dir(dir)?;
                    true
                }
                // Another process stored the same image first: its blob has
                // the same bytes, ours is dropped with the temp file.
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(io_err(&blob)(e.error)),
            }
        };
        drop(in_flight);
        self.hook.call(ImportStep::AfterLinkBeforeRecord);

        self.write_index(
            &id,
            &EntryIndex {
                entries: scanned.entries,
            },
        )?;
        let record = self.record_or_insert(ImageRecord::from_manifest(
            id,
            &manifest,
            scanned.size,
            now_ns(),
        ))?;
        Ok(ImportOutcome {
            record,
            newly_stored,
        })
    }

    fn write_index(&self, id: &ImageId, index: &EntryIndex) -> Result<(), StoreError> {
        let path = self.index_path(id);
        let dir = path.parent().expect("index paths have a fan-out parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_atomically(&self.tmp_dir(), &path, &index.encode())
    }

    /// Stores `record` unless a record for its id exists; returns the
    /// record in force. A re-import keeps the first import time.
    fn record_or_insert(&self, record: ImageRecord) -> Result<ImageRecord, StoreError> {
        let _guard = self.lock()?;
        let path = self.record_path(&record.id);
        match self.read_record_file(&path) {
            Ok(existing) => return Ok(existing),
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            // A damaged record is derivable: replace it.
            Err(StoreError::CorruptRecord { .. }) => {}
            Err(e) => return Err(e),
        }
        let json = serde_json::to_vec_pretty(&record).expect("records always serialise");
        write_atomically(&self.tmp_dir(), &path, &json)?;
        Ok(record)
    }

    /// Rewrites the record of an already stored image from its manifest
    /// (used by `fsck --repair`); keeps the import time when one exists.
    pub fn rebuild_record(&self, id: &ImageId) -> Result<ImageRecord, StoreError> {
        let image = self.open(id)?;
        let manifest =
            ImageManifest::from_slice_with(image.manifest_bytes(), &self.limits.manifest())
                .map_err(|source| StoreError::Manifest {
                    input: id.to_string(),
                    source,
                })?;
        let _guard = self.lock()?;
        let path = self.record_path(id);
        let import_time = self
            .read_record_file(&path)
            .map(|r| r.import_time_ns)
            .unwrap_or_else(|_| now_ns());
        let record = ImageRecord::from_manifest(*id, &manifest, image.size(), import_time);
        let json = serde_json::to_vec_pretty(&record).expect("records always serialise");
        write_atomically(&self.tmp_dir(), &path, &json)?;
        Ok(record)
    }

    fn read_record_file(&self, path: &Path) -> Result<ImageRecord, StoreError> {
        // lstat first: a record replaced by a fifo must not hang every
        // name lookup, and a symlink must not be followed out of the store.
        let bytes = match read_regular(path, MAX_RECORD_SIZE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    source: io::ErrorKind::NotFound.into(),
                })
            }
            Err(StoreError::NotRegular { kind, .. }) => {
                return Err(StoreError::CorruptRecord {
                    path: path.to_owned(),
                    reason: format!("is a {kind}, not a regular file"),
                })
            }
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptRecord {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The record of `id`.
    pub fn record(&self, id: &ImageId) -> Result<ImageRecord, StoreError> {
        let path = self.record_path(id);
        self.read_record_file(&path).map_err(|e| match e {
            StoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                StoreError::NotFound { id: id.to_string() }
            }
            other => other,
        })
    }

    /// Every image record, sorted by id. An empty or missing store has none.
    pub fn records(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.root.join("images");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let is_record = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .is_some_and(|hex| format!("sha512-{hex}").parse::<ImageId>().is_ok());
            if is_record {
                records.push(self.read_record_file(&entry.path())?);
            }
        }
        records.sort_by_key(|r| r.id);
        Ok(records)
    }

    /// Ids of stored blobs whose hex starts with `prefix`, sorted.
    pub fn ids_with_prefix(&self, prefix: &IdPrefix) -> Result<Vec<ImageId>, StoreError> {
        let fan = &prefix.hex()[..2];
        let dir = self.root.join("blobs/sha512").join(fan);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            if let Some(hex) = entry.file_name().to_str() {
                if let Ok(id) = format!("sha512-{hex}").parse::<ImageId>() {
                    if id.matches(prefix) {
                        ids.push(id);
                    }
                }
            }
        }
        ids.sort();
        Ok(ids)
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
    /// that is porcelain's job).
    pub fn remove(&self, id: &ImageId) -> Result<(), StoreError> {
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

/// Largest image record accepted: records are a few hundred bytes, so
/// anything bigger is damage, and reading it must stay bounded.
const MAX_RECORD_SIZE: u64 = 1 << 20;

/// The top-level names of the layout; anything else at the root is a stray.
const TOP_LEVEL: [&str; 8] = [
    "builds",
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
    /// Everything in `tmp/` except directories: in-flight or leftover writes.
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
    /// The index equals a fresh scan of the blob.
    Current,
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
                        if entry.kind == FileKind::Directory {
                            inv.strays.push(entry);
                        } else {
                            inv.temps.push(entry);
                        }
                    }
                }
                // version, lock, builds/ (derivable build states) and
                // quarantine/ hold nothing to list.
                _ => {}
            }
        }
        inv.strays.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(inv)
    }

    /// Re-hashes the blob of `id`. The path is checked with `lstat` and
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
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::Io { path, source }),
            };
            hasher.update(&buf[..n]);
        }
        let size = hasher.len();
        let found = hasher.finish();
        Ok(if found == *id {
            BlobState::Intact { size }
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
    /// [`Store::scan_image`]).
    pub fn check_index(&self, fresh: &OpenImage) -> Result<IndexState, StoreError> {
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
            Ok(index) if &index == fresh.index() => IndexState::Current,
            Ok(_) => IndexState::Stale,
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

    /// Rewrites the index of `fresh`'s image from `fresh`. Something other
    /// than a regular file at the index path is moved to `quarantine/` first.
    pub fn repair_index(&self, fresh: &OpenImage) -> Result<(), StoreError> {
        let path = self.index_path(&fresh.id());
        self.set_aside_non_regular(&path)?;
        self.write_index(&fresh.id(), fresh.index())
    }

    /// Rewrites the record of `id` from its blob's manifest (see
    /// [`Store::rebuild_record`]), first moving something other than a
    /// regular file at the record path to `quarantine/`.
    pub fn repair_record(&self, id: &ImageId) -> Result<ImageRecord, StoreError> {
        self.set_aside_non_regular(&self.record_path(id))?;
        self.rebuild_record(id)
    }

    fn set_aside_non_regular(&self, path: &Path) -> Result<(), StoreError> {
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
    /// Only regular files are locked by writers; anything else in `tmp/`
    /// is never in use. A file that vanished is not in use.
    pub fn temp_in_use(&self, path: &Path) -> Result<bool, StoreError> {
        let Some(file) = open_temp(path)? else {
            return Ok(false);
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
    /// The lock is held while the name is checked to still be the same
    /// file and unlinked, so a writer that just created it either has not
    /// locked it yet (and then finds its name gone and starts over) or
    /// holds it (and it is left alone). Directories are left alone.
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
            FileKind::Directory => return Ok(TempSweep::Directory),
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

    fn remove_orphan(&self, id: &ImageId, path: &Path) -> Result<Option<u64>, StoreError> {
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

fn id_from_hex(hex: &str) -> Option<ImageId> {
    // The parser wants the scheme; a name with one already is not ours.
    if hex.starts_with(crate::id::SCHEME) {
        return None;
    }
    format!("{}{hex}", crate::id::SCHEME).parse().ok()
}

/// The entries of `dir` with their `lstat` kinds, sorted by path; `None`
/// when `dir` does not exist.
fn list_dir(dir: &Path) -> Result<Option<Vec<StoreFile>>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        // DirEntry::metadata does not follow symlinks.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Removed since the listing (a writer finished): skip it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        files.push(StoreFile {
            path,
            kind: FileKind::of(&meta),
            size: meta.len(),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(files))
}

/// Walks `<top>/sha512/<2 hex>/<128 hex>`: files named by an id whose
/// first two digits are their directory's go to `found`, the rest to
/// `strays`.
fn walk_fanned(
    top: &Path,
    found: &mut Vec<IdFile>,
    strays: &mut Vec<StoreFile>,
) -> Result<(), StoreError> {
    for algo in list_dir(top)?.unwrap_or_default() {
        let is_algo = algo.path.file_name().is_some_and(|n| n == "sha512");
        if !is_algo || algo.kind != FileKind::Directory {
            strays.push(algo);
            continue;
        }
        for fan in list_dir(&algo.path)?.unwrap_or_default() {
            let fan_name = fan
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| {
                    n.len() == 2
                        && n.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .map(str::to_owned);
            let Some(fan_name) = fan_name.filter(|_| fan.kind == FileKind::Directory) else {
                strays.push(fan);
                continue;
            };
            for file in list_dir(&fan.path)?.unwrap_or_default() {
                let id = file
                    .path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| n.starts_with(&fan_name))
                    .and_then(id_from_hex);
                match id {
                    Some(id) => found.push(IdFile { id, file }),
                    None => strays.push(file),
                }
            }
        }
    }
    Ok(())
}

/// Opens `path` for reading only if it is a regular file: `lstat` first,
/// then `O_NOFOLLOW | O_NONBLOCK` (so a fifo swapped in meanwhile neither
/// blocks nor is read) and `fstat` to confirm. `None` when it does not exist.
fn open_regular(path: &Path) -> Result<Option<File>, StoreError> {
    let not_regular = |kind| StoreError::NotRegular {
        path: path.to_owned(),
        kind,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if FileKind::of(&meta) != FileKind::Regular => {
            return Err(not_regular(FileKind::of(&meta)))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            })
        }
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: replaced by a symlink since the lstat.
        Err(e) if e.raw_os_error() == Some(Errno::ELOOP as i32) => {
            return Err(not_regular(FileKind::Symlink))
        }
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(io_err(path))?;
    if FileKind::of(&meta) != FileKind::Regular {
        return Err(not_regular(FileKind::of(&meta)));
    }
    Ok(Some(file))
}

/// Reads a regular file of at most `max` bytes (see [`open_regular`]);
/// `None` when it does not exist. A longer file is reported as corrupt.
fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > max {
        return Err(StoreError::CorruptRecord {
            path: path.to_owned(),
            reason: format!("larger than {max} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Opens a regular temp file for a lock probe; `None` when it vanished or
/// is not a regular file (nothing to lock).
fn open_temp(path: &Path) -> Result<Option<File>, StoreError> {
    match open_regular(path) {
        Ok(file) => Ok(file),
        Err(StoreError::NotRegular { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a locked temp file in `tmp_dir` (see
/// [`crate::temp::create_locked_file`]): `gc` leaves it alone while the
/// writer holds it.
fn create_locked_temp(
    tmp_dir: &Path,
    prefix: &str,
) -> Result<(tempfile::NamedTempFile, Flock<File>), StoreError> {
    crate::temp::create_locked_file(tmp_dir, prefix, "", 0o600).map_err(io_err(tmp_dir))
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn set_read_only(file: &File, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o444))
        .map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `dest` through a synced temp file in `tmp_dir` and a
/// rename, so readers see the old content or the new, never a mix.
fn write_atomically(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let (mut temp, _in_flight) = create_locked_temp(tmp_dir, "write-")?;
    temp.write_all(bytes).map_err(io_err(temp.path()))?;
    // Temp files are created 0600; the store's other files (blobs 0444,
    // directories 0755) are readable by all, and a store shared read-only
    // with other users must be able to read its version, indexes and
    // records too.
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(temp.path()))?;
    temp.as_file().sync_all().map_err(io_err(temp.path()))?;
    temp.persist(dest).map_err(|e| StoreError::Io {
        path: dest.to_owned(),
        source: e.error,
    })?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar::tests::{header, push};
    use std::os::unix::fs::PermissionsExt;

    /// A valid plain ACI named `name` holding one file with `content`.
    fn aci(name: &str, content: &[u8]) -> Vec<u8> {
        let manifest =
            format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{name}"}}"#);
        let mut t = Vec::new();
        push(
            &mut t,
            header(b"manifest", b'0', manifest.len() as u64),
            manifest.as_bytes(),
        );
        push(&mut t, header(b"rootfs/", b'5', 0), b"");
        push(
            &mut t,
            header(b"rootfs/file", b'0', content.len() as u64),
            content,
        );
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    #[test]
    fn derivable_files_are_readable_by_all_like_blobs() {
        let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.blob_path(&ids[0])), 0o444);
        for path in [
            store.index_path(&ids[0]),
            store.record_path(&ids[0]),
            store.root().join("version"),
        ] {
            assert_eq!(mode(&path), 0o644, "{}", path.display());
        }
    }

    #[test]
    fn the_hook_sees_each_import_step_with_the_state_it_names() {
        use std::sync::Mutex;
        let dir = tempfile::tempdir().unwrap();
        let plain = Store::at(dir.path().join("store"));
        /// A step with the temps, blob and record seen there.
        type Seen = (ImportStep, usize, bool, bool);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let id = archive::hash_stream(io::Cursor::new(aci("example.com/a", b"a")))
            .unwrap()
            .id;
        let log = Arc::clone(&seen);
        let observer = plain.clone();
        let store = plain.clone().with_hook(Arc::new(move |step| {
            // At each step: how many temps exist, whether the blob and the
            // record do.
            let temps = fs::read_dir(observer.tmp_dir()).unwrap().count();
            let blob = observer.blob_path(&id).exists();
            let record = observer.record_path(&id).exists();
            log.lock().unwrap().push((step, temps, blob, record));
        }));
        store
            .import(io::Cursor::new(aci("example.com/a", b"a")), "a")
            .unwrap();
        use ImportStep::*;
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (AfterTempCreate, 1, false, false),
                (MidStream, 1, false, false),
                (BeforeLink, 1, false, false),
                (AfterLinkBeforeRecord, 0, true, false),
            ]
        );
        // A re-import links nothing.
        seen.lock().unwrap().clear();
        let again = store
            .import(io::Cursor::new(aci("example.com/a", b"a")), "a")
            .unwrap();
        assert!(!again.newly_stored);
        let steps: Vec<ImportStep> = seen.lock().unwrap().iter().map(|s| s.0).collect();
        assert_eq!(steps, [AfterTempCreate, MidStream, AfterLinkBeforeRecord]);
        // A rejected input stops before the link.
        seen.lock().unwrap().clear();
        assert!(store
            .import(io::Cursor::new(b"garbage".to_vec()), "bad")
            .is_err());
        let steps: Vec<ImportStep> = seen.lock().unwrap().iter().map(|s| s.0).collect();
        assert_eq!(steps, [AfterTempCreate]);
    }

    fn store_with(images: &[Vec<u8>]) -> (tempfile::TempDir, Store, Vec<ImageId>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("store"));
        let ids = images
            .iter()
            .map(|bytes| {
                store
                    .import(io::Cursor::new(bytes.clone()), "test")
                    .unwrap()
                    .record
                    .id
            })
            .collect();
        (dir, store, ids)
    }

    fn flip_a_bit(path: &Path) {
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut bytes = fs::read(path).unwrap();
        bytes[600] ^= 1;
        fs::write(path, bytes).unwrap();
    }

    fn replace_with_fifo(path: &Path) {
        fs::remove_file(path).unwrap();
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    }

    #[test]
    fn inventory_lists_a_missing_store_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Store::at(dir.path().join("nothing")).inventory().unwrap();
        assert!(inv.is_empty());
        assert!(!inv.has_version);
    }

    #[test]
    fn inventory_finds_images_temps_and_strays() {
        let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
        let inv = store.inventory().unwrap();
        assert!(inv.has_version);
        assert_eq!(inv.blobs.len(), 1);
        assert_eq!(inv.blobs[0].id, ids[0]);
        assert_eq!(inv.blobs[0].file.kind, FileKind::Regular);
        assert_eq!(inv.indexes.len(), 1);
        assert_eq!(inv.records.len(), 1);
        assert!(inv.temps.is_empty(), "{:?}", inv.temps);
        assert!(inv.strays.is_empty(), "{:?}", inv.strays);

        // Strays of every shape; a misplaced blob (wrong fan dir) is one too.
        let root = store.root();
        fs::write(root.join("junk"), b"x").unwrap();
        fs::write(root.join("blobs/sha512/zz"), b"x").unwrap();
        let hex = ids[0].hex();
        let wrong_fan = if hex.starts_with("00") { "01" } else { "00" };
        fs::create_dir_all(root.join("index/sha512").join(wrong_fan)).unwrap();
        fs::write(root.join("index/sha512").join(wrong_fan).join(&hex), b"x").unwrap();
        fs::write(root.join("images/notanid.json"), b"{}").unwrap();
        fs::create_dir(root.join("tmp/somedir")).unwrap();
        fs::write(root.join("tmp/import-left"), b"partial").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("tmp/link")).unwrap();
        let inv = store.inventory().unwrap();
        let strays: Vec<PathBuf> = inv
            .strays
            .iter()
            .map(|s| s.path.strip_prefix(root).unwrap().to_owned())
            .collect();
        assert_eq!(
            strays,
            [
                PathBuf::from("blobs/sha512/zz"),
                PathBuf::from("images/notanid.json"),
                Path::new("index/sha512").join(wrong_fan).join(&hex),
                PathBuf::from("junk"),
                PathBuf::from("tmp/somedir"),
            ]
        );
        let temps: Vec<(&Path, FileKind)> = inv
            .temps
            .iter()
            .map(|t| (t.path.strip_prefix(root).unwrap(), t.kind))
            .collect();
        assert_eq!(
            temps,
            [
                (Path::new("tmp/import-left"), FileKind::Regular),
                (Path::new("tmp/link"), FileKind::Symlink)
            ]
        );
    }

    #[test]
    fn verify_blob_finds_bit_flips_fifos_and_symlinks_without_opening_them() {
        let (_dir, store, ids) =
            store_with(&[aci("example.com/a", b"a"), aci("example.com/b", b"b")]);
        let size = fs::metadata(store.blob_path(&ids[0])).unwrap().len();
        assert_eq!(
            store.verify_blob(&ids[0]).unwrap(),
            BlobState::Intact { size }
        );
        flip_a_bit(&store.blob_path(&ids[0]));
        assert!(matches!(
            store.verify_blob(&ids[0]).unwrap(),
            BlobState::HashMismatch { found, .. } if found != ids[0]
        ));
        // A fifo would block a plain open forever; a symlink could lead out.
        replace_with_fifo(&store.blob_path(&ids[1]));
        assert_eq!(
            store.verify_blob(&ids[1]).unwrap(),
            BlobState::NotRegular {
                kind: FileKind::Fifo
            }
        );
        assert!(matches!(
            store.open(&ids[1]),
            Err(StoreError::NotRegular {
                kind: FileKind::Fifo,
                ..
            })
        ));
        fs::remove_file(store.blob_path(&ids[1])).unwrap();
        std::os::unix::fs::symlink("/dev/zero", store.blob_path(&ids[1])).unwrap();
        assert_eq!(
            store.verify_blob(&ids[1]).unwrap(),
            BlobState::NotRegular {
                kind: FileKind::Symlink
            }
        );
        fs::remove_file(store.blob_path(&ids[1])).unwrap();
        assert_eq!(store.verify_blob(&ids[1]).unwrap(), BlobState::Missing);
    }

    #[test]
    fn index_problems_are_found_and_repaired() {
        let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
        let id = ids[0];
        let fresh = store.scan_image(&id).unwrap();
        assert_eq!(store.check_index(&fresh).unwrap(), IndexState::Current);
        let path = store.index_path(&id);

        fs::remove_file(&path).unwrap();
        assert_eq!(store.check_index(&fresh).unwrap(), IndexState::Missing);

        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            store.check_index(&fresh).unwrap(),
            IndexState::Unreadable { .. }
        ));

        let mut other = fresh.index().clone();
        other.entries.pop();
        fs::write(&path, other.encode()).unwrap();
        assert_eq!(store.check_index(&fresh).unwrap(), IndexState::Stale);

        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert_eq!(
            store.check_index(&fresh).unwrap(),
            IndexState::NotRegular {
                kind: FileKind::Directory
            }
        );
        store.repair_index(&fresh).unwrap();
        assert_eq!(store.check_index(&fresh).unwrap(), IndexState::Current);
        // The directory was set aside, not deleted.
        assert!(store.quarantine_dir().join(id.hex()).is_dir());
    }

    #[test]
    fn record_problems_are_found_and_repaired_keeping_the_import_time() {
        let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
        let id = ids[0];
        let original = store.record(&id).unwrap();
        let fresh = store.scan_image(&id).unwrap();
        assert_eq!(store.check_record(&fresh).unwrap(), RecordState::Consistent);

        let path = store.record_path(&id);
        let mut wrong = original.clone();
        wrong.name = "example.com/other".to_owned();
        fs::write(&path, serde_json::to_vec(&wrong).unwrap()).unwrap();
        assert_eq!(
            store.check_record(&fresh).unwrap(),
            RecordState::Differs { field: "name" }
        );
        wrong = original.clone();
        wrong.size += 1;
        fs::write(&path, serde_json::to_vec(&wrong).unwrap()).unwrap();
        assert_eq!(
            store.check_record(&fresh).unwrap(),
            RecordState::Differs { field: "size" }
        );
        let repaired = store.repair_record(&id).unwrap();
        assert_eq!(repaired, original);

        fs::write(&path, b"{").unwrap();
        assert!(matches!(
            store.check_record(&fresh).unwrap(),
            RecordState::Corrupt { .. }
        ));
        replace_with_fifo(&path);
        assert!(matches!(
            store.check_record(&fresh).unwrap(),
            RecordState::Corrupt { reason } if reason.contains("fifo")
        ));
        store.repair_record(&id).unwrap();
        assert_eq!(store.check_record(&fresh).unwrap(), RecordState::Consistent);

        fs::remove_file(&path).unwrap();
        assert_eq!(store.check_record(&fresh).unwrap(), RecordState::Missing);
    }

    #[test]
    fn sweep_removes_unlocked_temps_only() {
        let (_dir, store, _) = store_with(&[aci("example.com/a", b"a")]);
        let leftover = store.tmp_dir().join("import-dead");
        fs::write(&leftover, b"half an image").unwrap();
        let (live, _lock) = create_locked_temp(&store.tmp_dir(), "import-").unwrap();

        assert!(!store.temp_in_use(&leftover).unwrap());
        assert!(store.temp_in_use(live.path()).unwrap());
        assert_eq!(
            store.sweep_temp(&leftover).unwrap(),
            TempSweep::Removed { bytes: 13 }
        );
        assert!(!leftover.exists());
        assert_eq!(store.sweep_temp(live.path()).unwrap(), TempSweep::InUse);
        assert!(live.path().exists());
        assert_eq!(store.sweep_temp(&leftover).unwrap(), TempSweep::Gone);

        let fifo = store.tmp_dir().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(!store.temp_in_use(&fifo).unwrap());
        assert_eq!(
            store.sweep_temp(&fifo).unwrap(),
            TempSweep::Removed { bytes: 0 }
        );
        let dir = store.tmp_dir().join("dir");
        fs::create_dir(&dir).unwrap();
        assert_eq!(store.sweep_temp(&dir).unwrap(), TempSweep::Directory);
        assert!(dir.is_dir());
    }

    #[test]
    fn an_interrupted_import_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let store = Store::at(dir.path()).with_interrupt(Arc::clone(&flag));
        store.ensure_layout().unwrap();
        // Raised once the whole input was read: the commit check stops it.
        let input = aci("example.com/a", b"a");
        let raise = Arc::clone(&flag);
        let hook: ImportHook = Arc::new(move |step| {
            if step == ImportStep::MidStream {
                raise.store(true, Ordering::SeqCst);
            }
        });
        let err = store
            .clone()
            .with_hook(hook)
            .import(io::Cursor::new(input.clone()), "a.aci")
            .unwrap_err();
        assert!(err.to_string().contains("a.aci"), "{err}");
        // Raised before: the first read fails.
        let err = store.import(io::Cursor::new(input), "a.aci").unwrap_err();
        assert!(err.to_string().contains("interrupted"), "{err}");
        for sub in ["blobs/sha512", "index/sha512", "images", "tmp"] {
            let left: Vec<_> = walkdir::WalkDir::new(dir.path().join(sub))
                .min_depth(1)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| !e.file_type().is_dir())
                .collect();
            assert!(left.is_empty(), "{sub}: {left:?}");
        }
    }

    #[test]
    fn a_temp_swept_before_its_lock_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        store.ensure_layout().unwrap();
        // A sweeper struck between creation and lock: the name is gone.
        let temp = tempfile::NamedTempFile::new_in(store.tmp_dir()).unwrap();
        fs::remove_file(temp.path()).unwrap();
        let handle = temp.as_file().try_clone().unwrap();
        assert!(crate::temp::lock_if_still_named(handle, temp.path())
            .unwrap()
            .is_none());
        // Or the name now holds another file.
        let temp = tempfile::NamedTempFile::new_in(store.tmp_dir()).unwrap();
        fs::remove_file(temp.path()).unwrap();
        fs::write(temp.path(), b"someone else's").unwrap();
        let handle = temp.as_file().try_clone().unwrap();
        assert!(crate::temp::lock_if_still_named(handle, temp.path())
            .unwrap()
            .is_none());
        let _ = fs::remove_file(temp.path());
        // Untouched, the temp is locked and in use for a sweeper.
        let (temp, _lock) = create_locked_temp(&store.tmp_dir(), "import-").unwrap();
        assert!(store.temp_in_use(temp.path()).unwrap());
        assert_eq!(store.sweep_temp(temp.path()).unwrap(), TempSweep::InUse);
    }

    #[test]
    fn quarantine_sets_damaged_images_aside_and_never_overwrites() {
        let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
        let id = ids[0];
        let blob = store.blob_path(&id);
        let moved = store.quarantine_image(&id).unwrap().unwrap();
        assert_eq!(moved, store.quarantine_dir().join(id.hex()));
        assert!(moved.is_file());
        assert!(!blob.exists());
        assert!(!store.index_path(&id).exists());
        assert!(!store.record_path(&id).exists());
        assert!(matches!(
            store.record(&id),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.quarantine_image(&id).unwrap(), None);

        // The same image imported and damaged again lands beside the first.
        store
            .import(io::Cursor::new(aci("example.com/a", b"a")), "again")
            .unwrap();
        let second = store.quarantine_image(&id).unwrap().unwrap();
        assert_eq!(
            second,
            store.quarantine_dir().join(format!("{}.1", id.hex()))
        );
        assert!(moved.is_file());
    }

    #[test]
    fn orphans_are_removed_only_without_a_blob() {
        let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
        let id = ids[0];
        assert_eq!(store.remove_orphan_index(&id).unwrap(), None);
        assert_eq!(store.remove_orphan_record(&id).unwrap(), None);
        assert!(store.index_path(&id).exists());
        let record_len = fs::metadata(store.record_path(&id)).unwrap().len();
        fs::remove_file(store.blob_path(&id)).unwrap();
        assert!(store.remove_orphan_index(&id).unwrap().is_some());
        assert_eq!(store.remove_orphan_record(&id).unwrap(), Some(record_len));
        assert!(!store.index_path(&id).exists());
        assert!(!store.record_path(&id).exists());
        assert_eq!(store.remove_orphan_record(&id).unwrap(), None);
    }

    #[test]
    fn export_writes_the_blob_in_any_compression_and_refuses_damage() {
        let tar = aci("example.com/a", b"a");
        let (_dir, store, ids) = store_with(std::slice::from_ref(&tar));
        let id = ids[0];
        for compression in Compression::ALL {
            let mut out = Vec::new();
            let opts = ExportOptions {
                compression,
                level: None,
                xz_threads: 1,
            };
            let report = store.export(&id, &mut out, &opts).unwrap();
            assert_eq!(report.size, tar.len() as u64);
            assert_eq!(report.written, out.len() as u64);
            let hashed = archive::hash_stream(io::Cursor::new(out)).unwrap();
            assert_eq!(hashed.id, id, "{compression:?}");
            assert_eq!(hashed.compression, compression);
        }
        flip_a_bit(&store.blob_path(&id));
        let mut out = Vec::new();
        let err = store
            .export(&id, &mut out, &ExportOptions::default())
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { id: e, .. } if e == id.to_string()));
        assert!(out.is_empty(), "nothing is written for a damaged blob");

        replace_with_fifo(&store.blob_path(&id));
        assert!(matches!(
            store.export(&id, &mut out, &ExportOptions::default()),
            Err(StoreError::NotRegular { .. })
        ));
    }

    #[test]
    fn file_kinds_have_names() {
        assert_eq!(FileKind::Fifo.to_string(), "fifo");
        let dir = tempfile::tempdir().unwrap();
        let meta = fs::symlink_metadata(dir.path()).unwrap();
        assert_eq!(FileKind::of(&meta), FileKind::Directory);
    }
}
