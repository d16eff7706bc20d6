//! Writing a file map into a fresh directory: hostile-input code
//! (DESIGN §5).
//!
//! * Every path component is opened relative to its parent's fd with
//!   `O_DIRECTORY | O_NOFOLLOW` (through `openat2` with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` when the kernel has it), every
//!   object is created with an `*at` call that fails on an existing name
//!   (`O_CREAT | O_EXCL | O_NOFOLLOW`, `mkdirat`, `symlinkat`, ...), so no
//!   symlink — from the archive or anywhere else — is ever followed and
//!   nothing is created outside the temp dir ([`crate::fs`]).
//! * File data is copied from the stored blob at the index's offsets with
//!   `copy_file_range` (no decompression, no tar parse, no user-space
//!   buffer), or written from the mapped tar in large writes for images
//!   read from an `.aci` file; memory stays flat.
//! * Metadata (aci-format §11.3) goes through [`crate::fs::set_attrs`]:
//!   ownership first, then the mode (chown clears setuid/setgid), xattrs,
//!   then times with nanoseconds (symlinks too, via
//!   `AT_SYMLINK_NOFOLLOW`). Directories get theirs after every entry is
//!   laid down, deepest first, so adding children does not change their
//!   times and a read-only directory does not stop its children. What the
//!   user may not restore (ownership, device nodes, some xattrs as a
//!   normal user) is counted in the report, never silently dropped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::fcntl;
use nix::sys::stat::{self, Mode};
use nix::unistd::{self, Gid, Uid};

use crate::entry::{Entry, EntryKind};
use crate::fs;
use crate::id::ImageId;

use super::deps::{DependencyList, ImageSource};
use super::filemap::{FileMap, Supplier};
use super::plan::{Job, Planner};
use super::publish::{RenderOptions, RenderReport, RenderStep};
use super::RenderError;

/// Largest piece written or copied between interrupt checks.
const CHUNK: usize = 8 << 20;

/// The components of an archive path below `rootfs/`, each checked to be a
/// plain name.
fn components(image: ImageId, path: &[u8]) -> Result<Vec<&[u8]>, RenderError> {
    let unsafe_path = || RenderError::UnsafePath {
        image: Box::new(image),
        path: path.to_vec(),
    };
    let rel = path.strip_prefix(b"rootfs/").ok_or_else(unsafe_path)?;
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for part in &parts {
        if part.is_empty() || *part == b"." || *part == b".." || part.contains(&0) {
            return Err(unsafe_path());
        }
    }
    Ok(parts)
}

/// Directory fds from `rootfs` down to the last parent used, reused while
/// the sorted paths stay in the same directory.
struct DirStack {
    rootfs: File,
    open: Vec<(Vec<u8>, File)>,
}

impl DirStack {
    /// The fd of the directory `parts` (below rootfs).
    fn dir(&mut self, parts: &[&[u8]]) -> Result<BorrowedFd<'_>, Errno> {
        self.dir_file(parts).map(File::as_fd)
    }

    /// The directory `parts` (below rootfs), opened through the ones
    /// already open on the way.
    fn dir_file(&mut self, parts: &[&[u8]]) -> Result<&File, Errno> {
        let keep = self
            .open
            .iter()
            .zip(parts)
            .take_while(|((name, _), part)| name.as_slice() == **part)
            .count();
        self.open.truncate(keep);
        for part in &parts[keep..] {
            let parent = self.open.last().map_or(&self.rootfs, |(_, dir)| dir);
            let dir = File::from(fs::open_dir_at(parent.as_raw_fd(), part)?);
            self.open.push((part.to_vec(), dir));
        }
        Ok(self.open.last().map_or(&self.rootfs, |(_, dir)| dir))
    }

    /// Opens the directory `parts` afresh, leaving the stack alone.
    fn open_fresh(&self, parts: &[&[u8]]) -> Result<OwnedFd, Errno> {
        let mut fd = fs::open_dir_at(self.rootfs.as_raw_fd(), b".")?;
        for part in parts {
            fd = fs::open_dir_at(fd.as_raw_fd(), part)?;
        }
        Ok(fd)
    }
}

/// An entry of the list: (element, entry index).
type EntryAt = (usize, usize);

struct Writer<'a> {
    list: &'a DependencyList,
    opts: &'a RenderOptions,
    interrupt: &'a AtomicBool,
    report: RenderReport,
    euid: Uid,
    egid: Gid,
    /// The process's umask, when known: files are created with their
    /// permission bits, and a separate chmod is needed only where the
    /// umask or special bits make the created mode differ.
    umask: Option<u32>,
    /// Open blob files, for `copy_file_range`.
    blobs: HashMap<ImageId, File>,
}

fn entry_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(Errno) -> RenderError + 'p {
    move |errno| RenderError::Entry {
        path: path.to_vec(),
        op,
        source: errno.into(),
    }
}

fn io_entry_err<'p>(
    path: &'p [u8],
    op: &'static str,
) -> impl FnOnce(io::Error) -> RenderError + 'p {
    move |source| RenderError::Entry {
        path: path.to_vec(),
        op,
        source,
    }
}

pub(super) fn write_tree(
    list: &DependencyList,
    map: &FileMap,
    temp: &Path,
    opts: &RenderOptions,
    interrupt: &AtomicBool,
) -> Result<RenderReport, RenderError> {
    let euid = unistd::geteuid();
    let mut w = Writer {
        list,
        opts,
        interrupt,
        report: RenderReport {
            images: list.images.len(),
            as_root: euid.is_root(),
            ..RenderReport::default()
        },
        euid,
        egid: unistd::getegid(),
        umask: fs::process_umask(),
        blobs: HashMap::new(),
    };
    let mut planner = Planner::new(list);
    let io_err = |op| {
        move |errno: Errno| RenderError::Io {
            path: temp.to_owned(),
            op,
            source: errno.into(),
        }
    };
    let root = fs::open_root_dir(temp).map_err(io_err("open"))?;
    // A setgid parent gives a new directory its group and its setgid bit,
    // which every object below would inherit: take both back so what we
    // create belongs to our effective ids, as `wanted_owner` assumes.
    unistd::fchown(root.as_raw_fd(), None, Some(w.egid)).map_err(io_err("set the group of"))?;
    stat::fchmod(root.as_raw_fd(), Mode::from_bits_truncate(0o700))
        .map_err(io_err("set the mode of"))?;
    fs::mkdir_at(root.as_fd(), b"rootfs", 0o700).map_err(io_err("create rootfs in"))?;
    let rootfs = fs::open_dir_at(root.as_raw_fd(), b"rootfs").map_err(io_err("open rootfs in"))?;
    let mut stack = DirStack {
        rootfs: File::from(rootfs),
        open: Vec::new(),
    };
    // Directories first, in map order (parents before children), with
    // every other path checked and planned; then the other objects on
    // several threads, the hard links, and last the directories' metadata.
    let mut dirs: Vec<(&[u8], Option<EntryAt>)> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for (path, supplier) in &map.paths {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RenderError::Interrupted);
        }
        match path.as_slice() {
            b"manifest" => {
                if let Supplier::Entry { element, entry, .. } = *supplier {
                    w.manifest(root.as_fd(), element, entry)?;
                }
                continue;
            }
            b"rootfs" => {
                let source = match *supplier {
                    Supplier::Entry { element, entry, .. } => Some((element, entry)),
                    Supplier::Implied => None,
                };
                dirs.push((path, source));
                w.report.entries += 1;
                continue;
            }
            _ => {}
        }
        let image = match *supplier {
            Supplier::Entry { element, .. } => list.images[element].id,
            Supplier::Implied => list.images[0].id,
        };
        let parts = components(image, path)?;
        let Some((name, parent_parts)) = parts.split_last() else {
            continue;
        };
        let source = match *supplier {
            Supplier::Implied => None,
            Supplier::Entry { element, entry, .. } => {
                if !list.images[element].image.image.entries()[entry]
                    .kind
                    .is_dir()
                {
                    jobs.push(planner.plan(path, element, entry)?);
                    continue;
                }
                Some((element, entry))
            }
        };
        let parent = stack
            .dir(parent_parts)
            .map_err(entry_err(path, "open the parent of"))?;
        fs::mkdir_at(parent, name, 0o700).map_err(entry_err(path, "create directory"))?;
        dirs.push((path, source));
        w.report.entries += 1;
    }
    stack.open.clear();
    let (creates, links): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|job| matches!(job, Job::Create { .. }));
    // The directories and half the other objects are there.
    let (first_half, second_half) = creates.split_at(creates.len() / 2);
    create_all(&mut w, &stack.rootfs, first_half)?;
    opts.call_hook(RenderStep::MidWrite);
    create_all(&mut w, &stack.rootfs, second_half)?;
    for job in &links {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RenderError::Interrupted);
        }
        w.link(&stack, job)?;
    }
    // Children before parents: a directory's own metadata, times
    // included, is set after everything below it was written (aci-format
    // §9.3 sets them per image, which lets lower images change upper
    // directories' times), and a read-only directory does not stop its
    // children. Walking the directories in reverse tree order (a parent
    // before its children, siblings in order, so reversed: every subtree
    // before its root) opens each one once through the stack.
    let tree_order = |path: &[u8]| -> Vec<u8> {
        path.iter()
            .map(|&b| if b == b'/' { 0 } else { b })
            .collect()
    };
    dirs.sort_by_cached_key(|(path, _)| std::cmp::Reverse(tree_order(path)));
    for (path, source) in dirs {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RenderError::Interrupted);
        }
        let rootfs_dir;
        let dir = if path == b"rootfs" {
            stack.open.clear();
            rootfs_dir = &stack.rootfs;
            rootfs_dir
        } else {
            let parts = components(list.images[0].id, path)?;
            stack
                .dir_file(&parts)
                .map_err(entry_err(path, "open directory"))?
        };
        match source {
            Some((element, entry)) => {
                let e = &list.images[element].image.image.entries()[entry];
                w.finish_file(dir, path, e, None)?;
            }
            // Implied directories: 0755 whatever the umask (§9.3), owner
            // and times as created.
            None => stat::fchmod(dir.as_raw_fd(), Mode::from_bits_truncate(0o755))
                .map_err(entry_err(path, "set the mode of"))?,
        }
    }
    Ok(w.report)
}

/// Most threads creating files at once: beyond a few, a local file
/// system's journal, not the CPU, is what they wait for.
const MAX_CREATE_THREADS: usize = 4;

/// Jobs a thread claims at a time: enough neighbours to reuse its open
/// directories, few enough to share the work evenly.
const CLAIM: usize = 64;

/// Runs the create jobs on up to [`MAX_CREATE_THREADS`] threads (this one
/// included), each claiming runs of neighbouring paths and opening their
/// directories through its own stack. Every parent directory exists
/// already and each job creates a different name, so the threads never
/// depend on one another. After a failure the threads still run every
/// job before it in map order (and none after), so the error returned is
/// the one a sequential render would have met first.
fn create_all(w: &mut Writer, rootfs: &File, jobs: &[Job]) -> Result<(), RenderError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_CREATE_THREADS)
        .min(jobs.len().div_ceil(CLAIM))
        .max(1);
    let next = AtomicUsize::new(0);
    // The lowest index of a failed job so far (MAX: none).
    let failed_at = AtomicUsize::new(usize::MAX);
    let stack = || -> Result<DirStack, RenderError> {
        let rootfs = rootfs.try_clone().map_err(|source| RenderError::Io {
            path: PathBuf::from("rootfs"),
            op: "reopen",
            source,
        })?;
        Ok(DirStack {
            rootfs,
            open: Vec::new(),
        })
    };
    let work = |w: &mut Writer, mut stack: DirStack| -> Result<(), (usize, RenderError)> {
        loop {
            let start = next.fetch_add(CLAIM, Ordering::Relaxed);
            let Some(claimed) = jobs.get(start..jobs.len().min(start.saturating_add(CLAIM))) else {
                return Ok(());
            };
            for (at, job) in (start..).zip(claimed) {
                if at > failed_at.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let result = if w.interrupt.load(Ordering::Relaxed) {
                    Err(RenderError::Interrupted)
                } else {
                    w.create(&mut stack, job)
                };
                if let Err(e) = result {
                    failed_at.fetch_min(at, Ordering::Relaxed);
                    return Err((at, e));
                }
            }
        }
    };
    let mut helpers = Vec::with_capacity(threads - 1);
    for _ in 1..threads {
        helpers.push((w.helper(), stack()?));
    }
    let own_stack = stack()?;
    let mut errors = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = helpers
            .into_iter()
            .map(|(mut helper, stack)| {
                scope.spawn(|| {
                    let result = work(&mut helper, stack);
                    (helper.report, result)
                })
            })
            .collect();
        if let Err(e) = work(w, own_stack) {
            errors.push(e);
        }
        for handle in handles {
            let (report, result) = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            w.absorb(&report);
            if let Err(e) = result {
                errors.push(e);
            }
        }
    });
    match errors.into_iter().min_by_key(|(at, _)| *at) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

impl<'a> Writer<'a> {
    /// A writer for another thread: same settings, its own report and
    /// open blobs.
    fn helper(&self) -> Writer<'a> {
        Writer {
            list: self.list,
            opts: self.opts,
            interrupt: self.interrupt,
            report: RenderReport::default(),
            euid: self.euid,
            egid: self.egid,
            umask: self.umask,
            blobs: HashMap::new(),
        }
    }

    /// Adds the counts of a helper's report to this one.
    fn absorb(&mut self, other: &RenderReport) {
        let r = &mut self.report;
        r.entries += other.entries;
        r.bytes += other.bytes;
        r.ownership_not_restored += other.ownership_not_restored;
        r.devices_not_created += other.devices_not_created;
        r.xattrs_not_restored += other.xattrs_not_restored;
    }

    fn entry(&self, element: usize, entry: usize) -> &'a Entry {
        &self.list.images[element].image.image.entries()[entry]
    }

    fn manifest(
        &mut self,
        root: BorrowedFd<'_>,
        element: usize,
        entry: usize,
    ) -> Result<(), RenderError> {
        let e = self.entry(element, entry);
        let (file, created) = self.create_file(root, b"manifest", &e.path, e)?;
        self.write_data(&file, element, e)?;
        self.finish_file(&file, &e.path, e, created)?;
        self.report.entries += 1;
        Ok(())
    }

    /// Creates the file with the entry's permission bits (the temp dir is
    /// ours alone, so they expose nothing); returns it with the mode it got
    /// when the umask is known.
    fn create_file(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        e: &Entry,
    ) -> Result<(File, Option<u32>), RenderError> {
        let perms = e.mode & 0o777;
        let file = fs::create_file(dir, name, perms).map_err(entry_err(path, "create file"))?;
        Ok((file, self.umask.map(|umask| perms & !umask)))
    }

    /// The owner to set, or `None` when it is already the creator's.
    fn wanted_owner(&mut self, e: &Entry) -> Option<(Uid, Gid)> {
        let (Ok(uid), Ok(gid)) = (u32::try_from(e.uid), u32::try_from(e.gid)) else {
            // Ids beyond 32 bits cannot exist on Linux.
            self.report.ownership_not_restored += 1;
            return None;
        };
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        // New objects already belong to the effective ids: the temp dir
        // was given our group and no setgid bit, so nothing below it
        // inherits another group.
        (uid != self.euid || gid != self.egid).then_some((uid, gid))
    }

    /// Counts what [`fs::set_attrs`] or [`fs::set_attrs_at`] could not
    /// restore.
    fn count(&mut self, missed: fs::NotRestored) {
        self.report.ownership_not_restored += u64::from(missed.owner);
        self.report.xattrs_not_restored += missed.xattrs;
    }

    /// The metadata of a file or directory (aci-format §11.3, in the
    /// order [`fs::set_attrs`] keeps); the chmod is left out when
    /// `created` says the object already has the mode.
    fn finish_file(
        &mut self,
        file: &File,
        path: &[u8],
        e: &Entry,
        created: Option<u32>,
    ) -> Result<(), RenderError> {
        let wanted = e.mode & 0o7777;
        let (atime, mtime) = fs::entry_times(e);
        let attrs = fs::Attrs {
            owner: self.wanted_owner(e),
            mode: (created != Some(wanted)).then(|| Mode::from_bits_truncate(wanted)),
            xattrs: &e.xattrs,
            atime,
            mtime,
        };
        let missed =
            fs::set_attrs(file, &attrs).map_err(|err| entry_err(path, err.op)(err.errno))?;
        self.count(missed);
        Ok(())
    }

    /// Writes the data of regular entry `e` of element `element`.
    fn write_data(&mut self, out: &File, element: usize, e: &Entry) -> Result<(), RenderError> {
        let listed = &self.list.images[element];
        let data = listed.image.image.data(e);
        let mut done = 0;
        if listed.image.source == ImageSource::Store && e.size > 0 {
            let blob = match self.blobs.remove(&listed.id) {
                Some(blob) => blob,
                None => File::open(listed.image.image.path())
                    .map_err(io_entry_err(&e.path, "read the blob of"))?,
            };
            let copied = self.copy_range(&blob, out, e);
            self.blobs.insert(listed.id, blob);
            done = copied?;
            if done == e.size {
                return Ok(());
            }
        }
        let rest = data
            .get(usize::try_from(done).unwrap_or(usize::MAX)..)
            .unwrap_or_default();
        let mut out = out;
        for chunk in rest.chunks(CHUNK) {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(RenderError::Interrupted);
            }
            out.write_all(chunk)
                .map_err(io_entry_err(&e.path, "write the data of"))?;
            self.progress(chunk.len() as u64);
        }
        Ok(())
    }

    /// Copies the data of `e` from its stored blob in the kernel; returns
    /// how many bytes it copied, short of the size only where the file
    /// system cannot copy between these files (the caller writes the rest
    /// from the mapped blob).
    fn copy_range(&mut self, blob: &File, out: &File, e: &Entry) -> Result<u64, RenderError> {
        let eof = || RenderError::Entry {
            path: e.path.clone(),
            op: "read the data of",
            source: io::ErrorKind::UnexpectedEof.into(),
        };
        let mut offset = i64::try_from(e.data_offset).map_err(|_| eof())?;
        let mut done = 0u64;
        while done < e.size {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(RenderError::Interrupted);
            }
            let want = usize::try_from((e.size - done).min(CHUNK as u64)).unwrap_or(CHUNK);
            // An explicit input offset: no seek and none of the fstat
            // probing `io::copy` does per call, which at ~10k small files
            // was a third of a render's system calls. The output offset
            // advances by itself. No pages of the blob are mapped into
            // this process.
            match fcntl::copy_file_range(blob, Some(&mut offset), out, None, want) {
                Ok(0) => return Err(eof()),
                Ok(n) => {
                    done += n as u64;
                    self.progress(n as u64);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EXDEV | Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP) => {
                    return Ok(done)
                }
                Err(errno) => return Err(entry_err(&e.path, "write the data of")(errno)),
            }
        }
        Ok(done)
    }

    fn progress(&mut self, n: u64) {
        self.report.bytes += n;
        if let Some(progress) = &self.opts.progress {
            progress(n);
        }
    }

    /// Creates the object of a [`Job::Create`] (a link job is left to
    /// [`Writer::link`]), opening its parent through `stack`.
    fn create(&mut self, stack: &mut DirStack, job: &Job) -> Result<(), RenderError> {
        let Job::Create {
            path,
            element,
            entry,
        } = *job
        else {
            return Ok(());
        };
        let parts = components(self.list.images[element].id, path)?;
        let Some((name, parent_parts)) = parts.split_last() else {
            return Ok(());
        };
        let parent = stack
            .dir(parent_parts)
            .map_err(entry_err(path, "open the parent of"))?;
        let e = self.entry(element, entry);
        self.report.entries += 1;
        match e.kind {
            EntryKind::Regular => {
                let (file, created) = self.create_file(parent, name, path, e)?;
                self.write_data(&file, element, e)?;
                self.finish_file(&file, &e.path, e, created)?;
                Ok(())
            }
            EntryKind::Symlink => {
                let target = e.link_target.as_deref().unwrap_or_default();
                self.node(parent, name, path, e, fs::Node::Symlink(target))
            }
            EntryKind::Fifo => self.node(parent, name, path, e, fs::Node::Fifo),
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                let (kind, dev) = fs::device_node(e);
                self.node(parent, name, path, e, fs::Node::Device(kind, dev))
            }
            EntryKind::Directory | EntryKind::HardLink => Err(RenderError::Entry {
                path: path.to_vec(),
                op: "resolve the hard link",
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "link chain does not end in a file",
                ),
            }),
        }
    }

    /// Creates the hard link of a [`Job::Link`] to the first path of its
    /// group, which the create phase wrote.
    fn link(&mut self, stack: &DirStack, job: &Job) -> Result<(), RenderError> {
        let Job::Link { path, first } = *job else {
            return Ok(());
        };
        let image = self.list.images[0].id;
        let parts = components(image, path)?;
        let first_parts = components(image, first)?;
        let (Some((name, parent_parts)), Some((first_name, first_parent))) =
            (parts.split_last(), first_parts.split_last())
        else {
            return Ok(());
        };
        let parent = stack
            .open_fresh(parent_parts)
            .map_err(entry_err(path, "open the parent of"))?;
        let first_dir = stack
            .open_fresh(first_parent)
            .map_err(entry_err(path, "open the link target's directory for"))?;
        self.report.entries += 1;
        fs::link_at(first_dir.as_fd(), first_name, parent.as_fd(), name)
            .map_err(entry_err(path, "create hard link"))
    }

    /// Creates a symlink, fifo or device with its metadata (a device
    /// the user may not create is counted and left out).
    fn node(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        e: &Entry,
        node: fs::Node<'_>,
    ) -> Result<(), RenderError> {
        let (atime, mtime) = fs::entry_times(e);
        let attrs = || fs::Attrs {
            owner: self.wanted_owner(e),
            mode: Some(Mode::from_bits_truncate(e.mode & 0o7777)),
            xattrs: &[],
            atime,
            mtime,
        };
        match fs::create_node(parent, name, node, attrs) {
            Ok(Some(missed)) => self.count(missed),
            Ok(None) => self.report.devices_not_created += 1,
            Err(fs::NodeError::Create(errno)) => return Err(entry_err(path, "create")(errno)),
            Err(fs::NodeError::Attrs(err)) => return Err(entry_err(path, err.op)(err.errno)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_anything_but_plain_names() {
        let id = ImageId::from_digest([7; 64]);
        assert_eq!(components(id, b"rootfs/a/b").unwrap(), [&b"a"[..], b"b"]);
        for bad in [
            &b"rootfs/../x"[..],
            b"rootfs/a/./b",
            b"rootfs//a",
            b"rootfs/a/",
            b"manifest",
            b"rootfsx/a",
            b"rootfs/a\0b",
        ] {
            assert!(
                matches!(components(id, bad), Err(RenderError::UnsafePath { .. })),
                "{bad:?}"
            );
        }
    }
}
