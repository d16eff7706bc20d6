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
//! - [`entry`]: one tar entry with its metadata and data offsets.
//! - [`compression`]: the compressions an ACI may use.
//! - [`quote`]: C-quoting of paths in line-oriented output.
//! - [`pack`]: the deterministic ACI writer (layout dir or selected paths → tar, id).
#![deny(missing_docs)]

pub mod compression;
pub mod entry;
pub mod id;
pub mod pack;
pub mod quote;
