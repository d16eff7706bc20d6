//! The stat snapshot `startbuild` takes of the tree it rendered, so that
//! `build` can tell an untouched path without reading it, as git's index
//! does (DESIGN §6). It lives in the store (`builds/`), never in the
//! layout, so it can never end up in an image.

use std::collections::BTreeMap;

use crate::diff::{FileMeta, Tree};
use crate::entry::Timestamp;

/// The magic and version at the start of an encoded snapshot.
const MAGIC: &[u8; 8] = b"ACIDOSN1";

/// Why a snapshot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with the snapshot magic.
    #[error("not an acido stat snapshot (bad magic)")]
    BadMagic,
    /// The bytes end in the middle of a record.
    #[error("stat snapshot truncated at byte {offset}")]
    Truncated {
        /// Where the data ran out.
        offset: usize,
    },
}

/// What identifies an untouched path: any write, chmod, chown, xattr or
/// link change moves `ctime`, and a replaced file has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes (regular files).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Permission and special bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u64,
    /// Owner group id.
    pub gid: u64,
}

impl Stamp {
    fn of(meta: &FileMeta) -> Stamp {
        Stamp {
            ino: meta.ino,
            size: meta.size,
            mtime: meta.mtime,
            ctime: meta.ctime,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
        }
    }
}

/// The stamps of every path of a tree, keyed like [`Tree::iter`] (`.` for
/// the root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    stamps: BTreeMap<Vec<u8>, Stamp>,
}

impl Snapshot {
    /// Takes the stamps of every path of `tree`.
    pub fn of(tree: &Tree) -> Snapshot {
        Snapshot {
            stamps: tree
                .iter()
                .map(|(path, meta)| (path.to_vec(), Stamp::of(meta)))
                .collect(),
        }
    }

    /// Number of paths recorded.
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// Whether the snapshot has a stamp for `path` (keyed like
    /// [`Tree::iter`]).
    pub fn contains(&self, path: &[u8]) -> bool {
        self.stamps.contains_key(path)
    }

    /// Whether no path is recorded.
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }

    /// Whether `path` still has the stamp it had when the snapshot was
    /// taken, i.e. nobody touched it since.
    pub fn unchanged(&self, path: &[u8], meta: &FileMeta) -> bool {
        self.stamps.get(path) == Some(&Stamp::of(meta))
    }

    /// The binary form: magic, then per path a little-endian u32 length,
    /// the path bytes, and ino, size, mtime (secs, nanos), ctime (secs,
    /// nanos), mode, uid, gid as little-endian 64-bit values.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.stamps.len() * 96);
        out.extend_from_slice(MAGIC);
        for (path, s) in &self.stamps {
            // Paths come from a walk and are far below 4 GiB.
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            for value in [
                s.ino,
                s.size,
                s.mtime.secs as u64,
                u64::from(s.mtime.nanos),
                s.ctime.secs as u64,
                u64::from(s.ctime.nanos),
                u64::from(s.mode),
                s.uid,
                s.gid,
            ] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out
    }

    /// Reads what [`Snapshot::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        if !bytes.starts_with(MAGIC) {
            return Err(SnapshotError::BadMagic);
        }
        let mut at = MAGIC.len();
        let take = |n: usize, at: &mut usize| -> Result<&[u8], SnapshotError> {
            let slice = bytes
                .get(*at..*at + n)
                .ok_or(SnapshotError::Truncated { offset: *at })?;
            *at += n;
            Ok(slice)
        };
        let mut stamps = BTreeMap::new();
        while at < bytes.len() {
            let len = u32::from_le_bytes(take(4, &mut at)?.try_into().expect("4 bytes"));
            let path = take(len as usize, &mut at)?.to_vec();
            let mut values = [0u64; 9];
            for value in &mut values {
                *value = u64::from_le_bytes(take(8, &mut at)?.try_into().expect("8 bytes"));
            }
            let [ino, size, msecs, mnanos, csecs, cnanos, mode, uid, gid] = values;
            let time = |secs: u64, nanos: u64| Timestamp {
                secs: secs as i64,
                nanos: u32::try_from(nanos).unwrap_or(0),
            };
            stamps.insert(
                path,
                Stamp {
                    ino,
                    size,
                    mtime: time(msecs, mnanos),
                    ctime: time(csecs, cnanos),
                    mode: u32::try_from(mode).unwrap_or(u32::MAX),
                    uid,
                    gid,
                },
            );
        }
        Ok(Snapshot { stamps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_notice_touches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let tree = crate::diff::walk(dir.path()).unwrap();
        let snap = Snapshot::of(&tree);
        assert_eq!(snap.len(), 2);
        let decoded = Snapshot::decode(&snap.encode()).unwrap();
        assert_eq!(decoded, snap);
        let meta = tree.get(b"f").unwrap();
        assert!(decoded.unchanged(b"f", meta));
        let mut touched = meta.clone();
        touched.ctime.nanos = touched.ctime.nanos.wrapping_add(1);
        assert!(!decoded.unchanged(b"f", &touched));
        assert!(!decoded.unchanged(b"g", meta));
    }

    #[test]
    fn damaged_snapshots_are_errors() {
        assert_eq!(Snapshot::decode(b"nope"), Err(SnapshotError::BadMagic));
        let dir = tempfile::tempdir().unwrap();
        let snap = Snapshot::of(&crate::diff::walk(dir.path()).unwrap()).encode();
        for cut in MAGIC.len() + 1..snap.len() {
            assert!(matches!(
                Snapshot::decode(&snap[..cut]),
                Err(SnapshotError::Truncated { .. })
            ));
        }
    }
}
