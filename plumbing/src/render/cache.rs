//! Rendering into the store's tree cache (DESIGN §13; the layout is
//! [`crate::store`]'s `trees/`): [`ensure_cached_tree`] returns the cached
//! render of a dependency list, rendering it first when the cache has
//! none, and [`check_cached_tree`] tells whether an entry is still exactly
//! what was rendered.
//!
//! A cached tree is rendered like any other (every blob verified before
//! it is published, [`super::render_list`]), into a locked temp entry; its
//! *seal* (a BLAKE3 digest of the stat stamps of every path of the tree:
//! inode, type, mode, owner, size, times with `ctime`, link count, link
//! target) is written beside it, the file system is synced, and only then
//! is the entry renamed to its key. Any later write, chmod, chown, xattr
//! or link change inside the tree moves a `ctime` and breaks the seal, so
//! a tree that was written through is never used again: it is removed
//! and rendered afresh.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::diff::{self, Tree};
use crate::id::{FastDigest, FastHasher};
use crate::store::{CachedTree, Layer, LayerStaging, Store, StoreError, TreeKey};

use super::deps::{DependencyList, ImageSource};
use super::filemap::FileMap;
use super::publish::{render_list, RenderOptions, RenderReport};
use super::RenderError;

/// How many times [`ensure_cached_tree`] renders when a concurrent `gc`
/// keeps removing the entry between its render and its use.
const ATTEMPTS: usize = 3;

/// What [`ensure_cached_tree`] gives back.
#[derive(Debug, Clone)]
pub struct EnsuredTree {
    /// The complete, sealed entry.
    pub tree: CachedTree,
    /// What the render wrote when the cache had no (intact) entry;
    /// `None` when the cached one was used.
    pub rendered: Option<RenderReport>,
}

/// The state of a cached tree against its seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeState {
    /// Every path has the stamps it had when the tree was sealed.
    Intact,
    /// Something in the tree changed since (or the seal is unreadable).
    Changed,
}

/// The key of the tree `list` renders to: its ids in list order.
pub fn tree_key(list: &DependencyList) -> TreeKey {
    TreeKey::new(list.images.iter().map(|e| e.id).collect())
}

fn cache_err(source: StoreError) -> RenderError {
    RenderError::Cache {
        source: Box::new(source),
    }
}

/// The cached render of `list` (with its file map `map`), rendered into
/// the store's tree cache first when there is no intact entry for its key.
///
/// * `user`: the build tree that will use the entry (an existing
///   directory, e.g. the one an overlay is mounted on). It is recorded
///   under the store lock in the same step that finds the entry, so `gc`
///   cannot remove the entry in between; `gc` keeps an entry while one of
///   its users exists, and [`Store::release_cached_tree`] forgets a user.
///   `None` only looks up or fills the cache.
/// * `opts`: as for [`super::render`]; `verify` should stay on, since the
///   cached tree will be used without looking at the blobs again.
///
/// Every image of `list` must be a stored one (its key names store ids,
/// so `rm` can find the entries to drop). An entry whose seal is broken
/// (something wrote into the tree) is removed and rendered again. A
/// render that fails or is interrupted leaves no entry under the key
/// (its temp is removed, or swept later when the process was killed).
pub fn ensure_cached_tree(
    store: &Store,
    list: &DependencyList,
    map: &FileMap,
    user: Option<&Path>,
    opts: &RenderOptions,
    interrupt: &AtomicBool,
) -> Result<EnsuredTree, RenderError> {
    if let Some(index) = list
        .images
        .iter()
        .position(|e| e.image.source != ImageSource::Store)
    {
        return Err(RenderError::NotStored {
            chain: list.chain(index),
        });
    }
    let key = tree_key(list);
    let lookup = |key: &TreeKey| match user {
        Some(user) => store.use_cached_tree(key, user),
        None => store.cached_tree(key),
    };
    for _ in 0..ATTEMPTS {
        if let Some(tree) = lookup(&key).map_err(cache_err)? {
            if check_cached_tree(&tree)? == TreeState::Intact {
                return Ok(EnsuredTree {
                    tree,
                    rendered: None,
                });
            }
            store.remove_tree_entry(tree.entry()).map_err(cache_err)?;
        }
        let staging = store.stage_tree(&key).map_err(cache_err)?;
        let written =
            render_list(list, map, &staging.tree_path(), opts, interrupt).and_then(|report| {
                write_seal(&staging.seal_path(), seal_of(&walk(&staging.tree_path())?))?;
                Ok(report)
            });
        let report = match written {
            Ok(report) => report,
            Err(e) => {
                // Unlocked, the staged entry is a leftover: swept now.
                drop(staging);
                store.sweep_tree_temps();
                return Err(e);
            }
        };
        store.publish_tree(staging).map_err(cache_err)?;
        // Looked up again: with a user, to record it under the lock; and a
        // concurrent writer may have published the same key first.
        if let Some(tree) = lookup(&key).map_err(cache_err)? {
            return Ok(EnsuredTree {
                tree,
                rendered: Some(report),
            });
        }
    }
    Err(RenderError::Cache {
        source: Box::new(StoreError::Io {
            path: store.tree_entry_path(&key),
            source: std::io::Error::other("the cached tree kept being removed while in use"),
        }),
    })
}

/// Whether `tree` is still what was rendered and sealed: the stamps of
/// every path are walked again (no file is read) and digested like the
/// seal. A missing or unreadable seal, or a missing `tree/`, counts as
/// [`TreeState::Changed`].
pub fn check_cached_tree(tree: &CachedTree) -> Result<TreeState, RenderError> {
    check_sealed(&tree.path(), &tree.seal_path())
}

fn check_sealed(root: &Path, seal: &Path) -> Result<TreeState, RenderError> {
    Ok(match walk_sealed(root, seal)? {
        Some(_) => TreeState::Intact,
        None => TreeState::Changed,
    })
}

/// The walk of the tree at `root` when it is still what `seal` says,
/// `None` when it changed (see [`check_sealed`]).
fn walk_sealed(root: &Path, seal: &Path) -> Result<Option<Tree>, RenderError> {
    let is_dir = fs::symlink_metadata(root).is_ok_and(|m| m.is_dir());
    if !is_dir {
        // Nothing to walk: the entry lost its tree (or it was replaced by
        // something that must not be followed).
        return Ok(None);
    }
    let recorded = fs::read_to_string(seal).ok();
    let walked = walk(root)?;
    let now = seal_of(&walked);
    Ok(
        (recorded.as_deref().map(str::trim_end) == Some(now.to_string().as_str()))
            .then_some(walked),
    )
}

/// Seals a staged step layer (its upper directory already in place),
/// like a cached tree: the stamps of every path of the upper directory.
/// Returns the walk the seal was taken from: the layer is never written
/// again, so a build may read it instead of walking the layer again.
pub fn seal_layer(staging: &LayerStaging) -> Result<Tree, RenderError> {
    let walked = walk(&staging.upper_path())?;
    write_seal(&staging.seal_path(), seal_of(&walked))?;
    Ok(walked)
}

/// Whether the step layer `layer` is still what was sealed (see
/// [`check_cached_tree`]).
pub fn check_layer(layer: &Layer) -> Result<TreeState, RenderError> {
    check_sealed(&layer.upper(), &layer.seal_path())
}

/// [`check_layer`] that returns the walk of the layer's upper directory
/// when it is intact (`None` when it changed): a build that stacks the
/// layer reads its paths from this walk rather than walking it again.
pub fn walk_intact_layer(layer: &Layer) -> Result<Option<Tree>, RenderError> {
    walk_sealed(&layer.upper(), &layer.seal_path())
}

fn walk(root: &Path) -> Result<Tree, RenderError> {
    diff::walk(root).map_err(|source| RenderError::CacheWalk {
        source: Box::new(source),
    })
}

/// The seal of the walked tree `walked`: BLAKE3 over each path's stamps,
/// in path order.
fn seal_of(walked: &Tree) -> FastDigest {
    let mut hasher = FastHasher::new();
    let mut record = Vec::with_capacity(256);
    for (path, meta) in walked.iter() {
        record.clear();
        record.extend_from_slice(&(path.len() as u64).to_le_bytes());
        record.extend_from_slice(path);
        record.push(meta.kind.code() as u8);
        for value in [
            u64::from(meta.mode),
            meta.uid,
            meta.gid,
            meta.size,
            meta.ino,
            meta.nlink,
            meta.mtime.secs as u64,
            u64::from(meta.mtime.nanos),
            meta.ctime.secs as u64,
            u64::from(meta.ctime.nanos),
            u64::from(meta.dev_major),
            u64::from(meta.dev_minor),
        ] {
            record.extend_from_slice(&value.to_le_bytes());
        }
        let target = meta.link_target.as_deref().unwrap_or_default();
        record.extend_from_slice(&(target.len() as u64).to_le_bytes());
        record.extend_from_slice(target);
        hasher.update(&record);
    }
    hasher.finish()
}

fn write_seal(path: &Path, seal: FastDigest) -> Result<(), RenderError> {
    let io_err = |source| RenderError::Io {
        path: path.to_owned(),
        op: "write the seal",
        source,
    };
    let mut file = fs::File::create(path).map_err(io_err)?;
    writeln!(file, "{seal}").map_err(io_err)
}
