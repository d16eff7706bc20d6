//! Reading an overlay build tree's upper directory as the diff against its
//! dependencies (DESIGN §13), so that a build costs what changed.
//!
//! The tree a user sees in `DIR/rootfs` is the lower directory (the cached
//! rendering of the dependencies, which the expected [`Tree`] describes
//! without reading it) with the upper directory laid over it:
//! - an upper character device 0/0 is a whiteout: the path and everything
//!   below it are gone;
//! - an upper directory with `trusted.overlay.opaque=y` hides every lower
//!   path below it (those in the upper directory are new ones);
//! - an upper non-directory hides the lower subtree of the same path;
//! - any other upper path is the path as it is now: new, or copied up from
//!   the lower directory when something touched it, and then compared with
//!   the lower entry, so a copy-up that changed nothing is no change.
//!
//! A lower path nobody touched keeps the rendering's metadata, except its
//! hard-link group: overlayfs without `index` breaks a group when one
//! member is copied up, deleted or replaced, and the group shrinks to the
//! members still in the lower directory, as the mounted tree shows it.
//!
//! From these, the tree after the edits is assembled in memory and
//! compared with the rendering by the same judge a plain build uses, so a
//! plain tree and an overlay tree with the same contents give the same
//! changes and the same image.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diff::{self, Attr, Change, DiffOptions, FileMeta, Status, Tree};
use crate::entry::EntryKind;
use crate::pack::OVERLAY_XATTRS;

use super::{content_error, BuildError, DependencyRendering, Snapshot};

/// Walks of layer directories taken earlier by the same build, keyed by
/// the directory: a layer found here is not walked again. Only a walk of
/// a layer that cannot have changed since belongs here, such as the walk
/// that found a stored layer's seal intact (`render::walk_intact_layer`)
/// or sealed it: layers are never written once sealed.
pub type LayerWalks = HashMap<PathBuf, Tree>;

/// What [`diff_layers`] found.
#[derive(Debug)]
pub struct StackDiff {
    /// The changes, in the terms of `diff-tree` (A the rendering, B the
    /// tree).
    pub changes: Vec<Change>,
    /// The tree after the edits (for the `pathWhitelist`).
    pub tree: Tree,
    /// For each path the layers hold and the mounted tree shows from
    /// them: the index in the layers given of the topmost one holding
    /// it, where the mount shows it from (see `pack::LayerReads`).
    pub topmost: HashMap<Vec<u8>, usize>,
}

/// What the upper directory (or a stack of layers read as one) says about
/// each path in it.
struct Upper {
    /// Paths that are there now, with their metadata (overlay xattrs
    /// removed).
    present: HashMap<Vec<u8>, FileMeta>,
    /// Paths deleted by a whiteout.
    whiteouts: HashSet<Vec<u8>>,
    /// Directories whose lower contents are hidden.
    opaque: HashSet<Vec<u8>>,
    /// Each present path's layer (index in the layers read).
    layer_of: HashMap<Vec<u8>, usize>,
}

/// One path of one layer.
enum Item {
    /// A whiteout: the path and everything below it are gone.
    Whiteout,
    /// A path that is there, and whether it is an opaque directory.
    Present(FileMeta, bool),
}

/// The paths of the layer `dir`, keyed by rootfs-relative path (the root
/// is the empty key), from its walk in `walks` or a new walk.
fn read_layer(dir: &Path, walks: &LayerWalks) -> Result<Vec<(Vec<u8>, Item)>, BuildError> {
    let fresh;
    let walked = match walks.get(dir) {
        Some(walked) => walked,
        None => {
            fresh = diff::walk(dir)?;
            &fresh
        }
    };
    let mut items = Vec::new();
    for (path, meta) in walked.iter() {
        let key = if path == diff::ROOT_PATH {
            Vec::new()
        } else {
            path.to_vec()
        };
        if meta.kind == EntryKind::CharDevice && (meta.dev_major, meta.dev_minor) == (0, 0) {
            items.push((key, Item::Whiteout));
            continue;
        }
        let mut meta = meta.clone();
        let opaque = meta.kind == EntryKind::Directory
            && meta
                .xattrs
                .iter()
                .any(|(k, v)| k == b"trusted.overlay.opaque" && v == b"y");
        meta.xattrs.retain(|(k, _)| !k.starts_with(OVERLAY_XATTRS));
        items.push((key, Item::Present(meta, opaque)));
    }
    Ok(items)
}

/// Removes every path below `key` from `map`, and `key` itself when
/// `itself`.
fn remove_under<V>(map: &mut BTreeMap<Vec<u8>, V>, key: &[u8], itself: bool) {
    if itself {
        map.remove(key);
    }
    let mut prefix = key.to_vec();
    if !prefix.is_empty() {
        prefix.push(b'/');
    }
    let doomed: Vec<Vec<u8>> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

impl Upper {
    fn read(upper: &Path) -> Result<Upper, BuildError> {
        Upper::stack(&[upper.to_owned()], &LayerWalks::new())
    }

    /// The layers `layers` (bottom first; an upper directory last) read as
    /// the one upper directory that has the same effect on the lower
    /// directory under them, as overlayfs merges them: a path's topmost
    /// layer wins, and a whiteout, an opaque directory or a non-directory
    /// in a layer hides what the layers below it hold there and below.
    fn stack(layers: &[PathBuf], walks: &LayerWalks) -> Result<Upper, BuildError> {
        // Path → (metadata, layer); ordered, so a subtree is a range.
        let mut present: BTreeMap<Vec<u8>, (FileMeta, usize)> = BTreeMap::new();
        let mut whiteouts: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        let mut opaque: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        for (index, dir) in layers.iter().enumerate() {
            let items = read_layer(dir, walks)?;
            // What this layer hides of the layers below, first: its own
            // paths are added after, so none of them is removed.
            for (key, item) in &items {
                match item {
                    Item::Whiteout => {
                        remove_under(&mut present, key, true);
                        remove_under(&mut whiteouts, key, false);
                        remove_under(&mut opaque, key, true);
                        whiteouts.insert(key.clone(), ());
                    }
                    Item::Present(meta, is_opaque) => {
                        let below_stops = whiteouts.contains_key(key)
                            || present
                                .get(key)
                                .is_some_and(|(m, _)| m.kind != EntryKind::Directory);
                        if meta.kind != EntryKind::Directory || *is_opaque {
                            remove_under(&mut present, key, false);
                            remove_under(&mut whiteouts, key, true);
                            remove_under(&mut opaque, key, true);
                        }
                        if meta.kind == EntryKind::Directory && (*is_opaque || below_stops) {
                            // A directory over a whiteout or a file of a
                            // lower layer hides the lower directory as an
                            // opaque one does: the lookup stops there.
                            whiteouts.remove(key);
                            opaque.insert(key.clone(), ());
                        }
                    }
                }
            }
            for (key, item) in items {
                if let Item::Present(meta, _) = item {
                    whiteouts.remove(&key);
                    present.insert(key, (meta, index));
                }
            }
        }
        // A hard-link group holds only the members of the same layer
        // still shown (whiteouts share one inode; they are no links).
        let layer_of: HashMap<Vec<u8>, usize> =
            present.iter().map(|(k, (_, i))| (k.clone(), *i)).collect();
        let present = present
            .into_iter()
            .map(|(key, (mut meta, index))| {
                meta.hard_links.retain(|m| layer_of.get(m) == Some(&index));
                (key, meta)
            })
            .collect();
        Ok(Upper {
            present,
            whiteouts: whiteouts.into_keys().collect(),
            opaque: opaque.into_keys().collect(),
            layer_of,
        })
    }

    /// Whether the lower path `key` (not itself in the upper directory) is
    /// hidden: deleted by a whiteout of itself or an ancestor, or below an
    /// opaque directory or an upper non-directory.
    fn hides(&self, key: &[u8]) -> bool {
        if self.whiteouts.contains(key) {
            return true;
        }
        key.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| &key[..i])
            .chain(std::iter::once(&b""[..]).filter(|_| !key.is_empty()))
            .any(|ancestor| {
                self.whiteouts.contains(ancestor)
                    || self.opaque.contains(ancestor)
                    || self
                        .present
                        .get(ancestor)
                        .is_some_and(|m| m.kind != EntryKind::Directory)
            })
    }
}

/// Compares the overlay build tree whose upper directory is `upper` with
/// `rendering`, reading only the upper directory, and returns the changes
/// in the terms of `diff-tree` (A the rendering, B the tree) with the tree
/// after the edits (for the `pathWhitelist`).
///
/// Without `since`, `rendering` must be what the lower directory holds.
/// With `since`, a stat snapshot of the upper directory taken when the
/// whole tree was exactly `rendering` (an Acidofile step stored as an
/// image on top of the lower directory's), the upper paths whose stat is
/// the snapshot's are unchanged since then and are not compared, and its
/// paths no longer in the upper directory are gone (they were made after
/// the lower directory, or removing them would have left a whiteout).
/// Lower paths still untouched are the rendering's either way: they were
/// the same then, and the tree then was the rendering.
pub fn diff_upper(
    rendering: &DependencyRendering,
    upper: &Path,
    since: Option<&Snapshot>,
) -> Result<(Vec<Change>, Tree), BuildError> {
    diff_read(rendering, &Upper::read(upper)?, upper, since)
}

/// [`diff_upper`] for an overlay whose lower directory holds `rendering`
/// and that has the layers `layers` (bottom first, its upper directory
/// last) over it: the layers are read together as one upper directory
/// (see [`Upper::stack`]; those `walks` holds are not walked again), and
/// the few files whose content must be compared are read through the
/// mounted tree `merged`. An Acidofile build started from cached steps
/// mounts their layers this way; its final image is this diff against
/// the `FROM` image's render.
pub fn diff_layers(
    rendering: &DependencyRendering,
    layers: &[PathBuf],
    walks: &LayerWalks,
    merged: &Path,
) -> Result<StackDiff, BuildError> {
    let upper = Upper::stack(layers, walks)?;
    let (changes, tree) = diff_read(rendering, &upper, merged, None)?;
    Ok(StackDiff {
        changes,
        tree,
        topmost: upper.layer_of,
    })
}

/// The judge of [`diff_upper`] and [`diff_layers`]: `layer` read from the
/// upper directory (or layers), content read below `root`.
fn diff_read(
    rendering: &DependencyRendering,
    layer: &Upper,
    root: &Path,
    since: Option<&Snapshot>,
) -> Result<(Vec<Change>, Tree), BuildError> {
    let expected = rendering.expected()?;

    let mut entries: BTreeMap<Vec<u8>, FileMeta> = BTreeMap::new();
    let mut untouched: HashSet<Vec<u8>> = HashSet::new();
    for (path, meta) in expected.tree.iter() {
        let key = if path == diff::ROOT_PATH {
            Vec::new()
        } else {
            path.to_vec()
        };
        if layer.present.contains_key(&key) || layer.hides(&key) {
            continue;
        }
        // An upper path at `since` that is gone from the upper directory
        // without a whiteout was made after the lower directory (removing
        // a lower path leaves a whiteout): it is deleted, not a lower path.
        if since.is_some_and(|s| s.contains(path)) {
            continue;
        }
        untouched.insert(key.clone());
        entries.insert(key, meta.clone());
    }
    // A group keeps only the members still in the lower directory.
    for (key, meta) in entries.iter_mut() {
        if !meta.hard_links.is_empty() {
            meta.hard_links
                .retain(|m| untouched.contains(m) && m != key);
        }
    }
    for (key, meta) in &layer.present {
        // Its hard links are already those `Upper` still shows.
        entries.insert(key.clone(), meta.clone());
    }
    let actual = Tree::from_entries(root.to_owned(), entries);

    let opts = DiffOptions::default();
    let changes = diff::diff_walked_with(&expected.tree, &actual, &mut |path, a, b| {
        let key: &[u8] = if path == diff::ROOT_PATH { b"" } else { path };
        if expected.implied.contains(key) {
            // As in a plain build: only an explicit entry reproduces an
            // implied directory's time.
            return Ok(Some((Status::Modified, vec![Attr::Mtime])));
        }
        if !untouched.contains(key) && since.is_some_and(|s| s.unchanged(path, b)) {
            return Ok(None);
        }
        let full = actual.full_path(path);
        let lower = untouched.contains(key);
        diff::compare(a, b, &opts, || {
            // Untouched, so its bytes are the rendering's.
            Ok(lower || expected.content_matches(rendering, key, &full)?)
        })
        .map_err(content_error(rendering, &full))
    })?;
    Ok((changes, actual))
}

/// Gives the upper directory `upper` the owner, mode, xattrs and mtime of
/// the lower root `lower`: the mounted root directory shows the upper
/// root's attributes, and they must be the rendering's `rootfs` entry's
/// for an untouched root to be no change.
pub fn copy_root_attrs(lower: &Path, upper: &Path) -> Result<(), BuildError> {
    use nix::sys::stat::Mode;
    use nix::sys::time::TimeSpec;
    use nix::unistd::{Gid, Uid};
    let fail = |path: &Path, reason: String| BuildError::UpperRoot {
        path: path.to_owned(),
        reason,
    };
    let meta = FileMeta::from_path(lower)
        .map_err(|e| fail(lower, e.to_string()))?
        .filter(|m| m.kind == EntryKind::Directory)
        .ok_or_else(|| fail(lower, "the lower root is not a directory".to_owned()))?;
    let xattrs: Vec<(Vec<u8>, Vec<u8>)> = meta
        .xattrs
        .iter()
        .filter(|(k, _)| !k.starts_with(OVERLAY_XATTRS))
        .cloned()
        .collect();
    let (Ok(uid), Ok(gid)) = (u32::try_from(meta.uid), u32::try_from(meta.gid)) else {
        return Err(fail(lower, "owner out of range".to_owned()));
    };
    let attrs = crate::fs::Attrs {
        owner: Some((Uid::from_raw(uid), Gid::from_raw(gid))),
        mode: Some(Mode::from_bits_truncate(meta.mode)),
        xattrs: &xattrs,
        atime: TimeSpec::UTIME_OMIT,
        mtime: crate::fs::timespec(meta.mtime),
    };
    let dir = std::fs::File::open(upper).map_err(|e| fail(upper, e.to_string()))?;
    let missed = crate::fs::set_attrs(&dir, &attrs)
        .map_err(|e| fail(upper, format!("cannot {} it: {}", e.op, e.errno)))?;
    if missed.owner || missed.xattrs > 0 {
        return Err(fail(
            upper,
            "the lower root's owner or xattrs could not be copied".to_owned(),
        ));
    }
    Ok(())
}
