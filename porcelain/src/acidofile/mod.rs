//! The Acidofile: a small build language on top of `startbuild`, `copy`,
//! `run` and `build` (grammar in [`parse`] and `acido-build(5)`).
//!
//! [`build_file`] runs the steps in a build tree of its own: `FROM` renders
//! the base image into it with `startbuild` (or, for `FROM scratch`,
//! starts from an empty rootfs and a manifest with no dependency),
//! `COPY`/`ADD` go through [`crate::copy`], `RUN` through [`crate::run`]
//! (which reads the manifest written so far, so `ENV`, `WORKDIR` and
//! `USER` apply to later `RUN`s), and the other instructions edit the
//! manifest. Each manifest edit is checked by decoding the edited
//! manifest with the reference's rules, so a bad value fails at its line.
//! At the end the tree is packed by [`crate::build`] into an image holding
//! only what differs from the base. The tree is removed afterwards, on
//! success and on error, unless the caller asked to keep it.
//!
//! Steps that change the tree are cached ([`cache`]): each leaves its
//! result in the store as an image, and a later build whose steps have the
//! same keys starts from the last one found instead of running them
//! ([`steps`]). The final image is always the diff of the final tree
//! against the base, so it does not depend on what came from the cache.
//!
//! Module map:
//! - [`parse`]: the grammar.
//! - [`cache`]: cache keys, source digests, entries in the store.
//! - `steps` (private): running the steps, from the cache or for real.
//! - `image` (private): the final image, built or reused.

pub mod cache;
mod image;
pub mod parse;
mod steps;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::{ImageManifest, ManifestError};
use acido_plumbing::naming::NamingError;
use acido_plumbing::store::Store;
use serde_json::{Map, Value};

use crate::build::{BuildCmdError, BuildOptions, BuildReport};
use crate::copy::CopyError;
use crate::overlay::{self, OverlayError};
use crate::progress::Progress;
use crate::run::RunError;
use crate::startbuild::StartBuildError;
use acido_plumbing::build::overlay::LayerWalks;

use self::cache::Entries;
use self::parse::{Base, ParseError, Step};
use self::steps::{Builder, Phase};
pub use self::steps::{StepOutcome, COPY_MTIME};

/// The `acVersion` of manifests written for `FROM scratch` and of cache
/// entries (the appc version the reference tools implement, aci-format §5).
const AC_VERSION: &str = "0.8.11";

/// The longest instruction text quoted in an error.
const QUOTE_LIMIT: usize = 60;

/// How to build an Acidofile.
#[derive(Debug, Clone)]
pub struct AcidofileOptions {
    /// Where the image goes (an output file and/or the store).
    pub build: BuildOptions,
    /// Run the steps in this directory (it must not exist or be empty)
    /// and keep it, instead of a temp dir that is removed.
    pub keep_tree: Option<PathBuf>,
    /// The directory `COPY` and `ADD` sources are relative to (default:
    /// the Acidofile's directory).
    pub context: Option<PathBuf>,
    /// Take steps from the step cache when their key is found (`false`:
    /// `--no-cache`). Results are stored in the cache either way.
    pub use_cache: bool,
    /// Run the step with this number (`FROM` is 1) and every later one
    /// even when they are cached (`--rebuild-from`).
    pub rebuild_from: Option<usize>,
    /// How `FROM docker://…`, `FROM oci:…` and `FROM docker-archive:…`
    /// pull their base when it is not stored.
    pub pull: crate::pull::PullOptions,
    /// When they pull a registry image (`--pull`).
    pub pull_policy: crate::pull::PullPolicy,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct AcidofileReport {
    /// Instructions run, `FROM` included.
    pub steps: usize,
    /// How each step was done, in order.
    pub outcomes: Vec<StepOutcome>,
    /// The base image (`None` for `FROM scratch`).
    pub base: Option<ImageId>,
    /// The built image.
    pub id: ImageId,
    /// What packing did; `None` when every step was cached and the image
    /// they built before was still stored, so it was reused.
    pub build: Option<BuildReport>,
    /// The kept step tree, with [`AcidofileOptions::keep_tree`].
    pub tree: Option<PathBuf>,
}

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// `FROM`: the base image could not be rendered.
    #[error(transparent)]
    StartBuild(#[from] StartBuildError),
    /// `FROM`: the base image could not be named.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// `FROM docker://…`, `FROM oci:…`: the base image could not be pulled.
    #[error(transparent)]
    Pull(#[from] crate::pull::PullError),
    /// `COPY`/`ADD`/`WORKDIR`: writing into the tree failed.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// `RUN`: the command could not be run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// `RUN`: the command failed.
    #[error("command exited with status {status}")]
    Failed {
        /// Its exit status (128+N for signal N).
        status: u8,
    },
    /// The instruction would make the manifest invalid.
    #[error("the manifest would be invalid: {source}")]
    Manifest {
        /// The reference's verdict on the edited manifest.
        source: ManifestError,
    },
    /// A relative `WORKDIR` with no absolute one before it.
    #[error("{path:?} is relative and no WORKDIR before it is absolute")]
    RelativeWorkdir {
        /// The path given.
        path: String,
    },
    /// Reading or writing a file of the tree failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Starting an overlay build tree failed (other than by the mount,
    /// which falls back to a plain tree).
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    /// Storing the step's result in the step cache failed.
    #[error("storing the step in the cache: {0}")]
    Cache(#[source] BuildCmdError),
    /// The build was interrupted.
    #[error("interrupted")]
    Interrupted,
}

/// Why an Acidofile build failed. Nothing is left behind but a kept tree
/// and the cache entries of the steps that succeeded.
#[derive(Debug, thiserror::Error)]
pub enum AcidofileError {
    /// The Acidofile cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The Acidofile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// `FROM scratch` without a `NAME`.
    #[error("{}:{line}: FROM scratch: an image without a base needs a NAME instruction", file.display())]
    ScratchWithoutName {
        /// The Acidofile.
        file: PathBuf,
        /// The line of `FROM`.
        line: usize,
    },
    /// `--rebuild-from` names a step the file does not have.
    #[error("{}: --rebuild-from {step}: the file has {steps} steps", file.display())]
    NoSuchStep {
        /// The Acidofile.
        file: PathBuf,
        /// The step asked for.
        step: usize,
        /// How many steps the file has.
        steps: usize,
    },
    /// The work directory could not be made.
    #[error("{}: cannot create the build's work directory: {source}", path.display())]
    WorkDir {
        /// Where.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Reading the store's cache entries failed.
    #[error("{}: reading the step cache: {source}", file.display())]
    Cache {
        /// The Acidofile.
        file: PathBuf,
        /// What went wrong.
        source: acido_plumbing::store::StoreError,
    },
    /// A step failed.
    #[error("{}:{line}: step {step} ({text}): {source}", file.display())]
    Step {
        /// The Acidofile.
        file: PathBuf,
        /// The instruction's line.
        line: usize,
        /// The step's number (1 for `FROM`).
        step: usize,
        /// The instruction as written (shortened).
        text: String,
        /// What went wrong.
        source: Box<StepError>,
    },
    /// Packing the result failed (or no output was asked for).
    #[error("{}: {source}", file.display())]
    Build {
        /// The Acidofile.
        file: PathBuf,
        /// What went wrong.
        source: BuildCmdError,
    },
}

/// Builds the image the Acidofile `file` describes and writes or stores
/// it as `opts.build` says. `temp_parent` holds the work directory.
pub fn build_file(
    store: &Store,
    file: &Path,
    opts: &AcidofileOptions,
    temp_parent: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<AcidofileReport, AcidofileError> {
    let build_err = |source| AcidofileError::Build {
        file: file.to_owned(),
        source,
    };
    // What `build` would refuse at the end is refused before any work.
    if opts.build.output.is_none() && !opts.build.import {
        return Err(build_err(BuildCmdError::NoOutput));
    }
    if let Some(out) = &opts.build.output {
        if !opts.build.overwrite && fs::symlink_metadata(out).is_ok() {
            return Err(build_err(BuildCmdError::OutputExists { path: out.clone() }));
        }
    }
    let bytes = fs::read(file).map_err(|source| AcidofileError::Read {
        path: file.to_owned(),
        source,
    })?;
    let instructions = parse::parse(file, &bytes)?;
    if let Some(first) = instructions.first() {
        let named = instructions.iter().any(|i| matches!(i.step, Step::Name(_)));
        if first.step == Step::From(Base::Scratch) && !named {
            return Err(AcidofileError::ScratchWithoutName {
                file: file.to_owned(),
                line: first.line,
            });
        }
    }
    if let Some(step) = opts.rebuild_from {
        if step == 0 || step > instructions.len() {
            return Err(AcidofileError::NoSuchStep {
                file: file.to_owned(),
                step,
                steps: instructions.len(),
            });
        }
    }
    // One reading of the records serves the whole build: the cache's
    // entries, the `FROM` name and the final image's same-name check (each
    // reading costs one file per stored image). Without the cache nothing
    // needs it up front: a record that cannot be read then fails only
    // what would have failed without this reading.
    let (entries, records) = if opts.use_cache {
        let records = store.records().map_err(|source| AcidofileError::Cache {
            file: file.to_owned(),
            source,
        })?;
        (Entries::of(&records), Some(records))
    } else {
        (Entries::default(), None)
    };
    let context = match &opts.context {
        Some(dir) => dir.clone(),
        None => match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            // A bare file name: sources are relative to the current
            // directory, and named in errors as written.
            _ => PathBuf::new(),
        },
    };
    let work = tempfile::Builder::new()
        .prefix("acido-acidofile-")
        .tempdir_in(temp_parent)
        .map_err(|source| AcidofileError::WorkDir {
            path: temp_parent.to_owned(),
            source,
        })?
        .keep();
    let mut work_guard = RemoveOnDrop(Some(work.clone()));
    let tree = opts.keep_tree.clone().unwrap_or_else(|| work.join("tree"));
    let mut builder = Builder {
        store,
        file,
        opts,
        context,
        tree: tree.clone(),
        work: work.clone(),
        temp_parent,
        progress: Arc::clone(&progress),
        interrupt,
        manifest: None,
        base: None,
        total: instructions.len(),
        entries,
        key: None,
        phase: Phase::Deferred,
        top: None,
        top_is_entry: false,
        from_snapshot: None,
        outcomes: Vec::new(),
        announced: false,
        allow_overlay: opts.keep_tree.is_none() && !crate::test_hooks::plain_trees_forced(),
        on_overlay: false,
        upper_since: None,
        layer_walks: LayerWalks::new(),
        records,
    };
    let result = builder
        .run_all(&instructions)
        .and_then(|()| image::finish(&mut builder, &instructions));
    if builder.on_overlay {
        // Unmounted and its state removed before the work directory goes:
        // removing files through a live mount would write whiteouts, and
        // the state would outlive the tree. If that fails the work
        // directory is left as it is (gc's sweep and endbuild find it).
        match overlay::endbuild(store, &tree) {
            Ok(_) => builder.on_overlay = false,
            Err(e) => {
                progress.note(&format!(
                    "{}: could not end the overlay build tree: {e}",
                    tree.display()
                ));
                work_guard.0 = None;
            }
        }
    }
    match (&opts.keep_tree, &builder.from_snapshot) {
        _ if builder.on_overlay => {}
        // A kept tree's manifest depends on the FROM image, so the only
        // snapshot `acido build` may use for it is the one of that image's
        // render; one of a cache entry's render would hide changes.
        (Some(_), Some(snapshot)) => {
            let _ = store.save_build_state(&tree, snapshot);
        }
        // Without a kept tree, the tree goes with the work dir and its
        // build state would only be a stale leftover.
        _ => {
            if let Ok(state) = store.build_state_path(&tree) {
                let _ = fs::remove_file(state);
            }
        }
    }
    let (id, report) = result?;
    Ok(AcidofileReport {
        steps: instructions.len(),
        outcomes: builder.outcomes,
        base: builder.base,
        id,
        build: report,
        tree: opts.keep_tree.clone(),
    })
}

/// Removes a directory tree we made, read-only directories included
/// (nothing when disarmed).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else {
            return;
        };
        // Directories are made writable first: a read-only directory from
        // an image would stop the removal as a normal user. Symlinks are
        // never followed (walkdir and remove_dir_all use lstat).
        for entry in walkdir::WalkDir::new(&dir).into_iter().flatten() {
            if entry.file_type().is_dir() {
                let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// An instruction's text for an error line.
fn shorten(text: &str) -> String {
    if text.chars().count() <= QUOTE_LIMIT {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(QUOTE_LIMIT).collect();
    short.push_str("...");
    short
}

/// Replaces the item called `name` in the array `key` of `map` (made
/// when missing, or not an array), or appends `item` to it.
fn upsert(map: &mut Map<String, Value>, key: &str, name: &str, item: Value) {
    let mut items = match map.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    match items
        .iter_mut()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    {
        Some(slot) => *slot = item,
        None => items.push(item),
    }
    map.insert(key.to_owned(), Value::Array(items));
}

/// Decodes an edited manifest with the reference's rules.
fn checked(value: &Value) -> Result<ImageManifest, StepError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StepError::Io {
        path: PathBuf::from("manifest"),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })?;
    ImageManifest::from_slice(&bytes).map_err(|source| StepError::Manifest { source })
}
