//! The processes of one run and what each does, after `fork`.
//!
//! ```text
//! acido (caller)      blocks signals, forks, reads the error pipe, then
//!  │                  forwards signals to `ns` until it exits
//!  └ ns                new user (when not root) and PID namespaces;
//!    │                 forwards signals to init; cleans up if orphaned
//!    └ init (pid 1)    new mount, UTS, IPC (and network) namespaces,
//!      │               mounts, pivot_root, hostname, lo; forwards signals
//!      │               to the command, reaps orphans, exits with the
//!      │               command's status, which kills the whole namespace
//!      └ command       ids, working directory, signal mask reset, exec
//! ```
//!
//! The children never return into the caller's code: each ends with
//! `execve` or `_exit`. A failure in a child is written to the error pipe
//! as a fixed [`Failure`] record (which step, which errno) and formatted
//! by the caller, so the children work on data prepared before the fork
//! and format nothing. The pipe is close-on-exec, so the caller reads EOF
//! exactly when the command has been exec'd (or everything failed).
//!
//! The caller may have other threads (`acido build -f` starts the
//! interrupt thread before its `RUN` steps; a render or an xz pack runs
//! worker threads). A child of a multi-threaded process holds only the
//! forking thread, and a lock another thread held at the fork (malloc's,
//! stdio's, the environment's) stays locked in it forever; so until
//! `execve` a child may only do what is async-signal-safe (fork(2),
//! signal-safety(7)). Everything in this module that runs in a child
//! keeps to that: system calls through nix or libc on C strings, fixed
//! buffers and pointer arrays prepared before the fork ([`Plan`],
//! [`CStrArray`]); no allocation, no formatting, no std I/O types, no
//! panics. nix's `execve` allocates its pointer arrays, so the command
//! process calls libc's directly.

use std::ffi::{c_char, CStr, CString};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use super::scaffold::Scaffold;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    chdir, mkdir, pivot_root, setgid, setgroups, sethostname, setuid, symlinkat, unlink, unlinkat,
    write, ForkResult, Gid, Pid, Uid, UnlinkatFlags,
};

/// The signals acido passes on to the command. Everything a user or a
/// supervisor sends to stop or poke a process; `SIGCHLD` is in the same
/// blocked set so supervisors learn of exits through `sigwait`.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The signals supervisors block and take with `sigwait`.
pub fn supervised_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in FORWARDED {
        set.add(sig);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Where in the set-up a child failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Creating the user namespace and writing its id maps.
    UserNamespace,
    /// Creating the mount, UTS, IPC, PID (and network) namespaces.
    Namespaces,
    /// Forking the next process.
    Fork,
    /// Making every mount private.
    PrivateMounts,
    /// Bind-mounting the rootfs onto itself.
    BindRoot,
    /// Mounting the tmpfs on `/dev`.
    MountDev,
    /// `pivot_root` into the rootfs.
    PivotRoot,
    /// Bind-mounting one host device (index into [`Plan::devices`]).
    Device,
    /// Mounting a new devpts instance on `/dev/pts`.
    MountPts,
    /// Mounting the tmpfs on `/dev/shm`.
    MountShm,
    /// The `/dev/fd`, `/dev/std*` and `/dev/ptmx` symlinks.
    DevLinks,
    /// Bind-mounting the host's resolv.conf read-only.
    Resolv,
    /// Mounting a fresh `/proc`.
    MountProc,
    /// Detaching the host's root.
    DropOldRoot,
    /// Setting the hostname.
    Hostname,
    /// Bringing up `lo` in the new network namespace.
    Loopback,
    /// Switching to the command's user and group.
    SetUser,
    /// Changing to the working directory.
    Workdir,
    /// Executing the command.
    Exec,
}

const STEPS: [Step; 19] = [
    Step::UserNamespace,
    Step::Namespaces,
    Step::Fork,
    Step::PrivateMounts,
    Step::BindRoot,
    Step::MountDev,
    Step::PivotRoot,
    Step::Device,
    Step::MountPts,
    Step::MountShm,
    Step::DevLinks,
    Step::Resolv,
    Step::MountProc,
    Step::DropOldRoot,
    Step::Hostname,
    Step::Loopback,
    Step::SetUser,
    Step::Workdir,
    Step::Exec,
];

/// One failure report from a child: 12 bytes on the error pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// Which item of the step (the device index), else 0.
    pub index: u32,
    /// The error.
    pub errno: Errno,
}

impl Failure {
    const LEN: usize = 12;

    fn encode(&self) -> [u8; Self::LEN] {
        let step = STEPS.iter().position(|s| *s == self.step).unwrap_or(0) as u32;
        let mut buf = [0; Self::LEN];
        buf[..4].copy_from_slice(&step.to_le_bytes());
        buf[4..8].copy_from_slice(&self.index.to_le_bytes());
        buf[8..].copy_from_slice(&(self.errno as i32).to_le_bytes());
        buf
    }

    /// The first record in what the children wrote; `None` when they
    /// wrote nothing (or garbage, which only a bug could produce).
    pub fn decode(bytes: &[u8]) -> Option<Failure> {
        let word = |at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
        let step = *STEPS.get(u32::from_le_bytes(word(0)?) as usize)?;
        Some(Failure {
            step,
            index: u32::from_le_bytes(word(4)?),
            errno: Errno::from_raw(i32::from_le_bytes(word(8)?)),
        })
    }
}

/// Everything the children need, prepared before the fork.
#[derive(Debug)]
pub struct Plan {
    /// The rootfs, absolute on the host.
    pub rootfs: CString,
    /// `<rootfs>/dev`.
    pub rootfs_dev: CString,
    /// Where the host's root goes during `pivot_root`, relative to the
    /// rootfs: inside the fresh `/dev` tmpfs, so the tree never sees it.
    pub put_old: CString,
    /// The same, absolute after the pivot.
    pub old_root: CString,
    /// (path in the new `/dev`, source under the old root) per device.
    pub devices: Vec<(CString, CString)>,
    /// The host's resolv.conf under the old root, when it should be
    /// mounted (the host has one and the tree has a place for it).
    pub resolv: Option<CString>,
    /// The hostname inside.
    pub hostname: String,
    /// A new, empty network namespace with `lo` up.
    pub network_none: bool,
    /// The caller's uid and gid when it is not root: a user namespace
    /// maps it to root inside.
    pub userns: Option<(u32, u32)>,
    /// The command's uid.
    pub uid: u32,
    /// The command's gid.
    pub gid: u32,
    /// The working directory inside.
    pub workdir: CString,
    /// The command's arguments, `argv[0]` first.
    pub argv: CStrArray,
    /// The command's environment, `NAME=value`.
    pub envp: CStrArray,
    /// Paths to try `execve` on, in order (the `PATH` search).
    pub candidates: Vec<CString>,
}

/// C strings with the NULL-terminated pointer array `execve` takes, both
/// built before the fork so that the command process need not allocate.
#[derive(Debug)]
pub struct CStrArray {
    /// Read only through `pointers`: it owns the bytes they point at.
    #[allow(dead_code)]
    strings: Vec<CString>,
    /// A pointer to each of `strings`, then NULL. A `CString` keeps its
    /// bytes on the heap, so the pointers stay valid while `strings` is
    /// neither changed nor dropped, and this type never changes it.
    pointers: Vec<*const c_char>,
}

impl CStrArray {
    /// The array of `strings`.
    pub fn new(strings: Vec<CString>) -> CStrArray {
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        CStrArray { strings, pointers }
    }

    /// The NULL-terminated array, valid as long as `self` is.
    fn as_ptr(&self) -> *const *const c_char {
        self.pointers.as_ptr()
    }
}

/// A child's end: `_exit` without running the caller's atexit handlers
/// or flushing its stdio buffers (those belong to the caller).
#[allow(unsafe_code)]
fn exit_now(code: u8) -> ! {
    // SAFETY: `_exit` only ends the process; it has no preconditions.
    unsafe { nix::libc::_exit(i32::from(code)) }
}

/// `fork`, for the children of a run.
#[allow(unsafe_code)]
pub fn fork() -> Result<ForkResult, Errno> {
    // SAFETY: the caller may have other threads (`build -f` starts the
    // interrupt thread first), so the child may find any lock another
    // thread held (malloc's included) locked for good, and may only do
    // what is async-signal-safe until it execs. The children's code in
    // this module does only that (module docs): system calls on data
    // prepared before the fork, no allocation, no locks, no panics; each
    // child ends in `execve` or `_exit` and never returns into the
    // caller's code. The parent side is unaffected and continues as usual.
    unsafe { nix::unistd::fork() }
}

/// Reports a failure on the error pipe and ends the child with `code`.
fn fail(pipe: &OwnedFd, failure: Failure, code: u8) -> ! {
    // Nothing more can be done if the caller is gone.
    let _ = write(pipe.as_fd(), &failure.encode());
    exit_now(code)
}

/// Exit status when set-up failed (the caller reports the pipe's record).
const SETUP_FAILED: u8 = 128;

/// The `ns` process: the user (when not root) and PID namespaces, then
/// forks init into them and supervises it. It stays in the host's mount
/// namespace, so when the caller dies before the run ends (even by
/// SIGKILL) it can still take the mount points away after init is gone.
pub fn ns_process(plan: &Plan, caller: Pid, pipe: OwnedFd, scaffold: &Scaffold) -> ! {
    // The caller's death arrives as SIGTERM, which `supervise` turns into
    // a SIGKILL for init; the check after catches a caller that died
    // before the request took effect.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).is_err() || nix::unistd::getppid() != caller
    {
        exit_now(SETUP_FAILED);
    }
    default_sigchld();
    let step = |step| {
        move |errno| Failure {
            step,
            index: 0,
            errno,
        }
    };
    let result = (|| {
        if let Some((uid, gid)) = plan.userns {
            user_namespace(uid, gid).map_err(step(Step::UserNamespace))?;
        }
        // The PID namespace is owned by the user namespace just made, so
        // that init may mount a /proc for it; only children enter it.
        unshare(CloneFlags::CLONE_NEWPID).map_err(step(Step::Namespaces))?;
        fork().map_err(step(Step::Fork))
    })();
    match result {
        Err(failure) => fail(&pipe, failure, SETUP_FAILED),
        Ok(ForkResult::Child) => init_process(plan, pipe),
        Ok(ForkResult::Parent { child }) => {
            drop(pipe);
            let code = supervise(child, false, Some(caller)).unwrap_or(SETUP_FAILED);
            if nix::unistd::getppid() != caller {
                // Orphaned: nobody else will clean up, and nobody is
                // left to hear about a failure.
                let _ = scaffold.remove_in_child();
            }
            exit_now(code)
        }
    }
}

/// Maps the caller to root in a new user namespace (user_namespaces(7):
/// an unprivileged process may map its own ids once `setgroups` is denied).
fn user_namespace(uid: u32, gid: u32) -> Result<(), Errno> {
    unshare(CloneFlags::CLONE_NEWUSER)?;
    write_file(c"/proc/self/setgroups", b"deny")?;
    let mut line = [0u8; 32];
    write_file(c"/proc/self/uid_map", id_map(&mut line, uid))?;
    write_file(c"/proc/self/gid_map", id_map(&mut line, gid))
}

/// `0 <id> 1` in `buf`, without allocating.
fn id_map(buf: &mut [u8; 32], id: u32) -> &[u8] {
    let mut digits = [0u8; 10];
    let mut n = id;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[..2].copy_from_slice(b"0 ");
    for i in 0..len {
        buf[2 + i] = digits[len - 1 - i];
    }
    buf[2 + len..4 + len].copy_from_slice(b" 1");
    &buf[..4 + len]
}

/// Writes `data` to the existing file `path` in one `write`: the id map
/// files take their content in a single call (user_namespaces(7)).
fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    let file = open_fd(path, OFlag::O_WRONLY, Mode::empty())?;
    match write(file.as_fd(), data)? {
        n if n == data.len() => Ok(()),
        _ => Err(Errno::EIO),
    }
}

/// Creates an empty file (a mount point for a device) in the new `/dev`.
fn create_file(path: &CStr) -> Result<(), Errno> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
    open_fd(path, flags, Mode::from_bits_truncate(0o666)).map(drop)
}

/// `open(2)` of a C string, close-on-exec, owned (closed on drop): unlike
/// `std::fs`, no path conversion that could allocate.
#[allow(unsafe_code)]
fn open_fd(path: &CStr, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    let fd = open(path, flags | OFlag::O_CLOEXEC, mode)?;
    // SAFETY: `open` just returned `fd`, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The init process, pid 1 of the new PID namespace.
fn init_process(plan: &Plan, pipe: OwnedFd) -> ! {
    // Dies when `ns` dies, which dies with the caller.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        exit_now(SETUP_FAILED);
    }
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if plan.network_none {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(errno) = unshare(flags) {
        let failure = Failure {
            step: Step::Namespaces,
            index: 0,
            errno,
        };
        fail(&pipe, failure, SETUP_FAILED);
    }
    if let Err(failure) = set_up_root(plan) {
        fail(&pipe, failure, SETUP_FAILED);
    }
    match fork() {
        Err(errno) => fail(
            &pipe,
            Failure {
                step: Step::Fork,
                index: 0,
                errno,
            },
            SETUP_FAILED,
        ),
        Ok(ForkResult::Child) => command_process(plan, pipe),
        Ok(ForkResult::Parent { child }) => {
            drop(pipe);
            // When init exits the kernel kills every process left in the
            // namespace (pid_namespaces(7)): nothing outlives the command.
            exit_now(supervise(child, true, None).unwrap_or(SETUP_FAILED))
        }
    }
}

/// Mounts, pivot_root, hostname and lo, in the init process.
fn set_up_root(plan: &Plan) -> Result<(), Failure> {
    let at = |step: Step, index: u32| move |errno| Failure { step, index, errno };
    let none: Option<&CStr> = None;
    // Private first: nothing mounted below may propagate to the host.
    mount(
        none,
        c"/",
        none,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        none,
    )
    .map_err(at(Step::PrivateMounts, 0))?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(plan.rootfs.as_c_str()),
        plan.rootfs.as_c_str(),
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(at(Step::BindRoot, 0))?;
    mount(
        Some(c"tmpfs"),
        plan.rootfs_dev.as_c_str(),
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )
    .map_err(at(Step::MountDev, 0))?;
    chdir(plan.rootfs.as_c_str()).map_err(at(Step::PivotRoot, 0))?;
    mkdir(plan.put_old.as_c_str(), Mode::S_IRWXU).map_err(at(Step::PivotRoot, 0))?;
    pivot_root(c".", plan.put_old.as_c_str()).map_err(at(Step::PivotRoot, 0))?;
    chdir(c"/").map_err(at(Step::PivotRoot, 0))?;

    // From here on every path resolves inside the tree: a symlink in it
    // cannot lead a mount out. Host files come from under the old root.
    for (index, (target, source)) in plan.devices.iter().enumerate() {
        let at = at(Step::Device, index as u32);
        create_file(target).map_err(at)?;
        match mount(
            Some(source.as_c_str()),
            target.as_c_str(),
            none,
            MsFlags::MS_BIND,
            none,
        ) {
            Ok(()) => {}
            // A host without this device: the tree goes without too.
            Err(Errno::ENOENT) => unlink(target.as_c_str()).map_err(at)?,
            Err(errno) => return Err(at(errno)),
        }
    }
    mkdir(c"/dev/pts", Mode::from_bits_truncate(0o755)).map_err(at(Step::MountPts, 0))?;
    mount(
        Some(c"devpts"),
        c"/dev/pts",
        Some(c"devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(at(Step::MountPts, 0))?;
    mkdir(c"/dev/shm", Mode::from_bits_truncate(0o755)).map_err(at(Step::MountShm, 0))?;
    mount(
        Some(c"tmpfs"),
        c"/dev/shm",
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(c"mode=1777,size=65536k"),
    )
    .map_err(at(Step::MountShm, 0))?;
    for (target, link) in [
        (c"pts/ptmx", c"/dev/ptmx"),
        (c"/proc/self/fd", c"/dev/fd"),
        (c"/proc/self/fd/0", c"/dev/stdin"),
        (c"/proc/self/fd/1", c"/dev/stdout"),
        (c"/proc/self/fd/2", c"/dev/stderr"),
    ] {
        symlinkat(target, None, link).map_err(at(Step::DevLinks, 0))?;
    }
    if let Some(source) = &plan.resolv {
        bind_read_only(source, c"/etc/resolv.conf").map_err(at(Step::Resolv, 0))?;
    }
    mount(
        Some(c"proc"),
        c"/proc",
        Some(c"proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(at(Step::MountProc, 0))?;
    umount2(plan.old_root.as_c_str(), MntFlags::MNT_DETACH).map_err(at(Step::DropOldRoot, 0))?;
    unlinkat(None, plan.old_root.as_c_str(), UnlinkatFlags::RemoveDir)
        .map_err(at(Step::DropOldRoot, 0))?;
    sethostname(&plan.hostname).map_err(at(Step::Hostname, 0))?;
    if plan.network_none {
        loopback_up().map_err(at(Step::Loopback, 0))?;
    }
    Ok(())
}

/// Bind-mounts `source` on `target` read-only. A `target` that is a
/// dangling symlink in the tree (or leads to a directory) is skipped:
/// the tree chose to have no usable resolv.conf.
fn bind_read_only(source: &CStr, target: &CStr) -> Result<(), Errno> {
    let none: Option<&CStr> = None;
    match mount(Some(source), target, none, MsFlags::MS_BIND, none) {
        Ok(()) => {}
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(errno) => return Err(errno),
    }
    // A read-only remount must repeat the flags the source mount has: in
    // a user namespace they are locked and dropping one is refused.
    let kept = statvfs(target)?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if kept.contains(fs) {
            flags |= ms;
        }
    }
    mount(none, target, none, flags, none)
}

/// Sets `IFF_UP` on `lo` (netdevice(7) `SIOCGIFFLAGS`/`SIOCSIFFLAGS`);
/// nix has no wrapper for interface flags.
#[allow(unsafe_code)]
fn loopback_up() -> Result<(), Errno> {
    use nix::libc;
    // Any socket serves as a handle for the ioctls (std's UdpSocket would
    // allocate for its address list).
    // SAFETY: `socket` takes no pointers.
    let fd = Errno::result(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `socket` just returned `fd`, and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
    for (dst, src) in name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    let mut req = libc::ifreq {
        ifr_name: name,
        ifr_ifru: libc::__c_anonymous_ifr_ifru { ifru_flags: 0 },
    };
    // SAFETY: `req` is a valid, initialised ifreq that outlives the call;
    // SIOCGIFFLAGS writes only its `ifru_flags` member.
    Errno::result(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS succeeded, so `ifru_flags` is the member set.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    Errno::result(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })?;
    drop(socket);
    Ok(())
}

/// The command process: ids, working directory, signals, exec.
fn command_process(plan: &Plan, pipe: OwnedFd) -> ! {
    let at = |step| {
        move |errno| Failure {
            step,
            index: 0,
            errno,
        }
    };
    let prepared = (|| {
        // Supplementary groups cannot be set in a user namespace whose
        // setgroups is denied; there the only ids are 0 anyway.
        if plan.userns.is_none() {
            setgroups(&[Gid::from_raw(plan.gid)]).map_err(at(Step::SetUser))?;
        }
        setgid(Gid::from_raw(plan.gid)).map_err(at(Step::SetUser))?;
        setuid(Uid::from_raw(plan.uid)).map_err(at(Step::SetUser))?;
        chdir(plan.workdir.as_c_str()).map_err(at(Step::Workdir))?;
        reset_signals();
        Ok(())
    })();
    if let Err(failure) = prepared {
        fail(&pipe, failure, SETUP_FAILED);
    }
    // The PATH search a shell does: the first candidate that exists wins;
    // a found but unusable one (EACCES) is reported over "not found".
    let mut errno = Errno::ENOENT;
    for path in &plan.candidates {
        match execve(path, &plan.argv, &plan.envp) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            other => {
                if errno == Errno::ENOENT {
                    errno = other;
                }
            }
        }
    }
    // Shell conventions: 127 not found, 126 found but not executable.
    let code = if errno == Errno::ENOENT { 127 } else { 126 };
    fail(
        &pipe,
        Failure {
            step: Step::Exec,
            index: 0,
            errno,
        },
        code,
    )
}

/// `execve(2)` with arrays prepared before the fork; returns only on
/// failure, with its error.
#[allow(unsafe_code)]
fn execve(path: &CStr, argv: &CStrArray, envp: &CStrArray) -> Errno {
    // SAFETY: `path` is a C string, and `argv` and `envp` are
    // NULL-terminated arrays of pointers to C strings, all borrowed for
    // the call (CStrArray keeps its pointers valid).
    unsafe { nix::libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// The command starts with no blocked signals and default dispositions:
/// an ignored signal survives exec, and acido's runtime ignores SIGPIPE.
#[allow(unsafe_code)]
fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in a handler.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// A caller that ignores SIGCHLD would have its children reaped for it,
/// and supervisors could not learn their exit status.
#[allow(unsafe_code)]
fn default_sigchld() {
    // SAFETY: installing SIG_DFL runs no code of ours in a handler.
    let _ =
        unsafe { nix::sys::signal::signal(Signal::SIGCHLD, nix::sys::signal::SigHandler::SigDfl) };
}

/// Waits for `child`, forwarding [`FORWARDED`] signals to it; returns
/// its exit code, or 128+N when signal N killed it (as a shell does).
/// With `reap_all` (in init), every other child that ends is reaped too.
/// With `parent`, a signal that arrives once the parent is no longer
/// `parent` (it died) kills the child instead of being passed on.
///
/// The caller must have blocked [`supervised_signals`] before forking
/// `child`, so that no exit or signal can slip by unnoticed.
pub fn supervise(child: Pid, reap_all: bool, parent: Option<Pid>) -> Result<u8, Errno> {
    let set = supervised_signals();
    loop {
        // Reap before every wait: in a process with other threads (the
        // binary's signal thread, say) a SIGCHLD may be taken by a thread
        // that did not block it, so the wait below is bounded and the
        // child's end is noticed either way.
        if let Some(code) = reap(child, reap_all)? {
            return Ok(code);
        }
        match wait_signal(&set, 200) {
            Ok(Some(Signal::SIGCHLD)) | Ok(None) => {}
            // The child may be gone already; its SIGCHLD is on its way.
            Ok(Some(sig)) => {
                let orphaned = parent.is_some_and(|p| nix::unistd::getppid() != p);
                let _ = kill(child, if orphaned { Signal::SIGKILL } else { sig });
            }
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// Waits up to `millis` for a signal of `set` (which the caller blocked);
/// `None` when none came.
#[allow(unsafe_code)]
fn wait_signal(set: &SigSet, millis: i64) -> Result<Option<Signal>, Errno> {
    let timeout = nix::libc::timespec {
        tv_sec: millis / 1000,
        tv_nsec: (millis % 1000) * 1_000_000,
    };
    // SAFETY: `set` is a valid sigset_t borrowed for the call, the info
    // pointer may be null, and `timeout` lives across the call.
    let signo = unsafe { nix::libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
    if signo < 0 {
        return match Errno::last() {
            Errno::EAGAIN => Ok(None),
            errno => Err(errno),
        };
    }
    Signal::try_from(signo).map(Some)
}

/// Reaps what has ended; `Some(code)` once `child` has.
fn reap(child: Pid, reap_all: bool) -> Result<Option<u8>, Errno> {
    let target = (!reap_all).then_some(child);
    loop {
        match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                return Ok(Some(u8::try_from(code).unwrap_or(u8::MAX)));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                return Ok(Some(128u8.saturating_add(sig as i32 as u8)));
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            // Another process (an orphan init adopted) ended: keep reaping.
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_round_trip_through_the_pipe_encoding() {
        for (i, step) in STEPS.iter().enumerate() {
            let failure = Failure {
                step: *step,
                index: i as u32 * 3,
                errno: Errno::EPERM,
            };
            assert_eq!(Failure::decode(&failure.encode()), Some(failure));
        }
        assert_eq!(Failure::decode(b"short"), None);
        assert_eq!(Failure::decode(&[0xff; 12]), None);
    }

    #[test]
    fn id_maps_are_formatted_without_allocating() {
        let mut buf = [0; 32];
        assert_eq!(id_map(&mut buf, 0), b"0 0 1");
        assert_eq!(id_map(&mut buf, 1000), b"0 1000 1");
        assert_eq!(id_map(&mut buf, u32::MAX), b"0 4294967295 1");
    }
}
