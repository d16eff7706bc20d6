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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::archive::{self, ArchiveError, Limits};
use crate::id::{IdPrefix, ImageId};
use crate::image::{ImageError, OpenImage};
use crate::index::EntryIndex;
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

/// A store rooted at a directory. Opening never writes; the layout is
/// created by the first write.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    limits: Limits,
}

impl Store {
    /// A handle on the store at `root`. Nothing is read or created yet.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Store {
            root: root.into(),
            limits: Limits::default(),
        }
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
        let tmp_dir = self.tmp_dir();
        let temp = tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(&tmp_dir)
            .map_err(io_err(&tmp_dir))?;
        // An exclusive lock on the temp file marks it as in flight, so `gc`
        // can tell a live import from the leftovers of a killed one.
        let in_flight = Flock::lock(
            temp.as_file().try_clone().map_err(io_err(temp.path()))?,
            FlockArg::LockExclusiveNonblock,
        )
        .map_err(|(_, errno)| StoreError::Io {
            path: temp.path().to_owned(),
            source: io::Error::from(errno),
        })?;

        let mut writer = BufWriter::with_capacity(1 << 20, temp.as_file());
        let scanned = archive::scan(input, &mut writer, &self.limits).map_err(|source| {
            StoreError::Archive {
                input: input_name.to_owned(),
                source,
            }
        })?;
        writer.flush().map_err(io_err(temp.path()))?;
        drop(writer);
        let manifest = ImageManifest::from_slice(&scanned.manifest).map_err(|source| {
            StoreError::Manifest {
                input: input_name.to_owned(),
                source,
            }
        })?;

        let id = scanned.id;
        let blob = self.blob_path(&id);
        let newly_stored = if blob.exists() {
            false
        } else {
            temp.as_file().sync_all().map_err(io_err(temp.path()))?;
            set_read_only(temp.as_file(), temp.path())?;
            let dir = blob.parent().expect("blob paths have a fan-out parent");
            fs::create_dir_all(dir).map_err(io_err(dir))?;
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
        let manifest = ImageManifest::from_slice(image.manifest_bytes()).map_err(|source| {
            StoreError::Manifest {
                input: id.to_string(),
                source,
            }
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
        let bytes = fs::read(path).map_err(io_err(path))?;
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
        let file = match File::open(&blob) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { id: id.to_string() })
            }
            Err(source) => return Err(StoreError::Io { path: blob, source }),
        };
        let index_path = self.index_path(id);
        let index = fs::read(&index_path)
            .ok()
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
    let mut temp = tempfile::Builder::new()
        .prefix("write-")
        .tempfile_in(tmp_dir)
        .map_err(io_err(tmp_dir))?;
    temp.write_all(bytes).map_err(io_err(temp.path()))?;
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
