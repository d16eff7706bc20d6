//! The file map: which element of the dependency list supplies each path of
//! the rendered tree (aci-format §9.2), with the rules of DESIGN §5 where
//! they deliberately differ from the reference's quirks (§9.5).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use crate::archive::clean_path;
use crate::entry::{Entry, EntryKind};
use crate::quote::quote_path;

use super::deps::DependencyList;
use super::RenderError;

/// Who supplies one path of the rendered tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supplier {
    /// An entry of a list element.
    Entry {
        /// Index of the element in the dependency list.
        element: usize,
        /// Index of the entry in that image's entries.
        entry: usize,
        /// The entry's kind.
        kind: EntryKind,
    },
    /// A directory no image lists but some supplied path lies below: it is
    /// created with mode 0755, owned by the rendering user, at the
    /// rendering time (as the reference's `MkdirAll` does, §9.3).
    Implied,
}

impl Supplier {
    /// Whether the path is a directory, explicit or implied.
    pub fn is_dir(&self) -> bool {
        match self {
            Supplier::Entry { kind, .. } => kind.is_dir(),
            Supplier::Implied => true,
        }
    }
}

/// Every path of the rendered tree (archive paths: `manifest`, `rootfs`,
/// `rootfs/...`) with its supplier, sorted by path bytes, so every
/// directory comes before what lies below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMap {
    /// The paths and suppliers.
    pub paths: BTreeMap<Vec<u8>, Supplier>,
}

impl FileMap {
    /// How many paths an image supplies (implied directories not counted).
    pub fn supplied(&self) -> usize {
        self.paths
            .values()
            .filter(|s| matches!(s, Supplier::Entry { .. }))
            .count()
    }
}

/// A whitelist as the set of archive paths it keeps: each entry `p`
/// normalised like Go's `filepath.Join("rootfs", p)` (aci-format §9.2), so
/// `/etc/`, `etc` and `/x/../etc` all keep `rootfs/etc`.
pub(crate) fn whitelist_keys(whitelist: &[String]) -> Option<HashSet<Vec<u8>>> {
    if whitelist.is_empty() {
        return None;
    }
    Some(
        whitelist
            .iter()
            .map(|p| {
                let mut joined = b"rootfs/".to_vec();
                joined.extend_from_slice(p.as_bytes());
                clean_path(&joined)
            })
            .collect(),
    )
}

/// Parents of `path` below `rootfs`, nearest first (`rootfs/a/b/c` gives
/// `rootfs/a/b`, `rootfs/a`).
pub(crate) fn parents(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let slash = rest.iter().rposition(|&b| b == b'/')?;
        rest = &rest[..slash];
        (rest != b"rootfs").then_some(rest)
    })
}

/// Decides which element supplies each path.
///
/// For element `i` in priority order, an entry `n` is taken when:
/// * it lies below `rootfs/` (the top image's `manifest` and `rootfs`
///   entries are taken from the top alone, DESIGN §5: the reference takes
///   `rootfs` from every image and keeps the lowest one's, §9.5 quirk 4);
/// * it is a directory, or the image's own non-empty whitelist lists it
///   (an image's whitelist filters only its own non-directories, §9.2
///   rule 3);
/// * every ancestor of the element on its path that has a non-empty
///   whitelist lists it, directories included (§9.2 rule 4; the reference
///   applies only the shallowest whitelist and leaks a sibling's, §9.5
///   quirks 1 and 2, which we do not copy). Whitelists are not recursive;
/// * no upper element supplies `n` yet; an upper directory that is only
///   implied by upper children still lets a lower *directory* in (it
///   supplies that directory's metadata) but hides a lower non-directory,
///   so an upper tree beats a lower symlink without error (§9.5 quirk 6);
/// * no parent of `n` is a non-directory already in the map
///   (parent-must-be-dir, §9.2 rule 6, also within one image).
pub fn file_map(list: &DependencyList) -> Result<FileMap, RenderError> {
    let layers: Vec<Layer> = list
        .images
        .iter()
        .map(|listed| Layer {
            entries: listed.image.image.entries(),
            whitelist: &listed.image.manifest.path_whitelist,
            parent: listed.parent,
        })
        .collect();
    Ok(file_map_of(&layers))
}

/// One element of a dependency list, as the file map sees it.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// The image's entries, in archive order.
    pub entries: &'a [Entry],
    /// The image's `pathWhitelist` (empty: no whitelist).
    pub whitelist: &'a [String],
    /// Index of the element that depends on this one (`None` for the top).
    pub parent: Option<usize>,
}

/// [`file_map`] on elements given directly, top first (for callers and
/// fuzzers without a store). A `parent` that is out of range or loops
/// ends the ancestor chain there.
pub fn file_map_of(layers: &[Layer]) -> FileMap {
    let mut map = FileMap::default();
    let Some(top) = layers.first() else {
        return map;
    };
    for (i, entry) in top.entries.iter().enumerate() {
        let wanted = match entry.path.as_slice() {
            b"manifest" => entry.kind == EntryKind::Regular,
            b"rootfs" => entry.kind.is_dir(),
            _ => false,
        };
        if wanted {
            map.paths.insert(
                entry.path.clone(),
                Supplier::Entry {
                    element: 0,
                    entry: i,
                    kind: entry.kind,
                },
            );
        }
    }
    let whitelists: Vec<Option<HashSet<Vec<u8>>>> = layers
        .iter()
        .map(|layer| whitelist_keys(layer.whitelist))
        .collect();
    for (element, layer) in layers.iter().enumerate() {
        let own = whitelists[element].as_ref();
        let upper: Vec<&HashSet<Vec<u8>>> = ancestors(layers, element)
            .filter_map(|a| whitelists[a].as_ref())
            .collect();
        for (index, entry) in layer.entries.iter().enumerate() {
            consider(&mut map, element, index, entry, own, &upper);
        }
    }
    // Every rendered tree has a rootfs, even when the top image had no
    // explicit entry (the store refuses such images; the reference renders
    // them with an implied 0755 rootfs, §9.5 quirk 8).
    map.paths
        .entry(b"rootfs".to_vec())
        .or_insert(Supplier::Implied);
    map
}

/// The elements `element` depends through, nearest first; at most one
/// pass over the list, so a looping `parent` cannot hang.
fn ancestors<'l>(layers: &'l [Layer], element: usize) -> impl Iterator<Item = usize> + 'l {
    let mut at = layers.get(element).and_then(|l| l.parent);
    std::iter::from_fn(move || {
        let current = at?;
        at = layers.get(current).and_then(|l| l.parent);
        layers.get(current).map(|_| current)
    })
    .take(layers.len())
}

fn consider(
    map: &mut FileMap,
    element: usize,
    index: usize,
    entry: &Entry,
    own: Option<&HashSet<Vec<u8>>>,
    upper: &[&HashSet<Vec<u8>>],
) {
    let path = entry.path.as_slice();
    if entry.rootfs_relative().is_none() {
        return;
    }
    let is_dir = entry.kind.is_dir();
    if !is_dir && own.is_some_and(|w| !w.contains(path)) {
        return;
    }
    if upper.iter().any(|w| !w.contains(path)) {
        return;
    }
    match map.paths.get(path) {
        Some(Supplier::Implied) if is_dir => {}
        Some(_) => return,
        None => {}
    }
    if parents(path).any(|p| map.paths.get(p).is_some_and(|s| !s.is_dir())) {
        return;
    }
    map.paths.insert(
        path.to_vec(),
        Supplier::Entry {
            element,
            entry: index,
            kind: entry.kind,
        },
    );
    for parent in parents(path) {
        if map.paths.contains_key(parent) {
            // Parents of a path already in the map are all there too.
            break;
        }
        map.paths.insert(parent.to_vec(), Supplier::Implied);
    }
}

/// Writes the `render-tree --list` format: one record per supplied path,
/// in path order,
///
/// ```text
/// <image id> <type> <path>
/// ```
///
/// `image id` is the full id of the supplying image, `type` the entry's
/// letter (as `ls-tree` prints it: `f d l h c b p`), `path` the archive path
/// (`manifest`, `rootfs`, `rootfs/etc/passwd`), C-quoted when needed.
/// Implied directories are not listed: no image supplies them. With `nul`
/// records end in NUL instead of a newline and paths are written raw.
pub fn write_file_map(
    out: &mut dyn Write,
    list: &DependencyList,
    map: &FileMap,
    nul: bool,
) -> io::Result<()> {
    for (path, supplier) in &map.paths {
        let Supplier::Entry { element, kind, .. } = supplier else {
            continue;
        };
        let Some(listed) = list.images.get(*element) else {
            continue;
        };
        write!(out, "{} {} ", listed.id, kind.code())?;
        if nul {
            out.write_all(path)?;
            out.write_all(b"\0")?;
        } else {
            out.write_all(quote_path(path).as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist_entries_are_joined_to_rootfs_and_cleaned() {
        let keys = whitelist_keys(&[
            "/etc/".to_owned(),
            "bin".to_owned(),
            "/x/../usr".to_owned(),
            "".to_owned(),
            "../escape".to_owned(),
        ])
        .unwrap();
        for key in ["rootfs/etc", "rootfs/bin", "rootfs/usr", "rootfs", "escape"] {
            assert!(keys.contains(key.as_bytes()), "{key}");
        }
        assert_eq!(keys.len(), 5);
        assert!(
            whitelist_keys(&[]).is_none(),
            "an empty whitelist keeps all"
        );
    }

    fn file(path: &str) -> Entry {
        Entry::new(path, EntryKind::Regular)
    }

    #[test]
    fn looping_or_dangling_parents_end_the_ancestor_chain() {
        let top = [file("manifest"), file("rootfs/a")];
        let mid = [file("rootfs/b"), file("rootfs/c")];
        let low = [file("rootfs/d")];
        let whitelist = ["/a".to_owned(), "/c".to_owned()];
        let layers = [
            Layer {
                entries: &top,
                whitelist: &whitelist,
                parent: None,
            },
            // Points at the element below it, which points back: a loop
            // no dependency list holds, and must not hang the builder.
            Layer {
                entries: &mid,
                whitelist: &[],
                parent: Some(2),
            },
            Layer {
                entries: &low,
                whitelist: &[],
                parent: Some(1),
            },
        ];
        let map = file_map_of(&layers);
        let paths: Vec<&[u8]> = map.paths.keys().map(Vec::as_slice).collect();
        // No element reaches the top's whitelist through the loop, so
        // nothing below it is filtered by it.
        assert_eq!(
            paths,
            [
                &b"manifest"[..],
                b"rootfs",
                b"rootfs/a",
                b"rootfs/b",
                b"rootfs/c",
                b"rootfs/d"
            ]
        );
        let dangling = [Layer {
            parent: Some(7),
            ..layers[1]
        }];
        assert!(file_map_of(&dangling).paths.contains_key(&b"rootfs/b"[..]));
    }

    #[test]
    fn parents_stop_below_rootfs() {
        let got: Vec<&[u8]> = parents(b"rootfs/a/b/c").collect();
        assert_eq!(got, [&b"rootfs/a/b"[..], b"rootfs/a"]);
        assert_eq!(parents(b"rootfs/a").count(), 0);
    }
}
