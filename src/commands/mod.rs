//! One module per command, cargo's shape: the command's clap arguments
//! (`<Cmd>Args`) beside its adapter (`run`), which parses nothing, calls
//! one library function, encodes its result and returns the outcome.
//! Arguments several commands share (`CompressionArg`) live here.

pub mod add;
pub mod build;
pub mod cat_manifest;
pub mod completions;
pub mod copy;
pub mod diff_tree;
pub mod endbuild;
pub mod export;
pub mod extract;
pub mod fetch;
pub mod fsck;
pub mod gc;
pub mod hash_object;
pub mod images;
pub mod import;
pub mod ls_tree;
pub mod pack_aci;
pub mod pull;
pub mod push;
pub mod render_tree;
pub mod resolve;
pub mod rm;
pub mod run;
pub mod startbuild;
pub mod trust;
pub mod validate;
pub mod verify;

use std::path::PathBuf;

use acido_plumbing::image::OpenImage;
use acido_plumbing::limits::Limits;
use acido_plumbing::naming::{self, ImageRef};
use acido_plumbing::pack::PackOptions;
use acido_plumbing::store::Store;
use anyhow::Context as _;
use clap::ValueEnum;

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

/// `--format` of the commands with machine output (`images`, `ls-tree`,
/// `resolve`, `validate`, `fsck`, `diff-tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// the text output for people and line tools (for images: a table)
    #[value(alias = "table")]
    Text,
    /// one JSON document on one line, with a formatVersion (see OUTPUT FORMAT)
    Json,
}

/// What every command may need: the store and the global flags.
pub struct Context {
    store_dir: Option<PathBuf>,
    /// `-q`: no progress or status on stderr.
    pub quiet: bool,
    /// The bounds on archives read, after `--limit` options.
    limits: Limits,
}

impl Context {
    /// Reads the global flags; the environment is consulted lazily.
    pub fn new(store_dir: Option<PathBuf>, quiet: bool) -> Self {
        Context {
            store_dir,
            quiet,
            limits: Limits::default(),
        }
    }

    /// Applies `--limit` options, in order, over the defaults.
    pub fn with_limits(mut self, args: &[crate::cli::LimitArg]) -> Self {
        for arg in args {
            arg.apply(&mut self.limits);
        }
        self
    }

    /// The bounds on archives read (defaults changed by `--limit`).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store: `--store` > `$ACIDO_STORE` > `$XDG_DATA_HOME/acido` >
    /// `~/.local/share/acido` (DESIGN §2).
    pub fn store(&self) -> anyhow::Result<Store> {
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = self
            .store_dir
            .clone()
            .or_else(|| env_dir("ACIDO_STORE"))
            .or_else(|| env_dir("XDG_DATA_HOME").map(|d| d.join("acido")))
            .or_else(|| env_dir("HOME").map(|d| d.join(".local/share/acido")))
            .context("no store location: use --store DIR or set ACIDO_STORE")?;
        let store = Store::at(root).with_limits(self.limits.clone());
        Ok(match acido_porcelain::test_hooks::import_pause_hook() {
            Some(hook) => store.with_hook(hook),
            None => store,
        })
    }

    /// Opens an image named on the command line: from the store by id or
    /// name, or (when `files_allowed`) an `.aci` file.
    pub fn open_image(&self, name: &str, files_allowed: bool) -> anyhow::Result<OpenImage> {
        let store = self.store()?;
        match ImageRef::parse(name, files_allowed)? {
            ImageRef::File(path) => Ok(OpenImage::open_archive(
                &path,
                &std::env::temp_dir(),
                store.limits(),
            )?),
            image => {
                let resolved = naming::resolve(&store, &image)?;
                Ok(store.open(&resolved.id)?)
            }
        }
    }
}

/// The `--limit` option that raises the bound `err` (or a cause of it)
/// reports as exceeded, e.g. `--limit path-length=N`; `None` for other
/// errors. The bound comes from the error chain, never from its text.
pub fn limit_hint(err: &anyhow::Error) -> Option<String> {
    let kind = acido_plumbing::limit_kind(err.as_ref())?;
    let name = crate::cli::LimitName::of_kind(kind).name();
    Some(format!("--limit {name}=N"))
}

/// Pack options as every packing command wants them: the compression
/// chosen, the process's interrupt flag, and the crash tests' pause hook
/// (`acido_porcelain::test_hooks`, absent from release builds).
pub fn pack_options(
    compression: acido_plumbing::compression::Compression,
    xz_threads: u32,
) -> PackOptions {
    PackOptions {
        compression,
        xz_threads,
        level: None,
        interrupt: Some(crate::interrupt::flag()),
        hook: acido_porcelain::test_hooks::pack_pause_hook(),
        // Set by the commands that show a bar (pack-aci, build).
        progress: None,
    }
}

/// The CA file `$SSL_CERT_FILE` names for the registry clients of `pull`,
/// `push` and `build -f` (none when unset or empty, as `fetch` reads it:
/// then the built-in roots).
pub fn ssl_cert_file() -> Vec<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(|f| vec![PathBuf::from(f)])
        .unwrap_or_default()
}

/// `--creds USER[:PASSWORD]` as user and password (empty without a colon).
pub fn split_creds(creds: String) -> (String, String) {
    match creds.split_once(':') {
        Some((user, pass)) => (user.to_owned(), pass.to_owned()),
        None => (creds, String::new()),
    }
}

/// The registry credential files `pull` and `push` search, in the order
/// containers-auth.json(5) gives: the primary file (`--authfile FILE`,
/// else `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`),
/// then `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`, then
/// docker's `${DOCKER_CONFIG:-~/.docker}/config.json`. Only a file named
/// with `--authfile` must exist. The legacy `~/.dockercfg` is not read.
pub fn registry_auth_files(
    authfile: Option<PathBuf>,
) -> Vec<acido_plumbing::oci::authfile::AuthFileCandidate> {
    use acido_plumbing::oci::authfile::AuthFileCandidate;
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("HOME");
    let optional = |path: PathBuf| AuthFileCandidate {
        path,
        required: false,
    };
    let mut files = Vec::new();
    match authfile {
        Some(path) => files.push(AuthFileCandidate {
            path,
            required: true,
        }),
        None => {
            let primary = var("REGISTRY_AUTH_FILE")
                .or_else(|| var("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
            files.extend(primary.map(optional));
        }
    }
    let config = var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    files.extend(config.map(|c| optional(c.join("containers/auth.json"))));
    let docker = var("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker")));
    files.extend(docker.map(|d| optional(d.join("config.json"))));
    files
}
