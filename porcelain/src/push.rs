//! `push`: a stored image with its dependencies out as a runnable OCI
//! image (DESIGN §11); today into an OCI image layout (`oci:DIR[:TAG]`).

use std::path::PathBuf;

use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::oci::push::{push_to_layout, PushReport};
use acido_plumbing::oci::reference::Reference;
use acido_plumbing::oci::OciError;
use acido_plumbing::render::{self, RenderError};
use acido_plumbing::store::Store;

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
    /// A destination acido cannot write to.
    #[error("{destination}: pushing is supported to oci:DIR[:TAG] only")]
    Unsupported {
        /// The destination as given.
        destination: String,
    },
}

/// Where the image went.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The layout directory.
    pub dir: PathBuf,
    /// What was written.
    pub report: PushReport,
}

/// Pushes the image `name` (id, prefix or app string) to `destination`.
pub fn push(store: &Store, name: &str, destination: &str) -> Result<PushOutcome, PushError> {
    let reference = Reference::parse(destination)?;
    let Reference::Layout { dir, tag } = reference else {
        return Err(PushError::Unsupported {
            destination: destination.to_owned(),
        });
    };
    let id = naming::resolve(store, &ImageRef::parse(name, false)?)?.id;
    let list = render::dependency_list(store, id)?;
    let report = push_to_layout(&id.to_string(), &list, &dir, tag.as_deref())?;
    Ok(PushOutcome { dir, report })
}
