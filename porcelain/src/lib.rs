//! `acido-porcelain`: acido's user-facing workflows, composed in-process from
//! `acido-plumbing` calls. Each workflow takes a progress sink and returns a
//! report; it never prints.
#![deny(missing_docs)]
