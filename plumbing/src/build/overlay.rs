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
use crate::render::Supplier;

use super::{content_error, implied_dir, meta_of_entry, BuildError, DependencyRendering, Snapshot};

/// Walks of layer directories taken earlier by the same build, keyed by
/// the directory: a layer found here is not walked again. Only a walk of
/// a layer that cannot have changed since belongs here, such as the walk
/// that found a stored layer's seal intact (`render::walk_intact_layer`)
/// or sealed it: layers are never written once sealed.
pub type LayerWalks = HashMap<PathBuf, Tree>;

/// What [`diff_upper`] found.
#[derive(Debug)]
pub struct UpperDiff {
    /// The changes, in the terms of `diff-tree` (A the rendering, B the
    /// tree).
    pub changes: Vec<Change>,
    /// The tree after the edits, which only a diff with deleted paths
    /// needs (for the `pathWhitelist`): always there when some path was
    /// deleted, and left out by the diff of an upper directory that only
    /// adds (see [`diff_upper`]).
    pub tree: Option<Tree>,
}

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
///
/// An upper directory that only adds to the lower directory (no
/// whiteout, no opaque directory, and every path it shares with the
/// rendering a directory on both sides: new paths, and directories copied
/// up to hold them) is judged from its own paths and the rendering's map,
/// without assembling either tree: an Acidofile step that adds files
/// costs what it adds, not what the tree holds. The changes are the ones
/// the full comparison finds (tested against it).
pub fn diff_upper(
    rendering: &DependencyRendering,
    upper: &Path,
    since: Option<&Snapshot>,
) -> Result<UpperDiff, BuildError> {
    let layer = Upper::read(upper)?;
    if since.is_none() {
        if let Some(changes) = diff_additions(rendering, &layer) {
            return Ok(UpperDiff {
                changes,
                tree: None,
            });
        }
    }
    let (changes, tree) = diff_read(rendering, &layer, upper, since)?;
    Ok(UpperDiff {
        changes,
        tree: Some(tree),
    })
}

/// The changes of `layer`, an upper directory over the lower directory
/// that holds `rendering`, when it only adds (see [`diff_upper`]); `None`
/// when it does more, for the full comparison to judge.
///
/// Why this is the full comparison's result: nothing of the rendering is
/// hidden (no whiteout, no opaque directory, no upper non-directory over
/// a lower path, and a path new to the rendering has nothing of it below),
/// and no regular file of the rendering is copied up, so no hard-link
/// group shrinks. Every path the upper directory does not hold is then
/// the same on both sides, which the judge passes over except for the
/// implied directories (always modified: only an explicit entry gives
/// their time). Each upper path is new (added) or a directory on both
/// sides, which the judge compares by metadata alone.
fn diff_additions(rendering: &DependencyRendering, layer: &Upper) -> Option<Vec<Change>> {
    if !layer.whiteouts.is_empty() || !layer.opaque.is_empty() {
        return None;
    }
    let opts = DiffOptions::default();
    let display = |key: &[u8]| {
        if key.is_empty() {
            diff::ROOT_PATH.to_vec()
        } else {
            key.to_vec()
        }
    };
    let implied_change = |key: &[u8], b: FileMeta| Change {
        path: display(key),
        status: Status::Modified,
        attrs: vec![Attr::Mtime],
        a: Some(implied_dir()),
        b: Some(b),
    };
    // Keyed as the trees are (root first), for the trees' order.
    let mut changes: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
    for (key, b) in &layer.present {
        let mut map_key = b"rootfs".to_vec();
        if !key.is_empty() {
            map_key.push(b'/');
            map_key.extend_from_slice(key);
        }
        let change = match rendering.map.paths.get(&map_key) {
            None => Some(Change {
                path: display(key),
                status: Status::Added,
                attrs: Vec::new(),
                a: None,
                b: Some(b.clone()),
            }),
            Some(_) if b.kind != EntryKind::Directory => return None,
            Some(Supplier::Implied) => Some(implied_change(key, b.clone())),
            Some(Supplier::Entry {
                element,
                entry,
                kind,
            }) => {
                if !kind.is_dir() {
                    return None;
                }
                let a = meta_of_entry(rendering.entry(*element, *entry)?);
                // Directories: the content is never asked for.
                let judged = diff::compare(&a, b, &opts, || Ok(false)).ok()?;
                judged.map(|(status, attrs)| Change {
                    path: display(key),
                    status,
                    attrs,
                    a: Some(a),
                    b: Some(b.clone()),
                })
            }
        };
        if let Some(change) = change {
            changes.insert(key.clone(), change);
        }
    }
    for (path, supplier) in &rendering.map.paths {
        if !matches!(supplier, Supplier::Implied) {
            continue;
        }
        let key = match path.as_slice() {
            b"rootfs" => &b""[..],
            p => match p.strip_prefix(b"rootfs/") {
                Some(rel) => rel,
                None => continue,
            },
        };
        if !layer.present.contains_key(key) {
            changes.insert(key.to_vec(), implied_change(key, implied_dir()));
        }
    }
    Some(changes.into_values().collect())
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;

    use super::*;
    use crate::manifest::ImageManifest;
    use crate::pack::{self, PackOptions, Sink, Source};
    use crate::store::Store;

    /// Gives `path` a fixed modification time (the rendering's, where
    /// the base image has it).
    fn set_time(path: &Path, secs: i64) {
        let time = TimeSpec::new(secs, 0);
        utimensat(None, path, &time, &time, UtimensatFlags::NoFollowSymlink).unwrap();
    }

    /// A store holding a base image, the rendering of an image on top
    /// of it, and the directory `upper` to fill; the base lists `opt/deep/f`
    /// without its parents, so `opt` and `opt/deep` are implied.
    fn setup() -> (tempfile::TempDir, DependencyRendering) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let r = base.join("rootfs");
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::create_dir_all(r.join("opt/deep")).unwrap();
        fs::write(r.join("etc/a"), b"a").unwrap();
        fs::write(r.join("usr/bin/x"), b"x").unwrap();
        fs::write(r.join("opt/deep/f"), b"f").unwrap();
        for p in ["etc", "usr", "usr/bin", ""] {
            set_time(&r.join(p), 1_600_000_000);
        }
        let listed: Vec<Vec<u8>> = ["etc", "etc/a", "usr", "usr/bin", "usr/bin/x", "opt/deep/f"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let manifest =
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/base"}"#;
        let tar = dir.path().join("base.aci");
        let mut out = fs::File::create(&tar).unwrap();
        let opts = PackOptions {
            compression: crate::compression::Compression::None,
            ..PackOptions::default()
        };
        let source = Source::Listed {
            manifest,
            rootfs: &r,
            paths: &listed,
            layers: None,
        };
        pack::pack(source, Sink::Writer(&mut out), &opts).unwrap();
        let store = Store::at(dir.path().join("store"));
        let id = store
            .import(fs::File::open(&tar).unwrap(), "base")
            .unwrap()
            .record
            .id;
        let top = format!(
            r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/top","dependencies":[{{"imageName":"example.com/base","imageID":"{id}"}}]}}"#
        );
        let top = ImageManifest::from_slice(top.as_bytes()).unwrap();
        let tree = dir.path().join("tree/rootfs");
        fs::create_dir_all(&tree).unwrap();
        set_time(&tree, 1_600_000_000);
        let scratch = dir.path().join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        let rendering = super::super::dependency_rendering(&store, &top, &tree, &scratch).unwrap();
        fs::create_dir_all(dir.path().join("upper")).unwrap();
        (dir, rendering)
    }

    /// The fast judgement of an upper directory that only adds, and the
    /// full one, of the same upper directory.
    fn both(rendering: &DependencyRendering, upper: &Path) -> (Option<Vec<Change>>, Vec<Change>) {
        let layer = Upper::read(upper).unwrap();
        let fast = diff_additions(rendering, &layer);
        let (full, _) = diff_read(rendering, &layer, upper, None).unwrap();
        (fast, full)
    }

    #[test]
    fn an_upper_that_only_adds_is_judged_as_the_full_comparison_judges_it() {
        let (dir, rendering) = setup();
        let upper = dir.path().join("upper");
        // Copied-up directories, one as it was, one with a new time and
        // mode; new files, a new tree, a new link; the implied `opt/deep`
        // copied up to hold a new file.
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/new"), b"n").unwrap();
        fs::create_dir_all(upper.join("usr/bin")).unwrap();
        fs::write(upper.join("usr/bin/y"), b"y").unwrap();
        fs::set_permissions(upper.join("usr"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(upper.join("srv/app")).unwrap();
        fs::write(upper.join("srv/app/code"), b"code").unwrap();
        symlink("app/code", upper.join("srv/link")).unwrap();
        fs::create_dir_all(upper.join("opt/deep")).unwrap();
        fs::write(upper.join("opt/deep/g"), b"g").unwrap();
        for p in ["etc", "usr/bin", ""] {
            set_time(&upper.join(p), 1_600_000_000);
        }
        let (fast, full) = both(&rendering, &upper);
        let fast = fast.expect("an upper that only adds is judged fast");
        assert_eq!(fast, full);
        let paths: Vec<&[u8]> = fast.iter().map(|c| c.path.as_slice()).collect();
        for expected in [&b"opt"[..], b"opt/deep", b"usr", b"etc/new", b"srv/link"] {
            assert!(
                paths.contains(&expected),
                "{:?}",
                String::from_utf8_lossy(expected)
            );
        }
        assert!(
            !paths.contains(&&b"etc"[..]),
            "an untouched copy-up is no change"
        );
    }

    #[test]
    fn an_upper_that_does_more_than_add_goes_to_the_full_comparison() {
        let (dir, rendering) = setup();
        let upper = dir.path().join("upper");
        fs::create_dir_all(upper.join("etc")).unwrap();
        // A copied-up regular file of the rendering.
        fs::write(upper.join("etc/a"), b"A").unwrap();
        assert!(both(&rendering, &upper).0.is_none());
        fs::remove_file(upper.join("etc/a")).unwrap();
        // A directory where the rendering has a file.
        fs::create_dir(upper.join("etc/a")).unwrap();
        assert!(both(&rendering, &upper).0.is_none());
        fs::remove_dir(upper.join("etc/a")).unwrap();
        // A file where the rendering has a directory.
        fs::write(upper.join("usr"), b"u").unwrap();
        assert!(both(&rendering, &upper).0.is_none());
        fs::remove_file(upper.join("usr")).unwrap();
        // Nothing but an untouched copy-up: the fast way again.
        let (fast, full) = both(&rendering, &upper);
        assert_eq!(fast, Some(full));
    }
}
