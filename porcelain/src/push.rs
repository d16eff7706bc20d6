//! `push`: a stored image with its dependencies out as a runnable OCI
//! image, or as an OCI artifact of their exact ACI bytes (DESIGN §11), into an OCI image layout (`oci:DIR[:TAG]`) or a
//! registry (`docker://HOST/REPO[:TAG]`). The layers of `--format oci`
//! come from the store's layer cache (`acido-store(5)`), generated into
//! it when missing. A registry push writes the config and the manifest
//! into a scratch layout in the store's `tmp/` (the same writer, so the
//! same digests) and uploads them from there and the layers from the
//! cache; the scratch directory is a locked [`ScratchDir`], so one a
//! killed push left is swept by `gc` and `fsck --repair`.

use std::path::PathBuf;

use acido_plumbing::http::{Client, HttpConfig};
use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::oci::artifact::{push_artifact_to_layout, ArtifactInput};
use acido_plumbing::oci::digest::Sha256Digest;
use acido_plumbing::oci::push::{push_to_layout, push_to_scratch_layout, PushReport};
use acido_plumbing::oci::reference::Reference;
use acido_plumbing::oci::registry::RegistryAuth;
use acido_plumbing::oci::upload::{push_layout_to_registry_with, UploadOptions, UploadReport};
use acido_plumbing::oci::OciError;
use acido_plumbing::render::{self, RenderError};
use acido_plumbing::store::{Store, StoreError};
use acido_plumbing::temp::ScratchDir;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The image name did not resolve.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// Its dependencies could not be resolved or read.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The destination could not be written, or the image has no OCI form.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The store's scratch space could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A destination acido cannot write to.
    #[error(
        "{destination}: pushing is supported to oci:DIR[:TAG] and docker://HOST/REPO[:TAG] only"
    )]
    Unsupported {
        /// The destination as given.
        destination: String,
    },
}

/// Whether the layout written is the user's (synced) or a registry push's
/// scratch copy, read once by the upload and removed.
#[derive(Clone, Copy)]
enum Layout {
    Kept,
    Scratch,
}

/// What a push writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PushFormat {
    /// A runnable OCI image, one layer per image (`--format oci`).
    #[default]
    Oci,
    /// The image and its dependencies as their exact ACI bytes, an OCI
    /// artifact (`--format aci`, [`acido_plumbing::oci::artifact`]).
    Aci,
}

/// How to push, and how to reach a registry destination (as
/// [`crate::pull::PullOptions`]).
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// What to write.
    pub format: PushFormat,
    /// Allow plain HTTP (`--tls-verify=false`).
    pub allow_http: bool,
    /// PEM files of trusted CAs (empty: the built-in roots).
    pub ca_files: Vec<std::path::PathBuf>,
    /// `user` and `password`.
    pub credentials: Option<(String, String)>,
    /// Registry credential files to search when `credentials` is `None`,
    /// in order (`--authfile`, auth.json, docker's config.json).
    pub auth_files: Vec<acido_plumbing::oci::authfile::AuthFileCandidate>,
    /// How blobs are sent (the chunk size).
    pub upload: UploadOptions,
}

/// Where the image went.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The layout directory; `None` for a registry push (its scratch
    /// layout is gone by now).
    pub dir: Option<PathBuf>,
    /// The digest of the manifest written.
    pub manifest_digest: Sha256Digest,
    /// For `--format oci`: the image's layers and config.
    pub report: Option<PushReport>,
    /// For a registry push: what was uploaded and what was there.
    pub upload: Option<UploadReport>,
}

/// Pushes the image `name` (id, prefix or app string) to `destination`.
pub fn push(
    store: &Store,
    name: &str,
    destination: &str,
    options: &PushOptions,
) -> Result<PushOutcome, PushError> {
    let reference = Reference::parse(destination)?;
    let id = naming::resolve(store, &ImageRef::parse(name, false)?)?.id;
    let list = render::dependency_list(store, id)?;
    // The artifact's members: the list bottom first (the top image last),
    // each image once.
    let members: Vec<ArtifactInput> = {
        let mut seen = std::collections::HashSet::new();
        list.images
            .iter()
            .rev()
            .filter(|l| seen.insert(l.id))
            .map(|l| ArtifactInput {
                id: l.id,
                name: l.image.manifest.name.to_string(),
                blob: store.blob_path(&l.id),
            })
            .collect()
    };
    let write = |dir: &std::path::Path, tag: Option<&str>, layout: Layout| match options.format {
        PushFormat::Oci => match layout {
            Layout::Kept => push_to_layout(&id.to_string(), &list, dir, tag, Some(store))
                .map(|report| (report, Vec::new())),
            Layout::Scratch => push_to_scratch_layout(&id.to_string(), &list, dir, Some(store)),
        }
        .map(|(report, blobs)| (report.manifest_digest, Some(report), blobs)),
        PushFormat::Aci => push_artifact_to_layout(&id.to_string(), &members, dir, tag)
            .map(|report| (report.manifest_digest, None, Vec::new())),
    };
    match reference {
        Reference::Layout { dir, tag } => {
            let (manifest_digest, report, _) = write(&dir, tag.as_deref(), Layout::Kept)?;
            Ok(PushOutcome {
                dir: Some(dir),
                manifest_digest,
                report,
                upload: None,
            })
        }
        Reference::Docker(docker) => {
            if docker.digest.is_some() {
                return Err(OciError::BadReference {
                    reference: destination.to_owned(),
                    problem: "a push names a tag, not a digest".to_owned(),
                }
                .into());
            }
            let mut config = HttpConfig::new(store.limits());
            config.allow_http = options.allow_http;
            config.ca_roots.files = options.ca_files.clone();
            let client = Client::new(config).map_err(|e| OciError::Invalid {
                image: destination.to_owned(),
                what: "registry".to_owned(),
                problem: e.to_string(),
            })?;
            let auth =
                RegistryAuth::resolve(options.credentials.clone(), &options.auth_files, &docker)?;
            store.ensure_layout()?;
            let tmp = store.tmp_dir();
            // Locked while the push lives and removed at its end; after a
            // kill, gc and fsck --repair sweep it by its free lock.
            let scratch =
                ScratchDir::new(&tmp).map_err(|source| OciError::Io { path: tmp, source })?;
            crate::test_hooks::push_pause(crate::test_hooks::PushStep::AfterScratch);
            let (manifest_digest, report, layer_blobs) =
                write(scratch.path(), None, Layout::Scratch)?;
            let upload = push_layout_to_registry_with(
                destination,
                scratch.path(),
                &manifest_digest,
                layer_blobs,
                &docker,
                &client,
                &auth,
                &options.upload,
            )?;
            Ok(PushOutcome {
                dir: None,
                manifest_digest,
                report,
                upload: Some(upload),
            })
        }
        _ => Err(PushError::Unsupported {
            destination: destination.to_owned(),
        }),
    }
}
