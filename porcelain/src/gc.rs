//! `gc`: delete what no image needs: leftovers of interrupted writes in
//! `tmp/` and `trees/`, indexes and records whose blob is gone, and cached
//! trees no build tree uses (as `rkt image gc` removes unused tree
//! stores), and the overlay state of build trees removed without
//! `endbuild`, and the OCI layer cache's entries (`push`'s gzip layers) that
//! hold an image no longer stored, damaged ones and blobs without their
//! record, and step layers whose cache entry is gone. Never touches a live write (its temp is locked), a blob, a
//! cached tree a build tree still uses, or anything mounted. With `--cache` it also removes the
//! step cache's entries ([`crate::acidofile::cache`]) that no other stored
//! image depends on, and every OCI layer cache entry (both are only
//! speed-ups, which `--cache` asks to drop).

use std::path::{Path, PathBuf};

use acido_plumbing::build::mount;
use acido_plumbing::fs::file_bytes_under;
use acido_plumbing::id::ImageId;
use acido_plumbing::store::{OverlayDirs, Store, StoreError, TempSweep, TreeKey};

use crate::acidofile::cache;
use crate::dependency_graph::DependencyGraph;

/// What kind of garbage an item was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// An unlocked file in `tmp/`.
    Temp,
    /// An index without a blob.
    OrphanIndex,
    /// A record without a blob.
    OrphanRecord,
    /// A step cache entry (its blob; index and record go with it).
    Cache,
    /// A cached tree no existing build tree uses (or that holds an image
    /// no longer stored, or whose entry is damaged).
    Tree,
    /// The overlay state (upper and work directories) of a build tree
    /// removed without `endbuild`, or replaced by something else.
    BuildState,
    /// An OCI layer cache entry (its blob and record, counted as one
    /// file).
    OciLayer,
    /// A step layer whose cache entry is gone (or whose directory is
    /// damaged), that no build tree's overlay stacks.
    Layer,
}

impl Garbage {
    /// The name printed for it.
    pub fn name(self) -> &'static str {
        match self {
            Garbage::Temp => "temp",
            Garbage::OrphanIndex => "orphan-index",
            Garbage::OrphanRecord => "orphan-record",
            Garbage::Cache => "cache",
            Garbage::Tree => "tree",
            Garbage::BuildState => "build-state",
            Garbage::OciLayer => "oci-layer",
            Garbage::Layer => "layer",
        }
    }
}

/// One removed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What it was.
    pub kind: Garbage,
    /// Its path relative to the store root.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What `gc` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Every removed file, temps first, then indexes, then records, then
    /// cache entries.
    pub removed: Vec<Removed>,
    /// Temps left alone because a live process holds them.
    pub in_use: usize,
    /// Cache entries left alone because other stored images depend on them.
    pub cache_kept: usize,
    /// Cached trees kept because a build tree uses them.
    pub trees_in_use: usize,
}

impl GcReport {
    /// Total bytes removed.
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

fn relative(store: &Store, path: &Path) -> PathBuf {
    path.strip_prefix(store.root())
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.to_owned())
}

/// Collects the store's garbage. A missing store has none.
pub fn gc(store: &Store) -> Result<GcReport, StoreError> {
    gc_with(store, false)
}

/// [`gc`], and with `cache` the step cache's entries too, except those a
/// stored image outside the cache depends on (directly or through other
/// entries), which would break it, and every layer cache entry.
pub fn gc_with(store: &Store, cache: bool) -> Result<GcReport, StoreError> {
    let inv = store.inventory()?;
    let mut report = GcReport::default();
    for temp in &inv.temps {
        match store.sweep_temp(&temp.path)? {
            TempSweep::Removed { bytes } => report.removed.push(Removed {
                kind: Garbage::Temp,
                path: relative(store, &temp.path),
                bytes,
            }),
            TempSweep::InUse => report.in_use += 1,
            TempSweep::Gone | TempSweep::Directory => {}
        }
    }
    // The blob is written before its index and record, so an index or
    // record seen without a blob is never a live import's; the store
    // primitives check again under the lock before removing.
    let has_blob = |id| inv.blobs.iter().any(|b| b.id == id);
    for index in inv.indexes.iter().filter(|f| !has_blob(f.id)) {
        if let Some(bytes) = store.remove_orphan_index(&index.id)? {
            report.removed.push(Removed {
                kind: Garbage::OrphanIndex,
                path: relative(store, &index.file.path),
                bytes,
            });
        }
    }
    for record in inv.records.iter().filter(|f| !has_blob(f.id)) {
        if let Some(bytes) = store.remove_orphan_record(&record.id)? {
            report.removed.push(Removed {
                kind: Garbage::OrphanRecord,
                path: relative(store, &record.file.path),
                bytes,
            });
        }
    }
    if cache {
        remove_cache_entries(store, &mut report)?;
    }
    // Before the trees: a swept state's tree no longer keeps its lower
    // directory in use.
    sweep_overlay_states(store, &mut report)?;
    collect_trees(store, &mut report)?;
    collect_oci_layers(store, cache, &mut report)?;
    collect_layers(store, &mut report)?;
    Ok(report)
}

/// Removes the layer cache entries that can no longer be used: those
/// holding an image that is not stored (its `rm` made them unusable),
/// damaged ones (no readable record, no blob) and, with `all`
/// (`--cache`), every entry. A blob without its record is also the
/// instant between a live push's two renames; removing it then only
/// costs that push's next run a regeneration.
fn collect_oci_layers(store: &Store, all: bool, report: &mut GcReport) -> Result<(), StoreError> {
    let inv = store.oci_layer_inventory()?;
    for entry in &inv.entries {
        let usable = entry.has_blob
            && entry.key.as_ref().is_some_and(|key| {
                key.ids()
                    .iter()
                    .all(|id| id.as_ref().is_some_and(|id| store.contains(id)))
            });
        if usable && !all {
            continue;
        }
        let bytes = store.remove_oci_layer(entry)?;
        report.removed.push(Removed {
            kind: Garbage::OciLayer,
            path: relative(store, &store.oci_layer_path(&entry.name)),
            bytes,
        });
    }
    Ok(())
}

fn remove_cache_entries(store: &Store, report: &mut GcReport) -> Result<(), StoreError> {
    let mut graph = DependencyGraph::read(store)?;
    let is_entry = |id: &ImageId| graph.record(id).is_some_and(cache::is_entry);
    // Entries other images need, and the entries those depend on.
    let mut needed: Vec<ImageId> = Vec::new();
    for other in graph.records().iter().filter(|r| !cache::is_entry(r)) {
        for dep in graph.dependencies_of(&other.id) {
            if cache::is_entry(dep) && !needed.contains(&dep.id) {
                needed.push(dep.id);
            }
        }
    }
    let mut at = 0;
    while let Some(id) = needed.get(at).copied() {
        for dep in graph.dependencies_of(&id) {
            if cache::is_entry(dep) && !needed.contains(&dep.id) {
                needed.push(dep.id);
            }
        }
        at += 1;
    }
    // What an unreadable image depends on is unknown: unless it is an
    // entry nothing needs (removed below), it might need any entry.
    let blocking = graph
        .unreadable()
        .iter()
        .map(|(id, _)| *id)
        .find(|id| !is_entry(id) || needed.contains(id));
    if let Some(source) = blocking.and_then(|id| graph.take_unreadable(&id)) {
        return Err(source);
    }
    let entries: Vec<(ImageId, u64)> = graph
        .records()
        .iter()
        .filter(|r| cache::is_entry(r) && !needed.contains(&r.id))
        .map(|r| (r.id, r.size))
        .collect();
    for (id, size) in entries {
        let path = relative(store, &store.blob_path(&id));
        store.remove(&id)?;
        report.removed.push(Removed {
            kind: Garbage::Cache,
            path,
            bytes: size,
        });
    }
    report.cache_kept = needed.len();
    Ok(())
}

/// Removes the overlay states of build trees that are gone. The rule
/// (acido-gc(1)): gc never unmounts anything, and never touches a state
/// whose upper directory any mounted overlay uses. An unmounted state is
/// removed when its tree directory is gone (deleted without `endbuild`,
/// while unmounted or after a reboot) or its `rootfs` is no longer the
/// empty mount point an unmounted overlay tree leaves (something else
/// took the path); a tree with an empty `rootfs` can still be resumed
/// and is kept, as is one without `rootfs` (a start under way, or a
/// killed one `endbuild` ends). A state whose `state.json` cannot be read
/// names no tree and is left alone.
fn sweep_overlay_states(store: &Store, report: &mut GcReport) -> Result<(), StoreError> {
    for (dirs, state) in store.overlay_states()? {
        let Some(state) = state else { continue };
        // Reading mountinfo failed: nothing can be known to be unused.
        let in_use = |dirs: &OverlayDirs| mount::upper_in_use(&dirs.upper).unwrap_or(true);
        if in_use(&dirs) || !abandoned(&state.tree) {
            continue;
        }
        let bytes = file_bytes_under(&dirs.root);
        // Checked again just before: a `startbuild --resume` may have
        // mounted it since.
        if in_use(&dirs) {
            continue;
        }
        store.remove_overlay_dirs(&dirs)?;
        let ids: Option<Vec<ImageId>> = state.images.iter().map(|id| id.parse().ok()).collect();
        if let Some(ids) = ids.filter(|ids| !ids.is_empty()) {
            store.release_cached_tree(&TreeKey::new(ids), &state.tree)?;
        }
        report.removed.push(Removed {
            kind: Garbage::BuildState,
            path: relative(store, &dirs.root),
            bytes,
        });
    }
    Ok(())
}

/// Whether the (unmounted) overlay tree `tree` is gone or no longer
/// ours: see [`sweep_overlay_states`].
fn abandoned(tree: &Path) -> bool {
    match std::fs::symlink_metadata(tree) {
        Err(e) => return e.kind() == std::io::ErrorKind::NotFound,
        Ok(meta) if !meta.is_dir() => return true,
        Ok(_) => {}
    }
    let rootfs = tree.join("rootfs");
    match std::fs::symlink_metadata(&rootfs) {
        Err(_) => false,
        Ok(meta) if !meta.is_dir() => true,
        Ok(_) => std::fs::read_dir(&rootfs).is_ok_and(|mut d| d.next().is_some()),
    }
}

/// Removes the step layers whose cache entry is gone and the damaged
/// ones, except those an overlay state (a build tree that may still be
/// mounted or resumed) stacks, and the temps of killed builds' layers.
fn collect_layers(store: &Store, report: &mut GcReport) -> Result<(), StoreError> {
    let inv = store.layer_inventory()?;
    sweep_render_temps(
        store,
        &inv.temps,
        |temp| store.layer_temp_in_use(temp),
        || {
            store.sweep_layer_temps();
        },
        report,
    )?;
    // A state that cannot be read may stack any layer: then no orphan
    // is removed (fsck reports the state).
    let mut stacked = Vec::new();
    for (_, state) in store.overlay_states()? {
        match state {
            Some(state) => stacked.extend(state.layer_dirs()),
            None => return Ok(()),
        }
    }
    let orphans = inv
        .layers
        .iter()
        .filter(|l| !store.contains(l.id()) && !stacked.contains(&l.upper()))
        .map(|l| l.entry().to_owned());
    let doomed: Vec<PathBuf> = orphans.chain(inv.damaged.iter().cloned()).collect();
    remove_entries(
        store,
        doomed,
        Garbage::Layer,
        |entry| store.remove_layer_entry(entry),
        report,
    )
}

/// Removes each of the cache directories `doomed` with `remove` (which
/// says whether it was still there), reporting each one gone as `kind`
/// with the bytes it held.
fn remove_entries(
    store: &Store,
    doomed: Vec<PathBuf>,
    kind: Garbage,
    remove: impl Fn(&Path) -> Result<bool, StoreError>,
    report: &mut GcReport,
) -> Result<(), StoreError> {
    for entry in doomed {
        let bytes = file_bytes_under(&entry);
        if remove(&entry)? {
            report.removed.push(Removed {
                kind,
                path: relative(store, &entry),
                bytes,
            });
        }
    }
    Ok(())
}

/// Removes the `.acido-render-*` temps of `trees/` or `layers/` that no
/// live writer holds (`in_use`): `sweep` takes every unlocked temp of the
/// directory at once (and leaves the locked ones), and each one gone is
/// reported with its size.
fn sweep_render_temps(
    store: &Store,
    temps: &[PathBuf],
    in_use: impl Fn(&Path) -> Result<bool, StoreError>,
    sweep: impl Fn(),
    report: &mut GcReport,
) -> Result<(), StoreError> {
    let mut leftovers = Vec::new();
    for temp in temps {
        if in_use(temp)? {
            report.in_use += 1;
        } else {
            leftovers.push((temp, file_bytes_under(temp)));
        }
    }
    if !leftovers.is_empty() {
        sweep();
    }
    for (temp, bytes) in leftovers {
        if std::fs::symlink_metadata(temp).is_err() {
            report.removed.push(Removed {
                kind: Garbage::Temp,
                path: relative(store, temp),
                bytes,
            });
        }
    }
    Ok(())
}

/// Removes the cached trees nothing uses, damaged entries, and the temps
/// of killed tree renders.
fn collect_trees(store: &Store, report: &mut GcReport) -> Result<(), StoreError> {
    let inv = store.tree_inventory()?;
    sweep_render_temps(
        store,
        &inv.temps,
        |temp| store.tree_temp_in_use(temp),
        || {
            store.sweep_tree_temps();
        },
        report,
    )?;
    let unused = inv.trees.iter().filter_map(|info| {
        let orphan = info.tree.key().ids().iter().any(|id| !store.contains(id));
        if info.live_users.is_empty() || orphan {
            Some(info.tree.entry().to_owned())
        } else {
            report.trees_in_use += 1;
            None
        }
    });
    let doomed: Vec<PathBuf> = unused.chain(inv.damaged.iter().cloned()).collect();
    remove_entries(
        store,
        doomed,
        Garbage::Tree,
        |entry| store.remove_tree_entry(entry),
        report,
    )
}
