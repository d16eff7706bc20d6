//! `rm`: remove stored images, refusing to break an image that depends on
//! one of them (unless forced).

use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::{Dependency, ImageManifest};
use acido_plumbing::naming::{self, AppRef, ImageRef, NamingError};
use acido_plumbing::store::{ImageRecord, Store, StoreError};

/// Why `rm` removed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RmError {
    /// A name did not resolve to one stored image.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// Other stored images depend on one to remove.
    #[error("{image}: other stored images depend on it:{}; use --force to remove it anyway",
        list(.dependents))]
    HasDependents {
        /// The image that was to be removed.
        image: ImageId,
        /// The stored images whose dependencies resolve to it.
        dependents: Vec<Dependent>,
    },
    /// A stored image's manifest could not be read, so whether it depends
    /// on an image to remove is unknown.
    #[error("{image}: cannot tell whether it depends on the images to remove: {source}; run acido fsck, or use --force")]
    Unchecked {
        /// The unreadable image.
        image: ImageId,
        /// Why it could not be read.
        source: Box<StoreError>,
    },
    /// A cached tree holding an image to remove is used by a build tree
    /// (an overlay's lower dir): removing it would pull the files from
    /// under that build.
    #[error("{image}: its cached tree is used by the build tree {}; end that build first, or use --force", .user.display())]
    TreeInUse {
        /// The image that was to be removed.
        image: ImageId,
        /// A build tree using a cached tree that holds it.
        user: std::path::PathBuf,
    },
    /// Reading or changing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(dependents: &[Dependent]) -> String {
    dependents
        .iter()
        .map(|d| format!(" {} ({})", d.id, d.name))
        .collect()
}

/// A stored image that depends on an image to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// Its id.
    pub id: ImageId,
    /// Its name.
    pub name: String,
}

/// What `rm` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RmReport {
    /// The removed images, in the order named (each once).
    pub removed: Vec<ImageId>,
    /// With `force`: removed images that others still depended on, with
    /// those dependents.
    pub broken: Vec<(ImageId, Vec<Dependent>)>,
}

/// Whether `dep` (a dependency of some stored image) stands for `target`:
/// by its `imageID` prefix when it has one (then name and labels are
/// ignored, aci-format §8), otherwise by name and labels resolving to
/// `target` now (the most recently imported match, as rendering picks).
fn depends_on(store: &Store, dep: &Dependency, target: &ImageId) -> Result<bool, NamingError> {
    if let Some(image_id) = &dep.image_id {
        // An id only the lenient reference accepts names no stored image.
        return Ok(image_id.as_prefix().is_some_and(|p| target.matches(&p)));
    }
    let app = AppRef {
        name: dep.image_name.as_str().to_owned(),
        labels: dep
            .labels
            .iter()
            .map(|l| (l.name.as_str().to_owned(), l.value.clone()))
            .collect(),
    };
    match naming::resolve_app(store, &app) {
        Ok(resolved) => Ok(resolved.id == *target),
        Err(NamingError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// For each of `targets`, the stored images outside `targets` that
/// depend on it (in id order). A stored image whose manifest cannot be
/// read is an error: it might depend on a target.
pub fn dependents(
    store: &Store,
    targets: &[ImageId],
) -> Result<Vec<(ImageId, Vec<Dependent>)>, RmError> {
    let records: Vec<ImageRecord> = store.records()?;
    let mut found: Vec<(ImageId, Vec<Dependent>)> =
        targets.iter().map(|t| (*t, Vec::new())).collect();
    for record in records.iter().filter(|r| !targets.contains(&r.id)) {
        let unchecked = |source| RmError::Unchecked {
            image: record.id,
            source: Box::new(source),
        };
        let image = store.open(&record.id).map_err(unchecked)?;
        let manifest = ImageManifest::from_slice(image.manifest_bytes()).map_err(|source| {
            unchecked(StoreError::Manifest {
                input: record.id.to_string(),
                source,
            })
        })?;
        for (target, users) in &mut found {
            for dep in &manifest.dependencies {
                if depends_on(store, dep, target)? {
                    users.push(Dependent {
                        id: record.id,
                        name: record.name.clone(),
                    });
                    break;
                }
            }
        }
    }
    Ok(found)
}

/// Removes the images `names` (ids, prefixes or app strings). All names
/// are resolved and all dependents checked before anything is removed, so
/// a refusal removes nothing. Each image goes with the cached trees that
/// hold it, then record, index and blob, under the store lock
/// ([`Store::remove`]); a cached tree a build tree uses is refused
/// unless forced.
pub fn rm(store: &Store, names: &[String], force: bool) -> Result<RmReport, RmError> {
    let mut targets = Vec::new();
    for name in names {
        let id = naming::resolve(store, &ImageRef::parse(name, false)?)?.id;
        if !targets.contains(&id) {
            targets.push(id);
        }
    }
    let mut report = RmReport::default();
    if !force {
        for info in store.tree_inventory()?.trees {
            let held = targets.iter().find(|id| info.tree.key().contains(id));
            if let (Some(image), Some(user)) = (held, info.live_users.first()) {
                return Err(RmError::TreeInUse {
                    image: *image,
                    user: user.clone(),
                });
            }
        }
        for (image, users) in dependents(store, &targets)? {
            if !users.is_empty() {
                return Err(RmError::HasDependents {
                    image,
                    dependents: users,
                });
            }
        }
    } else {
        // Best effort: an unreadable image cannot be asked, and --force
        // is the way past it.
        if let Ok(found) = dependents(store, &targets) {
            report.broken = found.into_iter().filter(|(_, u)| !u.is_empty()).collect();
        }
    }
    for id in targets {
        store.remove(&id)?;
        report.removed.push(id);
    }
    Ok(report)
}
