//! The command line's top level: the `Cli` parser, the global options
//! (`--store`, `-q`, `--limit`) and the `Command` enum. Each command's
//! own arguments are defined beside its adapter, in `commands/<cmd>.rs`
//! (`HelpArgs` in `man.rs`). The help texts are also the OPTIONS sections
//! of the man pages (`src/man.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{
    build::BuildArgs, cat_manifest::CatManifestArgs, copy::CopyArgs, diff_tree::DiffTreeArgs,
    export::ExportArgs, extract::ExtractArgs, fsck::FsckArgs, gc::GcArgs,
    hash_object::HashObjectArgs, images::ImagesArgs, import::ImportArgs, ls_tree::LsTreeArgs,
    pack_aci::PackAciArgs, render_tree::RenderTreeArgs, resolve::ResolveArgs, rm::RmArgs,
    run::RunArgs, startbuild::StartbuildArgs, validate::ValidateArgs,
};
use crate::man::HelpArgs;

/// Build, store and render appc App Container Images
#[derive(Debug, Parser)]
#[command(
    name = "acido",
    version,
    disable_help_subcommand = true,
    after_help = "Run 'acido help COMMAND' for a command's manual page."
)]
pub struct Cli {
    /// Use the image store at DIR (default: $ACIDO_STORE, else
    /// $XDG_DATA_HOME/acido, else ~/.local/share/acido)
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Print no progress or status messages on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    // The help names every limit from `LimitName::ALL`, so it cannot
    // drift from the parser (a test holds acido(1)'s SECURITY list to it).
    #[arg(
        long = "limit",
        global = true,
        value_name = "NAME=VALUE",
        value_parser = parse_limit,
        help = limit_help()
    )]
    pub limits: Vec<LimitArg>,

    /// The command to run
    #[command(subcommand)]
    pub command: Command,
}

/// A usage error found by a command after parsing (a combination clap
/// cannot express), formatted by clap like its own, with the command's
/// usage; `main` prints it and exits 129.
pub fn usage_error(command: &str, message: impl std::fmt::Display) -> anyhow::Error {
    use clap::CommandFactory;
    let mut root = Cli::command();
    root.build();
    let error = match root.find_subcommand_mut(command) {
        Some(sub) => sub.error(clap::error::ErrorKind::MissingRequiredArgument, message),
        None => root.error(clap::error::ErrorKind::MissingRequiredArgument, message),
    };
    anyhow::Error::new(error)
}

/// The help of `--limit`: what it does and every NAME it takes.
fn limit_help() -> String {
    let names: Vec<&str> = LimitName::ALL.iter().map(|l| l.name()).collect();
    let (last, rest) = names.split_last().expect("there are limits");
    format!(
        "Change a bound on the input read (repeatable): NAME is {} or {last}; \
         values take a K, M, G or T suffix (see SECURITY in acido(1))",
        rest.join(", ")
    )
}

/// One bound of [`acido_plumbing::limits::Limits`], as `--limit` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitName {
    /// `size`: the decompressed size of an archive, in bytes.
    Size,
    /// `entries`: how many entries an archive may hold.
    Entries,
    /// `path-length`: the longest entry name, in bytes.
    PathLength,
    /// `link-length`: the longest link target, in bytes.
    LinkLength,
    /// `extended-header`: the largest PAX or GNU long-name header, in bytes.
    ExtendedHeader,
    /// `manifest-size`: the largest manifest, in bytes.
    ManifestSize,
    /// `json-depth`: the deepest nesting of arrays and objects in a manifest.
    JsonDepth,
    /// `whitelist-length`: the most `pathWhitelist` entries in a manifest.
    WhitelistLength,
    /// `dependency-depth`: the deepest dependency chain a render follows.
    DependencyDepth,
    /// `dependency-count`: the most images in a render's dependency list.
    DependencyCount,
    /// `redirects`: the most HTTP redirects one request follows.
    Redirects,
    /// `http-timeout`: how long an HTTP connection may stall, in seconds.
    HttpTimeout,
    /// `page-size`: the largest HTTP body held in memory (discovery pages,
    /// keys, signatures), in bytes.
    PageSize,
    /// `download-size`: the largest HTTP body streamed to disk, in bytes.
    DownloadSize,
    /// `oci-document-size`: the largest OCI index, manifest or config, in bytes.
    OciDocumentSize,
    /// `layer-count`: the most layers an OCI image may have.
    LayerCount,
    /// `blob-size`: the largest stored layer blob of an OCI image, in bytes.
    BlobSize,
}

impl LimitName {
    /// Every limit, in the order `--limit` help and errors list them.
    pub const ALL: [LimitName; 17] = [
        LimitName::Size,
        LimitName::Entries,
        LimitName::PathLength,
        LimitName::LinkLength,
        LimitName::ExtendedHeader,
        LimitName::ManifestSize,
        LimitName::JsonDepth,
        LimitName::WhitelistLength,
        LimitName::DependencyDepth,
        LimitName::DependencyCount,
        LimitName::Redirects,
        LimitName::HttpTimeout,
        LimitName::PageSize,
        LimitName::DownloadSize,
        LimitName::OciDocumentSize,
        LimitName::LayerCount,
        LimitName::BlobSize,
    ];

    /// The name `--limit` takes.
    pub fn name(self) -> &'static str {
        match self {
            LimitName::Size => "size",
            LimitName::Entries => "entries",
            LimitName::PathLength => "path-length",
            LimitName::LinkLength => "link-length",
            LimitName::ExtendedHeader => "extended-header",
            LimitName::ManifestSize => "manifest-size",
            LimitName::JsonDepth => "json-depth",
            LimitName::WhitelistLength => "whitelist-length",
            LimitName::DependencyDepth => "dependency-depth",
            LimitName::DependencyCount => "dependency-count",
            LimitName::Redirects => "redirects",
            LimitName::HttpTimeout => "http-timeout",
            LimitName::PageSize => "page-size",
            LimitName::DownloadSize => "download-size",
            LimitName::OciDocumentSize => "oci-document-size",
            LimitName::LayerCount => "layer-count",
            LimitName::BlobSize => "blob-size",
        }
    }

    /// The option that raises the bound a limit error reports as exceeded.
    pub fn of_kind(kind: acido_plumbing::limits::LimitKind) -> LimitName {
        use acido_plumbing::limits::LimitKind;
        match kind {
            LimitKind::Size => LimitName::Size,
            LimitKind::Entries => LimitName::Entries,
            LimitKind::PathLength => LimitName::PathLength,
            LimitKind::LinkLength => LimitName::LinkLength,
            LimitKind::ExtendedHeader => LimitName::ExtendedHeader,
            LimitKind::ManifestSize => LimitName::ManifestSize,
            LimitKind::JsonDepth => LimitName::JsonDepth,
            LimitKind::WhitelistLength => LimitName::WhitelistLength,
            LimitKind::DependencyDepth => LimitName::DependencyDepth,
            LimitKind::DependencyCount => LimitName::DependencyCount,
            LimitKind::Redirects => LimitName::Redirects,
            LimitKind::HttpTimeout => LimitName::HttpTimeout,
            LimitKind::PageSize => LimitName::PageSize,
            LimitKind::DownloadSize => LimitName::DownloadSize,
            LimitKind::OciDocumentSize => LimitName::OciDocumentSize,
            LimitKind::LayerCount => LimitName::LayerCount,
            LimitKind::BlobSize => LimitName::BlobSize,
        }
    }
}

/// A parsed `--limit NAME=VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitArg {
    /// Which bound.
    pub name: LimitName,
    /// Its new value.
    pub value: u64,
}

impl LimitArg {
    /// Sets this bound in `limits`.
    pub fn apply(self, limits: &mut acido_plumbing::limits::Limits) {
        // Counts and lengths are usize in Limits; on 64-bit targets every
        // u64 fits, elsewhere a huge value saturates (still "unbounded").
        let count = usize::try_from(self.value).unwrap_or(usize::MAX);
        match self.name {
            LimitName::Size => limits.max_decompressed_size = self.value,
            LimitName::Entries => limits.max_entries = count,
            LimitName::PathLength => limits.max_path_len = count,
            LimitName::LinkLength => limits.max_link_target_len = count,
            LimitName::ExtendedHeader => limits.max_extended_header_size = self.value,
            LimitName::ManifestSize => limits.max_manifest_size = self.value,
            LimitName::JsonDepth => limits.max_json_depth = count,
            LimitName::WhitelistLength => limits.max_whitelist_len = count,
            LimitName::DependencyDepth => limits.max_dependency_depth = count,
            LimitName::DependencyCount => limits.max_dependency_count = count,
            LimitName::Redirects => limits.max_redirects = count,
            LimitName::HttpTimeout => limits.http_timeout_secs = self.value,
            LimitName::PageSize => limits.max_page_size = self.value,
            LimitName::DownloadSize => limits.max_download_size = self.value,
            LimitName::OciDocumentSize => limits.max_oci_document_size = self.value,
            LimitName::LayerCount => limits.max_layer_count = count,
            LimitName::BlobSize => limits.max_blob_size = self.value,
        }
    }
}

/// Parses `NAME=VALUE` for `--limit`: VALUE is a decimal number with an
/// optional binary suffix K, M, G or T.
pub fn parse_limit(text: &str) -> Result<LimitArg, String> {
    let names = || {
        LimitName::ALL
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, where NAME is one of {}", names()))?;
    let name = LimitName::ALL
        .into_iter()
        .find(|l| l.name() == name)
        .ok_or_else(|| format!("unknown limit {name:?} (known: {})", names()))?;
    let (digits, shift) = match value.as_bytes().last() {
        Some(b'K' | b'k') => (&value[..value.len() - 1], 10),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 20),
        Some(b'G' | b'g') => (&value[..value.len() - 1], 30),
        Some(b'T' | b't') => (&value[..value.len() - 1], 40),
        _ => (value, 0),
    };
    let number: u64 = digits
        .parse()
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{value:?} is not a number (optionally with K, M, G or T)"))?;
    let value = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{value:?} is too large"))?;
    // The manifest parser holds manifests to its own bound (aci-format
    // §4), so a larger tar-level limit would only move the error.
    let manifest_cap = acido_plumbing::manifest::MAX_MANIFEST_BYTES as u64;
    if name == LimitName::ManifestSize && value > manifest_cap {
        return Err(format!(
            "manifest-size cannot exceed {manifest_cap} (the manifest parser's own bound)"
        ));
    }
    // The JSON reader recurses per level; past its ceiling the stack, not
    // the option, would decide.
    let depth_cap = acido_plumbing::manifest::MAX_DEPTH_CEILING as u64;
    if name == LimitName::JsonDepth && value > depth_cap {
        return Err(format!(
            "json-depth cannot exceed {depth_cap} (the JSON reader's own bound)"
        ));
    }
    Ok(LimitArg { name, value })
}

/// Every acido command. Plumbing first, then porcelain.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the image id of ACI files (plumbing)
    HashObject(HashObjectArgs),
    /// Print an image's manifest (plumbing)
    CatManifest(CatManifestArgs),
    /// List the entries of one image (plumbing)
    LsTree(LsTreeArgs),
    /// Turn image names into full image ids (plumbing)
    Resolve(ResolveArgs),
    /// Check manifests, layout directories and ACIs against the spec (plumbing)
    Validate(ValidateArgs),
    /// Pack a layout directory into an ACI, deterministically (plumbing)
    PackAci(PackAciArgs),
    /// Render an image and its dependencies into a directory (plumbing)
    RenderTree(RenderTreeArgs),
    /// Compare two trees, each an image (rendered) or a directory (plumbing)
    DiffTree(DiffTreeArgs),
    /// Check an ACI's detached OpenPGP signature against the trusted keys (plumbing)
    Verify(crate::commands::verify::VerifyArgs),
    /// Store ACI files in the image store (porcelain)
    Import(ImportArgs),
    /// Render (or overlay-mount) an image into a build tree that depends on it (porcelain)
    Startbuild(StartbuildArgs),
    /// Pack a build tree into an image holding only what differs from its dependencies (porcelain)
    Build(BuildArgs),
    /// End a build: unmount an overlay build tree and remove its build state (porcelain)
    Endbuild(crate::commands::endbuild::EndbuildArgs),
    /// List the stored images (porcelain)
    Images(ImagesArgs),
    /// Remove stored images that no other stored image depends on (porcelain)
    Rm(RmArgs),
    /// Delete leftover temp files and orphaned indexes and records (porcelain)
    Gc(GcArgs),
    /// Write a stored image out as an ACI file, verified (porcelain)
    Export(ExportArgs),
    /// Verify every stored image and the store's files; --repair fixes them (porcelain)
    Fsck(FsckArgs),
    /// Extract an image and its dependencies into a directory (porcelain)
    Extract(ExtractArgs),
    /// Run a command inside a build tree, isolated with Linux namespaces (porcelain)
    Run(RunArgs),
    /// Copy host files and directories into a build tree's rootfs (porcelain)
    Copy(CopyArgs),
    /// Copy host files into a build tree's rootfs, unpacking tar archives (porcelain)
    Add(CopyArgs),
    /// Fetch an OCI or Docker image and store it as a chain of ACIs (porcelain)
    Pull(crate::commands::pull::PullArgs),
    /// Write a stored image with its dependencies out as a runnable OCI image, or as an OCI artifact of their ACIs (porcelain)
    Push(crate::commands::push::PushArgs),
    /// Trust OpenPGP keys to sign images of a name prefix; list or remove them (porcelain)
    Trust(crate::commands::trust::TrustArgs),
    /// Write a shell completion script for bash, zsh or fish to stdout
    Completions(crate::commands::completions::CompletionsArgs),
    /// Fetch images by name (appc discovery), https URL or file; store them once their signature checks out (porcelain)
    Fetch(crate::commands::fetch::FetchArgs),
    /// Show the manual page of a command
    Help(HelpArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_values_take_binary_suffixes() {
        let parsed = |t: &str| parse_limit(t).map(|a| (a.name, a.value));
        assert_eq!(parsed("size=64G"), Ok((LimitName::Size, 64 << 30)));
        assert_eq!(parsed("entries=10"), Ok((LimitName::Entries, 10)));
        assert_eq!(parsed("path-length=8k"), Ok((LimitName::PathLength, 8192)));
        assert_eq!(
            parsed("link-length=1M"),
            Ok((LimitName::LinkLength, 1 << 20))
        );
        assert_eq!(
            parsed("extended-header=2T"),
            Ok((LimitName::ExtendedHeader, 2 << 40))
        );
        assert_eq!(
            parsed("manifest-size=1M"),
            Ok((LimitName::ManifestSize, 1 << 20))
        );
        assert_eq!(parsed("json-depth=512"), Ok((LimitName::JsonDepth, 512)));
        assert_eq!(
            parsed("whitelist-length=2M"),
            Ok((LimitName::WhitelistLength, 2 << 20))
        );
        assert_eq!(
            parsed("dependency-depth=100"),
            Ok((LimitName::DependencyDepth, 100))
        );
        assert_eq!(
            parsed("dependency-count=4K"),
            Ok((LimitName::DependencyCount, 4096))
        );
        for bad in [
            "size",
            "size=",
            "size=K",
            "size=-1",
            "size=+1",
            "size=1.5G",
            "size=99999999999999999999",
            "size=17000000000T",
            "nope=1",
            "manifest-size=1025K",
            "json-depth=513",
            "json-depth=2K",
            "whitelist-length",
            "dependency-depth=x",
        ] {
            assert!(parse_limit(bad).is_err(), "{bad} was accepted");
        }
    }

    /// acido(1)'s SECURITY section lists the limits `--limit` takes, in
    /// the same order, and `--limit`'s help names each of them.
    #[test]
    fn the_manual_and_the_help_list_every_limit() {
        let prose = include_str!("../man/prose/acido.roff");
        let security = prose
            .split("\n.SH SECURITY\n")
            .nth(1)
            .and_then(|s| s.split("\n.SH ").next())
            .expect("acido.roff has a SECURITY section");
        let list = security
            .split("\n.RS\n")
            .nth(1)
            .and_then(|s| s.split("\n.RE\n").next())
            .expect("SECURITY lists the limits between .RS and .RE");
        let mut lines = list.lines();
        let mut documented = Vec::new();
        while let Some(line) = lines.next() {
            if line.starts_with(".TP") {
                let term = lines.next().unwrap_or_default();
                documented.push(term.strip_prefix(".B ").unwrap_or(term).to_owned());
            }
        }
        let all: Vec<_> = LimitName::ALL.into_iter().map(LimitName::name).collect();
        assert_eq!(documented, all);
        let help = limit_help();
        for name in all {
            assert!(help.contains(name), "--limit help omits {name}: {help}");
        }
    }

    #[test]
    fn every_limit_kind_has_its_own_name() {
        use acido_plumbing::limits::LimitKind;
        let names: Vec<_> = LimitKind::ALL
            .into_iter()
            .map(|k| LimitName::of_kind(k).name())
            .collect();
        let all: Vec<_> = LimitName::ALL.into_iter().map(LimitName::name).collect();
        assert_eq!(names, all);
    }

    #[test]
    fn every_limit_is_applied_to_its_field() {
        use acido_plumbing::limits::Limits;
        let mut limits = Limits::default();
        for (i, name) in LimitName::ALL.into_iter().enumerate() {
            LimitArg {
                name,
                value: i as u64 + 1,
            }
            .apply(&mut limits);
        }
        assert_eq!(
            limits,
            Limits {
                max_decompressed_size: 1,
                max_entries: 2,
                max_path_len: 3,
                max_link_target_len: 4,
                max_extended_header_size: 5,
                max_manifest_size: 6,
                max_json_depth: 7,
                max_whitelist_len: 8,
                max_dependency_depth: 9,
                max_dependency_count: 10,
                max_redirects: 11,
                http_timeout_secs: 12,
                max_page_size: 13,
                max_download_size: 14,
                max_oci_document_size: 15,
                max_layer_count: 16,
                max_blob_size: 17,
            }
        );
    }
}
