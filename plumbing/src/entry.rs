//! One tar entry of an image as acido understands it: the cleaned path, the
//! type, the metadata rendering restores, and where its data sits in the
//! uncompressed tar. Archive scanning produces these, the store's entry index
//! persists them, and rendering, diffing and packing consume them.

/// A point in time with nanoseconds, as PAX headers and `utimensat` carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

/// The entry types an ACI may carry (aci-format §9.3, §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file (typeflag `0`, or `\0` without a trailing `/`).
    Regular,
    /// A directory (typeflag `5`, or `\0` with a trailing `/`).
    Directory,
    /// A symbolic link (typeflag `2`); the target is kept byte for byte.
    Symlink,
    /// A hard link (typeflag `1`) to an earlier entry named from the archive root.
    HardLink,
    /// A character device (typeflag `3`).
    CharDevice,
    /// A block device (typeflag `4`).
    BlockDevice,
    /// A named pipe (typeflag `6`).
    Fifo,
}

impl EntryKind {
    /// The one-letter code used in listings (`ls-tree`, `render-tree --list`).
    pub fn code(self) -> char {
        match self {
            EntryKind::Regular => 'f',
            EntryKind::Directory => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::HardLink => 'h',
            EntryKind::CharDevice => 'c',
            EntryKind::BlockDevice => 'b',
            EntryKind::Fifo => 'p',
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(self) -> bool {
        self == EntryKind::Directory
    }
}

/// One entry of an image's tar, with every attribute acido restores and
/// the offsets needed to read its data straight from the stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The cleaned path relative to the archive root, without a leading
    /// `./` or `/` and without a trailing `/`: `manifest`, `rootfs`,
    /// `rootfs/etc/passwd`. Bytes, never lossily converted.
    pub path: Vec<u8>,
    /// The entry type.
    pub kind: EntryKind,
    /// Permission and special bits (the low 12 bits of the tar mode).
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
    /// Modification time, with nanoseconds when a PAX header gave them.
    pub mtime: Timestamp,
    /// Access time, when the header carried one.
    pub atime: Option<Timestamp>,
    /// Size of the data in bytes (0 for everything but regular files).
    pub size: u64,
    /// Offset of the entry's first header block (PAX/GNU headers included)
    /// in the uncompressed tar.
    pub header_offset: u64,
    /// Offset of the data in the uncompressed tar.
    pub data_offset: u64,
    /// Symlink target as stored, or for hard links the cleaned path of the
    /// target entry relative to the archive root (`rootfs/usr/lib/libc.so`).
    pub link_target: Option<Vec<u8>>,
    /// Device major number (char and block devices).
    pub dev_major: u32,
    /// Device minor number (char and block devices).
    pub dev_minor: u32,
    /// Extended attributes from PAX `SCHILY.xattr.*` records, in header order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The path below `rootfs/`, or `None` for `manifest`, `rootfs` itself and
    /// anything outside the rootfs.
    pub fn rootfs_relative(&self) -> Option<&[u8]> {
        self.path.strip_prefix(b"rootfs/")
    }
}
