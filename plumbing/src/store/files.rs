//! File helpers the store is built on: listing fanned-out directories,
//! opening regular files without following links, atomic writes and syncs.

use super::io_err;
use super::verify::FileKind;
use super::verify::IdFile;
use super::verify::StoreFile;
use super::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, OFlag};

use crate::id::ImageId;

pub(super) fn id_from_hex(hex: &str) -> Option<ImageId> {
    // The parser wants the scheme; a name with one already is not ours.
    if hex.starts_with(crate::id::SCHEME) {
        return None;
    }
    format!("{}{hex}", crate::id::SCHEME).parse().ok()
}

/// The entries of `dir` with their `lstat` kinds, sorted by path; `None`
/// when `dir` does not exist.
pub(super) fn list_dir(dir: &Path) -> Result<Option<Vec<StoreFile>>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        // DirEntry::metadata does not follow symlinks.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Removed since the listing (a writer finished): skip it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        files.push(StoreFile {
            path,
            kind: FileKind::of(&meta),
            size: meta.len(),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(files))
}

/// The names in `dir`, sorted, each with whether it is a directory (not
/// following symlinks); a missing `dir` is empty.
pub(super) fn sorted_names(dir: &Path) -> Result<Vec<(std::ffi::OsString, bool)>, StoreError> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(io_err(dir))?;
        let file_type = entry.file_type().map_err(io_err(&entry.path()))?;
        names.push((entry.file_name(), file_type.is_dir()));
    }
    names.sort();
    Ok(names)
}

/// Walks `<top>/sha512/<2 hex>/<128 hex>`: files named by an id whose
/// first two digits are their directory's go to `found`, the rest to
/// `strays`.
pub(super) fn walk_fanned(
    top: &Path,
    found: &mut Vec<IdFile>,
    strays: &mut Vec<StoreFile>,
) -> Result<(), StoreError> {
    for algo in list_dir(top)?.unwrap_or_default() {
        let is_algo = algo.path.file_name().is_some_and(|n| n == "sha512");
        if !is_algo || algo.kind != FileKind::Directory {
            strays.push(algo);
            continue;
        }
        for fan in list_dir(&algo.path)?.unwrap_or_default() {
            let fan_name = fan
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| {
                    n.len() == 2
                        && n.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .map(str::to_owned);
            let Some(fan_name) = fan_name.filter(|_| fan.kind == FileKind::Directory) else {
                strays.push(fan);
                continue;
            };
            for file in list_dir(&fan.path)?.unwrap_or_default() {
                let id = file
                    .path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| n.starts_with(&fan_name))
                    .and_then(id_from_hex);
                match id {
                    Some(id) => found.push(IdFile { id, file }),
                    None => strays.push(file),
                }
            }
        }
    }
    Ok(())
}

/// Opens `path` for reading only if it is a regular file: `lstat` first,
/// then `O_NOFOLLOW | O_NONBLOCK` (so a fifo swapped in meanwhile neither
/// blocks nor is read) and `fstat` to confirm. `None` when it does not exist.
pub(super) fn open_regular(path: &Path) -> Result<Option<File>, StoreError> {
    let not_regular = |kind| StoreError::NotRegular {
        path: path.to_owned(),
        kind,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if FileKind::of(&meta) != FileKind::Regular => {
            return Err(not_regular(FileKind::of(&meta)))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            })
        }
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: replaced by a symlink since the lstat.
        Err(e) if e.raw_os_error() == Some(Errno::ELOOP as i32) => {
            return Err(not_regular(FileKind::Symlink))
        }
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(io_err(path))?;
    if FileKind::of(&meta) != FileKind::Regular {
        return Err(not_regular(FileKind::of(&meta)));
    }
    Ok(Some(file))
}

/// Reads a regular file of at most `max` bytes (see [`open_regular`]);
/// `None` when it does not exist. A longer file is reported as corrupt.
pub(super) fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > max {
        return Err(StoreError::CorruptRecord {
            path: path.to_owned(),
            reason: format!("larger than {max} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Opens a regular temp file for a lock probe; `None` when it vanished or
/// is not a regular file (nothing to lock).
pub(super) fn open_temp(path: &Path) -> Result<Option<File>, StoreError> {
    match open_regular(path) {
        Ok(file) => Ok(file),
        Err(StoreError::NotRegular { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a locked temp file in `tmp_dir` (see
/// [`crate::temp::create_locked_file`]): `gc` leaves it alone while the
/// writer holds it.
pub(super) fn create_locked_temp(
    tmp_dir: &Path,
    prefix: &str,
) -> Result<(tempfile::NamedTempFile, Flock<File>), StoreError> {
    crate::temp::create_locked_file(tmp_dir, prefix, "", 0o600).map_err(io_err(tmp_dir))
}

pub(super) fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

pub(super) fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub(super) fn set_read_only(file: &File, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o444))
        .map_err(io_err(path))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `dest` through a synced temp file in `tmp_dir` and a
/// rename, so readers see the old content or the new, never a mix.
pub(super) fn write_atomically(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let (mut temp, _in_flight) = create_locked_temp(tmp_dir, "write-")?;
    temp.write_all(bytes).map_err(io_err(temp.path()))?;
    // Temp files are created 0600; the store's other files (blobs 0444,
    // directories 0755) are readable by all, and a store shared read-only
    // with other users must be able to read its version, indexes and
    // records too.
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(temp.path()))?;
    temp.as_file().sync_all().map_err(io_err(temp.path()))?;
    temp.persist(dest).map_err(|e| StoreError::Io {
        path: dest.to_owned(),
        source: e.error,
    })?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}
