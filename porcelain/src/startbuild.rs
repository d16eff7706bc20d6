//! `startbuild`: render an image with its dependencies into a build tree,
//! write a manifest that depends on it, and record a stat snapshot of what
//! was rendered so `build` can skip untouched files (DESIGN §6).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use acido_plumbing::build::Snapshot;
use acido_plumbing::diff::{self, DiffError};
use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::{
    Annotation, Annotations, Dependency, ImageIdRef, ImageManifest, Label, Labels, ManifestError,
};
use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::render::{self, RenderError, RenderReport};
use acido_plumbing::store::{Store, StoreError};

use crate::acidofile::cache;
use crate::extract::render_with_progress;
use crate::progress::Progress;

/// Why a build could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartBuildError {
    /// The image name could not be resolved.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The base image's manifest is not valid.
    #[error("{image}: {source}")]
    Manifest {
        /// The base image.
        image: String,
        /// What is wrong.
        source: ManifestError,
    },
    /// Writing the manifest or creating the directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Walking the rendered tree for the snapshot failed.
    #[error(transparent)]
    Walk(#[from] DiffError),
    /// Saving the snapshot failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `startbuild` did.
#[derive(Debug, Clone)]
pub struct StartBuildReport {
    /// The build tree.
    pub dir: PathBuf,
    /// The base image.
    pub base: ImageId,
    /// How many stored images matched the name (the newest was taken).
    pub matches: usize,
    /// What the render wrote.
    pub render: RenderReport,
    /// How many paths the snapshot recorded.
    pub snapshot_paths: usize,
}

/// The manifest of a new build on top of `base` (stored under `id`):
/// the base's name, labels, app and annotations, and one dependency on the
/// base by image id, name and labels. No whitelist: `build` sets one when
/// something is deleted. A base that is a step-cache entry passes on
/// neither its marker label nor its step annotation: an image built on it
/// is the user's, never an entry that `images` hides and `gc --cache`
/// removes.
pub fn manifest_on_top_of(base: &ImageManifest, id: ImageId) -> ImageManifest {
    let mut manifest = base.clone();
    manifest.path_whitelist.clear();
    let labels: Vec<Label> = base
        .labels
        .iter()
        .filter(|l| l.name.as_str() != cache::KEY_LABEL)
        .cloned()
        .collect();
    // Dropping a label from a checked list cannot make it invalid.
    if let Ok(labels) = Labels::new(labels) {
        manifest.labels = labels;
    }
    let annotations: Vec<Annotation> = base
        .annotations
        .iter()
        .filter(|a| a.name.as_str() != cache::STEP_ANNOTATION)
        .cloned()
        .collect();
    if let Ok(annotations) = Annotations::new(annotations) {
        manifest.annotations = annotations;
    }
    manifest.dependencies = vec![Dependency {
        image_name: base.name.clone(),
        image_id: Some(ImageIdRef::from(id)),
        labels: base.labels.clone(),
        size: None,
    }];
    manifest
}

/// Starts a build from `image` in `dir` (created; it must not exist or be
/// empty). Without `dir` a new directory is made in `temp_parent`.
pub fn startbuild(
    store: &Store,
    image: &str,
    dir: Option<&Path>,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<StartBuildReport, StartBuildError> {
    let resolved = naming::resolve(store, &ImageRef::parse(image, false)?)?;
    let list = render::dependency_list(store, resolved.id)?;
    let map = render::file_map(&list)?;
    let base_manifest = list.images[0].image.manifest.clone();
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => tempfile::Builder::new()
            .prefix("acido-build-")
            .tempdir_in(temp_parent)
            .map_err(|source| StartBuildError::Io {
                path: temp_parent.to_owned(),
                source,
            })?
            .keep(),
    };
    let rendered = render_with_progress(
        image,
        &list,
        &map,
        resolved.matches,
        &dir,
        &progress,
        interrupt,
    );
    let rendered = rendered?;

    let manifest = manifest_on_top_of(&base_manifest, resolved.id);
    let manifest_path = dir.join("manifest");
    let mut text = manifest.to_json_pretty();
    text.push('\n');
    fs::write(&manifest_path, text).map_err(|source| StartBuildError::Io {
        path: manifest_path,
        source,
    })?;
    let tree = diff::walk(&dir.join("rootfs"))?;
    let snapshot = Snapshot::of(&tree);
    store.save_build_state(&dir, &snapshot.encode())?;
    Ok(StartBuildReport {
        dir,
        base: resolved.id,
        matches: resolved.matches,
        render: rendered,
        snapshot_paths: snapshot.len(),
    })
}
