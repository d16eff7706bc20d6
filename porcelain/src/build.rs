//! `build`: pack a build tree into a new image that holds only what
//! differs from the rendering of its manifest's dependencies (DESIGN §6).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use acido_plumbing::build::mount::{self, MountError};
use acido_plumbing::build::overlay::LayerWalks;
use acido_plumbing::build::{self, BuildError, Selection, Snapshot};
use acido_plumbing::compression::Compression;
use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::{ImageManifest, ManifestError};
use acido_plumbing::pack::{self, PackError, PackOptions, PackReport};
use acido_plumbing::store::{ImageRecord, Store, StoreError};

use crate::progress::Progress;

/// Why a build failed. Nothing is left at the output path.
#[derive(Debug, thiserror::Error)]
pub enum BuildCmdError {
    /// The tree's manifest is missing or unreadable.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The tree's manifest is invalid.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        source: ManifestError,
    },
    /// Comparing with the dependencies failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Packing failed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The output exists and `--overwrite` was not given.
    #[error("{}: output file exists (use --overwrite)", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// The output file would be written inside the build tree.
    #[error("{}: the output must not be inside the build tree", path.display())]
    OutputInsideTree {
        /// The output path.
        path: PathBuf,
    },
    /// Neither an output file nor `--import` was asked for.
    #[error("build: name an output file or use --import")]
    NoOutput,
    /// Importing the result failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tree is an overlay build tree whose overlay is not mounted (a
    /// reboot, an `umount`): its `rootfs` is an empty mount point.
    #[error("{}: the overlay of this build tree is not mounted (after a reboot?); mount it again with 'acido startbuild --resume {}' or end it with 'acido endbuild {}'", rootfs.display(), dir.display(), dir.display())]
    NotMounted {
        /// The tree.
        dir: PathBuf,
        /// Its mount point.
        rootfs: PathBuf,
    },
    /// Checking the overlay mount failed.
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where to write the ACI (`None`: only import it).
    pub output: Option<PathBuf>,
    /// Replace an existing output file.
    pub overwrite: bool,
    /// Also store the new image.
    pub import: bool,
    /// Compression of the output.
    pub pack: PackOptions,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// What was packed.
    pub pack: PackReport,
    /// The changes against the dependencies (`None` for an image without
    /// dependencies, which is packed whole).
    pub selection: Option<Selection>,
    /// Whether a complete `pathWhitelist` was written (something was deleted).
    pub whitelisted: bool,
    /// Whether the stat snapshot from `startbuild` was used.
    pub used_snapshot: bool,
    /// Whether only the upper directory of an overlay build tree was read.
    pub used_overlay: bool,
    /// The stored image, with `--import`.
    pub imported: Option<ImageRecord>,
    /// Other stored images with the new image's name and exactly its
    /// labels, found before the import: a name lookup cannot tell them
    /// apart and picks the most recently imported (DESIGN §3), so the
    /// caller should warn.
    pub same_name: Vec<ImageRecord>,
}

/// The layers of a stack read as a diff, and each path's topmost layer
/// (an index in `dirs`): where the packer reads the path.
struct StackReads {
    dirs: Vec<PathBuf>,
    topmost: HashMap<Vec<u8>, usize>,
}

/// What of an overlay build tree is read as its diff.
enum View<'a> {
    /// Its upper directory.
    Upper(&'a Path),
    /// Step layers and the upper directory (bottom first), read together.
    Stack(Vec<PathBuf>),
}

/// Builds the layout directory `dir` into a new image.
pub fn build(
    store: &Store,
    dir: &Path,
    opts: &BuildOptions,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildCmdError> {
    build_with(
        store,
        dir,
        opts,
        scratch,
        progress,
        TreeKnowledge::default(),
    )
}

/// What the maker of an overlay build tree (an Acidofile build) knows of
/// it, so that [`build_with`] need not find it out again.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TreeKnowledge<'a> {
    /// The stat snapshot the upper directory had at a moment the whole
    /// tree was exactly the rendering of the manifest's dependencies: the
    /// upper directory is then read as the diff against that rendering,
    /// and its paths unchanged since the snapshot are not compared. The
    /// Acidofile's steps build on one overlay this way, each step against
    /// the image of the step before.
    pub(crate) since: Option<&'a Snapshot>,
    /// Walks of the tree's stacked step layers, taken when their seals
    /// were checked or made (see `build::overlay::LayerWalks`).
    pub(crate) layer_walks: Option<&'a LayerWalks>,
    /// The image is a step cache entry: nobody looks it up by its name,
    /// so the stored images sharing that name are not looked for (a scan
    /// of every record, per step).
    pub(crate) cache_entry: bool,
    /// A reading of the store's records the maker took before the build,
    /// for the check for other images of the new image's name (read anew
    /// without it).
    pub(crate) records: Option<&'a [ImageRecord]>,
}

/// [`build`] of an overlay build tree with what its maker knows of it.
pub(crate) fn build_with(
    store: &Store,
    dir: &Path,
    opts: &BuildOptions,
    scratch: &Path,
    progress: &dyn Progress,
    known: TreeKnowledge<'_>,
) -> Result<BuildReport, BuildCmdError> {
    let since = known.since;
    if opts.output.is_none() && !opts.import {
        return Err(BuildCmdError::NoOutput);
    }
    if let Some(out) = &opts.output {
        // Checked before the comparison too, so a long build is not wasted.
        if !opts.overwrite && fs::symlink_metadata(out).is_ok() {
            return Err(BuildCmdError::OutputExists { path: out.clone() });
        }
        // An output inside the tree would show up as an added file in the
        // next build of the same tree.
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let (Ok(parent), Ok(tree)) = (fs::canonicalize(parent), fs::canonicalize(dir)) {
            if parent.starts_with(&tree) {
                return Err(BuildCmdError::OutputInsideTree { path: out.clone() });
            }
        }
    }
    let manifest_path = dir.join("manifest");
    let manifest_bytes = fs::read(&manifest_path).map_err(|source| BuildCmdError::Io {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest =
        ImageManifest::from_slice(&manifest_bytes).map_err(|source| BuildCmdError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
    let rootfs = dir.join("rootfs");

    let overlay = store.load_overlay_state(dir)?;
    if let Some((dirs, state)) = &overlay {
        let mounted_on = state.tree.join("rootfs");
        if !mount::is_mounted(&mounted_on, &dirs.upper)? {
            return Err(BuildCmdError::NotMounted {
                dir: dir.to_owned(),
                rootfs,
            });
        }
    }
    // On a stack of layers: the layer directories and each path's layer.
    let mut layer_reads: Option<StackReads> = None;
    let (packed_manifest, selection, whitelisted, used_snapshot, used_overlay) =
        if manifest.dependencies.is_empty() {
            (manifest_bytes, None, false, false, false)
        } else {
            progress.note("comparing the tree with its dependencies");
            let rendering = build::dependency_rendering(store, &manifest, &rootfs, scratch)?;
            // The upper directory is the diff only against the rendering
            // the lower stack holds; an Acidofile tree's stack of step
            // layers is also the diff against the rendering a lower part
            // of the stack holds (the layers above it read with the upper
            // directory). A manifest whose dependencies match no part of
            // the stack is compared in full through the mount.
            let view = overlay.as_ref().and_then(|(dirs, state)| {
                if since.is_some() {
                    return Some(View::Upper(&dirs.upper));
                }
                let deps: Vec<String> = rendering.list.images[1..]
                    .iter()
                    .map(|l| l.id.to_string())
                    .collect();
                let stack = state.stack_images();
                let above = (0..=state.layers.len()).find(|&j| stack[j..] == deps[..])?;
                if above == 0 {
                    return Some(View::Upper(&dirs.upper));
                }
                // Bottom first, the upper directory last.
                let mut layers: Vec<PathBuf> = state.layers[..above]
                    .iter()
                    .rev()
                    .map(|l| l.upper.clone())
                    .collect();
                layers.push(dirs.upper.clone());
                Some(View::Stack(layers))
            });
            let snapshot = match (&overlay, &view) {
                (None, _) => store
                    .load_build_state(dir)?
                    .and_then(|bytes| Snapshot::decode(&bytes).ok()),
                _ => None,
            };
            // The tree after the edits: a diff that only adds leaves it
            // out, as nothing then needs it.
            let (changes, tree) = match &view {
                Some(View::Upper(upper)) => {
                    let diff = build::overlay::diff_upper(&rendering, upper, since)?;
                    (diff.changes, diff.tree)
                }
                Some(View::Stack(layers)) => {
                    let no_walks = LayerWalks::new();
                    let walks = known.layer_walks.unwrap_or(&no_walks);
                    let diff = build::overlay::diff_layers(&rendering, layers, walks, &rootfs)?;
                    // The packer reads the layers' paths from the layers.
                    layer_reads = Some(StackReads {
                        dirs: layers.clone(),
                        topmost: diff.topmost,
                    });
                    (diff.changes, Some(diff.tree))
                }
                None => {
                    let (changes, tree) =
                        build::diff_against_rendering(&rendering, &rootfs, snapshot.as_ref())?;
                    (changes, Some(tree))
                }
            };
            let selection = build::select(&changes);
            debug_assert!(tree.is_some() || selection.deleted == 0);
            let (bytes, whitelisted) = match &tree {
                Some(tree) if selection.deleted > 0 => {
                    let mut with_list = manifest.clone();
                    with_list.path_whitelist = build::whitelist_of(tree)?;
                    (with_list.to_json().into_bytes(), true)
                }
                // Without a deletion no whitelist is needed (and a diff
                // with deletions always carries its tree).
                _ => (manifest_bytes, false),
            };
            (
                bytes,
                Some(selection),
                whitelisted,
                snapshot.is_some(),
                view.is_some(),
            )
        };

    let select = |path: &[u8]| match &selection {
        Some(sel) => sel.paths.contains(path),
        None => true,
    };
    // On an overlay tree only the changed paths are visited (the walk of
    // the whole mounted tree would cost O(tree)); the archive is the same.
    let listed: Option<Vec<Vec<u8>>> = match (&selection, used_overlay) {
        (Some(sel), true) => Some(sel.paths.iter().cloned().collect()),
        _ => None,
    };
    let source = || match &listed {
        Some(paths) => pack::Source::Listed {
            manifest: &packed_manifest,
            rootfs: &rootfs,
            paths,
            layers: layer_reads.as_ref().map(|reads| pack::LayerReads {
                dirs: &reads.dirs,
                topmost: &reads.topmost,
            }),
        },
        None => pack::Source::Selected {
            manifest: &packed_manifest,
            rootfs: &rootfs,
            select: &select,
        },
    };
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildCmdError::Io { path, source }
    };
    progress.note("packing");
    progress.begin("packing", None);
    let name = dir.display().to_string();
    let others_named = |id: &ImageId| {
        if known.cache_entry {
            Vec::new()
        } else {
            same_name_and_labels(store, known.records, &manifest, id)
        }
    };
    let (report, imported, same_name) = match &opts.output {
        Some(out) => {
            let sink = pack::Sink::File {
                path: out,
                overwrite: opts.overwrite,
            };
            let report = pack::pack(source(), sink, &opts.pack);
            progress.end();
            let report = report?;
            let same_name = others_named(&report.id);
            let imported = if opts.import {
                let file = File::open(out).map_err(io_err(out))?;
                Some(store.import(file, &name)?.record)
            } else {
                None
            };
            (report, imported, same_name)
        }
        None => {
            // The store keeps the tar uncompressed: compressing it only to
            // decompress it again would be wasted time.
            let uncompressed = PackOptions {
                compression: Compression::None,
                ..opts.pack.clone()
            };
            let packed = pack_into_store(store, source(), &uncompressed, &name);
            progress.end();
            let (report, record) = packed?;
            let same_name = others_named(&report.id);
            (report, Some(record), same_name)
        }
    };
    Ok(BuildReport {
        pack: report,
        selection,
        whitelisted,
        used_snapshot,
        used_overlay,
        imported,
        same_name,
    })
}

/// Packs `source` straight into a staged import (`Store::stage`): the
/// archive's bytes are written once, into the store's locked temp, and
/// hashed, parsed and checked there as the packer makes them. A pack that
/// fails or is interrupted drops the staging, so nothing is stored and no
/// temp is left.
fn pack_into_store(
    store: &Store,
    source: pack::Source<'_>,
    opts: &PackOptions,
    name: &str,
) -> Result<(PackReport, ImageRecord), BuildCmdError> {
    let mut staging = store.stage(name)?;
    // The staging hashes what it gets: the packer need not hash it too.
    let counts = match pack::pack_unhashed(source, &mut staging, opts) {
        Ok(counts) => counts,
        // When the staging refused the bytes (its checks, the store's
        // disk), its own error says why, as an import of them would; an
        // interrupt it saw first is the pack's interrupt.
        Err(e) => {
            return Err(match staging.into_error() {
                Some(StoreError::Interrupted { .. }) => PackError::Interrupted.into(),
                Some(why) => why.into(),
                None => e.into(),
            })
        }
    };
    let staged = staging.finish()?;
    let report = PackReport {
        id: *staged.id(),
        entries: counts.entries,
        uncompressed_size: counts.uncompressed_size,
        skipped_sockets: counts.skipped_sockets,
    };
    Ok((report, staged.commit()?.record))
}

/// Stored images other than `id` whose name is the manifest's and whose
/// labels are exactly its labels (in any order), among `records` when
/// given, else among the store's records read now.
fn same_name_and_labels(
    store: &Store,
    records: Option<&[ImageRecord]>,
    manifest: &ImageManifest,
    id: &ImageId,
) -> Vec<ImageRecord> {
    let sorted = |labels: Vec<(String, String)>| {
        let mut labels = labels;
        labels.sort();
        labels
    };
    let name = manifest.name.to_string();
    let labels = sorted(
        manifest
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.clone()))
            .collect(),
    );
    // The check is advice: a record that cannot be read is fsck's
    // business and must not fail a build that has already packed.
    let read;
    let records = match records {
        Some(records) => records,
        None => {
            read = store.records().unwrap_or_default();
            &read
        }
    };
    records
        .iter()
        .filter(|r| r.id != *id && r.name == name)
        .filter(|r| {
            let theirs = r.labels.iter().map(|l| (l.name.clone(), l.value.clone()));
            sorted(theirs.collect()) == labels
        })
        .cloned()
        .collect()
}
