//! The bridge from OCI and Docker images to ACIs (DESIGN §11,
//! `spec/oci-bridge.md`).
//!
//! An OCI image is a config plus an ordered list of layer tars that are
//! applied one over the other. acido turns it into a chain of ACIs: one per
//! layer, each depending on the one below by image id, plus a top ACI that
//! carries the config as its app and has no files of its own.
//!
//! - [`reference`]: the image references `acido pull` takes
//!   (`oci:DIR[:TAG]`, `docker-archive:FILE`), as skopeo names them.
//! - [`digest`]: sha256 digests, checked while streaming.
//! - [`source`]: reading an image's manifest, config and layers out of an
//!   OCI image layout or a `docker save` tarball, with platform selection.
//! - [`unpack`]: one layer decompressed and checked against its diff id.
//! - [`convert`]: the layer state machine that turns layer tars into ACIs
//!   (whiteouts, opaque directories, hard links across layers).
//! - [`config`]: the image config mapped to an ACI app, labels and
//!   annotations.
//! - [`push`]: an ACI and its dependencies written into an OCI image
//!   layout, one layer per image, deletions as whiteouts.
//! - `layer`: one layer blob written (tar and gzip on two threads) or
//!   copied out of the store's layer cache.
//! - [`upload`]: such a layout's image pushed to a registry.
//! - [`authfile`]: registry credentials from auth.json / docker config files.
//! - [`artifact`]: ACIs as an OCI artifact of their exact bytes
//!   (`push --format aci`), written into a layout and read back.

pub mod artifact;
pub mod authfile;
pub mod config;
pub mod convert;
pub mod digest;
mod layer;
pub mod push;
pub mod reference;
pub mod registry;
pub mod source;
pub mod unpack;
pub mod upload;

use std::path::PathBuf;

use crate::archive::tar::TarError;
use crate::limits::LimitExceeded;
use crate::manifest::ValueError;
use crate::quote::quote_path;

/// Why an OCI image could not be read or converted. Every variant names
/// the image (or the file) and the part of it that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A reference that is not one of the supported transports.
    #[error("{reference}: {problem}")]
    BadReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading a file of the source failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document (index, manifest, config) does not parse.
    #[error("{image}: {what}: invalid JSON: {source}")]
    Json {
        /// The image.
        image: String,
        /// Which document.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A document or blob is not what the image says it is.
    #[error("{image}: {what}: {problem}")]
    Invalid {
        /// The image.
        image: String,
        /// Which part.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// Reading a blob's stream failed (a transfer cut short, a stalled
    /// server); the cause keeps its bound, if it is one.
    #[error("{image}: {what}: {source}")]
    Read {
        /// The image.
        image: String,
        /// Which blob.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blob's content does not hash to the digest that names it.
    #[error("{image}: {what}: digest mismatch (expected {expected}, found {found})")]
    DigestMismatch {
        /// The image.
        image: String,
        /// Which blob.
        what: String,
        /// The digest the image names.
        expected: String,
        /// The digest of the bytes read.
        found: String,
    },
    /// A blob's length differs from the size its descriptor gives.
    #[error("{image}: {what}: size mismatch (expected {expected} bytes, found {found})")]
    SizeMismatch {
        /// The image.
        image: String,
        /// Which blob.
        what: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The bytes found.
        found: u64,
    },
    /// A bound of [`crate::limits::Limits`] was exceeded.
    #[error("{image}: {what}: {limit} ({value} > {max})")]
    LimitExceeded {
        /// The image.
        image: String,
        /// Which part.
        what: String,
        /// Which bound.
        #[source]
        limit: LimitExceeded,
        /// The value found.
        value: u64,
        /// The bound.
        max: u64,
    },
    /// A layer's tar stream is malformed.
    #[error("{image}: layer {layer}: {source}")]
    Tar {
        /// The image.
        image: String,
        /// The layer's position, base first, counted from 1.
        layer: usize,
        /// The cause.
        #[source]
        source: TarError,
    },
    /// A layer's stream does not decompress.
    #[error("{image}: layer {layer}: {source}")]
    Decompress {
        /// The image.
        image: String,
        /// The layer's position, base first, counted from 1.
        layer: usize,
        /// The cause.
        #[source]
        source: crate::archive::ArchiveError,
    },
    /// An entry of a layer that acido refuses (a smuggled whiteout, a hard
    /// link to nothing, a symlink loop while resolving its parent, ...).
    #[error("{image}: layer {layer}: {}: {problem}", quote_path(path))]
    BadEntry {
        /// The image.
        image: String,
        /// The layer's position, base first, counted from 1.
        layer: usize,
        /// The entry's path as cleaned.
        path: Vec<u8>,
        /// What is wrong.
        problem: String,
    },
    /// A config value that has no ACI equivalent.
    #[error("{image}: config: {problem}")]
    Config {
        /// The image.
        image: String,
        /// What cannot be mapped.
        problem: String,
    },
    /// A manifest value acido built is rejected by the ACI model.
    #[error("{image}: {what}: {source}")]
    Value {
        /// The image.
        image: String,
        /// What was being built.
        what: String,
        /// The cause.
        #[source]
        source: ValueError,
    },
    /// Writing a converted ACI into the scratch directory failed.
    #[error("writing the ACI of {image} layer {layer} in {}: {source}", dir.display())]
    Write {
        /// The image.
        image: String,
        /// The layer (0 for the app image).
        layer: usize,
        /// The scratch directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A registry credentials file that cannot be read as one.
    #[error("auth file {}: {problem}", path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The operation was interrupted.
    #[error("{image}: interrupted")]
    Interrupted {
        /// The image.
        image: String,
    },
    /// The store could not be used: a converted ACI could not be staged
    /// (its checks refused it, or the store could not be written), or
    /// push's layer cache could not be written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
