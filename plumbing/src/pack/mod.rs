//! Deterministic ACI writer: packs a layout directory (`manifest` +
//! `rootfs/`, aci-format §1), or a manifest and a selection of paths under a
//! rootfs (for diff builds, DESIGN §6), into a possibly compressed tar, and
//! computes the image id (aci-format §3) over the uncompressed stream while
//! writing it.
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

mod tar_writer;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::fcntl::OFlag;
use xattr::FileExt as _;

use crate::compression::Compression;
use crate::entry::Timestamp;
use crate::id::ImageId;
use crate::temp::{self, TempKind};

// The encoders live with the compressions (the store's export uses them
// too); these names stay for callers that learned them here.
use crate::compression::Encoder;
pub use crate::compression::{
    CompressError, DEFAULT_BZIP2_LEVEL, DEFAULT_GZIP_LEVEL, DEFAULT_XZ_PRESET,
};
pub use tar_writer::HeaderError;
use tar_writer::{HeaderSpec, TarSink};

/// Extended attributes as (name, value) byte pairs, sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Size of the buffers between the tree, the hasher and the encoder.
const IO_BUF: usize = 256 * 1024;

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
}

impl std::fmt::Debug for PackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackOptions")
            .field("compression", &self.compression)
            .field("xz_threads", &self.xz_threads)
            .field("level", &self.level)
            .field("interrupt", &self.interrupt)
            .field("hook", &self.hook.is_some())
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

impl Default for PackOptions {
    /// xz at preset 6 on every core.
    fn default() -> Self {
        PackOptions {
            compression: Compression::Xz,
            xz_threads: 0,
            level: None,
            interrupt: None,
            hook: None,
        }
    }
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

/// Packs the layout directory `dir` (`manifest` + `rootfs/`, nothing else)
/// into `out`, compressed as `opts` says.
///
/// On error, `out` may hold a partial archive; [`pack_layout_to_file`]
/// cleans up after itself.
pub fn pack_layout(
    dir: &Path,
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    let manifest = check_layout(dir, None)?;
    pack_tree(&manifest, &dir.join("rootfs"), &|_| true, out, opts, None)
}

/// Packs `manifest` (written as is) plus those paths under the rootfs
/// directory `rootfs` that `select` keeps, into `out`.
///
/// `select` gets each path relative to `rootfs` as bytes (`etc/passwd`,
/// no leading or trailing `/`). The whole tree is walked: a directory that
/// is not kept is left out but its children are still offered, so parents of
/// kept paths need not be kept. The `rootfs` entry itself is always written.
/// Hard links are grouped among the kept paths only.
pub fn pack_selected(
    manifest: &[u8],
    rootfs: &Path,
    select: &dyn Fn(&[u8]) -> bool,
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    pack_tree(manifest, rootfs, select, out, opts, None)
}

/// Packs the layout directory `dir` into the file `file`, atomically: the
/// archive is written to a temp file in `file`'s directory, synced and
/// renamed into place, so `file` never holds a partial archive and nothing
/// is left behind on error. An existing `file` is an error unless
/// `overwrite` is set.
pub fn pack_layout_to_file(
    dir: &Path,
    file: &Path,
    overwrite: bool,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    write_file_atomically(file, overwrite, opts, &mut |out, guard| {
        let manifest = check_layout(dir, guard)?;
        pack_tree(&manifest, &dir.join("rootfs"), &|_| true, out, opts, guard)
    })
}

/// [`pack_selected`] into the file `file`, atomically as
/// [`pack_layout_to_file`] writes.
pub fn pack_selected_to_file(
    manifest: &[u8],
    rootfs: &Path,
    select: &dyn Fn(&[u8]) -> bool,
    file: &Path,
    overwrite: bool,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    write_file_atomically(file, overwrite, opts, &mut |out, guard| {
        pack_tree(manifest, rootfs, select, out, opts, guard)
    })
}

/// The (device, inode) of an output file that must not be packed into itself.
type OutputGuard = Option<(u64, u64)>;

/// Runs `write` on a temp file beside `file` (given the temp file's
/// (device, inode), which must not be packed into itself), then syncs it and
/// renames it into place, replacing an existing `file` only when
/// `overwrite` is set. The temp is locked while it lives, and leftovers of
/// killed packs beside `file` are swept first.
fn write_file_atomically(
    file: &Path,
    overwrite: bool,
    opts: &PackOptions,
    write: &mut dyn FnMut(&mut File, OutputGuard) -> Result<PackReport, PackError>,
) -> Result<PackReport, PackError> {
    if !overwrite && fs::symlink_metadata(file).is_ok() {
        return Err(PackError::OutputExists {
            path: file.to_owned(),
        });
    }
    let output_err = |source| PackError::Output {
        path: file.to_owned(),
        source,
    };
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Best effort: a leftover that cannot be removed only costs space.
    temp::sweep_leftovers(parent, TempKind::Pack);
    // `_lock` is held until the temp is renamed or removed: dropped last.
    let (mut tmp, _lock) = temp::create_pack_file(parent).map_err(output_err)?;
    if let Some(hook) = &opts.hook {
        hook(PackStep::AfterTempCreate);
    }
    let tmp_meta = tmp.as_file().metadata().map_err(output_err)?;
    let guard = Some((tmp_meta.dev(), tmp_meta.ino()));
    let report = write(tmp.as_file_mut(), guard)?;
    tmp.as_file().sync_all().map_err(output_err)?;
    // The last moment an interrupt can still leave everything as it was.
    check_interrupt(opts)?;
    if overwrite {
        tmp.persist(file).map_err(|e| output_err(e.error))?;
    } else {
        tmp.persist_noclobber(file).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                PackError::OutputExists {
                    path: file.to_owned(),
                }
            } else {
                output_err(e.error)
            }
        })?;
    }
    // The rename is durable only once the directory is synced.
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(output_err)?;
    Ok(report)
}

/// Checks the top level of a layout directory (aci-format §1: `manifest` a
/// regular file, `rootfs` a directory, nothing else) and returns the
/// manifest's bytes. `guard` is the (device, inode) of an output file that
/// must not be inside the layout.
fn check_layout(dir: &Path, guard: Option<(u64, u64)>) -> Result<Vec<u8>, PackError> {
    let read_err = |source| PackError::ReadLayout {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(read_err)? {
        names.push(item.map_err(read_err)?.file_name());
    }
    // Sorted so that the error for several offending names is stable.
    names.sort();
    let (mut manifest, mut rootfs) = (false, false);
    for name in names {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(|source| PackError::Read {
            path: path.clone(),
            source,
        })?;
        if guard == Some((meta.dev(), meta.ino())) {
            return Err(PackError::OutputInsideLayout { path });
        }
        match name.as_bytes() {
            b"manifest" if meta.is_file() => manifest = true,
            b"manifest" => return Err(PackError::ManifestNotRegular { path }),
            b"rootfs" if meta.is_dir() => rootfs = true,
            b"rootfs" => return Err(PackError::RootfsNotDirectory { path }),
            _ => {
                return Err(PackError::UnexpectedTopLevel {
                    dir: dir.to_owned(),
                    name,
                })
            }
        }
    }
    if !manifest {
        return Err(PackError::MissingManifest {
            dir: dir.to_owned(),
        });
    }
    if !rootfs {
        return Err(PackError::MissingRootfs {
            dir: dir.to_owned(),
        });
    }
    let path = dir.join("manifest");
    let (mut file, _) = open_regular(&path, None)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| PackError::Read { path, source })?;
    Ok(bytes)
}

/// Opens a regular file without following a symlink, without blocking on a
/// fifo and without taking a terminal that replaced it since it was listed,
/// and returns it with its `fstat`. When
/// `expected` is given, the opened file must be that (device, inode).
fn open_regular(path: &Path, expected: Option<(u64, u64)>) -> Result<(File, Metadata), PackError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|source| PackError::Read {
            path: path.to_owned(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| PackError::Read {
        path: path.to_owned(),
        source,
    })?;
    let same = expected.is_none_or(|id| id == (meta.dev(), meta.ino()));
    if !meta.is_file() || !same {
        return Err(PackError::FileChanged {
            path: path.to_owned(),
        });
    }
    Ok((file, meta))
}

/// The packer proper: writes the manifest, `rootfs` and the selected tree.
fn pack_tree(
    manifest: &[u8],
    rootfs: &Path,
    select: &dyn Fn(&[u8]) -> bool,
    out: &mut dyn Write,
    opts: &PackOptions,
    guard: Option<(u64, u64)>,
) -> Result<PackReport, PackError> {
    let root_meta = fs::symlink_metadata(rootfs).map_err(|source| PackError::Read {
        path: rootfs.to_owned(),
        source,
    })?;
    if !root_meta.is_dir() {
        return Err(PackError::RootfsNotDirectory {
            path: rootfs.to_owned(),
        });
    }
    check_interrupt(opts)?;
    let encoder = Encoder::new(out, opts.compression, opts.level, opts.xz_threads)?;
    let mut packer = Packer {
        tar: TarSink::new(BufWriter::with_capacity(IO_BUF, encoder)),
        header: Vec::with_capacity(4096),
        data: vec![0u8; IO_BUF],
        links: HashMap::new(),
        entries: 0,
        skipped_sockets: 0,
        guard,
        interrupt: opts.interrupt.as_deref(),
    };

    packer.put_header(
        Path::new("manifest"),
        &HeaderSpec {
            path: b"manifest",
            typeflag: tar_writer::TYPE_REGULAR,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: manifest.len() as u64,
            mtime: Timestamp::default(),
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        },
    )?;
    packer.tar.write_all(manifest).map_err(write_err)?;
    packer.tar.pad().map_err(write_err)?;

    packer.add(rootfs, b"rootfs".to_vec(), &root_meta)?;

    let mut mid_write_hook = opts.hook.as_ref();
    let walk = walkdir::WalkDir::new(rootfs)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for item in walk {
        let item = item.map_err(|err| PackError::Read {
            path: err.path().unwrap_or(rootfs).to_owned(),
            source: err.into(),
        })?;
        let rel = item
            .path()
            .strip_prefix(rootfs)
            .expect("walkdir yields paths under its root")
            .as_os_str()
            .as_bytes();
        if !select(rel) {
            continue;
        }
        let meta = item.metadata().map_err(|err| PackError::Read {
            path: item.path().to_owned(),
            source: err.into(),
        })?;
        packer.check_interrupt()?;
        let mut name = b"rootfs/".to_vec();
        name.extend_from_slice(rel);
        packer.add(item.path(), name, &meta)?;
        if let Some(hook) = mid_write_hook.take() {
            hook(PackStep::MidWrite);
        }
    }
    packer.check_interrupt()?;

    let (buffered, id, uncompressed_size) = packer.tar.finish().map_err(write_err)?;
    let encoder = buffered
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    encoder.finish().map_err(write_err)?;
    Ok(PackReport {
        id,
        entries: packer.entries,
        uncompressed_size,
        skipped_sockets: packer.skipped_sockets,
    })
}

fn write_err(source: io::Error) -> PackError {
    PackError::Write { source }
}

/// [`PackError::Interrupted`] once the flag of `opts` is up.
fn check_interrupt(opts: &PackOptions) -> Result<(), PackError> {
    interrupted(opts.interrupt.as_deref())
}

/// [`PackError::Interrupted`] once `flag` is up.
fn interrupted(flag: Option<&AtomicBool>) -> Result<(), PackError> {
    match flag {
        Some(flag) if flag.load(Ordering::Relaxed) => Err(PackError::Interrupted),
        _ => Ok(()),
    }
}

/// State of one pack run.
struct Packer<'a, W: Write> {
    tar: TarSink<W>,
    /// Scratch space for header blocks.
    header: Vec<u8>,
    /// Scratch space for file data.
    data: Vec<u8>,
    /// (device, inode) of multiply linked regular files → first archive path.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
    skipped_sockets: u64,
    guard: Option<(u64, u64)>,
    interrupt: Option<&'a AtomicBool>,
}

impl<W: Write> Packer<'_, W> {
    /// [`PackError::Interrupted`] once the interrupt flag is up.
    fn check_interrupt(&self) -> Result<(), PackError> {
        interrupted(self.interrupt)
    }

    /// Writes the header(s) of one entry.
    fn put_header(&mut self, path: &Path, spec: &HeaderSpec<'_>) -> Result<(), PackError> {
        self.header.clear();
        tar_writer::encode_header(spec, &mut self.header).map_err(|source| PackError::Header {
            path: path.to_owned(),
            source,
        })?;
        self.tar.write_all(&self.header).map_err(write_err)?;
        self.entries += 1;
        Ok(())
    }

    /// Adds the tree entry at `path`, archived as `name`, whose `lstat` is
    /// `meta`.
    fn add(&mut self, path: &Path, name: Vec<u8>, meta: &Metadata) -> Result<(), PackError> {
        let key = (meta.dev(), meta.ino());
        if self.guard == Some(key) {
            return Err(PackError::OutputInsideLayout {
                path: path.to_owned(),
            });
        }
        let ft = meta.file_type();
        let mut spec = HeaderSpec {
            path: &name,
            typeflag: tar_writer::TYPE_REGULAR,
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: 0,
            mtime: mtime_of(meta),
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        };
        if ft.is_file() {
            return self.add_regular(path, &name, meta);
        }
        let target;
        let xattrs;
        if ft.is_dir() {
            spec.typeflag = tar_writer::TYPE_DIR;
            xattrs = read_xattrs(path, xattr::list(path), |n| xattr::get(path, n))?;
            spec.xattrs = &xattrs;
        } else if ft.is_symlink() {
            spec.typeflag = tar_writer::TYPE_SYMLINK;
            target = fs::read_link(path).map_err(|source| PackError::Read {
                path: path.to_owned(),
                source,
            })?;
            spec.link = Some(target.as_os_str().as_bytes());
        } else if ft.is_char_device() || ft.is_block_device() {
            spec.typeflag = if ft.is_char_device() {
                tar_writer::TYPE_CHAR
            } else {
                tar_writer::TYPE_BLOCK
            };
            spec.dev_major = nix::sys::stat::major(meta.rdev());
            spec.dev_minor = nix::sys::stat::minor(meta.rdev());
        } else if ft.is_fifo() {
            spec.typeflag = tar_writer::TYPE_FIFO;
        } else {
            // Sockets cannot be archived; actool build skips them too
            // (aci-format §11.2).
            self.skipped_sockets += 1;
            return Ok(());
        }
        self.put_header(path, &spec)
    }

    /// Adds a regular file: a hard link to an earlier packed path, or the
    /// file with its data.
    fn add_regular(&mut self, path: &Path, name: &[u8], lmeta: &Metadata) -> Result<(), PackError> {
        let key = (lmeta.dev(), lmeta.ino());
        if lmeta.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let spec = HeaderSpec {
                    path: name,
                    typeflag: tar_writer::TYPE_HARDLINK,
                    mode: lmeta.mode(),
                    uid: u64::from(lmeta.uid()),
                    gid: u64::from(lmeta.gid()),
                    size: 0,
                    mtime: mtime_of(lmeta),
                    link: Some(&first),
                    dev_major: 0,
                    dev_minor: 0,
                    xattrs: &[],
                };
                return self.put_header(path, &spec);
            }
            self.links.insert(key, name.to_vec());
        }
        // Metadata from the opened file itself, so the header matches the
        // data that follows.
        let (mut file, meta) = open_regular(path, Some(key))?;
        let xattrs = read_xattrs(path, file.list_xattr(), |n| file.get_xattr(n))?;
        let spec = HeaderSpec {
            path: name,
            typeflag: tar_writer::TYPE_REGULAR,
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: meta.len(),
            mtime: mtime_of(&meta),
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &xattrs,
        };
        self.put_header(path, &spec)?;
        self.copy_data(path, &mut file, meta.len())?;
        self.tar.pad().map_err(write_err)
    }

    /// Copies exactly `size` bytes of `file` into the archive; a file that
    /// is shorter or longer by now is an error (the header is written).
    fn copy_data(&mut self, path: &Path, file: &mut File, size: u64) -> Result<(), PackError> {
        let read_err = |source| PackError::Read {
            path: path.to_owned(),
            source,
        };
        let changed = || PackError::FileChanged {
            path: path.to_owned(),
        };
        let mut left = size;
        while left > 0 {
            // Once per buffer (256 KiB): a huge file stops promptly.
            self.check_interrupt()?;
            let want = usize::try_from(left).map_or(self.data.len(), |l| l.min(self.data.len()));
            let n = match file.read(&mut self.data[..want]) {
                Ok(0) => return Err(changed()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            self.tar.write_all(&self.data[..n]).map_err(write_err)?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        loop {
            match file.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(changed()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            }
        }
    }
}

/// The modification time of `meta`, nanoseconds included.
fn mtime_of(meta: &Metadata) -> Timestamp {
    Timestamp {
        secs: meta.mtime(),
        nanos: u32::try_from(meta.mtime_nsec())
            .ok()
            .filter(|&n| n < 1_000_000_000)
            .unwrap_or(0),
    }
}

/// The xattrs to record from a `listxattr` result and a getter: all but the
/// `system.*` namespace, sorted by name. No support on the file system
/// means none; an attribute removed between listing and reading is left out.
fn read_xattrs(
    path: &Path,
    list: io::Result<xattr::XAttrs>,
    get: impl Fn(&OsStr) -> io::Result<Option<Vec<u8>>>,
) -> Result<Xattrs, PackError> {
    let xattr_err = |source| PackError::Xattr {
        path: path.to_owned(),
        source,
    };
    let names = match list {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(xattr_err(e)),
    };
    let mut out = Vec::new();
    for name in names {
        if name.as_bytes().starts_with(b"system.") {
            continue;
        }
        if let Some(value) = get(&name).map_err(xattr_err)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layout(manifest: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("manifest"), manifest).unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        dir
    }

    fn opts(c: Compression) -> PackOptions {
        PackOptions {
            compression: c,
            xz_threads: 1,
            level: None,
            ..PackOptions::default()
        }
    }

    fn names(tar: &[u8]) -> Vec<Vec<u8>> {
        let mut ar = tar::Archive::new(tar);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect()
    }

    #[test]
    fn manifest_first_then_component_order() {
        let dir = layout(b"{\"acKind\": \"ImageManifest\"}\n");
        let r = dir.path().join("rootfs");
        for d in ["a", "a/b", "a-c", "b"] {
            fs::create_dir(r.join(d)).unwrap();
        }
        fs::write(r.join("a/b/f"), b"x").unwrap();
        fs::write(r.join("a.txt"), b"y").unwrap();
        let mut out = Vec::new();
        let rep = pack_layout(dir.path(), &mut out, &opts(Compression::None)).unwrap();
        let want: Vec<&[u8]> = vec![
            b"manifest",
            b"rootfs",
            b"rootfs/a",
            b"rootfs/a/b",
            b"rootfs/a/b/f",
            b"rootfs/a-c",
            b"rootfs/a.txt",
            b"rootfs/b",
        ];
        assert_eq!(names(&out), want);
        assert_eq!(rep.entries, 8);
        assert_eq!(rep.uncompressed_size, out.len() as u64);
        assert!(out.ends_with(&[0u8; 1024]));
        // Manifest bytes are copied as they are, and its header is fixed.
        let mut ar = tar::Archive::new(&out[..]);
        let mut first = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(first.header().mode().unwrap(), 0o644);
        assert_eq!(first.header().mtime().unwrap(), 0);
        let mut body = Vec::new();
        first.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"{\"acKind\": \"ImageManifest\"}\n");
    }

    #[test]
    fn selection_keeps_only_chosen_paths_but_walks_everything() {
        let dir = layout(b"{}");
        let r = dir.path().join("rootfs");
        fs::create_dir_all(r.join("x/y")).unwrap();
        fs::write(r.join("x/y/keep"), b"k").unwrap();
        fs::write(r.join("x/drop"), b"d").unwrap();
        let mut out = Vec::new();
        let rep = pack_selected(
            b"{\"m\":1}",
            &r,
            &|p| p == b"x/y/keep",
            &mut out,
            &opts(Compression::None),
        )
        .unwrap();
        let want: Vec<&[u8]> = vec![b"manifest", b"rootfs", b"rootfs/x/y/keep"];
        assert_eq!(names(&out), want);
        assert_eq!(rep.entries, 3);
    }

    #[test]
    fn hard_links_group_among_selected_paths_only() {
        let dir = layout(b"{}");
        let r = dir.path().join("rootfs");
        fs::write(r.join("a"), b"data").unwrap();
        fs::hard_link(r.join("a"), r.join("b")).unwrap();
        fs::hard_link(r.join("a"), r.join("c")).unwrap();
        let kinds = |out: &[u8]| -> Vec<(Vec<u8>, u8, Option<Vec<u8>>)> {
            let mut ar = tar::Archive::new(out);
            ar.entries()
                .unwrap()
                .skip(2)
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.path_bytes().into_owned(),
                        e.header().entry_type().as_byte(),
                        e.link_name_bytes().map(|l| l.into_owned()),
                    )
                })
                .collect()
        };
        let mut all = Vec::new();
        pack_layout(dir.path(), &mut all, &opts(Compression::None)).unwrap();
        assert_eq!(
            kinds(&all),
            vec![
                (b"rootfs/a".to_vec(), b'0', None),
                (b"rootfs/b".to_vec(), b'1', Some(b"rootfs/a".to_vec())),
                (b"rootfs/c".to_vec(), b'1', Some(b"rootfs/a".to_vec())),
            ]
        );
        let mut some = Vec::new();
        pack_selected(
            b"{}",
            &r,
            &|p| p != b"a",
            &mut some,
            &opts(Compression::None),
        )
        .unwrap();
        assert_eq!(
            kinds(&some),
            vec![
                (b"rootfs/b".to_vec(), b'0', None),
                (b"rootfs/c".to_vec(), b'1', Some(b"rootfs/b".to_vec())),
            ]
        );
    }

    #[test]
    fn symlinks_are_not_followed() {
        let dir = layout(b"{}");
        let r = dir.path().join("rootfs");
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        symlink(outside.path(), r.join("link")).unwrap();
        let mut out = Vec::new();
        pack_layout(dir.path(), &mut out, &opts(Compression::None)).unwrap();
        let want: Vec<&[u8]> = vec![b"manifest", b"rootfs", b"rootfs/link"];
        assert_eq!(names(&out), want);
    }

    #[test]
    fn symlinked_manifest_or_rootfs_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let real = layout(b"{}");
        symlink(real.path().join("manifest"), dir.path().join("manifest")).unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        let e = pack_layout(dir.path(), &mut Vec::new(), &PackOptions::default()).unwrap_err();
        assert!(matches!(e, PackError::ManifestNotRegular { .. }), "{e}");

        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("manifest"), b"{}").unwrap();
        symlink(real.path().join("rootfs"), dir.path().join("rootfs")).unwrap();
        let e = pack_layout(dir.path(), &mut Vec::new(), &PackOptions::default()).unwrap_err();
        assert!(matches!(e, PackError::RootfsNotDirectory { .. }), "{e}");
    }

    #[test]
    fn sockets_are_skipped_and_counted() {
        let dir = layout(b"{}");
        let sock = dir.path().join("rootfs/s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let mut out = Vec::new();
        let rep = pack_layout(dir.path(), &mut out, &opts(Compression::None)).unwrap();
        assert_eq!(rep.skipped_sockets, 1);
        assert_eq!(rep.entries, 2);
        assert_eq!(names(&out).len(), 2);
    }

    #[test]
    fn xattr_filter_drops_system_namespace_and_sorts() {
        // Through a real file when the fs supports user xattrs; otherwise
        // check the unsupported path.
        let f = tempfile::NamedTempFile::new().unwrap();
        let p = f.path();
        if xattr::set(p, "user.b", b"2").is_err() {
            let got = read_xattrs(
                p,
                Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::EOPNOTSUPP as i32,
                )),
                |_| Ok(None),
            )
            .unwrap();
            assert!(got.is_empty());
            return;
        }
        xattr::set(p, "user.a", b"1").unwrap();
        let got = read_xattrs(p, xattr::list(p), |n| {
            if n.as_bytes().starts_with(b"system.") {
                panic!("system.* must not be read");
            }
            xattr::get(p, n)
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                (b"user.a".to_vec(), b"1".to_vec()),
                (b"user.b".to_vec(), b"2".to_vec())
            ]
        );
    }

    #[test]
    fn bad_level_is_reported_before_writing() {
        let dir = layout(b"{}");
        let mut out = Vec::new();
        let o = PackOptions {
            compression: Compression::Gzip,
            xz_threads: 0,
            level: Some(12),
            ..PackOptions::default()
        };
        let e = pack_layout(dir.path(), &mut out, &o).unwrap_err();
        assert!(matches!(e, PackError::Compression(_)), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn output_inside_rootfs_is_refused_and_cleaned_up() {
        let dir = layout(b"{}");
        let target = dir.path().join("rootfs/out.aci");
        let e =
            pack_layout_to_file(dir.path(), &target, false, &opts(Compression::None)).unwrap_err();
        assert!(matches!(e, PackError::OutputInsideLayout { .. }), "{e}");
        assert_eq!(fs::read_dir(dir.path().join("rootfs")).unwrap().count(), 0);
    }

    /// Raises `flag` once `limit` bytes were written through it.
    struct RaiseAfter<'f> {
        out: Vec<u8>,
        limit: usize,
        flag: &'f AtomicBool,
    }

    impl Write for RaiseAfter<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.out.extend_from_slice(buf);
            if self.out.len() >= self.limit {
                self.flag.store(true, Ordering::SeqCst);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_interrupt_inside_a_huge_file_stops_promptly() {
        let dir = layout(b"{}");
        // 1 GiB, sparse: cheap to make, slow to pack whole.
        let big = File::create(dir.path().join("rootfs/big")).unwrap();
        big.set_len(1 << 30).unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let o = PackOptions {
            interrupt: Some(Arc::clone(&flag)),
            ..opts(Compression::None)
        };
        let mut out = RaiseAfter {
            out: Vec::new(),
            limit: 1 << 20,
            flag: &flag,
        };
        let e = pack_layout(dir.path(), &mut out, &o).unwrap_err();
        assert!(matches!(e, PackError::Interrupted), "{e}");
        // One buffer between checks, plus what the writers hold.
        assert!(out.out.len() < 4 << 20, "{} bytes written", out.out.len());
    }

    #[test]
    fn an_interrupt_between_entries_leaves_no_temp_and_the_old_output() {
        let dir = layout(b"{}");
        for name in ["a", "b", "c"] {
            fs::write(dir.path().join("rootfs").join(name), name).unwrap();
        }
        let outdir = tempfile::tempdir().unwrap();
        let target = outdir.path().join("out.aci");
        fs::write(&target, b"old").unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (raise, seen) = (Arc::clone(&flag), Arc::clone(&steps));
        let o = PackOptions {
            interrupt: Some(Arc::clone(&flag)),
            hook: Some(Arc::new(move |step| {
                seen.lock().unwrap().push(step);
                if step == PackStep::MidWrite {
                    raise.store(true, Ordering::SeqCst);
                }
            })),
            ..opts(Compression::None)
        };
        let e = pack_layout_to_file(dir.path(), &target, true, &o).unwrap_err();
        assert!(matches!(e, PackError::Interrupted), "{e}");
        assert_eq!(
            *steps.lock().unwrap(),
            [PackStep::AfterTempCreate, PackStep::MidWrite]
        );
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(outdir.path()).unwrap().count(), 1);
        // Without the interrupt the same pack goes through.
        flag.store(false, Ordering::SeqCst);
        let o = PackOptions {
            interrupt: Some(flag),
            ..opts(Compression::None)
        };
        pack_layout_to_file(dir.path(), &target, true, &o).unwrap();
        assert_ne!(fs::read(&target).unwrap(), b"old");
    }

    #[test]
    fn packing_to_a_file_sweeps_dead_temps_beside_it() {
        let dir = layout(b"{}");
        let outdir = tempfile::tempdir().unwrap();
        let dead = outdir.path().join(".acido-pack-dead01.tmp");
        fs::write(&dead, b"partial").unwrap();
        let target = outdir.path().join("out.aci");
        pack_layout_to_file(dir.path(), &target, false, &opts(Compression::None)).unwrap();
        assert!(!dead.exists());
        assert_eq!(fs::read_dir(outdir.path()).unwrap().count(), 1);
    }
}
