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

    /// The word used in JSON output (`--format json` of `ls-tree` and
    /// `diff-tree`): `regular`, `directory`, `symlink`, `hardlink`, `char`,
    /// `block`, `fifo`.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Regular => "regular",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::HardLink => "hardlink",
            EntryKind::CharDevice => "char",
            EntryKind::BlockDevice => "block",
            EntryKind::Fifo => "fifo",
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

/// Building entries by hand, for tests and tools: `Entry::new` and
/// chainable setters, so a literal names only what matters to it.
impl Entry {
    /// An entry of `kind` at the cleaned `path`, with the attributes of a
    /// plain entry at the start of an archive: mode 0644, owned by root,
    /// mtime 0, no atime, size 0, its header at offset 0 and its data one
    /// 512-byte block later, no link target, device 0:0, no xattrs.
    pub fn new(path: impl Into<Vec<u8>>, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            atime: None,
            size: 0,
            header_offset: 0,
            data_offset: 512,
            link_target: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    /// With permission and special bits `mode`.
    pub fn with_mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    /// Owned by `uid` and `gid`.
    pub fn with_owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Modified at `secs`.`nanos`.
    pub fn with_mtime(mut self, secs: i64, nanos: u32) -> Entry {
        self.mtime = Timestamp { secs, nanos };
        self
    }

    /// Accessed at `secs`.`nanos`.
    pub fn with_atime(mut self, secs: i64, nanos: u32) -> Entry {
        self.atime = Some(Timestamp { secs, nanos });
        self
    }

    /// With `size` bytes of data.
    pub fn with_size(mut self, size: u64) -> Entry {
        self.size = size;
        self
    }

    /// With its header at `header` and its data at `data` in the tar.
    pub fn with_offsets(mut self, header: u64, data: u64) -> Entry {
        self.header_offset = header;
        self.data_offset = data;
        self
    }

    /// Linking to `target` (a symlink's target, or a hard link's entry).
    pub fn with_link_target(mut self, target: impl Into<Vec<u8>>) -> Entry {
        self.link_target = Some(target.into());
        self
    }

    /// A device `major`:`minor`.
    pub fn with_device(mut self, major: u32, minor: u32) -> Entry {
        self.dev_major = major;
        self.dev_minor = minor;
        self
    }

    /// With the extended attribute `name` = `value` after those it has.
    pub fn with_xattr(mut self, name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Entry {
        self.xattrs.push((name.into(), value.into()));
        self
    }

    /// The path below `rootfs/`, or `None` for `manifest`, `rootfs` itself and
    /// anything outside the rootfs.
    pub fn rootfs_relative(&self) -> Option<&[u8]> {
        self.path.strip_prefix(b"rootfs/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_sets_what_it_names_and_nothing_else() {
        let plain = Entry::new("rootfs/a", EntryKind::Regular);
        assert_eq!(plain.path, b"rootfs/a");
        assert_eq!((plain.mode, plain.uid, plain.gid), (0o644, 0, 0));
        assert_eq!((plain.header_offset, plain.data_offset), (0, 512));
        let built = Entry::new(b"rootfs/d".to_vec(), EntryKind::CharDevice)
            .with_mode(0o4755)
            .with_owner(1, 2)
            .with_mtime(-2, 5)
            .with_atime(3, 4)
            .with_size(9)
            .with_offsets(1024, 1536)
            .with_link_target("t")
            .with_device(8, 1)
            .with_xattr("user.a", "1")
            .with_xattr("user.b", "2");
        assert_eq!(
            built,
            Entry {
                path: b"rootfs/d".to_vec(),
                kind: EntryKind::CharDevice,
                mode: 0o4755,
                uid: 1,
                gid: 2,
                mtime: Timestamp { secs: -2, nanos: 5 },
                atime: Some(Timestamp { secs: 3, nanos: 4 }),
                size: 9,
                header_offset: 1024,
                data_offset: 1536,
                link_target: Some(b"t".to_vec()),
                dev_major: 8,
                dev_minor: 1,
                xattrs: vec![
                    (b"user.a".to_vec(), b"1".to_vec()),
                    (b"user.b".to_vec(), b"2".to_vec())
                ],
            }
        );
    }
}
