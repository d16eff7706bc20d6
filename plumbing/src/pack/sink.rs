//! The file sink: a locked temp beside the output, synced and renamed
//! into place (see [`crate::temp`]).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::temp::{self, TempKind};

use super::packer::check_interrupt;
use super::{PackError, PackOptions, PackReport, PackStep};

/// The (device, inode) of an output file that must not be packed into itself.
pub(super) type OutputGuard = Option<(u64, u64)>;

/// Runs `write` on a temp file beside `file` (given the temp file's
/// (device, inode), which must not be packed into itself), then syncs it and
/// renames it into place, replacing an existing `file` only when
/// `overwrite` is set. The temp is locked while it lives, and leftovers of
/// killed packs beside `file` are swept first.
pub(super) fn write_file_atomically(
    file: &Path,
    overwrite: bool,
    opts: &PackOptions,
    write: &mut dyn FnMut(&mut File, OutputGuard) -> Result<PackReport, PackError>,
) -> Result<PackReport, PackError> {
    if !overwrite && fs::symlink_metadata(file).is_ok() {
        return Err(PackError::OutputExists {
            path: file.to_owned(),
        });
    }
    let output_err = |source| PackError::Output {
        path: file.to_owned(),
        source,
    };
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Best effort: a leftover that cannot be removed only costs space.
    temp::sweep_leftovers(parent, TempKind::Pack);
    // `_lock` is held until the temp is renamed or removed: dropped last.
    let (mut tmp, _lock) = temp::create_pack_file(parent).map_err(output_err)?;
    if let Some(hook) = &opts.hook {
        hook(PackStep::AfterTempCreate);
    }
    let tmp_meta = tmp.as_file().metadata().map_err(output_err)?;
    let guard = Some((tmp_meta.dev(), tmp_meta.ino()));
    let report = write(tmp.as_file_mut(), guard)?;
    tmp.as_file().sync_all().map_err(output_err)?;
    // The last moment an interrupt can still leave everything as it was.
    check_interrupt(opts)?;
    if overwrite {
        tmp.persist(file).map_err(|e| output_err(e.error))?;
    } else {
        tmp.persist_noclobber(file).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                PackError::OutputExists {
                    path: file.to_owned(),
                }
            } else {
                output_err(e.error)
            }
        })?;
    }
    // The rename is durable only once the directory is synced.
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(output_err)?;
    Ok(report)
}
