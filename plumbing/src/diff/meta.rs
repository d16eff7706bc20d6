//! What `diff` knows about one path on disk ([`FileMeta`], read with `lstat`)
//! and the whole-tree walk that gathers it ([`Tree`], [`walk`]).
//!
//! Nothing here follows a symlink or opens a file: the walk only reads
//! directories, `lstat`s, `readlink`s and lists xattrs without dereferencing,
//! so fifos and devices in a tree are never opened and a symlink pointing
//! outside the tree is never looked through.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::entry::{EntryKind, Timestamp};

use super::DiffError;

/// The attributes of one path that an image can carry and rendering
/// restores (DESIGN §6, aci-format §11.3), read with `lstat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The type. Never [`EntryKind::HardLink`]: hard-linked files are
    /// [`EntryKind::Regular`] and their grouping is in [`FileMeta::hard_links`].
    pub kind: EntryKind,
    /// Permission and special bits (the low 12 bits of `st_mode`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Modification time with nanoseconds.
    pub mtime: Timestamp,
    /// Size in bytes for regular files; 0 for every other type, as in a tar
    /// header (a directory's `st_size` depends on the file system, not on
    /// anything an image carries).
    pub size: u64,
    /// Symlink target, byte for byte; `None` for other types.
    pub link_target: Option<Vec<u8>>,
    /// Device major number (char and block devices; 0 otherwise).
    pub dev_major: u32,
    /// Device minor number (char and block devices; 0 otherwise).
    pub dev_minor: u32,
    /// Extended attributes of regular files and directories, sorted by name,
    /// without the `system.*` namespace (ACLs and the like, which an ACI does
    /// not carry: aci-format §11.3). Empty for other types.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// `st_dev` of the path, for hard-link grouping.
    pub dev: u64,
    /// `st_ino` of the path, for hard-link grouping.
    pub ino: u64,
    /// `st_nlink` of the path.
    pub nlink: u64,
    /// Status change time (`st_ctime`): not compared, but it moves on any
    /// write, chmod, chown, xattr or link change, so a stat snapshot can
    /// tell an untouched file without reading it (DESIGN §6).
    pub ctime: Timestamp,
    /// The other paths of the same tree that are hard links to this one
    /// (same `dev` and `ino`), sorted; filled in by [`walk`], empty for a
    /// [`FileMeta`] read on its own and for directories.
    pub hard_links: Vec<Vec<u8>>,
}

impl FileMeta {
    /// Metadata of the given kind with every other field zero or empty,
    /// for callers that describe a path that is not on disk.
    pub fn bare(kind: EntryKind) -> FileMeta {
        FileMeta {
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            size: 0,
            link_target: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            dev: 0,
            ino: 0,
            nlink: 0,
            ctime: Timestamp::default(),
            hard_links: Vec::new(),
        }
    }

    /// Reads the metadata of `path` with `lstat` (a symlink describes the
    /// link itself). Returns `Ok(None)` for sockets, which an image cannot
    /// hold (aci-format §11.2: `actool build` skips them).
    pub fn from_path(path: &Path) -> io::Result<Option<FileMeta>> {
        let md = fs::symlink_metadata(path)?;
        Self::from_metadata(path, &md)
    }

    fn from_metadata(path: &Path, md: &fs::Metadata) -> io::Result<Option<FileMeta>> {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            EntryKind::Regular
        } else if ft.is_dir() {
            EntryKind::Directory
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            return Ok(None);
        };
        let link_target = if kind == EntryKind::Symlink {
            Some(fs::read_link(path)?.into_os_string().into_vec())
        } else {
            None
        };
        let (dev_major, dev_minor) = match kind {
            EntryKind::CharDevice | EntryKind::BlockDevice => split_dev(md.rdev()),
            _ => (0, 0),
        };
        let xattrs = match kind {
            EntryKind::Regular | EntryKind::Directory => read_xattrs(path)?,
            _ => Vec::new(),
        };
        Ok(Some(FileMeta {
            kind,
            mode: md.mode() & 0o7777,
            uid: u64::from(md.uid()),
            gid: u64::from(md.gid()),
            mtime: Timestamp {
                secs: md.mtime(),
                // The kernel keeps st_mtime_nsec in 0..1e9.
                nanos: u32::try_from(md.mtime_nsec()).unwrap_or(0),
            },
            size: if kind == EntryKind::Regular {
                md.size()
            } else {
                0
            },
            link_target,
            dev_major,
            dev_minor,
            xattrs,
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
            ctime: Timestamp {
                secs: md.ctime(),
                nanos: u32::try_from(md.ctime_nsec()).unwrap_or(0),
            },
            hard_links: Vec::new(),
        }))
    }
}

/// Splits a Linux `dev_t` into major and minor as glibc's `gnu_dev_major`
/// and `gnu_dev_minor` do (the encoding `actool build` writes, aci-format §11.2).
fn split_dev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    // Both masks keep at most 32 bits.
    (major as u32, minor as u32)
}

/// Lists the xattrs of `path` without following a symlink, sorted by name,
/// `system.*` left out. A file system without xattr support has none.
fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(b"system.") {
            continue;
        }
        // An attribute removed between list and get is simply not there.
        if let Some(value) = xattr::get(path, &name)? {
            out.push((bytes.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32)
}

/// Every path of a directory tree with its metadata, keyed by the path
/// relative to the tree's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    root: PathBuf,
    // Keyed by the relative path; the root itself is the empty key so it
    // sorts first and is shown as `.`.
    entries: BTreeMap<Vec<u8>, FileMeta>,
}

/// How the root of a tree is named in listings.
pub const ROOT_PATH: &[u8] = b".";

impl Tree {
    /// The directory that was walked (a symlinked root already resolved, so
    /// that reading files through [`Tree::full_path`] crosses no link).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of paths, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree has no paths (never true for a walked tree, which
    /// holds at least its root).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The metadata of the relative `path` (`.` for the root).
    pub fn get(&self, path: &[u8]) -> Option<&FileMeta> {
        self.entries.get(key_of(path))
    }

    /// Every path with its metadata: the root first as `.`, then the others
    /// sorted by their bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &FileMeta)> {
        self.entries
            .iter()
            .map(|(k, v)| (display_of(k.as_slice()), v))
    }

    /// The on-disk location of the relative `path` (`.` for the root).
    pub fn full_path(&self, path: &[u8]) -> PathBuf {
        let key = key_of(path);
        if key.is_empty() {
            self.root.clone()
        } else {
            self.root.join(std::ffi::OsStr::from_bytes(key))
        }
    }

    /// A tree from metadata that does not come from a walk (e.g. what a
    /// rendering would produce): `entries` maps relative paths, the root
    /// under the empty key, to their metadata; `root` is where
    /// [`Tree::full_path`] points.
    pub fn from_entries(root: PathBuf, entries: BTreeMap<Vec<u8>, FileMeta>) -> Tree {
        Tree { root, entries }
    }

    /// The internal, sorted map (root under the empty key).
    pub(super) fn entries(&self) -> &BTreeMap<Vec<u8>, FileMeta> {
        &self.entries
    }
}

fn key_of(path: &[u8]) -> &[u8] {
    if path == ROOT_PATH {
        b""
    } else {
        path
    }
}

/// The listed form of an internal key: `.` for the root.
pub(super) fn display_of(key: &[u8]) -> &[u8] {
    if key.is_empty() {
        ROOT_PATH
    } else {
        key
    }
}

/// Walks the directory `root` without following any symlink below it and
/// returns every path (the root included, as `.`) with its metadata and
/// hard-link groups computed within the tree.
///
/// `root` itself may be a symlink to a directory (it is the caller's
/// argument, like `ls DIR/`); nothing beneath it is followed. Sockets are
/// left out (aci-format §11.2).
pub fn walk(root: &Path) -> Result<Tree, DiffError> {
    let stat_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DiffError::Stat { path, source }
    };
    let root_md = fs::metadata(root).map_err(stat_err(root))?;
    if !root_md.is_dir() {
        return Err(DiffError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    // Resolve a symlinked root once so that no later call sees a link.
    let walk_root = if fs::symlink_metadata(root)
        .map_err(stat_err(root))?
        .file_type()
        .is_symlink()
    {
        fs::canonicalize(root).map_err(stat_err(root))?
    } else {
        root.to_path_buf()
    };

    let mut entries = BTreeMap::new();
    let walker = walkdir::WalkDir::new(&walk_root)
        .follow_links(false)
        .follow_root_links(false);
    for item in walker {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(&walk_root).to_path_buf();
            DiffError::ReadDir {
                path,
                source: e.into(),
            }
        })?;
        let full = item.path();
        let rel = full
            .strip_prefix(&walk_root)
            .map_err(|_| DiffError::OutsideRoot {
                path: full.to_path_buf(),
            })?;
        let md = fs::symlink_metadata(full).map_err(stat_err(full))?;
        let Some(meta) = FileMeta::from_metadata(full, &md).map_err(stat_err(full))? else {
            continue;
        };
        entries.insert(rel.as_os_str().as_bytes().to_vec(), meta);
    }
    group_hard_links(&mut entries);
    Ok(Tree {
        root: walk_root,
        entries,
    })
}

/// Fills in [`FileMeta::hard_links`]: paths of the tree sharing one
/// (dev, ino). Directories are skipped: their link count counts
/// subdirectories, not hard links.
fn group_hard_links(entries: &mut BTreeMap<Vec<u8>, FileMeta>) {
    let mut groups: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    for (path, meta) in entries.iter() {
        if meta.kind != EntryKind::Directory && meta.nlink > 1 {
            groups
                .entry((meta.dev, meta.ino))
                .or_default()
                .push(path.clone());
        }
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        for path in members {
            if let Some(meta) = entries.get_mut(path) {
                // members were pushed in the map's sorted order.
                meta.hard_links = members.iter().filter(|p| *p != path).cloned().collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_like_glibc() {
        // makedev(8, 1) and makedev(259, 70000) with the glibc encoding.
        assert_eq!(split_dev(0x801), (8, 1));
        let (maj, min) = (259u64, 70000u64);
        let dev =
            ((maj & 0xfff) << 8) | ((maj & !0xfff) << 32) | (min & 0xff) | ((min & !0xff) << 12);
        assert_eq!(split_dev(dev), (259, 70000));
    }

    #[test]
    fn walk_lists_root_first_and_groups_links() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"x").unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        fs::create_dir(dir.path().join("-d")).unwrap();
        let tree = walk(dir.path()).unwrap();
        let paths: Vec<&[u8]> = tree.iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec![&b"."[..], b"-d", b"a", b"b"]);
        assert_eq!(tree.get(b"a").unwrap().hard_links, vec![b"b".to_vec()]);
        assert_eq!(tree.get(b"b").unwrap().hard_links, vec![b"a".to_vec()]);
        assert!(tree.get(b".").unwrap().hard_links.is_empty());
        assert_eq!(tree.full_path(b"."), dir.path());
    }

    #[test]
    fn walk_rejects_a_file_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"").unwrap();
        assert!(matches!(
            walk(&dir.path().join("f")),
            Err(DiffError::NotADirectory { .. })
        ));
    }
}
