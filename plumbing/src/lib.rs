//! `acido-plumbing`: the appc App Container Image model and every low-level
//! operation acido is built from.
//!
//! This crate is for programs that want to read, store, render, diff or pack
//! ACIs without going through the `acido` binary. It returns data (ids,
//! manifests, entry lists, change lists) and never prints, exits or reads
//! the environment; the `acido` binary and `acido-porcelain` add the user
//! interface on top.
//!
//! Module map:
//! - [`id`]: image ids (`sha512-…`), prefixes and the streaming hasher.
//! - [`limits`]: the bounds on hostile input and the [`limits::LimitKind`]
//!   every limit error carries.
//! - [`entry`]: one tar entry with its metadata and data offsets.
//! - [`http`]: the one HTTP client (HTTPS via rustls, bounded redirects, bodies and timeouts).
//! - [`fs`]: fd-relative file-system primitives (beneath-only opens, metadata in order).
//! - [`compression`]: the compressions an ACI may use.
//! - [`archive`]: compression detection, decompression, hashing, tar scanning.
//! - [`index`]: the per-blob entry index encoding.
//! - [`quote`]: C-quoting of paths in line-oriented output.
//! - [`json_output`]: the one writer of the versioned JSON documents (`--format json`).
//! - [`diff`]: comparing two trees attribute by attribute, and `diff-tree`'s formats.
//! - [`manifest`]: the image manifest model, its validation and JSON form.
//! - [`image`]: an image opened for reading (mmapped blob + index).
//! - [`store`]: the content-addressed image store.
//! - [`naming`]: naming images by id, prefix, app string or file.
//! - [`format`]: encoders for listings (`ls-tree`).
//! - [`discovery`]: appc meta discovery: image name → ACI, signature and key URLs.
//! - [`validate`]: checking manifests, layout dirs and ACIs.
//! - [`pack`]: the deterministic ACI writer (layout dir or selected paths → tar, id).
//! - [`render`]: dependency resolution, the file map and safe extraction (`render-tree`).
//! - [`tree`]: the tree writer for existing trees (`copy`, `add`), resolving paths as `chroot` would.
//! - [`trust`]: the trust store of OpenPGP keys and detached signature checks.
//! - [`build`]: diff builds: a tree against its dependencies' rendering, stat snapshots.
//! - [`oci`]: OCI and Docker images read and converted into chains of ACIs.
#![deny(missing_docs)]

pub mod archive;
pub mod build;
pub mod compression;
pub mod diff;
pub mod discovery;
pub mod entry;
pub mod format;
pub mod fs;
pub mod http;
pub mod id;
pub mod image;
pub mod index;
pub mod interrupt;
pub mod json_output;
pub mod limits;
pub mod manifest;
pub mod naming;
pub mod oci;
pub mod pack;
pub mod quote;
pub mod render;
pub mod store;
pub mod temp;
pub mod tree;
pub mod trust;
pub mod validate;

/// The bound `err` or one of its causes reports as exceeded, if any: what
/// the `acido` binary turns into a `--limit NAME=N` hint.
///
/// Every limit error of this crate carries a [`limits::LimitExceeded`]
/// source ([`limits::limit_kind`] finds it), except
/// [`archive::ArchiveError::TooLarge`], which callers outside the crate
/// build too and which names its bound through
/// [`archive::ArchiveError::limit_kind`].
pub fn limit_kind(err: &(dyn std::error::Error + 'static)) -> Option<limits::LimitKind> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(exceeded) = err.downcast_ref::<limits::LimitExceeded>() {
            return Some(exceeded.kind);
        }
        if let Some(kind) = err
            .downcast_ref::<archive::ArchiveError>()
            .and_then(archive::ArchiveError::limit_kind)
        {
            return Some(kind);
        }
        cause = err.source();
    }
    None
}
