//! Step layers (DESIGN §13): the upper directory of an overlay build tree
//! after one Acidofile step, kept beside that step's cache entry so a
//! later build can start from the step by mounting the layers of its chain
//! over the `FROM` image's cached render instead of rendering the entry.
//!
//! Layout, under `layers/`:
//!
//! ```text
//! layers/<64 hex>/         a complete layer (mode 0555): the first 64 hex
//!                          digits of its cache entry's id
//!     id                   the cache entry's full id
//!     seal                 BLAKE3 over the upper's stat stamps (see render)
//!     upper/               the step's overlay upper directory: its changes,
//!                          with overlayfs whiteouts and opaque directories;
//!                          never written again
//! layers/.acido-render-*   a layer being stored (locked) or the leftover of
//!                          a killed build or of a removal (unlocked)
//! ```
//!
//! A layer is the diff of its entry against the state of the entry's
//! dependency, so it is valid only over exactly the stack of its chain's
//! layers and the `FROM` image's render: its name (the entry id) fixes
//! that chain. It is stored only after its entry is imported, written in a
//! locked temp, synced with `syncfs` and renamed to its name last: a
//! killed build leaves at worst an entry without a layer (it renders) or
//! a temp that the next store, `gc` or `fsck --repair` sweeps. `rm` of an
//! entry (and `gc --cache`) removes its layer, and `gc` removes layers
//! whose entry is gone unless a mounted build tree stacks them.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, RenameFlags};

use super::files::{read_regular, sorted_names, sync_dir};
use super::io_err;
use super::Store;
use super::StoreError;
use crate::id::ImageId;
use crate::temp::{self, TempKind};

/// Hex digits of a layer's name.
const LAYER_NAME_LEN: usize = 64;

/// Longest `id` file read.
const MAX_ID_FILE: u64 = 4096;

/// A complete stored layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    id: ImageId,
    entry: PathBuf,
}

impl Layer {
    /// The cache entry the layer belongs to.
    pub fn id(&self) -> &ImageId {
        &self.id
    }

    /// The layer's directory, `layers/<name>`.
    pub fn entry(&self) -> &Path {
        &self.entry
    }

    /// The upper directory (an overlay lower layer). Read-only by
    /// contract: it is only ever mounted as a lower directory.
    pub fn upper(&self) -> PathBuf {
        self.entry.join("upper")
    }

    /// The `seal` file (see `render::check_layer`).
    pub fn seal_path(&self) -> PathBuf {
        self.entry.join("seal")
    }
}

/// A layer being stored: a locked temp directory in `layers/`. Dropping it
/// without [`Store::publish_layer`] leaves an unlocked temp that the next
/// sweep removes.
#[derive(Debug)]
pub struct LayerStaging {
    locked: temp::LockedDir,
    id: ImageId,
}

impl LayerStaging {
    /// Where the upper directory goes (it must not exist yet: the build's
    /// upper directory is renamed there).
    pub fn upper_path(&self) -> PathBuf {
        self.locked.path.join("upper")
    }

    /// Where the seal goes.
    pub fn seal_path(&self) -> PathBuf {
        self.locked.path.join("seal")
    }
}

/// What is in `layers/`, from [`Store::layer_inventory`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerInventory {
    /// Complete layers whose `id` file reads and matches their name.
    pub layers: Vec<Layer>,
    /// Layers named like one whose `id` file is missing, unreadable or
    /// names another id: damaged (derivable, so removable).
    pub damaged: Vec<PathBuf>,
    /// Temp entries (`.acido-render-*`): being stored, or leftovers.
    pub temps: Vec<PathBuf>,
    /// Anything else in `layers/`.
    pub strays: Vec<PathBuf>,
}

fn layer_name(id: &ImageId) -> String {
    id.hex()[..LAYER_NAME_LEN].to_owned()
}

fn is_layer_name(name: &[u8]) -> bool {
    name.len() == LAYER_NAME_LEN
        && name
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

impl Store {
    /// The directory of the step layers.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn layer_at(&self, entry: PathBuf) -> Result<Option<Layer>, StoreError> {
        let name = entry.file_name().map(|n| n.as_bytes().to_vec());
        match fs::symlink_metadata(&entry) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: entry,
                    source,
                })
            }
        }
        let id = match read_regular(&entry.join("id"), MAX_ID_FILE) {
            Ok(bytes) => bytes,
            Err(StoreError::NotRegular { .. }) | Err(StoreError::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        let id = id
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|text| text.strip_suffix('\n'))
            .and_then(|text| text.parse::<ImageId>().ok())
            .filter(|id| name.as_deref() == Some(layer_name(id).as_bytes()));
        Ok(id.map(|id| Layer { id, entry }))
    }

    /// The complete layer of the cache entry `id`, if the store holds one.
    /// A temp (being stored, or a killed build's) is never returned; the
    /// seal is not checked here (`fsck` checks it).
    pub fn layer(&self, id: &ImageId) -> Result<Option<Layer>, StoreError> {
        let found = self.layer_at(self.layers_dir().join(layer_name(id)))?;
        Ok(found.filter(|layer| layer.id == *id))
    }

    /// Starts storing the layer of the cache entry `id`: a locked temp
    /// directory in `layers/` holding the `id` file. Sweeps the unlocked
    /// temps that killed builds left first.
    pub fn stage_layer(&self, id: &ImageId) -> Result<LayerStaging, StoreError> {
        self.ensure_layout()?;
        let layers = self.layers_dir();
        fs::create_dir_all(&layers).map_err(io_err(&layers))?;
        // Best effort: a leftover that cannot be removed only costs space.
        temp::sweep_leftovers(&layers, TempKind::Render);
        let locked = temp::create_locked_dir(&layers).map_err(io_err(&layers))?;
        let file = locked.path.join("id");
        fs::write(&file, format!("{id}\n")).map_err(io_err(&file))?;
        Ok(LayerStaging { locked, id: *id })
    }

    /// Completes a staged layer: the store's file system is synced
    /// (`syncfs`), the layer made read-only (0555) and renamed to its name
    /// without replacing anything. When the name is taken already (the
    /// same entry's layer, stored by another build), the staged copy is
    /// removed and the stored one returned. The flag says whether the
    /// returned layer is the staged one.
    pub fn publish_layer(&self, staging: LayerStaging) -> Result<(Layer, bool), StoreError> {
        let path = staging.locked.path.clone();
        let dir = fs::File::open(&path).map_err(io_err(&path))?;
        // One syncfs flushes the upper's files, the id and the seal; the
        // rename below is what marks the layer complete.
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
            .map_err(|errno| io_err(&path)(errno.into()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).map_err(io_err(&path))?;
        let target = self.layers_dir().join(layer_name(&staging.id));
        let published = fcntl::renameat2(None, &path, None, &target, RenameFlags::RENAME_NOREPLACE);
        let layers = self.layers_dir();
        let ours = match published {
            Ok(()) => {
                sync_dir(&layers)?;
                true
            }
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => {
                drop(staging);
                temp::sweep_leftovers(&layers, TempKind::Render);
                false
            }
            Err(errno) => return Err(io_err(&target)(errno.into())),
        };
        // Ours, or the concurrent build's under the same name, which is
        // the same entry's.
        let layer = self
            .layer_at(target.clone())?
            .ok_or_else(|| StoreError::CorruptRecord {
                path: target.join("id"),
                reason: "the published layer has no valid id file".to_owned(),
            })?;
        Ok((layer, ours))
    }

    /// Everything in `layers/` (a missing directory is empty). Layers are
    /// checked only by name and `id` file here; their content is checked
    /// by `render::check_layer`.
    pub fn layer_inventory(&self) -> Result<LayerInventory, StoreError> {
        let dir = self.layers_dir();
        let mut inv = LayerInventory::default();
        for (name, is_dir) in sorted_names(&dir)? {
            let path = dir.join(&name);
            let bytes = name.as_bytes();
            if is_dir && TempKind::Render.matches(bytes) {
                inv.temps.push(path);
            } else if !is_dir || !is_layer_name(bytes) {
                inv.strays.push(path);
            } else {
                match self.layer_at(path.clone())? {
                    Some(layer) => inv.layers.push(layer),
                    None => inv.damaged.push(path),
                }
            }
        }
        Ok(inv)
    }

    /// Removes the layer at `entry` (a path in `layers/`, complete or
    /// damaged): under the store lock it is renamed to a temp name, so no
    /// build finds it any more, then deleted. Returns whether it existed.
    pub fn remove_layer_entry(&self, entry: &Path) -> Result<bool, StoreError> {
        self.remove_dir_entry(&self.layers_dir(), entry, "layer")
    }

    /// Removes the layer of the cache entry `id` (what `rm` of `id` does);
    /// returns whether there was one.
    pub fn remove_layer_of(&self, id: &ImageId) -> Result<bool, StoreError> {
        let entry = self.layers_dir().join(layer_name(id));
        if fs::symlink_metadata(&entry).is_err() {
            return Ok(false);
        }
        self.remove_layer_entry(&entry)
    }

    /// Whether a live build holds the lock of the temp at `path`.
    pub fn layer_temp_in_use(&self, path: &Path) -> Result<bool, StoreError> {
        // The same protocol as the tree cache's temps.
        self.tree_temp_in_use(path)
    }

    /// Removes the temps in `layers/` no live build holds; returns how
    /// many went.
    pub fn sweep_layer_temps(&self) -> usize {
        temp::sweep_leftovers(&self.layers_dir(), TempKind::Render).removed
    }
}
