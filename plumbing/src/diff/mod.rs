//! Comparing two directory trees attribute by attribute (DESIGN §4
//! `diff-tree`, §6; aci-format §10–11).
//!
//! A path is reported when its type, content, symlink target, mode (all 12
//! bits), uid, gid, mtime (with nanoseconds), xattrs, hard-link group or
//! device numbers differ: everything an image carries and rendering restores,
//! not only the size and mtime the historical diff builder looked at
//! (aci-format §10). [`compare`] decides for one path and takes the content
//! comparison as a closure, so `build` can skip reading files its stat
//! snapshot calls unchanged; [`diff_trees`] walks two trees and compares
//! every path. The encoders in [`format`] turn the change list into the
//! documented `diff-tree` outputs.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::entry::EntryKind;

pub mod format;
mod meta;

pub use meta::{walk, FileMeta, Tree, ROOT_PATH};

/// Why two trees could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// `lstat`, `readlink` or listing xattrs of a path failed.
    #[error("{}: cannot read metadata: {source}", path.display())]
    Stat {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A directory of the tree could not be listed.
    #[error("{}: cannot read directory: {source}", path.display())]
    ReadDir {
        /// The directory (or entry) being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The root of a tree is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The rejected root.
        path: PathBuf,
    },
    /// The walk produced a path outside the root (should not happen).
    #[error("{}: path is outside the walked tree", path.display())]
    OutsideRoot {
        /// The offending path.
        path: PathBuf,
    },
    /// Reading two regular files to compare their contents failed.
    #[error("{} and {}: cannot compare contents: {source}", a.display(), b.display())]
    Content {
        /// The file in tree A.
        a: PathBuf,
        /// The file in tree B.
        b: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// How a path differs between tree A and tree B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Only in B.
    Added,
    /// In both, same type, at least one attribute differs.
    Modified,
    /// Only in A.
    Deleted,
    /// In both with different types (e.g. a directory became a file).
    TypeChanged,
}

impl Status {
    /// The one-letter code of `--name-status`: `A`, `M`, `D` or `T`.
    pub fn code(self) -> char {
        match self {
            Status::Added => 'A',
            Status::Modified => 'M',
            Status::Deleted => 'D',
            Status::TypeChanged => 'T',
        }
    }
}

/// One attribute that differs between A and B for a modified path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// The data of a regular file (always set together with [`Attr::Size`]
    /// when the sizes differ).
    Content,
    /// Permission and special bits.
    Mode,
    /// Owner user id.
    Uid,
    /// Owner group id.
    Gid,
    /// Modification time (seconds or nanoseconds).
    Mtime,
    /// Symlink target bytes.
    LinkTarget,
    /// The set of extended attributes or a value.
    Xattrs,
    /// The set of other paths hard-linked to this one.
    HardLinks,
    /// Device major or minor number.
    Device,
    /// Size of a regular file.
    Size,
}

impl Attr {
    /// The name used by `--stat` and `--json`: `content`, `mode`, `uid`,
    /// `gid`, `mtime`, `link-target`, `xattrs`, `hard-links`, `device`, `size`.
    pub fn name(self) -> &'static str {
        match self {
            Attr::Content => "content",
            Attr::Mode => "mode",
            Attr::Uid => "uid",
            Attr::Gid => "gid",
            Attr::Mtime => "mtime",
            Attr::LinkTarget => "link-target",
            Attr::Xattrs => "xattrs",
            Attr::HardLinks => "hard-links",
            Attr::Device => "device",
            Attr::Size => "size",
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path relative to the tree roots (`.` for the roots themselves).
    pub path: Vec<u8>,
    /// How it changed.
    pub status: Status,
    /// For [`Status::Modified`], the attributes that differ, in [`Attr`]
    /// order; empty for the other statuses.
    pub attrs: Vec<Attr>,
    /// The metadata in tree A (`None` when added).
    pub a: Option<FileMeta>,
    /// The metadata in tree B (`None` when deleted).
    pub b: Option<FileMeta>,
}

/// What [`diff_trees`] and [`compare`] look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Do not report a directory whose only difference is its mtime (which
    /// changes whenever an entry is added or removed inside it). Default
    /// `false`: compare everything.
    pub ignore_dir_mtime: bool,
}

/// The tree to compare for `dir`: `dir/rootfs` when `dir` is a layout
/// directory (holds a `manifest` and a `rootfs/` directory, aci-format §1),
/// otherwise `dir` itself. Neither `manifest` nor `rootfs` is followed if it
/// is a symlink.
pub fn tree_root(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let has_manifest = std::fs::symlink_metadata(dir.join("manifest")).is_ok();
    let rootfs_is_dir = std::fs::symlink_metadata(&rootfs)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    if has_manifest && rootfs_is_dir {
        rootfs
    } else {
        dir.to_path_buf()
    }
}

/// Compares one path's metadata in A and B.
///
/// Returns `None` when nothing differs, `Some((TypeChanged, []))` when the
/// types differ, otherwise `Some((Modified, attrs))` with the differing
/// attributes in [`Attr`] order. `content_equal` is called at most once, and
/// only for two regular files of equal size; when their sizes differ the
/// contents differ too and both [`Attr::Content`] and [`Attr::Size`] are
/// reported without reading anything. Directory mtimes are skipped when
/// `opts.ignore_dir_mtime` is set.
pub fn compare(
    a: &FileMeta,
    b: &FileMeta,
    opts: &DiffOptions,
    content_equal: impl FnOnce() -> io::Result<bool>,
) -> io::Result<Option<(Status, Vec<Attr>)>> {
    if a.kind != b.kind {
        return Ok(Some((Status::TypeChanged, Vec::new())));
    }
    let mut attrs = Vec::new();
    if a.kind == EntryKind::Regular {
        if a.size != b.size {
            attrs.push(Attr::Content);
            attrs.push(Attr::Size);
        } else if !content_equal()? {
            attrs.push(Attr::Content);
        }
    }
    if a.mode != b.mode {
        attrs.push(Attr::Mode);
    }
    if a.uid != b.uid {
        attrs.push(Attr::Uid);
    }
    if a.gid != b.gid {
        attrs.push(Attr::Gid);
    }
    let skip_mtime = opts.ignore_dir_mtime && a.kind == EntryKind::Directory;
    if !skip_mtime && a.mtime != b.mtime {
        attrs.push(Attr::Mtime);
    }
    if a.link_target != b.link_target {
        attrs.push(Attr::LinkTarget);
    }
    if a.xattrs != b.xattrs {
        attrs.push(Attr::Xattrs);
    }
    // Both lists are sorted, so equal sets compare equal.
    if a.hard_links != b.hard_links {
        attrs.push(Attr::HardLinks);
    }
    if (a.dev_major, a.dev_minor) != (b.dev_major, b.dev_minor) {
        attrs.push(Attr::Device);
    }
    attrs.sort();
    if attrs.is_empty() {
        Ok(None)
    } else {
        Ok(Some((Status::Modified, attrs)))
    }
}

/// Whether two regular files hold the same bytes, read side by side in
/// chunks (memory independent of file size).
///
/// Each file is opened with `O_NOFOLLOW | O_NONBLOCK` and must still be a
/// regular file once open, so a path swapped for a symlink or a fifo after
/// the walk is an error rather than followed or blocked on.
pub fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let mut fa = open_regular(a)?;
    let mut fb = open_regular(b)?;
    const CHUNK: usize = 64 * 1024;
    let mut buf_a = vec![0u8; CHUNK];
    let mut buf_b = vec![0u8; CHUNK];
    loop {
        let na = read_full(&mut fa, &mut buf_a)?;
        let nb = read_full(&mut fb, &mut buf_b)?;
        if na != nb || buf_a[..na] != buf_b[..nb] {
            return Ok(false);
        }
        if na < CHUNK {
            return Ok(true);
        }
    }
}

/// Whether the regular file at `path` holds exactly `expected` (bytes
/// already in memory, e.g. a slice of an mmapped blob), opened and read as
/// [`same_content`] reads.
pub fn content_equals(path: &Path, expected: &[u8]) -> io::Result<bool> {
    let mut file = open_regular(path)?;
    const CHUNK: usize = 64 * 1024;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0usize;
    loop {
        let n = read_full(&mut file, &mut buf)?;
        match expected.get(at..at + n) {
            Some(part) if part == &buf[..n] => at += n,
            _ => return Ok(false),
        }
        if n < CHUNK {
            return Ok(at == expected.len());
        }
    }
}

fn open_regular(path: &Path) -> io::Result<File> {
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no longer a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Reads until `buf` is full or the end of the file; returns the byte count.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Compares two trees, each a directory or a layout directory (see
/// [`tree_root`]), and returns every changed path sorted by path bytes
/// (the roots, `.`, first).
///
/// Paths only in A are [`Status::Deleted`], only in B [`Status::Added`]; so
/// when a directory is deleted or changes type, each path below it is listed
/// as deleted as well (and likewise added), as git lists them. Nothing is
/// followed through a symlink and no fifo or device is opened.
pub fn diff_trees(a: &Path, b: &Path, opts: &DiffOptions) -> Result<Vec<Change>, DiffError> {
    let ta = walk(&tree_root(a))?;
    let tb = walk(&tree_root(b))?;
    diff_walked(&ta, &tb, opts)
}

/// [`diff_trees`] on two trees already walked.
pub fn diff_walked(a: &Tree, b: &Tree, opts: &DiffOptions) -> Result<Vec<Change>, DiffError> {
    diff_walked_with(a, b, &mut |path, ma, mb| {
        let (pa, pb) = (a.full_path(path), b.full_path(path));
        compare(ma, mb, opts, || same_content(&pa, &pb)).map_err(|source| DiffError::Content {
            a: pa.clone(),
            b: pb.clone(),
            source,
        })
    })
}

/// The judge of a path present on both sides: its status and differing
/// attributes, or `None` when it is unchanged.
pub type Judge<'a> =
    dyn FnMut(&[u8], &FileMeta, &FileMeta) -> Result<Option<(Status, Vec<Attr>)>, DiffError> + 'a;

/// The walk behind [`diff_walked`], with the judgement of paths present on
/// both sides left to `judge` (called with the listed path, A's and B's
/// metadata). Callers that know more than two directories can, such as
/// `build` comparing a tree against a rendering it never wrote (content
/// from the blobs, untouched paths from a stat snapshot), plug in here.
pub fn diff_walked_with(
    a: &Tree,
    b: &Tree,
    judge: &mut Judge<'_>,
) -> Result<Vec<Change>, DiffError> {
    let mut changes = Vec::new();
    let mut ia = a.entries().iter().peekable();
    let mut ib = b.entries().iter().peekable();
    loop {
        let order = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match order {
            std::cmp::Ordering::Less => {
                if let Some((key, ma)) = ia.next() {
                    changes.push(Change {
                        path: meta::display_of(key).to_vec(),
                        status: Status::Deleted,
                        attrs: Vec::new(),
                        a: Some(ma.clone()),
                        b: None,
                    });
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some((key, mb)) = ib.next() {
                    changes.push(Change {
                        path: meta::display_of(key).to_vec(),
                        status: Status::Added,
                        attrs: Vec::new(),
                        a: None,
                        b: Some(mb.clone()),
                    });
                }
            }
            std::cmp::Ordering::Equal => {
                let (Some((key, ma)), Some((_, mb))) = (ia.next(), ib.next()) else {
                    break;
                };
                let path = meta::display_of(key);
                if let Some((status, attrs)) = judge(path, ma, mb)? {
                    changes.push(Change {
                        path: path.to_vec(),
                        status,
                        attrs,
                        a: Some(ma.clone()),
                        b: Some(mb.clone()),
                    });
                }
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Timestamp;
    use std::cell::Cell;

    fn file(size: u64) -> FileMeta {
        FileMeta {
            kind: EntryKind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp {
                secs: 1_700_000_000,
                nanos: 5,
            },
            size,
            link_target: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            dev: 1,
            ino: 2,
            nlink: 1,
            ctime: Timestamp::default(),
            hard_links: Vec::new(),
        }
    }

    fn of_kind(kind: EntryKind) -> FileMeta {
        FileMeta {
            kind,
            size: 0,
            ..file(0)
        }
    }

    fn symlink(target: &[u8]) -> FileMeta {
        FileMeta {
            link_target: Some(target.to_vec()),
            mode: 0o777,
            ..of_kind(EntryKind::Symlink)
        }
    }

    fn same() -> io::Result<bool> {
        Ok(true)
    }

    fn cmp(a: &FileMeta, b: &FileMeta) -> Option<(Status, Vec<Attr>)> {
        compare(a, b, &DiffOptions::default(), same).unwrap()
    }

    fn modified(attrs: &[Attr]) -> Option<(Status, Vec<Attr>)> {
        Some((Status::Modified, attrs.to_vec()))
    }

    #[test]
    fn identical_metadata_is_unchanged() {
        assert_eq!(cmp(&file(3), &file(3)), None);
        assert_eq!(cmp(&symlink(b"x"), &symlink(b"x")), None);
    }

    #[test]
    fn every_attribute_is_seen_alone() {
        let base = file(3);
        let cases: Vec<(FileMeta, Attr)> = vec![
            (
                FileMeta {
                    mode: 0o4644,
                    ..base.clone()
                },
                Attr::Mode,
            ),
            (
                FileMeta {
                    uid: 1000,
                    ..base.clone()
                },
                Attr::Uid,
            ),
            (
                FileMeta {
                    gid: 1000,
                    ..base.clone()
                },
                Attr::Gid,
            ),
            (
                FileMeta {
                    mtime: Timestamp {
                        secs: base.mtime.secs,
                        nanos: 6,
                    },
                    ..base.clone()
                },
                Attr::Mtime,
            ),
            (
                FileMeta {
                    xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
                    ..base.clone()
                },
                Attr::Xattrs,
            ),
            (
                FileMeta {
                    ctime: Timestamp::default(),
                    hard_links: vec![b"other".to_vec()],
                    ..base.clone()
                },
                Attr::HardLinks,
            ),
        ];
        for (b, attr) in cases {
            assert_eq!(cmp(&base, &b), modified(&[attr]), "{attr:?}");
            assert_eq!(cmp(&b, &base), modified(&[attr]), "{attr:?} reversed");
        }
    }

    #[test]
    fn xattr_value_change_is_seen() {
        let a = FileMeta {
            xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
            ..file(0)
        };
        let b = FileMeta {
            xattrs: vec![(b"user.a".to_vec(), b"2".to_vec())],
            ..file(0)
        };
        assert_eq!(cmp(&a, &b), modified(&[Attr::Xattrs]));
    }

    #[test]
    fn symlink_target_bytes_are_compared() {
        assert_eq!(
            cmp(&symlink(b"/etc/passwd"), &symlink(b"/etc/shadow")),
            modified(&[Attr::LinkTarget])
        );
        assert_eq!(
            cmp(&symlink(b"a\xff"), &symlink(b"a\xfe")),
            modified(&[Attr::LinkTarget])
        );
    }

    #[test]
    fn device_numbers_are_compared() {
        let a = FileMeta {
            dev_major: 1,
            dev_minor: 3,
            ..of_kind(EntryKind::CharDevice)
        };
        let b = FileMeta {
            dev_minor: 5,
            ..a.clone()
        };
        assert_eq!(cmp(&a, &b), modified(&[Attr::Device]));
        let block = FileMeta {
            kind: EntryKind::BlockDevice,
            ..a.clone()
        };
        assert_eq!(cmp(&a, &block), Some((Status::TypeChanged, vec![])));
    }

    #[test]
    fn content_is_read_only_for_equal_sizes() {
        let called = Cell::new(false);
        let got = compare(&file(3), &file(4), &DiffOptions::default(), || {
            called.set(true);
            Ok(true)
        })
        .unwrap();
        assert_eq!(got, modified(&[Attr::Content, Attr::Size]));
        assert!(!called.get());

        let got = compare(&file(3), &file(3), &DiffOptions::default(), || {
            called.set(true);
            Ok(false)
        })
        .unwrap();
        assert_eq!(got, modified(&[Attr::Content]));
        assert!(called.get());
    }

    #[test]
    fn content_is_never_asked_for_other_types() {
        let d = of_kind(EntryKind::Directory);
        let got = compare(&d, &d, &DiffOptions::default(), || {
            Err(io::Error::other("must not be called"))
        })
        .unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn content_errors_are_passed_on() {
        let got = compare(&file(1), &file(1), &DiffOptions::default(), || {
            Err(io::Error::other("boom"))
        });
        assert!(got.is_err());
    }

    #[test]
    fn hard_link_regrouping_with_identical_content() {
        // A: x and y are one inode; B: two files with the same bytes.
        let ax = FileMeta {
            ctime: Timestamp::default(),
            hard_links: vec![b"y".to_vec()],
            nlink: 2,
            ..file(3)
        };
        let bx = FileMeta { ino: 9, ..file(3) };
        assert_eq!(cmp(&ax, &bx), modified(&[Attr::HardLinks]));
        // Same group in both trees, different inode numbers: unchanged.
        let bx2 = FileMeta {
            ino: 77,
            ..ax.clone()
        };
        assert_eq!(cmp(&ax, &bx2), None);
        // Regrouped with a different partner.
        let bx3 = FileMeta {
            ctime: Timestamp::default(),
            hard_links: vec![b"z".to_vec()],
            ..ax.clone()
        };
        assert_eq!(cmp(&ax, &bx3), modified(&[Attr::HardLinks]));
    }

    #[test]
    fn fifo_versus_file_is_a_type_change() {
        assert_eq!(
            cmp(&of_kind(EntryKind::Fifo), &file(0)),
            Some((Status::TypeChanged, vec![]))
        );
    }

    #[test]
    fn dir_mtime_can_be_ignored() {
        let a = of_kind(EntryKind::Directory);
        let b = FileMeta {
            mtime: Timestamp { secs: 1, nanos: 0 },
            ..a.clone()
        };
        assert_eq!(cmp(&a, &b), modified(&[Attr::Mtime]));
        let opts = DiffOptions {
            ignore_dir_mtime: true,
        };
        assert_eq!(compare(&a, &b, &opts, same).unwrap(), None);
        // Only directories: a file's mtime still counts.
        let fb = FileMeta {
            mtime: Timestamp { secs: 1, nanos: 0 },
            ..file(0)
        };
        assert_eq!(
            compare(&file(0), &fb, &opts, same).unwrap(),
            modified(&[Attr::Mtime])
        );
    }

    #[test]
    fn several_attributes_come_in_attr_order() {
        let a = file(3);
        let b = FileMeta {
            mode: 0o600,
            gid: 5,
            size: 4,
            ..file(3)
        };
        assert_eq!(
            cmp(&a, &b),
            modified(&[Attr::Content, Attr::Mode, Attr::Gid, Attr::Size])
        );
    }

    #[test]
    fn dir_to_file_lists_children_as_deleted() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("d/e")).unwrap();
        std::fs::write(a.path().join("d/e/f"), b"1").unwrap();
        std::fs::write(a.path().join("d-z"), b"1").unwrap();
        std::fs::write(b.path().join("d"), b"1").unwrap();
        std::fs::write(b.path().join("d-z"), b"1").unwrap();
        let opts = DiffOptions {
            ignore_dir_mtime: true,
        };
        // d-z is the same in both trees: same bytes and mtime.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for root in [a.path(), b.path()] {
            let f = File::options().write(true).open(root.join("d-z")).unwrap();
            f.set_modified(when).unwrap();
        }
        let ta = walk(a.path()).unwrap();
        let tb = walk(b.path()).unwrap();
        let got: Vec<(Vec<u8>, Status)> = diff_walked(&ta, &tb, &opts)
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.status))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"d".to_vec(), Status::TypeChanged),
                (b"d/e".to_vec(), Status::Deleted),
                (b"d/e/f".to_vec(), Status::Deleted),
            ]
        );
    }

    #[test]
    fn tree_root_prefers_rootfs_of_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tree_root(dir.path()), dir.path());
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        assert_eq!(tree_root(dir.path()), dir.path());
        std::fs::write(dir.path().join("manifest"), b"{}").unwrap();
        assert_eq!(tree_root(dir.path()), dir.path().join("rootfs"));
    }

    #[test]
    fn same_content_reads_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut other = big.clone();
        other[150_000] ^= 1;
        std::fs::write(dir.path().join("a"), &big).unwrap();
        std::fs::write(dir.path().join("b"), &big).unwrap();
        std::fs::write(dir.path().join("c"), &other).unwrap();
        let p = |n: &str| dir.path().join(n);
        assert!(same_content(&p("a"), &p("b")).unwrap());
        assert!(!same_content(&p("a"), &p("c")).unwrap());
        std::os::unix::fs::symlink("a", p("l")).unwrap();
        assert!(same_content(&p("a"), &p("l")).is_err());
    }
}
