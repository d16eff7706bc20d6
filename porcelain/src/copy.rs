//! `copy` and `add`: host files and directories (and for `add`, local tar
//! archives, unpacked) into the rootfs of a build tree.
//!
//! The tree is the image being built and may hold anything an image can
//! hold, symlinks to `/etc` or to `../../..` included, so every path inside
//! it is resolved here the way `chroot` would resolve it: component by
//! component, each directory opened relative to its parent's fd with
//! `O_NOFOLLOW` (never through the kernel's own symlink resolution), a
//! symlink's target read and resolved again from the rootfs (absolute) or
//! from its directory (relative), and `..` at the rootfs staying at the
//! rootfs. So a symlink in the tree can redirect a copy, but only to
//! another place *inside* the rootfs, never outside.
//!
//! Rules (documented in `acido-copy(1)` and `acido-add(1)`):
//! - Intermediate directories of a destination are resolved as above and
//!   created (mode 0755) when missing.
//! - The final name of a non-directory is never followed: whatever
//!   non-directory is there (a file, a symlink) is replaced; an existing
//!   directory there is an error.
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

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use acido_plumbing::archive::{self, ArchiveError, Limits, TarError, TarParser};
use acido_plumbing::compression::Compression;
use acido_plumbing::entry::{Entry, EntryKind};
use acido_plumbing::fs::{device_node, open_beneath, open_dir_beneath, set_attrs_at, Attrs};
use acido_plumbing::quote::quote_path;
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};

/// How many symlinks one path may pass through (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

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
    #[error("rootfs path {}: cannot {op}: {source}", quote_path(path))]
    Tree {
        /// The path inside the rootfs.
        path: Vec<u8>,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A path inside the rootfs passes through too many symlinks (a loop).
    #[error(
        "rootfs path {}: more than {MAX_SYMLINKS} symlinks (a loop?)",
        quote_path(path)
    )]
    SymlinkLoop {
        /// The path inside the rootfs.
        path: Vec<u8>,
    },
    /// A path component inside the rootfs is neither a directory nor a
    /// symlink to one.
    #[error(
        "rootfs path {}: {} is not a directory",
        quote_path(path),
        quote_path(component)
    )]
    NotADirectory {
        /// The path inside the rootfs.
        path: Vec<u8>,
        /// The component that is not a directory.
        component: Vec<u8>,
    },
    /// A non-directory would replace a directory.
    #[error(
        "rootfs path {}: is a directory, not replaced by a non-directory",
        quote_path(path)
    )]
    WouldReplaceDirectory {
        /// The path inside the rootfs.
        path: Vec<u8>,
    },
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
    let mut placer = Placer::new(rootfs, opts);
    let dest_is_dir = dest.ends_with(b"/") || placer.resolve_dir(&dest, false).is_ok();
    let dest = clean(&dest);
    if sources.len() > 1 && !dest_is_dir {
        return Err(CopyError::NotADirectoryDestination { dest });
    }
    for (src, (is_dir, archive)) in sources.iter().zip(kinds) {
        if let Some(compression) = archive {
            placer.unpack(src, compression, &dest, scratch)?;
        } else if is_dir {
            placer.copy_dir(src, &dest)?;
        } else {
            let target = if dest_is_dir {
                let name = src.file_name().map(OsStr::as_bytes).unwrap_or_default();
                join(&dest, name)
            } else {
                dest.clone()
            };
            let mut links = HashMap::new();
            let item = host_item(src, &target, &mut links)?;
            placer.place(&target, item)?;
        }
    }
    placer.finish_dirs()?;
    Ok(placer.report)
}

/// Makes the directory `path` (inside the rootfs of the build tree
/// `dir`) and its missing parents, mode 0755, resolving symlinks inside
/// the rootfs as [`copy`] does: `mkdir -p` in a chroot. Returns how many
/// directories were made.
pub fn make_dir(dir: &Path, path: &[u8]) -> Result<u64, CopyError> {
    let rootfs = open_rootfs(dir)?;
    let opts = CopyOptions::default();
    let placer = Placer::new(rootfs, &opts);
    placer.resolve_dir(&absolute(path), true)?;
    Ok(placer.created.get())
}

fn open_rootfs(dir: &Path) -> Result<OwnedFd, CopyError> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
        .open(dir.join("rootfs"))
        .map(OwnedFd::from)
        .map_err(|source| CopyError::NoRootfs {
            dir: dir.to_owned(),
            source,
        })
}

/// `dest` made absolute inside the rootfs.
fn absolute(dest: &[u8]) -> Vec<u8> {
    if dest.starts_with(b"/") {
        dest.to_vec()
    } else {
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(dest);
        abs
    }
}

/// An absolute path inside the rootfs with empty and `.` components
/// dropped and no trailing `/` (`..` is left for the resolver, which keeps
/// it inside the rootfs).
fn clean(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for part in path.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." {
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Splits a clean absolute path into its parent and last name (`None` for
/// `/`, which has no name).
fn split_last(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = path.iter().rposition(|&b| b == b'/')?;
    let name = &path[at + 1..];
    if name.is_empty() {
        return None;
    }
    let parent = if at == 0 { &b"/"[..] } else { &path[..at] };
    Some((parent, name))
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

/// Metadata to give a copied object.
#[derive(Debug, Clone)]
struct Meta {
    mode: u32,
    /// `None` when the source's id does not fit in 32 bits.
    owner: Option<(u32, u32)>,
    atime: Option<TimeSpec>,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where a regular file's data comes from.
#[derive(Debug, Clone)]
enum Data {
    /// A host file.
    Host(PathBuf),
    /// A byte range of the decompressed archive.
    Range { offset: u64, size: u64 },
}

/// What to create.
#[derive(Debug, Clone)]
enum Body {
    Dir,
    File(Data),
    Symlink(Vec<u8>),
    /// A hard link to the object already placed at this rootfs path.
    HardLink(Vec<u8>),
    Fifo,
    Device(SFlag, u64),
}

#[derive(Debug, Clone)]
struct Item {
    meta: Meta,
    body: Body,
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
) -> Result<Item, CopyError> {
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
            Body::File(Data::Host(src.to_owned()))
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
    Ok(Item {
        meta: Meta {
            mode: m.mode() & 0o7777,
            owner: Some((m.uid(), m.gid())),
            atime: Some(spec(m.atime(), m.atime_nsec())),
            mtime: spec(m.mtime(), m.mtime_nsec()),
            xattrs,
        },
        body,
    })
}

/// Writes items into the rootfs, resolving every path inside it.
struct Placer<'o> {
    root: OwnedFd,
    opts: &'o CopyOptions,
    report: CopyReport,
    euid: Uid,
    egid: Gid,
    /// The last parent directory resolved, reused while items stay in it.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories whose metadata is set once everything is written.
    dirs: Vec<(Vec<u8>, Meta)>,
    /// The decompressed archive being unpacked.
    archive: Option<File>,
    /// Directories created while resolving paths (the resolver only
    /// borrows the placer).
    created: Cell<u64>,
}

fn tree_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(Errno) -> CopyError + 'p {
    move |errno| CopyError::Tree {
        path: path.to_vec(),
        op,
        source: errno.into(),
    }
}

fn tree_io_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(io::Error) -> CopyError + 'p {
    move |source| CopyError::Tree {
        path: path.to_vec(),
        op,
        source,
    }
}

fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<FileStat, Errno> {
    stat::fstatat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

impl<'o> Placer<'o> {
    fn new(root: OwnedFd, opts: &'o CopyOptions) -> Self {
        Placer {
            root,
            opts,
            report: CopyReport::default(),
            euid: unistd::geteuid(),
            egid: unistd::getegid(),
            parent: None,
            dirs: Vec::new(),
            archive: None,
            created: Cell::new(0),
        }
    }

    /// Opens the directory at `path` inside the rootfs, resolving symlinks
    /// as `chroot` would (see the module docs), creating missing
    /// directories (mode 0755) when `create` is set.
    fn resolve_dir(&self, path: &[u8], create: bool) -> Result<OwnedFd, CopyError> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .map(<[u8]>::to_vec)
            .collect();
        let mut symlinks = 0;
        while let Some(part) = queue.pop_front() {
            if part == b".." {
                // `..` of the rootfs is the rootfs, as in a chroot.
                stack.pop();
                continue;
            }
            let top = stack.last().map_or(self.root.as_fd(), |fd| fd.as_fd());
            match open_dir_beneath(top, &part) {
                Ok(fd) => {
                    stack.push(fd);
                    continue;
                }
                Err(Errno::ENOENT) if create => {
                    match stat::mkdirat(
                        Some(top.as_raw_fd()),
                        OsStr::from_bytes(&part),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(errno) => return Err(tree_err(path, "create a directory in")(errno)),
                    }
                    let fd = open_dir_beneath(top, &part)
                        .map_err(tree_err(path, "open a directory in"))?;
                    // 0755 whatever the umask, as Dockerfile COPY makes them.
                    stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
                        .map_err(tree_err(path, "set the mode of a directory in"))?;
                    self.count_created_dir();
                    stack.push(fd);
                    continue;
                }
                Err(Errno::ENOENT) => {
                    return Err(tree_err(path, "resolve")(Errno::ENOENT));
                }
                Err(_) => {}
            }
            // Not openable as a plain directory: a symlink is resolved
            // inside the rootfs, anything else is no directory.
            let st = lstat_at(top, &part).map_err(tree_err(path, "resolve"))?;
            if !is_kind(&st, SFlag::S_IFLNK) {
                return Err(CopyError::NotADirectory {
                    path: path.to_vec(),
                    component: part,
                });
            }
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(CopyError::SymlinkLoop {
                    path: path.to_vec(),
                });
            }
            let target = fcntl::readlinkat(Some(top.as_raw_fd()), OsStr::from_bytes(&part))
                .map_err(tree_err(path, "read a symlink in"))?
                .into_vec();
            if target.starts_with(b"/") {
                stack.clear();
            }
            for piece in target
                .split(|&b| b == b'/')
                .filter(|p| !p.is_empty() && *p != b".")
                .rev()
            {
                queue.push_front(piece.to_vec());
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => open_dir_beneath(self.root.as_fd(), b".").map_err(tree_err(path, "open")),
        }
    }

    fn count_created_dir(&self) {
        self.created.set(self.created.get() + 1);
    }

    /// The parent directory of `path` (created as needed; the last one is
    /// kept while consecutive items share it) and the last name.
    fn parent_of(&mut self, path: &[u8]) -> Result<(OwnedFd, Vec<u8>), CopyError> {
        let (parent, name) = split_last(path).ok_or_else(|| CopyError::Tree {
            path: path.to_vec(),
            op: "create",
            source: io::ErrorKind::AlreadyExists.into(),
        })?;
        let cached = match &self.parent {
            Some((p, fd)) if p.as_slice() == parent => Some(fd.try_clone()),
            _ => None,
        };
        let fd = match cached {
            Some(fd) => fd.map_err(tree_io_err(path, "open the parent of"))?,
            None => {
                let fd = self.resolve_dir(parent, true)?;
                let copy = fd
                    .try_clone()
                    .map_err(tree_io_err(path, "open the parent of"))?;
                self.parent = Some((parent.to_vec(), fd));
                copy
            }
        };
        Ok((fd, name.to_vec()))
    }

    /// Places `item` at `path` (clean, absolute inside the rootfs).
    fn place(&mut self, path: &[u8], item: Item) -> Result<(), CopyError> {
        if let Body::Dir = item.body {
            return self.place_dir(path, item.meta, false);
        }
        let link_target = match &item.body {
            Body::HardLink(first) => Some(self.resolve_name(first)?),
            _ => None,
        };
        let (parent, name) = self.parent_of(path)?;
        match lstat_at(parent.as_fd(), &name) {
            Ok(st) if is_kind(&st, SFlag::S_IFDIR) => {
                return Err(CopyError::WouldReplaceDirectory {
                    path: path.to_vec(),
                })
            }
            Ok(_) => unistd::unlinkat(
                Some(parent.as_raw_fd()),
                OsStr::from_bytes(&name),
                unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(tree_err(path, "replace"))?,
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(tree_err(path, "inspect")(errno)),
        }
        let w = Writer {
            opts: self.opts,
            euid: self.euid,
            egid: self.egid,
            report: &mut self.report,
        };
        w.create(
            parent.as_fd(),
            &name,
            path,
            &item,
            self.archive.as_ref(),
            link_target,
        )
    }

    /// The parent directory fd and name of an already placed object.
    fn resolve_name(&self, path: &[u8]) -> Result<(OwnedFd, Vec<u8>), CopyError> {
        let (parent, name) = split_last(path).ok_or_else(|| CopyError::Tree {
            path: path.to_vec(),
            op: "link to",
            source: io::ErrorKind::InvalidInput.into(),
        })?;
        Ok((self.resolve_dir(parent, false)?, name.to_vec()))
    }

    /// Places a directory: created when missing (and given `meta`), given
    /// `meta` when it is a real directory there, left alone when a symlink
    /// leads to it (its metadata belongs to wherever it points). The
    /// destination itself (`top`) keeps its metadata when it existed.
    fn place_dir(&mut self, path: &[u8], meta: Meta, top: bool) -> Result<(), CopyError> {
        let Some((_, name)) = split_last(path) else {
            // The rootfs itself: never changed by a copy into it.
            return Ok(());
        };
        let name = name.to_vec();
        let (parent, _) = self.parent_of(path)?;
        let parent = parent.as_fd();
        let existed = match open_dir_beneath(parent, &name) {
            Ok(_) => Some(true),
            Err(Errno::ENOENT) => None,
            Err(_) => match lstat_at(parent, &name) {
                Ok(st) if is_kind(&st, SFlag::S_IFLNK) => Some(false),
                Ok(_) => {
                    // A non-directory is replaced by the directory, as tar does.
                    unistd::unlinkat(
                        Some(parent.as_raw_fd()),
                        OsStr::from_bytes(&name),
                        unistd::UnlinkatFlags::NoRemoveDir,
                    )
                    .map_err(tree_err(path, "replace"))?;
                    None
                }
                Err(errno) => return Err(tree_err(path, "inspect")(errno)),
            },
        };
        match existed {
            None => {
                stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    OsStr::from_bytes(&name),
                    Mode::from_bits_truncate(0o700),
                )
                .map_err(tree_err(path, "create directory"))?;
                self.report.dirs += 1;
                self.dirs.push((path.to_vec(), meta));
            }
            Some(true) if !top => {
                self.report.dirs += 1;
                self.dirs.push((path.to_vec(), meta));
            }
            Some(_) => {
                // A symlink to a directory: make sure it resolves to one.
                self.resolve_dir(path, true)?;
            }
        }
        Ok(())
    }

    /// Sets the recorded directories' metadata, deepest first, so writing
    /// their children did not change their times and a read-only directory
    /// did not stop its children.
    fn finish_dirs(&mut self) -> Result<(), CopyError> {
        self.parent = None;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(path, _)| {
            std::cmp::Reverse(path.iter().filter(|&&b| b == b'/').count())
        });
        for (path, meta) in dirs {
            let (parent, name) = self.resolve_name(&path)?;
            let fd = open_dir_beneath(parent.as_fd(), &name).map_err(tree_err(&path, "open"))?;
            let mut w = Writer {
                opts: self.opts,
                euid: self.euid,
                egid: self.egid,
                report: &mut self.report,
            };
            w.finish_fd(fd.as_fd(), &path, &meta)?;
        }
        self.report.dirs += self.created.replace(0);
        Ok(())
    }

    /// Copies the contents of the host directory `src` into `dest`.
    fn copy_dir(&mut self, src: &Path, dest: &[u8]) -> Result<(), CopyError> {
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
            let item = host_item(entry.path(), &target, &mut links)?;
            if entry.depth() == 0 {
                self.place_dir(&target, item.meta, true)?;
            } else {
                self.place(&target, item)?;
            }
        }
        Ok(())
    }

    /// Unpacks the tar archive `src` into `dest`.
    fn unpack(
        &mut self,
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
        self.archive = Some(temp);
        self.report.archives += 1;
        let dest_dir = dest.to_vec();
        // The destination is a directory to unpack into.
        self.resolve_dir(&dest_dir, true)?;
        let mut result = Ok(());
        for entry in &entries {
            result = self.unpack_entry(src, &dest_dir, entry);
            if result.is_err() {
                break;
            }
        }
        self.archive = None;
        result
    }

    fn unpack_entry(&mut self, src: &Path, dest: &[u8], e: &Entry) -> Result<(), CopyError> {
        let rel = member_path(src, &e.path)?;
        let target = join(dest, &rel);
        let (mode, atime) = (
            e.mode & 0o7777,
            e.atime.map(|t| spec(t.secs, i64::from(t.nanos))),
        );
        let owner = u32::try_from(e.uid).ok().zip(u32::try_from(e.gid).ok());
        let meta = Meta {
            mode,
            owner,
            atime,
            mtime: spec(e.mtime.secs, i64::from(e.mtime.nanos)),
            xattrs: e.xattrs.clone(),
        };
        let body = match e.kind {
            EntryKind::Directory => Body::Dir,
            EntryKind::Regular => Body::File(Data::Range {
                offset: e.data_offset,
                size: e.size,
            }),
            EntryKind::Symlink => Body::Symlink(e.link_target.clone().unwrap_or_default()),
            EntryKind::HardLink => {
                let linked = e.link_target.clone().unwrap_or_default();
                let bad = || CopyError::BadHardLink {
                    archive: src.to_owned(),
                    member: e.path.clone(),
                    target: linked.clone(),
                };
                let rel_target = member_path(src, &linked).map_err(|_| bad())?;
                Body::HardLink(join(dest, &rel_target))
            }
            EntryKind::Fifo => Body::Fifo,
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                let (kind, dev) = device_node(e);
                Body::Device(kind, dev)
            }
        };
        let item = Item { meta, body };
        if rel.is_empty() {
            // The archive's `.`: the destination directory itself.
            return match item.body {
                Body::Dir => self.place_dir(dest, item.meta, true),
                _ => Err(CopyError::MemberEscapes {
                    archive: src.to_owned(),
                    member: e.path.clone(),
                }),
            };
        }
        match (&item.body, self.place(&target, item.clone())) {
            (Body::HardLink(first), Err(CopyError::Tree { .. })) => Err(CopyError::BadHardLink {
                archive: src.to_owned(),
                member: e.path.clone(),
                target: first.clone(),
            }),
            (_, result) => result,
        }
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

/// Creates objects and sets their metadata.
struct Writer<'r, 'o> {
    opts: &'o CopyOptions,
    euid: Uid,
    egid: Gid,
    report: &'r mut CopyReport,
}

impl Writer<'_, '_> {
    fn create(
        self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        item: &Item,
        archive: Option<&File>,
        link_target: Option<(OwnedFd, Vec<u8>)>,
    ) -> Result<(), CopyError> {
        let mut w = self;
        let at = OsStr::from_bytes(name);
        match &item.body {
            Body::Dir => Err(tree_err(path, "create")(Errno::EISDIR)),
            Body::File(data) => {
                let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
                let fd = open_beneath(parent, name, flags, Mode::from_bits_truncate(0o600))
                    .map_err(tree_err(path, "create file"))?;
                let mut out = File::from(fd);
                let n = match data {
                    Data::Host(src) => {
                        let mut input = File::open(src).map_err(|source| CopyError::Source {
                            path: src.clone(),
                            source,
                        })?;
                        // std uses copy_file_range (or sendfile) File to File.
                        io::copy(&mut input, &mut out)
                            .map_err(tree_io_err(path, "write the data of"))?
                    }
                    Data::Range { offset, size } => {
                        let mut input = archive
                            .ok_or_else(|| tree_err(path, "read the data of")(Errno::EBADF))?;
                        input
                            .seek(SeekFrom::Start(*offset))
                            .map_err(tree_io_err(path, "read the data of"))?;
                        let n = io::copy(&mut input.take(*size), &mut out)
                            .map_err(tree_io_err(path, "write the data of"))?;
                        if n != *size {
                            return Err(tree_io_err(path, "read the data of")(
                                io::ErrorKind::UnexpectedEof.into(),
                            ));
                        }
                        n
                    }
                };
                w.report.files += 1;
                w.report.bytes += n;
                w.finish_fd(out.as_fd(), path, &item.meta)
            }
            Body::Symlink(target) => {
                unistd::symlinkat(OsStr::from_bytes(target), Some(parent.as_raw_fd()), at)
                    .map_err(tree_err(path, "create symlink"))?;
                w.report.others += 1;
                w.finish_at(parent, name, path, &item.meta, true)
            }
            Body::HardLink(_) => {
                let (dir, first) =
                    link_target.ok_or_else(|| tree_err(path, "link")(Errno::ENOENT))?;
                // No AT_SYMLINK_FOLLOW: a symlink there is linked, not followed.
                unistd::linkat(
                    Some(dir.as_raw_fd()),
                    OsStr::from_bytes(&first),
                    Some(parent.as_raw_fd()),
                    at,
                    AtFlags::empty(),
                )
                .map_err(tree_err(path, "create hard link"))?;
                w.report.others += 1;
                Ok(())
            }
            Body::Fifo => {
                unistd::mkfifoat(
                    Some(parent.as_raw_fd()),
                    at,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(tree_err(path, "create fifo"))?;
                w.report.others += 1;
                w.finish_at(parent, name, path, &item.meta, false)
            }
            Body::Device(kind, dev) => {
                match stat::mknodat(
                    Some(parent.as_raw_fd()),
                    at,
                    *kind,
                    Mode::from_bits_truncate(0o600),
                    *dev,
                ) {
                    Ok(()) => {
                        w.report.others += 1;
                        w.finish_at(parent, name, path, &item.meta, false)
                    }
                    Err(Errno::EPERM) => {
                        w.report.devices_not_created += 1;
                        Ok(())
                    }
                    Err(errno) => Err(tree_err(path, "create device")(errno)),
                }
            }
        }
    }

    /// The owner to set, or `None` when it already is the creator's.
    fn wanted_owner(&mut self, meta: &Meta) -> Option<(Uid, Gid)> {
        let Some((uid, gid)) = self.opts.chown.or(meta.owner) else {
            self.report.ownership_not_restored += 1;
            return None;
        };
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        (self.euid.is_root() || uid != self.euid || gid != self.egid).then_some((uid, gid))
    }

    fn mode(&self, meta: &Meta) -> Mode {
        Mode::from_bits_truncate(self.opts.chmod.unwrap_or(meta.mode) & 0o7777)
    }

    /// Owner, then mode (chown clears setuid/setgid), xattrs, times.
    fn finish_fd(&mut self, fd: BorrowedFd<'_>, path: &[u8], meta: &Meta) -> Result<(), CopyError> {
        if let Some((uid, gid)) = self.wanted_owner(meta) {
            match unistd::fchown(fd.as_raw_fd(), Some(uid), Some(gid)) {
                Ok(()) => {}
                Err(Errno::EPERM | Errno::EINVAL) => self.report.ownership_not_restored += 1,
                Err(errno) => return Err(tree_err(path, "set the owner of")(errno)),
            }
        }
        stat::fchmod(fd.as_raw_fd(), self.mode(meta)).map_err(tree_err(path, "set the mode of"))?;
        let file = File::from(
            fd.try_clone_to_owned()
                .map_err(tree_io_err(path, "reopen"))?,
        );
        {
            use xattr::FileExt as _;
            for (name, value) in &meta.xattrs {
                if file.set_xattr(OsStr::from_bytes(name), value).is_err() {
                    self.report.xattrs_not_restored += 1;
                }
            }
        }
        let atime = meta.atime.unwrap_or(TimeSpec::UTIME_OMIT);
        stat::futimens(fd.as_raw_fd(), &atime, &meta.mtime)
            .map_err(tree_err(path, "set the times of"))
    }

    /// Metadata of an object that cannot be opened for writing (symlink,
    /// fifo, device), by name in its parent, which this copy just created.
    fn finish_at(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        meta: &Meta,
        symlink: bool,
    ) -> Result<(), CopyError> {
        let attrs = Attrs {
            owner: self.wanted_owner(meta),
            mode: (!symlink).then(|| self.mode(meta)),
            xattrs: &[],
            atime: meta.atime.unwrap_or(TimeSpec::UTIME_OMIT),
            mtime: meta.mtime,
        };
        let missed =
            set_attrs_at(parent, name, &attrs).map_err(|err| tree_err(path, err.op)(err.errno))?;
        if missed.owner {
            self.report.ownership_not_restored += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::UtimensatFlags;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A build tree with an empty rootfs, and a scratch dir.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tree");
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        fs::write(dir.join("manifest"), "{}").unwrap();
        (tmp, dir)
    }

    fn run(
        dir: &Path,
        sources: &[&Path],
        dest: &str,
        opts: &CopyOptions,
    ) -> Result<CopyReport, CopyError> {
        let sources: Vec<PathBuf> = sources.iter().map(|p| p.to_path_buf()).collect();
        copy(dir, &sources, dest.as_bytes(), opts, dir.parent().unwrap())
    }

    fn set_mtime(path: &Path, secs: i64) {
        let t = TimeSpec::new(secs, 123_456_789);
        stat::utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
    }

    #[test]
    fn options_parse_or_name_the_bad_value() {
        assert_eq!(parse_owner("10:20").unwrap(), (10, 20));
        assert_eq!(parse_owner("7").unwrap(), (7, 7));
        assert_eq!(parse_owner("7:").unwrap(), (7, 7));
        for bad in ["", ":1", "a:b", "1:-2", "99999999999"] {
            assert!(
                matches!(parse_owner(bad), Err(CopyError::BadOwner { .. })),
                "{bad}"
            );
        }
        assert_eq!(parse_mode("0644").unwrap(), 0o644);
        assert_eq!(parse_mode("4755").unwrap(), 0o4755);
        assert_eq!(parse_mode("0o700").unwrap(), 0o700);
        for bad in ["", "8", "12345", "u+x", "0x1"] {
            assert!(
                matches!(parse_mode(bad), Err(CopyError::BadMode { .. })),
                "{bad}"
            );
        }
        let (dir, dest) = parse_target(OsStr::new("t:/a:b")).unwrap();
        assert_eq!(
            (dir.as_path(), dest.as_slice()),
            (Path::new("t"), &b"/a:b"[..])
        );
        for bad in ["t", ":/x", "t:"] {
            assert!(
                matches!(
                    parse_target(OsStr::new(bad)),
                    Err(CopyError::BadTarget { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_file_keeps_its_data_mode_and_times_and_parents_are_made() {
        let (tmp, dir) = tree();
        let src = tmp.path().join("hello");
        fs::write(&src, "hi\n").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o4751)).unwrap();
        set_mtime(&src, 1_000_000_000);
        let report = run(
            &dir,
            &[&src],
            "/usr/local/bin/greet",
            &CopyOptions::default(),
        )
        .unwrap();
        let out = dir.join("rootfs/usr/local/bin/greet");
        assert_eq!(fs::read(&out).unwrap(), b"hi\n");
        let m = fs::symlink_metadata(&out).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4751);
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000_000, 123_456_789));
        let parent = fs::metadata(dir.join("rootfs/usr/local")).unwrap();
        assert_eq!(parent.mode() & 0o7777, 0o755);
        assert_eq!((report.files, report.bytes, report.dirs), (1, 3, 3));

        // An existing directory destination receives the file by name;
        // --chmod replaces the mode.
        let opts = CopyOptions {
            chmod: Some(0o600),
            ..CopyOptions::default()
        };
        run(&dir, &[&src], "/usr", &opts).unwrap();
        let m = fs::metadata(dir.join("rootfs/usr/hello")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
    }

    #[test]
    fn a_directory_copies_its_contents_with_links_kept() {
        let (tmp, dir) = tree();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub/deeper")).unwrap();
        fs::write(src.join("sub/a"), "a").unwrap();
        fs::hard_link(src.join("sub/a"), src.join("b")).unwrap();
        symlink("sub/a", src.join("link")).unwrap();
        fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
        set_mtime(&src.join("sub"), 1_500_000_000);
        run(&dir, &[&src], "/opt/app/", &CopyOptions::default()).unwrap();
        let root = dir.join("rootfs/opt/app");
        assert_eq!(fs::read(root.join("sub/a")).unwrap(), b"a");
        let (a, b) = (
            fs::metadata(root.join("sub/a")).unwrap(),
            fs::metadata(root.join("b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "hard link kept");
        assert_eq!(
            fs::read_link(root.join("link")).unwrap(),
            Path::new("sub/a")
        );
        let sub = fs::metadata(root.join("sub")).unwrap();
        assert_eq!(sub.mode() & 0o7777, 0o750);
        assert_eq!(
            sub.mtime(),
            1_500_000_000,
            "directory times set after its children"
        );
        assert!(root.join("sub/deeper").is_dir());
    }

    #[test]
    fn symlinks_in_the_tree_resolve_inside_the_rootfs() {
        let (tmp, dir) = tree();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), "keep").unwrap();
        let rootfs = dir.join("rootfs");
        // An absolute link to the host directory, a relative one climbing
        // far above the rootfs, and a link in the final name.
        symlink(&outside, rootfs.join("abs")).unwrap();
        symlink("../../../../../../..", rootfs.join("up")).unwrap();
        fs::create_dir(rootfs.join("etc")).unwrap();
        symlink(outside.join("victim"), rootfs.join("etc/passwd")).unwrap();
        let src = tmp.path().join("f");
        fs::write(&src, "new").unwrap();
        let opts = CopyOptions::default();
        run(&dir, &[&src], "/abs/victim", &opts).unwrap();
        run(&dir, &[&src], "/up/x", &opts).unwrap();
        run(&dir, &[&src], "/up/../../y/", &opts).unwrap();
        run(&dir, &[&src], "/etc/passwd", &opts).unwrap();
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            1,
            "nothing written outside"
        );
        let inside = rootfs
            .join(outside.strip_prefix("/").unwrap())
            .join("victim");
        assert_eq!(
            fs::read(inside).unwrap(),
            b"new",
            "/abs resolved as in a chroot"
        );
        assert_eq!(fs::read(rootfs.join("x")).unwrap(), b"new");
        assert_eq!(fs::read(rootfs.join("y/f")).unwrap(), b"new");
        let passwd = fs::symlink_metadata(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.is_file(), "the final name is replaced, not followed");
    }

    #[test]
    fn make_dir_is_mkdir_p_inside_the_rootfs() {
        let (tmp, dir) = tree();
        let rootfs = dir.join("rootfs");
        symlink(tmp.path(), rootfs.join("host")).unwrap();
        assert_eq!(make_dir(&dir, b"srv/app").unwrap(), 2);
        assert_eq!(make_dir(&dir, b"/srv/app/").unwrap(), 0);
        make_dir(&dir, b"/host/made").unwrap();
        assert!(!tmp.path().join("made").exists());
        assert!(rootfs
            .join(tmp.path().strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        let m = fs::metadata(rootfs.join("srv/app")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o755);
    }

    #[test]
    fn loops_non_directories_and_several_sources_are_refused() {
        let (tmp, dir) = tree();
        let rootfs = dir.join("rootfs");
        symlink("loop", rootfs.join("loop")).unwrap();
        fs::write(rootfs.join("file"), "").unwrap();
        fs::create_dir(rootfs.join("d")).unwrap();
        let src = tmp.path().join("f");
        fs::write(&src, "x").unwrap();
        let opts = CopyOptions::default();
        assert!(matches!(
            run(&dir, &[&src], "/loop/x", &opts),
            Err(CopyError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            run(&dir, &[&src], "/file/x", &opts),
            Err(CopyError::NotADirectory { .. })
        ));
        let two = [src.as_path(), src.as_path()];
        assert!(matches!(
            run(&dir, &two, "/new", &opts),
            Err(CopyError::NotADirectoryDestination { .. })
        ));
        assert!(!rootfs.join("new").exists());
        let err = run(&dir, &[&tmp.path().join("missing")], "/", &opts).unwrap_err();
        assert!(matches!(err, CopyError::Source { .. }), "{err}");
        // A directory in the way of a file inside a copied directory.
        let srcdir = tmp.path().join("sd");
        fs::create_dir(&srcdir).unwrap();
        fs::write(srcdir.join("d"), "").unwrap();
        assert!(matches!(
            run(&dir, &[&srcdir], "/", &opts),
            Err(CopyError::WouldReplaceDirectory { .. })
        ));
    }

    /// (name, typeflag, link target, data).
    type Member<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

    fn tar_with(members: &[Member<'_>]) -> Vec<u8> {
        // (name, typeflag, link target, data); names written raw so
        // hostile ones survive.
        let mut out = Vec::new();
        for (name, kind, link, data) in members {
            let mut h = tar::Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            h.set_entry_type(tar::EntryType::new(*kind));
            h.set_size(data.len() as u64);
            h.set_mode(if *kind == b'5' { 0o755 } else { 0o640 });
            h.set_mtime(1_234_567_890);
            h.set_uid(0);
            h.set_gid(0);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn add_unpacks_archives_inside_the_rootfs_only() {
        let (tmp, dir) = tree();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let rootfs = dir.join("rootfs");
        let abs_outside = outside.as_os_str().as_bytes();
        let tarball = tar_with(&[
            (b"./", b'5', b"", b""),
            (b"pkg/", b'5', b"", b""),
            (b"pkg/data.txt", b'0', b"", b"payload"),
            (b"pkg/again", b'1', b"pkg/data.txt", b""),
            // A symlink out of the rootfs, then a write through it.
            (b"pkg/esc", b'2', abs_outside, b""),
            (b"pkg/esc/planted", b'0', b"", b"gotcha"),
        ]);
        let archive = tmp.path().join("pkg.tar.gz");
        fs::write(&archive, gzip(&tarball)).unwrap();
        let opts = CopyOptions {
            unpack: true,
            ..CopyOptions::default()
        };
        let report = run(&dir, &[&archive], "/srv", &opts).unwrap();
        assert_eq!(report.archives, 1);
        assert_eq!(
            fs::read(rootfs.join("srv/pkg/data.txt")).unwrap(),
            b"payload"
        );
        let (a, b) = (
            fs::metadata(rootfs.join("srv/pkg/data.txt")).unwrap(),
            fs::metadata(rootfs.join("srv/pkg/again")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o640);
        assert_eq!(a.mtime(), 1_234_567_890);
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        let planted = rootfs
            .join(outside.strip_prefix("/").unwrap())
            .join("planted");
        assert_eq!(fs::read(planted).unwrap(), b"gotcha");

        // `copy` of the same file, and `add` of a file that is no tar,
        // copy bytes.
        run(&dir, &[&archive], "/copied.tgz", &CopyOptions::default()).unwrap();
        assert_eq!(
            fs::read(rootfs.join("copied.tgz")).unwrap(),
            fs::read(&archive).unwrap()
        );
        let text = tmp.path().join("notes.gz");
        fs::write(&text, gzip(b"just text")).unwrap();
        run(&dir, &[&text], "/n.gz", &opts).unwrap();
        assert_eq!(
            fs::read(rootfs.join("n.gz")).unwrap(),
            fs::read(&text).unwrap()
        );

        // A member climbing above the destination is refused.
        let evil = tmp.path().join("evil.tar");
        fs::write(&evil, tar_with(&[(b"../../x", b'0', b"", b"x")])).unwrap();
        let err = run(&dir, &[&evil], "/srv", &opts).unwrap_err();
        // The tar parser itself refuses it (`member_path` is the second line).
        assert!(err.to_string().contains("escapes"), "{err}");
        assert!(!tmp.path().join("x").exists() && !dir.join("x").exists());
    }

    #[test]
    fn chown_sets_owners_as_root() {
        if !unistd::geteuid().is_root() {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("skipped: setting owners needs root");
            }
            return;
        }
        let (tmp, dir) = tree();
        let src = tmp.path().join("s");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), "").unwrap();
        symlink("f", src.join("l")).unwrap();
        let opts = CopyOptions {
            chown: Some((1234, 5678)),
            ..CopyOptions::default()
        };
        run(&dir, &[&src], "/d", &opts).unwrap();
        for name in ["d", "d/f", "d/l"] {
            let m = fs::symlink_metadata(dir.join("rootfs").join(name)).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 5678), "{name}");
        }
    }
}
