//! ACIs carried as an OCI artifact (`acido push --format aci`, DESIGN §11,
//! oci-bridge §8): an image and every image of its dependency list as their
//! exact stored bytes, so that a pull gives back the very same image ids.
//!
//! The artifact is an OCI image manifest (image-spec 1.1 "artifact"
//! guidance):
//!
//! - `artifactType` [`ARTIFACT_TYPE`];
//! - `config`: the empty descriptor (`application/vnd.oci.empty.v1+json`,
//!   the 2-byte `{}`), which registries still want as a blob;
//! - `layers`: one per image, bottom of the dependency list first, the top
//!   image last, each of media type [`ACI_LAYER`]: the uncompressed ACI tar
//!   exactly as the store keeps it, so its SHA-512 is the image id; the
//!   annotations [`ID_ANNOTATION`] (that id), [`NAME_ANNOTATION`] (the
//!   image name) and `org.opencontainers.image.title`;
//! - the manifest annotation [`TOP_ANNOTATION`]: the top image's id.
//!
//! Reading one back (`artifact_of`, for `source` and `registry`) checks
//! the shape and the bounds here; the bytes are checked (sha256, size,
//! then SHA-512 against the announced id) by whoever streams them.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;
use serde_json::json;

use super::digest::{Sha256Digest, Sha256Hasher, VerifyingReader};
use super::push::{add_to_index, layout_temp, open_layout, put_blob};
use super::reference::check_tag;
use super::source::{Ctx, Location};
use super::OciError;
use crate::id::ImageId;
use crate::limits::{LimitExceeded, LimitKind};

/// The `artifactType` of an acido ACI artifact.
pub const ARTIFACT_TYPE: &str = "application/vnd.acido.aci.v1";
/// The media type of one member: an uncompressed ACI tar.
pub const ACI_LAYER: &str = "application/vnd.acido.aci.v1.tar";
/// The layer annotation holding the member's image id (`sha512-…`).
pub const ID_ANNOTATION: &str = "io.acido.aci.id";
/// The layer annotation holding the member's image name.
pub const NAME_ANNOTATION: &str = "io.acido.aci.name";
/// The manifest annotation holding the top image's id.
pub const TOP_ANNOTATION: &str = "io.acido.aci.top";
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_MEDIA: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_BYTES: &[u8] = b"{}";

/// One image to put into an artifact.
#[derive(Debug, Clone)]
pub struct ArtifactInput {
    /// Its id.
    pub id: ImageId,
    /// Its name.
    pub name: String,
    /// Its stored, uncompressed ACI bytes.
    pub blob: PathBuf,
}

/// What [`push_artifact_to_layout`] wrote.
#[derive(Debug, Clone)]
pub struct ArtifactReport {
    /// The manifest's digest.
    pub manifest_digest: Sha256Digest,
    /// The members' blob digests, in manifest order.
    pub members: Vec<Sha256Digest>,
}

/// Writes `images` (bottom first, the top image last) as an ACI artifact
/// into the OCI image layout `dir`, tagged `tag` when given; see the
/// module docs. `image` names the push in errors.
pub fn push_artifact_to_layout(
    image: &str,
    images: &[ArtifactInput],
    dir: &Path,
    tag: Option<&str>,
) -> Result<ArtifactReport, OciError> {
    let invalid = |what: &str, problem: String| OciError::Invalid {
        image: image.to_owned(),
        what: what.to_owned(),
        problem,
    };
    if let Some(tag) = tag {
        check_tag(tag).map_err(|p| invalid("tag", p))?;
    }
    let top = images
        .last()
        .ok_or_else(|| invalid("artifact", "no image to push".to_owned()))?;
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| OciError::Io { path, source }
    };
    let (index, blobs) = open_layout(dir)?;

    let mut layers = Vec::with_capacity(images.len());
    let mut members = Vec::with_capacity(images.len());
    for input in images {
        let (digest, size) = copy_blob(&input.blob, &blobs).map_err(io_err(&input.blob))?;
        let short = input.name.rsplit('/').next().unwrap_or("image");
        layers.push(json!({
            "mediaType": ACI_LAYER,
            "digest": digest.to_string(),
            "size": size,
            "annotations": {
                ID_ANNOTATION: input.id.to_string(),
                NAME_ANNOTATION: input.name,
                TITLE_ANNOTATION: format!("{short}-{}.aci", &input.id.hex()[..12]),
            },
        }));
        members.push(digest);
    }
    let empty = put_blob(&blobs, EMPTY_BYTES).map_err(io_err(&blobs))?;
    let manifest = serde_json::to_string(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_MEDIA, "digest": empty.to_string(), "size": EMPTY_BYTES.len()},
        "layers": layers,
        "annotations": {TOP_ANNOTATION: top.id.to_string()},
    }))
    .map_err(|e| invalid("manifest", e.to_string()))?;
    let manifest_digest = put_blob(&blobs, manifest.as_bytes()).map_err(io_err(&blobs))?;
    let descriptor = json!({
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "digest": manifest_digest.to_string(),
        "size": manifest.len(),
    });
    add_to_index(dir, index, descriptor, tag)?;
    Ok(ArtifactReport {
        manifest_digest,
        members,
    })
}

/// Copies the file `from` into `blobs` under its sha256, through a temp
/// that is removed on failure; a blob already there is kept.
fn copy_blob(from: &Path, blobs: &Path) -> io::Result<(Sha256Digest, u64)> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(from)?);
    let mut temp = layout_temp(blobs, ".aci.")?;
    let mut hasher = Sha256Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    {
        let mut out = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
    }
    let size = hasher.len();
    let digest = hasher.finish();
    let path = blobs.join(digest.hex());
    if !path.exists() {
        temp.persist(&path).map_err(|e| e.error)?;
    }
    Ok((digest, size))
}

/// An ACI artifact read from a source: where each member's bytes are and
/// the id it announces.
#[derive(Debug)]
pub struct AciArtifact {
    /// The reference it was read from, for messages.
    pub image: String,
    /// The artifact manifest's digest.
    pub manifest_digest: Sha256Digest,
    /// The top image's id (the last member's).
    pub top: ImageId,
    /// The members, bottom first.
    pub members: Vec<ArtifactMember>,
}

/// One ACI of an artifact.
#[derive(Debug, Clone)]
pub struct ArtifactMember {
    /// The id the artifact announces for it.
    pub id: ImageId,
    /// Its blob's sha256.
    pub digest: Sha256Digest,
    /// Its blob's size.
    pub size: u64,
    location: Location,
}

impl AciArtifact {
    /// Opens member `index` (0 = bottom) for reading, its sha256 and size
    /// checked as it streams (the reader fails at the end otherwise).
    pub fn open_member(&self, index: usize) -> Result<Box<dyn Read + Send>, OciError> {
        let what = format!("member {}", index + 1);
        let invalid = |problem: String| OciError::Invalid {
            image: self.image.clone(),
            what: what.clone(),
            problem,
        };
        let member = self
            .members
            .get(index)
            .ok_or_else(|| invalid("no such member".to_owned()))?;
        let reader: Box<dyn Read + Send> = match &member.location {
            Location::File(path) => Box::new(BufReader::with_capacity(
                1 << 20,
                File::open(path).map_err(|source| OciError::Io {
                    path: path.clone(),
                    source,
                })?,
            )),
            Location::Remote { remote, url } => Box::new(
                remote
                    .open(url, member.size)
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            Location::Member { .. } => {
                return Err(invalid(
                    "a docker save tarball holds no artifact".to_owned(),
                ))
            }
        };
        Ok(Box::new(VerifyingReader::new(
            reader,
            Some(member.digest),
            Some(member.size),
        )))
    }
}

/// Whether `manifest` is an acido ACI artifact: its `artifactType`, or
/// (for tools that predate `artifactType`) its config's media type, is
/// [`ARTIFACT_TYPE`], or its layers are ACIs.
pub(super) fn is_aci_artifact(manifest: &ImageManifest) -> bool {
    manifest
        .artifact_type()
        .as_ref()
        .is_some_and(|t| t.to_string() == ARTIFACT_TYPE)
        || manifest.config().media_type().to_string() == ARTIFACT_TYPE
        || manifest
            .layers()
            .first()
            .is_some_and(|l| l.media_type().to_string() == ACI_LAYER)
}

/// The artifact `manifest` describes, every member checked for its media
/// type, its announced id and the bounds (member count against the layer
/// count limit, sizes against the blob size limit); `locate` says where a
/// blob's bytes are.
pub(super) fn artifact_of(
    ctx: &Ctx<'_>,
    manifest: &ImageManifest,
    manifest_digest: Sha256Digest,
    locate: impl Fn(&Sha256Digest) -> Result<Location, OciError>,
) -> Result<AciArtifact, OciError> {
    let layers = manifest.layers();
    ctx.check_layer_count(layers.len())?;
    if layers.is_empty() {
        return Err(ctx.invalid("artifact", "it holds no ACI"));
    }
    let mut members = Vec::with_capacity(layers.len());
    for (n, d) in layers.iter().enumerate() {
        let what = format!("member {}", n + 1);
        let media = d.media_type().to_string();
        if media != ACI_LAYER {
            return Err(ctx.invalid(
                &what,
                format!("media type {media:?} is not an ACI ({ACI_LAYER})"),
            ));
        }
        if d.size() > ctx.limits.max_blob_size {
            return Err(OciError::LimitExceeded {
                image: ctx.image.clone(),
                what,
                limit: LimitExceeded::new(LimitKind::BlobSize),
                value: d.size(),
                max: ctx.limits.max_blob_size,
            });
        }
        let announced = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ID_ANNOTATION))
            .ok_or_else(|| ctx.invalid(&what, format!("no {ID_ANNOTATION} annotation")))?;
        let id: ImageId = announced
            .parse()
            .map_err(|e| ctx.invalid(&what, format!("{ID_ANNOTATION}: {e}")))?;
        let digest = ctx.digest_of(&what, d)?;
        members.push(ArtifactMember {
            id,
            digest,
            size: d.size(),
            location: locate(&digest)?,
        });
    }
    let top = members.last().expect("checked non-empty").id;
    let announced_top = manifest
        .annotations()
        .as_ref()
        .and_then(|a| a.get(TOP_ANNOTATION));
    if let Some(announced) = announced_top {
        if *announced != top.to_string() {
            return Err(ctx.invalid(
                "manifest",
                format!("{TOP_ANNOTATION} {announced:?} is not the last member's id {top}"),
            ));
        }
    }
    Ok(AciArtifact {
        image: ctx.image.clone(),
        manifest_digest,
        top,
        members,
    })
}
