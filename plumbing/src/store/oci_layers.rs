//! The OCI layer cache (DESIGN §11, `acido-store(5)`): the gzip layer
//! blobs `push` generates, kept so that a later push of the same images
//! sends them as they are instead of generating them again (as
//! containers-storage keeps the compressed blobs of the layers it pushed).
//!
//! Layout, under `oci-layers/`:
//!
//! ```text
//! oci-layers/<64 hex>.tar.gz   the layer blob, mode 0444
//! oci-layers/<64 hex>.json     its record: key, digest, size, diffID, media type
//! ```
//!
//! The name is the first 64 hex digits of the SHA-512 of the key's text
//! (see [`OciLayerKey`]): what decides the blob's bytes, namely the
//! generator's version and, from the layer's image down to the bottom of
//! the dependency list, each image's id and where its parent sits. Images
//! are immutable and the generator deterministic, so an entry stays valid
//! while its images are stored; a generator change bumps its version and
//! so every name.
//!
//! Writing: the blob goes to a locked temp in `tmp/` (swept after a
//! kill), is made read-only and renamed to its name; then the record is
//! written through a temp and a rename. An entry is used only when its
//! record reads, names the key asked for, and its blob is a regular file
//! of the recorded size, so a killed writer (a blob without a record) or
//! a truncated blob is never used; the digest is checked by whoever reads
//! the blob (an upload's streaming hasher, a layout push's copy).
//!
//! `gc` removes entries whose images are not all stored, damaged ones and
//! blobs without a record; `gc --cache` removes every entry; `fsck`
//! re-hashes every blob and `fsck --repair` removes the bad entries.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::files::{create_locked_temp, open_regular, read_regular, remove_if_exists};
use super::files::{set_read_only, write_atomically};
use super::io_err;
use super::Store;
use super::StoreError;
use crate::id::{IdHasher, ImageId};

/// Hex digits of an entry's name.
pub const OCI_LAYER_NAME_LEN: usize = 64;

/// Longest record read (a key lists at most the dependency count limit's
/// images, one line of about 140 bytes each).
const MAX_RECORD: u64 = 16 << 20;

const BLOB_SUFFIX: &str = ".tar.gz";
const RECORD_SUFFIX: &str = ".json";

/// What decides a cached layer's bytes. Its text is the generator's name
/// and version on the first line, then one line per image from the
/// layer's image down to the bottom of the dependency list: the image's
/// id and the position of its parent relative to the layer's image (`-`
/// when the parent is above it, or when it has none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciLayerKey {
    text: String,
    name: String,
}

impl OciLayerKey {
    /// The key of the layer `generator` (a name and version, one line)
    /// writes for `images` (the layer's image first, each with its
    /// parent's position relative to the layer's image).
    pub fn new(generator: &str, images: &[(ImageId, Option<usize>)]) -> OciLayerKey {
        let mut text = format!("{}\n", generator.replace('\n', " "));
        for (id, parent) in images {
            match parent {
                Some(p) => text.push_str(&format!("{id} {p}\n")),
                None => text.push_str(&format!("{id} -\n")),
            }
        }
        OciLayerKey::from_text(text)
    }

    fn from_text(text: String) -> OciLayerKey {
        let mut hasher = IdHasher::new();
        hasher.update(text.as_bytes());
        let name = hasher.finish().hex()[..OCI_LAYER_NAME_LEN].to_owned();
        OciLayerKey { text, name }
    }

    /// The entry's name: 64 hex digits.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's text (stored in the record).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The image ids the key names (every one must be stored for the
    /// entry to be kept).
    pub fn ids(&self) -> Vec<Option<ImageId>> {
        self.text
            .lines()
            .skip(1)
            .map(|line| line.split(' ').next().and_then(|id| id.parse().ok()))
            .collect()
    }
}

/// What a cached layer is, as the OCI manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciLayerRecord {
    /// `sha256:<hex>` of the blob (the gzip stream).
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar.
    #[serde(rename = "diffID")]
    pub diff_id: String,
    /// The layer's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// The record file: the record and the key it was written for.
#[derive(Serialize, Deserialize)]
struct RecordFile {
    key: String,
    #[serde(flatten)]
    record: OciLayerRecord,
}

/// A usable entry: its record checked against the key, its blob open and
/// of the recorded size. Reading the blob through [`CachedOciLayer::file`]
/// reads the very file checked, whatever happens to the name meanwhile.
#[derive(Debug)]
pub struct CachedOciLayer {
    /// The record.
    pub record: OciLayerRecord,
    /// The blob file, open for reading at offset 0.
    pub file: File,
    /// Where the blob is (for messages).
    pub path: PathBuf,
}

/// One entry found by [`Store::oci_layer_inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayerEntry {
    /// The entry's name (64 hex digits).
    pub name: String,
    /// Its key, from a readable record whose key hashes to the name;
    /// `None` when the record is missing or damaged.
    pub key: Option<OciLayerKey>,
    /// The record, when it reads.
    pub record: Option<OciLayerRecord>,
    /// The files of the entry that exist (blob, record).
    pub files: Vec<PathBuf>,
    /// Whether the blob exists.
    pub has_blob: bool,
}

/// What is in `oci-layers/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciLayerInventory {
    /// Entries by name, sorted.
    pub entries: Vec<OciLayerEntry>,
    /// Anything else in `oci-layers/`.
    pub strays: Vec<PathBuf>,
}

/// What [`Store::check_oci_layer`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciLayerState {
    /// The blob hashes to its record's digest and has its size.
    Ok,
    /// The entry cannot be used: what is wrong with it.
    Bad(String),
}

impl Store {
    /// The layer cache's directory.
    pub fn oci_layers_dir(&self) -> PathBuf {
        self.root.join("oci-layers")
    }

    fn layer_blob_path(&self, name: &str) -> PathBuf {
        self.oci_layers_dir().join(format!("{name}{BLOB_SUFFIX}"))
    }

    fn layer_record_path(&self, name: &str) -> PathBuf {
        self.oci_layers_dir().join(format!("{name}{RECORD_SUFFIX}"))
    }

    /// The entry for `key` when it is usable (see the module docs);
    /// `None` when there is none or it cannot be used (a damaged entry is
    /// a miss: the caller generates the layer again and replaces it).
    pub fn cached_oci_layer(&self, key: &OciLayerKey) -> Option<CachedOciLayer> {
        let bytes = read_regular(&self.layer_record_path(key.name()), MAX_RECORD).ok()??;
        let file: RecordFile = serde_json::from_slice(&bytes).ok()?;
        if file.key != key.text() {
            return None;
        }
        let path = self.layer_blob_path(key.name());
        let blob = open_regular(&path).ok()??;
        let size = blob.metadata().ok()?.len();
        (size == file.record.size).then_some(CachedOciLayer {
            record: file.record,
            file: blob,
            path,
        })
    }

    /// A locked temp in `tmp/` for a layer blob being generated; give it
    /// to [`Store::publish_oci_layer`] once written. Creates the layout when
    /// needed.
    pub fn oci_layer_temp(
        &self,
    ) -> Result<(tempfile::NamedTempFile, nix::fcntl::Flock<File>), StoreError> {
        self.ensure_layout()?;
        create_locked_temp(&self.tmp_dir(), "layer-")
    }

    /// Makes `temp` (a complete blob that `record` describes) the entry
    /// for `key`: the blob renamed into place read-only, then its record.
    /// Returns the entry, its blob open.
    pub fn publish_oci_layer(
        &self,
        key: &OciLayerKey,
        temp: tempfile::NamedTempFile,
        record: &OciLayerRecord,
    ) -> Result<CachedOciLayer, StoreError> {
        let dir = self.oci_layers_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = self.layer_blob_path(key.name());
        set_read_only(temp.as_file(), temp.path())?;
        let file = temp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        let text = serde_json::to_vec(&RecordFile {
            key: key.text().to_owned(),
            record: record.clone(),
        })
        .map_err(|e| StoreError::Io {
            path: self.layer_record_path(key.name()),
            source: io::Error::other(e),
        })?;
        write_atomically(&self.tmp_dir(), &self.layer_record_path(key.name()), &text)?;
        let mut file = file;
        io::Seek::rewind(&mut file).map_err(io_err(&path))?;
        Ok(CachedOciLayer {
            record: record.clone(),
            file,
            path,
        })
    }

    /// Lists `oci-layers/` without following links.
    pub fn oci_layer_inventory(&self) -> Result<OciLayerInventory, StoreError> {
        let dir = self.oci_layers_dir();
        let mut inv = OciLayerInventory::default();
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(inv),
            Err(source) => return Err(StoreError::Io { path: dir, source }),
        };
        let mut by_name: std::collections::BTreeMap<String, OciLayerEntry> = Default::default();
        for item in listing {
            let item = item.map_err(io_err(&dir))?;
            let path = item.path();
            let file_name = item.file_name();
            let parsed = file_name.to_str().and_then(|n| {
                let (name, blob) = match n.strip_suffix(BLOB_SUFFIX) {
                    Some(name) => (name, true),
                    None => (n.strip_suffix(RECORD_SUFFIX)?, false),
                };
                let hex = name.len() == OCI_LAYER_NAME_LEN
                    && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                hex.then(|| (name.to_owned(), blob))
            });
            let regular = item.file_type().map(|t| t.is_file()).unwrap_or(false);
            let Some((name, blob)) = parsed.filter(|_| regular) else {
                inv.strays.push(path);
                continue;
            };
            let entry = by_name
                .entry(name.clone())
                .or_insert_with(|| OciLayerEntry {
                    name,
                    key: None,
                    record: None,
                    files: Vec::new(),
                    has_blob: false,
                });
            entry.files.push(path);
            entry.has_blob |= blob;
        }
        for entry in by_name.values_mut() {
            entry.files.sort();
            let record = read_regular(&self.layer_record_path(&entry.name), MAX_RECORD)
                .ok()
                .flatten()
                .and_then(|bytes| serde_json::from_slice::<RecordFile>(&bytes).ok());
            if let Some(file) = record {
                let key = OciLayerKey::from_text(file.key);
                if key.name() == entry.name {
                    entry.key = Some(key);
                    entry.record = Some(file.record);
                }
            }
        }
        inv.entries = by_name.into_values().collect();
        inv.strays.sort();
        Ok(inv)
    }

    /// Re-hashes the blob of `entry` against its record.
    pub fn check_oci_layer(&self, entry: &OciLayerEntry) -> Result<OciLayerState, StoreError> {
        let Some(record) = &entry.record else {
            return Ok(OciLayerState::Bad(
                "its record is missing or damaged".to_owned(),
            ));
        };
        let path = self.layer_blob_path(&entry.name);
        let mut file = match open_regular(&path) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(OciLayerState::Bad("its blob is missing".to_owned())),
            Err(StoreError::NotRegular { kind, .. }) => {
                return Ok(OciLayerState::Bad(format!("its blob is a {kind}")))
            }
            Err(e) => return Err(e),
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        if size != record.size {
            return Ok(OciLayerState::Bad(format!(
                "its blob has {size} bytes, its record says {}",
                record.size
            )));
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let found = format!("sha256:{hex}");
        if found != record.digest {
            return Ok(OciLayerState::Bad(format!(
                "its blob hashes to {found}, its record says {}",
                record.digest
            )));
        }
        Ok(OciLayerState::Ok)
    }

    /// Removes an entry (blob first, so the record never names a blob
    /// that is half gone); returns the bytes freed.
    pub fn remove_oci_layer(&self, entry: &OciLayerEntry) -> Result<u64, StoreError> {
        let mut bytes = 0;
        for path in [
            self.layer_blob_path(&entry.name),
            self.layer_record_path(&entry.name),
        ] {
            bytes += fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
            remove_if_exists(&path)?;
        }
        Ok(bytes)
    }

    /// Where the layer cache entry `name` keeps its blob.
    pub fn oci_layer_path(&self, name: &str) -> PathBuf {
        self.layer_blob_path(name)
    }
}
