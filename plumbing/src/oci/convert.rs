//! Layer tars into ACIs (oci-bridge §2, §9 "Pull").
//!
//! [`unpack_layer`] (in [`super::unpack`]) decompresses one layer into a
//! scratch file while it checks the layer's diff id and parses its
//! entries. A [`Converter`] then
//! applies the layers in order to a model of the tree (paths, types,
//! attributes, which layer provides each path, hard-link groups), the way
//! `umoci unpack` applies them to a directory, and writes one ACI per
//! layer:
//!
//! - every path the layer provides, below `rootfs/`, with its ancestors
//!   (so the ACI is complete on its own); whiteout markers are dropped;
//! - when the layer deleted anything (a whiteout or an opaque marker that
//!   hid a lower path), a complete `pathWhitelist` of every path that
//!   survives it, directories included: the same tree whichever ancestor
//!   whitelist a renderer applies;
//! - a hard link to a lower layer's file re-emits the whole group in this
//!   layer (an ACI's links may only point into the same ACI), and a group
//!   that loses or gains a member here is re-emitted with it, so every
//!   group renders as umoci links it;
//! - entries below a lower symlinked directory go where umoci puts them:
//!   the parent path is resolved through the tree's symlinks, confined to
//!   the root.
//!
//! The root directory gets the attributes of the last `./` entry of the
//! layers so far (umoci's rule; mode 0755, root, mtime 0 without one) on
//! every layer ACI's `rootfs` and on the app image's, whose `rootfs` is
//! the one a renderer uses.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::digest::Sha256Digest;
pub use super::unpack::{unpack_layer, LayerTar, ScratchFile};
use super::OciError;
use crate::entry::{Entry, EntryKind, Timestamp};
use crate::id::ImageId;
use crate::limits::{LimitExceeded, LimitKind, Limits};
use crate::manifest::{
    AcIdentifier, Annotation, Annotations, Dependency, ImageIdRef, ImageManifest, Labels,
};
use crate::pack::tar_writer::{
    encode_header, HeaderSpec, NoHash, TarSink, TYPE_BLOCK, TYPE_CHAR, TYPE_DIR, TYPE_FIFO,
    TYPE_HARDLINK, TYPE_REGULAR, TYPE_SYMLINK,
};
use crate::store::{Staged, Staging, Store};

/// Most symlinks followed while resolving one path, as Linux's `ELOOP`.
const MAX_SYMLINK_HOPS: usize = 40;
/// Largest file [`Converter::read_file`] returns (`/etc/passwd` lookups);
/// public so a pull from already stored layers reads by the same rule.
pub const MAX_READ_FILE: u64 = 4 << 20;
/// Annotation naming the diff id of the layer an ACI was made from.
pub const DIFF_ID_ANNOTATION: &str = "acido.io/oci-diff-id";
/// Annotation naming the chain id (the layer and all below it).
pub const CHAIN_ID_ANNOTATION: &str = "acido.io/oci-chain-id";
/// Prefix of a layer ACI's name; the chain id's hex follows.
pub const LAYER_NAME_PREFIX: &str = "oci-layer/sha256-";

/// One path of the modelled tree.
#[derive(Debug, Clone)]
struct Node {
    /// A directory's attributes (path and data fields unused); for other
    /// types the attributes are the inode's.
    dir: Option<Entry>,
    /// The inode of a non-directory.
    inode: Option<usize>,
    /// Which layer's ACI provides this path (0 = base).
    layer: usize,
}

/// A non-directory object that one or more paths (hard links) name.
#[derive(Debug)]
struct Inode {
    /// Type and attributes; for regular files, where the data is in `tar`.
    meta: Entry,
    /// The layer tar holding the data.
    tar: usize,
    /// The layer that created it.
    born: usize,
    /// The paths that name it.
    members: BTreeSet<Vec<u8>>,
}

/// One layer converted: the ACI staged in the store (not yet committed),
/// with its id and name.
#[derive(Debug)]
pub struct ConvertedLayer<'s> {
    /// The ACI, checked, ready to commit.
    pub staged: Staged<'s>,
    /// Its image id.
    pub id: ImageId,
    /// Its name (`oci-layer/sha256-<chain id hex>`).
    pub name: AcIdentifier,
    /// The chain id of this layer and those below.
    pub chain_id: Sha256Digest,
    /// Whether it carries a whitelist (the layer deleted something).
    pub deletes: bool,
}

/// The state of one layer's pass.
#[derive(Default)]
struct Pass {
    layer: usize,
    /// Paths this layer created, and their ancestors: whiteouts in the same
    /// layer never remove them, whatever the order (oci-bridge §2).
    created: HashSet<Vec<u8>>,
    /// Lower inodes that gained or lost a member in this layer.
    touched: BTreeSet<usize>,
    /// Whether a whiteout or an opaque marker removed a lower path.
    hid: bool,
}

/// The layer chain of one image, applied layer by layer; see the module docs.
pub struct Converter {
    image: String,
    limits: Limits,
    nodes: BTreeMap<Vec<u8>, Node>,
    inodes: Vec<Inode>,
    tars: Vec<LayerTar>,
    chain: Option<Sha256Digest>,
    parent: Option<(ImageId, AcIdentifier)>,
    /// The root directory's attributes: the last `./` entry of any layer.
    root: Option<Entry>,
}

/// The name of the layer ACI for `chain_id`.
pub fn layer_name(chain_id: &Sha256Digest) -> AcIdentifier {
    format!("{LAYER_NAME_PREFIX}{}", chain_id.hex())
        .parse()
        .expect("lowercase hex after a fixed valid prefix is an AC identifier")
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(at) => (&path[..at], &path[at + 1..]),
        None => (&[], path),
    }
}

/// `path` and every ancestor of it (not the root).
fn with_ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let cuts = path
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(|(i, _)| i)
        .chain(std::iter::once(path.len()));
    cuts.map(move |at| &path[..at])
}

/// The first key after every path below `dir` (`dir` + `0`, since `/` + 1 is `0`).
fn subtree_end(dir: &[u8]) -> Vec<u8> {
    let mut end = dir.to_vec();
    end.push(b'0');
    end
}

fn implied_dir() -> Entry {
    Entry::new(Vec::new(), EntryKind::Directory).with_mode(0o755)
}

impl Converter {
    /// A converter for `image` (named in errors) with an empty tree.
    pub fn new(image: impl Into<String>, limits: Limits) -> Converter {
        Converter {
            image: image.into(),
            limits,
            nodes: BTreeMap::new(),
            inodes: Vec::new(),
            tars: Vec::new(),
            chain: None,
            parent: None,
            root: None,
        }
    }

    fn bad(&self, layer: usize, path: &[u8], problem: impl Into<String>) -> OciError {
        OciError::BadEntry {
            image: self.image.clone(),
            layer: layer + 1,
            path: path.to_vec(),
            problem: problem.into(),
        }
    }

    /// Resolves a directory path through the tree's symlinks, every
    /// component followed, confined to the root (`..` stops there), as
    /// umoci's SecureJoin does.
    fn resolve(&self, layer: usize, path: &[u8]) -> Result<Vec<u8>, OciError> {
        resolve_path(path, |here| {
            let inode = self.nodes.get(here)?.inode?;
            let meta = &self.inodes[inode].meta;
            (meta.kind == EntryKind::Symlink).then(|| meta.link_target.clone().unwrap_or_default())
        })
        .ok_or_else(|| self.bad(layer, path, "too many levels of symbolic links"))
    }

    /// Removes `path` and everything below it, except (when `protect`)
    /// what this layer created; returns whether anything was removed.
    fn remove(&mut self, pass: &mut Pass, path: &[u8], protect: bool) -> bool {
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        if self.nodes.contains_key(path) {
            doomed.push(path.to_vec());
        }
        let below = join(path, b"");
        let end = subtree_end(path);
        doomed.extend(self.nodes.range(below..end).map(|(p, _)| p.clone()));
        let mut removed = false;
        for p in doomed {
            if protect && pass.created.contains(&p) {
                continue;
            }
            if let Some(node) = self.nodes.remove(&p) {
                removed = true;
                if let Some(inode) = node.inode {
                    let ino = &mut self.inodes[inode];
                    ino.members.remove(&p);
                    if ino.born < pass.layer {
                        pass.touched.insert(inode);
                    }
                }
            }
        }
        removed
    }

    /// Makes every component of the resolved directory `dir` a directory:
    /// missing ones are created (mode 0755, root, as umoci's `MkdirAll`),
    /// non-directories replaced.
    fn make_dirs(&mut self, pass: &mut Pass, dir: &[u8]) {
        if dir.is_empty() {
            return;
        }
        for prefix in with_ancestors(dir) {
            let is_dir = self.nodes.get(prefix).is_some_and(|n| n.dir.is_some());
            if !is_dir {
                self.remove(pass, prefix, false);
                self.nodes.insert(
                    prefix.to_vec(),
                    Node {
                        dir: Some(implied_dir()),
                        inode: None,
                        layer: pass.layer,
                    },
                );
            }
        }
    }

    fn mark_created(pass: &mut Pass, path: &[u8]) {
        for prefix in with_ancestors(path) {
            if !pass.created.insert(prefix.to_vec()) {
                // Its ancestors went in with it.
                break;
            }
        }
    }

    fn apply(&mut self, pass: &mut Pass, entry: Entry) -> Result<(), OciError> {
        let layer = pass.layer;
        let (parent, base) = split_last(&entry.path);
        if parent.split(|&b| b == b'/').any(|c| c.starts_with(b".wh.")) {
            return Err(self.bad(layer, &entry.path, "whiteout marker used as a directory"));
        }
        let dir = self.resolve(layer, parent)?;
        if let Some(name) = base.strip_prefix(b".wh.") {
            if name == b".wh..opq" {
                // An opaque marker: hide everything below `dir` from the
                // layers beneath (this layer's own paths stay).
                if dir.is_empty() || self.nodes.get(&dir).is_some_and(|n| n.dir.is_some()) {
                    let below: Vec<Vec<u8>> = self
                        .nodes
                        .range(join(&dir, b"")..subtree_end(&dir))
                        .map(|(p, _)| p.clone())
                        .collect();
                    for p in below {
                        if self.remove(pass, &p, true) {
                            pass.hid = true;
                        }
                    }
                }
                return Ok(());
            }
            if name.starts_with(b".wh.") {
                return Err(self.bad(
                    layer,
                    &entry.path,
                    "AUFS metadata entries are not supported",
                ));
            }
            if name.is_empty() || name == b"." || name == b".." {
                return Err(self.bad(layer, &entry.path, "whiteout names no file"));
            }
            let target = join(&dir, name);
            if self.remove(pass, &target, true) {
                pass.hid = true;
            }
            return Ok(());
        }
        let path = join(&dir, base);
        self.make_dirs(pass, &dir);
        Self::mark_created(pass, &path);
        match entry.kind {
            EntryKind::HardLink => {
                let raw = entry.link_target.clone().unwrap_or_default();
                let (tparent, tbase) = split_last(&raw);
                let target = join(&self.resolve(layer, tparent)?, tbase);
                let inode = match self.nodes.get(&target) {
                    None => {
                        return Err(self.bad(
                            layer,
                            &entry.path,
                            format!(
                                "hard link to {}, which does not exist",
                                crate::quote::quote_path(&raw)
                            ),
                        ))
                    }
                    Some(Node { inode: None, .. }) => {
                        return Err(self.bad(layer, &entry.path, "hard link to a directory"))
                    }
                    Some(Node {
                        inode: Some(inode), ..
                    }) => *inode,
                };
                if target == path {
                    return Ok(());
                }
                self.remove(pass, &path, false);
                let ino = &mut self.inodes[inode];
                ino.members.insert(path.clone());
                if ino.born < layer {
                    pass.touched.insert(inode);
                }
                self.nodes.insert(
                    path,
                    Node {
                        dir: None,
                        inode: Some(inode),
                        layer,
                    },
                );
            }
            EntryKind::Directory => match self.nodes.get_mut(&path) {
                Some(node) if node.dir.is_some() => {
                    node.dir = Some(entry);
                    node.layer = layer;
                }
                _ => {
                    self.remove(pass, &path, false);
                    self.nodes.insert(
                        path,
                        Node {
                            dir: Some(entry),
                            inode: None,
                            layer,
                        },
                    );
                }
            },
            _ => {
                self.remove(pass, &path, false);
                let inode = self.inodes.len();
                self.inodes.push(Inode {
                    meta: entry,
                    tar: layer,
                    born: layer,
                    members: BTreeSet::from([path.clone()]),
                });
                self.nodes.insert(
                    path,
                    Node {
                        dir: None,
                        inode: Some(inode),
                        layer,
                    },
                );
            }
        }
        Ok(())
    }

    /// Applies the next layer (its diff id `diff_id`) and writes its ACI
    /// into a staged import in `store` (committing it is the caller's).
    pub fn add_layer<'s>(
        &mut self,
        mut tar: LayerTar,
        diff_id: Sha256Digest,
        store: &'s Store,
    ) -> Result<ConvertedLayer<'s>, OciError> {
        let layer = self.tars.len();
        let entries = std::mem::take(&mut tar.entries);
        if let Some(root) = tar.root.take() {
            self.root = Some(root);
        }
        self.tars.push(tar);
        let mut pass = Pass {
            layer,
            ..Pass::default()
        };
        for entry in entries {
            self.apply(&mut pass, entry)?;
        }
        // A group that gained or lost a member here is re-emitted whole in
        // this layer, so its links point into this ACI (module docs).
        for &inode in &pass.touched {
            for member in &self.inodes[inode].members {
                if let Some(node) = self.nodes.get_mut(member) {
                    node.layer = layer;
                }
            }
        }
        let chain_id = Sha256Digest::chain(self.chain, diff_id);
        let name = layer_name(&chain_id);
        let manifest = self.layer_manifest(&pass, &name, diff_id, chain_id)?;
        let mut staging = store.stage(&self.image)?;
        let written = self.write_aci(layer, &manifest, &mut staging);
        let staged = staged_or_why(staging, written, |source| {
            self.write_err(layer, &store.tmp_dir(), source)
        })?;
        let id = *staged.id();
        self.chain = Some(chain_id);
        self.parent = Some((id, name.clone()));
        Ok(ConvertedLayer {
            staged,
            id,
            name,
            chain_id,
            deletes: pass.hid,
        })
    }

    fn write_err(&self, layer: usize, scratch: &Path, source: io::Error) -> OciError {
        OciError::Write {
            image: self.image.clone(),
            layer: layer + 1,
            dir: scratch.to_owned(),
            source,
        }
    }

    fn value_err(&self, what: &str, source: crate::manifest::ValueError) -> OciError {
        OciError::Value {
            image: self.image.clone(),
            what: what.to_owned(),
            source,
        }
    }

    fn layer_manifest(
        &self,
        pass: &Pass,
        name: &AcIdentifier,
        diff_id: Sha256Digest,
        chain_id: Sha256Digest,
    ) -> Result<ImageManifest, OciError> {
        let mut manifest = ImageManifest::new(name.clone());
        let annotation = |key: &str, value: String| -> Result<Annotation, OciError> {
            Ok(Annotation {
                name: key
                    .parse()
                    .map_err(|e| self.value_err("layer annotations", e))?,
                value,
            })
        };
        manifest.annotations = Annotations::new(vec![
            annotation(DIFF_ID_ANNOTATION, diff_id.to_string())?,
            annotation(CHAIN_ID_ANNOTATION, chain_id.to_string())?,
        ])
        .map_err(|e| self.value_err("layer annotations", e))?;
        if let Some((id, parent_name)) = &self.parent {
            let image_id: ImageIdRef = id
                .to_string()
                .parse()
                .map_err(|e| self.value_err("layer dependency", e))?;
            manifest.dependencies.push(Dependency {
                image_name: parent_name.clone(),
                image_id: Some(image_id),
                labels: Labels::default(),
                size: None,
            });
        }
        if pass.hid {
            let mut whitelist = Vec::with_capacity(self.nodes.len() + 1);
            whitelist.push("/".to_owned());
            for path in self.nodes.keys() {
                match std::str::from_utf8(path) {
                    Ok(text) => whitelist.push(format!("/{text}")),
                    Err(_) => {
                        return Err(self.bad(
                            pass.layer,
                            path,
                            "a layer that deletes files needs a pathWhitelist, which cannot name a path that is not UTF-8",
                        ))
                    }
                }
            }
            if whitelist.len() > self.limits.max_whitelist_len {
                return Err(OciError::LimitExceeded {
                    image: self.image.clone(),
                    what: format!("layer {}", pass.layer + 1),
                    limit: LimitExceeded::new(LimitKind::WhitelistLength),
                    value: whitelist.len() as u64,
                    max: self.limits.max_whitelist_len as u64,
                });
            }
            manifest.path_whitelist = whitelist;
        }
        Ok(manifest)
    }

    /// The paths layer `layer`'s ACI holds: those it provides and their
    /// ancestors, sorted (so parents come first).
    fn output_paths(&self, layer: usize) -> BTreeSet<&[u8]> {
        let mut out: BTreeSet<&[u8]> = BTreeSet::new();
        for (path, node) in &self.nodes {
            if node.layer == layer {
                for prefix in with_ancestors(path) {
                    out.insert(prefix);
                }
            }
        }
        out
    }

    fn write_aci(
        &self,
        layer: usize,
        manifest: &ImageManifest,
        staging: &mut Staging<'_>,
    ) -> io::Result<()> {
        // The staging hashes the bytes to the id: the sink need not.
        let mut sink = TarSink::with_hasher(BufWriter::with_capacity(1 << 20, staging), NoHash);
        let mut header = Vec::with_capacity(2048);
        let header_err =
            |e: crate::pack::HeaderError| io::Error::new(io::ErrorKind::InvalidData, e);
        let json = manifest.to_json();
        let mut put = |sink: &mut TarSink<_, NoHash>, spec: &HeaderSpec<'_>| -> io::Result<()> {
            header.clear();
            encode_header(spec, &mut header).map_err(header_err)?;
            sink.write_all(&header)
        };
        put(
            &mut sink,
            &HeaderSpec::plain_file(b"manifest", json.len() as u64),
        )?;
        sink.write_all(json.as_bytes())?;
        sink.pad()?;
        let root = root_spec(self.root.as_ref());
        put(&mut sink, &root.spec())?;

        let mut first_member: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut buf = vec![0u8; 1 << 20];
        for path in self.output_paths(layer) {
            let Some(node) = self.nodes.get(path) else {
                continue;
            };
            let full = join(b"rootfs", path);
            if let Some(dir) = &node.dir {
                let mut xattrs = dir.xattrs.clone();
                xattrs.sort();
                put(
                    &mut sink,
                    &HeaderSpec {
                        path: &full,
                        typeflag: TYPE_DIR,
                        mode: dir.mode,
                        uid: dir.uid,
                        gid: dir.gid,
                        size: 0,
                        mtime: dir.mtime,
                        link: None,
                        dev_major: 0,
                        dev_minor: 0,
                        xattrs: &xattrs,
                    },
                )?;
                continue;
            }
            let Some(inode) = node.inode else { continue };
            let ino = &self.inodes[inode];
            let meta = &ino.meta;
            let mut xattrs = meta.xattrs.clone();
            xattrs.sort();
            let mut spec = HeaderSpec {
                path: &full,
                typeflag: TYPE_REGULAR,
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                size: 0,
                mtime: meta.mtime,
                link: None,
                dev_major: 0,
                dev_minor: 0,
                xattrs: &xattrs,
            };
            if let Some(first) = first_member.get(&inode).cloned() {
                let link = HeaderSpec {
                    typeflag: TYPE_HARDLINK,
                    link: Some(&first),
                    ..spec
                };
                put(&mut sink, &link)?;
                continue;
            }
            first_member.insert(inode, full.clone());
            match meta.kind {
                EntryKind::Regular => {
                    spec.size = meta.size;
                    put(&mut sink, &spec)?;
                    let source = self.tars[ino.tar].file.as_file();
                    let mut offset = meta.data_offset;
                    let mut left = meta.size;
                    while left > 0 {
                        let want = left.min(buf.len() as u64) as usize;
                        source.read_exact_at(&mut buf[..want], offset)?;
                        sink.write_all(&buf[..want])?;
                        offset += want as u64;
                        left -= want as u64;
                    }
                    sink.pad()?;
                }
                EntryKind::Symlink => {
                    spec.typeflag = TYPE_SYMLINK;
                    spec.link = meta.link_target.as_deref();
                    put(&mut sink, &spec)?;
                }
                EntryKind::CharDevice | EntryKind::BlockDevice => {
                    spec.typeflag = if meta.kind == EntryKind::CharDevice {
                        TYPE_CHAR
                    } else {
                        TYPE_BLOCK
                    };
                    spec.dev_major = meta.dev_major.into();
                    spec.dev_minor = meta.dev_minor.into();
                    put(&mut sink, &spec)?;
                }
                EntryKind::Fifo => {
                    spec.typeflag = TYPE_FIFO;
                    put(&mut sink, &spec)?;
                }
                // Inodes are made only from the kinds above.
                EntryKind::Directory | EntryKind::HardLink => {}
            }
        }
        let (mut writer, (), _len) = sink.finish()?;
        writer.flush()
    }

    /// The content of the regular file at `path` (resolved through
    /// symlinks) in the tree as it stands, if it exists and is small.
    pub fn read_file(&self, path: &[u8]) -> Option<Vec<u8>> {
        let resolved = self.resolve(0, path).ok()?;
        let node = self.nodes.get(&resolved)?;
        let ino = &self.inodes[node.inode?];
        if ino.meta.kind != EntryKind::Regular || ino.meta.size > MAX_READ_FILE {
            return None;
        }
        let mut data = vec![0u8; ino.meta.size as usize];
        self.tars[ino.tar]
            .file
            .as_file()
            .read_exact_at(&mut data, ino.meta.data_offset)
            .ok()?;
        Some(data)
    }

    /// The root directory's attributes (the last `./` entry), if any layer
    /// had one.
    pub fn root(&self) -> Option<&Entry> {
        self.root.as_ref()
    }

    /// The top layer's ACI id and name, once a layer was added.
    pub fn top(&self) -> Option<&(ImageId, AcIdentifier)> {
        self.parent.as_ref()
    }
}

/// Resolves `path` (relative to the root) through symlinks, every
/// component followed, confined to the root (`..` stops there), as
/// umoci's SecureJoin does. `symlink` gives the target of the symlink at a
/// resolved path, or `None` if that path is not a symlink. `None` past
/// [`MAX_SYMLINK_HOPS`]. Shared so that a tree being converted and a chain
/// already in the store resolve paths (`/etc/passwd`) identically.
pub fn resolve_path(path: &[u8], symlink: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut pending: VecDeque<Vec<u8>> = path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(component) = pending.pop_front() {
        match component.as_slice() {
            b"" | b"." => continue,
            b".." => {
                current.pop();
                continue;
            }
            _ => {}
        }
        current.push(component);
        let here = current.join(&b'/');
        let Some(target) = symlink(&here) else {
            continue;
        };
        hops += 1;
        if hops > MAX_SYMLINK_HOPS {
            return None;
        }
        current.pop();
        if target.starts_with(b"/") {
            current.clear();
        }
        for (i, part) in target.split(|&b| b == b'/').enumerate() {
            pending.insert(i, part.to_vec());
        }
    }
    Some(current.join(&b'/'))
}

/// An ACI of just `manifest` and an empty `rootfs` (the app image of a
/// pulled chain), written into a staged import in `store`.
pub fn write_manifest_aci<'s>(
    image: &str,
    manifest: &ImageManifest,
    root: Option<&Entry>,
    store: &'s Store,
) -> Result<Staged<'s>, OciError> {
    let json = manifest.to_json();
    let write = |staging: &mut Staging<'_>| -> io::Result<()> {
        let mut sink = TarSink::with_hasher(BufWriter::new(staging), NoHash);
        let mut header = Vec::with_capacity(1024);
        let header_err =
            |e: crate::pack::HeaderError| io::Error::new(io::ErrorKind::InvalidData, e);
        let manifest_spec = HeaderSpec::plain_file(b"manifest", json.len() as u64);
        encode_header(&manifest_spec, &mut header).map_err(header_err)?;
        sink.write_all(&header)?;
        sink.write_all(json.as_bytes())?;
        sink.pad()?;
        header.clear();
        encode_header(&root_spec(root).spec(), &mut header).map_err(header_err)?;
        sink.write_all(&header)?;
        let (mut writer, (), _) = sink.finish()?;
        writer.flush()
    };
    let mut staging = store.stage(image)?;
    let written = write(&mut staging);
    staged_or_why(staging, written, |source| OciError::Write {
        image: image.to_owned(),
        layer: 0,
        dir: store.tmp_dir(),
        source,
    })
}

/// The staged image once its bytes are written, or why not: when a write
/// failed because the staging refused the bytes, its own error (what the
/// store's import says of the same bytes), else `write_err` of the cause.
fn staged_or_why<'s>(
    staging: Staging<'s>,
    written: io::Result<()>,
    write_err: impl FnOnce(io::Error) -> OciError,
) -> Result<Staged<'s>, OciError> {
    match written {
        Ok(()) => Ok(staging.finish()?),
        Err(source) => Err(match staging.into_error() {
            Some(why) => why.into(),
            None => write_err(source),
        }),
    }
}

/// The `rootfs` entry's attributes: `root`'s, or mode 0755, root, mtime 0.
struct RootSpec {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timestamp,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn root_spec(root: Option<&Entry>) -> RootSpec {
    match root {
        Some(e) => {
            let mut xattrs = e.xattrs.clone();
            xattrs.sort();
            RootSpec {
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime: e.mtime,
                xattrs,
            }
        }
        None => RootSpec {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            xattrs: Vec::new(),
        },
    }
}

impl RootSpec {
    fn spec(&self) -> HeaderSpec<'_> {
        HeaderSpec {
            path: b"rootfs",
            typeflag: TYPE_DIR,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: 0,
            mtime: self.mtime,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &self.xattrs,
        }
    }
}
