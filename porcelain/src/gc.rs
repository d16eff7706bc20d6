//! `gc`: delete what no image needs: leftovers of interrupted writes in
//! `tmp/`, and indexes and records whose blob is gone. Never touches a
//! live write (its temp is locked) or a blob.

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
}

impl Garbage {
    /// The name printed for it.
    pub fn name(self) -> &'static str {
        match self {
            Garbage::Temp => "temp",
            Garbage::OrphanIndex => "orphan-index",
            Garbage::OrphanRecord => "orphan-record",
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
    Ok(report)
}
