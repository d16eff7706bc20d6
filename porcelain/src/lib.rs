//! `acido-porcelain`: acido's user-facing workflows, composed in-process from
//! `acido-plumbing` calls. Each workflow takes a progress sink and returns a
//! report; it never prints.
//!
//! Module map:
//! - [`progress`]: the progress sink workflows report to.
//! - [`import`]: storing ACI files in the store.
//! - [`images`]: listing stored images (table and JSON encoders).
//! - [`rm`]: removing images, guarding their dependents.
//! - [`dependency_graph`]: the stored images' dependency edges, read once for `rm` and `gc`.
//! - [`gc`]: deleting leftover temps and orphaned indexes and records.
//! - [`export`]: writing a stored image out as a verified ACI.
//! - [`fsck`]: verifying and repairing the store.
//! - [`extract`]: rendering an image with its dependencies into a directory.
//! - [`startbuild`]: rendering a base image into a build tree with a stat snapshot.
//! - [`build`]: packing a build tree into a diff image over its dependencies.
//! - [`overlay`]: overlay build trees: `startbuild --overlay`, `--resume`, `endbuild`.
//! - [`copy`]: copying host files (and unpacking tar archives) into a build tree.
//! - [`fetch`]: fetching images by name (appc discovery), URL or file, checked before they are stored.
//! - [`pull`]: OCI and Docker images into the store as chains of ACIs.
//! - [`push`]: stored images out as runnable OCI images.
//! - [`trust`]: trusting OpenPGP keys for image name prefixes (review, add, list, remove).
//! - [`run`]: running a command inside a build tree, in Linux namespaces.
//! - [`test_hooks`]: fault injection for the crash tests (feature `test-hooks`).
#![deny(missing_docs)]

pub mod acidofile;
pub mod build;
pub mod copy;
pub mod dependency_graph;
pub mod export;
pub mod extract;
pub mod fetch;
pub mod fsck;
pub mod gc;
pub mod images;
pub mod import;
pub mod overlay;
pub mod progress;
pub mod pull;
pub mod push;
pub mod rm;
pub mod run;
pub mod startbuild;
pub mod test_hooks;
pub mod trust;
