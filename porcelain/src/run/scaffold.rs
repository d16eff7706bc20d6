//! Mount points `run` needs inside the tree and takes away again.
//!
//! A mount needs an existing directory or file to mount on, so when the
//! rootfs lacks `/proc`, `/dev` or `/etc/resolv.conf` they are created
//! before the run and removed after it. The build that packs the tree
//! must not see them as changes, so the parent directory's mtime is put
//! back too, unless the command itself changed that directory meanwhile
//! (then its change is kept). Only ctime cannot be restored.
//!
//! Removal may run in a forked child (the `ns` process cleans up when
//! the caller died), where only async-signal-safe work is allowed, so
//! [`Scaffold::remove_in_child`] works on C strings made at preparation
//! and system calls alone: no allocation, no std I/O.

use std::ffi::{CStr, CString};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Why a mount point could not be made or taken away.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// Something other than a directory sits where a mount point
    /// directory must be (a symlink could lead the mount out of the tree).
    #[error("{path}: not a directory (a mount point for run must be one)")]
    NotADirectory {
        /// The path in the tree.
        path: PathBuf,
    },
    /// Creating, inspecting or removing a mount point failed.
    #[error("{path}: {source}")]
    Io {
        /// The path in the tree.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ScaffoldError + '_ {
    move |source| ScaffoldError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One mount point this run created.
#[derive(Debug)]
struct Created {
    path: PathBuf,
    /// `path` for the system calls of removal.
    cpath: CString,
    dir: bool,
    /// Device, inode and birth time, so only the very entry created is
    /// removed (an inode number alone may be reused at once).
    id: Identity,
}

/// A directory whose entries this run changed, with its mtime before
/// and right after the change.
#[derive(Debug)]
struct Parent {
    path: PathBuf,
    /// `path` for the system calls of removal.
    cpath: CString,
    before: Timestamp,
    after: Timestamp,
}

/// A modification time, seconds and nanoseconds.
type Timestamp = (i64, u32);

/// Directories whose mtime a scaffold restores: the rootfs and its `etc`.
/// [`Scaffold::remove_in_child`] reads their mtimes into an array of this
/// size rather than a `Vec`.
const MAX_PARENTS: usize = 2;

/// The mount points created for one run, to be removed by [`Scaffold::remove`].
#[derive(Debug, Default)]
pub struct Scaffold {
    created: Vec<Created>,
    parents: Vec<Parent>,
    resolv: bool,
}

/// Mount point directories every run needs, relative to the rootfs.
const DIRS: [&str; 2] = ["proc", "dev"];

impl Scaffold {
    /// Makes sure `rootfs/proc` and `rootfs/dev` are directories, and,
    /// when `resolv` asks for it and the rootfs has an `etc` directory,
    /// that `rootfs/etc/resolv.conf` exists (an existing symlink is left
    /// to be resolved inside the tree by the mount).
    pub fn prepare(rootfs: &Path, resolv: bool) -> Result<Scaffold, ScaffoldError> {
        let mut scaffold = Scaffold::default();
        match scaffold.create_all(rootfs, resolv) {
            Ok(()) => Ok(scaffold),
            Err(err) => {
                // Take back what was made before the failure; the first
                // error is the one worth reporting.
                let _ = scaffold.remove();
                Err(err)
            }
        }
    }

    fn create_all(&mut self, rootfs: &Path, resolv: bool) -> Result<(), ScaffoldError> {
        let rootfs_c = c_path(rootfs)?;
        let before = mtime(rootfs, &rootfs_c)?;
        let made = self.created.len();
        let dirs = self.create_dirs(rootfs);
        if self.created.len() > made {
            // Recorded even when a later directory failed, so that
            // removing what was made also restores the rootfs's mtime.
            self.parents.push(Parent {
                path: rootfs.to_owned(),
                after: mtime(rootfs, &rootfs_c)?,
                cpath: rootfs_c,
                before,
            });
        }
        dirs?;
        if !resolv {
            return Ok(());
        }
        let etc = rootfs.join("etc");
        match fs::symlink_metadata(&etc) {
            // No /etc (or a symlink there): no resolv.conf, rather than
            // creating directories the tree never had.
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io_err(&etc)(err)),
        }
        let path = etc.join("resolv.conf");
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let etc_c = c_path(&etc)?;
                let before = mtime(&etc, &etc_c)?;
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&path)
                    .map_err(io_err(&path))?;
                self.record(path, false)?;
                self.parents.push(Parent {
                    after: mtime(&etc, &etc_c)?,
                    cpath: etc_c,
                    path: etc,
                    before,
                });
                debug_assert!(self.parents.len() <= MAX_PARENTS);
            }
            Err(err) => return Err(io_err(&path)(err)),
        }
        self.resolv = true;
        Ok(())
    }

    fn create_dirs(&mut self, rootfs: &Path) -> Result<(), ScaffoldError> {
        for name in DIRS {
            let path = rootfs.join(name);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(ScaffoldError::NotADirectory { path }),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&path)
                        .map_err(io_err(&path))?;
                    self.record(path, true)?;
                }
                Err(err) => return Err(io_err(&path)(err)),
            }
        }
        Ok(())
    }

    fn record(&mut self, path: PathBuf, dir: bool) -> Result<(), ScaffoldError> {
        let cpath = c_path(&path)?;
        let id = lstat(&cpath).map_err(|e| io_err(&path)(e.into()))?.id;
        self.created.push(Created {
            path,
            cpath,
            dir,
            id,
        });
        Ok(())
    }

    /// Whether the rootfs has a place to mount the host's resolv.conf on.
    pub fn has_resolv(&self) -> bool {
        self.resolv
    }

    /// Removes what [`Scaffold::prepare`] created, newest first, and puts
    /// the parents' mtimes back. Everything is attempted; the first
    /// error is returned.
    pub fn remove(&self) -> Result<(), ScaffoldError> {
        match self.remove_in_child() {
            Some((path, errno)) => Err(io_err(path)(errno.into())),
            None => Ok(()),
        }
    }

    /// [`Scaffold::remove`] without allocating or taking a lock, so that a
    /// child forked from a multi-threaded process may call it: the first
    /// failure, if any, with the path it concerns.
    pub fn remove_in_child(&self) -> Option<(&Path, Errno)> {
        let mut first: Option<(&Path, Errno)> = None;
        // Mtimes are read before anything is removed: an mtime other than
        // the one right after creation means the command changed the
        // directory, and that change stays.
        let mut restore: [Option<Timestamp>; MAX_PARENTS] = [None; MAX_PARENTS];
        for (parent, slot) in self.parents.iter().zip(&mut restore) {
            let now = lstat(&parent.cpath).ok().map(|st| st.mtime);
            *slot = (now == Some(parent.after)).then_some(parent.before).or(now);
        }
        for created in self.created.iter().rev() {
            if let Err(errno) = remove_created(created) {
                first = first.or(Some((&created.path, errno)));
            }
        }
        for (parent, time) in self.parents.iter().zip(restore) {
            let Some((secs, nanos)) = time else { continue };
            // Not followed: a symlink the command put there leads out of
            // the tree, and its own mtime is the command's change anyway.
            let set = utimensat(
                None,
                parent.cpath.as_c_str(),
                &TimeSpec::UTIME_OMIT,
                &TimeSpec::new(secs, i64::from(nanos)),
                UtimensatFlags::NoFollowSymlink,
            );
            if let Err(errno) = set {
                first = first.or(Some((&parent.path, errno)));
            }
        }
        first
    }
}

/// Device, inode and birth time: an entry's identity.
type Identity = (u32, u32, u64, Option<Timestamp>);

/// What removal needs to know of an entry.
struct Stat {
    id: Identity,
    mtime: Timestamp,
}

/// `statx(2)` of `path`, not following a symlink; std's metadata would
/// convert the path (allocating when it is long).
#[allow(unsafe_code)]
fn lstat(path: &CStr) -> Result<Stat, Errno> {
    use nix::libc;
    // SAFETY: statx is plain integers, for which all zeroes is valid.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a C string and `buf` a statx, both live across
    // the call.
    Errno::result(unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut buf,
        )
    })?;
    let stamp = |t: libc::statx_timestamp| (t.tv_sec, t.tv_nsec);
    let btime = (buf.stx_mask & libc::STATX_BTIME != 0).then(|| stamp(buf.stx_btime));
    Ok(Stat {
        id: (buf.stx_dev_major, buf.stx_dev_minor, buf.stx_ino, btime),
        mtime: stamp(buf.stx_mtime),
    })
}

fn c_path(path: &Path) -> Result<CString, ScaffoldError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io_err(path)(io::ErrorKind::InvalidInput.into()))
}

fn mtime(path: &Path, cpath: &CStr) -> Result<Timestamp, ScaffoldError> {
    lstat(cpath)
        .map(|st| st.mtime)
        .map_err(|e| io_err(path)(e.into()))
}

fn remove_created(created: &Created) -> Result<(), Errno> {
    let st = match lstat(&created.cpath) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(errno) => return Err(errno),
    };
    if st.id != created.id {
        // Replaced by the command: its entry, not ours.
        return Ok(());
    }
    let flag = if created.dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    unlinkat(None, created.cpath.as_c_str(), flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};
    use std::time::{Duration, SystemTime};

    fn mtime(path: &Path) -> io::Result<SystemTime> {
        fs::symlink_metadata(path)?.modified()
    }

    /// A rootfs whose directories carry an old, fixed mtime.
    fn rootfs(with_etc: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if with_etc {
            fs::create_dir(dir.path().join("etc")).unwrap();
            set_old(&dir.path().join("etc"));
        }
        set_old(dir.path());
        dir
    }

    fn old() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
    }

    fn set_old(path: &Path) {
        File::open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(old()))
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_mount_points_and_takes_them_away_with_the_mtimes() {
        let root = rootfs(true);
        let scaffold = Scaffold::prepare(root.path(), true).unwrap();
        assert!(scaffold.has_resolv());
        assert_eq!(names(root.path()), ["dev", "etc", "proc"]);
        assert!(root.path().join("etc/resolv.conf").is_file());
        scaffold.remove().unwrap();
        assert_eq!(names(root.path()), ["etc"]);
        assert!(names(&root.path().join("etc")).is_empty());
        assert_eq!(mtime(root.path()).unwrap(), old());
        assert_eq!(mtime(&root.path().join("etc")).unwrap(), old());
    }

    #[test]
    fn existing_mount_points_are_left_alone() {
        let root = rootfs(true);
        for name in ["proc", "dev", "etc/resolv.conf"] {
            let path = root.path().join(name);
            if name.contains('.') {
                fs::write(&path, "nameserver 1.1.1.1\n").unwrap();
            } else {
                fs::create_dir(&path).unwrap();
            }
        }
        set_old(root.path());
        let scaffold = Scaffold::prepare(root.path(), true).unwrap();
        assert!(scaffold.created.is_empty() && scaffold.parents.is_empty());
        scaffold.remove().unwrap();
        assert_eq!(names(root.path()), ["dev", "etc", "proc"]);
        assert_eq!(
            fs::read(root.path().join("etc/resolv.conf")).unwrap(),
            b"nameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn a_change_by_the_command_keeps_its_mtime() {
        let root = rootfs(false);
        let scaffold = Scaffold::prepare(root.path(), true).unwrap();
        // No /etc: nothing is created for resolv.conf.
        assert!(!scaffold.has_resolv());
        std::thread::sleep(Duration::from_millis(20));
        fs::write(root.path().join("x"), "hi").unwrap();
        let changed = mtime(root.path()).unwrap();
        scaffold.remove().unwrap();
        assert_eq!(names(root.path()), ["x"]);
        assert_eq!(mtime(root.path()).unwrap(), changed);
    }

    #[test]
    fn a_symlink_mount_point_is_refused_and_nothing_stays() {
        let root = rootfs(false);
        std::os::unix::fs::symlink("/", root.path().join("dev")).unwrap();
        set_old(root.path());
        let err = Scaffold::prepare(root.path(), false).unwrap_err();
        assert!(
            matches!(&err, ScaffoldError::NotADirectory { path } if path.ends_with("dev")),
            "{err}"
        );
        // proc was created before dev was refused, and is gone again.
        assert_eq!(names(root.path()), ["dev"]);
        assert_eq!(mtime(root.path()).unwrap(), old());
    }

    #[test]
    fn an_entry_replaced_meanwhile_is_not_removed() {
        let root = rootfs(true);
        let scaffold = Scaffold::prepare(root.path(), true).unwrap();
        let resolv = root.path().join("etc/resolv.conf");
        fs::remove_file(&resolv).unwrap();
        fs::write(&resolv, "written by the command").unwrap();
        scaffold.remove().unwrap();
        assert_eq!(fs::read(&resolv).unwrap(), b"written by the command");
    }
}
