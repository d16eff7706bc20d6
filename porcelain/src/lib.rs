//! `acido-porcelain`: acido's user-facing workflows, composed in-process from
//! `acido-plumbing` calls. Each workflow takes a progress sink and returns a
//! report; it never prints.
//!
//! Module map:
//! - [`progress`]: the progress sink workflows report to.
//! - [`import`]: storing ACI files in the store.
//! - [`extract`]: rendering an image with its dependencies into a directory.
#![deny(missing_docs)]

pub mod extract;
pub mod import;
pub mod progress;
