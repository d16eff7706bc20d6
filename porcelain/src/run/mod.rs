//! `run`: run a command inside a build tree (a layout directory with a
//! `manifest` and a `rootfs/`), isolated with Linux namespaces.
//!
//! The command gets new mount, PID, UTS and IPC namespaces (and a user
//! namespace mapping the caller to root when the caller is not root), the
//! rootfs as `/` through `pivot_root`, a fresh `/proc`, a minimal `/dev`
//! on a tmpfs, the host's resolv.conf read-only, and either the host's
//! network or (with [`Network::None`]) a new one with only `lo`. Every
//! mount lives in the run's own mount namespace, made private, so none
//! reaches the host or outlives the run; the run's init process is pid 1
//! of the PID namespace, so when it ends every process inside ends.
//!
//! The tree is left as the command left it: mount points the rootfs
//! lacked are created for the run and removed after it ([`scaffold`]).
//!
//! Module map:
//! - [`user`]: `--user` values against the tree's passwd and group files.
//! - [`scaffold`]: mount points made for a run and taken away after it.
//! - `sandbox` (private): the processes of a run, after `fork`.

mod sandbox;
pub mod scaffold;
pub mod user;

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use acido_plumbing::manifest::{ImageManifest, ManifestError};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use self::sandbox::{CStrArray, Failure, Plan, Step};
use self::scaffold::{Scaffold, ScaffoldError};
use self::user::UserError;

/// The command's network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// The host's network namespace: builds fetch packages.
    #[default]
    Host,
    /// A new network namespace with only `lo`, up.
    None,
}

/// How to run the command; the defaults come from the manifest.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Extra environment, `(NAME, value)`, over the manifest's
    /// `app.environment` (a later entry for the same name wins).
    pub env: Vec<(OsString, OsString)>,
    /// The working directory inside; default the manifest's
    /// `app.workingDirectory`, else `/`.
    pub workdir: Option<OsString>,
    /// `USER[:GROUP]`, numbers or names from the tree's `/etc/passwd` and
    /// `/etc/group`; default root (0:0).
    pub user: Option<String>,
    /// The network.
    pub network: Network,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Its exit code, or 128+N when signal N killed it (as a shell
    /// reports it).
    pub status: u8,
}

/// Why a command could not be run. Failures of the command itself are
/// not errors: they are its [`RunReport::status`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The tree directory cannot be used.
    #[error("{dir}: {source}")]
    Dir {
        /// The tree.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The directory has no `rootfs` directory.
    #[error("{dir}: not a build tree: no rootfs directory")]
    NoRootfs {
        /// The tree.
        dir: PathBuf,
    },
    /// The manifest cannot be read.
    #[error("{path}: {source}")]
    ReadManifest {
        /// The manifest file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The manifest is not a valid image manifest.
    #[error("{path}: {source}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        source: ManifestError,
    },
    /// No command was given.
    #[error("no command to run")]
    NoCommand,
    /// An argument or environment entry holds a NUL byte, or an
    /// environment name is empty or holds `=`.
    #[error("{what} {value:?}: not usable in a command line or environment")]
    BadArgument {
        /// What it is (`argument`, `environment variable`, ...).
        what: &'static str,
        /// The value, as given.
        value: OsString,
    },
    /// `--user` names an unknown user or group.
    #[error(transparent)]
    User(#[from] UserError),
    /// A user file of the tree cannot be read.
    #[error("{path}: {source}")]
    UserDb {
        /// The file, inside the rootfs.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Without root, the user namespace maps only the caller (as root).
    #[error("user {uid}:{gid}: running as another user than 0:0 needs root")]
    UserNeedsRoot {
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
    },
    /// A mount point in the tree could not be made or removed.
    #[error(transparent)]
    Scaffold(#[from] ScaffoldError),
    /// Setting up the namespaces or mounts failed.
    #[error("{dir}: {what}: {source}")]
    Setup {
        /// The tree.
        dir: PathBuf,
        /// The step that failed, in words.
        what: String,
        /// The error.
        source: Errno,
    },
    /// The command does not exist in the tree (exit 127 in a shell).
    #[error("{command}: command not found")]
    CommandNotFound {
        /// The command as given.
        command: PathBuf,
    },
    /// The command exists but cannot be executed (exit 126 in a shell).
    #[error("{command}: cannot execute: {source}")]
    CommandNotExecutable {
        /// The command as given.
        command: PathBuf,
        /// Why.
        source: Errno,
    },
    /// Forking or waiting for the run's processes failed.
    #[error("{dir}: supervising the command: {source}")]
    Supervise {
        /// The tree.
        dir: PathBuf,
        /// The error.
        source: Errno,
    },
}

/// The PATH a command gets when neither the manifest nor the options set
/// one: the conventional one (what rkt and docker set).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host devices bind-mounted into the fresh `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Where the host's root is put during `pivot_root`: inside the run's
/// own `/dev` tmpfs, never in the tree.
const OLD_ROOT: &str = "dev/.acido-oldroot";

/// The largest passwd or group file read (a hostile tree could point
/// them at something endless).
const USER_DB_LIMIT: u64 = 16 << 20;

/// Runs `command` (argv, `argv[0]` looked up in the command's PATH inside
/// the tree) in the build tree `dir`, and waits for it.
///
/// Standard input, output and error are the caller's. SIGTERM, SIGINT,
/// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH sent to the calling
/// thread's process are passed on to the command while it runs; if the
/// caller dies, even by SIGKILL, every process of the run dies with it.
///
/// It forks, and blocks those signals in the calling thread while it
/// waits; other threads may exist (the children do only what is
/// async-signal-safe until they exec, see `sandbox`), but one that leaves
/// those signals unblocked may take them first.
pub fn run(dir: &Path, command: &[OsString], opts: &RunOptions) -> Result<RunReport, RunError> {
    let dir = std::fs::canonicalize(dir).map_err(|source| RunError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    let rootfs = dir.join("rootfs");
    if !rootfs.is_dir() {
        return Err(RunError::NoRootfs { dir });
    }
    let manifest = read_manifest(&dir.join("manifest"))?;
    let host_resolv = std::fs::canonicalize("/etc/resolv.conf")
        .ok()
        .filter(|p| p.is_file());
    let mut plan = plan(&rootfs, &manifest, command, opts)?;
    let scaffold = Scaffold::prepare(&rootfs, host_resolv.is_some())?;
    if let Some(host) = host_resolv.filter(|_| scaffold.has_resolv()) {
        plan.resolv = Some(under_old_root(&host)?);
    }
    let ran = spawn_and_wait(&dir, &plan, &scaffold);
    // Whatever happened, the mount points go: the namespace and its mounts
    // are gone once the run's processes are.
    let removed = scaffold.remove();
    let status = ran?;
    removed?;
    match status {
        Ok(status) => Ok(RunReport { status }),
        Err(failure) => Err(describe(&dir, &plan, command, failure)),
    }
}

fn read_manifest(path: &Path) -> Result<ImageManifest, RunError> {
    let bytes = std::fs::read(path).map_err(|source| RunError::ReadManifest {
        path: path.to_owned(),
        source,
    })?;
    ImageManifest::from_slice(&bytes).map_err(|source| RunError::Manifest {
        path: path.to_owned(),
        source,
    })
}

/// Forks the run, waits for it with the supervised signals blocked, and
/// gives the command's status or the failure a child reported.
fn spawn_and_wait(
    dir: &Path,
    plan: &Plan,
    scaffold: &Scaffold,
) -> Result<Result<u8, Failure>, RunError> {
    let supervise_err = |source| RunError::Supervise {
        dir: dir.to_owned(),
        source,
    };
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(supervise_err)?;
    let mut old_mask = SigSet::empty();
    nix::sys::signal::pthread_sigmask(
        SigmaskHow::SIG_BLOCK,
        Some(&sandbox::supervised_signals()),
        Some(&mut old_mask),
    )
    .map_err(supervise_err)?;
    let caller = nix::unistd::getpid();
    let result = match sandbox::fork() {
        Ok(ForkResult::Child) => {
            drop(read_end);
            sandbox::ns_process(plan, caller, write_end, scaffold)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write_end);
            wait_for(child, read_end).map_err(supervise_err)
        }
        Err(errno) => Err(supervise_err(errno)),
    };
    // A signal that arrived after the command ended is delivered now, as
    // if no run had happened.
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    result
}

fn wait_for(child: Pid, read_end: OwnedFd) -> Result<Result<u8, Failure>, Errno> {
    // EOF comes when the command was exec'd or every child gave up.
    let mut report = Vec::new();
    let read = File::from(read_end).read_to_end(&mut report);
    let status = sandbox::supervise(child, false, None)?;
    read.map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)))?;
    Ok(match Failure::decode(&report) {
        Some(failure) => Err(failure),
        None => Ok(status),
    })
}

/// A child's failure record, in words.
fn describe(dir: &Path, plan: &Plan, command: &[OsString], failure: Failure) -> RunError {
    let command = PathBuf::from(command.first().cloned().unwrap_or_default());
    let shown = |c: &CString| {
        Path::new(OsStr::from_bytes(c.to_bytes()))
            .display()
            .to_string()
    };
    let what = match failure.step {
        Step::Exec if failure.errno == Errno::ENOENT => {
            return RunError::CommandNotFound { command };
        }
        Step::Exec => {
            return RunError::CommandNotExecutable {
                command,
                source: failure.errno,
            };
        }
        Step::UserNamespace => "creating a user namespace".to_owned(),
        Step::Namespaces => "creating namespaces".to_owned(),
        Step::Fork => "forking".to_owned(),
        Step::PrivateMounts => "making mounts private".to_owned(),
        Step::BindRoot => "bind-mounting rootfs".to_owned(),
        Step::MountDev => "mounting a tmpfs on rootfs/dev".to_owned(),
        Step::PivotRoot => "pivot_root into rootfs".to_owned(),
        Step::Device => match plan.devices.get(failure.index as usize) {
            Some((target, _)) => format!("bind-mounting {}", shown(target)),
            None => "bind-mounting a device".to_owned(),
        },
        Step::MountPts => "mounting devpts on /dev/pts".to_owned(),
        Step::MountShm => "mounting a tmpfs on /dev/shm".to_owned(),
        Step::DevLinks => "creating the /dev symlinks".to_owned(),
        Step::Resolv => "bind-mounting the host's resolv.conf".to_owned(),
        Step::MountProc => "mounting /proc".to_owned(),
        Step::DropOldRoot => "detaching the host's root".to_owned(),
        Step::Hostname => format!("setting the hostname {:?}", plan.hostname),
        Step::Loopback => "bringing up lo".to_owned(),
        Step::SetUser => format!("switching to user {}:{}", plan.uid, plan.gid),
        Step::Workdir => format!("working directory {}", shown(&plan.workdir)),
    };
    RunError::Setup {
        dir: dir.to_owned(),
        what,
        source: failure.errno,
    }
}

/// Everything the children need, computed before the fork.
fn plan(
    rootfs: &Path,
    manifest: &ImageManifest,
    command: &[OsString],
    opts: &RunOptions,
) -> Result<Plan, RunError> {
    let program = command.first().ok_or(RunError::NoCommand)?;
    if program.is_empty() {
        return Err(RunError::CommandNotFound {
            command: PathBuf::new(),
        });
    }
    let app = manifest.app.as_ref();
    let passwd = read_user_db(rootfs, "etc/passwd")?;
    let ids = match &opts.user {
        Some(spec) => {
            let group = read_user_db(rootfs, "etc/group")?;
            user::resolve(spec, &passwd, &group)?
        }
        None => user::resolve("0:0", &passwd, b"")?,
    };
    let caller = (Uid::effective(), Gid::effective());
    let userns = (!caller.0.is_root()).then(|| (caller.0.as_raw(), caller.1.as_raw()));
    if userns.is_some() && (ids.uid, ids.gid) != (0, 0) {
        return Err(RunError::UserNeedsRoot {
            uid: ids.uid,
            gid: ids.gid,
        });
    }

    // The environment: the manifest's, then the options', then defaults
    // for what neither set.
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let manifest_env = app
        .into_iter()
        .flat_map(|a| &a.environment)
        .map(|v| (OsString::from(&v.name), OsString::from(&v.value)));
    for (name, value) in manifest_env.chain(opts.env.iter().cloned()) {
        set_env(&mut env, name, value);
    }
    if !env.iter().any(|(n, _)| n == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(n, _)| n == "HOME") {
        let home = ids.home.clone().unwrap_or_else(|| b"/".to_vec());
        env.push(("HOME".into(), OsString::from_vec(home)));
    }
    let mut envp = Vec::with_capacity(env.len());
    for (name, value) in &env {
        if name.is_empty() || name.as_bytes().contains(&b'=') {
            return Err(bad("environment variable name", name));
        }
        let mut entry = name.clone();
        entry.push("=");
        entry.push(value);
        envp.push(cstring(&entry, "environment variable")?);
    }
    let path_var = env
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| v.as_bytes().to_vec())
        .unwrap_or_default();

    let workdir = match (&opts.workdir, app.map(|a| a.working_directory.as_str())) {
        (Some(dir), _) if !dir.is_empty() => dir.clone(),
        (_, Some(dir)) if !dir.is_empty() => OsString::from(dir),
        _ => OsString::from("/"),
    };
    let argv = command
        .iter()
        .map(|arg| cstring(arg, "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let devices = DEVICES
        .iter()
        .map(|name| {
            let host = Path::new("/dev").join(name);
            // A host device that is a symlink is followed on the host,
            // where it means what it says, not later inside the tree.
            let host = std::fs::canonicalize(&host).unwrap_or(host);
            Ok((
                cstring(format!("/dev/{name}").as_ref(), "device")?,
                under_old_root(&host)?,
            ))
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    Ok(Plan {
        rootfs: cstring(rootfs.as_os_str(), "path")?,
        rootfs_dev: cstring(rootfs.join("dev").as_os_str(), "path")?,
        put_old: cstring(OLD_ROOT.as_ref(), "path")?,
        old_root: cstring(format!("/{OLD_ROOT}").as_ref(), "path")?,
        devices,
        resolv: None,
        hostname: hostname(manifest),
        network_none: opts.network == Network::None,
        userns,
        uid: ids.uid,
        gid: ids.gid,
        workdir: cstring(&workdir, "working directory")?,
        argv: CStrArray::new(argv),
        envp: CStrArray::new(envp),
        candidates: candidates(program, &path_var)?,
    })
}

fn set_env(env: &mut Vec<(OsString, OsString)>, name: OsString, value: OsString) {
    match env.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

fn bad(what: &'static str, value: &OsStr) -> RunError {
    RunError::BadArgument {
        what,
        value: value.to_owned(),
    }
}

fn cstring(value: &OsStr, what: &'static str) -> Result<CString, RunError> {
    CString::new(value.as_bytes()).map_err(|_| bad(what, value))
}

/// A host path as seen from inside after `pivot_root`, under the old root.
fn under_old_root(host: &Path) -> Result<CString, RunError> {
    let mut path = OsString::from(format!("/{OLD_ROOT}"));
    path.push(host.as_os_str());
    cstring(&path, "host path")
}

/// Paths to exec, in order: `program` itself when it holds a `/`, else
/// `program` in each PATH directory (an empty entry means the working
/// directory, as in a shell).
fn candidates(program: &OsStr, path_var: &[u8]) -> Result<Vec<CString>, RunError> {
    let program = program.as_bytes();
    if program.contains(&b'/') {
        return Ok(vec![cstring(OsStr::from_bytes(program), "argument")?]);
    }
    path_var
        .split(|&b| b == b':')
        .map(|dir| {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut path = dir.to_vec();
            if !path.ends_with(b"/") {
                path.push(b'/');
            }
            path.extend_from_slice(program);
            cstring(OsStr::from_bytes(&path), "argument")
        })
        .collect()
}

/// The hostname inside: the last part of the image name, reduced to
/// what a hostname may hold (RFC 1123 label), else `acido`.
fn hostname(manifest: &ImageManifest) -> String {
    hostname_of(&manifest.name.to_string())
}

fn hostname_of(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or_default();
    let label: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "acido".to_owned()
    } else {
        label.to_owned()
    }
}

/// Reads `rel` (`etc/passwd`, `etc/group`) resolving every symlink inside
/// the rootfs (`openat2` `RESOLVE_IN_ROOT`); a missing file reads empty.
fn read_user_db(rootfs: &Path, rel: &str) -> Result<Vec<u8>, RunError> {
    let err = |source: io::Error| RunError::UserDb {
        path: Path::new("rootfs").join(rel),
        source,
    };
    let root = File::open(rootfs).map_err(err)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match nix::fcntl::openat2(root.as_raw_fd(), rel, how) {
        Ok(fd) => owned(fd),
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        Err(errno) => return Err(err(io::Error::from(errno))),
    };
    let mut file = File::from(fd);
    // Only a regular file: a fifo or device in the tree would block or
    // never end.
    if !file.metadata().map_err(err)?.is_file() {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(USER_DB_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    Ok(bytes)
}

#[allow(unsafe_code)]
fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: `openat2` just returned this fd; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn commands_are_searched_in_path_like_a_shell() {
        assert_eq!(
            candidates("sh".as_ref(), b"/usr/bin:/bin/::rel").unwrap(),
            [c("/usr/bin/sh"), c("/bin/sh"), c("./sh"), c("rel/sh")]
        );
        assert_eq!(candidates("./x".as_ref(), b"/bin").unwrap(), [c("./x")]);
        assert!(candidates(OsStr::from_bytes(b"a\0b"), b"/bin").is_err());
    }

    #[test]
    fn hostnames_come_from_the_image_name() {
        let named = |name: &str| ImageManifest::new(name.parse().unwrap());
        assert_eq!(hostname(&named("example.com/busy_box")), "busy-box");
        assert_eq!(hostname(&named("example.com/tools/go1.22")), "go1-22");
        assert_eq!(hostname(&named("example.com/a/~~~/b")), "b");
        assert_eq!(hostname_of("example.com/-~-"), "acido");
        assert_eq!(hostname(&named(&"a".repeat(100))).len(), 63);
    }

    #[test]
    fn later_environment_entries_win_in_place() {
        let mut env = Vec::new();
        set_env(&mut env, "A".into(), "1".into());
        set_env(&mut env, "B".into(), "2".into());
        set_env(&mut env, "A".into(), "3".into());
        assert_eq!(env, [("A".into(), "3".into()), ("B".into(), "2".into())]);
    }

    #[test]
    fn user_files_resolve_inside_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        let rootfs = root.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(root.path().join("passwd"), "outside:x:1:1::/:/bin/sh\n").unwrap();
        // An absolute symlink means the tree's own /passwd, never the
        // host's file of that name.
        std::os::unix::fs::symlink("/../passwd", rootfs.join("etc/passwd")).unwrap();
        assert_eq!(read_user_db(&rootfs, "etc/passwd").unwrap(), b"");
        std::fs::write(rootfs.join("passwd"), "inside:x:2:2::/:/bin/sh\n").unwrap();
        assert_eq!(
            read_user_db(&rootfs, "etc/passwd").unwrap(),
            b"inside:x:2:2::/:/bin/sh\n"
        );
        assert_eq!(read_user_db(&rootfs, "etc/group").unwrap(), b"");
    }

    #[test]
    fn missing_trees_and_rootfs_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let cmd = [OsString::from("true")];
        let err = run(&root.path().join("nope"), &cmd, &RunOptions::default()).unwrap_err();
        assert!(matches!(err, RunError::Dir { .. }), "{err}");
        let err = run(root.path(), &cmd, &RunOptions::default()).unwrap_err();
        assert!(matches!(err, RunError::NoRootfs { .. }), "{err}");
    }
}
