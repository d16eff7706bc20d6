//! An ACI with its dependencies as a runnable OCI image in an image layout
//! (oci-bridge §9 "Push", DESIGN §11).
//!
//! One gzip layer per element of the dependency list, bottom first. Let
//! `S_k` be the rendering of the list's tail from element `k` (what the
//! renderer has laid down after `k`), computed from the file maps, never
//! by rendering to disk. Layer `k` holds the change from `S_{k-1}` to
//! `S_k`:
//!
//! - every path that is new or whose supplier (image, entry) changed,
//!   copied from its supplier;
//! - a hard link whose target now comes from another entry than its own
//!   image's is written as a copy of the content it renders with;
//! - a whiteout (`.wh.NAME`) for every topmost path of `S_{k-1}` missing
//!   from `S_k`, none under a path that is no longer a directory; all
//!   whiteouts come first, and every regular file before the hard links
//!   to it.
//!
//! The top image's app becomes the config (the mapping of `acido-push(1)`,
//! the inverse of [`super::config`]). Tars and gzip streams are written
//! deterministically, so the same image gives the same digests.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tempfile::NamedTempFile;

use super::config::{CMD_ANNOTATION, ENTRYPOINT_ANNOTATION, STOP_SIGNAL_ANNOTATION};
use super::digest::Sha256Digest;
use super::layer::{copy_cached_into, generate_layer, Generated};
use super::reference::check_tag;
use super::OciError;
use crate::entry::{Entry, EntryKind};
use crate::render::deps::DependencyList;
use crate::render::filemap::{file_map_of, parents, whitelist_keys, Layer, Supplier};
use crate::store::{OciLayerKey, Store};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The generator's name and version in the store's layer cache keys
/// ([`OciLayerKey`]). Bump the version whenever the bytes written for the
/// same images change (the tar entries, their order or headers, the gzip
/// settings or the encoder): old entries then no longer match any key,
/// and `gc` sweeps them once their images go.
pub const LAYER_GENERATOR: &str = "acido oci-layer tar+gzip level-1 v1";

/// What [`push_to_layout`] wrote.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The manifest's digest.
    pub manifest_digest: Sha256Digest,
    /// The layers' digests (gzip blobs), base first.
    pub layers: Vec<Sha256Digest>,
    /// The config's digest.
    pub config_digest: Sha256Digest,
    /// How many layers were read from the store's layer cache rather
    /// than generated.
    pub cached_layers: usize,
}

/// Where the bytes of one layer of a push are: the store's layer cache
/// entry, or (without a usable cache) the layout's blob file.
#[derive(Debug)]
pub struct LayerBlob {
    /// The blob's digest.
    pub digest: Sha256Digest,
    /// Its size.
    pub size: u64,
    /// The file, open for reading at offset 0.
    pub file: File,
    /// Where it is (for messages).
    pub path: PathBuf,
    /// Whether it is a layer cache entry (whose bytes have not been
    /// hashed by this push yet: a reader must check them).
    pub cached: bool,
}

/// The OCI os, architecture and variant for appc's labels (oci-bridge
/// §3.3, the reverse of [`super::config::appc_platform`]).
pub fn oci_platform(
    os: &str,
    arch: &str,
) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    Some(match (os, arch) {
        ("linux", "amd64") => ("linux", "amd64", None),
        ("linux", "i386") => ("linux", "386", None),
        ("linux", "aarch64") => ("linux", "arm64", None),
        ("linux", "armv7l") => ("linux", "arm", Some("v7")),
        ("linux", "armv6l") => ("linux", "arm", Some("v6")),
        ("linux", "ppc64le") => ("linux", "ppc64le", None),
        ("linux", "ppc64") => ("linux", "ppc64", None),
        ("linux", "s390x") => ("linux", "s390x", None),
        ("freebsd", "amd64") => ("freebsd", "amd64", None),
        ("freebsd", "i386") => ("freebsd", "386", None),
        ("freebsd", "arm") => ("freebsd", "arm", Some("v6")),
        ("darwin", "x86_64") => ("darwin", "amd64", None),
        ("darwin", "i386") => ("darwin", "386", None),
        _ => return None,
    })
}

/// What supplies one path of a tail's rendering, named globally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Entry { element: usize, entry: usize },
    Implied,
}

/// A tail's rendering: archive path (below `rootfs/`) to its supplier.
type TailMap = BTreeMap<Vec<u8>, Source>;

/// The elements of `list` as the file map sees them, top first.
fn list_layers(list: &DependencyList) -> Vec<Layer<'_>> {
    list.images
        .iter()
        .map(|listed| Layer {
            entries: listed.image.image.entries(),
            whitelist: &listed.image.manifest.path_whitelist,
            parent: listed.parent,
        })
        .collect()
}

/// The rendering of the tail of `layers` from element `from`, computed
/// from scratch (every entry of every element of the tail considered).
fn tail_map(layers: &[Layer<'_>], from: usize) -> TailMap {
    let tail: Vec<Layer<'_>> = layers[from..]
        .iter()
        .map(|layer| Layer {
            // Ancestors not yet laid down filter nothing yet.
            parent: layer.parent.and_then(|p| p.checked_sub(from)),
            ..*layer
        })
        .collect();
    file_map_of(&tail)
        .paths
        .into_iter()
        .filter(|(path, _)| path.starts_with(b"rootfs/"))
        .map(|(path, supplier)| {
            let source = match supplier {
                Supplier::Entry { element, entry, .. } => Source::Entry {
                    element: element + from,
                    entry,
                },
                Supplier::Implied => Source::Implied,
            };
            (path, source)
        })
        .collect()
}

/// For every path some element has a non-directory at, the deepest such
/// element (the highest index).
fn deepest_nondirs<'a>(layers: &[Layer<'a>]) -> HashMap<&'a [u8], usize> {
    let mut out = HashMap::new();
    for (element, layer) in layers.iter().enumerate() {
        for entry in layer.entries {
            if !entry.kind.is_dir() {
                out.insert(entry.path.as_slice(), element);
            }
        }
    }
    out
}

/// The rendering of the tail from element `k`, given `below`, the one
/// from `k + 1`: element `k`'s own map laid over `below` filtered by
/// `k`'s whitelist, so each element's entries are considered once and a
/// push of `L` layers costs O(L·paths), not O(L²·paths) as recomputing
/// every tail does. Where laying `k` on top can bring back a lower entry
/// that `below` hides (a directory of `k` over a lower non-directory, or
/// a whitelist that drops a non-directory but keeps a path below it), or
/// the whitelist does not apply to every lower element, the tail is
/// computed from scratch instead; the unit tests check both ways agree.
/// `deepest_nondir` is [`deepest_nondirs`] of `layers`.
fn next_tail_map(
    layers: &[Layer<'_>],
    deepest_nondir: &HashMap<&[u8], usize>,
    k: usize,
    below: &TailMap,
) -> TailMap {
    if below.is_empty() {
        return tail_map(layers, k);
    }
    let is_dir = |source: &Source| match *source {
        Source::Entry { element, entry } => layers[element].entries[entry].kind.is_dir(),
        Source::Implied => true,
    };
    let filtered: std::borrow::Cow<'_, TailMap> = match whitelist_keys(layers[k].whitelist) {
        None => std::borrow::Cow::Borrowed(below),
        Some(keep) => {
            // `k`'s whitelist filters every lower element it is an
            // ancestor of (aci-format §9.2 rule 4).
            let under_k = |mut at: Option<usize>| {
                for _ in 0..layers.len() {
                    match at {
                        Some(a) if a == k => return true,
                        Some(a) => at = layers.get(a).and_then(|l| l.parent),
                        None => return false,
                    }
                }
                false
            };
            if !(k + 1..layers.len()).all(|j| under_k(layers[j].parent)) {
                return tail_map(layers, k);
            }
            let sorted: std::collections::BTreeSet<&[u8]> =
                keep.iter().map(Vec::as_slice).collect();
            let mut out = TailMap::new();
            for (path, source) in below {
                if matches!(source, Source::Implied) {
                    continue;
                }
                if !keep.contains(path) {
                    if !is_dir(source) {
                        let mut start = path.clone();
                        start.push(b'/');
                        let mut end = path.clone();
                        end.push(b'0');
                        if sorted
                            .range::<[u8], _>((
                                std::ops::Bound::Included(start.as_slice()),
                                std::ops::Bound::Excluded(end.as_slice()),
                            ))
                            .next()
                            .is_some()
                        {
                            return tail_map(layers, k);
                        }
                    }
                    // The path implied its parents, which hid any lower
                    // non-directory at their paths; without it one may
                    // come back where the whitelist keeps the parent.
                    let unhides = parents(path).any(|parent| {
                        keep.contains(parent) && deepest_nondir.get(parent).is_some_and(|&j| j > k)
                    });
                    if unhides {
                        return tail_map(layers, k);
                    }
                    continue;
                }
                for parent in parents(path) {
                    if out.contains_key(parent) {
                        break;
                    }
                    out.insert(parent.to_vec(), Source::Implied);
                }
                out.insert(path.clone(), *source);
            }
            std::borrow::Cow::Owned(out)
        }
    };
    let own = [Layer {
        parent: None,
        ..layers[k]
    }];
    let mut out: TailMap = tail_map(&own, 0)
        .into_iter()
        .map(|(path, source)| {
            let source = match source {
                Source::Entry { entry, .. } => Source::Entry { element: k, entry },
                Source::Implied => Source::Implied,
            };
            (path, source)
        })
        .collect();
    let own_len = out.len();
    for (path, source) in filtered.iter() {
        match out.get(path) {
            Some(Source::Implied) if !is_dir(source) => return tail_map(layers, k),
            // A lower directory supplies the attributes of one `k` only
            // implies.
            Some(Source::Implied) => {
                out.insert(path.clone(), *source);
            }
            Some(upper) if is_dir(upper) && !is_dir(source) => return tail_map(layers, k),
            Some(_) => {}
            None => {
                // Below a non-directory of `k`: hidden (parent-must-be-dir).
                let hidden = own_len > 0
                    && parents(path).any(|p| {
                        matches!(out.get(p), Some(s @ Source::Entry { element, .. })
                            if *element == k && !is_dir(s))
                    });
                if !hidden {
                    out.insert(path.clone(), *source);
                }
            }
        }
    }
    out
}

/// One entry of a layer to write.
pub(super) struct Item<'a> {
    /// Its path in the layer.
    pub(super) path: Vec<u8>,
    /// Its attributes (`None`: a directory only implied, mode 0755).
    pub(super) entry: Option<&'a Entry>,
    /// For a regular file or a copied hard link: where the data is.
    pub(super) data: &'a [u8],
    /// Its type in the layer.
    pub(super) kind: EntryKind,
    /// For a hard link kept as a link: its target (layer-root path).
    pub(super) link: Option<Vec<u8>>,
}

fn strip_rootfs(path: &[u8]) -> &[u8] {
    path.strip_prefix(b"rootfs/").unwrap_or(path)
}

/// Writes `list` (as resolved for its top image) into the OCI image layout
/// `dir` as a runnable image, tagged `tag` when given; see the module docs.
/// With `cache`, layers come from the store's layer cache when it has
/// them (copied into the layout while hashed; a blob that does not hash
/// to its record is generated again) and the ones generated are added to
/// it.
pub fn push_to_layout(
    image: &str,
    list: &DependencyList,
    dir: &Path,
    tag: Option<&str>,
    cache: Option<&Store>,
) -> Result<PushReport, OciError> {
    write_layout(image, list, dir, tag, cache, true).map(|(report, _)| report)
}

/// [`push_to_layout`] for a registry upload: the scratch layout `dir`
/// gets the config and the manifest only, and the layers stay where they
/// are, in the store's layer cache (generated into it when missing), as
/// the returned [`LayerBlob`]s, base first. Without a usable cache they
/// are generated into the scratch layout, unsynced, since nothing keeps
/// them past the upload.
pub fn push_to_scratch_layout(
    image: &str,
    list: &DependencyList,
    dir: &Path,
    cache: Option<&Store>,
) -> Result<(PushReport, Vec<LayerBlob>), OciError> {
    write_layout(image, list, dir, None, cache, false)
}

/// The layer cache key of the layer of element `k` of `list`: the images
/// from `k` down to the bottom with their parents' positions relative to
/// `k` (see [`tail_map`]: a parent above `k` filters nothing yet), which
/// is all the layer is computed from.
fn layer_key(list: &DependencyList, k: usize) -> OciLayerKey {
    let images: Vec<_> = list.images[k..]
        .iter()
        .map(|l| (l.id, l.parent.and_then(|p| p.checked_sub(k))))
        .collect();
    OciLayerKey::new(LAYER_GENERATOR, &images)
}

fn write_layout(
    image: &str,
    list: &DependencyList,
    dir: &Path,
    tag: Option<&str>,
    cache: Option<&Store>,
    keep: bool,
) -> Result<(PushReport, Vec<LayerBlob>), OciError> {
    let invalid = |what: &str, problem: String| OciError::Invalid {
        image: image.to_owned(),
        what: what.to_owned(),
        problem,
    };
    if let Some(tag) = tag {
        check_tag(tag).map_err(|p| invalid("tag", p))?;
    }
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| OciError::Io { path, source }
    };
    // An image without a platform, or a layout whose index cannot be
    // updated, is refused before any blob is written into it.
    platform_of(image, list)?;
    let (index, blobs) = open_layout(dir)?;

    // Entries by path, per element, for hard-link targets.
    let by_path: Vec<HashMap<&[u8], usize>> = list
        .images
        .iter()
        .map(|l| {
            l.image
                .image
                .entries()
                .iter()
                .enumerate()
                .map(|(i, e)| (e.path.as_slice(), i))
                .collect()
        })
        .collect();
    let entry_of = |element: usize, entry: usize| -> &Entry {
        &list.images[element].image.image.entries()[entry]
    };

    let count = list.images.len();
    let mut layers = Vec::with_capacity(count);
    let mut diff_ids = Vec::with_capacity(count);
    let mut history = Vec::with_capacity(count);
    let mut blob_files = Vec::with_capacity(count);
    let mut cached_layers = 0;
    let tail_layers = list_layers(list);
    let deepest_nondir = deepest_nondirs(&tail_layers);
    // The rendering of the tail below the layer being written, when it is
    // known (it is not after a layer read from the cache).
    let mut known_below = Some(TailMap::new());
    for k in (0..count).rev() {
        let write_err = |source| OciError::Write {
            image: image.to_owned(),
            layer: count - k,
            dir: blobs.clone(),
            source,
        };
        let key = cache.map(|_| layer_key(list, k));
        let hit = cache.zip(key.as_ref()).and_then(|(store, key)| {
            let hit = store.cached_oci_layer(key)?;
            let digest = Sha256Digest::parse(&hit.record.digest).ok()?;
            let diff_id = Sha256Digest::parse(&hit.record.diff_id).ok()?;
            (hit.record.media_type == LAYER_GZIP).then_some((hit, digest, diff_id))
        });
        if let Some((hit, digest, diff_id)) = hit {
            let size = hit.record.size;
            let placed = if keep {
                copy_cached_into(&blobs, hit.file, &digest, size)
                    .map_err(write_err)?
                    .map(|file| LayerBlob {
                        digest,
                        size,
                        file,
                        path: blobs.join(digest.hex()),
                        cached: false,
                    })
            } else {
                Some(LayerBlob {
                    digest,
                    size,
                    file: hit.file,
                    path: hit.path,
                    cached: true,
                })
            };
            // A cached blob that is not what its record says is
            // generated again below (which replaces the entry).
            if let Some(placed) = placed {
                layers.push(
                    json!({"mediaType": LAYER_GZIP, "digest": digest.to_string(), "size": size}),
                );
                diff_ids.push(diff_id.to_string());
                history.push(json!({
                    "created_by": format!("acido push {}", list.images[k].id),
                }));
                blob_files.push(placed);
                cached_layers += 1;
                known_below = None;
                continue;
            }
        }
        let below = match known_below.take() {
            Some(below) => below,
            None => tail_map(&tail_layers, k + 1),
        };
        let now = next_tail_map(&tail_layers, &deepest_nondir, k, &below);
        let mut whiteouts: Vec<Vec<u8>> = Vec::new();
        for path in below.keys() {
            if now.contains_key(path) {
                continue;
            }
            let rel = strip_rootfs(path);
            let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
                Some(at) => (&path[..7 + at], &rel[at + 1..]),
                None => (&b"rootfs"[..], rel),
            };
            // Only the topmost missing path, and none below a parent that
            // is no longer a directory.
            let parent_is_dir = parent == b"rootfs"
                || match now.get(parent) {
                    Some(Source::Implied) => true,
                    Some(Source::Entry { element, entry }) => {
                        entry_of(*element, *entry).kind.is_dir()
                    }
                    None => false,
                };
            if !parent_is_dir {
                continue;
            }
            let mut marker = strip_rootfs(parent).to_vec();
            if parent != b"rootfs" {
                marker.push(b'/');
            } else {
                marker.clear();
            }
            marker.extend_from_slice(b".wh.");
            marker.extend_from_slice(name);
            whiteouts.push(marker);
        }
        let mut items: Vec<Item<'_>> = Vec::new();
        // The root's attributes: the renderer takes them from the top of
        // the list, umoci from the last `./`, so every layer carries its
        // image's.
        let own = list.images[k].image.image.entries();
        if let Some(root) = own.iter().find(|e| e.path == b"rootfs" && e.kind.is_dir()) {
            items.push(Item {
                path: b"./".to_vec(),
                entry: Some(root),
                data: &[],
                kind: EntryKind::Directory,
                link: None,
            });
        }
        let mut links: Vec<Item<'_>> = Vec::new();
        for (path, source) in &now {
            let changed = below.get(path) != Some(source);
            let Source::Entry { element, entry } = *source else {
                if changed {
                    items.push(Item {
                        path: strip_rootfs(path).to_vec(),
                        entry: None,
                        data: &[],
                        kind: EntryKind::Directory,
                        link: None,
                    });
                }
                continue;
            };
            let e = entry_of(element, entry);
            let image = &list.images[element].image.image;
            if e.kind == EntryKind::HardLink {
                let target = e.link_target.clone().unwrap_or_default();
                let own = by_path[element].get(target.as_slice()).copied();
                let linked_here = now.get(&target)
                    == Some(&Source::Entry {
                        element,
                        entry: own.unwrap_or(usize::MAX),
                    });
                let target_changed = below.get(&target) != now.get(&target);
                if !changed && !target_changed {
                    continue;
                }
                if linked_here {
                    links.push(Item {
                        path: strip_rootfs(path).to_vec(),
                        entry: Some(e),
                        data: &[],
                        kind: EntryKind::HardLink,
                        link: Some(strip_rootfs(&target).to_vec()),
                    });
                } else if let Some(own) = own {
                    // The renderer gives it the content it had in its own
                    // image: write that as a file.
                    let t = &image.entries()[own];
                    items.push(Item {
                        path: strip_rootfs(path).to_vec(),
                        entry: Some(t),
                        data: image.data(t),
                        kind: t.kind,
                        link: None,
                    });
                }
                continue;
            }
            if !changed {
                continue;
            }
            items.push(Item {
                path: strip_rootfs(path).to_vec(),
                entry: Some(e),
                data: image.data(e),
                kind: e.kind,
                link: None,
            });
        }
        items.extend(links);

        // Write the layer: tar → gzip → blob, hashing both streams.
        let (blob, diff_id) =
            generate_layer(cache.zip(key.as_ref()), &blobs, &whiteouts, &items, keep).map_err(
                |e| match e {
                    Generated::Io(source) => write_err(source),
                    Generated::Store(e) => OciError::Store(e),
                },
            )?;
        let (digest, size) = (blob.digest, blob.size);
        blob_files.push(blob);
        layers.push(json!({"mediaType": LAYER_GZIP, "digest": digest.to_string(), "size": size}));
        diff_ids.push(diff_id.to_string());
        history.push(json!({
            "created_by": format!("acido push {}", list.images[k].id),
        }));
        known_below = Some(now);
    }

    let config = config_json(image, list, diff_ids, history)?;
    let config_digest = put_blob(&blobs, config.as_bytes()).map_err(io_err(&blobs))?;
    let manifest = serde_json::to_string(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    }))
    .map_err(|e| invalid("manifest", e.to_string()))?;
    let manifest_digest = put_blob(&blobs, manifest.as_bytes()).map_err(io_err(&blobs))?;

    let descriptor = json!({
        "mediaType": OCI_MANIFEST,
        "digest": manifest_digest.to_string(),
        "size": manifest.len(),
    });
    add_to_index(dir, index, descriptor, tag)?;
    let report = PushReport {
        manifest_digest,
        layers: layers
            .iter()
            .filter_map(|l| {
                l["digest"]
                    .as_str()
                    .and_then(|d| Sha256Digest::parse(d).ok())
            })
            .collect(),
        config_digest,
        cached_layers,
    };
    Ok((report, blob_files))
}

/// The index of the OCI image layout `dir` (a fresh empty one when it has
/// none), checked to be an index this push can extend: a JSON object
/// whose `manifests` is an array. The error names the file.
/// Opens the OCI image layout `dir` for writing, making it when new: its
/// `index.json` read and checked first (so a broken one is refused before
/// any blob is written), `blobs/sha256` and `oci-layout` in place.
/// Returns the index and the blob directory.
pub(super) fn open_layout(dir: &Path) -> Result<(Value, std::path::PathBuf), OciError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| OciError::Io { path, source }
    };
    let index = read_index(dir)?;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let layout_file = dir.join("oci-layout");
    if !layout_file.exists() {
        fs::write(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io_err(&layout_file))?;
    }
    Ok((index, blobs))
}

fn read_index(dir: &Path) -> Result<Value, OciError> {
    let path = dir.join("index.json");
    let invalid = |problem: String| OciError::Invalid {
        image: path.display().to_string(),
        what: "existing index".to_owned(),
        problem,
    };
    let index: Value = match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not valid JSON ({e})")))?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))
        }
        Err(source) => return Err(OciError::Io { path, source }),
    };
    if !index.get("manifests").is_some_and(Value::is_array) {
        return Err(invalid("no \"manifests\" array".to_owned()));
    }
    Ok(index)
}

/// Adds `descriptor` to `index` (from [`read_index`]) and writes it as
/// `dir`'s `index.json`. umoci's rule: a tag names one entry, so older
/// entries with the name are dropped, then the new entry is appended.
pub(super) fn add_to_index(
    dir: &Path,
    mut index: Value,
    mut descriptor: Value,
    tag: Option<&str>,
) -> Result<(), OciError> {
    let path = dir.join("index.json");
    let entries = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| OciError::Invalid {
            image: path.display().to_string(),
            what: "existing index".to_owned(),
            problem: "no \"manifests\" array".to_owned(),
        })?;
    if let Some(tag) = tag {
        entries.retain(|d| {
            d.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                .and_then(Value::as_str)
                != Some(tag)
        });
        descriptor["annotations"] = json!({ REF_NAME: tag });
    }
    entries.push(descriptor);
    let text = serde_json::to_vec(&index).map_err(|e| OciError::Invalid {
        image: path.display().to_string(),
        what: "index".to_owned(),
        problem: e.to_string(),
    })?;
    write_replacing(dir, ".index.json.", &path, &text).map_err(|source| OciError::Io {
        path: path.clone(),
        source,
    })
}

/// Stores `bytes` as a blob (write to a temp name, rename to the digest).
pub(super) fn put_blob(blobs: &Path, bytes: &[u8]) -> io::Result<Sha256Digest> {
    let digest = Sha256Digest::of(bytes);
    let path = blobs.join(digest.hex());
    if !path.exists() {
        write_replacing(blobs, &format!(".{}.", digest.hex()), &path, bytes)?;
    }
    Ok(digest)
}

/// A temp file in `dir` (the user's layout), removed when dropped unless
/// persisted, so a failed push leaves no temp behind. Mode 0666 less the
/// umask, as `File::create` gives, so blobs stay as readable as before.
pub(super) fn layout_temp(dir: &Path, prefix: &str) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

/// Writes `bytes` to `path` through a temp beside it and a rename, so a
/// reader sees the old file or the whole new one, and an error leaves
/// neither a partial `path` nor the temp.
pub(super) fn write_replacing(
    dir: &Path,
    prefix: &str,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let mut temp = layout_temp(dir, prefix)?;
    temp.write_all(bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The OCI platform of `list`: the os and arch labels of the first image
/// of the list that names both (an app image on top of a pulled chain, or
/// the pulled app image below a build), mapped to OCI's names.
fn platform_of(
    image: &str,
    list: &DependencyList,
) -> Result<(&'static str, &'static str, Option<&'static str>), OciError> {
    let config_err = |problem: String| OciError::Config {
        image: image.to_owned(),
        problem,
    };
    let platform = list.images.iter().find_map(|l| {
        let m = &l.image.manifest;
        Some((m.label("os")?.to_owned(), m.label("arch")?.to_owned()))
    });
    let (os, arch) = platform.ok_or_else(|| {
        config_err(
            "no image of the dependency list has os and arch labels; an OCI image needs a platform (push it with --format aci, or add the labels)"
                .to_owned(),
        )
    })?;
    oci_platform(&os, &arch)
        .ok_or_else(|| config_err(format!("appc platform {os}/{arch} has no OCI name")))
}

/// The OCI config for the top image's app (the inverse of
/// [`super::config::app_manifest`]).
fn config_json(
    image: &str,
    list: &DependencyList,
    diff_ids: Vec<String>,
    history: Vec<Value>,
) -> Result<String, OciError> {
    let config_err = |problem: String| OciError::Config {
        image: image.to_owned(),
        problem,
    };
    let top = &list.images[0].image.manifest;
    let (oci_os, oci_arch, variant) = platform_of(image, list)?;
    let mut c = Map::new();
    let annotation = |name: &str| top.annotations.get(name).map(str::to_owned);
    if let Some(app) = &top.app {
        let exec = app.exec.clone().unwrap_or_default();
        let parse =
            |name: &str| -> Option<Vec<String>> { serde_json::from_str(&annotation(name)?).ok() };
        let entrypoint = parse(ENTRYPOINT_ANNOTATION).unwrap_or_default();
        let cmd = parse(CMD_ANNOTATION).unwrap_or_default();
        let split = entrypoint
            .iter()
            .chain(cmd.iter())
            .cloned()
            .collect::<Vec<_>>()
            == exec;
        if split {
            if !entrypoint.is_empty() {
                c.insert("Entrypoint".into(), json!(entrypoint));
            }
            if !cmd.is_empty() {
                c.insert("Cmd".into(), json!(cmd));
            }
        } else if !exec.is_empty() {
            // appc lets the executor append arguments, as Entrypoint does.
            c.insert("Entrypoint".into(), json!(exec));
        }
        let user = match (app.user.as_str(), app.group.as_str()) {
            ("0", "0") | ("", "") => String::new(),
            (u, "") => u.to_owned(),
            (u, g) => format!("{u}:{g}"),
        };
        if !user.is_empty() {
            c.insert("User".into(), json!(user));
        }
        if !app.environment.is_empty() {
            let env: Vec<String> = app
                .environment
                .iter()
                .map(|v| format!("{}={}", v.name, v.value))
                .collect();
            c.insert("Env".into(), json!(env));
        }
        if !app.working_directory.is_empty() {
            c.insert("WorkingDir".into(), json!(app.working_directory));
        }
        if !app.ports.is_empty() {
            let mut ports = Map::new();
            for p in &app.ports {
                for n in 0..p.count.max(1) {
                    ports.insert(format!("{}/{}", p.port + n, p.protocol), json!({}));
                }
            }
            c.insert("ExposedPorts".into(), Value::Object(ports));
        }
        if !app.mount_points.is_empty() {
            let volumes: Map<String, Value> = app
                .mount_points
                .iter()
                .map(|m| (m.path.clone(), json!({})))
                .collect();
            c.insert("Volumes".into(), Value::Object(volumes));
        }
        if !app.user_labels.is_empty() {
            c.insert("Labels".into(), json!(app.user_labels));
        }
    }
    if let Some(signal) = annotation(STOP_SIGNAL_ANNOTATION) {
        c.insert("StopSignal".into(), json!(signal));
    }
    let mut config = json!({
        "architecture": oci_arch,
        "os": oci_os,
        "config": Value::Object(c),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    if let Some(variant) = variant {
        config["variant"] = json!(variant);
    }
    if let Some(created) = annotation("created") {
        config["created"] = json!(created);
    }
    if let Some(author) = annotation("authors") {
        config["author"] = json!(author);
    }
    serde_json::to_string(&config).map_err(|e| config_err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Paths of a small tree, so random layers often collide, shadow and
    /// nest under one another.
    const PATHS: &[&str] = &["a", "a/b", "a/b/c", "a/d", "b", "b/x", "b/x/y", "c", "c/z"];

    /// A random element: entries over [`PATHS`] (regular, directory or
    /// symlink) and maybe a whitelist of some of them.
    fn layer_strategy() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<Vec<usize>>)> {
        (
            proptest::collection::vec((0..PATHS.len(), 0u8..3), 0..7),
            proptest::option::of(proptest::collection::vec(0..PATHS.len(), 0..8)),
        )
    }

    proptest! {
        /// Laying each element over the tail below it gives exactly the
        /// tail computed from scratch, for every element of random
        /// stacks: linear chains and lists where a lower element hangs
        /// from another branch.
        #[test]
        fn the_incremental_tail_map_is_the_tail_map(
            stack in proptest::collection::vec(layer_strategy(), 1..6),
            branch in any::<bool>(),
        ) {
            let entries: Vec<Vec<Entry>> = stack
                .iter()
                .map(|(list, _)| {
                    list.iter()
                        .map(|&(p, kind)| {
                            let kind = match kind {
                                0 => EntryKind::Regular,
                                1 => EntryKind::Directory,
                                _ => EntryKind::Symlink,
                            };
                            Entry::new(format!("rootfs/{}", PATHS[p]).into_bytes(), kind)
                        })
                        .collect()
                })
                .collect();
            let whitelists: Vec<Vec<String>> = stack
                .iter()
                .map(|(_, w)| {
                    w.iter()
                        .flatten()
                        .map(|&p| format!("/{}", PATHS[p]))
                        .collect()
                })
                .collect();
            let layers: Vec<Layer<'_>> = (0..stack.len())
                .map(|i| Layer {
                    entries: &entries[i],
                    whitelist: &whitelists[i],
                    // Each element depends on the one above it, or (a
                    // branch) the last one hangs from the top.
                    parent: match i {
                        0 => None,
                        i if branch && i == stack.len() - 1 => Some(0),
                        i => Some(i - 1),
                    },
                })
                .collect();
            let deepest_nondir = deepest_nondirs(&layers);
            let mut below = TailMap::new();
            for k in (0..layers.len()).rev() {
                let now = next_tail_map(&layers, &deepest_nondir, k, &below);
                prop_assert_eq!(&now, &tail_map(&layers, k), "tail from {}", k);
                below = now;
            }
        }
    }

    #[test]
    fn a_failed_replace_leaves_no_temp_in_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory at the final name makes the rename fail
        // after the temp was written.
        let target = dir.path().join("index.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        assert!(write_replacing(dir.path(), ".index.json.", &target, b"{}").is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("index.json")]);

        write_replacing(dir.path(), ".blob.", &dir.path().join("blob"), b"data").unwrap();
        assert_eq!(fs::read(dir.path().join("blob")).unwrap(), b"data");
    }
}
