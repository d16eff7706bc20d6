//! The layout rules for an ACI's entries (aci-format §1) and the path
//! cleaning they are stated in.
//!
//! The rules follow the reference's `aci.ValidateArchive` where it is sound
//! and are stricter where it is lenient by accident: `rootfsx/...` passes
//! the reference's string-prefix test but is not part of `rootfs`, two
//! `manifest` entries are a duplicate rather than a JSON parse error, and a
//! repeated `rootfs` entry is a duplicate like any other.

use std::collections::HashMap;

use crate::entry::{Entry, EntryKind};
use crate::quote::quote_path;

/// Why a list of entries is not a valid ACI layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Two entries clean to the same path (aci-format §1: no duplicates).
    #[error("{}: duplicate entry in archive", quote_path(path))]
    DuplicateEntry {
        /// The cleaned path that appears twice.
        path: Vec<u8>,
    },
    /// The `manifest` entry is not a regular file.
    #[error("manifest: must be a regular file, found a {}", kind_name(*kind))]
    ManifestNotRegular {
        /// What the entry is instead.
        kind: EntryKind,
    },
    /// The `rootfs` entry is not a directory.
    #[error("rootfs: must be a directory, found a {}", kind_name(*kind))]
    RootfsNotDirectory {
        /// What the entry is instead.
        kind: EntryKind,
    },
    /// An entry outside `manifest` and `rootfs/` (aci-format §1: no other
    /// top-level names).
    #[error(
        "{}: unrecognized path in layout (only manifest and rootfs/ are allowed)",
        quote_path(path)
    )]
    UnrecognizedPath {
        /// The cleaned path.
        path: Vec<u8>,
    },
    /// A hard link whose target is not an earlier non-directory entry
    /// inside `rootfs/`.
    #[error(
        "{}: hard link target {} is not an earlier file inside rootfs/",
        quote_path(path),
        quote_path(target)
    )]
    BadHardLinkTarget {
        /// The hard link's cleaned path.
        path: Vec<u8>,
        /// The cleaned target path.
        target: Vec<u8>,
    },
    /// No `manifest` entry.
    #[error("no manifest entry in archive")]
    NoManifest,
    /// No explicit `rootfs` directory entry (the reference's `validate`
    /// requires one, aci-format §1 step 6).
    #[error("no rootfs directory entry in archive")]
    NoRootfs,
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Regular => "regular file",
        EntryKind::Directory => "directory",
        EntryKind::Symlink => "symlink",
        EntryKind::HardLink => "hard link",
        EntryKind::CharDevice => "character device",
        EntryKind::BlockDevice => "block device",
        EntryKind::Fifo => "fifo",
    }
}

/// Cleans a tar member name like Go's `filepath.Clean`: repeated `/`
/// collapse, `.` elements go, `..` removes the element before it, and a
/// trailing `/` is dropped. A rooted name stays rooted (`..` at the root
/// stays at the root); an empty result is `.`.
///
/// Names are compared after this cleaning (aci-format §1), so `./manifest`
/// is `manifest` and `rootfs//a/` is `rootfs/a`.
pub fn clean_path(name: &[u8]) -> Vec<u8> {
    let rooted = name.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    // How many leading `..` elements a relative path keeps.
    let mut leading_dotdots = 0usize;
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.len() > leading_dotdots {
                    parts.pop();
                } else if !rooted {
                    parts.push(part);
                    leading_dotdots += 1;
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(name.len());
    if rooted {
        out.push(b'/');
    }
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Checks that `entries` (cleaned paths, in archive order) form a valid
/// ACI layout: exactly one regular `manifest`, an explicit `rootfs`
/// directory, everything else below `rootfs/`, no duplicates, and hard
/// links only to earlier non-directories inside `rootfs/`.
pub fn check_layout(entries: &[Entry]) -> Result<(), LayoutError> {
    let mut seen: HashMap<&[u8], EntryKind> = HashMap::with_capacity(entries.len());
    for entry in entries {
        let path = entry.path.as_slice();
        if seen.insert(path, entry.kind).is_some() {
            return Err(LayoutError::DuplicateEntry {
                path: path.to_vec(),
            });
        }
        match path {
            b"manifest" if entry.kind != EntryKind::Regular => {
                return Err(LayoutError::ManifestNotRegular { kind: entry.kind })
            }
            b"rootfs" if entry.kind != EntryKind::Directory => {
                return Err(LayoutError::RootfsNotDirectory { kind: entry.kind })
            }
            b"manifest" | b"rootfs" => {}
            _ if entry.rootfs_relative().is_none() => {
                return Err(LayoutError::UnrecognizedPath {
                    path: path.to_vec(),
                })
            }
            _ => {}
        }
        if entry.kind == EntryKind::HardLink {
            let target = entry.link_target.as_deref().unwrap_or_default();
            // Only the entries before this one are in `seen`, besides this
            // entry itself, which a link must not name either.
            let ok = target != path
                && target.starts_with(b"rootfs/")
                && seen.get(target).is_some_and(|kind| !kind.is_dir());
            if !ok {
                return Err(LayoutError::BadHardLinkTarget {
                    path: path.to_vec(),
                    target: target.to_vec(),
                });
            }
        }
    }
    if !seen.contains_key(&b"manifest"[..]) {
        return Err(LayoutError::NoManifest);
    }
    if !seen.contains_key(&b"rootfs"[..]) {
        return Err(LayoutError::NoRootfs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry::new(path, kind)
    }

    fn link(path: &str, target: &str) -> Entry {
        Entry::new(path, EntryKind::HardLink).with_link_target(target)
    }

    fn base() -> Vec<Entry> {
        vec![
            entry("manifest", EntryKind::Regular),
            entry("rootfs", EntryKind::Directory),
            entry("rootfs/etc", EntryKind::Directory),
            entry("rootfs/etc/hello", EntryKind::Regular),
        ]
    }

    #[test]
    fn cleans_like_go() {
        for (raw, clean) in [
            ("./manifest", "manifest"),
            ("./rootfs/", "rootfs"),
            ("rootfs//a/", "rootfs/a"),
            ("rootfs/../x", "x"),
            ("rootfs/./a/../b", "rootfs/b"),
            ("../a", "../a"),
            ("a/../../b", "../b"),
            ("../../a/..", "../.."),
            ("/rootfs/abs", "/rootfs/abs"),
            ("/../a", "/a"),
            ("", "."),
            (".", "."),
            ("./", "."),
            ("//", "/"),
        ] {
            assert_eq!(clean_path(raw.as_bytes()), clean.as_bytes(), "{raw:?}");
        }
    }

    #[test]
    fn accepts_a_plain_layout_in_any_order() {
        assert_eq!(check_layout(&base()), Ok(()));
        let mut reversed = base();
        reversed.reverse();
        assert_eq!(check_layout(&reversed), Ok(()));
    }

    #[test]
    fn rejects_missing_and_mistyped_top_level_entries() {
        let mut no_manifest = base();
        no_manifest.remove(0);
        assert_eq!(check_layout(&no_manifest), Err(LayoutError::NoManifest));
        let mut no_rootfs = base();
        no_rootfs.remove(1);
        assert_eq!(check_layout(&no_rootfs), Err(LayoutError::NoRootfs));
        let mut rootfs_file = base();
        rootfs_file[1].kind = EntryKind::Regular;
        assert!(matches!(
            check_layout(&rootfs_file),
            Err(LayoutError::RootfsNotDirectory { .. })
        ));
        let mut manifest_link = base();
        manifest_link[0].kind = EntryKind::Symlink;
        assert!(matches!(
            check_layout(&manifest_link),
            Err(LayoutError::ManifestNotRegular { .. })
        ));
    }

    #[test]
    fn rejects_extra_names_siblings_and_duplicates() {
        for extra in ["README", "rootfsx/foo", "rootfsx", "manifest", "rootfs"] {
            let mut entries = base();
            entries.push(entry(extra, EntryKind::Regular));
            assert!(check_layout(&entries).is_err(), "{extra}");
        }
        let mut dup = base();
        dup.push(entry("rootfs/etc/hello", EntryKind::Regular));
        assert_eq!(
            check_layout(&dup).unwrap_err().to_string(),
            "rootfs/etc/hello: duplicate entry in archive"
        );
    }

    #[test]
    fn hard_links_need_an_earlier_file_inside_rootfs() {
        let mut good = base();
        good.push(link("rootfs/etc/again", "rootfs/etc/hello"));
        assert_eq!(check_layout(&good), Ok(()));

        for target in [
            "rootfs/etc/later",
            "manifest",
            "rootfs/etc",
            "rootfs",
            "rootfs/etc/self",
        ] {
            let mut bad = base();
            bad.push(link("rootfs/etc/self", target));
            bad.push(entry("rootfs/etc/later", EntryKind::Regular));
            assert!(
                matches!(
                    check_layout(&bad),
                    Err(LayoutError::BadHardLinkTarget { .. })
                ),
                "{target}"
            );
        }
    }
}
