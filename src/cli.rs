//! The command line: every command and option, defined once. The help
//! texts here are also the OPTIONS sections of the man pages (`src/man.rs`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// acido: build, store and render appc App Container Images.
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

    /// Change a bound on the archives read (repeatable): NAME is size,
    /// entries, path-length, link-length, extended-header or manifest-size;
    /// sizes take a K, M, G or T suffix (see SECURITY in acido(1))
    #[arg(long = "limit", global = true, value_name = "NAME=VALUE", value_parser = parse_limit)]
    pub limits: Vec<LimitArg>,

    /// The command to run
    #[command(subcommand)]
    pub command: Command,
}

/// One bound of [`acido_plumbing::archive::Limits`], as `--limit` names it.
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
}

impl LimitName {
    /// Every limit with its `--limit` name and the phrase the library's
    /// error messages use for it ("{phrase} exceeded").
    pub const ALL: [(LimitName, &'static str, &'static str); 10] = [
        (LimitName::Size, "size", "maximum decompressed size"),
        (LimitName::Entries, "entries", "maximum number of entries"),
        (LimitName::PathLength, "path-length", "maximum path length"),
        (
            LimitName::LinkLength,
            "link-length",
            "maximum link target length",
        ),
        (
            LimitName::ExtendedHeader,
            "extended-header",
            "maximum extended header size",
        ),
        (
            LimitName::ManifestSize,
            "manifest-size",
            "maximum manifest size",
        ),
        (LimitName::JsonDepth, "json-depth", "maximum JSON depth"),
        (
            LimitName::WhitelistLength,
            "whitelist-length",
            "maximum whitelist length",
        ),
        (
            LimitName::DependencyDepth,
            "dependency-depth",
            "maximum dependency depth",
        ),
        (
            LimitName::DependencyCount,
            "dependency-count",
            "maximum dependency count",
        ),
    ];
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
    pub fn apply(self, limits: &mut acido_plumbing::archive::Limits) {
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
        }
    }
}

/// Parses `NAME=VALUE` for `--limit`: VALUE is a decimal number with an
/// optional binary suffix K, M, G or T.
pub fn parse_limit(text: &str) -> Result<LimitArg, String> {
    let names = || {
        LimitName::ALL
            .iter()
            .map(|(_, n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, where NAME is one of {}", names()))?;
    let name = LimitName::ALL
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(l, ..)| *l)
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
    /// Render an image into a build tree that depends on it (porcelain)
    Startbuild(StartbuildArgs),
    /// Pack a build tree into an image holding only what differs from its dependencies (porcelain)
    Build(BuildArgs),
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
    /// Trust OpenPGP keys to sign images of a name prefix; list or remove them (porcelain)
    Trust(crate::commands::trust::TrustArgs),
    /// Show the manual page of a command
    Help(HelpArgs),
}

/// Arguments of `acido hash-object`.
#[derive(Debug, Args)]
pub struct HashObjectArgs {
    /// Also store each image (validated like import)
    #[arg(short = 'w')]
    pub write: bool,
    /// Read one ACI from standard input
    #[arg(long)]
    pub stdin: bool,
    /// ACI files (any compression)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Arguments of `acido cat-manifest`.
#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// Print the parsed manifest re-indented in the reference field order
    /// instead of the stored bytes
    #[arg(long)]
    pub pretty: bool,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci file
    pub image: String,
}

/// Arguments of `acido ls-tree`.
#[derive(Debug, Args)]
pub struct LsTreeArgs {
    /// Terminate records with NUL and print paths raw
    #[arg(short = 'z')]
    pub nul: bool,
    /// Also print owner, size, mtime and link targets
    #[arg(long)]
    pub long: bool,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci file
    pub image: String,
}

/// Arguments of `acido resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Print ids shortened to N hex digits (64 when N is omitted)
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "64")]
    pub abbrev: Option<usize>,
    /// Image names: ids, id prefixes or NAME[:VERSION][,LABEL=VALUE...]
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Arguments of `acido validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also warn about what the spec's grammar forbids but the reference
    /// implementation accepts (warnings make the exit status 1)
    #[arg(long)]
    pub strict: bool,
    /// Print a line for valid inputs too
    #[arg(short, long)]
    pub verbose: bool,
    /// Manifest JSON files, layout directories or ACI files
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Compression choices on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// xz, multithreaded
    Xz,
    /// gzip
    Gzip,
    /// bzip2
    Bzip2,
    /// no compression: a plain tar
    None,
}

impl From<CompressionArg> for acido_plumbing::compression::Compression {
    fn from(arg: CompressionArg) -> Self {
        use acido_plumbing::compression::Compression;
        match arg {
            CompressionArg::Xz => Compression::Xz,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Bzip2 => Compression::Bzip2,
            CompressionArg::None => Compression::None,
        }
    }
}

/// Arguments of `acido pack-aci`.
#[derive(Debug, Args)]
pub struct PackAciArgs {
    /// Compression of the output
    #[arg(long, value_enum, default_value = "xz")]
    pub compression: CompressionArg,
    /// Threads for xz compression (0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
    /// Write the ACI to FILE ('-' for standard output)
    #[arg(short, long, value_name = "FILE", required = true)]
    pub output: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// Pack only these paths below rootfs (NUL-separated, relative, as
    /// 'diff-tree -z' prints them); '-' reads standard input
    #[arg(long, value_name = "LIST")]
    pub paths_from: Option<PathBuf>,
    /// Use this manifest instead of DIR/manifest
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The layout directory: a manifest file and a rootfs directory
    pub dir: PathBuf,
}

/// Arguments of `acido render-tree`.
#[derive(Debug, Args)]
pub struct RenderTreeArgs {
    /// Print which image supplies each path instead of writing a tree
    #[arg(long, conflicts_with = "dir")]
    pub list: bool,
    /// With --list: terminate records with NUL and print paths raw
    // `requires = "list"` would be met by --list's default value; a
    // conflict with DIR (required without --list) says the same.
    #[arg(short = 'z', conflicts_with = "dir")]
    pub nul: bool,
    /// Do not re-hash the stored blobs before publishing the tree
    #[arg(long)]
    pub no_verify: bool,
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci
    /// file (its dependencies come from the store)
    pub image: String,
    /// The directory to create (it must not exist, or be empty)
    #[arg(required_unless_present = "list")]
    pub dir: Option<PathBuf>,
}

/// Arguments of `acido extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The image: id, id prefix, NAME[:VERSION][,LABEL=VALUE...] or an .aci
    /// file (its dependencies come from the store)
    pub image: String,
    /// The directory to create (it must not exist, or be empty)
    pub dir: PathBuf,
}

/// Arguments of `acido diff-tree`.
#[derive(Debug, Args)]
pub struct DiffTreeArgs {
    /// Terminate fields with NUL and print paths raw (with the default format)
    #[arg(short = 'z')]
    pub nul: bool,
    /// Print the status letter and path of each change (the default)
    #[arg(long, conflicts_with_all = ["stat", "json", "name_only"])]
    pub name_status: bool,
    /// Print only the path of each change
    #[arg(long, conflicts_with_all = ["stat", "json"])]
    pub name_only: bool,
    /// Keep only changes whose status letter is in LETTERS (A, M, D, T)
    #[arg(long, value_name = "LETTERS")]
    pub diff_filter: Option<String>,
    /// Print which attributes differ for each path, and a summary
    #[arg(long, conflicts_with = "json")]
    pub stat: bool,
    /// Print the changes as JSON with both sides' metadata
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when there are changes
    #[arg(long)]
    pub exit_code: bool,
    /// Do not compare the modification times of directories
    #[arg(long)]
    pub ignore_dir_mtime: bool,
    /// The old tree: a directory, a layout directory, or an image
    pub a: String,
    /// The new tree: a directory, a layout directory, or an image
    pub b: String,
}

/// Arguments of `acido startbuild`.
#[derive(Debug, Args)]
pub struct StartbuildArgs {
    /// The base image: id, id prefix or NAME[:VERSION][,LABEL=VALUE...]
    pub image: String,
    /// The build tree to create (must not exist or be empty; default: a new
    /// directory under $TMPDIR, printed on stdout)
    pub dir: Option<PathBuf>,
}

/// Arguments of `acido build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build the image an Acidofile describes (see acido-build(5)) instead
    /// of packing a build tree
    #[arg(short = 'f', long = "file", value_name = "ACIDOFILE")]
    pub file: Option<PathBuf>,
    /// With -f: write the new ACI to FILE
    #[arg(short = 'o', long = "output", value_name = "FILE", requires = "file")]
    pub output_file: Option<PathBuf>,
    /// With -f: run the steps in DIR (it must not exist or be empty) and
    /// keep it, instead of in a temp dir that is removed
    #[arg(long, value_name = "DIR", requires = "file")]
    pub keep_tree: Option<PathBuf>,
    /// Also store the new image
    #[arg(long)]
    pub import: bool,
    /// Replace OUT.aci if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// Compression of the output
    #[arg(long, value_enum, default_value = "xz")]
    pub compression: CompressionArg,
    /// Threads for xz compression (0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
    /// The build tree: a manifest file and a rootfs directory (not with -f)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub dir: Option<PathBuf>,
    /// Where to write the new ACI (may be left out with --import; not with -f)
    #[arg(value_name = "OUT.aci", conflicts_with = "file")]
    pub output: Option<PathBuf>,
}

/// Arguments of `acido copy` and `acido add`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Give everything copied this owner and group (numbers) instead of
    /// the source's
    #[arg(long, value_name = "UID[:GID]")]
    pub chown: Option<String>,
    /// Give copied files and directories this mode (octal) instead of the
    /// source's
    #[arg(long, value_name = "MODE")]
    pub chmod: Option<String>,
    /// Host files or directories to copy (a directory's contents are copied)
    #[arg(required = true, value_name = "SRC")]
    pub sources: Vec<PathBuf>,
    /// The build tree, a colon, and the destination inside its rootfs
    #[arg(value_name = "DIR:DEST")]
    pub target: OsString,
}

/// Arguments of `acido import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// ACI files (any compression); '-' reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Output formats of `acido images`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImagesFormat {
    /// aligned columns for people
    Table,
    /// a JSON document for programs
    Json,
}

/// Arguments of `acido images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: ImagesFormat,
    /// Show ids in the table with at least N hex digits (default 12, more
    /// when needed to tell the listed ids apart)
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "12",
        value_parser = clap::value_parser!(u16).range(2..=128))]
    pub abbrev: Option<u16>,
    /// Show full ids in the table
    #[arg(long, conflicts_with = "abbrev")]
    pub no_abbrev: bool,
}

/// Arguments of `acido rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove images even when other stored images depend on them
    #[arg(short, long)]
    pub force: bool,
    /// Images to remove: ids, id prefixes or NAME[:VERSION][,LABEL=VALUE...]
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Arguments of `acido gc`.
#[derive(Debug, Args)]
pub struct GcArgs {}

/// Arguments of `acido export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Compression of the output
    #[arg(long, value_enum, default_value = "xz")]
    pub compression: CompressionArg,
    /// Threads for xz compression (0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: u32,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub overwrite: bool,
    /// The image: id, id prefix or NAME[:VERSION][,LABEL=VALUE...]
    pub image: String,
    /// The ACI file to write ('-' for standard output)
    pub output: PathBuf,
}

/// Arguments of `acido fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Fix what can be fixed: rebuild indexes and records, move damaged
    /// blobs and unknown files to quarantine/, delete orphans and stale temps
    #[arg(long)]
    pub repair: bool,
}

/// The network choices of `acido run`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NetworkArg {
    /// the host's network (builds fetch packages)
    Host,
    /// a new network namespace with only the loopback interface
    None,
}

impl From<NetworkArg> for acido_porcelain::run::Network {
    fn from(arg: NetworkArg) -> Self {
        use acido_porcelain::run::Network;
        match arg {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        }
    }
}

/// Arguments of `acido run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Set NAME to VALUE in the command's environment, over the manifest's
    /// app environment (repeatable)
    #[arg(short, long = "env", value_name = "NAME=VALUE",
        value_parser = clap::builder::OsStringValueParser::new().try_map(split_env))]
    pub env: Vec<(OsString, OsString)>,
    /// The working directory inside the tree (default: the manifest's
    /// app workingDirectory, else /)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<OsString>,
    /// Run as USER[:GROUP], numbers or names from the tree's /etc/passwd
    /// and /etc/group (default: root)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// The command's network
    #[arg(long, value_enum, default_value = "host")]
    pub network: NetworkArg,
    /// The build tree: a manifest file and a rootfs directory
    pub dir: PathBuf,
    /// The command and its arguments, after --
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Splits `NAME=VALUE` at the first `=`.
fn split_env(arg: OsString) -> Result<(OsString, OsString), String> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = arg.into_vec();
    match bytes.iter().position(|&b| b == b'=') {
        Some(at) if at > 0 => Ok((
            OsString::from_vec(bytes[..at].to_vec()),
            std::ffi::OsStr::from_bytes(&bytes[at + 1..]).to_owned(),
        )),
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

/// Arguments of `acido help`.
#[derive(Debug, Args)]
pub struct HelpArgs {
    /// Print the page's roff source instead of showing it
    #[arg(long)]
    pub roff: bool,
    /// List the names of all manual pages
    #[arg(long, hide = true)]
    pub pages: bool,
    /// The command (or 'store' for the store's file format)
    pub command: Option<String>,
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

    #[test]
    fn every_limit_is_applied_to_its_field() {
        use acido_plumbing::archive::Limits;
        let mut limits = Limits::default();
        for (i, (name, ..)) in LimitName::ALL.iter().enumerate() {
            LimitArg {
                name: *name,
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
            }
        );
    }
}
