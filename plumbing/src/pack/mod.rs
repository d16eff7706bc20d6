//! Deterministic ACI writer: packs a layout directory (`manifest` +
//! `rootfs/`, aci-format §1), or a manifest and a selection of paths under a
//! rootfs (for diff builds, DESIGN §6), into a possibly compressed tar, and
//! computes the image id (aci-format §3) over the uncompressed stream while
//! writing it.
//!
//! One entry point, [`pack`], over a [`Source`] (what is packed) and a
//! [`Sink`] (where the archive goes); [`pack_layout`], [`pack_selected`]
//! and their `_to_file` forms are shorthands for its four combinations.
//! Inside: `source` reads the layout's top level, `packer` walks the tree
//! and writes entries through `tar_writer`, `sink` makes a file output
//! atomic.
//!
//! Output rules, all chosen so that the same tree gives the same bytes
//! wherever it lies and whoever packs it (DESIGN §4 `pack-aci`):
//! * Order: `manifest` first, then `rootfs`, then every path under the
//!   rootfs in pre-order with siblings sorted by their name bytes, so
//!   parents always come before children (readers do not care about order,
//!   aci-format §1).
//! * `manifest` holds the given bytes exactly, never re-serialized. Its
//!   header is fixed (mode 0644, uid and gid 0, mtime 0) so that the id
//!   depends only on the manifest's content and the rootfs: an image
//!   rendered and packed again keeps its id whatever times the manifest
//!   file got on disk.
//! * Headers are ustar, with PAX records only for what ustar cannot hold
//!   (see `tar_writer`). uname and gname are empty, mode keeps the 12
//!   permission and special bits, no atime or ctime is written. The archive
//!   ends with two zero blocks and no record padding, as Go writes it.
//! * Directories are typeflag `5` and named without a trailing `/`
//!   (`rootfs/etc`), as `actool build` names them (aci-format §11.2).
//! * Hard links: regular files that share a (device, inode) pair among the
//!   packed paths are written once, as the regular file at the first path in
//!   the order above; later paths become typeflag `1`, size 0, link name
//!   `rootfs/<first path>` (aci-format §11.2, which uses the inode alone).
//!   Only regular files are grouped; hard-linked symlinks, devices or fifos
//!   are written as separate entries of their own type.
//! * Devices carry major and minor numbers from `st_rdev`; fifos are
//!   written; **sockets are skipped** (as `actool build` does) and counted in
//!   [`PackReport::skipped_sockets`].
//! * xattrs (the spec says files keep them, aci-format §1) are recorded for
//!   regular files, directories and `rootfs` as `SCHILY.xattr.NAME` PAX
//!   records, values as raw bytes, sorted by name. They are whatever
//!   `listxattr` shows the packing user, except the `system.*` namespace
//!   (POSIX ACLs and other file-system internals that readers cannot
//!   restore portably). Symlinks, devices and fifos get none. A file system
//!   without xattr support gives none.
//!
//! The packer never follows symlinks inside the tree (`lstat`), opens
//! regular files with `O_NOFOLLOW | O_NONBLOCK` and checks that what it
//! opened is the file it listed, and never opens fifos or devices. A file
//! that changes size while it is read is an error, not a corrupt archive.
//!
//! An interrupt flag ([`PackOptions::interrupt`]) is polled before every
//! entry and between the pieces of a file's data, so even a pack in the
//! middle of a huge file stops promptly with [`PackError::Interrupted`].
//! Packing to a file goes through a locked temp beside it (see
//! [`crate::temp`]): an error or interrupt removes it, and the leftover of
//! a killed pack is swept by the next pack into the same directory.

mod packer;
mod sink;
mod source;
pub(crate) mod tar_writer;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::compression::Compression;
use crate::id::ImageId;

// The encoders live with the compressions (the store's export uses them
// too); these names stay for callers that learned them here.
pub use crate::compression::{
    CompressError, DEFAULT_BZIP2_LEVEL, DEFAULT_GZIP_LEVEL, DEFAULT_XZ_PRESET,
};
pub use tar_writer::HeaderError;

/// How to pack.
#[derive(Clone)]
pub struct PackOptions {
    /// The compression of the output.
    pub compression: Compression,
    /// xz worker threads; 0 uses every available core. The output bytes do
    /// not depend on it.
    pub xz_threads: u32,
    /// Compression level (xz preset 0-9, gzip 0-9, bzip2 1-9); `None` for
    /// the tool's usual default (6, 6, 9).
    pub level: Option<u32>,
    /// Once this flag is up, the pack stops at its next check (before each
    /// entry, between pieces of file data) with [`PackError::Interrupted`].
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Called at each [`PackStep`] (fault injection for crash tests; it
    /// may block).
    pub hook: Option<PackHook>,
    /// Called with the number of bytes of file data just packed, once per
    /// buffer (at most 256 KiB), so a caller can show progress.
    pub progress: Option<PackProgress>,
}

impl std::fmt::Debug for PackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackOptions")
            .field("compression", &self.compression)
            .field("xz_threads", &self.xz_threads)
            .field("level", &self.level)
            .field("interrupt", &self.interrupt)
            .field("hook", &self.hook.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The steps of a pack at which a [`PackHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackStep {
    /// The locked temp file beside the output exists (packing to a file
    /// only), nothing is written yet.
    AfterTempCreate,
    /// The first entry below `rootfs` is written (possibly still
    /// buffered); called once.
    MidWrite,
}

/// A callback run at each [`PackStep`] (fault injection: tests pause or
/// kill the process there).
pub type PackHook = Arc<dyn Fn(PackStep) + Send + Sync>;

/// A callback told how many more bytes of file data were packed.
pub type PackProgress = Arc<dyn Fn(u64) + Send + Sync>;

impl Default for PackOptions {
    /// xz at preset 6 on every core.
    fn default() -> Self {
        PackOptions {
            compression: Compression::Xz,
            xz_threads: 0,
            level: None,
            interrupt: None,
            hook: None,
            progress: None,
        }
    }
}

/// What [`pack_unhashed`] wrote: a [`PackReport`] without the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackCounts {
    /// Number of tar entries written (manifest and rootfs included, PAX
    /// headers not counted).
    pub entries: u64,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// Sockets found in the tree and left out.
    pub skipped_sockets: u64,
}

/// What a pack wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackReport {
    /// The image id: SHA-512 of the uncompressed tar.
    pub id: ImageId,
    /// Number of tar entries written (manifest and rootfs included, PAX
    /// headers not counted).
    pub entries: u64,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// Sockets found in the tree and left out.
    pub skipped_sockets: u64,
}

/// Why packing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The layout directory could not be listed.
    #[error("{}: cannot read layout directory: {source}", path.display())]
    ReadLayout {
        /// The layout directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The layout has no `manifest`.
    #[error("{}: no manifest in layout directory", dir.display())]
    MissingManifest {
        /// The layout directory.
        dir: PathBuf,
    },
    /// The layout has no `rootfs`.
    #[error("{}: no rootfs in layout directory", dir.display())]
    MissingRootfs {
        /// The layout directory.
        dir: PathBuf,
    },
    /// `manifest` is not a regular file (a symlink is not followed).
    #[error("{}: manifest is not a regular file", path.display())]
    ManifestNotRegular {
        /// The manifest path.
        path: PathBuf,
    },
    /// `rootfs` is not a directory (a symlink is not followed).
    #[error("{}: rootfs is not a directory", path.display())]
    RootfsNotDirectory {
        /// The rootfs path.
        path: PathBuf,
    },
    /// The layout directory holds a name besides `manifest` and `rootfs`
    /// (aci-format §1).
    #[error("{}: unexpected {name:?} in layout directory (only manifest and rootfs are allowed)", dir.display())]
    UnexpectedTopLevel {
        /// The layout directory.
        dir: PathBuf,
        /// The offending name.
        name: OsString,
    },
    /// A path in the tree could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file's extended attributes could not be read.
    #[error("{}: cannot read xattrs: {source}", path.display())]
    Xattr {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file changed (was replaced, shrank or grew) while it was packed.
    #[error("{}: file changed while it was being packed", path.display())]
    FileChanged {
        /// The path.
        path: PathBuf,
    },
    /// An entry has a value no tar header can hold.
    #[error("{}: {source}", path.display())]
    Header {
        /// The path.
        path: PathBuf,
        /// What does not fit.
        source: HeaderError,
    },
    /// The output file is inside the tree being packed.
    #[error("{}: output file is inside the layout being packed", path.display())]
    OutputInsideLayout {
        /// Where the output file was met in the tree.
        path: PathBuf,
    },
    /// The encoder could not be set up.
    #[error(transparent)]
    Compression(#[from] CompressError),
    /// Writing the archive failed.
    #[error("cannot write the archive: {source}")]
    Write {
        /// The cause.
        source: io::Error,
    },
    /// The output file exists and overwriting was not asked for.
    #[error("{}: output file exists", path.display())]
    OutputExists {
        /// The output file.
        path: PathBuf,
    },
    /// The interrupt flag was raised; a file output was not written (an
    /// existing one is untouched).
    #[error("pack interrupted")]
    Interrupted,
    /// The output file could not be created, synced or renamed into place.
    #[error("{}: cannot write output file: {source}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// What [`pack`] packs.
pub enum Source<'a> {
    /// A layout directory: `manifest` + `rootfs/`, nothing else
    /// (aci-format §1). Every path under `rootfs` is packed.
    Layout(&'a Path),
    /// `manifest` (written as is) plus those paths under the rootfs
    /// directory `rootfs` that `select` keeps.
    ///
    /// `select` gets each path relative to `rootfs` as bytes (`etc/passwd`,
    /// no leading or trailing `/`). The whole tree is walked: a directory
    /// that is not kept is left out but its children are still offered, so
    /// parents of kept paths need not be kept. The `rootfs` entry itself is
    /// always written. Hard links are grouped among the kept paths only.
    Selected {
        /// The manifest's bytes.
        manifest: &'a [u8],
        /// The rootfs directory.
        rootfs: &'a Path,
        /// Which paths to pack.
        select: &'a dyn Fn(&[u8]) -> bool,
    },
    /// `manifest` plus exactly the listed paths under `rootfs`, without
    /// walking the rest of the tree: the same archive as
    /// [`Source::Selected`] with a `select` that keeps the listed paths
    /// (entries in the same walk order, hard links grouped among them),
    /// at a cost that depends on the list, not on the tree (an overlay
    /// build tree's changes). A listed path that is missing is an error.
    Listed {
        /// The manifest's bytes.
        manifest: &'a [u8],
        /// The rootfs directory.
        rootfs: &'a Path,
        /// Rootfs-relative paths (`etc/passwd`), in any order.
        paths: &'a [Vec<u8>],
        /// Where some of the paths are read instead of below `rootfs`.
        layers: Option<LayerReads<'a>>,
    },
}

/// The xattr namespace overlayfs keeps its bookkeeping in (opaque
/// directories, origins): a mounted overlay never shows it, so it is never
/// packed from a layer directory either.
pub const OVERLAY_XATTRS: &[u8] = b"trusted.overlay.";

/// For [`Source::Listed`] packing an overlay build tree (`rootfs` its
/// mount point): the overlay's layer directories and, for each listed
/// path one of them holds, the layer the mounted tree shows it from. Such
/// a path is read from that layer directory instead of through the mount,
/// which gives the same entry (overlayfs shows a path's topmost layer's
/// inode: with `metacopy` and `redirect_dir` off, its data, owner, mode,
/// times and xattrs, less [`OVERLAY_XATTRS`]) without the mount's lookups
/// through every layer. The caller vouches that `topmost` is the mount's
/// view and that the layers do not change while the pack runs.
#[derive(Debug, Clone, Copy)]
pub struct LayerReads<'a> {
    /// The layer directories, in any order `topmost` indexes.
    pub dirs: &'a [PathBuf],
    /// Rootfs-relative path → index in `dirs` of the layer it is read from.
    pub topmost: &'a HashMap<Vec<u8>, usize>,
}

/// Where [`pack`] writes the archive.
pub enum Sink<'a> {
    /// Any writer (stdout, a buffer). On error it may hold a partial
    /// archive.
    Writer(&'a mut dyn Write),
    /// The file `path`, atomically: the archive is written to a temp file
    /// in its directory, synced and renamed into place, so `path` never
    /// holds a partial archive and nothing is left behind on error. An
    /// existing file is an error unless `overwrite` is set.
    File {
        /// The output file.
        path: &'a Path,
        /// Whether an existing file is replaced.
        overwrite: bool,
    },
}

/// [`pack`] into the writer `out` without taking the image id: for a
/// writer that hashes what it gets itself (a store staging,
/// `Store::stage`), so the bytes are hashed once. With compression, the id
/// is still the SHA-512 of the uncompressed stream, which `out` does not
/// see: use [`pack`] then.
pub fn pack_unhashed(
    source: Source<'_>,
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<PackCounts, PackError> {
    let packed = packer::pack_source_with(&source, out, opts, None, tar_writer::NoHash)?;
    Ok(packed.counts)
}

/// Packs `source` into `sink`, compressed as `opts` says.
pub fn pack(
    source: Source<'_>,
    sink: Sink<'_>,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    match sink {
        Sink::Writer(out) => packer::pack_source(&source, out, opts, None),
        Sink::File { path, overwrite } => {
            sink::write_file_atomically(path, overwrite, opts, &mut |out, guard| {
                packer::pack_source(&source, out, opts, guard)
            })
        }
    }
}

/// Packs the layout directory `dir` into `out`: [`pack`] from
/// [`Source::Layout`] to [`Sink::Writer`].
pub fn pack_layout(
    dir: &Path,
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    pack(Source::Layout(dir), Sink::Writer(out), opts)
}

/// Packs `manifest` plus the paths under `rootfs` that `select` keeps into
/// `out`: [`pack`] from [`Source::Selected`] to [`Sink::Writer`].
pub fn pack_selected(
    manifest: &[u8],
    rootfs: &Path,
    select: &dyn Fn(&[u8]) -> bool,
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    let source = Source::Selected {
        manifest,
        rootfs,
        select,
    };
    pack(source, Sink::Writer(out), opts)
}

/// Packs the layout directory `dir` into the file `file`, atomically:
/// [`pack`] from [`Source::Layout`] to [`Sink::File`].
pub fn pack_layout_to_file(
    dir: &Path,
    file: &Path,
    overwrite: bool,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    let sink = Sink::File {
        path: file,
        overwrite,
    };
    pack(Source::Layout(dir), sink, opts)
}

/// [`pack_selected`] into the file `file`, atomically: [`pack`] from
/// [`Source::Selected`] to [`Sink::File`].
pub fn pack_selected_to_file(
    manifest: &[u8],
    rootfs: &Path,
    select: &dyn Fn(&[u8]) -> bool,
    file: &Path,
    overwrite: bool,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    let source = Source::Selected {
        manifest,
        rootfs,
        select,
    };
    let sink = Sink::File {
        path: file,
        overwrite,
    };
    pack(source, sink, opts)
}
