//! The rendered-tree cache (DESIGN §13): renders of an image with its
//! dependencies kept in the store, keyed by the ordered list of image ids
//! the render laid down (like rkt's tree store), so a build tree can use
//! one as an overlay's lower dir instead of writing the tree again.
//!
//! Layout, under `trees/`:
//!
//! ```text
//! trees/<64 hex>/          a complete entry (mode 0555): its name is the key
//!     ids                  the key: the ordered image ids, one per line
//!     seal                 BLAKE3 over the tree's stat stamps (see render)
//!     tree/                the render: manifest + rootfs/, never written again
//!     users/<32 hex>       one file per build using the tree: its directory
//! trees/.acido-render-*    an entry being written (locked) or the leftover
//!                          of a killed writer or of a removal (unlocked)
//! ```
//!
//! An entry is written in a locked `.acido-render-*` directory, synced
//! with `syncfs`, and only then renamed to its key's name: a name of 64
//! hex digits is a complete entry, and a killed writer leaves only a
//! temp that the next writer, `gc` or `fsck --repair` sweeps. Nothing
//! writes into an entry after that rename except `users/`. Removing an
//! entry renames it back to a temp name under the store lock first, so a
//! reader never sees half an entry under a key's name.
//!
//! An entry is *in use* while one of its `users/` files names a directory
//! that still exists (a build tree mounted over it). `gc` removes entries
//! with no user; `rm` of any of the images removes the entries holding it.
//!
//! This file holds the layout, the key and the store-side operations;
//! rendering into an entry is `render::ensure_cached_tree`, checking one
//! is `render::check_cached_tree` (they need the renderer, a layer up).

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, RenameFlags};

use super::files::{read_regular, remove_if_exists, sorted_names, sync_dir, write_atomically};
use super::io_err;
use super::Store;
use super::StoreError;
use crate::id::{IdHasher, ImageId};
use crate::temp::{self, TempKind};

/// Hex digits of a tree key's name.
pub const TREE_NAME_LEN: usize = 64;

/// Longest `ids` file read (a key lists at most the dependency count
/// limit's images; each line is 136 bytes).
const MAX_IDS_FILE: u64 = 16 << 20;

/// The key of a cached tree: the ordered image ids of the render's
/// dependency list, top image first, a diamond's shared image once per
/// path (exactly as `render::DependencyList` lists them). Two renders with
/// the same key lay down the same tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeKey {
    ids: Vec<ImageId>,
    name: String,
}

impl TreeKey {
    /// The key of a render that laid down `ids`, in dependency-list order.
    pub fn new(ids: Vec<ImageId>) -> TreeKey {
        let mut hasher = IdHasher::new();
        hasher.update(Self::encode_ids(&ids).as_bytes());
        let name = hasher.finish().hex()[..TREE_NAME_LEN].to_owned();
        TreeKey { ids, name }
    }

    /// The ids, top image first.
    pub fn ids(&self) -> &[ImageId] {
        &self.ids
    }

    /// The entry's directory name: the first 64 hex digits of the SHA-512
    /// of the `ids` file's content.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `id` is one of the key's images.
    pub fn contains(&self, id: &ImageId) -> bool {
        self.ids.contains(id)
    }

    fn encode_ids(ids: &[ImageId]) -> String {
        ids.iter().map(|id| format!("{id}\n")).collect()
    }

    /// Parses an `ids` file; `None` when it is not one this code writes.
    fn decode_ids(bytes: &[u8]) -> Option<TreeKey> {
        let text = std::str::from_utf8(bytes).ok()?;
        let body = text.strip_suffix('\n')?;
        let ids = body
            .split('\n')
            .map(|line| line.parse::<ImageId>().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(TreeKey::new(ids))
    }
}

/// A complete entry of the tree cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTree {
    key: TreeKey,
    entry: PathBuf,
}

impl CachedTree {
    /// Its key.
    pub fn key(&self) -> &TreeKey {
        &self.key
    }

    /// The entry directory, `trees/<name>`.
    pub fn entry(&self) -> &Path {
        &self.entry
    }

    /// The rendered layout: `manifest` and `rootfs/`, as `render-tree`
    /// would have written them. Read-only by contract: never write into
    /// it (an overlay's lower dir is never written through).
    pub fn path(&self) -> PathBuf {
        self.entry.join("tree")
    }

    /// The rendered `rootfs/` (an overlay's lower dir).
    pub fn rootfs(&self) -> PathBuf {
        self.entry.join("tree/rootfs")
    }

    /// The `seal` file (see `render::check_cached_tree`).
    pub fn seal_path(&self) -> PathBuf {
        self.entry.join("seal")
    }

    fn users_dir(&self) -> PathBuf {
        self.entry.join("users")
    }
}

/// What is in `trees/`, from [`Store::tree_inventory`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeInventory {
    /// Complete entries whose `ids` file reads and matches their name.
    pub trees: Vec<TreeInfo>,
    /// Entries named like a key whose `ids` file is missing, unreadable or
    /// names another key: damaged (derivable, so removable).
    pub damaged: Vec<PathBuf>,
    /// Temp entries (`.acido-render-*`): being written, or leftovers.
    pub temps: Vec<PathBuf>,
    /// Anything else in `trees/`.
    pub strays: Vec<PathBuf>,
}

/// One complete entry and who uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeInfo {
    /// The entry.
    pub tree: CachedTree,
    /// The directories recorded as using it that still exist.
    pub live_users: Vec<PathBuf>,
    /// Recorded users whose directory is gone.
    pub stale_users: usize,
}

/// A new entry being written: a locked temp directory in `trees/`.
/// Dropping it without [`Store::publish_tree`] leaves an unlocked temp
/// that the next sweep removes.
#[derive(Debug)]
pub struct TreeStaging {
    locked: temp::LockedDir,
    key: TreeKey,
}

impl TreeStaging {
    /// The staging directory (the entry to be).
    pub fn path(&self) -> &Path {
        &self.locked.path
    }

    /// Where the render goes (it must not exist yet).
    pub fn tree_path(&self) -> PathBuf {
        self.locked.path.join("tree")
    }

    /// Where the seal goes.
    pub fn seal_path(&self) -> PathBuf {
        self.locked.path.join("seal")
    }

    /// The key being written.
    pub fn key(&self) -> &TreeKey {
        &self.key
    }
}

/// A user file's name: 32 hex digits of the SHA-512 of the canonical path.
fn user_name(canonical: &Path) -> String {
    let mut hasher = IdHasher::new();
    hasher.update(canonical.as_os_str().as_bytes());
    hasher.finish().hex()[..32].to_owned()
}

fn is_key_name(name: &[u8]) -> bool {
    name.len() == TREE_NAME_LEN
        && name
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

impl Store {
    /// The directory of the tree cache.
    pub fn trees_dir(&self) -> PathBuf {
        self.root.join("trees")
    }

    /// Where the entry of `key` lives (whether or not it exists).
    pub fn tree_entry_path(&self, key: &TreeKey) -> PathBuf {
        self.trees_dir().join(key.name())
    }

    /// The complete entry of `key`, if the cache holds one. A temp entry
    /// (being written, or a killed writer's) is never returned.
    pub fn cached_tree(&self, key: &TreeKey) -> Result<Option<CachedTree>, StoreError> {
        let entry = self.tree_entry_path(key);
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
        let ids = read_regular(&entry.join("ids"), MAX_IDS_FILE)
            .ok()
            .flatten();
        match ids.as_deref().and_then(TreeKey::decode_ids) {
            Some(found) if found == *key => Ok(Some(CachedTree {
                key: key.clone(),
                entry,
            })),
            _ => Ok(None),
        }
    }

    /// Like [`Store::cached_tree`], and records the build tree `user`
    /// (an existing directory) as using the entry, under the store lock,
    /// so `gc` keeps it while `user` exists. `None` when there is no
    /// complete entry (render one with `render::ensure_cached_tree`).
    pub fn use_cached_tree(
        &self,
        key: &TreeKey,
        user: &Path,
    ) -> Result<Option<CachedTree>, StoreError> {
        let canonical = fs::canonicalize(user).map_err(io_err(user))?;
        let _guard = self.lock()?;
        let Some(tree) = self.cached_tree(key)? else {
            return Ok(None);
        };
        let users = tree.users_dir();
        write_atomically(
            &self.tmp_dir(),
            &users.join(user_name(&canonical)),
            canonical.as_os_str().as_bytes(),
        )?;
        Ok(Some(tree))
    }

    /// Forgets that `user` uses the entry of `key` (when the build tree is
    /// ended). `user` is the directory given to
    /// [`Store::use_cached_tree`], or any path to it while it exists; once
    /// it is gone, pass its canonical (absolute, symlink-free) path, or
    /// leave it: an entry whose users are all gone is unused for `gc`.
    /// Returns whether it was recorded. A missing entry is fine.
    pub fn release_cached_tree(&self, key: &TreeKey, user: &Path) -> Result<bool, StoreError> {
        // The user may already be gone: then its recorded path is its
        // absolute form, as canonicalize gave it when it was recorded.
        let canonical = fs::canonicalize(user).unwrap_or_else(|_| user.to_owned());
        let _guard = self.lock()?;
        let file = self
            .tree_entry_path(key)
            .join("users")
            .join(user_name(&canonical));
        let existed = fs::symlink_metadata(&file).is_ok();
        remove_if_exists(&file)?;
        Ok(existed)
    }

    /// The key of the complete entry named `name` (64 hex digits), read
    /// from its `ids` file; `None` when there is none.
    pub fn tree_key_named(&self, name: &str) -> Result<Option<TreeKey>, StoreError> {
        if !is_key_name(name.as_bytes()) {
            return Ok(None);
        }
        let ids = match read_regular(&self.trees_dir().join(name).join("ids"), MAX_IDS_FILE) {
            Ok(ids) => ids,
            Err(StoreError::NotRegular { .. }) | Err(StoreError::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(ids
            .as_deref()
            .and_then(TreeKey::decode_ids)
            .filter(|key| key.name() == name))
    }

    /// Starts a new entry for `key`: a locked temp directory in `trees/`
    /// holding the `ids` file and an empty `users/`. Sweeps the unlocked
    /// temps that killed writers left first.
    pub fn stage_tree(&self, key: &TreeKey) -> Result<TreeStaging, StoreError> {
        self.ensure_layout()?;
        let trees = self.trees_dir();
        fs::create_dir_all(&trees).map_err(io_err(&trees))?;
        // Best effort: a leftover that cannot be removed only costs space.
        temp::sweep_leftovers(&trees, TempKind::Render);
        let locked = temp::create_locked_dir(&trees).map_err(io_err(&trees))?;
        let ids = locked.path.join("ids");
        fs::write(&ids, TreeKey::encode_ids(key.ids())).map_err(io_err(&ids))?;
        let users = locked.path.join("users");
        fs::create_dir(&users).map_err(io_err(&users))?;
        Ok(TreeStaging {
            locked,
            key: key.clone(),
        })
    }

    /// Completes a staged entry: everything in the store's file system is
    /// synced (`syncfs`), the entry is made read-only (0555) and renamed to
    /// its key's name without replacing anything. When another writer
    /// completed the same key first, the staged copy is removed and theirs
    /// returned.
    pub fn publish_tree(&self, staging: TreeStaging) -> Result<CachedTree, StoreError> {
        let path = staging.path().to_owned();
        let dir = fs::File::open(&path).map_err(io_err(&path))?;
        // One syncfs flushes every file and directory of the render, the
        // ids and the seal: cheaper than an fsync per file, and the
        // rename below is what marks the entry complete.
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
            .map_err(|errno| io_err(&path)(errno.into()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).map_err(io_err(&path))?;
        let key = staging.key.clone();
        let target = self.tree_entry_path(&key);
        let published = fcntl::renameat2(None, &path, None, &target, RenameFlags::RENAME_NOREPLACE);
        let trees = self.trees_dir();
        match published {
            Ok(()) => sync_dir(&trees)?,
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => {
                drop(staging);
                temp::sweep_leftovers(&trees, TempKind::Render);
            }
            Err(errno) => return Err(io_err(&target)(errno.into())),
        }
        // A concurrent writer's entry under the same name has the same
        // ids: the name is their digest.
        Ok(CachedTree { key, entry: target })
    }

    /// Everything in `trees/` (a missing directory is empty). Entries are
    /// checked only by name and `ids` file here; their content is checked
    /// by `render::check_cached_tree`.
    pub fn tree_inventory(&self) -> Result<TreeInventory, StoreError> {
        let trees = self.trees_dir();
        let mut inv = TreeInventory::default();
        for (name, is_dir) in sorted_names(&trees)? {
            let path = trees.join(&name);
            let bytes = name.as_bytes();
            if is_dir && TempKind::Render.matches(bytes) {
                inv.temps.push(path);
            } else if !is_dir || !is_key_name(bytes) {
                inv.strays.push(path);
            } else {
                match self.tree_key_named(&name.to_string_lossy())? {
                    Some(key) => {
                        let tree = CachedTree { key, entry: path };
                        let (live_users, stale_users) = users_of(&tree)?;
                        inv.trees.push(TreeInfo {
                            tree,
                            live_users,
                            stale_users,
                        });
                    }
                    None => inv.damaged.push(path),
                }
            }
        }
        Ok(inv)
    }

    /// Removes the entry at `entry` (a path in `trees/`, complete or
    /// damaged): under the store lock it is renamed to a temp name, so no
    /// reader finds it by key any more, then deleted. Returns whether it
    /// existed. Callers decide whether it may go (see [`TreeInfo`]).
    pub fn remove_tree_entry(&self, entry: &Path) -> Result<bool, StoreError> {
        self.remove_dir_entry(&self.trees_dir(), entry, "tree")
    }

    /// Removes the directory entry `entry` of `parent` (`trees/` or
    /// `layers/`, whose entries are written in `.acido-render-*` temps and
    /// renamed into place): under the store lock it is renamed back to a
    /// temp name, so no reader finds it by its name any more, then
    /// deleted. `what` names it in the error. Returns whether it existed.
    pub(super) fn remove_dir_entry(
        &self,
        parent: &Path,
        entry: &Path,
        what: &str,
    ) -> Result<bool, StoreError> {
        // A removal killed before its delete left its temp name taken:
        // swept first, so the rename below finds the name free.
        temp::sweep_leftovers(parent, TempKind::Render);
        {
            let _guard = self.lock()?;
            if fs::symlink_metadata(entry).is_err() {
                return Ok(false);
            }
            let name = entry.file_name().map(|n| n.to_owned()).unwrap_or_default();
            let mut doomed = std::ffi::OsString::from(TempKind::Render.prefix());
            doomed.push("removed-");
            doomed.push(&name);
            let doomed = parent.join(doomed);
            fcntl::renameat2(None, entry, None, &doomed, RenameFlags::RENAME_NOREPLACE)
                .map_err(|errno| io_err(entry)(errno.into()))?;
        }
        // The renamed entry is an unlocked temp: swept now, or by the next
        // sweep should this one be cut short.
        let report = temp::sweep_leftovers(parent, TempKind::Render);
        if report.failed > 0 {
            return Err(StoreError::Io {
                path: parent.to_owned(),
                source: io::Error::other(format!(
                    "a removed {what} could not be deleted completely"
                )),
            });
        }
        Ok(true)
    }

    /// Removes every cached tree whose key holds `id` (what `rm` of `id`
    /// does). Returns how many were removed.
    pub fn remove_trees_of(&self, id: &ImageId) -> Result<usize, StoreError> {
        let mut removed = 0;
        for info in self.tree_inventory()?.trees {
            if info.tree.key.contains(id) && self.remove_tree_entry(&info.tree.entry)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Whether a live writer holds the lock of the temp entry at `path`.
    /// Something that is not a directory (or is gone) is never in use.
    pub fn tree_temp_in_use(&self, path: &Path) -> Result<bool, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = fs::File::options()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW).bits())
            .open(path);
        let dir = match dir {
            Ok(dir) => dir,
            // Gone, or not a directory: no writer's.
            Err(e)
                if [Errno::ENOENT, Errno::ENOTDIR, Errno::ELOOP]
                    .iter()
                    .any(|errno| e.raw_os_error() == Some(*errno as i32)) =>
            {
                return Ok(false)
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        match nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(_probe) => Ok(false),
            Err((_, Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, errno)) => Err(io_err(path)(errno.into())),
        }
    }

    /// Removes the temp entries in `trees/` no live writer holds (see
    /// [`crate::temp::sweep_leftovers`]); returns how many went.
    pub fn sweep_tree_temps(&self) -> usize {
        temp::sweep_leftovers(&self.trees_dir(), TempKind::Render).removed
    }
}

/// The live and stale users of `tree`.
fn users_of(tree: &CachedTree) -> Result<(Vec<PathBuf>, usize), StoreError> {
    let dir = tree.users_dir();
    let listing = match fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => return Err(StoreError::Io { path: dir, source }),
    };
    let (mut live, mut stale) = (Vec::new(), 0);
    for entry in listing {
        let entry = entry.map_err(io_err(&dir))?;
        let recorded = read_regular(&entry.path(), 1 << 16).ok().flatten();
        let user = recorded.map(|bytes| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)));
        match user {
            Some(user) if fs::symlink_metadata(&user).is_ok_and(|m| m.is_dir()) => live.push(user),
            _ => stale += 1,
        }
    }
    live.sort();
    Ok((live, stale))
}
