//! Paths inside an existing tree, resolved the way `chroot` would resolve
//! them, relative to the root's fd (see [`super`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::stat::{self, Mode, SFlag};

use crate::fs;

use super::{io_err, TreeError, MAX_SYMLINKS};

/// `dest` made absolute inside the root.
pub fn absolute(dest: &[u8]) -> Vec<u8> {
    if dest.starts_with(b"/") {
        dest.to_vec()
    } else {
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(dest);
        abs
    }
}

/// An absolute path inside the root with empty and `.` components
/// dropped and no trailing `/` (`..` is left for the resolver, which keeps
/// it inside the root).
pub fn clean(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for part in path.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." {
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// `dir/name`.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Splits a clean absolute path into its parent and last name (`None` for
/// `/`, which has no name).
pub(super) fn split_last(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = path.iter().rposition(|&b| b == b'/')?;
    let name = &path[at + 1..];
    if name.is_empty() {
        return None;
    }
    let parent = if at == 0 { &b"/"[..] } else { &path[..at] };
    Some((parent, name))
}

/// Opens the directory at `path` inside `root`, resolving symlinks as
/// `chroot` would, creating missing directories (mode 0755) when `create`
/// is set and counting them in `created`.
pub(super) fn resolve_dir(
    root: BorrowedFd<'_>,
    path: &[u8],
    create: bool,
    created: &Cell<u64>,
) -> Result<OwnedFd, TreeError> {
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut queue: VecDeque<Vec<u8>> = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .map(<[u8]>::to_vec)
        .collect();
    let mut symlinks = 0;
    while let Some(part) = queue.pop_front() {
        if part == b".." {
            // `..` of the root is the root, as in a chroot.
            stack.pop();
            continue;
        }
        let top = stack.last().map_or(root, |fd| fd.as_fd());
        match fs::open_dir_beneath(top, &part) {
            Ok(fd) => {
                stack.push(fd);
                continue;
            }
            Err(Errno::ENOENT) if create => {
                match fs::mkdir_at(top, &part, 0o755) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(io_err(path, "create a directory in")(errno)),
                }
                let fd = fs::open_dir_beneath(top, &part)
                    .map_err(io_err(path, "open a directory in"))?;
                // 0755 whatever the umask, as Dockerfile COPY makes them.
                stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
                    .map_err(io_err(path, "set the mode of a directory in"))?;
                created.set(created.get() + 1);
                stack.push(fd);
                continue;
            }
            Err(Errno::ENOENT) => {
                return Err(io_err(path, "resolve")(Errno::ENOENT));
            }
            Err(_) => {}
        }
        // Not openable as a plain directory: a symlink is resolved inside
        // the root, anything else is no directory.
        let st = fs::lstat_at(top, &part).map_err(io_err(path, "resolve"))?;
        if !fs::is_kind(&st, SFlag::S_IFLNK) {
            return Err(TreeError::NotADirectory {
                path: path.to_vec(),
                component: part,
            });
        }
        symlinks += 1;
        if symlinks > MAX_SYMLINKS {
            return Err(TreeError::SymlinkLoop {
                path: path.to_vec(),
            });
        }
        let target = fs::readlink_at(top, &part).map_err(io_err(path, "read a symlink in"))?;
        if target.starts_with(b"/") {
            stack.clear();
        }
        for piece in target
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .rev()
        {
            queue.push_front(piece.to_vec());
        }
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => fs::open_dir_beneath(root, b".").map_err(io_err(path, "open")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_joined_and_split() {
        assert_eq!(absolute(b"a/b"), b"/a/b");
        assert_eq!(absolute(b"/a"), b"/a");
        assert_eq!(clean(b"/a//./b/"), b"/a/b");
        assert_eq!(clean(b"/./"), b"/");
        assert_eq!(clean(b"/a/../b"), b"/a/../b");
        assert_eq!(join(b"/", b"x"), b"/x");
        assert_eq!(join(b"/a", b"x"), b"/a/x");
        assert_eq!(split_last(b"/a/b"), Some((&b"/a"[..], &b"b"[..])));
        assert_eq!(split_last(b"/a"), Some((&b"/"[..], &b"a"[..])));
        assert_eq!(split_last(b"/"), None);
    }
}
