//! The final image of an Acidofile build: the diff of the final tree
//! against the `FROM` image, built as without any cache, or, when every
//! step was cached and the image those steps built before is still
//! stored, that image again (found through a pointer entry).

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use acido_plumbing::compression::Compression;
use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::ImageManifest;
use acido_plumbing::pack::{self, PackOptions};
use acido_plumbing::store::{ExportOptions, Store};
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::cache::{self, Key};
use super::parse::Instruction;
use super::steps::{Builder, Phase, COPY_MTIME};
use super::{shorten, AcidofileError, StepError, AC_VERSION};
use crate::build::{self, BuildCmdError, BuildReport, TreeKnowledge};

/// Makes the image after the last step: returns its id, and the build's
/// report unless a stored image was reused.
pub(super) fn finish(
    b: &mut Builder<'_>,
    instructions: &[Instruction],
) -> Result<(ImageId, Option<BuildReport>), AcidofileError> {
    let last_step = |source: StepError| AcidofileError::Step {
        file: b.file.to_owned(),
        line: instructions.last().map_or(0, |i| i.line),
        step: instructions.len(),
        text: instructions
            .last()
            .map_or_else(String::new, |i| shorten(&i.text)),
        source: Box::new(source),
    };
    let build_err = |source| AcidofileError::Build {
        file: b.file.to_owned(),
        source,
    };
    let manifest = b.manifest.as_ref().ok_or(StepError::Interrupted);
    let manifest = manifest.map_err(last_step)?.to_json();
    // The image is decided by the last step's key and the final manifest.
    let image_key = b.key.map(|k| k.next(&[("image", manifest.as_bytes())]));
    let reusable = b.phase == Phase::Deferred && b.opts.use_cache && b.opts.rebuild_from.is_none();
    if let Some(target) = image_key
        .filter(|_| reusable)
        .and_then(|key| b.entries.get(&key))
        .and_then(|pointer| pointer_target(b.store, &pointer))
    {
        if b.opts.keep_tree.is_some() {
            b.finish_tree().map_err(last_step)?;
            b.write_manifest().map_err(last_step)?;
        }
        if let Some(out) = &b.opts.build.output {
            export(
                b.store,
                &target,
                out,
                b.opts.build.overwrite,
                &b.opts.build.pack,
            )
            .map_err(build_err)?;
        }
        b.progress
            .note(&format!("every step cached: reusing {target}"));
        return Ok((target, None));
    }
    b.finish_tree().map_err(last_step)?;
    b.write_manifest().map_err(last_step)?;
    // The snapshot of the FROM image's render, when the tree came from
    // it; otherwise every file is compared.
    // (An overlay tree's build reads its upper directory; its state is
    // the mount's and stays until `build_file` ends it.)
    let state = match &b.from_snapshot {
        _ if b.on_overlay => Ok(()),
        Some(bytes) => b.store.save_build_state(&b.tree, bytes),
        None => b.store.remove_build_state(&b.tree),
    };
    state.map_err(|e| build_err(e.into()))?;
    b.progress.note("building the image");
    let report = build::build_with(
        b.store,
        &b.tree,
        &b.opts.build,
        &b.work,
        b.progress.as_ref(),
        TreeKnowledge {
            since: None,
            layer_walks: Some(&b.layer_walks),
            cache_entry: false,
            records: b.records.as_deref(),
        },
    )
    .map_err(build_err)?;
    let id = report.pack.id;
    if let Some(key) = image_key {
        // Only a stored image can be reused.
        if let Ok(record) = b.store.record(&id) {
            store_pointer(b, &key, &id, &record.name).map_err(build_err)?;
        }
    }
    Ok((id, Some(report)))
}

/// The image a pointer entry stands for, when it is still stored.
fn pointer_target(store: &Store, pointer: &ImageId) -> Option<ImageId> {
    let image = store.open(pointer).ok()?;
    let manifest = ImageManifest::from_slice(image.manifest_bytes()).ok()?;
    let dependency = manifest.dependencies.first()?;
    let target: ImageId = dependency.image_id.as_ref()?.to_string().parse().ok()?;
    store.record(&target).ok().map(|_| target)
}

/// Stores the pointer entry for `key`: an empty rootfs depending on the
/// built image `target`.
fn store_pointer(
    b: &Builder<'_>,
    key: &Key,
    target: &ImageId,
    name: &str,
) -> Result<(), BuildCmdError> {
    let manifest =
        cache::entry_manifest(AC_VERSION, key, "(the built image)", Some((name, target)));
    let rootfs = b.work.join("pointer/rootfs");
    let io_err = |source| BuildCmdError::Io {
        path: rootfs.clone(),
        source,
    };
    fs::create_dir_all(&rootfs).map_err(io_err)?;
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755)).map_err(io_err)?;
    // A fixed time: the same pointer for the same image.
    let time = TimeSpec::new(COPY_MTIME, 0);
    utimensat(None, &rootfs, &time, &time, UtimensatFlags::NoFollowSymlink)
        .map_err(|errno| io_err(errno.into()))?;
    let (mut temp, _in_flight) = b.store.create_temp("build-")?;
    let opts = PackOptions {
        compression: Compression::None,
        ..b.opts.build.pack.clone()
    };
    pack::pack_selected(
        manifest.to_string().as_bytes(),
        &rootfs,
        &|_| false,
        temp.as_file_mut(),
        &opts,
    )?;
    let file = File::open(temp.path()).map_err(|source| BuildCmdError::Io {
        path: temp.path().to_owned(),
        source,
    })?;
    b.store.import(file, "step cache")?;
    Ok(())
}

/// Writes the stored image `id` to `out` (compressed as `pack` says),
/// through a temp file beside it so no half file is ever at `out`.
fn export(
    store: &Store,
    id: &ImageId,
    out: &Path,
    overwrite: bool,
    pack: &PackOptions,
) -> Result<(), BuildCmdError> {
    let io_err = |source| BuildCmdError::Io {
        path: out.to_owned(),
        source,
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".acido-build-")
        .tempfile_in(parent)
        .map_err(io_err)?;
    let opts = ExportOptions {
        compression: pack.compression,
        level: pack.level,
        xz_threads: pack.xz_threads,
    };
    store.export(id, temp.as_file_mut(), &opts)?;
    let persisted = if overwrite {
        temp.persist(out).map(|_| ())
    } else {
        temp.persist_noclobber(out).map(|_| ())
    };
    persisted.map_err(|e| io_err(e.error))
}
