//! `rm`: remove stored images, refusing to break an image that depends on
//! one of them (unless forced).

use acido_plumbing::id::ImageId;
use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::store::{Store, StoreError};

use crate::dependency_graph::DependencyGraph;

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
    /// A step cache entry to remove has a layer that a build tree's
    /// overlay stacks: removing it would pull the files from under that
    /// build.
    #[error("{image}: its step layer is stacked by the build tree {}; end that build first, or use --force", .user.display())]
    LayerInUse {
        /// The entry that was to be removed.
        image: ImageId,
        /// A build tree stacking its layer.
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

/// For each of `targets`, the stored images outside `targets` that
/// depend on it (in store order).
fn dependents(graph: &DependencyGraph, targets: &[ImageId]) -> Vec<(ImageId, Vec<Dependent>)> {
    targets
        .iter()
        .map(|target| {
            let users = graph
                .dependents_of(target)
                .into_iter()
                .filter(|r| !targets.contains(&r.id))
                .map(|r| Dependent {
                    id: r.id,
                    name: r.name.clone(),
                })
                .collect();
            (*target, users)
        })
        .collect()
}

/// Adds to `targets` the step cache entries that depend on one of them
/// (and so on): a cache entry is never a reason to keep an image, and is
/// useless without what it depends on.
fn add_cache_dependents(graph: &DependencyGraph, targets: &mut Vec<ImageId>) {
    let mut at = 0;
    while let Some(id) = targets.get(at).copied() {
        for dependent in graph.dependents_of(&id) {
            if crate::acidofile::cache::is_entry(dependent) && !targets.contains(&dependent.id) {
                targets.push(dependent.id);
            }
        }
        at += 1;
    }
}

/// Removes the images `names` (ids, prefixes or app strings), with the
/// step cache entries that depend on them. All names are resolved and all
/// dependents checked before anything is removed, so a refusal removes
/// nothing. Each image goes with the cached trees that hold it, then
/// record, index and blob, under the store lock ([`Store::remove`]); a
/// cached tree a build tree uses, or an entry whose step layer a build
/// tree stacks, is refused unless forced.
pub fn rm(store: &Store, names: &[String], force: bool) -> Result<RmReport, RmError> {
    let mut targets = Vec::new();
    for name in names {
        let id = naming::resolve(store, &ImageRef::parse(name, false)?)?.id;
        if !targets.contains(&id) {
            targets.push(id);
        }
    }
    let mut graph = DependencyGraph::read(store)?;
    add_cache_dependents(&graph, &mut targets);
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
        for (_, state) in store.overlay_states()? {
            let Some(state) = state else { continue };
            let live = std::fs::symlink_metadata(&state.tree).is_ok_and(|m| m.is_dir());
            let stacked = state
                .layers
                .iter()
                .find_map(|l| targets.iter().find(|id| id.to_string() == l.id));
            if let (true, Some(image)) = (live, stacked) {
                return Err(RmError::LayerInUse {
                    image: *image,
                    user: state.tree.clone(),
                });
            }
        }
        // An image whose manifest cannot be read might depend on a target;
        // --force is the way past it.
        let unchecked = graph
            .unreadable()
            .iter()
            .map(|(id, _)| *id)
            .find(|id| !targets.contains(id));
        if let Some((image, Some(source))) = unchecked.map(|id| (id, graph.take_unreadable(&id))) {
            return Err(RmError::Unchecked {
                image,
                source: Box::new(source),
            });
        }
        for (image, users) in dependents(&graph, &targets) {
            if !users.is_empty() {
                return Err(RmError::HasDependents {
                    image,
                    dependents: users,
                });
            }
        }
    } else {
        report.broken = dependents(&graph, &targets)
            .into_iter()
            .filter(|(_, u)| !u.is_empty())
            .collect();
    }
    for id in targets {
        store.remove(&id)?;
        report.removed.push(id);
    }
    Ok(report)
}
