//! `gc`: delete what no image needs: leftovers of interrupted writes in
//! `tmp/` and `trees/`, indexes and records whose blob is gone, and cached
//! trees no build tree uses (as `rkt image gc` removes unused tree
//! stores). Never touches a live write (its temp is locked), a blob, or a
//! cached tree a build tree still uses.

use std::path::{Path, PathBuf};

use acido_plumbing::store::{Store, StoreError, TempSweep};

/// What kind of garbage an item was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// An unlocked file in `tmp/`.
    Temp,
    /// An index without a blob.
    OrphanIndex,
    /// A record without a blob.
    OrphanRecord,
    /// A cached tree no existing build tree uses (or that holds an image
    /// no longer stored, or whose entry is damaged).
    Tree,
}

impl Garbage {
    /// The name printed for it.
    pub fn name(self) -> &'static str {
        match self {
            Garbage::Temp => "temp",
            Garbage::OrphanIndex => "orphan-index",
            Garbage::OrphanRecord => "orphan-record",
            Garbage::Tree => "tree",
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
    /// Every removed file, temps first, then indexes, then records.
    pub removed: Vec<Removed>,
    /// Temps left alone because a live process holds them.
    pub in_use: usize,
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
    collect_trees(store, &mut report)?;
    Ok(report)
}

/// Removes the cached trees nothing uses, damaged entries, and the temps
/// of killed tree renders.
fn collect_trees(store: &Store, report: &mut GcReport) -> Result<(), StoreError> {
    let inv = store.tree_inventory()?;
    let mut leftovers = Vec::new();
    for temp in &inv.temps {
        if store.tree_temp_in_use(temp)? {
            report.in_use += 1;
        } else {
            leftovers.push((temp, tree_bytes(temp)));
        }
    }
    // One sweep takes every unlocked temp (and leaves the locked ones).
    if !leftovers.is_empty() {
        store.sweep_tree_temps();
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
    for entry in doomed {
        let bytes = tree_bytes(&entry);
        if store.remove_tree_entry(&entry)? {
            report.removed.push(Removed {
                kind: Garbage::Tree,
                path: relative(store, &entry),
                bytes,
            });
        }
    }
    Ok(())
}

/// The bytes of the regular files under `dir`, each inode once (a cached
/// tree's hard links share their data).
fn tree_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && seen.insert(m.ino()))
        .map(|m| m.len())
        .sum()
}
