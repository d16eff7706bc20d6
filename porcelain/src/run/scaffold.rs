//! Mount points `run` needs inside the tree and takes away again.
//!
//! A mount needs an existing directory or file to mount on, so when the
//! rootfs lacks `/proc`, `/dev` or `/etc/resolv.conf` they are created
//! before the run and removed after it. The build that packs the tree
//! must not see them as changes, so the parent directory's mtime is put
//! back too, unless the command itself changed that directory meanwhile
//! (then its change is kept). Only ctime cannot be restored.

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    before: SystemTime,
    after: SystemTime,
}

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
        let before = mtime(rootfs)?;
        let made = self.created.len();
        let dirs = self.create_dirs(rootfs);
        if self.created.len() > made {
            // Recorded even when a later directory failed, so that
            // removing what was made also restores the rootfs's mtime.
            self.parents.push(Parent {
                path: rootfs.to_owned(),
                before,
                after: mtime(rootfs)?,
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
                let before = mtime(&etc)?;
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&path)
                    .map_err(io_err(&path))?;
                self.record(path, false)?;
                self.parents.push(Parent {
                    after: mtime(&etc)?,
                    path: etc,
                    before,
                });
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
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        self.created.push(Created {
            path,
            dir,
            id: identity(&meta),
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
        let mut first = Ok(());
        // Mtimes are read before anything is removed: an mtime other than
        // the one right after creation means the command changed the
        // directory, and that change stays.
        let restore: Vec<(&Parent, Option<SystemTime>)> = self
            .parents
            .iter()
            .map(|p| {
                let now = mtime(&p.path).ok();
                (p, (now == Some(p.after)).then_some(p.before).or(now))
            })
            .collect();
        for created in self.created.iter().rev() {
            if let Err(err) = remove_created(created) {
                first = first.and(Err(err));
            }
        }
        for (parent, time) in restore {
            let Some(time) = time else { continue };
            let set = File::open(&parent.path)
                .and_then(|dir| dir.set_times(FileTimes::new().set_modified(time)));
            if let Err(err) = set {
                first = first.and(Err(io_err(&parent.path)(err)));
            }
        }
        first
    }
}

type Identity = (u64, u64, Option<SystemTime>);

fn identity(meta: &fs::Metadata) -> Identity {
    (meta.dev(), meta.ino(), meta.created().ok())
}

fn mtime(path: &Path) -> Result<SystemTime, ScaffoldError> {
    fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .map_err(io_err(path))
}

fn remove_created(created: &Created) -> Result<(), ScaffoldError> {
    let meta = match fs::symlink_metadata(&created.path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_err(&created.path)(err)),
    };
    if identity(&meta) != created.id {
        // Replaced by the command: its entry, not ours.
        return Ok(());
    }
    let removed = if created.dir {
        fs::remove_dir(&created.path)
    } else {
        fs::remove_file(&created.path)
    };
    removed.map_err(io_err(&created.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
