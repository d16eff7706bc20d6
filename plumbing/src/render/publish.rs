//! Publishing a render: the tree is written into a fresh temp dir beside
//! the target and renamed into place (DESIGN §5).
//!
//! * The temp dir has the same parent as the target, so the final `rename`
//!   is atomic; it is renamed only when everything was written
//!   ([`super::write`]) and every stored blob verified
//!   ([`super::verify`]); any failure or interrupt removes it, so no half
//!   tree is ever published.
//! * The temp dir is `flock`ed while the render lives, and a render first
//!   sweeps the unlocked temp dirs that killed renders left beside its
//!   target ([`crate::temp`]).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl;

use crate::id::ImageId;
use crate::store::Store;
use crate::temp::{self, TempKind};

use super::deps::{dependency_list, DependencyList};
use super::filemap::{file_map, FileMap};
use super::verify::verify_all;
use super::write::write_tree;
use super::RenderError;

/// How to render.
#[derive(Clone)]
pub struct RenderOptions {
    /// Check every stored blob (on a second thread, while the tree is
    /// written) against the BLAKE3 digest its index recorded at import, or
    /// its SHA-512 id when the index has none, and publish only when each
    /// still matches. Default on.
    pub verify: bool,
    /// Called with the number of data bytes written, as they are written.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    /// Called at each [`RenderStep`] (fault injection for crash tests; it
    /// may block).
    pub hook: Option<RenderHook>,
}

/// The steps of a render at which a [`RenderHook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStep {
    /// The locked temp dir beside the target exists, still empty.
    AfterTempCreate,
    /// About half of the tree's paths are written.
    MidWrite,
    /// The tree is complete and verified, not yet renamed into place.
    BeforeRename,
}

/// A callback run at each [`RenderStep`] (fault injection: tests pause or
/// kill the process there).
pub type RenderHook = Arc<dyn Fn(RenderStep) + Send + Sync>;

impl RenderOptions {
    pub(super) fn call_hook(&self, step: RenderStep) {
        if let Some(hook) = &self.hook {
            hook(step);
        }
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            verify: true,
            progress: None,
            hook: None,
        }
    }
}

impl std::fmt::Debug for RenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("verify", &self.verify)
            .field("progress", &self.progress.is_some())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// What a render wrote, and what it could not restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderReport {
    /// Images in the dependency list (a shared image counts once per path).
    pub images: usize,
    /// Filesystem objects created from image entries (`manifest`, `rootfs`
    /// and implied directories included).
    pub entries: u64,
    /// File data bytes written.
    pub bytes: u64,
    /// Whether the render ran with root's privileges (effective uid 0).
    pub as_root: bool,
    /// Entries whose owner or group could not be set (not permitted).
    pub ownership_not_restored: u64,
    /// Device nodes that could not be created (not permitted); they are
    /// absent from the tree.
    pub devices_not_created: u64,
    /// Extended attributes that could not be set (not permitted, or not
    /// supported by the target file system).
    pub xattrs_not_restored: u64,
}

/// Renders the stored image `top` with all its dependencies into
/// `target`, which must not exist or be an empty directory.
pub fn render(
    store: &Store,
    top: ImageId,
    target: &Path,
    opts: &RenderOptions,
    interrupt: &AtomicBool,
) -> Result<RenderReport, RenderError> {
    let list = dependency_list(store, top)?;
    let map = file_map(&list)?;
    render_list(&list, &map, target, opts, interrupt)
}

/// Writes `map` (built from `list`) into `target`: the core of
/// [`render`], for callers that built the list themselves (an `.aci` file
/// as top image).
pub fn render_list(
    list: &DependencyList,
    map: &FileMap,
    target: &Path,
    opts: &RenderOptions,
    interrupt: &AtomicBool,
) -> Result<RenderReport, RenderError> {
    let replace_mode = check_target(target)?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Best effort: a leftover that cannot be removed only costs space.
    temp::sweep_leftovers(parent, TempKind::Render);
    // Declared before the guard, so the lock outlives the removal.
    let locked = temp::create_locked_dir(parent).map_err(|source| RenderError::Io {
        path: parent.to_owned(),
        op: "create a temp dir",
        source,
    })?;
    let temp = locked.path.clone();
    let guard = TempGuard(Some(temp.clone()));
    opts.call_hook(RenderStep::AfterTempCreate);
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let verifier = opts
            .verify
            .then(|| scope.spawn(|| verify_all(list, interrupt, &stop)));
        let written = write_tree(list, map, &temp, opts, interrupt);
        if written.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let verified = match verifier {
            Some(handle) => handle.join().unwrap_or(Err(RenderError::Interrupted)),
            None => Ok(()),
        };
        // A damaged blob explains a write failure better than the failure.
        match (written, verified) {
            (_, Err(e @ RenderError::HashMismatch { .. }))
            | (_, Err(e @ RenderError::DigestMismatch { .. })) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(report), Ok(())) => Ok(report),
        }
    })?;
    if interrupt.load(Ordering::Relaxed) {
        return Err(RenderError::Interrupted);
    }
    let mode = replace_mode.unwrap_or(0o755);
    fs::set_permissions(&temp, fs::Permissions::from_mode(mode)).map_err(|source| {
        RenderError::Io {
            path: temp.clone(),
            op: "set the mode of",
            source,
        }
    })?;
    opts.call_hook(RenderStep::BeforeRename);
    publish(&temp, target, replace_mode.is_some())?;
    guard.disarm();
    Ok(result)
}

/// Checks that `target` does not exist or is an empty directory (not a
/// symlink to one); returns the mode of the directory to replace.
fn check_target(target: &Path) -> Result<Option<u32>, RenderError> {
    let not_empty = || RenderError::TargetNotEmpty {
        path: target.to_owned(),
    };
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RenderError::Io {
            path: target.to_owned(),
            op: "inspect",
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(not_empty()),
        Ok(meta) => {
            let mut entries = fs::read_dir(target).map_err(|source| RenderError::Io {
                path: target.to_owned(),
                op: "read",
                source,
            })?;
            if entries.next().is_some() {
                return Err(not_empty());
            }
            Ok(Some(meta.permissions().mode() & 0o7777))
        }
    }
}

/// Renames the finished tree into place: over the empty directory that was
/// checked (the kernel refuses if it is no longer empty), or where nothing
/// was, without replacing anything that appeared meanwhile.
fn publish(temp: &Path, target: &Path, replace: bool) -> Result<(), RenderError> {
    let flags = if replace {
        fcntl::RenameFlags::empty()
    } else {
        fcntl::RenameFlags::RENAME_NOREPLACE
    };
    fcntl::renameat2(None, temp, None, target, flags).map_err(|errno| match errno {
        Errno::EEXIST | Errno::ENOTEMPTY | Errno::ENOTDIR => RenderError::TargetNotEmpty {
            path: target.to_owned(),
        },
        errno => RenderError::Io {
            path: target.to_owned(),
            op: "rename the rendered tree to",
            source: errno.into(),
        },
    })
}

/// Removes the temp dir unless disarmed: on every error path, and on a
/// panic or early return.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            remove_tree(&path);
        }
    }
}

/// Best-effort removal of a tree we wrote: directories are made writable
/// first (a read-only directory from an image would stop a normal user).
/// Symlinks are never followed (walkdir and `remove_dir_all` use lstat).
fn remove_tree(path: &Path) {
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    let _ = fs::remove_dir_all(path);
}
