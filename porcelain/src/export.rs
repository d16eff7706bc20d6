//! `export`: write a stored image out as an ACI file, verified, in the
//! compression asked for, atomically.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::store::{ExportOptions, ExportReport, Store, StoreError};

/// Why an export failed. A failed export to a file leaves no file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The name did not resolve to one stored image.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// The image could not be read or written (a damaged blob is refused).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output file exists and replacing it was not asked for.
    #[error("{path}: file exists (use --overwrite to replace it)")]
    Exists {
        /// The output file.
        path: PathBuf,
    },
    /// Creating or publishing the output file failed.
    #[error("{path}: {source}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Where the ACI goes.
pub enum Target<'a> {
    /// A file, written through a temp file beside it and renamed into place.
    File {
        /// The output path.
        path: &'a Path,
        /// Replace an existing file.
        overwrite: bool,
    },
    /// A stream (standard output): written as it is encoded, after the
    /// blob was verified.
    Stream(&'a mut dyn Write),
}

/// Exports the image `name` (id, prefix or app string) to `target`.
pub fn export(
    store: &Store,
    name: &str,
    target: Target<'_>,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    let id = naming::resolve(store, &ImageRef::parse(name, false)?)?.id;
    match target {
        Target::Stream(out) => Ok(store.export(&id, out, opts)?),
        Target::File { path, overwrite } => {
            let out_err = |source| ExportError::Output {
                path: path.to_owned(),
                source,
            };
            if !overwrite && fs::symlink_metadata(path).is_ok() {
                return Err(ExportError::Exists {
                    path: path.to_owned(),
                });
            }
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            // Beside the output, so the rename stays on one filesystem; a
            // failure drops (deletes) the temp and leaves no partial file.
            let temp = tempfile::Builder::new()
                .prefix(".acido-export-")
                .tempfile_in(dir)
                .map_err(out_err)?;
            let mut writer = BufWriter::with_capacity(1 << 20, temp.as_file());
            let report = store.export(&id, &mut writer, opts)?;
            writer.flush().map_err(out_err)?;
            drop(writer);
            temp.as_file().sync_all().map_err(out_err)?;
            // The temp is 0600; an exported image is an ordinary file.
            set_default_mode(temp.as_file()).map_err(out_err)?;
            let persisted = if overwrite {
                temp.persist(path).map(drop)
            } else {
                temp.persist_noclobber(path).map(drop)
            };
            match persisted {
                Ok(()) => Ok(report),
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    Err(ExportError::Exists {
                        path: path.to_owned(),
                    })
                }
                Err(e) => Err(out_err(e.error)),
            }
        }
    }
}

/// Gives the file mode 0666 minus the umask, as `open(2)` would.
fn set_default_mode(file: &fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    nix::sys::stat::umask(mask);
    let mode = 0o666 & !mask.bits();
    file.set_permissions(fs::Permissions::from_mode(mode))
}
