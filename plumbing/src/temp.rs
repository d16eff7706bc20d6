//! Hidden temps beside an output, and the sweep that reclaims those a
//! killed process left behind (DESIGN §5, crash safety).
//!
//! A render writes its tree into a `.acido-render-XXXXXX` directory beside
//! the target, a pack writes its archive into a `.acido-pack-XXXXXX.tmp`
//! file beside the output; both are renamed into place at the end. An
//! error or an interrupt removes the temp, but SIGKILL (or a power cut)
//! cannot: the temp stays. So the writer holds an exclusive `flock` on its
//! temp (the directory's own fd, or the file's) for as long as it lives,
//! and every render or pack starts by sweeping the siblings of its target
//! that
//! * carry our name pattern,
//! * are ours by type (a directory for a render, a regular file for a
//!   pack; a symlink is never either, so it is neither followed nor
//!   removed) and by owner (the effective uid),
//! * and whose lock can be taken without waiting: the kernel drops the
//!   lock of a dead process, so a locked temp belongs to a live writer and
//!   is left alone.
//!
//! The sweep works relative to the parent's fd and, inside a leftover
//! tree, relative to each directory's fd opened with `O_NOFOLLOW`, so a
//! symlink planted anywhere in a leftover is unlinked, never followed.
//!
//! A writer creates its temp, then locks it and checks that the name still
//! holds what it locked: a sweeper may have taken the fresh, not yet locked
//! temp for a leftover. If so the writer makes another one, so no live
//! writer ever loses its temp.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::unistd::{self, UnlinkatFlags};

use crate::fs::{open_beneath, open_dir_beneath};

/// How many times a writer makes a new temp when sweepers keep taking
/// its fresh one before it could lock it.
const ATTEMPTS: usize = 16;

/// Which kind of temp: its name pattern and file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempKind {
    /// A render's tree: a directory `.acido-render-XXXXXX`.
    Render,
    /// A pack's archive: a regular file `.acido-pack-XXXXXX.tmp`.
    Pack,
    /// A scratch directory in a store's `tmp/` (a registry push's layout):
    /// a directory `.acido-scratch-XXXXXX`.
    Scratch,
}

impl TempKind {
    /// The name prefix of this kind of temp.
    pub fn prefix(self) -> &'static str {
        match self {
            TempKind::Render => ".acido-render-",
            TempKind::Pack => ".acido-pack-",
            TempKind::Scratch => ".acido-scratch-",
        }
    }

    /// The name suffix of this kind of temp.
    pub fn suffix(self) -> &'static str {
        match self {
            TempKind::Render | TempKind::Scratch => "",
            TempKind::Pack => ".tmp",
        }
    }

    /// Whether `name` follows this kind's pattern: the prefix, at least
    /// one character, the suffix.
    pub fn matches(self, name: &[u8]) -> bool {
        let (prefix, suffix) = (self.prefix().as_bytes(), self.suffix().as_bytes());
        name.len() > prefix.len() + suffix.len()
            && name.starts_with(prefix)
            && name.ends_with(suffix)
    }

    /// Whether a file of type `kind` can be this kind of temp.
    fn is_type(self, kind: SFlag) -> bool {
        match self {
            TempKind::Render | TempKind::Scratch => kind == SFlag::S_IFDIR,
            TempKind::Pack => kind == SFlag::S_IFREG,
        }
    }
}

/// What a sweep did in one directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Leftovers removed.
    pub removed: usize,
    /// Temps left alone because a live process holds their lock.
    pub in_use: usize,
    /// Leftovers that could not be removed (wholly or in part); the next
    /// sweep tries again.
    pub failed: usize,
}

/// Removes the leftovers of dead writers of `kind` in the directory
/// `parent`: names of our pattern, of our type, owned by the effective
/// uid, whose lock is free. Best effort: what cannot be read or removed is
/// counted in [`SweepReport::failed`] and left; an unreadable `parent`
/// gives an empty report (the writer's own error will name it).
pub fn sweep_leftovers(parent: &Path, kind: TempKind) -> SweepReport {
    let mut report = SweepReport::default();
    let Ok(dir) = File::options()
        .read(true)
        .custom_flags(OFlag::O_DIRECTORY.bits())
        .open(parent)
    else {
        return report;
    };
    let Ok(names) = list(dir.as_fd()) else {
        return report;
    };
    let euid = unistd::geteuid().as_raw();
    for name in names.iter().filter(|n| kind.matches(n)) {
        match sweep_one(dir.as_fd(), name, kind, euid) {
            Ok(Swept::Removed) => report.removed += 1,
            Ok(Swept::InUse) => report.in_use += 1,
            Ok(Swept::NotOurs) => {}
            Err(_) => report.failed += 1,
        }
    }
    report
}

/// [`sweep_leftovers`] for the one name `name` in `parent`: removed if it
/// is a leftover of `kind` (pattern, type, owner, free lock).
pub fn sweep_leftover(parent: &Path, name: &OsStr, kind: TempKind) -> SweepReport {
    let mut report = SweepReport::default();
    let name = name.as_bytes();
    if !kind.matches(name) {
        return report;
    }
    let Ok(dir) = File::options()
        .read(true)
        .custom_flags(OFlag::O_DIRECTORY.bits())
        .open(parent)
    else {
        return report;
    };
    match sweep_one(dir.as_fd(), name, kind, unistd::geteuid().as_raw()) {
        Ok(Swept::Removed) => report.removed += 1,
        Ok(Swept::InUse) => report.in_use += 1,
        Ok(Swept::NotOurs) => {}
        Err(_) => report.failed += 1,
    }
    report
}

/// The fate of one candidate.
enum Swept {
    Removed,
    InUse,
    /// Not our type or owner, or gone or replaced meanwhile.
    NotOurs,
}

fn same(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

fn type_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<FileStat>, Errno> {
    match stat::fstatat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn sweep_one(dir: BorrowedFd<'_>, name: &[u8], kind: TempKind, euid: u32) -> Result<Swept, Errno> {
    let Some(listed) = lstat_at(dir, name)? else {
        return Ok(Swept::NotOurs);
    };
    if !kind.is_type(type_of(&listed)) || listed.st_uid != euid {
        return Ok(Swept::NotOurs);
    }
    // O_NOFOLLOW: should the name have become a symlink since the lstat,
    // the open fails instead of reaching its target.
    let opened = match kind {
        TempKind::Render | TempKind::Scratch => open_dir_beneath(dir, name),
        TempKind::Pack => open_beneath(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            Mode::empty(),
        ),
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return Ok(Swept::NotOurs),
        Err(e) => return Err(e),
    };
    if !same(&stat::fstat(fd.as_raw_fd())?, &listed) {
        return Ok(Swept::NotOurs);
    }
    let lock = match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Swept::InUse),
        Err((_, e)) => return Err(e),
    };
    // Under the lock, the name must still be what was locked: a writer
    // that found its fresh temp taken makes a new one, never reuses this.
    match lstat_at(dir, name)? {
        Some(now) if same(&now, &listed) => {}
        _ => return Ok(Swept::NotOurs),
    }
    match kind {
        TempKind::Render | TempKind::Scratch => {
            empty_dir(lock.as_fd())?;
            unistd::unlinkat(
                Some(dir.as_raw_fd()),
                OsStr::from_bytes(name),
                UnlinkatFlags::RemoveDir,
            )?;
        }
        TempKind::Pack => unistd::unlinkat(
            Some(dir.as_raw_fd()),
            OsStr::from_bytes(name),
            UnlinkatFlags::NoRemoveDir,
        )?,
    }
    Ok(Swept::Removed)
}

/// The names in the directory `dir`, `.` and `..` left out.
fn list(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    // A second fd on the same directory: the stream owns and closes it.
    let mut stream = Dir::openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes everything inside the directory `dir`, depth first, every step
/// relative to the fd of the directory it acts in. A symlink is unlinked,
/// never followed; a read-only directory (as an image may hold) is made
/// writable first. One fd is open per level, as a render holds while
/// writing the same tree.
fn empty_dir(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    // Failing is fine: the unlinks below then name the real problem.
    let _ = stat::fchmod(dir.as_raw_fd(), Mode::S_IRWXU);
    for name in list(dir)? {
        let Some(st) = lstat_at(dir, &name)? else {
            continue;
        };
        let flag = if type_of(&st) == SFlag::S_IFDIR {
            let child = open_dir_beneath(dir, &name)?;
            if !same(&stat::fstat(child.as_raw_fd())?, &st) {
                return Err(Errno::EAGAIN);
            }
            empty_dir(child.as_fd())?;
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        unistd::unlinkat(Some(dir.as_raw_fd()), OsStr::from_bytes(&name), flag)?;
    }
    Ok(())
}

/// A locked temp directory beside a render target: the lock is held until
/// this is dropped.
#[derive(Debug)]
pub(crate) struct LockedDir {
    /// The temp directory.
    pub(crate) path: PathBuf,
    /// Keeps the directory locked (released when the fd closes).
    _lock: Flock<File>,
}

/// Creates and locks a render temp directory in `parent` (mode 0700).
pub(crate) fn create_locked_dir(parent: &Path) -> io::Result<LockedDir> {
    create_locked_dir_of(parent, TempKind::Render)
}

/// A scratch directory (a registry push's layout), locked while it lives
/// and removed when dropped; after a kill its lock is free and
/// [`sweep_leftover`] (the store's `gc` and `fsck --repair`) removes it.
#[derive(Debug)]
pub struct ScratchDir {
    locked: LockedDir,
}

impl ScratchDir {
    /// Creates one in `parent` (mode 0700).
    pub fn new(parent: &Path) -> io::Result<ScratchDir> {
        Ok(ScratchDir {
            locked: create_locked_dir_of(parent, TempKind::Scratch)?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.locked.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: what stays is unlocked once the fd closes, so the
        // next sweep takes it.
        let _ = fs::remove_dir_all(&self.locked.path);
    }
}

fn create_locked_dir_of(parent: &Path, kind: TempKind) -> io::Result<LockedDir> {
    for _ in 0..ATTEMPTS {
        let path = tempfile::Builder::new()
            .prefix(kind.prefix())
            .tempdir_in(parent)?
            .keep();
        let dir = File::options()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
            .open(&path);
        let dir = match dir {
            Ok(dir) => dir,
            // Swept (and maybe replaced) before it could be opened.
            Err(e) if e.raw_os_error().is_some_and(is_gone) => continue,
            Err(e) => return Err(e),
        };
        if let Some(lock) = lock_if_still_named(dir, &path)? {
            return Ok(LockedDir { path, _lock: lock });
        }
    }
    Err(keeps_disappearing())
}

/// Creates a temp file named `prefix`…`suffix` in `parent` (permissions
/// `mode` less the umask) and takes its exclusive lock, which marks it as
/// in flight for sweepers (`gc` in a store's `tmp/`, a later pack beside
/// an output). A sweeper may unlink an unlocked temp in the instant
/// between creation and lock; the name is then checked to still be ours,
/// and the temp made again if not. The lock goes with the file's open file
/// description, so it stays held through the rename that publishes it.
pub fn create_locked_file(
    parent: &Path,
    prefix: &str,
    suffix: &str,
    mode: u32,
) -> io::Result<(tempfile::NamedTempFile, Flock<File>)> {
    for _ in 0..ATTEMPTS {
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .permissions(fs::Permissions::from_mode(mode))
            .tempfile_in(parent)?;
        let handle = temp.as_file().try_clone()?;
        if let Some(lock) = lock_if_still_named(handle, temp.path())? {
            return Ok((temp, lock));
        }
        // The name is no longer ours: dropping the temp must not unlink
        // whatever holds it now.
        let _ = temp.into_temp_path().keep();
    }
    Err(keeps_disappearing())
}

/// Creates and locks a pack temp file in `parent` (mode 0666 less the
/// umask, as the output would get).
pub(crate) fn create_pack_file(
    parent: &Path,
) -> io::Result<(tempfile::NamedTempFile, Flock<File>)> {
    create_locked_file(
        parent,
        TempKind::Pack.prefix(),
        TempKind::Pack.suffix(),
        0o666,
    )
}

/// Whether an open error number means the name is gone or is no longer a
/// directory (another file took it).
fn is_gone(raw: i32) -> bool {
    raw == Errno::ENOENT as i32 || raw == Errno::ELOOP as i32 || raw == Errno::ENOTDIR as i32
}

/// Takes the exclusive lock of `file`, opened at `path`, and checks that
/// `path` still names it; `None` when a sweeper removed it first.
pub(crate) fn lock_if_still_named(file: File, path: &Path) -> io::Result<Option<Flock<File>>> {
    // Blocking: a sweeper holds the lock of a fresh temp only while it
    // removes it.
    let lock =
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io::Error::from(errno))?;
    let ours = lock.metadata()?;
    Ok(match fs::symlink_metadata(path) {
        Ok(named) if named.dev() == ours.dev() && named.ino() == ours.ino() => Some(lock),
        _ => None,
    })
}

fn keeps_disappearing() -> io::Error {
    io::Error::other("temp files keep disappearing (is another program deleting them?)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_follow_the_pattern_of_their_kind() {
        assert!(TempKind::Render.matches(b".acido-render-a1B2c3"));
        assert!(!TempKind::Render.matches(b".acido-render-"));
        assert!(!TempKind::Render.matches(b"acido-render-x"));
        assert!(TempKind::Pack.matches(b".acido-pack-x.tmp"));
        assert!(!TempKind::Pack.matches(b".acido-pack-.tmp"));
        assert!(!TempKind::Pack.matches(b".acido-pack-x"));
        assert!(!TempKind::Pack.matches(b".acido-render-x"));
    }

    #[test]
    fn a_dead_render_leftover_is_removed_without_following_its_symlinks() {
        let parent = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), b"k").unwrap();
        // A leftover as a killed render leaves it: nested, read-only
        // directories, a symlink out of the tree.
        let left = parent.path().join(".acido-render-dead01");
        fs::create_dir_all(left.join("rootfs/ro/deeper")).unwrap();
        fs::write(left.join("rootfs/ro/deeper/f"), b"x").unwrap();
        symlink(outside.path(), left.join("rootfs/ro/out")).unwrap();
        fs::write(left.join("manifest"), b"{}").unwrap();
        for dir in ["rootfs/ro/deeper", "rootfs/ro", "rootfs"] {
            fs::set_permissions(left.join(dir), fs::Permissions::from_mode(0o555)).unwrap();
        }
        // Not ours by name, or not ours by type.
        fs::create_dir(parent.path().join("target")).unwrap();
        fs::write(parent.path().join(".acido-render-file"), b"f").unwrap();
        // A symlink with our name, to a directory elsewhere.
        symlink(outside.path(), parent.path().join(".acido-render-link")).unwrap();

        let report = sweep_leftovers(parent.path(), TempKind::Render);
        assert_eq!(
            report,
            SweepReport {
                removed: 1,
                in_use: 0,
                failed: 0
            }
        );
        assert_eq!(
            names(parent.path()),
            [".acido-render-file", ".acido-render-link", "target"]
        );
        assert_eq!(names(outside.path()), ["keep"]);
    }

    #[test]
    fn a_live_render_temp_is_left_alone() {
        let parent = tempfile::tempdir().unwrap();
        let live = create_locked_dir(parent.path()).unwrap();
        fs::write(live.path.join("manifest"), b"{}").unwrap();
        let report = sweep_leftovers(parent.path(), TempKind::Render);
        assert_eq!(report.in_use, 1);
        assert_eq!(report.removed, 0);
        assert!(live.path.join("manifest").exists());
        // Once its holder is gone, it is a leftover like any other.
        let path = live.path.clone();
        drop(live);
        assert_eq!(sweep_leftovers(parent.path(), TempKind::Render).removed, 1);
        assert!(!path.exists());
    }

    #[test]
    fn pack_leftovers_are_regular_files_whose_lock_is_free() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        fs::write(p.join(".acido-pack-dead01.tmp"), b"partial").unwrap();
        fs::create_dir(p.join(".acido-pack-dir.tmp")).unwrap();
        nix::unistd::mkfifo(&p.join(".acido-pack-fifo.tmp"), Mode::S_IRWXU).unwrap();
        fs::write(p.join("elsewhere"), b"e").unwrap();
        symlink(p.join("elsewhere"), p.join(".acido-pack-link.tmp")).unwrap();
        let (live, _lock) = create_pack_file(p).unwrap();
        let live_name = live
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();

        let report = sweep_leftovers(p, TempKind::Pack);
        assert_eq!(report.removed, 1);
        assert_eq!(report.in_use, 1);
        let mut want = vec![
            ".acido-pack-dir.tmp".to_owned(),
            ".acido-pack-fifo.tmp".to_owned(),
            ".acido-pack-link.tmp".to_owned(),
            "elsewhere".to_owned(),
            live_name,
        ];
        want.sort();
        assert_eq!(names(p), want);
        assert_eq!(fs::read(p.join("elsewhere")).unwrap(), b"e");
        // A render sweep never touches pack temps, nor the reverse.
        assert_eq!(sweep_leftovers(p, TempKind::Render), SweepReport::default());
    }

    #[test]
    fn a_missing_parent_sweeps_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let report = sweep_leftovers(&parent.path().join("absent"), TempKind::Pack);
        assert_eq!(report, SweepReport::default());
    }
}
