//! Build state: what `startbuild` records for `build`, kept in the store
//! beside (never inside) the build tree.
//!
//! A plain build tree has one file, `builds/<KEY>` (the stat snapshot). An
//! overlay build tree (DESIGN §13) has a directory `builds/<KEY>.overlay/`
//! holding the overlay's `upper/` and `work/` directories and `state.json`,
//! which names the tree, the lower directory and the dependency list the
//! lower directory is the rendering of.

use super::files::write_atomically;
use super::io_err;
use super::Store;
use super::StoreError;
use crate::id::ImageId;
use serde::{Deserialize, Serialize};
use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};

/// The version of `state.json` this code writes and reads.
pub const OVERLAY_STATE_VERSION: u32 = 1;

/// What `startbuild --overlay` recorded about an overlay build tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverlayState {
    /// Always [`OVERLAY_STATE_VERSION`].
    pub format_version: u32,
    /// The build tree (canonical); the overlay is mounted on its `rootfs`.
    pub tree: PathBuf,
    /// The overlay's lower directory: the rendered rootfs of `images`.
    pub lower: PathBuf,
    /// The ordered dependency list (image ids, top first) whose rendering
    /// `lower` is; `build` compares the tree's manifest against it.
    pub images: Vec<String>,
    /// Step layers stacked above `lower` (top first): the Acidofile steps
    /// stored since the tree was started, or the cached steps it was
    /// started from. The whole stack is the rendering of the dependency
    /// list of the layers' ids followed by `images`. Absent for every
    /// other tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<StateLayer>,
    /// Whether the overlay is mounted `volatile` (an Acidofile build's
    /// tree, see `build::mount::OverlayPaths`). Absent for other trees.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volatile: bool,
}

/// One step layer of an overlay build tree's lower stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateLayer {
    /// The cache entry whose layer it is.
    pub id: String,
    /// The layer's upper directory in the store (`layers/<name>/upper`).
    pub upper: PathBuf,
}

impl OverlayState {
    /// The dependency list (image ids, top first) whose rendering the
    /// whole lower stack is: the layers' entries, then `images`.
    pub fn stack_images(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.layers.iter().map(|l| l.id.clone()).collect();
        ids.extend(self.images.iter().cloned());
        ids
    }

    /// The layers' upper directories, top first.
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.upper.clone()).collect()
    }
}

/// Where the parts of an overlay build tree's state live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDirs {
    /// `builds/<KEY>.overlay`.
    pub root: PathBuf,
    /// The overlay's upper directory: every change made in the tree.
    pub upper: PathBuf,
    /// The overlay's work directory.
    pub work: PathBuf,
    /// `state.json`.
    pub state: PathBuf,
}

impl Store {
    /// Where the build state (the stat snapshot `startbuild` took) of the
    /// build tree at `dir` lives: `builds/<hash of the canonical path>`.
    /// Outside the tree, so it can never end up in an image.
    pub fn build_state_path(&self, dir: &Path) -> Result<PathBuf, StoreError> {
        use std::os::unix::ffi::OsStrExt;
        // A tree removed by hand still finds its state (to be ended) under
        // its absolute path, which is its canonical one when it was given
        // without symlinks.
        let canonical = match fs::canonicalize(dir) {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::path::absolute(dir).map_err(io_err(dir))?
            }
            Err(source) => return Err(io_err(dir)(source)),
        };
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

    /// Where the overlay state of the tree at `dir` lives (whether or not
    /// there is one).
    pub fn overlay_dirs(&self, dir: &Path) -> Result<OverlayDirs, StoreError> {
        let mut root = self.build_state_path(dir)?.into_os_string();
        root.push(".overlay");
        let root = PathBuf::from(root);
        Ok(OverlayDirs {
            upper: root.join("upper"),
            work: root.join("work"),
            state: root.join("state.json"),
            root,
        })
    }

    /// Creates the overlay state directory of the tree at `dir` with empty
    /// `upper/` and `work/` directories (mode 0700: the upper directory
    /// holds the tree's files, whatever their modes, and the work directory
    /// the kernel's scratch) and saves `state` in it. An older state of the
    /// same path must have been removed first.
    pub fn create_overlay_state(
        &self,
        dir: &Path,
        state: &OverlayState,
    ) -> Result<OverlayDirs, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        self.ensure_layout()?;
        let dirs = self.overlay_dirs(dir)?;
        let builds = self.root.join("builds");
        fs::create_dir_all(&builds).map_err(io_err(&builds))?;
        let mut builder = fs::DirBuilder::new();
        builder.mode(0o700);
        builder.create(&dirs.root).map_err(io_err(&dirs.root))?;
        for sub in [&dirs.upper, &dirs.work] {
            builder.create(sub).map_err(io_err(sub))?;
        }
        self.save_overlay_state(&dirs, state)?;
        Ok(dirs)
    }

    /// Replaces `state.json` in `dirs`.
    pub fn save_overlay_state(
        &self,
        dirs: &OverlayDirs,
        state: &OverlayState,
    ) -> Result<(), StoreError> {
        let mut text = serde_json::to_string_pretty(state).map_err(|e| StoreError::Io {
            path: dirs.state.clone(),
            source: io::Error::other(e),
        })?;
        text.push('\n');
        write_atomically(&self.tmp_dir(), &dirs.state, text.as_bytes())
    }

    /// The overlay state of the tree at `dir`, if it has one; a damaged
    /// `state.json` is an error naming it.
    pub fn load_overlay_state(
        &self,
        dir: &Path,
    ) -> Result<Option<(OverlayDirs, OverlayState)>, StoreError> {
        let dirs = self.overlay_dirs(dir)?;
        let bytes = match fs::read(&dirs.state) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: dirs.state,
                    source,
                })
            }
        };
        let state: OverlayState =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptRecord {
                path: dirs.state.clone(),
                reason: e.to_string(),
            })?;
        if state.format_version != OVERLAY_STATE_VERSION {
            return Err(StoreError::CorruptRecord {
                path: dirs.state.clone(),
                reason: format!(
                    "overlay state version {} is not supported (this acido reads {OVERLAY_STATE_VERSION})",
                    state.format_version
                ),
            });
        }
        Ok(Some((dirs, state)))
    }

    /// Removes every build state of the tree at `dir`: the stat snapshot
    /// and the overlay state directory. The caller makes sure nothing is
    /// mounted from it any more.
    pub fn remove_build_state(&self, dir: &Path) -> Result<(), StoreError> {
        let snapshot = self.build_state_path(dir)?;
        match fs::remove_file(&snapshot) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: snapshot,
                    source,
                })
            }
        }
        let dirs = self.overlay_dirs(dir)?;
        match fs::remove_dir_all(&dirs.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: dirs.root,
                source,
            }),
        }
    }
}

impl Store {
    /// Every overlay state directory in `builds/`, with its state when
    /// `state.json` can be read (`None`: missing, or damaged).
    pub fn overlay_states(&self) -> Result<Vec<(OverlayDirs, Option<OverlayState>)>, StoreError> {
        let builds = self.root.join("builds");
        let listing = match fs::read_dir(&builds) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: builds,
                    source,
                })
            }
        };
        let mut states = Vec::new();
        for entry in listing {
            let entry = entry.map_err(io_err(&builds))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".overlay")) else {
                continue;
            };
            if stem.len() != 32 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let root = entry.path();
            let dirs = OverlayDirs {
                upper: root.join("upper"),
                work: root.join("work"),
                state: root.join("state.json"),
                root,
            };
            let state = fs::read(&dirs.state)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<OverlayState>(&bytes).ok())
                .filter(|s| s.format_version == OVERLAY_STATE_VERSION);
            states.push((dirs, state));
        }
        states.sort_by(|a, b| a.0.root.cmp(&b.0.root));
        Ok(states)
    }

    /// Removes the overlay state directory `dirs` (the caller made sure no
    /// overlay uses it).
    pub fn remove_overlay_dirs(&self, dirs: &OverlayDirs) -> Result<(), StoreError> {
        match fs::remove_dir_all(&dirs.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: dirs.root.clone(),
                source,
            }),
        }
    }
}

/// The image ids of a dependency list as `state.json` keeps them.
pub fn image_list(ids: &[ImageId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}
