//! Fault injection for the crash tests (`tests/store_faults.rs`), compiled
//! in only with the cargo feature `test-hooks`.
//!
//! With the feature, `ACIDO_TEST_PAUSE_AT=STEP` makes an operation reaching
//! STEP create the file `$ACIDO_TEST_PAUSE_FILE` (when set) and sleep
//! `$ACIDO_TEST_PAUSE_SECS` seconds (default 60), so a test can kill or
//! interrupt it there. The steps are those of an import (after-temp-create,
//! mid-stream, before-link, after-link-before-record), of a render
//! (render-after-temp-create, render-mid-write, render-before-rename) and
//! of a pack (pack-after-temp-create, pack-mid-write), of an overlay
//! startbuild (overlay-before-mount) and of a registry push
//! (push-after-scratch). `ACIDO_TEST_PLAIN_TREES=1` makes `build -f` use
//! plain build trees where it would use overlay ones.
//!
//! Without the feature every function here returns `None` and the
//! variables are never read, so a release binary carries no hook. The
//! binary's `[dev-dependencies]` enable the feature: with resolver 2 it is
//! unified only into builds that compile dev-dependencies, so the `acido`
//! that `cargo test` builds has the hooks and `cargo build` lacks them.
//!
//! This module is the one place below the binary that reads the
//! environment: the hooks exist only for tests, and keeping them here is
//! what lets a feature remove them.

use acido_plumbing::pack::PackHook;
use acido_plumbing::render::RenderHook;
use acido_plumbing::store::ImportHook;

/// Whether the hooks are compiled in (the `test-hooks` feature).
pub const ENABLED: bool = cfg!(feature = "test-hooks");

/// The import steps' hook, for `Store::with_hook`; `None` unless
/// `ACIDO_TEST_PAUSE_AT` names an import step.
pub fn import_pause_hook() -> Option<ImportHook> {
    #[cfg(feature = "test-hooks")]
    {
        use acido_plumbing::store::ImportStep;
        enabled::pause_at(&[
            ("after-temp-create", ImportStep::AfterTempCreate),
            ("mid-stream", ImportStep::MidStream),
            ("before-link", ImportStep::BeforeLink),
            (
                "after-link-before-record",
                ImportStep::AfterLinkBeforeRecord,
            ),
        ])
    }
    #[cfg(not(feature = "test-hooks"))]
    None
}

/// The render steps' hook, for `RenderOptions::hook`; `None` unless
/// `ACIDO_TEST_PAUSE_AT` names a render step.
pub fn render_pause_hook() -> Option<RenderHook> {
    #[cfg(feature = "test-hooks")]
    {
        use acido_plumbing::render::RenderStep;
        enabled::pause_at(&[
            ("render-after-temp-create", RenderStep::AfterTempCreate),
            ("render-mid-write", RenderStep::MidWrite),
            ("render-before-rename", RenderStep::BeforeRename),
        ])
    }
    #[cfg(not(feature = "test-hooks"))]
    None
}

/// The pack steps' hook, for `PackOptions::hook`; `None` unless
/// `ACIDO_TEST_PAUSE_AT` names a pack step.
pub fn pack_pause_hook() -> Option<PackHook> {
    #[cfg(feature = "test-hooks")]
    {
        use acido_plumbing::pack::PackStep;
        enabled::pause_at(&[
            ("pack-after-temp-create", PackStep::AfterTempCreate),
            ("pack-mid-write", PackStep::MidWrite),
        ])
    }
    #[cfg(not(feature = "test-hooks"))]
    None
}

/// The steps of `startbuild --overlay` a test can pause at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayStep {
    /// The state and the tree's files are written; nothing is mounted.
    BeforeMount,
    /// An Acidofile step's upper directory is in its layer's temp, sealed;
    /// the layer is not published and nothing is mounted.
    LayerBeforePublish,
}

/// The steps of a registry `push` a test can pause at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStep {
    /// The scratch layout directory exists in the store's `tmp/`.
    AfterScratch,
}

/// Pauses at `step` when `ACIDO_TEST_PAUSE_AT` names it; does nothing
/// without the feature.
pub fn push_pause(step: PushStep) {
    #[cfg(feature = "test-hooks")]
    if let Some(hook) = enabled::pause_at(&[("push-after-scratch", PushStep::AfterScratch)]) {
        hook(step);
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = step;
}

/// Pauses at `step` when `ACIDO_TEST_PAUSE_AT` names it; does nothing
/// without the feature.
pub fn overlay_pause(step: OverlayStep) {
    #[cfg(feature = "test-hooks")]
    if let Some(hook) = enabled::pause_at(&[
        ("overlay-before-mount", OverlayStep::BeforeMount),
        ("layer-before-publish", OverlayStep::LayerBeforePublish),
    ]) {
        hook(step);
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = step;
}

/// Whether `build -f` must use plain build trees even where it could
/// mount overlay ones (`ACIDO_TEST_PLAIN_TREES=1`), so a test can compare
/// the two paths; always `false` without the feature.
pub fn plain_trees_forced() -> bool {
    #[cfg(feature = "test-hooks")]
    {
        std::env::var_os("ACIDO_TEST_PLAIN_TREES").is_some_and(|v| v == "1")
    }
    #[cfg(not(feature = "test-hooks"))]
    false
}

#[cfg(feature = "test-hooks")]
mod enabled {
    use std::path::PathBuf;
    use std::sync::Arc;

    /// The hook that pauses at the step `ACIDO_TEST_PAUSE_AT` names, when
    /// `steps` (one kind's names and values) has it.
    pub(super) fn pause_at<S>(steps: &[(&str, S)]) -> Option<Arc<dyn Fn(S) + Send + Sync>>
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
}
