//! Build state: what `startbuild` records for `build`, kept in the store
//! beside (never inside) the build tree.

use super::files::write_atomically;
use super::io_err;
use super::Store;
use super::StoreError;
use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};

impl Store {
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
}
