//! Reading an image out of an OCI image layout (oci-bridge §5) or a
//! `docker save` tarball (§6): the chosen manifest, the config and where
//! each layer's bytes are, every document checked against its digest and
//! bounded in size before it is parsed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use super::digest::{Sha256Digest, VerifyingReader};
use super::reference::Reference;
use super::OciError;
use crate::archive::tar::TarParser;
use crate::entry::{Entry, EntryKind};
use crate::limits::{LimitExceeded, LimitKind, Limits};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// How deep nested indexes are followed before giving up.
const MAX_INDEX_DEPTH: usize = 4;

/// The platform to pick from an index or manifest list, in the Go names
/// OCI uses (`linux`, `amd64`, `arm` + `v7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The operating system (`GOOS`).
    pub os: String,
    /// The architecture (`GOARCH`).
    pub architecture: String,
    /// The variant (`v7`, `v8`), when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program was built for.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }
}

/// How a layer's stored bytes are compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// Not told by the media type (a `docker save` tarball): sniffed.
    Sniff,
}

/// One layer of the chosen image.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// The layer's digest as stored, when the source names one.
    pub digest: Option<Sha256Digest>,
    /// Its size as stored, when the source gives one.
    pub size: Option<u64>,
    /// The sha256 of the uncompressed tar, from the config.
    pub diff_id: Sha256Digest,
    /// How the stored bytes are compressed.
    pub compression: LayerCompression,
    pub(super) location: Location,
}

#[derive(Debug, Clone)]
pub(super) enum Location {
    File(PathBuf),
    Member {
        file: PathBuf,
        offset: u64,
        len: u64,
    },
    Remote {
        remote: std::sync::Arc<super::registry::Remote>,
        url: crate::http::Url,
    },
}

/// An image read from a source: its config and its layers, base first.
#[derive(Debug)]
pub struct SourceImage {
    /// The reference it was read from, for messages.
    pub image: String,
    /// The chosen manifest's digest (none for a `docker save` tarball).
    pub manifest_digest: Option<Sha256Digest>,
    /// The manifest's annotations.
    pub annotations: HashMap<String, String>,
    /// The config's bytes, exactly as stored.
    pub config_bytes: Vec<u8>,
    /// The config's digest (the image id of Docker).
    pub config_digest: Sha256Digest,
    /// The parsed config.
    pub config: ImageConfiguration,
    /// The layers, base first, each with its diff id.
    pub layers: Vec<LayerBlob>,
    /// A name for the image from the source: the layout directory's or
    /// the repository's name, and the tag.
    pub name_hint: (String, Option<String>),
}

impl SourceImage {
    /// Opens layer `index` (0 = base) for reading, its size and digest
    /// checked as it streams when the source names them.
    pub fn open_layer(&self, index: usize) -> Result<Box<dyn Read + Send>, OciError> {
        let Some(layer) = self.layers.get(index) else {
            return Err(self.invalid("layers", format!("no layer {}", index + 1)));
        };
        if let Location::Remote { remote, url } = &layer.location {
            return super::registry::open_remote_layer(remote, url, layer)
                .map_err(|e| self.invalid(&format!("layer {}", index + 1), e.to_string()));
        }
        let reader: Box<dyn Read + Send> = match &layer.location {
            Location::File(path) => Box::new(io::BufReader::with_capacity(
                1 << 20,
                File::open(path).map_err(io_err(path))?,
            )),
            Location::Member { file, offset, len } => {
                let mut f = File::open(file).map_err(io_err(file))?;
                f.seek(SeekFrom::Start(*offset)).map_err(io_err(file))?;
                Box::new(io::BufReader::with_capacity(1 << 20, f.take(*len)))
            }
            Location::Remote { .. } => unreachable!("handled above"),
        };
        Ok(Box::new(VerifyingReader::new(
            reader,
            layer.digest,
            layer.size,
        )))
    }

    fn invalid(&self, what: &str, problem: String) -> OciError {
        OciError::Invalid {
            image: self.image.clone(),
            what: what.to_owned(),
            problem,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OciError + '_ {
    move |source| OciError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a reference names: an image, or an ACI artifact
/// ([`super::artifact`]).
#[derive(Debug)]
pub enum Opened {
    /// A runnable OCI or Docker image (boxed: it is much the larger).
    Image(Box<SourceImage>),
    /// ACIs carried as their exact bytes.
    Artifact(super::artifact::AciArtifact),
}

/// Reads the image `reference` names, choosing `platform` from an index.
pub fn open(
    reference: &Reference,
    platform: &Platform,
    limits: &Limits,
) -> Result<Opened, OciError> {
    match reference {
        Reference::Layout { dir, tag } => {
            open_layout(reference, dir, tag.as_deref(), platform, limits)
        }
        Reference::DockerArchive { file, repo_tag } => {
            open_docker_archive(reference, file, repo_tag.as_deref(), limits)
                .map(|image| Opened::Image(Box::new(image)))
        }
        Reference::Docker(_) => Err(OciError::BadReference {
            reference: reference.to_string(),
            problem: "a registry is read through oci::registry::open_remote".to_owned(),
        }),
    }
}

/// Context for the checks on one image's documents; the registry client
/// (`super::registry`) uses it too, so every source refuses a bad document
/// with the same words.
pub(super) struct Ctx<'a> {
    pub(super) image: String,
    pub(super) limits: &'a Limits,
}

impl Ctx<'_> {
    pub(super) fn invalid(&self, what: &str, problem: impl Into<String>) -> OciError {
        OciError::Invalid {
            image: self.image.clone(),
            what: what.to_owned(),
            problem: problem.into(),
        }
    }

    pub(super) fn json_limit(&self, what: &str, size: u64) -> Result<(), OciError> {
        let max = self.limits.max_oci_document_size;
        if size > max {
            return Err(OciError::LimitExceeded {
                image: self.image.clone(),
                what: what.to_owned(),
                limit: LimitExceeded::new(LimitKind::OciDocumentSize),
                value: size,
                max,
            });
        }
        Ok(())
    }

    pub(super) fn json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T, OciError> {
        serde_json::from_slice(bytes).map_err(|source| OciError::Json {
            image: self.image.clone(),
            what: what.to_owned(),
            source,
        })
    }

    /// Reads a small document of at most the JSON bound, checking the
    /// file's size before reading it.
    fn read_small(&self, what: &str, path: &Path) -> Result<Vec<u8>, OciError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        self.json_limit(what, len)?;
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(self.limits.max_oci_document_size + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(path))?;
        self.json_limit(what, bytes.len() as u64)?;
        Ok(bytes)
    }

    pub(super) fn check_layer_count(&self, count: usize) -> Result<(), OciError> {
        let max = self.limits.max_layer_count;
        if count > max {
            return Err(OciError::LimitExceeded {
                image: self.image.clone(),
                what: "manifest".to_owned(),
                limit: LimitExceeded::new(LimitKind::LayerCount),
                value: count as u64,
                max: max as u64,
            });
        }
        Ok(())
    }

    /// Checks a descriptor's digest against bytes already read, and its size.
    pub(super) fn check_bytes(
        &self,
        what: &str,
        d: &Descriptor,
        bytes: &[u8],
    ) -> Result<Sha256Digest, OciError> {
        let expected = self.digest_of(what, d)?;
        if bytes.len() as u64 != d.size() {
            return Err(OciError::SizeMismatch {
                image: self.image.clone(),
                what: what.to_owned(),
                expected: d.size(),
                found: bytes.len() as u64,
            });
        }
        let found = Sha256Digest::of(bytes);
        if found != expected {
            return Err(OciError::DigestMismatch {
                image: self.image.clone(),
                what: what.to_owned(),
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        Ok(expected)
    }

    pub(super) fn digest_of(&self, what: &str, d: &Descriptor) -> Result<Sha256Digest, OciError> {
        Sha256Digest::parse(d.digest().as_ref()).map_err(|p| self.invalid(what, p))
    }

    /// The config, parsed and checked: `rootfs.type` is `layers` and there
    /// is one diff id per layer.
    pub(super) fn config(
        &self,
        bytes: &[u8],
        layer_count: usize,
    ) -> Result<(ImageConfiguration, Vec<Sha256Digest>), OciError> {
        let config: ImageConfiguration = self.json("config", bytes)?;
        if config.rootfs().typ() != "layers" {
            return Err(self.invalid(
                "config",
                format!("rootfs type {:?} is not \"layers\"", config.rootfs().typ()),
            ));
        }
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Sha256Digest::parse(d).map_err(|p| self.invalid("config diff_ids", p)))
            .collect::<Result<Vec<_>, _>>()?;
        if diff_ids.len() != layer_count {
            return Err(self.invalid(
                "config",
                format!("{} diff ids for {} layers", diff_ids.len(), layer_count),
            ));
        }
        Ok((config, diff_ids))
    }
}

fn open_layout(
    reference: &Reference,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
    limits: &Limits,
) -> Result<Opened, OciError> {
    let ctx = Ctx {
        image: reference.to_string(),
        limits,
    };
    #[derive(Deserialize)]
    struct LayoutFile {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let layout: LayoutFile = ctx.json(
        "oci-layout",
        &ctx.read_small("oci-layout", &dir.join("oci-layout"))?,
    )?;
    if !layout.version.starts_with("1.") {
        return Err(ctx.invalid(
            "oci-layout",
            format!("unsupported image layout version {:?}", layout.version),
        ));
    }
    let index: ImageIndex = ctx.json(
        "index.json",
        &ctx.read_small("index.json", &dir.join("index.json"))?,
    )?;
    let entries = index.manifests();
    let chosen = match tag {
        Some(tag) => entries
            .iter()
            .rev()
            .find(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|name| name == tag)
            })
            .ok_or_else(|| ctx.invalid("index.json", format!("no image tagged {tag:?}")))?,
        None => match entries.as_slice() {
            [only] => only,
            [] => return Err(ctx.invalid("index.json", "the layout holds no image")),
            _ => {
                return Err(ctx.invalid(
                    "index.json",
                    format!(
                        "{} images and no tag given: name one as oci:DIR:TAG",
                        entries.len()
                    ),
                ))
            }
        },
    };
    let blob_path = |d: &Descriptor, what: &str| -> Result<PathBuf, OciError> {
        let digest = ctx.digest_of(what, d)?;
        Ok(dir.join("blobs").join("sha256").join(digest.hex()))
    };
    let read_doc = |d: &Descriptor, what: &str| -> Result<Vec<u8>, OciError> {
        ctx.json_limit(what, d.size())?;
        let bytes = ctx.read_small(what, &blob_path(d, what)?)?;
        ctx.check_bytes(what, d, &bytes)?;
        Ok(bytes)
    };

    // Follow indexes down to one image manifest.
    let mut current = chosen.clone();
    let mut depth = 0;
    let manifest_bytes = loop {
        let media = current.media_type().to_string();
        match media.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => break read_doc(&current, "manifest")?,
            OCI_INDEX | DOCKER_LIST => {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(ctx.invalid("index", "indexes nested too deeply"));
                }
                let bytes = read_doc(&current, "index")?;
                let nested: ImageIndex = ctx.json("index", &bytes)?;
                current = choose_platform(&ctx, nested.manifests(), platform)?.clone();
            }
            other => {
                return Err(ctx.invalid(
                    "index.json",
                    format!("entry of media type {other:?} is not an image manifest or index"),
                ))
            }
        }
    };
    let manifest_digest = ctx.digest_of("manifest", &current)?;
    let manifest: ImageManifest = ctx.json("manifest", &manifest_bytes)?;
    if manifest.schema_version() != 2 {
        return Err(ctx.invalid(
            "manifest",
            format!("schema version {} is not 2", manifest.schema_version()),
        ));
    }
    if let Some(media) = manifest.media_type() {
        let media = media.to_string();
        if media != current.media_type().to_string() {
            return Err(ctx.invalid(
                "manifest",
                format!(
                    "media type {media:?} differs from the descriptor's {:?}",
                    current.media_type().to_string()
                ),
            ));
        }
    }
    if super::artifact::is_aci_artifact(&manifest) {
        return super::artifact::artifact_of(&ctx, &manifest, manifest_digest, |digest| {
            Ok(Location::File(
                dir.join("blobs").join("sha256").join(digest.hex()),
            ))
        })
        .map(Opened::Artifact);
    }
    ctx.check_layer_count(manifest.layers().len())?;
    let config_bytes = read_doc(manifest.config(), "config")?;
    let config_digest = ctx.digest_of("config", manifest.config())?;
    let (config, diff_ids) = ctx.config(&config_bytes, manifest.layers().len())?;
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (n, (d, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        let what = format!("layer {}", n + 1);
        let compression = layer_compression(&ctx, &what, d.media_type().as_ref())?;
        if d.size() > limits.max_blob_size {
            return Err(OciError::LimitExceeded {
                image: ctx.image.clone(),
                what,
                limit: LimitExceeded::new(LimitKind::BlobSize),
                value: d.size(),
                max: limits.max_blob_size,
            });
        }
        layers.push(LayerBlob {
            digest: Some(ctx.digest_of(&what, d)?),
            size: Some(d.size()),
            diff_id,
            compression,
            location: Location::File(blob_path(d, &what)?),
        });
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "image".to_owned());
    Ok(Opened::Image(Box::new(SourceImage {
        image: ctx.image.clone(),
        manifest_digest: Some(manifest_digest),
        annotations: manifest.annotations().clone().unwrap_or_default(),
        config_bytes,
        config_digest,
        config,
        layers,
        name_hint: (name, tag.map(str::to_owned)),
    })))
}

/// The compression a layer media type names; zstd and unknown types are
/// refused (an ACI cannot carry zstd, aci-format §2).
pub(super) fn layer_compression(
    ctx: &Ctx<'_>,
    what: &str,
    media: &str,
) -> Result<LayerCompression, OciError> {
    match media {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar" => Ok(LayerCompression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(LayerCompression::Gzip),
        other => Err(ctx.invalid(
            what,
            format!("unsupported layer media type {other:?} (acido reads tar and tar+gzip layers)"),
        )),
    }
}

/// The index entry for `want` (oci-bridge §4): attestation entries are
/// skipped, the first exact os/architecture(/variant) match wins, and an
/// entry without a platform is taken only when nothing matches.
pub(super) fn choose_platform<'d>(
    ctx: &Ctx<'_>,
    entries: &'d [Descriptor],
    want: &Platform,
) -> Result<&'d Descriptor, OciError> {
    let mut fallback = None;
    for d in entries {
        let attestation = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get("vnd.docker.reference.type"))
            .is_some_and(|t| t == "attestation-manifest");
        if attestation {
            continue;
        }
        match d.platform() {
            None => {
                fallback.get_or_insert(d);
            }
            Some(p) => {
                let variant_ok = match &want.variant {
                    None => true,
                    Some(v) => p.variant().as_deref() == Some(v.as_str()),
                };
                if p.os().to_string() == want.os
                    && p.architecture().to_string() == want.architecture
                    && variant_ok
                {
                    return Ok(d);
                }
            }
        }
    }
    fallback.ok_or_else(|| {
        let offered: Vec<String> = entries
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| {
                let mut s = format!("{}/{}", p.os(), p.architecture());
                if let Some(v) = p.variant() {
                    s.push('/');
                    s.push_str(v);
                }
                s
            })
            .collect();
        ctx.invalid(
            "index",
            format!(
                "no image for {}/{}{} (offered: {})",
                want.os,
                want.architecture,
                want.variant
                    .as_deref()
                    .map(|v| format!("/{v}"))
                    .unwrap_or_default(),
                if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                }
            ),
        )
    })
}

/// One item of a `docker save` tarball's `manifest.json`.
#[derive(Debug, Deserialize)]
struct ArchiveItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn open_docker_archive(
    reference: &Reference,
    file: &Path,
    repo_tag: Option<&str>,
    limits: &Limits,
) -> Result<SourceImage, OciError> {
    let ctx = Ctx {
        image: reference.to_string(),
        limits,
    };
    // Index the tarball's members once; they are read by offset after.
    let mut input = File::open(file).map_err(io_err(file))?;
    let mut parser = TarParser::new(limits);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(io_err(file))?;
        if n == 0 {
            break;
        }
        parser.feed(&buf[..n]).map_err(|source| OciError::Tar {
            image: ctx.image.clone(),
            layer: 0,
            source,
        })?;
        if parser.is_done() {
            break;
        }
    }
    let parsed = parser.finish().map_err(|source| OciError::Tar {
        image: ctx.image.clone(),
        layer: 0,
        source,
    })?;
    let members: HashMap<Vec<u8>, Entry> = parsed
        .entries
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let member = |name: &str, what: &str| -> Result<&Entry, OciError> {
        let cleaned = crate::archive::clean_path(name.as_bytes());
        let mut entry = members
            .get(&cleaned)
            .ok_or_else(|| ctx.invalid(what, format!("{name:?} is not in the archive")))?;
        // containers/image writes `<id>/layer.tar` as a symlink to
        // `../<diffid>.tar`, and Docker's hard links point at earlier
        // copies: follow one level of either (oci-bridge §6).
        match entry.kind {
            EntryKind::Symlink | EntryKind::HardLink => {
                let target = entry.link_target.clone().unwrap_or_default();
                let resolved = if entry.kind == EntryKind::Symlink {
                    let parent = match cleaned.iter().rposition(|&b| b == b'/') {
                        Some(at) => cleaned[..=at].to_vec(),
                        None => Vec::new(),
                    };
                    let mut joined = parent;
                    joined.extend_from_slice(&target);
                    crate::archive::clean_path(&joined)
                } else {
                    target
                };
                entry = members.get(&resolved).ok_or_else(|| {
                    ctx.invalid(what, format!("{name:?} links to a missing member"))
                })?;
            }
            _ => {}
        }
        if entry.kind != EntryKind::Regular {
            return Err(ctx.invalid(what, format!("{name:?} is not a regular file")));
        }
        Ok(entry)
    };
    let read_member = |entry: &Entry, what: &str| -> Result<Vec<u8>, OciError> {
        ctx.json_limit(what, entry.size)?;
        let mut f = File::open(file).map_err(io_err(file))?;
        f.seek(SeekFrom::Start(entry.data_offset))
            .map_err(io_err(file))?;
        let mut bytes = Vec::with_capacity(entry.size as usize);
        f.take(entry.size)
            .read_to_end(&mut bytes)
            .map_err(io_err(file))?;
        if bytes.len() as u64 != entry.size {
            return Err(ctx.invalid(what, "the archive ends inside the member"));
        }
        Ok(bytes)
    };
    let items: Vec<ArchiveItem> = ctx.json(
        "manifest.json",
        &read_member(member("manifest.json", "manifest.json")?, "manifest.json")?,
    )?;
    let item = match repo_tag {
        Some(wanted) => items
            .iter()
            .find(|i| i.repo_tags.iter().flatten().any(|t| t == wanted))
            .ok_or_else(|| ctx.invalid("manifest.json", format!("no image tagged {wanted:?}")))?,
        None => match items.as_slice() {
            [only] => only,
            [] => return Err(ctx.invalid("manifest.json", "the archive holds no image")),
            _ => {
                return Err(ctx.invalid(
                    "manifest.json",
                    format!("{} images and none named: add :NAME:TAG", items.len()),
                ))
            }
        },
    };
    ctx.check_layer_count(item.layers.len())?;
    let config_bytes = read_member(member(&item.config, "config")?, "config")?;
    let config_digest = Sha256Digest::of(&config_bytes);
    // The config's name is its digest in every writer's layout
    // (`<hex>.json`, `blobs/sha256/<hex>`): check it when it says so.
    let stem = item
        .config
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".json");
    if stem.len() == 64
        && stem.bytes().all(|b| b.is_ascii_hexdigit())
        && stem != config_digest.hex()
    {
        return Err(OciError::DigestMismatch {
            image: ctx.image.clone(),
            what: "config".to_owned(),
            expected: format!("sha256:{stem}"),
            found: config_digest.to_string(),
        });
    }
    let (config, diff_ids) = ctx.config(&config_bytes, item.layers.len())?;
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (n, (name, diff_id)) in item.layers.iter().zip(diff_ids).enumerate() {
        let what = format!("layer {}", n + 1);
        let entry = member(name, &what)?;
        if entry.size > limits.max_blob_size {
            return Err(OciError::LimitExceeded {
                image: ctx.image.clone(),
                what,
                limit: LimitExceeded::new(LimitKind::BlobSize),
                value: entry.size,
                max: limits.max_blob_size,
            });
        }
        layers.push(LayerBlob {
            digest: None,
            size: Some(entry.size),
            diff_id,
            compression: LayerCompression::Sniff,
            location: Location::Member {
                file: file.to_owned(),
                offset: entry.data_offset,
                len: entry.size,
            },
        });
    }
    let (name, tag) = match item
        .repo_tags
        .iter()
        .flatten()
        .find(|t| repo_tag.is_none_or(|w| w == *t))
    {
        Some(repo_tag) => match repo_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name.to_owned(), Some(tag.to_owned())),
            _ => (repo_tag.clone(), None),
        },
        None => (
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".to_owned()),
            None,
        ),
    };
    Ok(SourceImage {
        image: ctx.image.clone(),
        manifest_digest: None,
        annotations: HashMap::new(),
        config_bytes,
        config_digest,
        config,
        layers,
        name_hint: (name, tag),
    })
}
