//! One module per command: parse nothing, call one library function,
//! encode its result, return the outcome.

pub mod add;
pub mod build;
pub mod cat_manifest;
pub mod copy;
pub mod diff_tree;
pub mod export;
pub mod extract;
pub mod fsck;
pub mod gc;
pub mod hash_object;
pub mod images;
pub mod import;
pub mod ls_tree;
pub mod pack_aci;
pub mod render_tree;
pub mod resolve;
pub mod rm;
pub mod run;
pub mod startbuild;
pub mod trust;
pub mod validate;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use acido_plumbing::archive::Limits;
use acido_plumbing::image::OpenImage;
use acido_plumbing::naming::{self, ImageRef};
use acido_plumbing::pack::PackOptions;
use acido_plumbing::store::Store;
use anyhow::Context as _;

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
        Ok(match test_pause_hook() {
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

/// The `--limit` option that raises the bound an error line reports as
/// exceeded, e.g. `--limit path-length=N`; `None` for other errors.
pub fn limit_hint(line: &str) -> Option<String> {
    crate::cli::LimitName::ALL
        .iter()
        .find(|(_, _, phrase)| line.contains(&format!("{phrase} exceeded")))
        .map(|(_, name, _)| format!("--limit {name}=N"))
}

/// Fault injection for the crash tests (tests/store_faults.rs): with
/// `ACIDO_TEST_PAUSE_AT=STEP` a command reaching STEP creates the file
/// `$ACIDO_TEST_PAUSE_FILE` (when set) and sleeps `$ACIDO_TEST_PAUSE_SECS`
/// seconds (default 60), so the test can kill or interrupt it there. The
/// steps are those of an import (after-temp-create, mid-stream,
/// before-link, after-link-before-record), of a render
/// (render-after-temp-create, render-mid-write, render-before-rename) and
/// of a pack (pack-after-temp-create, pack-mid-write); `steps` names those
/// of one kind, and the hook is `None` when STEP is not among them. The
/// library never reads the environment; this is the binary's business.
fn test_pause_at<S>(steps: &[(&str, S)]) -> Option<Arc<dyn Fn(S) + Send + Sync>>
where
    S: Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    let wanted = std::env::var("ACIDO_TEST_PAUSE_AT").ok()?;
    let wanted = steps
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|&(_, step)| step)?;
    let marker = std::env::var_os("ACIDO_TEST_PAUSE_FILE").map(PathBuf::from);
    let secs = std::env::var("ACIDO_TEST_PAUSE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Some(Arc::new(move |step| {
        if step != wanted {
            return;
        }
        if let Some(marker) = &marker {
            // The test waits for this file; failing to write it only
            // makes the test time out.
            let _ = std::fs::write(marker, format!("{step:?}\n"));
        }
        std::thread::sleep(std::time::Duration::from_secs(secs));
    }))
}

/// The import steps of [`test_pause_at`].
fn test_pause_hook() -> Option<acido_plumbing::store::ImportHook> {
    use acido_plumbing::store::ImportStep;
    test_pause_at(&[
        ("after-temp-create", ImportStep::AfterTempCreate),
        ("mid-stream", ImportStep::MidStream),
        ("before-link", ImportStep::BeforeLink),
        (
            "after-link-before-record",
            ImportStep::AfterLinkBeforeRecord,
        ),
    ])
}

/// The render steps of [`test_pause_at`], for [`RenderOptions::hook`].
///
/// [`RenderOptions::hook`]: acido_plumbing::render::RenderOptions::hook
pub fn render_pause_hook() -> Option<acido_plumbing::render::RenderHook> {
    use acido_plumbing::render::RenderStep;
    test_pause_at(&[
        ("render-after-temp-create", RenderStep::AfterTempCreate),
        ("render-mid-write", RenderStep::MidWrite),
        ("render-before-rename", RenderStep::BeforeRename),
    ])
}

/// Pack options as every packing command wants them: the compression
/// chosen, the process's interrupt flag, and the pack steps of
/// [`test_pause_at`].
pub fn pack_options(
    compression: acido_plumbing::compression::Compression,
    xz_threads: u32,
) -> PackOptions {
    PackOptions {
        compression,
        xz_threads,
        level: None,
        interrupt: Some(crate::interrupt::flag()),
        hook: pack_pause_hook(),
    }
}

fn pack_pause_hook() -> Option<acido_plumbing::pack::PackHook> {
    use acido_plumbing::pack::PackStep;
    test_pause_at(&[
        ("pack-after-temp-create", PackStep::AfterTempCreate),
        ("pack-mid-write", PackStep::MidWrite),
    ])
}
