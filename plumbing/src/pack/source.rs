//! Reading a layout directory's top level and opening files safely.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

use super::PackError;

/// Checks the top level of a layout directory (aci-format §1: `manifest` a
/// regular file, `rootfs` a directory, nothing else) and returns the
/// manifest's bytes. `guard` is the (device, inode) of an output file that
/// must not be inside the layout.
pub(super) fn check_layout(dir: &Path, guard: Option<(u64, u64)>) -> Result<Vec<u8>, PackError> {
    let read_err = |source| PackError::ReadLayout {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(read_err)? {
        names.push(item.map_err(read_err)?.file_name());
    }
    // Sorted so that the error for several offending names is stable.
    names.sort();
    let (mut manifest, mut rootfs) = (false, false);
    for name in names {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(|source| PackError::Read {
            path: path.clone(),
            source,
        })?;
        if guard == Some((meta.dev(), meta.ino())) {
            return Err(PackError::OutputInsideLayout { path });
        }
        match name.as_bytes() {
            b"manifest" if meta.is_file() => manifest = true,
            b"manifest" => return Err(PackError::ManifestNotRegular { path }),
            b"rootfs" if meta.is_dir() => rootfs = true,
            b"rootfs" => return Err(PackError::RootfsNotDirectory { path }),
            _ => {
                return Err(PackError::UnexpectedTopLevel {
                    dir: dir.to_owned(),
                    name,
                })
            }
        }
    }
    if !manifest {
        return Err(PackError::MissingManifest {
            dir: dir.to_owned(),
        });
    }
    if !rootfs {
        return Err(PackError::MissingRootfs {
            dir: dir.to_owned(),
        });
    }
    let path = dir.join("manifest");
    let (mut file, _) = open_regular(&path, None)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| PackError::Read { path, source })?;
    Ok(bytes)
}

/// Opens a regular file without following a symlink, without blocking on a
/// fifo and without taking a terminal that replaced it since it was listed,
/// and returns it with its `fstat`. When
/// `expected` is given, the opened file must be that (device, inode).
pub(super) fn open_regular(
    path: &Path,
    expected: Option<(u64, u64)>,
) -> Result<(File, Metadata), PackError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|source| PackError::Read {
            path: path.to_owned(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| PackError::Read {
        path: path.to_owned(),
        source,
    })?;
    let same = expected.is_none_or(|id| id == (meta.dev(), meta.ino()));
    if !meta.is_file() || !same {
        return Err(PackError::FileChanged {
            path: path.to_owned(),
        });
    }
    Ok((file, meta))
}
