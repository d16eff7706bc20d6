//! The file map builder (`render::file_map_of`) on generated dependency
//! lists: small images over a shared name space, random whitelists (raw,
//! with `.`, `..` and slashes, as manifests may hold them) and parent
//! links. It must never panic, must be deterministic, and every path it
//! supplies must obey the rules of DESIGN §5 / aci-format §9.2, checked
//! here independently of how the builder decides them.
#![no_main]

use std::collections::HashSet;

use acido_plumbing::archive::clean_path;
use acido_plumbing::entry::{Entry, EntryKind, Timestamp};
use acido_plumbing::render::{file_map_of, Layer, Supplier};
use libfuzzer_sys::fuzz_target;

/// Reads bytes off the input; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
}

const KINDS: [EntryKind; 5] = [
    EntryKind::Regular,
    EntryKind::Directory,
    EntryKind::Symlink,
    EntryKind::HardLink,
    EntryKind::Fifo,
];

fn entry(path: Vec<u8>, kind: EntryKind) -> Entry {
    Entry {
        link_target: matches!(kind, EntryKind::Symlink | EntryKind::HardLink)
            .then(|| b"rootfs/a".to_vec()),
        path,
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: Timestamp { secs: 0, nanos: 0 },
        atime: None,
        size: 0,
        header_offset: 0,
        data_offset: 512,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    }
}

/// A cleaned archive path over a three-name space, 1–3 deep below
/// rootfs, or now and then `manifest` or `rootfs` itself.
fn path(bytes: &mut Bytes) -> Vec<u8> {
    let b = bytes.next();
    match b % 16 {
        0 => return b"manifest".to_vec(),
        1 => return b"rootfs".to_vec(),
        _ => {}
    }
    let mut p = b"rootfs".to_vec();
    for i in 0..=(b / 16) % 3 {
        let c = bytes.next();
        p.push(b'/');
        p.push(b"abc"[usize::from(c % 3)]);
        if i == 0 && c >= 192 {
            break;
        }
    }
    p
}

/// A whitelist entry as written in a manifest: any of `a b c / . ..`.
fn whitelist_entry(bytes: &mut Bytes) -> String {
    const PARTS: [&str; 7] = ["a", "b", "c", "/", ".", "..", "/a/b"];
    let n = 1 + bytes.next() % 6;
    (0..n)
        .map(|_| PARTS[usize::from(bytes.next()) % PARTS.len()])
        .collect()
}

fn keys(whitelist: &[String]) -> Option<HashSet<Vec<u8>>> {
    (!whitelist.is_empty()).then(|| {
        whitelist
            .iter()
            .map(|w| clean_path(format!("rootfs/{w}").as_bytes()))
            .collect()
    })
}

fn parents(path: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(slash) = rest.iter().rposition(|&b| b == b'/') {
        rest = &rest[..slash];
        if rest == b"rootfs" {
            break;
        }
        out.push(rest);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let count = 1 + usize::from(bytes.next() % 4);
    let mut images: Vec<(Vec<Entry>, Vec<String>, Option<usize>)> = Vec::new();
    for i in 0..count {
        let parent = (i > 0).then(|| usize::from(bytes.next()) % i);
        let whitelist: Vec<String> = (0..bytes.next() % 4)
            .map(|_| whitelist_entry(&mut bytes))
            .collect();
        let entries: Vec<Entry> = (0..bytes.next() % 12)
            .map(|_| {
                let kind = KINDS[usize::from(bytes.next()) % KINDS.len()];
                entry(path(&mut bytes), kind)
            })
            .collect();
        images.push((entries, whitelist, parent));
    }
    let layers: Vec<Layer> = images
        .iter()
        .map(|(entries, whitelist, parent)| Layer {
            entries,
            whitelist,
            parent: *parent,
        })
        .collect();
    let map = file_map_of(&layers);
    assert_eq!(map, file_map_of(&layers), "not deterministic");
    assert!(map.paths.get(&b"rootfs"[..]).is_some_and(Supplier::is_dir));

    let whitelists: Vec<Option<HashSet<Vec<u8>>>> =
        images.iter().map(|(_, w, _)| keys(w)).collect();
    for (path, supplier) in &map.paths {
        if path.as_slice() != b"manifest" && path.as_slice() != b"rootfs" {
            assert!(path.starts_with(b"rootfs/"), "outside rootfs: {path:?}");
        }
        // Parent-must-be-dir, and no path without its parents.
        for parent in parents(path) {
            let supplied = map.paths.get(parent);
            assert!(
                supplied.is_some_and(Supplier::is_dir),
                "{path:?} under a non-dir"
            );
        }
        let Supplier::Entry {
            element,
            entry,
            kind,
        } = *supplier
        else {
            continue;
        };
        let e = &images[element].0[entry];
        assert_eq!(&e.path, path, "supplier names another path");
        assert_eq!(e.kind, kind);
        if !path.starts_with(b"rootfs/") {
            assert_eq!(element, 0, "manifest or rootfs from a dependency");
            continue;
        }
        // The image's own whitelist filters its own non-directories.
        if !kind.is_dir() {
            if let Some(own) = &whitelists[element] {
                assert!(own.contains(path), "own whitelist ignored: {path:?}");
            }
        }
        // Every ancestor's whitelist filters what this element supplies.
        let mut at = images[element].2;
        let mut steps = 0;
        while let Some(a) = at {
            if let Some(w) = &whitelists[a] {
                assert!(
                    w.contains(path),
                    "ancestor {a}'s whitelist ignored: {path:?}"
                );
            }
            at = images[a].2;
            steps += 1;
            assert!(steps <= images.len(), "parent loop");
        }
        // An upper element with a non-directory here would have won.
        for upper in 0..element {
            if let Some(other) = images[upper].0.iter().find(|o| &o.path == path) {
                let passed_own = other.kind.is_dir()
                    || whitelists[upper].as_ref().is_none_or(|w| w.contains(path));
                let mut ok = passed_own;
                let mut at = images[upper].2;
                while let Some(a) = at {
                    ok &= whitelists[a].as_ref().is_none_or(|w| w.contains(path));
                    at = images[a].2;
                }
                // Paths below this one that the upper elements supplied
                // made it an (implied) directory before `other` came, and a
                // directory hides an upper non-directory.
                let mut below = path.clone();
                below.push(b'/');
                let implied_first = !other.kind.is_dir()
                    && map
                        .paths
                        .range(below.clone()..)
                        .take_while(|(k, _)| k.starts_with(&below))
                        .any(|(_, s)| match s {
                            Supplier::Entry { element: by, .. } => *by <= upper,
                            Supplier::Implied => false,
                        });
                assert!(
                    !ok || implied_first || (other.kind.is_dir() && kind.is_dir()),
                    "element {upper} should supply {path:?}, not {element}"
                );
            }
        }
    }
});
