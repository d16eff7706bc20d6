//! Overlay build trees (DESIGN §13): `startbuild --overlay` mounts
//! `DIR/rootfs` as an overlayfs whose lower directory is the rendering of
//! the base image and whose upper and work directories live in the store's
//! build state, so starting a build writes nothing of the tree and `build`
//! reads only what changed; `startbuild --resume` mounts it again (after a
//! reboot); `endbuild` takes it down.
//!
//! Order of the steps, so that a killed `startbuild` never leaves a mount
//! that no state describes: the state (`state.json`, `upper/`, `work/`) is
//! complete before the mount, and the mount is the last step.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use acido_plumbing::build::mount::{self, MountError, OverlayPaths};
use acido_plumbing::build::overlay::copy_root_attrs;
use acido_plumbing::build::BuildError;
use acido_plumbing::diff::Tree;
use acido_plumbing::id::ImageId;
use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::render::{self, RenderError, RenderOptions};
use acido_plumbing::store::{
    image_list, Layer, OverlayDirs, OverlayState, StateLayer, Store, StoreError, TreeKey,
    OVERLAY_STATE_VERSION,
};

use crate::extract::data_bytes;
use crate::progress::Progress;
use crate::startbuild::manifest_on_top_of;

/// Why an overlay build tree could not be started, resumed or ended.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The image name could not be resolved.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// Rendering the lower directory failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Mounting, checking or unmounting failed, or overlays are not
    /// available here.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// Preparing the upper directory failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The build state could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Creating the tree or writing its manifest failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The tree directory exists and is not empty.
    #[error("{}: build tree directory exists and is not empty", path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// `--resume` or `endbuild` on a directory that is no overlay build
    /// tree.
    #[error("{}: not an overlay build tree (no overlay state in the store)", path.display())]
    NoState {
        /// The directory.
        path: PathBuf,
    },
    /// `endbuild` on a directory that has no build state at all.
    #[error("{}: not a build tree (no build state in the store)", path.display())]
    NotABuild {
        /// The directory.
        path: PathBuf,
    },
    /// The lower directory an overlay tree was started on is gone.
    #[error("{}: the lower directory of this build tree is gone ({}); end it with 'acido endbuild' and start again", tree.display(), lower.display())]
    LowerGone {
        /// The tree.
        tree: PathBuf,
        /// The missing lower directory.
        lower: PathBuf,
    },
}

/// What `startbuild --overlay` or `--resume` did.
#[derive(Debug, Clone)]
pub struct OverlayReport {
    /// The build tree.
    pub dir: PathBuf,
    /// The base image.
    pub base: ImageId,
    /// How many stored images matched the name (the newest was taken).
    pub matches: usize,
    /// Whether the lower directory had to be rendered (false: reused).
    pub rendered: bool,
    /// With `--resume`: whether the overlay was still mounted (nothing
    /// done).
    pub was_mounted: bool,
}

/// The cached rendering of `list` (the store's tree cache, rendered into
/// it first when it has none) that an overlay's lower directory is, with
/// `user` recorded as using it so `gc` keeps it; returns its `rootfs` and
/// whether it had to be rendered.
fn lower_tree(
    store: &Store,
    user: &Path,
    list: &render::DependencyList,
    image: &str,
    matches: usize,
    progress: &Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<(PathBuf, bool), OverlayError> {
    // An entry the cache holds is used as it is: an overlay never writes
    // to its lower directory, so the tree is not walked to check its seal
    // again (that walk would make every start cost O(tree); `fsck` checks
    // seals). Only a missing entry is rendered, sealed and checked.
    if let Some(tree) = store.use_cached_tree(&render::tree_key(list), user)? {
        return Ok((tree.rootfs(), false));
    }
    let map = render::file_map(list)?;
    if matches > 1 {
        progress.note(&format!(
            "{image}: {matches} images match, using the most recently imported {}",
            list.images[0].id
        ));
    }
    progress.begin(image, Some(data_bytes(list, &map)));
    let sink = Arc::clone(progress);
    let opts = RenderOptions {
        verify: true,
        progress: Some(Arc::new(move |n| sink.advance(n))),
        hook: crate::test_hooks::render_pause_hook(),
    };
    let ensured = render::ensure_cached_tree(store, list, &map, Some(user), &opts, interrupt);
    progress.end();
    let ensured = ensured?;
    Ok((ensured.tree.rootfs(), ensured.rendered.is_some()))
}

/// Starts an overlay build of `image` in `dir` (created; it must not exist
/// or be empty; without `dir` a new directory in `temp_parent`).
pub fn startbuild_overlay(
    store: &Store,
    image: &str,
    dir: Option<&Path>,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<OverlayReport, OverlayError> {
    start(
        store,
        image,
        Vec::new(),
        false,
        dir,
        temp_parent,
        progress,
        interrupt,
    )
}

/// [`startbuild_overlay`] for the steps of an Acidofile build, in `dir`:
/// the overlay is mounted `volatile` (see `OverlayPaths`), so neither the
/// steps' syncs nor unmounting it to stack a layer syncs the store's file
/// system; the build syncs each layer it keeps itself.
pub(crate) fn startbuild_steps(
    store: &Store,
    image: &str,
    dir: &Path,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<OverlayReport, OverlayError> {
    start(
        store,
        image,
        Vec::new(),
        true,
        Some(dir),
        temp_parent,
        progress,
        interrupt,
    )
}

/// Starts an overlay build in `dir` whose lower directory is the cached
/// render of `image` with the step layers `layers` (top first, see
/// `acido_plumbing::store::Layer`) stacked over it: an Acidofile build
/// starting from a cached step, whose layers (and the render) are its
/// whole chain, so nothing of the steps is rendered. Mounted `volatile`
/// as [`startbuild_steps`]. Fails with an [`OverlayError::Mount`] when the
/// kernel cannot mount the stack (more layers than it stacks); nothing is
/// left then.
pub(crate) fn startbuild_stack(
    store: &Store,
    image: &ImageId,
    layers: Vec<StateLayer>,
    dir: &Path,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<OverlayReport, OverlayError> {
    start(
        store,
        &image.to_string(),
        layers,
        true,
        Some(dir),
        temp_parent,
        progress,
        interrupt,
    )
}

#[allow(clippy::too_many_arguments)]
fn start(
    store: &Store,
    image: &str,
    layers: Vec<StateLayer>,
    volatile: bool,
    dir: Option<&Path>,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<OverlayReport, OverlayError> {
    // Before anything is created: a clear "why not" and nothing to undo.
    mount::check_support()?;
    let resolved = naming::resolve(store, &ImageRef::parse(image, false)?)?;
    let list = render::dependency_list(store, resolved.id)?;
    let base_manifest = list.images[0].image.manifest.clone();
    let (dir, created) = make_tree_dir(dir, temp_parent)?;
    let mut cleanup = Cleanup {
        store,
        dir: dir.clone(),
        key: None,
        created,
        armed: true,
    };
    // A state left by an earlier tree at this path (removed by hand while
    // unmounted) describes nothing mounted: the directory was empty.
    store.remove_build_state(&dir)?;
    let ids: Vec<ImageId> = list.images.iter().map(|l| l.id).collect();
    let canonical = fs::canonicalize(&dir).map_err(io_err(&dir))?;
    let mut state = OverlayState {
        format_version: OVERLAY_STATE_VERSION,
        tree: canonical,
        lower: PathBuf::new(),
        images: image_list(&ids),
        layers,
        volatile,
    };
    let dirs = store.create_overlay_state(&dir, &state)?;
    cleanup.key = tree_key_of(&state);
    // The tree's own files first, so a start killed from here on leaves a
    // tree that `build` reports as unmounted and `endbuild` removes.
    let manifest = manifest_on_top_of(&base_manifest, resolved.id);
    let manifest_path = dir.join("manifest");
    let mut text = manifest.to_json_pretty();
    text.push('\n');
    fs::write(&manifest_path, text).map_err(io_err(&manifest_path))?;
    let rootfs = dir.join("rootfs");
    fs::create_dir(&rootfs).map_err(io_err(&rootfs))?;
    let (lower, rendered) = lower_tree(
        store,
        &dir,
        &list,
        image,
        resolved.matches,
        &progress,
        interrupt,
    )?;
    state.lower = lower.clone();
    store.save_overlay_state(&dirs, &state)?;
    // The mounted root shows the topmost layer's root.
    let top = state.layers.first().map_or(lower, |l| l.upper.clone());
    copy_root_attrs(&top, &dirs.upper)?;

    crate::test_hooks::overlay_pause(crate::test_hooks::OverlayStep::BeforeMount);
    mount_state(&dirs, &state, &rootfs)?;
    cleanup.armed = false;
    Ok(OverlayReport {
        dir,
        base: resolved.id,
        matches: resolved.matches,
        rendered,
        was_mounted: false,
    })
}

/// The step layer of the cache entry `id`, when it is stored and still
/// what was sealed, with the walk of its upper directory that found it
/// so (see `build::overlay::LayerWalks`). A layer whose stamps changed
/// since (written through, half removed) would put what is not the
/// entry's into a tree: as a cached tree that fails its check, it is
/// removed, and `None` returned.
pub(crate) fn intact_layer(
    store: &Store,
    id: &ImageId,
) -> Result<Option<(Layer, Tree)>, OverlayError> {
    let Some(layer) = store.layer(id)? else {
        return Ok(None);
    };
    if let Some(walk) = render::walk_intact_layer(&layer)? {
        return Ok(Some((layer, walk)));
    }
    store.remove_layer_entry(layer.entry())?;
    Ok(None)
}

/// Makes the upper directory of the overlay build tree `dir` the layer of
/// the cache entry `id` (just stored from this tree): the overlay is
/// unmounted, the upper directory moved into the store as the layer
/// (sealed, synced, renamed into place), and the overlay mounted again
/// with the layer on top of its lower stack and a fresh upper directory,
/// so the next step's upper directory is its diff against `id` alone.
/// Returns the stacked layer, with the walk its seal was taken from when
/// the layer is ours (not one another build of the same step stored
/// first); `None` (nothing done) when one more layer could not be
/// mounted (see `mount::options_fit`); the tree then goes on as it is.
pub(crate) fn stack_layer(
    store: &Store,
    dir: &Path,
    id: &ImageId,
) -> Result<Option<(Layer, Option<Tree>)>, OverlayError> {
    let (dirs, mut state) =
        store
            .load_overlay_state(dir)?
            .ok_or_else(|| OverlayError::NoState {
                path: dir.to_owned(),
            })?;
    let rootfs = state.tree.join("rootfs");
    let layers_dir = store.layers_dir();
    fs::create_dir_all(&layers_dir).map_err(io_err(&layers_dir))?;
    let canonical = fs::canonicalize(&layers_dir).map_err(io_err(&layers_dir))?;
    // ':' + layers/<64 hex>/upper
    let extra = canonical.as_os_str().len() + 1 + 64 + "/upper".len() + 1;
    let current = state.layer_dirs();
    let paths = OverlayPaths {
        lower: &state.lower,
        layers: &current,
        upper: &dirs.upper,
        work: &dirs.work,
        volatile: state.volatile,
    };
    if !mount::options_fit(paths, &rootfs, extra) {
        return Ok(None);
    }
    mount::unmount(&rootfs)?;
    // The work directory starts afresh, and before the seal: overlayfs
    // makes whiteouts as hard links of one whiteout inode kept in it, so
    // removing it later (or the next step's whiteouts) would change the
    // link count of this layer's whiteouts and break its seal. A volatile
    // overlay also leaves work/incompat/volatile, which stops the next
    // mount.
    fs::remove_dir_all(&dirs.work).map_err(io_err(&dirs.work))?;
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dirs.work)
            .map_err(io_err(&dirs.work))?;
    }
    // A layer already stored under this entry's name (another build of
    // the same step) is used instead of ours: only if it is intact.
    intact_layer(store, id)?;
    let staging = store.stage_layer(id)?;
    fs::rename(&dirs.upper, staging.upper_path()).map_err(io_err(&dirs.upper))?;
    let walk = render::seal_layer(&staging)?;
    crate::test_hooks::overlay_pause(crate::test_hooks::OverlayStep::LayerBeforePublish);
    let (layer, ours) = store.publish_layer(staging)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dirs.upper)
            .map_err(io_err(&dirs.upper))?;
    }
    copy_root_attrs(&layer.upper(), &dirs.upper)?;
    state.layers.insert(
        0,
        StateLayer {
            id: id.to_string(),
            upper: layer.upper(),
        },
    );
    store.save_overlay_state(&dirs, &state)?;
    mount_state(&dirs, &state, &rootfs)?;
    Ok(Some((layer, ours.then_some(walk))))
}

/// Mounts the overlay `state` describes on `rootfs`.
fn mount_state(
    dirs: &OverlayDirs,
    state: &OverlayState,
    rootfs: &Path,
) -> Result<(), OverlayError> {
    mount::mount(
        OverlayPaths {
            lower: &state.lower,
            layers: &state.layer_dirs(),
            upper: &dirs.upper,
            work: &dirs.work,
            volatile: state.volatile,
        },
        rootfs,
    )?;
    Ok(())
}

/// Mounts the overlay of the build tree `dir` again (after a reboot, or
/// after an `umount`); a tree still mounted is left alone.
pub fn resume(store: &Store, dir: &Path) -> Result<OverlayReport, OverlayError> {
    mount::check_support()?;
    let (dirs, state) = store
        .load_overlay_state(dir)?
        .ok_or_else(|| OverlayError::NoState {
            path: dir.to_owned(),
        })?;
    let base = state
        .images
        .first()
        .and_then(|id| id.parse::<ImageId>().ok())
        .ok_or_else(|| StoreError::CorruptRecord {
            path: dirs.state.clone(),
            reason: "no base image id".to_owned(),
        })?;
    let rootfs = state.tree.join("rootfs");
    let report = |was_mounted| OverlayReport {
        dir: dir.to_owned(),
        base,
        matches: 1,
        rendered: false,
        was_mounted,
    };
    if mount::is_mounted(&rootfs, &dirs.upper)? {
        return Ok(report(true));
    }
    let lowers = std::iter::once(&state.lower).chain(state.layers.iter().map(|l| &l.upper));
    for lower in lowers {
        if !lower.is_dir() {
            return Err(OverlayError::LowerGone {
                tree: dir.to_owned(),
                lower: lower.clone(),
            });
        }
    }
    mount_state(&dirs, &state, &rootfs)?;
    Ok(report(false))
}

/// What `endbuild` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndReport {
    /// Whether an overlay was unmounted.
    pub unmounted: bool,
    /// Whether the tree was an overlay tree (then its directory, whose
    /// contents lived in the removed state, is removed too).
    pub overlay: bool,
}

/// Ends the build in `dir`: unmounts its overlay, removes the build state
/// from the store and, for an overlay tree (whose files lived in that
/// state), the emptied tree directory. A plain tree is left as it is;
/// only its stat snapshot goes.
pub fn endbuild(store: &Store, dir: &Path) -> Result<EndReport, OverlayError> {
    let overlay = store.load_overlay_state(dir)?;
    let Some((dirs, state)) = overlay else {
        if store.load_build_state(dir)?.is_none() {
            return Err(OverlayError::NotABuild {
                path: dir.to_owned(),
            });
        }
        store.remove_build_state(dir)?;
        return Ok(EndReport {
            unmounted: false,
            overlay: false,
        });
    };
    let rootfs = state.tree.join("rootfs");
    let mut unmounted = false;
    if mount::is_mounted(&rootfs, &dirs.upper)? {
        mount::unmount(&rootfs)?;
        unmounted = true;
    }
    // The state first: its key is the tree's canonical path, which is
    // gone with the tree.
    store.remove_build_state(dir)?;
    if let Some(key) = tree_key_of(&state) {
        store.release_cached_tree(&key, &state.tree)?;
    }
    remove_tree(&state.tree)?;
    Ok(EndReport {
        unmounted,
        overlay: true,
    })
}

/// Removes an unmounted overlay tree's directory: its `manifest`, the
/// empty mount point `rootfs` and the directory itself when nothing else
/// is in it. Nothing else is touched, so files a user put beside them
/// stay.
fn remove_tree(tree: &Path) -> Result<(), OverlayError> {
    let manifest = tree.join("manifest");
    match fs::remove_file(&manifest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OverlayError::Io {
                path: manifest,
                source,
            })
        }
    }
    let rootfs = tree.join("rootfs");
    // Only an empty mount point goes; remove_dir refuses anything else.
    match fs::remove_dir(&rootfs) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OverlayError::Io {
                path: rootfs,
                source,
            })
        }
    }
    // A directory with other files in it stays.
    let _ = fs::remove_dir(tree);
    Ok(())
}

/// The tree-cache key of the lower directory `state` names.
fn tree_key_of(state: &OverlayState) -> Option<TreeKey> {
    let ids: Option<Vec<ImageId>> = state.images.iter().map(|id| id.parse().ok()).collect();
    ids.filter(|ids| !ids.is_empty()).map(TreeKey::new)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OverlayError + '_ {
    move |source| OverlayError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates the tree directory (it must not exist or be empty); returns it
/// and whether it was created here.
fn make_tree_dir(dir: Option<&Path>, temp_parent: &Path) -> Result<(PathBuf, bool), OverlayError> {
    let Some(dir) = dir else {
        let made = tempfile::Builder::new()
            .prefix("acido-build-")
            .tempdir_in(temp_parent)
            .map_err(io_err(temp_parent))?
            .keep();
        return Ok((made, true));
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(dir).map_err(io_err(dir))?;
            Ok((dir.to_owned(), true))
        }
        Err(source) => Err(OverlayError::Io {
            path: dir.to_owned(),
            source,
        }),
        Ok(meta) if meta.is_dir() => {
            let mut entries = fs::read_dir(dir).map_err(io_err(dir))?;
            if entries.next().is_some() {
                return Err(OverlayError::NotEmpty {
                    path: dir.to_owned(),
                });
            }
            Ok((dir.to_owned(), false))
        }
        Ok(_) => Err(OverlayError::NotEmpty {
            path: dir.to_owned(),
        }),
    }
}

/// Undoes a failed `startbuild --overlay`: the state in the store, the
/// files written into the tree directory, and the directory itself when
/// it was created here. Nothing is mounted yet when it runs (the mount is
/// the last step, and a failed check unmounts).
struct Cleanup<'a> {
    store: &'a Store,
    dir: PathBuf,
    /// The cached tree this start recorded itself as a user of.
    key: Option<TreeKey>,
    created: bool,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Best effort: the error that got us here is the one to report.
        if let Some(key) = &self.key {
            let _ = self.store.release_cached_tree(key, &self.dir);
        }
        let _ = self.store.remove_build_state(&self.dir);
        let _ = fs::remove_file(self.dir.join("manifest"));
        let _ = fs::remove_dir(self.dir.join("rootfs"));
        if self.created {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}
