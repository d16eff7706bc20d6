//! `push`: a stored image with its dependencies out as a runnable OCI
//! image (DESIGN §11), into an OCI image layout (`oci:DIR[:TAG]`) or a
//! registry (`docker://HOST/REPO[:TAG]`). A registry push writes the
//! image into a scratch layout in the store's `tmp/` first (the same
//! writer, so the same digests) and uploads from there.

use std::path::PathBuf;

use acido_plumbing::http::{Client, HttpConfig};
use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::oci::push::{push_to_layout, push_to_scratch_layout, PushReport};
use acido_plumbing::oci::reference::Reference;
use acido_plumbing::oci::registry::RegistryAuth;
use acido_plumbing::oci::upload::{push_layout_to_registry, UploadReport};
use acido_plumbing::oci::OciError;
use acido_plumbing::render::{self, RenderError};
use acido_plumbing::store::{Store, StoreError};

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

/// How to reach a registry destination (as [`crate::pull::PullOptions`]).
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Allow plain HTTP (`--tls-verify=false`).
    pub allow_http: bool,
    /// PEM files of trusted CAs (empty: the built-in roots).
    pub ca_files: Vec<std::path::PathBuf>,
    /// `user` and `password`.
    pub credentials: Option<(String, String)>,
}

/// Where the image went.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The layout directory; `None` for a registry push (its scratch
    /// layout is gone by now).
    pub dir: Option<PathBuf>,
    /// What was written.
    pub report: PushReport,
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
    match reference {
        Reference::Layout { dir, tag } => {
            let report = push_to_layout(&id.to_string(), &list, &dir, tag.as_deref())?;
            Ok(PushOutcome {
                dir: Some(dir),
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
            let auth = RegistryAuth::new(options.credentials.clone());
            store.ensure_layout()?;
            let tmp = store.tmp_dir();
            let scratch = tempfile::Builder::new()
                .prefix("push-")
                .tempdir_in(&tmp)
                .map_err(|source| OciError::Io { path: tmp, source })?;
            let report = push_to_scratch_layout(&id.to_string(), &list, scratch.path())?;
            let upload = push_layout_to_registry(
                destination,
                scratch.path(),
                &report.manifest_digest,
                &docker,
                &client,
                &auth,
            )?;
            Ok(PushOutcome {
                dir: None,
                report,
                upload: Some(upload),
            })
        }
        _ => Err(PushError::Unsupported {
            destination: destination.to_owned(),
        }),
    }
}
