//! The entry index stored beside each blob: every [`Entry`] of the image in
//! a compact, versioned binary form, so `cat-manifest`, `ls-tree` and
//! rendering seek into the mmapped blob instead of rescanning the tar
//! (DESIGN §2). It is derived data: when it is missing or fails to decode,
//! rebuild it with [`crate::archive::scan_blob`].
//!
//! Format (version 2), all integers unsigned LEB128 unless noted:
//!
//! ```text
//! magic "ACIDOIDX" · version (u32 little-endian)
//! fast digest flag (0/1) [· 32 bytes: BLAKE3 of the blob]
//! entry count
//! per entry:
//!   path (length + bytes) · kind (one byte, EntryKind::code) · mode · uid · gid
//!   mtime (zigzag secs, nanos) · atime flag (0/1) [· zigzag secs · nanos]
//!   size · header_offset · data_offset
//!   link flag (0/1) [· length + bytes] · dev_major · dev_minor
//!   xattr count · per xattr (name length + bytes, value length + bytes)
//! ```
//!
//! Nothing may follow the last entry.
//!
//! Version 1, written before issue 12, is the same without the fast
//! digest flag and digest; it is still read (as an index without a fast
//! digest, which renders check by SHA-512 instead). The digest is present
//! only when it was computed from the same bytes that were hashed to the
//! id (at import, or by `fsck --repair` after re-hashing the blob): an
//! index rebuilt from a blob that was not re-hashed has none.

use crate::entry::{Entry, EntryKind, Timestamp};
use crate::id::FastDigest;

/// The first bytes of every index.
pub const MAGIC: &[u8; 8] = b"ACIDOIDX";
/// The format version this code writes.
pub const VERSION: u32 = 2;
/// The oldest version this code reads (no fast digest).
pub const OLDEST_VERSION: u32 = 1;

/// Why bytes are not an entry index this code can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not an entry index (bad magic)")]
    BadMagic,
    /// A version this code does not know.
    #[error(
        "entry index version {found} is not supported (expected {OLDEST_VERSION} to {VERSION})"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The bytes end in the middle of a field.
    #[error("entry index truncated at offset {offset} (reading {field})")]
    Truncated {
        /// Where the bytes ran out.
        offset: usize,
        /// The field being read.
        field: &'static str,
    },
    /// A field holds a value no encoder writes.
    #[error("entry index corrupt at offset {offset}: bad {field}")]
    Corrupt {
        /// Where the field starts.
        offset: usize,
        /// The field.
        field: &'static str,
    },
    /// Bytes after the last entry.
    #[error("entry index has {extra} unexpected bytes after the last entry")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// The entries of one image, in archive order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryIndex {
    /// The entries, as [`crate::archive::scan`] returned them.
    pub entries: Vec<Entry>,
    /// The BLAKE3 digest of the whole blob, taken from the bytes that were
    /// hashed to its id; `None` in an index from before issue 12 or one
    /// rebuilt without re-hashing the blob.
    pub fast_digest: Option<FastDigest>,
}

impl EntryIndex {
    /// Encodes the index (see the module docs for the format).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        match &self.fast_digest {
            Some(digest) => {
                out.push(1);
                out.extend_from_slice(digest.bytes());
            }
            None => out.push(0),
        }
        put_u64(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            put_bytes(&mut out, &e.path);
            out.push(e.kind.code() as u8);
            put_u64(&mut out, u64::from(e.mode));
            put_u64(&mut out, e.uid);
            put_u64(&mut out, e.gid);
            put_time(&mut out, e.mtime);
            match e.atime {
                Some(t) => {
                    out.push(1);
                    put_time(&mut out, t);
                }
                None => out.push(0),
            }
            put_u64(&mut out, e.size);
            put_u64(&mut out, e.header_offset);
            put_u64(&mut out, e.data_offset);
            match &e.link_target {
                Some(target) => {
                    out.push(1);
                    put_bytes(&mut out, target);
                }
                None => out.push(0),
            }
            put_u64(&mut out, u64::from(e.dev_major));
            put_u64(&mut out, u64::from(e.dev_minor));
            put_u64(&mut out, e.xattrs.len() as u64);
            for (name, value) in &e.xattrs {
                put_bytes(&mut out, name);
                put_bytes(&mut out, value);
            }
        }
        out
    }

    /// Decodes an index, rejecting anything [`EntryIndex::encode`] would
    /// not have written.
    pub fn decode(bytes: &[u8]) -> Result<EntryIndex, IndexError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(IndexError::BadMagic)?;
        let mut r = Reader {
            bytes,
            pos: bytes.len() - rest.len(),
        };
        let version = u32::from_le_bytes(r.array::<4>("version")?);
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(IndexError::UnsupportedVersion { found: version });
        }
        let fast_digest = if version >= 2 && r.flag("fast digest flag")? {
            Some(FastDigest::from_bytes(r.array::<32>("fast digest")?))
        } else {
            None
        };
        let count = r.u64("entry count")?;
        // Every entry takes at least 15 bytes, so a count beyond that is
        // corrupt; checking first keeps garbage from reserving memory.
        if count > (r.remaining() / 15) as u64 {
            return Err(IndexError::Corrupt {
                offset: r.pos,
                field: "entry count",
            });
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            entries.push(r.entry()?);
        }
        if r.remaining() != 0 {
            return Err(IndexError::TrailingBytes {
                extra: r.remaining(),
            });
        }
        Ok(EntryIndex {
            entries,
            fast_digest,
        })
    }

    /// The entry at cleaned `path` (`manifest`, `rootfs/etc/passwd`), if any.
    /// A linear search: callers that look up many paths should build a map.
    pub fn find(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    put_u64(out, ((t.secs << 1) ^ (t.secs >> 63)) as u64);
    put_u64(out, u64::from(t.nanos));
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], IndexError> {
        if len > self.remaining() {
            return Err(IndexError::Truncated {
                offset: self.bytes.len(),
                field,
            });
        }
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], IndexError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, IndexError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, IndexError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte(field)?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may carry only the top bit of a u64, and a
            // non-final zero byte would be a second encoding of a value.
            if (shift == 63 && bits > 1) || (shift > 0 && b == 0) {
                break;
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(IndexError::Corrupt {
            offset: start,
            field,
        })
    }

    fn narrow<T: TryFrom<u64>>(&mut self, field: &'static str) -> Result<T, IndexError> {
        let start = self.pos;
        let v = self.u64(field)?;
        T::try_from(v).map_err(|_| IndexError::Corrupt {
            offset: start,
            field,
        })
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, IndexError> {
        let len: usize = self.narrow(field)?;
        Ok(self.take(len, field)?.to_vec())
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, IndexError> {
        let start = self.pos;
        match self.byte(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(IndexError::Corrupt {
                offset: start,
                field,
            }),
        }
    }

    fn time(&mut self, field: &'static str) -> Result<Timestamp, IndexError> {
        let zigzag = self.u64(field)?;
        let secs = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let start = self.pos;
        let nanos: u32 = self.narrow(field)?;
        if nanos >= 1_000_000_000 {
            return Err(IndexError::Corrupt {
                offset: start,
                field,
            });
        }
        Ok(Timestamp { secs, nanos })
    }

    fn entry(&mut self) -> Result<Entry, IndexError> {
        let path = self.bytes("path")?;
        let kind_at = self.pos;
        let kind = match self.byte("kind")? {
            b'f' => EntryKind::Regular,
            b'd' => EntryKind::Directory,
            b'l' => EntryKind::Symlink,
            b'h' => EntryKind::HardLink,
            b'c' => EntryKind::CharDevice,
            b'b' => EntryKind::BlockDevice,
            b'p' => EntryKind::Fifo,
            _ => {
                return Err(IndexError::Corrupt {
                    offset: kind_at,
                    field: "kind",
                })
            }
        };
        let mode = self.narrow("mode")?;
        let uid = self.u64("uid")?;
        let gid = self.u64("gid")?;
        let mtime = self.time("mtime")?;
        let atime = if self.flag("atime flag")? {
            Some(self.time("atime")?)
        } else {
            None
        };
        let size = self.u64("size")?;
        let header_offset = self.u64("header offset")?;
        let data_offset = self.u64("data offset")?;
        let link_target = if self.flag("link flag")? {
            Some(self.bytes("link target")?)
        } else {
            None
        };
        let dev_major = self.narrow("device major")?;
        let dev_minor = self.narrow("device minor")?;
        let count: u64 = self.u64("xattr count")?;
        let mut xattrs = Vec::new();
        for _ in 0..count {
            // Each xattr needs at least two length bytes; running out
            // ends the loop with Truncated before memory grows.
            let name = self.bytes("xattr name")?;
            let value = self.bytes("xattr value")?;
            xattrs.push((name, value));
        }
        Ok(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            atime,
            size,
            header_offset,
            data_offset,
            link_target,
            dev_major,
            dev_minor,
            xattrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> EntryIndex {
        EntryIndex {
            fast_digest: Some(FastDigest::from_bytes([0xa5; 32])),
            entries: vec![
                Entry::new("manifest", EntryKind::Regular)
                    .with_mtime(1_600_000_000, 0)
                    .with_size(76),
                Entry::new(b"rootfs/\xffodd".to_vec(), EntryKind::HardLink)
                    .with_mode(0o4755)
                    .with_owner(u64::MAX, 1000)
                    .with_mtime(-2, 750_000_000)
                    .with_atime(5, 1)
                    .with_offsets(1024, 2048)
                    .with_link_target("rootfs/a")
                    .with_device(8, u32::MAX)
                    .with_xattr("user.k", b"\0v".to_vec()),
            ],
        }
    }

    #[test]
    fn round_trips_and_finds() {
        let index = sample();
        let bytes = index.encode();
        assert!(bytes.starts_with(MAGIC));
        let back = EntryIndex::decode(&bytes).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.find(b"manifest").map(|e| e.size), Some(76));
        assert!(back.find(b"rootfs").is_none());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(EntryIndex::decode(&bytes[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn rejects_garbage_versions_and_trailing_bytes() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(
            EntryIndex::decode(&bytes),
            Err(IndexError::TrailingBytes { extra: 1 })
        );
        let mut v3 = sample().encode();
        v3[8] = 3;
        assert_eq!(
            EntryIndex::decode(&v3),
            Err(IndexError::UnsupportedVersion { found: 3 })
        );
        let mut v0 = sample().encode();
        v0[8] = 0;
        assert_eq!(
            EntryIndex::decode(&v0),
            Err(IndexError::UnsupportedVersion { found: 0 })
        );
        assert_eq!(EntryIndex::decode(b"garbage!"), Err(IndexError::BadMagic));
        // A huge entry count with no entries behind it.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&VERSION.to_le_bytes());
        huge.push(0);
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            EntryIndex::decode(&huge),
            Err(IndexError::Corrupt {
                field: "entry count",
                ..
            })
        ));
    }

    /// A version 1 index, as acido wrote it before issue 12: the version-2
    /// encoding without the digest flag.
    fn as_version_1(index: &EntryIndex) -> Vec<u8> {
        let v2 = EntryIndex {
            fast_digest: None,
            ..index.clone()
        }
        .encode();
        let mut v1 = v2[..8].to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&v2[13..]);
        v1
    }

    #[test]
    fn reads_version_1_without_a_digest() {
        let index = sample();
        let v1 = as_version_1(&index);
        let back = EntryIndex::decode(&v1).unwrap();
        assert_eq!(back.fast_digest, None);
        assert_eq!(back.entries, index.entries);
        // Rewritten, it becomes version 2 and keeps reading the same.
        let v2 = back.encode();
        assert_eq!(u32::from_le_bytes(v2[8..12].try_into().unwrap()), VERSION);
        assert_eq!(EntryIndex::decode(&v2).unwrap(), back);
    }

    #[test]
    fn a_bad_digest_flag_is_corrupt() {
        let mut bytes = sample().encode();
        bytes[12] = 2;
        assert!(matches!(
            EntryIndex::decode(&bytes),
            Err(IndexError::Corrupt {
                field: "fast digest flag",
                ..
            })
        ));
    }

    #[test]
    fn rejects_overlong_varints() {
        let mut r = Reader {
            bytes: &[0xff; 11],
            pos: 0,
        };
        assert!(r.u64("x").is_err());
        let mut r = Reader {
            bytes: &[0x80, 0x00],
            pos: 0,
        };
        assert!(r.u64("x").is_err());
        let max = {
            let mut v = Vec::new();
            put_u64(&mut v, u64::MAX);
            v
        };
        let mut r = Reader {
            bytes: &max,
            pos: 0,
        };
        assert_eq!(r.u64("x"), Ok(u64::MAX));
    }

    fn arb_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            Just(EntryKind::Regular),
            Just(EntryKind::Directory),
            Just(EntryKind::Symlink),
            Just(EntryKind::HardLink),
            Just(EntryKind::CharDevice),
            Just(EntryKind::BlockDevice),
            Just(EntryKind::Fifo),
        ]
    }

    fn arb_time() -> impl Strategy<Value = Timestamp> {
        (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
    }

    prop_compose! {
        fn arb_entry()(
            path in proptest::collection::vec(any::<u8>(), 0..40),
            kind in arb_kind(),
            mode in any::<u32>(),
            uid in any::<u64>(),
            gid in any::<u64>(),
            mtime in arb_time(),
            atime in proptest::option::of(arb_time()),
            offsets in any::<(u64, u64, u64)>(),
            link_target in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            devs in any::<(u32, u32)>(),
            xattrs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..10), proptest::collection::vec(any::<u8>(), 0..10)),
                0..3,
            ),
        ) -> Entry {
            Entry {
                path, kind, mode, uid, gid, mtime, atime,
                size: offsets.0, header_offset: offsets.1, data_offset: offsets.2,
                link_target, dev_major: devs.0, dev_minor: devs.1, xattrs,
            }
        }
    }

    proptest! {
        #[test]
        fn any_index_round_trips(
            entries in proptest::collection::vec(arb_entry(), 0..8),
            digest in proptest::option::of(any::<[u8; 32]>()),
        ) {
            let index = EntryIndex { entries, fast_digest: digest.map(FastDigest::from_bytes) };
            prop_assert_eq!(EntryIndex::decode(&as_version_1(&index)).map(|i| i.entries), Ok(index.entries.clone()));
            prop_assert_eq!(EntryIndex::decode(&index.encode()), Ok(index));
        }

        #[test]
        fn mutated_bytes_never_panic(
            entries in proptest::collection::vec(arb_entry(), 1..4),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = EntryIndex { entries, fast_digest: None }.encode();
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            let _ = EntryIndex::decode(&bytes);
        }
    }
}
