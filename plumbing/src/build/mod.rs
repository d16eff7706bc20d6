//! Diff builds (DESIGN §6): comparing a build tree against the rendering of
//! its manifest's dependencies *without writing that rendering*, and
//! choosing what a diff image must hold so that, rendered over those
//! dependencies, it reproduces the tree exactly.
//!
//! The rendering is known from the dependency list and file map
//! ([`crate::render`]): each path's expected metadata comes from the entry
//! that supplies it and its content from the mmapped blob. A path whose
//! stat is the one a [`Snapshot`] recorded right after `startbuild`
//! rendered it is untouched and is not compared at all.
//!
//! An overlay build tree (DESIGN §13) is compared by reading only its
//! upper directory ([`overlay`]); [`mount`] mounts and checks the overlay.

pub mod mount;
pub mod overlay;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

pub use snapshot::{Snapshot, SnapshotError};

use crate::diff::{self, Attr, Change, DiffError, DiffOptions, FileMeta, Status, Tree};
use crate::entry::{Entry, EntryKind};
use crate::id::ImageId;
use crate::image::{ImageError, OpenImage};
use crate::limits::Limits;
use crate::manifest::ImageManifest;
use crate::pack::{self, PackError, PackOptions};
use crate::render::{self, DependencyList, FileMap, ImageSource, RenderError, Supplier};
use crate::store::Store;

/// Why a build tree could not be compared with its dependencies.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The dependencies could not be resolved or mapped.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Walking or reading the build tree failed.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// The stand-in top image could not be written.
    #[error("{}: {source}", path.display())]
    Scratch {
        /// The scratch directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Packing the stand-in top image failed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// Opening the stand-in top image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A path must go into the `pathWhitelist`, which JSON can only hold
    /// as UTF-8.
    #[error("{path}: a path that is not UTF-8 cannot be listed in pathWhitelist (needed because files were deleted)")]
    NonUtf8Path {
        /// The path, C-quoted.
        path: String,
    },
    /// The upper directory of an overlay tree could not be given the
    /// attributes of the lower root.
    #[error("{}: preparing the overlay's upper directory: {reason}", path.display())]
    UpperRoot {
        /// The directory concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A hard link of a dependency does not end in a file of its image.
    #[error("{image}: hard link {path:?} does not lead to a file of the same image")]
    BrokenLink {
        /// The image holding the link.
        image: String,
        /// The link's path, lossily decoded.
        path: String,
    },
}

/// The rendering of a manifest's dependencies: the dependency list of a
/// stand-in top image with no files of its own, and its file map.
pub struct DependencyRendering {
    /// The list; element 0 is the stand-in.
    pub list: DependencyList,
    /// Which element supplies each path.
    pub map: FileMap,
}

/// Resolves `manifest`'s dependencies against `store` and maps what they
/// render to. `rootfs` supplies the stand-in's `rootfs` directory entry
/// (the build tree's own); `scratch` holds the stand-in's tar while it is
/// read. The manifest's `pathWhitelist` is left out: the comparison is
/// against everything the dependencies provide.
pub fn dependency_rendering(
    store: &Store,
    manifest: &ImageManifest,
    rootfs: &Path,
    scratch: &Path,
) -> Result<DependencyRendering, BuildError> {
    let mut top = manifest.clone();
    top.path_whitelist.clear();
    let scratch_err = |source| BuildError::Scratch {
        path: scratch.to_owned(),
        source,
    };
    let mut tar = tempfile::Builder::new()
        .prefix(".acido-deps-")
        .tempfile_in(scratch)
        .map_err(scratch_err)?;
    let opts = PackOptions {
        compression: crate::compression::Compression::None,
        ..PackOptions::default()
    };
    // Only the manifest and the `rootfs` entry: listing no path (rather
    // than selecting none of a walk) keeps this O(1) in the tree's size.
    let json = top.to_json();
    let stand_in = pack::Source::Listed {
        manifest: json.as_bytes(),
        rootfs,
        paths: &[],
        layers: None,
    };
    pack::pack(stand_in, pack::Sink::Writer(tar.as_file_mut()), &opts)?;
    let image = OpenImage::open_archive(tar.path(), scratch, &Limits::default())?;
    let list = render::dependency_list_for(store, image, ImageSource::Archive)?;
    let map = render::file_map(&list)?;
    Ok(DependencyRendering { list, map })
}

/// Where a regular file's expected bytes are: list element and entry.
type DataSource = (usize, usize);

/// What the rendering holds, as a [`Tree`] of expected metadata keyed by
/// rootfs-relative paths, with the data source of each regular file and
/// the set of implied directories (whose time and owner are those of the
/// rendering moment, so they can only be reproduced by emitting them).
struct Expected {
    tree: Tree,
    data: HashMap<Vec<u8>, DataSource>,
    implied: HashSet<Vec<u8>>,
}

impl Expected {
    /// Whether the regular file `full` holds the bytes `rendering` gives
    /// the path `key` (false where it gives none): the content check of
    /// the plain and of the overlay build.
    fn content_matches(
        &self,
        rendering: &DependencyRendering,
        key: &[u8],
        full: &Path,
    ) -> std::io::Result<bool> {
        let Some(&(element, entry)) = self.data.get(key) else {
            return Ok(false);
        };
        match (rendering.image(element), rendering.entry(element, entry)) {
            (Some(image), Some(e)) => diff::content_equals(full, image.data(e)),
            _ => Ok(false),
        }
    }
}

/// The error of a content check of `full` that could not read it.
fn content_error(
    rendering: &DependencyRendering,
    full: &Path,
) -> impl FnOnce(std::io::Error) -> DiffError {
    let a = PathBuf::from(format!("{}", rendering.list.images[0].id));
    let b = full.to_owned();
    move |source| DiffError::Content { a, b, source }
}

impl DependencyRendering {
    fn entry(&self, element: usize, entry: usize) -> Option<&Entry> {
        self.list
            .images
            .get(element)
            .and_then(|l| l.image.image.entries().get(entry))
    }

    fn image(&self, element: usize) -> Option<&OpenImage> {
        self.list.images.get(element).map(|l| &l.image.image)
    }

    /// The entry a hard link's chain ends in, as the renderer resolves it
    /// (same image, by archive path).
    fn link_root(&self, element: usize, entry: usize) -> Option<usize> {
        let entries = self.image(element)?.entries();
        let mut at = entry;
        for _ in 0..=entries.len() {
            let e = entries.get(at)?;
            if e.kind != EntryKind::HardLink {
                return (!e.kind.is_dir()).then_some(at);
            }
            let target = e.link_target.as_deref()?;
            at = entries.iter().position(|t| t.path == target)?;
        }
        None
    }

    fn expected(&self) -> Result<Expected, BuildError> {
        let mut metas = BTreeMap::new();
        let mut data = HashMap::new();
        let mut implied = HashSet::new();
        // Paths rendered from one (image, file entry) end up hard-linked.
        let mut groups: BTreeMap<(ImageId, usize), Vec<Vec<u8>>> = BTreeMap::new();
        for (path, supplier) in &self.map.paths {
            let key = match path.as_slice() {
                b"rootfs" => Vec::new(),
                p => match p.strip_prefix(b"rootfs/") {
                    Some(rel) => rel.to_vec(),
                    None => continue,
                },
            };
            let meta = match *supplier {
                Supplier::Implied => {
                    implied.insert(key.clone());
                    implied_dir()
                }
                Supplier::Entry { element, entry, .. } => {
                    let e = self
                        .entry(element, entry)
                        .ok_or_else(|| self.broken(element, path))?;
                    let source = match e.kind {
                        EntryKind::Regular | EntryKind::HardLink => self
                            .link_root(element, entry)
                            .ok_or_else(|| self.broken(element, path))?,
                        _ => entry,
                    };
                    let root = self
                        .entry(element, source)
                        .ok_or_else(|| self.broken(element, path))?;
                    if root.kind == EntryKind::Regular {
                        data.insert(key.clone(), (element, source));
                        let id = self.list.images[element].id;
                        groups.entry((id, source)).or_default().push(key.clone());
                    }
                    meta_of_entry(root)
                }
            };
            metas.insert(key, meta);
        }
        for members in groups.values().filter(|m| m.len() > 1) {
            for member in members {
                if let Some(meta) = metas.get_mut(member) {
                    meta.hard_links = members.iter().filter(|m| *m != member).cloned().collect();
                    meta.hard_links.sort();
                }
            }
        }
        Ok(Expected {
            tree: Tree::from_entries(PathBuf::new(), metas),
            data,
            implied,
        })
    }

    fn broken(&self, element: usize, path: &[u8]) -> BuildError {
        BuildError::BrokenLink {
            image: self.list.chain(element),
            path: String::from_utf8_lossy(path).into_owned(),
        }
    }
}

fn implied_dir() -> FileMeta {
    FileMeta {
        mode: 0o755,
        ..FileMeta::bare(EntryKind::Directory)
    }
}

/// The metadata rendering gives `entry` (a hard link's target already
/// resolved by the caller), in the terms a walk of the rendered tree reports.
fn meta_of_entry(entry: &Entry) -> FileMeta {
    let kind = match entry.kind {
        EntryKind::HardLink => EntryKind::Regular,
        kind => kind,
    };
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = match kind {
        EntryKind::Regular | EntryKind::Directory => entry
            .xattrs
            .iter()
            .filter(|(name, _)| !name.starts_with(b"system."))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    xattrs.sort();
    let device = matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice);
    FileMeta {
        kind,
        mode: entry.mode & 0o7777,
        uid: entry.uid,
        gid: entry.gid,
        mtime: entry.mtime,
        size: if kind == EntryKind::Regular {
            entry.size
        } else {
            0
        },
        link_target: if kind == EntryKind::Symlink {
            entry.link_target.clone()
        } else {
            None
        },
        dev_major: if device { entry.dev_major } else { 0 },
        dev_minor: if device { entry.dev_minor } else { 0 },
        xattrs,
        dev: 0,
        ino: 0,
        nlink: 0,
        ctime: Default::default(),
        hard_links: Vec::new(),
    }
}

/// Compares the build tree `rootfs` with `rendering`, path by path, in the
/// terms and formats of `diff-tree` (A is the rendering, B the tree), and
/// returns the changes with the walked tree. Paths `snapshot` says are
/// untouched are not compared; content is read only for regular files whose
/// size matches, against the blob.
pub fn diff_against_rendering(
    rendering: &DependencyRendering,
    rootfs: &Path,
    snapshot: Option<&Snapshot>,
) -> Result<(Vec<Change>, Tree), BuildError> {
    let expected = rendering.expected()?;
    let actual = diff::walk(rootfs)?;
    let opts = DiffOptions::default();
    let changes = diff::diff_walked_with(&expected.tree, &actual, &mut |path, a, b| {
        let key: &[u8] = if path == diff::ROOT_PATH { b"" } else { path };
        if expected.implied.contains(key) {
            // An implied directory's time is the rendering moment's: only an
            // explicit entry reproduces it.
            return Ok(Some((Status::Modified, vec![Attr::Mtime])));
        }
        if snapshot.is_some_and(|s| s.unchanged(path, b)) {
            return Ok(None);
        }
        let full = actual.full_path(path);
        diff::compare(a, b, &opts, || {
            expected.content_matches(rendering, key, &full)
        })
        .map_err(content_error(rendering, &full))
    })?;
    Ok((changes, actual))
}

/// What a diff image must hold, decided from the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Rootfs-relative paths to pack: every added, modified or type-changed
    /// path (the root itself is always packed and not listed).
    pub paths: BTreeSet<Vec<u8>>,
    /// How many paths the dependencies provide are gone from the tree.
    pub deleted: usize,
    /// Counts of added, modified and type-changed paths.
    pub added: usize,
    /// See `added`.
    pub modified: usize,
    /// See `added`.
    pub type_changed: usize,
}

/// Picks the paths of `changes` a diff image must carry.
pub fn select(changes: &[Change]) -> Selection {
    let mut sel = Selection {
        paths: BTreeSet::new(),
        deleted: 0,
        added: 0,
        modified: 0,
        type_changed: 0,
    };
    for change in changes {
        match change.status {
            Status::Deleted => {
                sel.deleted += 1;
                continue;
            }
            Status::Added => sel.added += 1,
            Status::Modified => sel.modified += 1,
            Status::TypeChanged => sel.type_changed += 1,
        }
        if change.path != diff::ROOT_PATH {
            sel.paths.insert(change.path.clone());
        }
    }
    sel
}

/// The complete whitelist of a walked tree (aci-format §10): `/` and `/` +
/// every path below the root, directories included, in walk order. A path
/// that is not UTF-8 cannot be written in a JSON whitelist: an error.
pub fn whitelist_of(tree: &Tree) -> Result<Vec<String>, BuildError> {
    tree.iter()
        .map(|(path, _)| {
            if path == diff::ROOT_PATH {
                return Ok("/".to_owned());
            }
            match std::str::from_utf8(path) {
                Ok(text) => Ok(format!("/{text}")),
                Err(_) => Err(BuildError::NonUtf8Path {
                    path: crate::quote::quote_path(path).into_owned(),
                }),
            }
        })
        .collect()
}
