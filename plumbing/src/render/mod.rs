//! Rendering: an image and all its dependencies laid down as one tree
//! (`manifest` + `rootfs/`), as `render-tree` and `extract` do (DESIGN §5,
//! aci-format §8–11).
//!
//! Three steps, each usable on its own:
//! - [`dependency_list`] resolves every dependency and opens every image,
//!   in the reference's priority order ([`deps`]);
//! - [`file_map`] decides which element supplies each path ([`filemap`]);
//! - [`render`] writes the tree into a fresh temp dir beside the target,
//!   fd-relative and never through a symlink, verifies every blob on a
//!   second thread meanwhile, and renames the tree into place: `plan`
//!   (hard-link groups), `write` (the tree writer), `verify` (blob hashes)
//!   and `publish` (temp dir → rename, and the entry points).
//!
//! [`ensure_cached_tree`] renders into the store's tree cache (`cache`)
//! and [`check_cached_tree`] checks an entry's seal.
//!
//! Every error that can be known from the images (a missing dependency, a
//! cycle, a bad manifest) is found before anything is written; a failure
//! or interrupt later leaves no target and no temp dir.

mod cache;
pub mod deps;
pub mod filemap;
mod plan;
mod publish;
mod verify;
mod write;

use std::io;
use std::path::PathBuf;

use crate::id::{FastDigest, ImageId};
use crate::limits::LimitExceeded;
use crate::quote::quote_path;

pub use cache::{
    check_cached_tree, check_layer, ensure_cached_tree, seal_layer, tree_key, walk_intact_layer,
    EnsuredTree, TreeState,
};
pub use deps::{
    dependency_list, dependency_list_for, DependencyList, ImageSource, ListedImage, SharedImage,
    MAX_DEPTH, MAX_IMAGES,
};
pub use filemap::{file_map, file_map_of, write_file_map, FileMap, Layer, Supplier};
pub use publish::{render, render_list, RenderHook, RenderOptions, RenderReport, RenderStep};

/// Why a render failed. Chains name the path through the dependency
/// graph, top first: `example.com/app -> example.com/base,version=1.0`.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No stored image satisfies a dependency (or the top image is missing).
    #[error("{chain}: not in store")]
    NotInStore {
        /// The chain ending in the missing image.
        chain: String,
    },
    /// A dependency's `imageID` prefix matches several stored images.
    #[error("{chain}: ambiguous image id, candidates:{}", list_ids(.candidates))]
    Ambiguous {
        /// The chain ending in the dependency.
        chain: String,
        /// Every matching id.
        candidates: Vec<ImageId>,
    },
    /// A dependency is the image itself or one of its ancestors.
    #[error("{chain}: dependency cycle")]
    Cycle {
        /// The chain, ending in the repeated image.
        chain: String,
    },
    /// A chain is deeper than the store's `max_dependency_depth`
    /// ([`MAX_DEPTH`] by default).
    #[error("{chain}: maximum dependency depth exceeded (chain deeper than {max} levels)")]
    TooDeep {
        /// The chain at the point it got too deep.
        chain: String,
        /// The limit.
        max: usize,
        /// Names the bound for callers ([`crate::limits::limit_kind`]).
        #[source]
        exceeded: LimitExceeded,
    },
    /// The dependency list would hold more than the store's
    /// `max_dependency_count` elements ([`MAX_IMAGES`] by default).
    #[error("{chain}: maximum dependency count exceeded (more than {max} images in the dependency list)")]
    TooMany {
        /// The chain whose dependency would exceed the limit.
        chain: String,
        /// The limit.
        max: usize,
        /// Names the bound for callers ([`crate::limits::limit_kind`]).
        #[source]
        exceeded: LimitExceeded,
    },
    /// An image of the chain could not be opened.
    #[error("{chain}: {source}")]
    Open {
        /// The chain ending in the image.
        chain: String,
        /// The cause.
        source: Box<crate::store::StoreError>,
    },
    /// An image's manifest does not parse.
    #[error("{chain}: invalid image manifest: {source}")]
    BadManifest {
        /// The chain ending in the image.
        chain: String,
        /// The cause.
        source: Box<crate::manifest::ManifestError>,
    },
    /// A stored blob no longer hashes to its id; nothing was published.
    #[error("{chain}: stored data of {expected} hashes to {found} (blob damaged)")]
    HashMismatch {
        /// The chain ending in the damaged image.
        chain: String,
        /// The id the blob is stored under.
        expected: Box<ImageId>,
        /// What it hashes to.
        found: Box<ImageId>,
    },
    /// The target exists and is not an empty directory.
    #[error("{}: target exists and is not an empty directory", .path.display())]
    TargetNotEmpty {
        /// The target.
        path: PathBuf,
    },
    /// An entry's path has an empty, `.` or `..` component, or a NUL byte
    /// (possible only with a damaged entry index: the archive reader
    /// rejects such names).
    #[error("{}: unsafe path in image {image}", quote_path(.path))]
    UnsafePath {
        /// The image.
        image: Box<ImageId>,
        /// The entry path.
        path: Vec<u8>,
    },
    /// Writing an entry (or reading its data) failed.
    #[error("{}: cannot {op}: {source}", quote_path(.path))]
    Entry {
        /// The entry's archive path.
        path: Vec<u8>,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A filesystem operation on the target or the temp dir failed.
    #[error("{}: cannot {op}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A stored blob no longer matches the BLAKE3 digest its index
    /// recorded at import; nothing was published.
    #[error("{chain}: stored data of {id} no longer matches its digest {expected} (blob damaged; see acido fsck)")]
    DigestMismatch {
        /// The chain ending in the damaged image.
        chain: String,
        /// The image whose blob is damaged.
        id: Box<ImageId>,
        /// The digest recorded at import.
        expected: Box<FastDigest>,
        /// What the blob digests to now.
        found: Box<FastDigest>,
    },
    /// Only stored images can be rendered into the tree cache.
    #[error("{chain}: not a stored image, so its render cannot be cached (import it first)")]
    NotStored {
        /// The chain ending in the image read from a file.
        chain: String,
    },
    /// Reading or changing the store's tree cache failed.
    #[error("tree cache: {source}")]
    Cache {
        /// The cause.
        source: Box<crate::store::StoreError>,
    },
    /// Walking a cached tree to seal or check it failed.
    #[error("tree cache: {source}")]
    CacheWalk {
        /// The cause.
        source: Box<crate::diff::DiffError>,
    },
    /// The interrupt flag was raised; nothing was published.
    #[error("interrupted")]
    Interrupted,
}

fn list_ids(ids: &[ImageId]) -> String {
    ids.iter().map(|id| format!(" {id}")).collect()
}
