//! Bounds that keep hostile input from exhausting memory, disk or stack
//! (issue 5, "Bounded"), and how an error says which one it hit.
//!
//! This is the bottom layer: every module that enforces a bound takes it
//! from here ([`Limits`], [`ManifestLimits`]), and every error raised for
//! a bound carries a [`LimitExceeded`] as its source, so a caller learns
//! the bound from the error chain ([`limit_kind`]) instead of from the
//! message text. The `acido` binary maps a [`LimitKind`] to its
//! `--limit` name.

use std::error::Error;
use std::fmt;

/// Deepest nesting of arrays and objects a manifest may have by default;
/// real manifests use 5.
pub const DEFAULT_JSON_DEPTH: usize = 128;

/// Most `pathWhitelist` entries a manifest may list by default.
pub const DEFAULT_WHITELIST_LEN: usize = 1_000_000;

/// Deepest dependency chain a render follows by default: the top image is
/// level 0, so a chain may hold `DEFAULT_DEPENDENCY_DEPTH + 1` images. Real
/// images nest a handful of levels; the bound only stops hostile or broken
/// manifests.
pub const DEFAULT_DEPENDENCY_DEPTH: usize = 64;

/// Most elements a render's dependency list may hold by default. A
/// diamond lists its shared image once per path (aci-format §9.1), so a
/// lattice of diamonds grows exponentially; this bound turns that into an
/// error instead of an endless walk.
pub const DEFAULT_DEPENDENCY_COUNT: usize = 1024;

/// Most HTTP redirects one request follows by default: what Go's client
/// (appc discovery, rkt) and curl's browsers-like default allow.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// How long an HTTP connection may stall by default, in seconds: the
/// connect (TLS handshake included) and every single read or write. A slow
/// but moving transfer never times out; a silent server does.
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 30;

/// Largest HTTP body held in memory by default (discovery pages, keys,
/// signatures, registry manifests): 1 MiB, as spec/appc-discovery.md §2
/// recommends for discovery pages.
pub const DEFAULT_MAX_PAGE_SIZE: u64 = 1 << 20;

/// One bound of [`Limits`]: what a limit error reports as exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// [`Limits::max_decompressed_size`].
    Size,
    /// [`Limits::max_entries`].
    Entries,
    /// [`Limits::max_path_len`].
    PathLength,
    /// [`Limits::max_link_target_len`].
    LinkLength,
    /// [`Limits::max_extended_header_size`].
    ExtendedHeader,
    /// [`Limits::max_manifest_size`].
    ManifestSize,
    /// [`Limits::max_json_depth`].
    JsonDepth,
    /// [`Limits::max_whitelist_len`].
    WhitelistLength,
    /// [`Limits::max_dependency_depth`].
    DependencyDepth,
    /// [`Limits::max_dependency_count`].
    DependencyCount,
    /// [`Limits::max_redirects`].
    Redirects,
    /// [`Limits::http_timeout_secs`].
    HttpTimeout,
    /// [`Limits::max_page_size`].
    PageSize,
    /// [`Limits::max_download_size`].
    DownloadSize,
    /// [`Limits::max_oci_document_size`].
    OciDocumentSize,
    /// [`Limits::max_layer_count`].
    LayerCount,
    /// [`Limits::max_blob_size`].
    BlobSize,
}

impl LimitKind {
    /// Every bound, in the order of [`Limits`]' fields.
    pub const ALL: [LimitKind; 17] = [
        LimitKind::Size,
        LimitKind::Entries,
        LimitKind::PathLength,
        LimitKind::LinkLength,
        LimitKind::ExtendedHeader,
        LimitKind::ManifestSize,
        LimitKind::JsonDepth,
        LimitKind::WhitelistLength,
        LimitKind::DependencyDepth,
        LimitKind::DependencyCount,
        LimitKind::Redirects,
        LimitKind::HttpTimeout,
        LimitKind::PageSize,
        LimitKind::DownloadSize,
        LimitKind::OciDocumentSize,
        LimitKind::LayerCount,
        LimitKind::BlobSize,
    ];

    /// How error messages name the bound: `"{phrase} exceeded"`.
    pub fn phrase(self) -> &'static str {
        match self {
            LimitKind::Size => "maximum decompressed size",
            LimitKind::Entries => "maximum number of entries",
            LimitKind::PathLength => "maximum path length",
            LimitKind::LinkLength => "maximum link target length",
            LimitKind::ExtendedHeader => "maximum extended header size",
            LimitKind::ManifestSize => "maximum manifest size",
            LimitKind::JsonDepth => "maximum JSON depth",
            LimitKind::WhitelistLength => "maximum whitelist length",
            LimitKind::DependencyDepth => "maximum dependency depth",
            LimitKind::DependencyCount => "maximum dependency count",
            LimitKind::Redirects => "maximum number of redirects",
            LimitKind::HttpTimeout => "HTTP timeout",
            LimitKind::PageSize => "maximum page size",
            LimitKind::DownloadSize => "maximum download size",
            LimitKind::OciDocumentSize => "maximum OCI document size",
            LimitKind::LayerCount => "maximum layer count",
            LimitKind::BlobSize => "maximum blob size",
        }
    }
}

/// The source of every error raised because a bound was exceeded: it names
/// the bound, `maximum path length exceeded`. The error that carries it
/// says more (the entry, the value, the bound) and includes this text, so
/// a one-line rendering of the chain shows it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} exceeded", .kind.phrase())]
pub struct LimitExceeded {
    /// Which bound.
    pub kind: LimitKind,
}

impl LimitExceeded {
    /// The bound `kind` was exceeded.
    pub fn new(kind: LimitKind) -> Self {
        LimitExceeded { kind }
    }
}

/// The bound `err` or one of its causes reports as exceeded, if any.
///
/// Walks the `source()` chain for a [`LimitExceeded`]; errors that wrap
/// another one transparently forward its source, so the bound is found
/// through every layer.
pub fn limit_kind(err: &(dyn Error + 'static)) -> Option<LimitKind> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(exceeded) = err.downcast_ref::<LimitExceeded>() {
            return Some(exceeded.kind);
        }
        cause = err.source();
    }
    None
}

/// Bounds that keep hostile archives from exhausting memory or disk.
/// Exceeding one is an error naming the limit and the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest decompressed stream accepted, in bytes (default 64 GiB).
    /// Protects the disk from decompression bombs.
    pub max_decompressed_size: u64,
    /// Most entries accepted (default 1 000 000). Each costs memory in the
    /// entry list and index.
    pub max_entries: usize,
    /// Longest entry name, before cleaning (default 4096, Linux `PATH_MAX`).
    pub max_path_len: usize,
    /// Longest symlink or hard-link target (default 4096).
    pub max_link_target_len: usize,
    /// Largest PAX or GNU long-name/long-link header data (default 1 MiB);
    /// these are held in memory while parsing.
    pub max_extended_header_size: u64,
    /// Largest `manifest` (default 1 MiB); it is held in memory.
    pub max_manifest_size: u64,
    /// Deepest nesting of arrays and objects in a manifest (default 128);
    /// the JSON reader recurses per level. See [`ManifestLimits`].
    pub max_json_depth: usize,
    /// Most `pathWhitelist` entries in a manifest (default 1 000 000).
    pub max_whitelist_len: usize,
    /// Deepest dependency chain a render follows (default 64, the top
    /// image being level 0). See [`DEFAULT_DEPENDENCY_DEPTH`].
    pub max_dependency_depth: usize,
    /// Most elements of a render's dependency list (default 1024). See
    /// [`DEFAULT_DEPENDENCY_COUNT`].
    pub max_dependency_count: usize,
    /// Most redirects one HTTP request follows (default
    /// [`DEFAULT_MAX_REDIRECTS`]); a loop is refused before it.
    pub max_redirects: usize,
    /// How long an HTTP connect, read or write may stall, in seconds
    /// (default [`DEFAULT_HTTP_TIMEOUT_SECS`]).
    pub http_timeout_secs: u64,
    /// Largest HTTP body held in memory: discovery pages, keys,
    /// signatures (default [`DEFAULT_MAX_PAGE_SIZE`]).
    pub max_page_size: u64,
    /// Largest HTTP body streamed to disk, such as a fetched ACI (default
    /// 64 GiB, as [`Limits::max_decompressed_size`]).
    pub max_download_size: u64,
    /// Largest OCI JSON document (index, manifest, config) read from an
    /// image source (default 4 MiB, the manifest bound of the reference
    /// registry); these are held in memory and parsed.
    pub max_oci_document_size: u64,
    /// Most layers an OCI image may have (default 64, so that the chain of
    /// layer ACIs under the app image fits [`Limits::max_dependency_depth`];
    /// Docker stops at 127). Each layer becomes one level of the chain.
    pub max_layer_count: usize,
    /// Largest stored (compressed) layer blob (default 64 GiB), checked
    /// against the descriptor before anything is read.
    pub max_blob_size: u64,
}

impl Limits {
    /// The bounds the manifest decoder applies.
    pub fn manifest(&self) -> ManifestLimits {
        ManifestLimits {
            max_json_depth: self.max_json_depth,
            max_whitelist_len: self.max_whitelist_len,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_size: 64 << 30,
            max_entries: 1_000_000,
            max_path_len: 4096,
            max_link_target_len: 4096,
            max_extended_header_size: 1 << 20,
            max_manifest_size: 1 << 20,
            max_json_depth: DEFAULT_JSON_DEPTH,
            max_whitelist_len: DEFAULT_WHITELIST_LEN,
            max_dependency_depth: DEFAULT_DEPENDENCY_DEPTH,
            max_dependency_count: DEFAULT_DEPENDENCY_COUNT,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            http_timeout_secs: DEFAULT_HTTP_TIMEOUT_SECS,
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            max_download_size: 64 << 30,
            max_oci_document_size: 4 << 20,
            max_layer_count: 64,
            max_blob_size: 64 << 30,
        }
    }
}

/// Bounds on a manifest's structure, beyond its size
/// (`manifest::MAX_MANIFEST_BYTES`, a fixed bound). Issue 5 ("Bounded"): each
/// is an error naming it, and each can be raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Deepest nesting of arrays and objects (default
    /// [`DEFAULT_JSON_DEPTH`]). Values above
    /// `manifest::MAX_DEPTH_CEILING` act as the ceiling, which
    /// keeps the recursive reader within its stack.
    pub max_json_depth: usize,
    /// Most `pathWhitelist` entries (default 1 000 000). Rendering builds
    /// a set from them, so they cost memory per entry.
    pub max_whitelist_len: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        ManifestLimits {
            max_json_depth: DEFAULT_JSON_DEPTH,
            max_whitelist_len: DEFAULT_WHITELIST_LEN,
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] LimitExceeded);

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct Transparent(#[from] Outer);

    #[test]
    fn the_kind_is_found_through_the_chain() {
        let err = Transparent(Outer(LimitExceeded::new(LimitKind::PathLength)));
        assert_eq!(limit_kind(&err), Some(LimitKind::PathLength));
        let plain = std::io::Error::other("maximum path length exceeded");
        assert_eq!(limit_kind(&plain), None, "text is never matched");
    }

    #[test]
    fn messages_name_the_bound() {
        assert_eq!(
            LimitExceeded::new(LimitKind::Entries).to_string(),
            "maximum number of entries exceeded"
        );
    }
}
