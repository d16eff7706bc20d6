//! The tree writer for existing trees: objects placed into a directory
//! that may already hold anything an image can hold (a build tree's
//! rootfs), for `copy`, `add` and `WORKDIR` (DESIGN §4, "copy files into a
//! build tree").
//!
//! Symlinks to `/etc` or to `../../..` are normal in such a tree, so every
//! path inside it is resolved the way `chroot` would resolve it
//! ([`resolve`]): component by component, each directory opened relative
//! to its parent's fd with `O_NOFOLLOW` ([`crate::fs`], never the kernel's
//! own symlink resolution), a symlink's target read and resolved again from
//! the root (absolute) or from its directory (relative), and `..` at the
//! root staying at the root. So a symlink in the tree can redirect a
//! write, but only to another place *inside* the root, never outside.
//!
//! Rules (documented in `acido-copy(1)` and `acido-add(1)`):
//! - Intermediate directories are resolved as above and created (mode
//!   0755) when missing.
//! - The final name of a non-directory is never followed: whatever
//!   non-directory is there (a file, a symlink) is replaced; an existing
//!   directory there is an error.
//! - A directory gets its metadata when it was created here, or when it
//!   existed as a real directory and is not the destination itself; a
//!   symlink to a directory is left alone.
//! - Objects are created with the `*at` calls of [`crate::fs`] and get
//!   their metadata through it (owner, mode, xattrs, times, in that
//!   order); directories last, deepest first. What the user may not
//!   restore is counted in the report, as `render` does.

pub mod resolve;

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};

use crate::fs::{self, Node};
use crate::quote::quote_path;

pub use resolve::{absolute, clean, join};
use resolve::{resolve_dir, split_last};

/// How many symlinks one path may pass through (Linux's own limit).
pub const MAX_SYMLINKS: usize = 40;

/// Why a path inside the tree could not be resolved or written.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A path inside the tree could not be resolved or written.
    #[error("rootfs path {}: cannot {op}: {source}", quote_path(path))]
    Io {
        /// The path inside the tree.
        path: Vec<u8>,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A path passes through too many symlinks (a loop).
    #[error(
        "rootfs path {}: more than {MAX_SYMLINKS} symlinks (a loop?)",
        quote_path(path)
    )]
    SymlinkLoop {
        /// The path inside the tree.
        path: Vec<u8>,
    },
    /// A path component is neither a directory nor a symlink to one.
    #[error(
        "rootfs path {}: {} is not a directory",
        quote_path(path),
        quote_path(component)
    )]
    NotADirectory {
        /// The path inside the tree.
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
        /// The path inside the tree.
        path: Vec<u8>,
    },
}

fn io_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(Errno) -> TreeError + 'p {
    move |errno| TreeError::Io {
        path: path.to_vec(),
        op,
        source: errno.into(),
    }
}

fn std_io_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(io::Error) -> TreeError + 'p {
    move |source| TreeError::Io {
        path: path.to_vec(),
        op,
        source,
    }
}

/// How to place: replacements for the sources' owner and mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaceOptions {
    /// Owner and group for everything placed, instead of the item's.
    pub chown: Option<(u32, u32)>,
    /// Permission bits (all 12) for files and directories, instead of the
    /// item's; symlinks keep theirs.
    pub chmod: Option<u32>,
}

/// What was written, and what could not be restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceReport {
    /// Regular files written (hard links not counted).
    pub files: u64,
    /// Directories created or given an item's metadata.
    pub dirs: u64,
    /// Symlinks, hard links, fifos and devices created.
    pub others: u64,
    /// File data bytes written.
    pub bytes: u64,
    /// Objects whose owner could not be set (not permitted).
    pub ownership_not_restored: u64,
    /// Extended attributes that could not be set.
    pub xattrs_not_restored: u64,
    /// Device nodes that could not be created (not permitted); absent.
    pub devices_not_created: u64,
}

/// Metadata to give a placed object.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Mode bits (all 12).
    pub mode: u32,
    /// Owner and group; `None` when the source's ids do not fit in 32 bits.
    pub owner: Option<(u32, u32)>,
    /// Access time; `None` leaves it as created.
    pub atime: Option<TimeSpec>,
    /// Modification time.
    pub mtime: TimeSpec,
    /// Extended attributes.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where a regular file's data comes from.
#[derive(Debug)]
pub enum Data<'a> {
    /// An open file, from its offset to its end.
    File(File),
    /// `size` bytes at `offset` of a file (a member of an unpacked
    /// archive); fewer is an error.
    Range {
        /// The file.
        file: &'a File,
        /// Where the data starts.
        offset: u64,
        /// How many bytes.
        size: u64,
    },
}

/// What to create.
#[derive(Debug)]
pub enum Body<'a> {
    /// A directory.
    Dir,
    /// A regular file with this data.
    File(Data<'a>),
    /// A symlink with this target.
    Symlink(Vec<u8>),
    /// A hard link to the object already placed at this path in the tree.
    HardLink(Vec<u8>),
    /// A fifo.
    Fifo,
    /// A device node: `S_IFCHR` or `S_IFBLK`, and the device number.
    Device(SFlag, u64),
}

/// One object to place.
#[derive(Debug)]
pub struct Item<'a> {
    /// Its metadata.
    pub meta: Meta,
    /// What it is.
    pub body: Body<'a>,
}

/// Writes items into the tree below a root directory fd, resolving every
/// path inside it.
#[derive(Debug)]
pub struct Placer {
    root: OwnedFd,
    opts: PlaceOptions,
    report: PlaceReport,
    euid: Uid,
    egid: Gid,
    /// The last parent directory resolved, reused while items stay in it.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories whose metadata is set once everything is written.
    dirs: Vec<(Vec<u8>, Meta)>,
    /// Directories created while resolving paths (the resolver only
    /// borrows the placer).
    created: Cell<u64>,
}

impl Placer {
    /// A placer writing below `root` (the tree's root directory, opened
    /// with `O_NOFOLLOW`).
    pub fn new(root: OwnedFd, opts: PlaceOptions) -> Self {
        Placer {
            root,
            opts,
            report: PlaceReport::default(),
            euid: unistd::geteuid(),
            egid: unistd::getegid(),
            parent: None,
            dirs: Vec::new(),
            created: Cell::new(0),
        }
    }

    /// What was written so far.
    pub fn report(&self) -> &PlaceReport {
        &self.report
    }

    /// How many directories path resolution created so far (counted into
    /// the report's `dirs` by [`Placer::finish_dirs`]).
    pub fn created_dirs(&self) -> u64 {
        self.created.get()
    }

    /// Opens the directory at `path` (absolute inside the root), resolving
    /// symlinks as `chroot` would, creating missing directories (mode
    /// 0755) when `create` is set: `mkdir -p` in a chroot.
    pub fn resolve_dir(&self, path: &[u8], create: bool) -> Result<OwnedFd, TreeError> {
        resolve_dir(self.root.as_fd(), path, create, &self.created)
    }

    /// The parent directory of `path` (created as needed; the last one is
    /// kept while consecutive items share it) and the last name.
    fn parent_of(&mut self, path: &[u8]) -> Result<(OwnedFd, Vec<u8>), TreeError> {
        let (parent, name) = split_last(path).ok_or_else(|| TreeError::Io {
            path: path.to_vec(),
            op: "create",
            source: io::ErrorKind::AlreadyExists.into(),
        })?;
        let cached = match &self.parent {
            Some((p, fd)) if p.as_slice() == parent => Some(fd.try_clone()),
            _ => None,
        };
        let fd = match cached {
            Some(fd) => fd.map_err(std_io_err(path, "open the parent of"))?,
            None => {
                let fd = self.resolve_dir(parent, true)?;
                let copy = fd
                    .try_clone()
                    .map_err(std_io_err(path, "open the parent of"))?;
                self.parent = Some((parent.to_vec(), fd));
                copy
            }
        };
        Ok((fd, name.to_vec()))
    }

    /// Places `item` at `path` (clean, absolute inside the root).
    pub fn place(&mut self, path: &[u8], item: Item<'_>) -> Result<(), TreeError> {
        if let Body::Dir = item.body {
            return self.place_dir(path, item.meta, false);
        }
        let link_target = match &item.body {
            Body::HardLink(first) => Some(self.resolve_name(first)?),
            _ => None,
        };
        let (parent, name) = self.parent_of(path)?;
        match fs::lstat_at(parent.as_fd(), &name) {
            Ok(st) if fs::is_kind(&st, SFlag::S_IFDIR) => {
                return Err(TreeError::WouldReplaceDirectory {
                    path: path.to_vec(),
                })
            }
            Ok(_) => fs::unlink_at(parent.as_fd(), &name).map_err(io_err(path, "replace"))?,
            Err(Errno::ENOENT) => {}
            Err(errno) => return Err(io_err(path, "inspect")(errno)),
        }
        self.create(parent.as_fd(), &name, path, item, link_target)
    }

    /// The parent directory fd and name of an already placed object.
    fn resolve_name(&self, path: &[u8]) -> Result<(OwnedFd, Vec<u8>), TreeError> {
        let (parent, name) = split_last(path).ok_or_else(|| TreeError::Io {
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
    pub fn place_dir(&mut self, path: &[u8], meta: Meta, top: bool) -> Result<(), TreeError> {
        let Some((_, name)) = split_last(path) else {
            // The root itself: never changed by a write into it.
            return Ok(());
        };
        let name = name.to_vec();
        let (parent, _) = self.parent_of(path)?;
        let parent = parent.as_fd();
        let existed = match fs::open_dir_beneath(parent, &name) {
            Ok(_) => Some(true),
            Err(Errno::ENOENT) => None,
            Err(_) => match fs::lstat_at(parent, &name) {
                Ok(st) if fs::is_kind(&st, SFlag::S_IFLNK) => Some(false),
                Ok(_) => {
                    // A non-directory is replaced by the directory, as tar does.
                    fs::unlink_at(parent, &name).map_err(io_err(path, "replace"))?;
                    None
                }
                Err(errno) => return Err(io_err(path, "inspect")(errno)),
            },
        };
        match existed {
            None => {
                fs::mkdir_at(parent, &name, 0o700).map_err(io_err(path, "create directory"))?;
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
    pub fn finish_dirs(&mut self) -> Result<(), TreeError> {
        self.parent = None;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(path, _)| {
            std::cmp::Reverse(path.iter().filter(|&&b| b == b'/').count())
        });
        for (path, meta) in dirs {
            let (parent, name) = self.resolve_name(&path)?;
            let dir = fs::open_dir_beneath(parent.as_fd(), &name).map_err(io_err(&path, "open"))?;
            self.finish_file(&File::from(dir), &path, &meta)?;
        }
        self.report.dirs += self.created.replace(0);
        Ok(())
    }

    /// Creates the non-directory `item` as `name` in `parent`.
    fn create(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        item: Item<'_>,
        link_target: Option<(OwnedFd, Vec<u8>)>,
    ) -> Result<(), TreeError> {
        let node = match &item.body {
            Body::Dir => return Err(io_err(path, "create")(Errno::EISDIR)),
            Body::File(_) => None,
            Body::HardLink(_) => {
                let (dir, first) =
                    link_target.ok_or_else(|| io_err(path, "link")(Errno::ENOENT))?;
                fs::link_at(dir.as_fd(), &first, parent, name)
                    .map_err(io_err(path, "create hard link"))?;
                self.report.others += 1;
                return Ok(());
            }
            Body::Symlink(target) => Some((Node::Symlink(target), "create symlink")),
            Body::Fifo => Some((Node::Fifo, "create fifo")),
            Body::Device(kind, dev) => Some((Node::Device(*kind, *dev), "create device")),
        };
        if let Some((node, op)) = node {
            let meta = &item.meta;
            let attrs = || fs::Attrs {
                owner: self.wanted_owner(meta),
                mode: Some(self.mode(meta)),
                xattrs: &[],
                atime: meta.atime.unwrap_or(TimeSpec::UTIME_OMIT),
                mtime: meta.mtime,
            };
            match fs::create_node(parent, name, node, attrs) {
                Ok(Some(missed)) => {
                    self.report.others += 1;
                    self.count(missed);
                }
                Ok(None) => self.report.devices_not_created += 1,
                Err(fs::NodeError::Create(errno)) => return Err(io_err(path, op)(errno)),
                Err(fs::NodeError::Attrs(e)) => return Err(io_err(path, e.op)(e.errno)),
            }
            return Ok(());
        }
        let Body::File(data) = item.body else {
            return Ok(());
        };
        let mut out = fs::create_file(parent, name, 0o600).map_err(io_err(path, "create file"))?;
        let n = match data {
            Data::File(mut input) => {
                // std uses copy_file_range (or sendfile) File to File.
                io::copy(&mut input, &mut out).map_err(std_io_err(path, "write the data of"))?
            }
            Data::Range { file, offset, size } => {
                let mut input = file;
                input
                    .seek(SeekFrom::Start(offset))
                    .map_err(std_io_err(path, "read the data of"))?;
                let n = io::copy(&mut input.take(size), &mut out)
                    .map_err(std_io_err(path, "write the data of"))?;
                if n != size {
                    return Err(std_io_err(path, "read the data of")(
                        io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                n
            }
        };
        self.report.files += 1;
        self.report.bytes += n;
        self.finish_file(&out, path, &item.meta)
    }

    /// The owner to set, or `None` when it already is the creator's (as
    /// root always: a copy as root sets every owner it is given).
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

    fn count(&mut self, missed: fs::NotRestored) {
        self.report.ownership_not_restored += u64::from(missed.owner);
        self.report.xattrs_not_restored += missed.xattrs;
    }

    /// Metadata of a file or directory through its fd.
    fn finish_file(&mut self, file: &File, path: &[u8], meta: &Meta) -> Result<(), TreeError> {
        let attrs = fs::Attrs {
            owner: self.wanted_owner(meta),
            mode: Some(self.mode(meta)),
            xattrs: &meta.xattrs,
            atime: meta.atime.unwrap_or(TimeSpec::UTIME_OMIT),
            mtime: meta.mtime,
        };
        let missed = fs::set_attrs(file, &attrs).map_err(|e| io_err(path, e.op)(e.errno))?;
        self.count(missed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            owner: Some((unistd::geteuid().as_raw(), unistd::getegid().as_raw())),
            atime: None,
            mtime: TimeSpec::new(1_000_000_000, 5),
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn placing_resolves_symlinks_inside_the_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let mut placer = Placer::new(fs::open_root_dir(&root).unwrap(), PlaceOptions::default());
        let data = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &data, b"..hello..").unwrap();
        let file = |offset, size| Item {
            meta: meta(0o640),
            body: Body::File(Data::Range {
                file: &data,
                offset,
                size,
            }),
        };
        placer.place(b"/abs/x", file(2, 5)).unwrap();
        placer.place(b"/up/y", file(0, 2)).unwrap();
        let link = Item {
            meta: meta(0),
            body: Body::HardLink(b"/up/y".to_vec()),
        };
        placer.place(b"/z", link).unwrap();
        placer.place_dir(b"/d", meta(0o751), false).unwrap();
        placer.finish_dirs().unwrap();
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("x");
        assert_eq!(std::fs::read(&inside).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let y = std::fs::metadata(root.join("y")).unwrap();
        assert_eq!((y.mode() & 0o7777, y.mtime_nsec()), (0o640, 5));
        assert_eq!(y.ino(), std::fs::metadata(root.join("z")).unwrap().ino());
        let d = std::fs::metadata(root.join("d")).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o751);
        let report = placer.report();
        assert_eq!((report.files, report.others, report.bytes), (2, 1, 7));
        // A short range, a directory in the way, a loop.
        assert!(matches!(
            placer.place(b"/short", file(8, 5)),
            Err(TreeError::Io {
                op: "read the data of",
                ..
            })
        ));
        assert!(matches!(
            placer.place(b"/d", file(0, 1)),
            Err(TreeError::WouldReplaceDirectory { .. })
        ));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(matches!(
            placer.resolve_dir(b"/loop/a", true),
            Err(TreeError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            placer.resolve_dir(b"/y/a", true),
            Err(TreeError::NotADirectory { .. })
        ));
    }
}
