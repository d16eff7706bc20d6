//! `pull`: an OCI or Docker image into the store as a chain of ACIs (one
//! per layer, plus the app image on top), DESIGN §11.
//!
//! Every layer is read, checked (digest, size, diff id) and converted
//! into a staged import in the store's `tmp/` (written, hashed and checked
//! once: `Store::stage`) before anything is stored; only then are the
//! ACIs committed, bottom first. A failure before that drops the stagings
//! (nothing stored, no temp left); a commit that fails removes what this
//! pull committed, so a failed pull leaves the store as it was.
//! A chain whose top layer is already stored (found by its name, which
//! holds the chain id) is not read again, so a second pull of the same
//! image reads no layer and writes nothing.
//!
//! An ACI artifact (`push --format aci`) is not converted: its ACIs are
//! stored as they are, each checked against the id it announces
//! (`pull_artifact`). [`stored_or_pull`] is Acidofile `FROM`'s way in.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use acido_plumbing::archive::detect;
use acido_plumbing::compression::Compression;
use acido_plumbing::entry::{Entry, EntryKind};
use acido_plumbing::http::{Client, HttpConfig};
use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::AcIdentifier;
use acido_plumbing::manifest::ImageManifest as AciManifest;
use acido_plumbing::oci::artifact::AciArtifact;
use acido_plumbing::oci::config::{
    ac_identifier, app_manifest, appc_platform, AppSource, MANIFEST_DIGEST_ANNOTATION,
};
use acido_plumbing::oci::convert::{
    layer_name, resolve_path, unpack_layer, write_manifest_aci, Converter, MAX_READ_FILE,
};
use acido_plumbing::oci::digest::Sha256Digest;
use acido_plumbing::oci::reference::Reference;
use acido_plumbing::oci::registry::{open_remote, DockerReference, RegistryAuth};
use acido_plumbing::oci::source::{self, Opened, Platform};
use acido_plumbing::oci::OciError;
use acido_plumbing::render::{self, DependencyList, FileMap, RenderError, Supplier};
use acido_plumbing::store::{Staged, Store, StoreError};

use crate::progress::Progress;

/// Why a pull failed. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The source could not be read, or holds something acido refuses.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The store could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored chain could not be read back (its `/etc/passwd`).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The pull was interrupted.
    #[error("{image}: interrupted")]
    Interrupted {
        /// The source.
        image: String,
    },
    /// `--pull=never` and no stored image stands for the reference.
    #[error("{image}: not in the store, and the pull policy is never (acido pull it first)")]
    NotStored {
        /// The source.
        image: String,
    },
}

/// When Acidofile `FROM` pulls a registry image, as podman's `--pull`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only when no stored image stands for the reference.
    #[default]
    Missing,
    /// Pull every time (a pull of a stored image stores nothing).
    Always,
    /// Never contact a registry: the stored image or an error.
    Never,
}

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index; the host's when `None`.
    pub platform: Option<Platform>,
    /// Registry sources: allow plain HTTP (`--tls-verify=false`).
    pub allow_http: bool,
    /// Registry sources: PEM files of trusted CAs (empty: the built-in
    /// roots).
    pub ca_files: Vec<std::path::PathBuf>,
    /// Registry sources: `user` and `password`.
    pub credentials: Option<(String, String)>,
    /// Registry credential files to search when `credentials` is `None`,
    /// in order (`--authfile`, auth.json, docker's config.json).
    pub auth_files: Vec<acido_plumbing::oci::authfile::AuthFileCandidate>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The app image (the top of the chain).
    pub top: ImageId,
    /// Its name.
    pub name: AcIdentifier,
    /// The layer ACIs, base first.
    pub layers: Vec<ImageId>,
    /// How many images were newly stored (0 when all were there).
    pub newly_stored: usize,
}

/// Pulls `source` (`oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]`) into
/// `store`; see the module docs.
pub fn pull(
    store: &Store,
    source: &str,
    options: &PullOptions,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<PullReport, PullError> {
    let reference = Reference::parse(source)?;
    let image = reference.to_string();
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let limits = store.limits().clone();
    let src = match &reference {
        Reference::Docker(docker) => {
            let mut config = HttpConfig::new(&limits);
            config.allow_http = options.allow_http;
            config.ca_roots.files = options.ca_files.clone();
            let client = Client::new(config).map_err(|e| OciError::Invalid {
                image: image.clone(),
                what: "registry".to_owned(),
                problem: e.to_string(),
            })?;
            let auth =
                RegistryAuth::resolve(options.credentials.clone(), &options.auth_files, docker)?;
            open_remote(&image, docker, client, auth, &platform, &limits)?
        }
        _ => source::open(&reference, &platform, &limits)?,
    };
    let src = match src {
        Opened::Image(src) => src,
        Opened::Artifact(artifact) => return pull_artifact(store, &artifact, progress, interrupt),
    };
    let stopped = || PullError::Interrupted {
        image: image.clone(),
    };

    let mut chain = None;
    let mut chain_ids = Vec::with_capacity(src.layers.len());
    for layer in &src.layers {
        let id = Sha256Digest::chain(chain, layer.diff_id);
        chain_ids.push(id);
        chain = Some(id);
    }
    if src.layers.is_empty() {
        return Err(OciError::Invalid {
            image: image.clone(),
            what: "manifest".to_owned(),
            problem: "the image has no layers".to_owned(),
        }
        .into());
    }

    store.ensure_layout()?;
    let scratch = store.tmp_dir();
    // The ACIs to commit, bottom first, and the ids of the layers.
    let mut pending: Vec<Staged<'_>> = Vec::new();
    let mut layer_ids = Vec::with_capacity(src.layers.len());
    let top_name = layer_name(chain_ids.last().expect("checked non-empty"));
    let (top, passwd, group, root) = match stored_layer(store, &top_name)? {
        Some(top_id) => {
            progress.note(&format!("{image}: layers already stored"));
            // One listing and one map serve every read below: each is a
            // walk of the whole chain.
            let list = render::dependency_list(store, top_id)?;
            let map = render::file_map(&list)?;
            let passwd = read_stored_file(&list, &map, b"etc/passwd");
            let group = read_stored_file(&list, &map, b"etc/group");
            layer_ids = stored_chain(&list, src.layers.len());
            // Every layer ACI's rootfs carries the root as it stands; the
            // list's first element is the top layer.
            let root = list.images.first().and_then(|top| {
                top.image
                    .image
                    .entries()
                    .iter()
                    .find(|e| e.path == b"rootfs")
                    .cloned()
            });
            ((top_id, top_name), passwd, group, root)
        }
        None => {
            let mut converter = Converter::new(image.clone(), limits.clone());
            let count = src.layers.len();
            for (index, layer) in src.layers.iter().enumerate() {
                if interrupt.load(Ordering::SeqCst) {
                    return Err(stopped());
                }
                progress.begin(&format!("layer {}/{count}", index + 1), layer.size);
                let reader = src.open_layer(index)?;
                let tar = unpack_layer(
                    &image,
                    index + 1,
                    reader,
                    layer.compression,
                    layer.diff_id,
                    &limits,
                    &scratch,
                    Some(interrupt),
                    &mut |n| progress.advance(n),
                );
                progress.end();
                let converted = converter.add_layer(tar?, layer.diff_id, store)?;
                layer_ids.push(converted.id);
                pending.push(converted.staged);
            }
            let passwd = converter.read_file(b"etc/passwd");
            let group = converter.read_file(b"etc/group");
            let top = converter
                .top()
                .cloned()
                .expect("a chain with layers has a top");
            let root = converter.root().cloned();
            (top, passwd, group, root)
        }
    };

    let (name, version) = &src.name_hint;
    let manifest = app_manifest(
        &AppSource {
            image: &image,
            name,
            version: version.as_deref(),
            config: &src.config,
            config_digest: src.config_digest,
            manifest_digest: src.manifest_digest,
            passwd: passwd.as_deref(),
            group: group.as_deref(),
        },
        &top,
    )?;
    let app = write_manifest_aci(&image, &manifest, root.as_ref(), store)?;
    let app_id = *app.id();
    pending.push(app);

    if interrupt.load(Ordering::SeqCst) {
        return Err(stopped());
    }
    let stored = commit_all(store, pending)?;
    Ok(PullReport {
        top: app_id,
        name: manifest.name,
        layers: layer_ids,
        newly_stored: stored.len(),
    })
}

/// Whether `text` names an image by a transport (`docker://`, `oci:`,
/// `docker-archive:`) rather than as a stored image: what Acidofile
/// `FROM` pulls.
pub fn is_transport_reference(text: &str) -> bool {
    ["docker://", "oci:", "docker-archive:"]
        .iter()
        .any(|t| text.starts_with(t))
}

/// The image `source` names, as Acidofile `FROM` wants it, by podman's
/// `--pull` rules. A `docker://` reference is looked up in the store
/// first (unless `policy` is [`PullPolicy::Always`]), without contacting
/// the registry, as the app image a pull of it stores: its name from
/// registry and repository, its `os`/`arch` labels the platform's, and
/// its `version` label the tag, or, by digest, its manifest digest
/// annotation the digest; the most recently imported wins. Nothing found
/// is pulled with `options` ([`PullPolicy::Never`]: an error). A local
/// source (`oci:`, `docker-archive:`) is always read, so a moved tag is
/// followed; a second pull of the same image stores nothing.
pub fn stored_or_pull(
    store: &Store,
    source: &str,
    options: &PullOptions,
    policy: PullPolicy,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<ImageId, PullError> {
    if let Reference::Docker(docker) = Reference::parse(source)? {
        if policy != PullPolicy::Always {
            if let Some(id) = stored_app(store, &docker, options)? {
                return Ok(id);
            }
            if policy == PullPolicy::Never {
                return Err(PullError::NotStored {
                    image: source.to_owned(),
                });
            }
        }
    }
    Ok(pull(store, source, options, progress, interrupt)?.top)
}

/// The stored app image a pull of `docker` gives (see
/// [`stored_or_pull`]).
fn stored_app(
    store: &Store,
    docker: &DockerReference,
    options: &PullOptions,
) -> Result<Option<ImageId>, PullError> {
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let name = ac_identifier(&docker.name_hint());
    let (os, arch) = appc_platform(
        &platform.os,
        &platform.architecture,
        platform.variant.as_deref(),
    )
    .unzip();
    let mut candidates: Vec<_> = store
        .records()?
        .into_iter()
        .filter(|r| {
            r.name == name.as_str()
                && r.label("os") == os
                && r.label("arch") == arch
                && store.contains(&r.id)
        })
        .collect();
    candidates.sort_by_key(|r| std::cmp::Reverse(r.import_time_ns));
    for record in candidates {
        let matches = match (&docker.tag, &docker.digest) {
            (_, Some(digest)) => {
                let opened = store.open(&record.id)?;
                AciManifest::from_slice(opened.manifest_bytes())
                    .ok()
                    .and_then(|m| {
                        m.annotations
                            .get(MANIFEST_DIGEST_ANNOTATION)
                            .map(|a| a == digest.to_string())
                    })
                    .unwrap_or(false)
            }
            (Some(tag), None) => record.label("version") == Some(tag.as_str()),
            (None, None) => false,
        };
        if matches {
            return Ok(Some(record.id));
        }
    }
    Ok(None)
}

/// Pulls an ACI artifact (`push --format aci`): every member not yet
/// stored is streamed into a temp in the store's `tmp/` (its sha256 and
/// size checked by the reader, its SHA-512 compared with the id the
/// artifact announces), then all are imported bottom first with the
/// store's normal import, and each imported id must be the announced one.
/// Any failure takes back what this pull stored.
fn pull_artifact(
    store: &Store,
    artifact: &AciArtifact,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<PullReport, PullError> {
    let image = artifact.image.as_str();
    let stopped = || PullError::Interrupted {
        image: image.to_owned(),
    };
    let member_err = |n: usize, problem: String| OciError::Invalid {
        image: image.to_owned(),
        what: format!("member {}", n + 1),
        problem,
    };
    store.ensure_layout()?;
    let count = artifact.members.len();
    // Each member missing from the store is staged (hashed, parsed and
    // checked as it arrives, written once); nothing is stored before
    // every one of them checked out.
    let mut pending: Vec<Staged<'_>> = Vec::new();
    for (n, member) in artifact.members.iter().enumerate() {
        if store.contains(&member.id) {
            continue;
        }
        if interrupt.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        let mut staging = store.stage(&format!("{image} member {}", n + 1))?;
        progress.begin(&format!("ACI {}/{count}", n + 1), Some(member.size));
        let copied = copy_member(artifact, n, &mut staging, interrupt, &*progress);
        progress.end();
        match copied {
            Ok(()) => {}
            Err(CopyFailure::Source(e)) => return Err(e.into()),
            Err(CopyFailure::Interrupted) => return Err(stopped()),
            Err(CopyFailure::Compressed(compression)) => {
                return Err(member_err(
                    n,
                    format!(
                        "it is {compression}-compressed; an ACI artifact holds its ACIs \
                         uncompressed"
                    ),
                )
                .into())
            }
            Err(CopyFailure::Write(source)) => {
                return Err(match staging.into_error() {
                    Some(refused) => refused.into(),
                    None => OciError::Invalid {
                        image: image.to_owned(),
                        what: format!("member {}", n + 1),
                        problem: source.to_string(),
                    }
                    .into(),
                })
            }
        }
        let staged = staging.finish()?;
        if *staged.id() != member.id {
            return Err(member_err(
                n,
                format!(
                    "the artifact announces {} but the bytes hash to {}",
                    member.id,
                    staged.id()
                ),
            )
            .into());
        }
        pending.push(staged);
    }
    if interrupt.load(Ordering::SeqCst) {
        return Err(stopped());
    }
    let stored = commit_all(store, pending)?;
    // The top member is stored now (committed or found): its record
    // names it.
    let name = store
        .record(&artifact.top)
        .map_err(PullError::from)
        .and_then(|r| {
            r.name.parse().map_err(|_| {
                member_err(
                    count - 1,
                    format!("the stored name {:?} is not an AC identifier", r.name),
                )
                .into()
            })
        });
    let name = match name {
        Ok(name) => name,
        Err(e) => {
            take_back(store, &stored);
            return Err(e);
        }
    };
    Ok(PullReport {
        top: artifact.top,
        name,
        layers: artifact.members.iter().map(|m| m.id).collect(),
        newly_stored: stored.len(),
    })
}

/// Commits `pending` in order (bottom first), skipping what is stored
/// already; returns the ids this call stored. If a commit fails, what it
/// stored is taken back, so the store is left as it was.
fn commit_all(store: &Store, pending: Vec<Staged<'_>>) -> Result<Vec<ImageId>, PullError> {
    let mut stored: Vec<ImageId> = Vec::new();
    for staged in pending {
        if store.contains(staged.id()) {
            continue;
        }
        match staged.commit() {
            Ok(outcome) if outcome.newly_stored => stored.push(outcome.record.id),
            Ok(_) => {}
            Err(e) => {
                take_back(store, &stored);
                return Err(e.into());
            }
        }
    }
    Ok(stored)
}

/// Removes the images a failing pull stored, top first.
fn take_back(store: &Store, stored: &[ImageId]) {
    for id in stored.iter().rev() {
        let _ = store.remove(id);
    }
}

enum CopyFailure {
    Source(OciError),
    /// The member starts with a compression's magic number.
    Compressed(Compression),
    Write(std::io::Error),
    Interrupted,
}

/// Streams member `n` of `artifact` into `out` (a staging, which hashes
/// and checks it). The member's reader fails on a size or sha256
/// mismatch.
fn copy_member(
    artifact: &AciArtifact,
    n: usize,
    out: &mut dyn Write,
    interrupt: &AtomicBool,
    progress: &dyn Progress,
) -> Result<(), CopyFailure> {
    let mut reader = artifact.open_member(n).map_err(CopyFailure::Source)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut first = true;
    loop {
        if interrupt.load(Ordering::SeqCst) {
            return Err(CopyFailure::Interrupted);
        }
        let got = reader.read(&mut buf).map_err(|e| {
            CopyFailure::Source(OciError::Invalid {
                image: artifact.image.clone(),
                what: format!("member {}", n + 1),
                problem: e.to_string(),
            })
        })?;
        if got == 0 {
            break;
        }
        if std::mem::take(&mut first) {
            // A compressed ACI would only fail as a tar: say what it is.
            if let Ok(compression) = detect(&buf[..got]) {
                if compression != Compression::None {
                    return Err(CopyFailure::Compressed(compression));
                }
            }
        }
        out.write_all(&buf[..got]).map_err(CopyFailure::Write)?;
        progress.advance(got as u64);
    }
    Ok(())
}

/// The stored layer ACI called `name`, if its blob is there.
fn stored_layer(store: &Store, name: &AcIdentifier) -> Result<Option<ImageId>, PullError> {
    Ok(store
        .records()?
        .into_iter()
        .filter(|r| r.name == name.as_str() && store.contains(&r.id))
        .map(|r| r.id)
        .next())
}

/// The ids of a stored chain, base first, from its dependency list.
fn stored_chain(list: &DependencyList, count: usize) -> Vec<ImageId> {
    let mut ids: Vec<ImageId> = list.images.iter().map(|l| l.id).collect();
    ids.truncate(count);
    ids.reverse();
    ids
}

/// The entry the rendering of `list` has at the archive path `path`.
fn stored_entry<'a>(list: &'a DependencyList, map: &FileMap, path: &[u8]) -> Option<&'a Entry> {
    let Supplier::Entry { element, entry, .. } = map.paths.get(path)? else {
        return None;
    };
    list.images.get(*element)?.image.image.entries().get(*entry)
}

/// The content of `path` (relative to the rootfs) in the rendering of the
/// stored chain, if it is a regular file there, read by the rules of
/// [`Converter::read_file`] (symlinks followed with the same bound, the
/// same size cap) so that a pull from stored layers builds the same app
/// image as the first pull did.
fn read_stored_file(list: &DependencyList, map: &FileMap, path: &[u8]) -> Option<Vec<u8>> {
    let archive = |p: &[u8]| [b"rootfs/".as_slice(), p].concat();
    let resolved = resolve_path(path, |here| {
        let entry = stored_entry(list, map, &archive(here))?;
        (entry.kind == EntryKind::Symlink).then(|| entry.link_target.clone().unwrap_or_default())
    })?;
    let Some(Supplier::Entry { element, entry, .. }) = map.paths.get(&archive(&resolved)) else {
        return None;
    };
    let image = &list.images.get(*element)?.image.image;
    let mut found = image.entries().get(*entry)?;
    if found.kind == EntryKind::HardLink {
        let target = found.link_target.clone().unwrap_or_default();
        found = image.entries().iter().find(|e| e.path == target)?;
    }
    if found.kind != EntryKind::Regular || found.size > MAX_READ_FILE {
        return None;
    }
    Some(image.data(found).to_vec())
}
