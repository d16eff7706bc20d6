//! File-system primitives relative to a directory fd, for hostile trees
//! (DESIGN §5): the bottom layer that `render`, the tree writer
//! (`tree`) and `temp` (so the store, through it) build on.
//!
//! * Every name is one path component opened relative to its parent's fd,
//!   never through a symlink: directories with `O_DIRECTORY | O_NOFOLLOW`
//!   (through `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` when
//!   the kernel has it), other objects with `O_NOFOLLOW` and the `*at`
//!   calls that fail on an existing name.
//! * Metadata is applied in the one order that keeps every bit
//!   (aci-format §11.3): ownership first, then the mode (a chown clears
//!   setuid and setgid), then xattrs, then times with nanoseconds (last,
//!   since every other change touches the ctime and some the mtime).
//!
//! This module uses only std, nix, xattr and [`crate::entry`], so anything
//! above may use it without a circle.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};

use crate::entry::{Entry, EntryKind, Timestamp};

/// Whether `openat2` works here: 0 unknown, 1 yes, 2 no (ENOSYS).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

#[allow(unsafe_code)]
fn owned_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call of ours and
    // nothing else holds it, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Opens the directory `name` (one path component) inside `dir`, never
/// through a symlink and never above `dir`. A symlink at `name` is an
/// error (`ELOOP`, or `ENOTDIR` on kernels without `openat2`).
pub fn open_dir_beneath(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    open_dir_at(dir.as_raw_fd(), name)
}

/// [`open_dir_beneath`] on a raw fd, for the render's directory stacks.
pub(crate) fn open_dir_at(dir: RawFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if OPENAT2.load(Ordering::Relaxed) != 2 {
        let how = fcntl::OpenHow::new().flags(flags).resolve(
            fcntl::ResolveFlag::RESOLVE_BENEATH
                | fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS
                | fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        match fcntl::openat2(dir, OsStr::from_bytes(name), how) {
            Ok(fd) => {
                OPENAT2.store(1, Ordering::Relaxed);
                return Ok(owned_fd(fd));
            }
            // Old kernels (before 5.6) or a seccomp filter without it.
            Err(Errno::ENOSYS) => OPENAT2.store(2, Ordering::Relaxed),
            Err(e) => return Err(e),
        }
    }
    fcntl::openat(Some(dir), OsStr::from_bytes(name), flags, Mode::empty()).map(owned_fd)
}

/// Opens the directory at the host path `path` itself (not through a
/// symlink there): the root a tree is written below.
pub fn open_root_dir(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    fcntl::open(path, flags, Mode::empty()).map(owned_fd)
}

/// Opens or creates `name` (one path component) in `dir` with `flags` and
/// `mode`, returning an owned fd. With `O_NOFOLLOW` (and `O_CREAT |
/// O_EXCL` to create) nothing is followed through a symlink at `name`.
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    fcntl::openat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        flags | OFlag::O_CLOEXEC,
        mode,
    )
    .map(owned_fd)
}

/// Creates the regular file `name` in `dir` (which must not exist, and is
/// never followed if it is a symlink) for writing, with permission bits
/// `perms` (less the umask).
pub fn create_file(dir: BorrowedFd<'_>, name: &[u8], perms: u32) -> Result<File, Errno> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    open_beneath(dir, name, flags, Mode::from_bits_truncate(perms & 0o777)).map(File::from)
}

/// The `lstat` of `name` in `dir`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<FileStat, Errno> {
    stat::fstatat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// Whether `st` is of file type `kind` (`S_IFDIR`, `S_IFLNK`, ...).
pub fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// The target of the symlink `name` in `dir`.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Vec<u8>, Errno> {
    use std::os::unix::ffi::OsStringExt;
    fcntl::readlinkat(Some(dir.as_raw_fd()), OsStr::from_bytes(name)).map(OsStringExt::into_vec)
}

/// Creates the directory `name` in `dir` with `mode` (less the umask).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> Result<(), Errno> {
    stat::mkdirat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        Mode::from_bits_truncate(mode),
    )
}

/// Removes the non-directory `name` from `dir` (a symlink itself, never
/// what it points to).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    unistd::unlinkat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        unistd::UnlinkatFlags::NoRemoveDir,
    )
}

/// Makes `name` in `dir` a hard link to `first` in `first_dir`. A symlink
/// at `first` is linked itself, never followed (no `AT_SYMLINK_FOLLOW`).
pub fn link_at(
    first_dir: BorrowedFd<'_>,
    first: &[u8],
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> Result<(), Errno> {
    unistd::linkat(
        Some(first_dir.as_raw_fd()),
        OsStr::from_bytes(first),
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        AtFlags::empty(),
    )
}

/// An object that is created by name and cannot be opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node<'a> {
    /// A symlink with this target.
    Symlink(&'a [u8]),
    /// A fifo.
    Fifo,
    /// A device node: `S_IFCHR` or `S_IFBLK`, and the device number.
    Device(SFlag, u64),
}

/// Creates `node` as `name` in `dir` (failing on an existing name), mode
/// 0600 until its metadata is set. A device the caller may not create is
/// `EPERM`, for the caller to count.
pub fn make_node(dir: BorrowedFd<'_>, name: &[u8], node: Node<'_>) -> Result<(), Errno> {
    let at = OsStr::from_bytes(name);
    let private = Mode::from_bits_truncate(0o600);
    match node {
        Node::Symlink(target) => {
            unistd::symlinkat(OsStr::from_bytes(target), Some(dir.as_raw_fd()), at)
        }
        Node::Fifo => unistd::mkfifoat(Some(dir.as_raw_fd()), at, private),
        Node::Device(kind, dev) => stat::mknodat(Some(dir.as_raw_fd()), at, kind, private, dev),
    }
}

/// Why [`create_node`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    /// The node could not be created.
    Create(Errno),
    /// Its metadata could not be set.
    Attrs(AttrError),
}

/// Creates `node` as `name` in `dir` and gives it `attrs()`: the whole
/// writing of a symlink, fifo or device, for `render` and the tree
/// writer alike. `attrs` is asked for only once the node exists; a
/// symlink's mode is never set (Linux has none). `Ok(None)`: a device the
/// caller may not create (`EPERM`), left out for the caller to count.
pub fn create_node<'a>(
    dir: BorrowedFd<'_>,
    name: &[u8],
    node: Node<'_>,
    attrs: impl FnOnce() -> Attrs<'a>,
) -> Result<Option<NotRestored>, NodeError> {
    match make_node(dir, name, node) {
        Ok(()) => {}
        // Not root, or no CAP_MKNOD.
        Err(Errno::EPERM) if matches!(node, Node::Device(..)) => return Ok(None),
        Err(errno) => return Err(NodeError::Create(errno)),
    }
    let mut attrs = attrs();
    if let Node::Symlink(_) = node {
        attrs.mode = None;
    }
    set_attrs_at(dir, name, &attrs)
        .map(Some)
        .map_err(NodeError::Attrs)
}

/// The `mknod` file type and device number of a device entry (a
/// character device, else a block device).
pub fn device_node(e: &Entry) -> (SFlag, u64) {
    let kind = if e.kind == EntryKind::CharDevice {
        SFlag::S_IFCHR
    } else {
        SFlag::S_IFBLK
    };
    let dev = stat::makedev(u64::from(e.dev_major), u64::from(e.dev_minor));
    (kind, dev)
}

/// The process's umask from `/proc/self/status` (Linux 4.7 and later);
/// `None` where it cannot be read.
pub fn process_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))?;
    u32::from_str_radix(value.trim(), 8).ok()
}

/// An entry's timestamp as a `TimeSpec`.
pub fn timespec(t: Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

/// An entry's times: atime as recorded, else left alone (`UTIME_OMIT`);
/// mtime as recorded.
pub fn entry_times(entry: &Entry) -> (TimeSpec, TimeSpec) {
    let atime = entry.atime.map_or(TimeSpec::UTIME_OMIT, timespec);
    (atime, timespec(entry.mtime))
}

/// The attributes [`set_attrs_at`] and [`set_attrs`] apply to one object.
#[derive(Debug, Clone, Copy)]
pub struct Attrs<'a> {
    /// The owner to set, `None` to leave it.
    pub owner: Option<(Uid, Gid)>,
    /// The mode to set, `None` to leave it (symlinks have none).
    pub mode: Option<Mode>,
    /// Extended attributes to set (by [`set_attrs`] only: they need an
    /// open file).
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
    /// Access time (`UTIME_OMIT` to leave it).
    pub atime: TimeSpec,
    /// Modification time.
    pub mtime: TimeSpec,
}

/// What [`set_attrs_at`] or [`set_attrs`] could not restore, for the
/// caller to count (never silently dropped, DESIGN §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotRestored {
    /// The owner was not set (`EPERM`, or `EINVAL` for an unmapped id).
    pub owner: bool,
    /// Extended attributes that could not be set.
    pub xattrs: u64,
}

/// Why [`set_attrs_at`] or [`set_attrs`] failed: the operation and its
/// errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrError {
    /// What was being done (`"set the mode of"`, ...), for messages.
    pub op: &'static str,
    /// The errno.
    pub errno: Errno,
}

fn fail(op: &'static str) -> impl Fn(Errno) -> AttrError {
    move |errno| AttrError { op, errno }
}

/// Sets owner, then mode, then times on `name` in `parent`, never
/// following a symlink at `name`: the last step of writing a symlink,
/// fifo or device (xattrs are not set: the object cannot be opened). An
/// owner the caller may not set is not an error but reported.
pub fn set_attrs_at(
    parent: BorrowedFd<'_>,
    name: &[u8],
    attrs: &Attrs<'_>,
) -> Result<NotRestored, AttrError> {
    let parent = parent.as_raw_fd();
    let name = OsStr::from_bytes(name);
    let mut missed = NotRestored::default();
    if let Some((uid, gid)) = attrs.owner {
        match unistd::fchownat(
            Some(parent),
            name,
            Some(uid),
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => {}
            Err(Errno::EPERM | Errno::EINVAL) => missed.owner = true,
            Err(errno) => return Err(fail("set the owner of")(errno)),
        }
    }
    if let Some(mode) = attrs.mode {
        stat::fchmodat(
            Some(parent),
            name,
            mode,
            stat::FchmodatFlags::NoFollowSymlink,
        )
        .map_err(fail("set the mode of"))?;
    }
    stat::utimensat(
        Some(parent),
        name,
        &attrs.atime,
        &attrs.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(fail("set the times of"))?;
    Ok(missed)
}

/// Sets owner, then mode, then xattrs, then times on the open `file` (a
/// regular file or a directory): the one order that keeps every bit.
pub fn set_attrs(file: &File, attrs: &Attrs<'_>) -> Result<NotRestored, AttrError> {
    use xattr::FileExt as _;
    let fd = file.as_raw_fd();
    let mut missed = NotRestored::default();
    if let Some((uid, gid)) = attrs.owner {
        match unistd::fchown(fd, Some(uid), Some(gid)) {
            Ok(()) => {}
            Err(Errno::EPERM | Errno::EINVAL) => missed.owner = true,
            Err(errno) => return Err(fail("set the owner of")(errno)),
        }
    }
    if let Some(mode) = attrs.mode {
        stat::fchmod(fd, mode).map_err(fail("set the mode of"))?;
    }
    for (name, value) in attrs.xattrs {
        if file.set_xattr(OsStr::from_bytes(name), value).is_err() {
            missed.xattrs += 1;
        }
    }
    stat::futimens(fd, &attrs.atime, &attrs.mtime).map_err(fail("set the times of"))?;
    Ok(missed)
}

/// The bytes of the regular files under `dir`, each inode once (hard links
/// share their data), for reports of what removing it frees. Unreadable
/// entries count nothing: this is an estimate, never a check.
pub fn file_bytes_under(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && seen.insert((m.dev(), m.ino())))
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn set_attrs_at_never_follows_and_names_the_failing_step() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("target"), "x").unwrap();
        std::os::unix::fs::symlink("target", tmp.path().join("link")).unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let before = std::fs::metadata(tmp.path().join("target")).unwrap();
        let attrs = Attrs {
            owner: None,
            mode: None,
            xattrs: &[],
            atime: TimeSpec::UTIME_OMIT,
            mtime: TimeSpec::new(1_000_000_000, 7),
        };
        assert_eq!(
            set_attrs_at(dir.as_fd(), b"link", &attrs),
            Ok(NotRestored::default())
        );
        let link = std::fs::symlink_metadata(tmp.path().join("link")).unwrap();
        assert_eq!((link.mtime(), link.mtime_nsec()), (1_000_000_000, 7));
        let after = std::fs::metadata(tmp.path().join("target")).unwrap();
        assert_eq!(after.mtime(), before.mtime(), "the target was touched");
        let missing = set_attrs_at(dir.as_fd(), b"missing", &attrs);
        assert_eq!(
            missing,
            Err(AttrError {
                op: "set the times of",
                errno: Errno::ENOENT
            })
        );
        let chmod = Attrs {
            mode: Some(Mode::from_bits_truncate(0o600)),
            ..attrs
        };
        assert_eq!(
            set_attrs_at(dir.as_fd(), b"missing", &chmod).map_err(|e| e.op),
            Err("set the mode of")
        );
    }

    #[test]
    fn set_attrs_sets_the_mode_after_the_owner_and_times_last() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let file = File::create(&path).unwrap();
        let me = (unistd::geteuid(), unistd::getegid());
        let attrs = Attrs {
            owner: Some(me),
            mode: Some(Mode::from_bits_truncate(0o2755)),
            xattrs: &[],
            atime: TimeSpec::new(5, 6),
            mtime: TimeSpec::new(1_000_000_000, 7),
        };
        assert_eq!(set_attrs(&file, &attrs), Ok(NotRestored::default()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o2755);
        assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_000_000_000, 7));
        assert_eq!((meta.atime(), meta.atime_nsec()), (5, 6));
    }

    #[test]
    fn open_beneath_takes_one_plain_name_and_never_follows() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", tmp.path().join("l")).unwrap();
        let root = File::open(tmp.path()).unwrap();
        let read = OFlag::O_RDONLY | OFlag::O_NOFOLLOW;
        assert!(open_beneath(root.as_fd(), b"f", read, Mode::empty()).is_ok());
        assert_eq!(
            open_beneath(root.as_fd(), b"l", read, Mode::empty()).unwrap_err(),
            Errno::ELOOP
        );
        for bad in [&b""[..], b".", b"..", b"a/b"] {
            assert_eq!(
                open_beneath(root.as_fd(), bad, read, Mode::empty()).unwrap_err(),
                Errno::EINVAL
            );
        }
        assert!(open_dir_beneath(root.as_fd(), b"l").is_err());
    }

    #[test]
    fn open_dir_at_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", tmp.path().join("link")).unwrap();
        let root = open_root_dir(tmp.path()).unwrap();
        assert!(open_dir_at(root.as_raw_fd(), b"real").is_ok());
        assert!(open_dir_at(root.as_raw_fd(), b"link").is_err());
        assert!(
            open_dir_at(root.as_raw_fd(), b"..").is_err() || OPENAT2.load(Ordering::Relaxed) == 2
        );
        assert!(open_root_dir(&tmp.path().join("link")).is_err());
    }

    #[test]
    fn make_node_and_link_at_create_by_name_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = open_root_dir(tmp.path()).unwrap();
        make_node(root.as_fd(), b"l", Node::Symlink(b"/nowhere")).unwrap();
        make_node(root.as_fd(), b"p", Node::Fifo).unwrap();
        assert_eq!(
            make_node(root.as_fd(), b"p", Node::Fifo),
            Err(Errno::EEXIST)
        );
        assert_eq!(readlink_at(root.as_fd(), b"l").unwrap(), b"/nowhere");
        link_at(root.as_fd(), b"l", root.as_fd(), b"l2").unwrap();
        let st = lstat_at(root.as_fd(), b"l2").unwrap();
        assert!(is_kind(&st, SFlag::S_IFLNK));
        unlink_at(root.as_fd(), b"l2").unwrap();
        mkdir_at(root.as_fd(), b"d", 0o700).unwrap();
        assert_eq!(unlink_at(root.as_fd(), b"d"), Err(Errno::EISDIR));
    }

    #[test]
    fn create_node_sets_attrs_but_never_a_symlinks_mode() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = open_root_dir(tmp.path()).unwrap();
        let attrs = || Attrs {
            owner: None,
            mode: Some(Mode::from_bits_truncate(0o640)),
            xattrs: &[],
            atime: TimeSpec::UTIME_OMIT,
            mtime: TimeSpec::new(1_000_000_000, 9),
        };
        let made = create_node(root.as_fd(), b"l", Node::Symlink(b"x"), attrs);
        assert_eq!(made, Ok(Some(NotRestored::default())));
        let made = create_node(root.as_fd(), b"p", Node::Fifo, attrs);
        assert_eq!(made, Ok(Some(NotRestored::default())));
        let p = std::fs::symlink_metadata(tmp.path().join("p")).unwrap();
        assert_eq!((p.mode() & 0o7777, p.mtime_nsec()), (0o640, 9));
        let again = create_node(root.as_fd(), b"p", Node::Fifo, attrs);
        assert_eq!(again, Err(NodeError::Create(Errno::EEXIST)));
    }
}
