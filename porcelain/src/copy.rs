//! `copy` and `add`: host files and directories (and for `add`, local tar
//! archives, unpacked) into the rootfs of a build tree.
//!
//! This module reads the sources (host files and directories, tar
//! archives) and turns them into items for plumbing's tree writer
//! ([`acido_plumbing::tree`]), which resolves every destination inside the
//! rootfs as `chroot` would, so a symlink in the tree can redirect a copy
//! only to another place inside the rootfs, never outside.
//!
//! Rules (documented in `acido-copy(1)` and `acido-add(1)`; those about
//! the destination are the tree writer's):
//! - A directory source's *contents* go into the destination directory
//!   (like Dockerfile `COPY`); the directory gets the source's metadata
//!   only when this copy created it.
//! - A file goes to `DEST/NAME` when DEST ends with `/` or is an existing
//!   directory (after resolution), else to DEST itself. Several sources
//!   need a directory destination.
//! - Symlinks among the sources are copied as symlinks, never followed;
//!   hard links among the files of one source stay hard links.
//! - Metadata is kept as the source has it: mode (all 12 bits), owner,
//!   times with nanoseconds, xattrs; `--chown` and `--chmod` replace owner
//!   and mode. As a normal user, what cannot be restored is counted in the
//!   report, like `render` does.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use acido_plumbing::archive::{self, ArchiveError, Limits, TarError, TarParser};
use acido_plumbing::compression::Compression;
use acido_plumbing::entry::{Entry, EntryKind};
use acido_plumbing::fs::{device_node, open_root_dir};
use acido_plumbing::quote::quote_path;
use acido_plumbing::tree::{
    absolute, clean, join, Body, Data, Item, Meta, PlaceOptions, PlaceReport, Placer, TreeError,
};
use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;

/// How to copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Owner and group for everything copied, instead of the source's.
    pub chown: Option<(u32, u32)>,
    /// Permission bits (all 12) for copied files and directories, instead
    /// of the source's; symlinks keep theirs.
    pub chmod: Option<u32>,
    /// `add`: unpack sources that are tar archives (plain, gzip, bzip2 or
    /// xz) into the destination instead of copying them.
    pub unpack: bool,
    /// Owner and group for host files without `chown`, instead of the
    /// source's (archive members keep theirs).
    pub host_owner: Option<(u32, u32)>,
    /// Modification and access time (seconds since the epoch) for host
    /// files, instead of the source's (archive members keep theirs).
    pub host_mtime: Option<i64>,
}

/// What a copy wrote, and what it could not restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Regular files written (hard links not counted).
    pub files: u64,
    /// Directories created or given the source's metadata.
    pub dirs: u64,
    /// Symlinks, hard links, fifos and devices created.
    pub others: u64,
    /// File data bytes written.
    pub bytes: u64,
    /// Tar archives unpacked.
    pub archives: u64,
    /// Objects whose owner could not be set (not permitted).
    pub ownership_not_restored: u64,
    /// Extended attributes that could not be set.
    pub xattrs_not_restored: u64,
    /// Device nodes that could not be created (not permitted); absent.
    pub devices_not_created: u64,
}

/// Why a copy failed. Sources are checked before anything is written; a
/// failure while writing leaves what was written so far in the tree.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The build tree has no usable `rootfs` directory.
    #[error("{}: not a build tree: {source}", dir.display())]
    NoRootfs {
        /// The tree.
        dir: PathBuf,
        /// Why `rootfs` could not be opened.
        source: io::Error,
    },
    /// Nothing to copy.
    #[error("no source to copy")]
    NoSource,
    /// A source cannot be read.
    #[error("{}: {source}", path.display())]
    Source {
        /// The host path.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A source is a socket, which no image can hold.
    #[error("{}: sockets cannot be copied", path.display())]
    Socket {
        /// The host path.
        path: PathBuf,
    },
    /// Several sources, or an archive, need a directory destination.
    #[error(
        "{}: several sources need a directory destination (end it with '/')",
        quote_path(dest)
    )]
    NotADirectoryDestination {
        /// The destination inside the rootfs.
        dest: Vec<u8>,
    },
    /// A path inside the rootfs could not be resolved or written.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// An archive could not be read.
    #[error("{}: {source}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        source: ArchiveError,
    },
    /// An archive member would land above the destination.
    #[error("{}: member {}: leads above the destination", archive.display(), quote_path(member))]
    MemberEscapes {
        /// The archive.
        archive: PathBuf,
        /// The member's name as cleaned.
        member: Vec<u8>,
    },
    /// An archive's hard link names no earlier member.
    #[error("{}: member {}: hard link to {} which is not an earlier file of the archive", archive.display(), quote_path(member), quote_path(target))]
    BadHardLink {
        /// The archive.
        archive: PathBuf,
        /// The link member.
        member: Vec<u8>,
        /// Its target.
        target: Vec<u8>,
    },
    /// A `--chown` value is not `UID[:GID]` in numbers.
    #[error("owner {value:?}: expected UID[:GID] in numbers")]
    BadOwner {
        /// The value given.
        value: String,
    },
    /// A `--chmod` value is not an octal mode.
    #[error("mode {value:?}: expected an octal mode of at most 4 digits (e.g. 0644)")]
    BadMode {
        /// The value given.
        value: String,
    },
    /// A `DIR:DEST` operand has no `:`.
    #[error("{value:?}: expected DIR:DEST (the build tree, a colon, the path inside its rootfs)")]
    BadTarget {
        /// The operand given.
        value: OsString,
    },
}

/// Parses `--chown`: `UID` or `UID:GID` (numbers; `UID` alone means the
/// group of the same number, as `chown` reads `UID:` too).
pub fn parse_owner(value: &str) -> Result<(u32, u32), CopyError> {
    let bad = || CopyError::BadOwner {
        value: value.to_owned(),
    };
    let (user, group) = match value.split_once(':') {
        Some((user, "")) => (user, user),
        Some((user, group)) => (user, group),
        None => (value, value),
    };
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u32>().map_err(|_| bad())
    };
    Ok((number(user)?, number(group)?))
}

/// Parses `--chmod`: an octal mode of one to four digits.
pub fn parse_mode(value: &str) -> Result<u32, CopyError> {
    let digits = value.strip_prefix("0o").unwrap_or(value);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(CopyError::BadMode {
            value: value.to_owned(),
        });
    }
    u32::from_str_radix(digits, 8).map_err(|_| CopyError::BadMode {
        value: value.to_owned(),
    })
}

/// Splits a `DIR:DEST` operand at its first `:`: the build tree and the
/// destination inside its rootfs (relative destinations are taken from
/// the rootfs's `/`).
pub fn parse_target(value: &OsStr) -> Result<(PathBuf, Vec<u8>), CopyError> {
    let bytes = value.as_bytes();
    match bytes.iter().position(|&b| b == b':') {
        Some(at) if at > 0 && at + 1 < bytes.len() => Ok((
            PathBuf::from(OsString::from_vec(bytes[..at].to_vec())),
            bytes[at + 1..].to_vec(),
        )),
        _ => Err(CopyError::BadTarget {
            value: value.to_owned(),
        }),
    }
}

/// Copies `sources` (host paths) into the rootfs of the build tree `dir`
/// at `dest` (a path inside the rootfs). With [`CopyOptions::unpack`], tar
/// archives among the sources are unpacked into `dest`; their decompressed
/// copy is kept in a temp file in `scratch` while unpacking.
pub fn copy(
    dir: &Path,
    sources: &[PathBuf],
    dest: &[u8],
    opts: &CopyOptions,
    scratch: &Path,
) -> Result<CopyReport, CopyError> {
    if sources.is_empty() {
        return Err(CopyError::NoSource);
    }
    let rootfs = open_rootfs(dir)?;
    // Everything about the sources is checked before the tree is touched.
    let mut kinds = Vec::with_capacity(sources.len());
    for src in sources {
        let meta = fs::symlink_metadata(src).map_err(|source| CopyError::Source {
            path: src.clone(),
            source,
        })?;
        if meta.file_type().is_socket() {
            return Err(CopyError::Socket { path: src.clone() });
        }
        let archive = if opts.unpack && meta.is_file() {
            archive_compression(src)?
        } else {
            None
        };
        kinds.push((meta.is_dir(), archive));
    }
    let dest = absolute(dest);
    let mut placer = Placer::new(rootfs, place_options(opts));
    let dest_is_dir = dest.ends_with(b"/") || placer.resolve_dir(&dest, false).is_ok();
    let dest = clean(&dest);
    if sources.len() > 1 && !dest_is_dir {
        return Err(CopyError::NotADirectoryDestination { dest });
    }
    let mut archives = 0;
    for (src, (is_dir, archive)) in sources.iter().zip(kinds) {
        if let Some(compression) = archive {
            unpack(&mut placer, src, compression, &dest, scratch)?;
            archives += 1;
        } else if is_dir {
            copy_dir(&mut placer, src, &dest, opts)?;
        } else {
            let target = if dest_is_dir {
                let name = src.file_name().map(OsStr::as_bytes).unwrap_or_default();
                join(&dest, name)
            } else {
                dest.clone()
            };
            let mut links = HashMap::new();
            let item = host_item(src, &target, &mut links, opts)?;
            placer.place(&target, item)?;
        }
    }
    placer.finish_dirs()?;
    Ok(report(placer.report(), archives))
}

/// Makes the directory `path` (inside the rootfs of the build tree
/// `dir`) and its missing parents, mode 0755, resolving symlinks inside
/// the rootfs as [`copy`] does: `mkdir -p` in a chroot. Returns how many
/// directories were made.
pub fn make_dir(dir: &Path, path: &[u8]) -> Result<u64, CopyError> {
    let rootfs = open_rootfs(dir)?;
    let placer = Placer::new(rootfs, PlaceOptions::default());
    placer.resolve_dir(&absolute(path), true)?;
    Ok(placer.created_dirs())
}

fn place_options(opts: &CopyOptions) -> PlaceOptions {
    PlaceOptions {
        chown: opts.chown,
        chmod: opts.chmod,
    }
}

fn report(placed: &PlaceReport, archives: u64) -> CopyReport {
    CopyReport {
        files: placed.files,
        dirs: placed.dirs,
        others: placed.others,
        bytes: placed.bytes,
        archives,
        ownership_not_restored: placed.ownership_not_restored,
        xattrs_not_restored: placed.xattrs_not_restored,
        devices_not_created: placed.devices_not_created,
    }
}

fn open_rootfs(dir: &Path) -> Result<OwnedFd, CopyError> {
    open_root_dir(&dir.join("rootfs")).map_err(|errno| CopyError::NoRootfs {
        dir: dir.to_owned(),
        source: errno.into(),
    })
}

/// Whether `path` holds a tar archive `add` unpacks, and its compression:
/// the first block (decompressed when gzip, bzip2 or xz) must carry the
/// ustar magic. Anything else is copied as a file, as Dockerfile `ADD`
/// does.
fn archive_compression(path: &Path) -> Result<Option<Compression>, CopyError> {
    let read_err = |source| CopyError::Source {
        path: path.to_owned(),
        source,
    };
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .map_err(read_err)?
        .take(512)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let Ok(compression) = archive::detect(&head) else {
        return Ok(None);
    };
    if compression == Compression::None {
        return Ok(Some(compression));
    }
    let file = File::open(path).map_err(read_err)?;
    let mut block = Vec::with_capacity(512);
    // A decode error means "not this format after all": copied as a file.
    if archive::decoder(compression, file)
        .take(512)
        .read_to_end(&mut block)
        .is_err()
    {
        return Ok(None);
    }
    let is_tar = block.len() == 512 && archive::detect(&block).ok() == Some(Compression::None);
    Ok(is_tar.then_some(compression))
}

fn spec(secs: i64, nanos: i64) -> TimeSpec {
    TimeSpec::new(secs, nanos)
}

/// The item for host path `src`, to be placed at `target`. `links` maps
/// the (device, inode) of multiply-linked files to where the first was
/// placed.
fn host_item(
    src: &Path,
    target: &[u8],
    links: &mut HashMap<(u64, u64), Vec<u8>>,
    opts: &CopyOptions,
) -> Result<Item<'static>, CopyError> {
    let source_err = |source| CopyError::Source {
        path: src.to_owned(),
        source,
    };
    let m = fs::symlink_metadata(src).map_err(source_err)?;
    let ft = m.file_type();
    let body = if ft.is_dir() {
        Body::Dir
    } else if let Some(first) = (m.nlink() > 1)
        .then(|| links.get(&(m.dev(), m.ino())))
        .flatten()
    {
        Body::HardLink(first.clone())
    } else {
        if m.nlink() > 1 {
            links.insert((m.dev(), m.ino()), target.to_vec());
        }
        if ft.is_file() {
            Body::File(Data::File(File::open(src).map_err(source_err)?))
        } else if ft.is_symlink() {
            Body::Symlink(
                fs::read_link(src)
                    .map_err(source_err)?
                    .into_os_string()
                    .into_vec(),
            )
        } else if ft.is_fifo() {
            Body::Fifo
        } else if ft.is_char_device() {
            Body::Device(SFlag::S_IFCHR, m.rdev())
        } else if ft.is_block_device() {
            Body::Device(SFlag::S_IFBLK, m.rdev())
        } else {
            return Err(CopyError::Socket {
                path: src.to_owned(),
            });
        }
    };
    let mut xattrs = Vec::new();
    // `xattr::list`/`get` do not follow symlinks (llistxattr/lgetxattr).
    if let Ok(names) = xattr::list(src) {
        for name in names {
            if let Ok(Some(value)) = xattr::get(src, &name) {
                xattrs.push((name.into_vec(), value));
            }
        }
    }
    let (atime, mtime) = match opts.host_mtime {
        Some(secs) => (spec(secs, 0), spec(secs, 0)),
        None => (
            spec(m.atime(), m.atime_nsec()),
            spec(m.mtime(), m.mtime_nsec()),
        ),
    };
    Ok(Item {
        meta: Meta {
            mode: m.mode() & 0o7777,
            owner: Some(opts.host_owner.unwrap_or((m.uid(), m.gid()))),
            atime: Some(atime),
            mtime,
            xattrs,
        },
        body,
    })
}

/// Copies the contents of the host directory `src` into `dest`.
fn copy_dir(
    placer: &mut Placer,
    src: &Path,
    dest: &[u8],
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    let mut links = HashMap::new();
    for entry in walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(src).to_owned();
            CopyError::Source {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| io::ErrorKind::Other.into()),
            }
        })?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map(|p| p.as_os_str().as_bytes())
            .unwrap_or_default();
        let target = if rel.is_empty() {
            dest.to_vec()
        } else {
            join(dest, rel)
        };
        let item = host_item(entry.path(), &target, &mut links, opts)?;
        if entry.depth() == 0 {
            placer.place_dir(&target, item.meta, true)?;
        } else {
            placer.place(&target, item)?;
        }
    }
    Ok(())
}

/// Unpacks the tar archive `src` into `dest`.
fn unpack(
    placer: &mut Placer,
    src: &Path,
    compression: Compression,
    dest: &[u8],
    scratch: &Path,
) -> Result<(), CopyError> {
    let source_err = |source| CopyError::Source {
        path: src.to_owned(),
        source,
    };
    let archive_err = |source| CopyError::Archive {
        path: src.to_owned(),
        source,
    };
    let input = File::open(src).map_err(source_err)?;
    let mut temp = tempfile::tempfile_in(scratch).map_err(|source| CopyError::Source {
        path: scratch.to_owned(),
        source,
    })?;
    let limits = Limits::default();
    let mut parser = TarParser::new(&limits);
    let mut decoder = archive::decoder(compression, input);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(archive_err(ArchiveError::Decompress {
                    compression,
                    offset: total,
                    source,
                }))
            }
        };
        total += n as u64;
        if total > limits.max_decompressed_size {
            return Err(archive_err(ArchiveError::TooLarge {
                max: limits.max_decompressed_size,
                entry: Some(parser.current_entry()),
            }));
        }
        temp.write_all(&buf[..n])
            .map_err(|source| archive_err(ArchiveError::Write { source }))?;
        parser
            .feed(&buf[..n])
            .map_err(|e: TarError| archive_err(e.into()))?;
        if parser.is_done() {
            break;
        }
    }
    let entries = parser.finish().map_err(|e| archive_err(e.into()))?.entries;
    // The destination is a directory to unpack into.
    placer.resolve_dir(dest, true)?;
    for entry in &entries {
        unpack_entry(placer, src, &temp, dest, entry)?;
    }
    Ok(())
}

/// Places one member of the archive `src`, whose decompressed copy is
/// `archive`.
fn unpack_entry(
    placer: &mut Placer,
    src: &Path,
    archive: &File,
    dest: &[u8],
    e: &Entry,
) -> Result<(), CopyError> {
    let rel = member_path(src, &e.path)?;
    let target = join(dest, &rel);
    let meta = Meta {
        mode: e.mode & 0o7777,
        owner: u32::try_from(e.uid).ok().zip(u32::try_from(e.gid).ok()),
        atime: e.atime.map(|t| spec(t.secs, i64::from(t.nanos))),
        mtime: spec(e.mtime.secs, i64::from(e.mtime.nanos)),
        xattrs: e.xattrs.clone(),
    };
    let body = match e.kind {
        EntryKind::Directory => Body::Dir,
        EntryKind::Regular => Body::File(Data::Range {
            file: archive,
            offset: e.data_offset,
            size: e.size,
        }),
        EntryKind::Symlink => Body::Symlink(e.link_target.clone().unwrap_or_default()),
        EntryKind::HardLink => {
            let linked = e.link_target.clone().unwrap_or_default();
            let rel_target = member_path(src, &linked).map_err(|_| CopyError::BadHardLink {
                archive: src.to_owned(),
                member: e.path.clone(),
                target: linked.clone(),
            })?;
            Body::HardLink(join(dest, &rel_target))
        }
        EntryKind::Fifo => Body::Fifo,
        EntryKind::CharDevice | EntryKind::BlockDevice => {
            let (kind, dev) = device_node(e);
            Body::Device(kind, dev)
        }
    };
    if rel.is_empty() {
        // The archive's `.`: the destination directory itself.
        return match body {
            Body::Dir => Ok(placer.place_dir(dest, meta, true)?),
            _ => Err(CopyError::MemberEscapes {
                archive: src.to_owned(),
                member: e.path.clone(),
            }),
        };
    }
    let first = match &body {
        Body::HardLink(first) => Some(first.clone()),
        _ => None,
    };
    match (first, placer.place(&target, Item { meta, body })) {
        (Some(first), Err(TreeError::Io { .. })) => Err(CopyError::BadHardLink {
            archive: src.to_owned(),
            member: e.path.clone(),
            target: first,
        }),
        (_, result) => Ok(result?),
    }
}

/// An archive member's path relative to the destination: the cleaned name
/// without a leading `/` (as GNU tar strips it); `..` leading above the
/// destination is refused. `.` is the empty path.
fn member_path(archive: &Path, cleaned: &[u8]) -> Result<Vec<u8>, CopyError> {
    let rel = cleaned.strip_prefix(b"/").unwrap_or(cleaned);
    if rel == b"." || rel.is_empty() {
        return Ok(Vec::new());
    }
    if rel == b".." || rel.starts_with(b"../") {
        return Err(CopyError::MemberEscapes {
            archive: archive.to_owned(),
            member: cleaned.to_vec(),
        });
    }
    Ok(rel.to_vec())
}

#[cfg(test)]
mod tests;
