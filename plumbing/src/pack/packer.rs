//! The packer proper: walks the tree in the documented order and writes
//! each entry through the tar writer, hashing as it goes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use xattr::FileExt as _;

use crate::compression::Encoder;
use crate::entry::Timestamp;

use super::sink::OutputGuard;
use super::source::{check_layout, open_regular};
use super::tar_writer::{self, HeaderSpec, StreamHasher, TarSink};
use super::{
    LayerReads, PackCounts, PackError, PackOptions, PackReport, PackStep, Source, OVERLAY_XATTRS,
};
use crate::id::IdHasher;

/// Extended attributes as (name, value) byte pairs, sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Size of the buffers between the tree, the hasher and the encoder.
const IO_BUF: usize = 256 * 1024;

/// Packs `source` into `out`; `guard` is the (device, inode) of an output
/// file that must not be packed into itself.
pub(super) fn pack_source(
    source: &Source<'_>,
    out: &mut dyn Write,
    opts: &PackOptions,
    guard: OutputGuard,
) -> Result<PackReport, PackError> {
    let packed = pack_source_with(source, out, opts, guard, IdHasher::new())?;
    Ok(PackReport {
        id: packed.digest,
        entries: packed.counts.entries,
        uncompressed_size: packed.counts.uncompressed_size,
        skipped_sockets: packed.counts.skipped_sockets,
    })
}

/// What [`pack_tree`] wrote: the digest its hasher took, and the counts.
pub(super) struct Packed<D> {
    pub(super) digest: D,
    pub(super) counts: PackCounts,
}

/// [`pack_source`] with the tar stream hashed by `hasher`.
pub(super) fn pack_source_with<H: StreamHasher>(
    source: &Source<'_>,
    out: &mut dyn Write,
    opts: &PackOptions,
    guard: OutputGuard,
    hasher: H,
) -> Result<Packed<H::Digest>, PackError> {
    match source {
        Source::Layout(dir) => {
            let manifest = check_layout(dir, guard)?;
            let all = |_: &[u8]| true;
            pack_tree(
                &manifest,
                &dir.join("rootfs"),
                Walk::Select(&all),
                out,
                opts,
                guard,
                hasher,
            )
        }
        Source::Selected {
            manifest,
            rootfs,
            select,
        } => pack_tree(
            manifest,
            rootfs,
            Walk::Select(*select),
            out,
            opts,
            guard,
            hasher,
        ),
        Source::Listed {
            manifest,
            rootfs,
            paths,
            layers,
        } => pack_tree(
            manifest,
            rootfs,
            Walk::Listed(paths, *layers),
            out,
            opts,
            guard,
            hasher,
        ),
    }
}

/// Which paths below the root [`pack_tree`] packs.
#[derive(Clone, Copy)]
enum Walk<'a> {
    /// The whole tree is walked; the paths `select` keeps are packed.
    Select(&'a dyn Fn(&[u8]) -> bool),
    /// Only these paths are visited, in walk order, those the layers
    /// hold read from their layer directory.
    Listed(&'a [Vec<u8>], Option<LayerReads<'a>>),
}

/// `paths` in the order [`pack_tree`]'s walk visits them: depth first,
/// siblings by name bytes, a directory before what is in it; that is,
/// ordered by their lists of components.
fn walk_order(paths: &[Vec<u8>]) -> Vec<&[u8]> {
    let mut sorted: Vec<&[u8]> = paths.iter().map(Vec::as_slice).collect();
    sorted.sort_by(|a, b| a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/')));
    sorted.dedup();
    sorted
}

/// The packer proper: writes the manifest, `rootfs` and the selected tree.
#[allow(clippy::too_many_arguments)]
fn pack_tree<H: StreamHasher>(
    manifest: &[u8],
    rootfs: &Path,
    walk: Walk<'_>,
    out: &mut dyn Write,
    opts: &PackOptions,
    guard: Option<(u64, u64)>,
    hasher: H,
) -> Result<Packed<H::Digest>, PackError> {
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
        tar: TarSink::with_hasher(BufWriter::with_capacity(IO_BUF, encoder), hasher),
        header: Vec::with_capacity(4096),
        data: vec![0u8; IO_BUF],
        links: HashMap::new(),
        entries: 0,
        skipped_sockets: 0,
        guard,
        interrupt: opts.interrupt.as_deref(),
        progress: opts.progress.as_deref(),
        from_layer: false,
    };

    packer.put_header(
        Path::new("manifest"),
        &HeaderSpec::plain_file(b"manifest", manifest.len() as u64),
    )?;
    packer.tar.write_all(manifest).map_err(write_err)?;
    packer.tar.pad().map_err(write_err)?;

    packer.add(rootfs, b"rootfs".to_vec(), &root_meta)?;

    let mut mid_write_hook = opts.hook.as_ref();
    // Each visited path: (its full path, its rootfs-relative bytes, its
    // lstat, whether it is read from an overlay layer directory).
    let mut visit =
        |path: &Path, rel: &[u8], meta: &Metadata, from_layer: bool| -> Result<(), PackError> {
            packer.check_interrupt()?;
            packer.from_layer = from_layer;
            let mut name = b"rootfs/".to_vec();
            name.extend_from_slice(rel);
            packer.add(path, name, meta)?;
            if let Some(hook) = mid_write_hook.take() {
                hook(PackStep::MidWrite);
            }
            Ok(())
        };
    match walk {
        Walk::Listed(paths, layers) => {
            for rel in walk_order(paths) {
                let layer = layers.and_then(|l| l.topmost.get(rel).and_then(|&i| l.dirs.get(i)));
                let path = layer
                    .map_or(rootfs, PathBuf::as_path)
                    .join(OsStr::from_bytes(rel));
                let meta = fs::symlink_metadata(&path).map_err(|source| PackError::Read {
                    path: path.clone(),
                    source,
                })?;
                visit(&path, rel, &meta, layer.is_some())?;
            }
        }
        Walk::Select(select) => {
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
                visit(item.path(), rel, &meta, false)?;
            }
        }
    }
    packer.check_interrupt()?;

    let (buffered, digest, uncompressed_size) = packer.tar.finish().map_err(write_err)?;
    let encoder = buffered
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    encoder.finish().map_err(write_err)?;
    Ok(Packed {
        digest,
        counts: PackCounts {
            entries: packer.entries,
            uncompressed_size,
            skipped_sockets: packer.skipped_sockets,
        },
    })
}

fn write_err(source: io::Error) -> PackError {
    PackError::Write { source }
}

/// [`PackError::Interrupted`] once the flag of `opts` is up.
pub(super) fn check_interrupt(opts: &PackOptions) -> Result<(), PackError> {
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
struct Packer<'a, W: Write, H: StreamHasher> {
    tar: TarSink<W, H>,
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
    progress: Option<&'a (dyn Fn(u64) + Send + Sync)>,
    /// Whether the entry being added is read from an overlay layer
    /// directory, whose overlayfs xattrs the mount would hide.
    from_layer: bool,
}

impl<W: Write, H: StreamHasher> Packer<'_, W, H> {
    /// [`PackError::Interrupted`] once the interrupt flag is up.
    fn check_interrupt(&self) -> Result<(), PackError> {
        interrupted(self.interrupt)
    }

    /// The xattrs of `xattrs` that the tree shows: all, except overlayfs's
    /// own on an entry read from a layer directory.
    fn shown(&self, mut xattrs: Xattrs) -> Xattrs {
        if self.from_layer {
            xattrs.retain(|(name, _)| !name.starts_with(OVERLAY_XATTRS));
        }
        xattrs
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
            xattrs = self.shown(read_xattrs(path, xattr::list(path), |n| {
                xattr::get(path, n)
            })?);
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
        let xattrs = self.shown(read_xattrs(path, file.list_xattr(), |n| file.get_xattr(n))?);
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
        // Whether a read met the file's end right after its last byte.
        let mut at_end = false;
        while left > 0 {
            // Once per buffer (256 KiB): a huge file stops promptly.
            self.check_interrupt()?;
            // One byte more than is left: a read that returns only what
            // is left has met the end, and no probe read is needed (a
            // tree of small files costs one read each, not two).
            let want = usize::try_from(left.saturating_add(1))
                .map_or(self.data.len(), |l| l.min(self.data.len()));
            let n = match file.read(&mut self.data[..want]) {
                Ok(0) => return Err(changed()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            let got = n as u64;
            if got > left {
                return Err(changed());
            }
            self.tar.write_all(&self.data[..n]).map_err(write_err)?;
            at_end = got == left && want as u64 > left;
            left -= got;
            if let Some(progress) = self.progress {
                progress(got);
            }
        }
        if at_end {
            return Ok(());
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
pub(super) fn read_xattrs(
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
