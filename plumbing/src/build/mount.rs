//! Mounting the overlay of an overlay build tree (DESIGN §13) and checking
//! what the kernel gave.
//!
//! The upper directory alone must be a correct diff of the tree against
//! the lower one, so three overlayfs features stay off:
//! - `redirect_dir`: a renamed directory would be recorded as a redirect
//!   xattr pointing into the lower directory instead of as its contents;
//!   with it off, renaming a lower directory fails with `EXDEV` and `mv`
//!   copies instead;
//! - `metacopy`: a chmod/chown would copy up only metadata, leaving an
//!   upper file without its data;
//! - `index`: a copied-up hard link would stay linked to lower aliases
//!   that have no upper entry of their own.
//!
//! `mountinfo` shows an overlay feature only when it differs from the
//! module's default, so a feature missing from the mount's options has
//! the value of `/sys/module/overlay/parameters/<feature>`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// The longest option string mount(2) takes: one page, with its NUL.
const MAX_OPTIONS: usize = 4096;

/// The most lower directories overlayfs stacks (`OVL_MAX_STACK`).
const MAX_LOWER_LAYERS: usize = 500;

/// The features [`mount`] turns off and [`check`] verifies.
const FEATURES_OFF: [&str; 3] = ["redirect_dir", "metacopy", "index"];

/// Why an overlay could not be mounted, checked or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Mounting needs `CAP_SYS_ADMIN` (root).
    #[error(
        "overlay build trees need root (CAP_SYS_ADMIN) to mount overlayfs; use a plain startbuild"
    )]
    NotRoot,
    /// The kernel has no overlayfs.
    #[error("overlay build trees need overlayfs, which this kernel does not offer (not in /proc/filesystems); use a plain startbuild")]
    NoOverlayfs,
    /// A directory's path cannot be passed in overlayfs mount options.
    #[error("{}: a path with ',', ':' or '\\' cannot be used as an overlay directory", path.display())]
    UnusablePath {
        /// The directory.
        path: PathBuf,
    },
    /// The directories do not fit in mount(2)'s one page of options
    /// (many layers with long paths).
    #[error("{}: the overlay's directories take {len} bytes of mount options, more than the one page mount(2) takes", target.display())]
    OptionsTooLong {
        /// The mount point.
        target: PathBuf,
        /// The length of the options.
        len: usize,
    },
    /// mount(2) failed.
    #[error("{}: mounting the overlay (lower {}, upper {}) failed: {source}{hint}", target.display(), lower.display(), upper.display())]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The lower directory.
        lower: PathBuf,
        /// The upper directory.
        upper: PathBuf,
        /// The kernel's answer.
        source: Errno,
        /// What the answer usually means.
        hint: &'static str,
    },
    /// The kernel mounted the overlay with a feature on that must be off.
    #[error("{}: the kernel mounted the overlay with {feature}={value}, but a build tree needs it off (unmounted again)", target.display())]
    FeatureOn {
        /// The mount point.
        target: PathBuf,
        /// The feature.
        feature: &'static str,
        /// What the kernel gave.
        value: String,
    },
    /// The mount did not show up in `/proc/self/mountinfo`.
    #[error("{}: the overlay mount is not listed in /proc/self/mountinfo", target.display())]
    NotListed {
        /// The mount point.
        target: PathBuf,
    },
    /// umount(2) failed.
    #[error("{}: unmounting the overlay failed: {source}{hint}", target.display())]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        source: Errno,
        /// What the answer usually means.
        hint: &'static str,
    },
    /// Reading a `/proc` or `/sys` file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

/// Fails with a reason when this process cannot mount an overlay:
/// without `CAP_SYS_ADMIN`, or on a kernel without overlayfs.
pub fn check_support() -> Result<(), MountError> {
    if !has_sys_admin() {
        return Err(MountError::NotRoot);
    }
    let path = Path::new("/proc/filesystems");
    let list = fs::read_to_string(path).map_err(|source| MountError::Io {
        path: path.to_owned(),
        source,
    })?;
    if lists_overlay(&list) {
        Ok(())
    } else {
        Err(MountError::NoOverlayfs)
    }
}

/// Whether a `/proc/filesystems` text lists overlayfs.
fn lists_overlay(list: &str) -> bool {
    list.lines()
        .any(|line| line.split_whitespace().last() == Some("overlay"))
}

/// Whether the effective capability set holds `CAP_SYS_ADMIN` (bit 21 of
/// `CapEff` in `/proc/self/status`); the effective uid decides when the
/// file cannot be read.
fn has_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    match caps {
        Some(caps) => caps & (1 << CAP_SYS_ADMIN) != 0,
        None => nix::unistd::geteuid().is_root(),
    }
}

/// The overlay's three directories.
#[derive(Debug, Clone, Copy)]
pub struct OverlayPaths<'a> {
    /// The read-only lower directory (the cached rendering).
    pub lower: &'a Path,
    /// Read-only layers stacked above `lower`, top first (Acidofile
    /// steps' layers); usually none.
    pub layers: &'a [PathBuf],
    /// The upper directory (the tree's changes).
    pub upper: &'a Path,
    /// The work directory (same file system as `upper`).
    pub work: &'a Path,
    /// Mount with `volatile`: syncs of the overlay are skipped, and so is
    /// the sync of the upper file system that unmounting does. For trees
    /// of one process (an Acidofile build) that syncs what it keeps
    /// itself; after a crash such an overlay cannot be mounted again
    /// (overlayfs leaves `work/incompat/volatile`).
    pub volatile: bool,
}

/// Whether the overlay of `paths` with one more layer (of `extra` bytes
/// of path) can be mounted on `target` as far as its options go: its
/// paths are usable, the lower directories are no more than overlayfs
/// stacks, and the options fit in one page or the kernel takes lower
/// directories one by one (see [`mount`]). Checked before an Acidofile
/// build unmounts its tree to stack one more layer.
pub fn options_fit(paths: OverlayPaths<'_>, target: &Path, extra: usize) -> bool {
    if paths.layers.len() + 2 > MAX_LOWER_LAYERS {
        return false;
    }
    match options(paths, target) {
        Ok(data) if data.len() + extra < MAX_OPTIONS => true,
        Ok(_) | Err(MountError::OptionsTooLong { .. }) => new_api::appends_lower_dirs(),
        Err(_) => false,
    }
}

/// The mount(2) options of the overlay of `paths`.
fn options(paths: OverlayPaths<'_>, target: &Path) -> Result<Vec<u8>, MountError> {
    let mut data = Vec::new();
    let mut lowers: Vec<&Path> = paths.layers.iter().map(PathBuf::as_path).collect();
    lowers.push(paths.lower);
    let mut fields: Vec<(&str, Vec<&Path>)> = vec![("lowerdir", lowers)];
    fields.push(("upperdir", vec![paths.upper]));
    fields.push(("workdir", vec![paths.work]));
    for (key, dirs) in fields {
        data.extend_from_slice(key.as_bytes());
        data.push(b'=');
        for (i, path) in dirs.into_iter().enumerate() {
            // Absolute and without symlinks, as mountinfo shows them, so
            // that [`is_mounted`] recognises the mount from any working
            // directory.
            let path = fs::canonicalize(path).map_err(|source| MountError::Io {
                path: path.to_owned(),
                source,
            })?;
            let bytes = path.as_os_str().as_bytes();
            // overlayfs splits its options at ',' and lowerdir at ':', with
            // '\' as the escape; such a path is refused rather than escaped.
            if bytes.iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
                return Err(MountError::UnusablePath { path });
            }
            if i > 0 {
                data.push(b':');
            }
            data.extend_from_slice(bytes);
        }
        data.push(b',');
    }
    data.extend_from_slice(b"redirect_dir=off,metacopy=off,index=off");
    if paths.volatile {
        data.extend_from_slice(b",volatile");
    }
    // mount(2) copies at most one page of options: a longer string would
    // be cut, not refused.
    if data.len() >= MAX_OPTIONS {
        return Err(MountError::OptionsTooLong {
            target: target.to_owned(),
            len: data.len(),
        });
    }
    Ok(data)
}

/// Mounts the overlay of `paths` on `target` with the features of
/// [`FEATURES_OFF`] off, then [`check`]s the mount; when the check fails
/// the overlay is unmounted again.
pub fn mount(paths: OverlayPaths<'_>, target: &Path) -> Result<(), MountError> {
    let data = match options(paths, target) {
        Ok(data) => data,
        // Too long for mount(2): the new mount API takes each lower
        // directory as an option of its own (kernel 6.8 and later).
        Err(MountError::OptionsTooLong { .. }) if new_api::appends_lower_dirs() => {
            new_api::mount(paths, target).map_err(|source| MountError::Mount {
                target: target.to_owned(),
                lower: paths.lower.to_owned(),
                upper: paths.upper.to_owned(),
                source,
                hint: "",
            })?;
            return checked(target);
        }
        Err(e) => return Err(e),
    };
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(OsStr::from_bytes(&data)),
    )
    .map_err(|source| MountError::Mount {
        target: target.to_owned(),
        lower: paths.lower.to_owned(),
        upper: paths.upper.to_owned(),
        source,
        hint: match source {
            Errno::EPERM => " (root is needed)",
            Errno::ENODEV => " (no overlayfs in this kernel)",
            Errno::EINVAL => {
                " (the upper directory's file system may lack xattrs or d_type, see dmesg)"
            }
            _ => "",
        },
    })?;
    checked(target)
}

/// [`check`]s the overlay just mounted on `target`, unmounting it again
/// when the check fails.
fn checked(target: &Path) -> Result<(), MountError> {
    if let Err(e) = check(target) {
        // Best effort: the check's error says more than a failed unmount.
        let _ = unmount(target);
        return Err(e);
    }
    Ok(())
}

/// Mounting through the new mount API (`fsopen`, `fsconfig`, `fsmount`,
/// `move_mount`), whose `lowerdir+` option adds one lower directory at a
/// time, so the number of layers is not bounded by one page of options.
#[allow(unsafe_code)]
mod new_api {
    use std::ffi::{CStr, CString};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    use nix::errno::Errno;

    use super::OverlayPaths;

    /// The result of a raw syscall: the fd it returned, or its errno.
    fn fd_of(ret: libc::c_long) -> Result<OwnedFd, Errno> {
        if ret < 0 {
            return Err(Errno::last());
        }
        let fd = i32::try_from(ret).map_err(|_| Errno::EBADF)?;
        // SAFETY: the kernel just returned this descriptor to us, and
        // nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A new overlayfs configuration context.
    fn open() -> Result<OwnedFd, Errno> {
        // SAFETY: a NUL-terminated string and a flag; no memory is shared.
        fd_of(unsafe {
            libc::syscall(
                libc::SYS_fsopen,
                c"overlay".as_ptr(),
                libc::FSOPEN_CLOEXEC as libc::c_uint,
            )
        })
    }

    fn set(fs: &OwnedFd, key: &CStr, value: &CStr) -> Result<(), Errno> {
        // SAFETY: both strings are NUL-terminated and outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                libc::FSCONFIG_SET_STRING as libc::c_uint,
                key.as_ptr(),
                value.as_ptr(),
                0 as libc::c_int,
            )
        };
        if ret < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn path_value(path: &Path) -> Result<CString, Errno> {
        let path: PathBuf = std::fs::canonicalize(path)
            .map_err(|e| e.raw_os_error().map_or(Errno::EINVAL, Errno::from_raw))?;
        CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
    }

    /// Whether this kernel takes `lowerdir+` (asked once, by configuring
    /// a context that is never mounted).
    pub(super) fn appends_lower_dirs() -> bool {
        static ANSWER: OnceLock<bool> = OnceLock::new();
        *ANSWER.get_or_init(|| open().and_then(|fs| set(&fs, c"lowerdir+", c"/")).is_ok())
    }

    /// Mounts the overlay of `paths` on `target` with the features the
    /// caller checks off.
    pub(super) fn mount(paths: OverlayPaths<'_>, target: &Path) -> Result<(), Errno> {
        let fs = open()?;
        // Top first, as in `lowerdir=top:…:bottom`.
        for layer in paths.layers {
            set(&fs, c"lowerdir+", &path_value(layer)?)?;
        }
        set(&fs, c"lowerdir+", &path_value(paths.lower)?)?;
        set(&fs, c"upperdir", &path_value(paths.upper)?)?;
        set(&fs, c"workdir", &path_value(paths.work)?)?;
        for feature in super::FEATURES_OFF {
            let key = CString::new(feature).map_err(|_| Errno::EINVAL)?;
            set(&fs, &key, c"off")?;
        }
        if paths.volatile {
            // SAFETY: a NUL-terminated key that outlives the call; a flag
            // takes no value.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    libc::FSCONFIG_SET_FLAG as libc::c_uint,
                    c"volatile".as_ptr(),
                    std::ptr::null::<libc::c_void>(),
                    0 as libc::c_int,
                )
            };
            if ret < 0 {
                return Err(Errno::last());
            }
        }
        // SAFETY: no pointers; the fd is ours.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                libc::FSCONFIG_CMD_CREATE as libc::c_uint,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0 as libc::c_int,
            )
        };
        if ret < 0 {
            return Err(Errno::last());
        }
        // SAFETY: no pointers; the fd is ours.
        let mnt = fd_of(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC as libc::c_uint,
                0 as libc::c_uint,
            )
        })?;
        let target = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: both strings are NUL-terminated and outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH as libc::c_uint,
            )
        };
        if ret < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}

/// Checks that the overlay mounted on `target` has every feature of
/// [`FEATURES_OFF`] off.
pub fn check(target: &Path) -> Result<(), MountError> {
    let Some(options) = overlay_options(target)? else {
        return Err(MountError::NotListed {
            target: target.to_owned(),
        });
    };
    for feature in FEATURES_OFF {
        let value = match options.get(feature) {
            Some(value) => value.clone(),
            None => module_default(feature),
        };
        // redirect_dir=follow and =nofollow create no redirects either.
        let off = matches!(value.as_str(), "off" | "follow" | "nofollow");
        if !off {
            return Err(MountError::FeatureOn {
                target: target.to_owned(),
                feature,
                value,
            });
        }
    }
    Ok(())
}

/// The module default of an overlay feature as a mount option value:
/// `on`/`off` from `/sys/module/overlay/parameters/<feature>` (`Y`/`N`),
/// `off` when the parameter is not there (a kernel without the feature).
fn module_default(feature: &str) -> String {
    let path = Path::new("/sys/module/overlay/parameters").join(feature);
    match fs::read_to_string(path).map(|s| s.trim().to_owned()) {
        Ok(v) if v == "Y" => "on".to_owned(),
        _ => "off".to_owned(),
    }
}

/// The superblock options of the overlay mounted on `target`, when
/// `/proc/self/mountinfo` lists one there (the last one listed: the one on
/// top).
pub fn overlay_options(target: &Path) -> Result<Option<BTreeMap<String, String>>, MountError> {
    // mountinfo lists absolute paths without symlinks; a target that cannot
    // be resolved has nothing mounted on it.
    let Ok(target) = fs::canonicalize(target) else {
        return Ok(None);
    };
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read(path).map_err(|source| MountError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(overlay_options_in(&text, target.as_os_str().as_bytes()))
}

/// Whether any overlay listed in `/proc/self/mountinfo` has `upper` as
/// its upper directory, wherever it is mounted: a state whose upper
/// directory is in use must be left alone.
pub fn upper_in_use(upper: &Path) -> Result<bool, MountError> {
    let upper = fs::canonicalize(upper).unwrap_or_else(|_| upper.to_owned());
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read(path).map_err(|source| MountError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(overlay_uppers_in(&text)
        .iter()
        .any(|u| Path::new(u) == upper))
}

/// The `upperdir` of every overlay a `mountinfo` text lists.
fn overlay_uppers_in(mountinfo: &[u8]) -> Vec<String> {
    let mut uppers = Vec::new();
    for line in mountinfo.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.get(dash + 1) != Some(&&b"overlay"[..]) {
            continue;
        }
        let options = fields.get(dash + 3).copied().unwrap_or_default();
        for option in options.split(|&b| b == b',') {
            if let Some(value) = option.strip_prefix(b"upperdir=") {
                uppers.push(String::from_utf8_lossy(&unescape(value)).into_owned());
            }
        }
    }
    uppers
}

/// [`overlay_options`] on a given `mountinfo` text.
fn overlay_options_in(mountinfo: &[u8], target: &[u8]) -> Option<BTreeMap<String, String>> {
    let mut found = None;
    for line in mountinfo.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        // Field 5 is the mount point; after the optional fields, a lone
        // "-" is followed by the type, the source and the super options.
        let Some(point) = fields.get(4) else { continue };
        if unescape(point) != target {
            continue;
        }
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.get(dash + 1) != Some(&&b"overlay"[..]) {
            // Something else mounted on top hides the overlay.
            found = None;
            continue;
        }
        let options = fields.get(dash + 3).copied().unwrap_or_default();
        let mut map = BTreeMap::new();
        for option in options.split(|&b| b == b',') {
            let option = String::from_utf8_lossy(&unescape(option)).into_owned();
            match option.split_once('=') {
                Some((k, v)) => map.insert(k.to_owned(), v.to_owned()),
                None => map.insert(option, String::new()),
            };
        }
        found = Some(map);
    }
    found
}

/// Undoes the octal escapes (`\040` for a space) of `mountinfo` fields.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// Whether `target` has an overlay mounted on it whose upper directory is
/// `upper`.
pub fn is_mounted(target: &Path, upper: &Path) -> Result<bool, MountError> {
    let Ok(upper) = fs::canonicalize(upper) else {
        return Ok(false);
    };
    Ok(overlay_options(target)?
        .and_then(|o| o.get("upperdir").cloned())
        .is_some_and(|u| Path::new(&u) == upper))
}

/// Unmounts the overlay on `target` (never following a symlink there).
pub fn unmount(target: &Path) -> Result<(), MountError> {
    nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW).map_err(|source| MountError::Unmount {
        target: target.to_owned(),
        source,
        hint: match source {
            Errno::EBUSY => " (a process has a file open or its working directory in the tree)",
            Errno::EPERM => " (root is needed)",
            _ => "",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_overlayfs_in_proc_filesystems() {
        assert!(lists_overlay("nodev\tsysfs\nnodev\toverlay\n\text4\n"));
        assert!(!lists_overlay("nodev\tsysfs\n\text4\n"));
        assert!(!lists_overlay("nodev\toverlayfoo\n"));
    }

    #[test]
    fn reads_the_options_of_the_topmost_overlay() {
        let info = b"22 27 0:21 / /proc rw - proc proc rw\n\
47 27 0:40 / /t/my\\040tree/rootfs rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/s/up,workdir=/s/w,redirect_dir=on\n";
        let opts = overlay_options_in(info, b"/t/my tree/rootfs").unwrap();
        assert_eq!(opts["upperdir"], "/s/up");
        assert_eq!(opts["redirect_dir"], "on");
        assert!(overlay_options_in(info, b"/t/other").is_none());
        let hidden = [
            &info[..],
            b"48 47 0:41 / /t/my\\040tree/rootfs rw - tmpfs tmpfs rw\n",
        ]
        .concat();
        assert!(overlay_options_in(&hidden, b"/t/my tree/rootfs").is_none());
    }

    #[test]
    fn lists_every_overlays_upper_directory() {
        let info = b"22 27 0:21 / /proc rw - proc proc rw,upperdir=/not\n\
47 27 0:40 / /t/a rw - overlay overlay rw,lowerdir=/l,upperdir=/s/my\\040up,workdir=/s/w\n\
48 27 0:41 / /t/b rw shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/s/b,workdir=/s/w2\n";
        assert_eq!(overlay_uppers_in(info), ["/s/my up", "/s/b"]);
    }

    #[test]
    fn unescapes_octal_only() {
        assert_eq!(unescape(b"a\\040b\\134c\\9"), b"a b\\c\\9");
    }
}
