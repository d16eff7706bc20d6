//! Image records (`images/<hex>.json`): reading, writing, listing and
//! rebuilding them from the blobs.

use super::files::now_ns;
use super::files::read_regular;
use super::files::write_atomically;
use super::io_err;
use super::Store;
use super::StoreError;
use std::fs::{self};
use std::io::{self};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::id::{IdPrefix, ImageId};
use crate::manifest::ImageManifest;

/// Largest image record accepted: records are a few hundred bytes, so
/// anything bigger is damage, and reading it must stay bounded.
const MAX_RECORD_SIZE: u64 = 1 << 20;

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

    pub(super) fn from_manifest(
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

impl Store {
    /// Stores `record` unless a record for its id exists; returns the
    /// record in force. A re-import keeps the first import time.
    pub(super) fn record_or_insert(&self, record: ImageRecord) -> Result<ImageRecord, StoreError> {
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

    pub(super) fn read_record_file(&self, path: &Path) -> Result<ImageRecord, StoreError> {
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
        self.check_root()?;
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
        self.check_root()?;
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
}
