//! CLI tests of `acido run` on a busybox tree. They need root (CI runs as
//! root) and Debian's busybox-static; without root they say so and
//! return.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{is_root, manifest, Env, Run};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Busybox applets the tests use, as symlinks in rootfs/bin.
const APPLETS: &[&str] = &[
    "sh", "ps", "ip", "ls", "cat", "echo", "sleep", "false", "true", "mount", "id", "pwd",
    "hostname", "touch",
];

fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipping {test}: acido run tests need root (namespaces, mounts, --user)");
    false
}

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("busybox is not installed (apt-get install busybox-static)")
}

/// A build tree at `tree` with busybox, a passwd and group listing
/// `builder` (1000:1000), and /tmp; no /proc, /dev or resolv.conf, so
/// every run has to create and remove mount points.
fn tree_with(env: &Env, extra_manifest: &str) -> PathBuf {
    let dir = env.layout(
        "tree",
        &manifest("example.com/busybox", extra_manifest),
        &[
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000::/home/builder:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\nbuilder:x:1000:\n"),
        ],
    );
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("tmp")).unwrap();
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    common::pin_times(&dir);
    dir
}

fn tree(env: &Env) -> PathBuf {
    tree_with(env, "")
}

/// `acido run [opts] tree -- cmd...`
fn run(env: &Env, opts: &[&str], cmd: &[&str]) -> Run {
    let mut args: Vec<&str> = vec!["run"];
    args.extend(opts);
    args.extend(["tree", "--"]);
    args.extend(cmd);
    env.run(args)
}

fn spawn(env: &Env, cmd: &[&str]) -> Child {
    env.command()
        .args(["run", "tree", "--"])
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn acido")
}

/// Every entry under `dir` with its metadata, times in nanoseconds.
fn listing(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            let target = fs::read_link(entry.path()).ok();
            format!(
                "{} {:o} {}:{} {} {}.{:09} {:?}",
                entry.path().display(),
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                target
            )
        })
        .collect()
}

/// The host's mount table lines that mention `path`.
fn host_mounts_of(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// Pids of host processes whose argv is exactly `argv`.
fn processes(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            (fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("acido did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exit_status_of_the_command_is_acidos() {
    if !root_or_skip("exit_status_of_the_command_is_acidos") {
        return;
    }
    let env = Env::new();
    tree(&env);
    assert_eq!(run(&env, &[], &["false"]).code(), 1);
    assert_eq!(run(&env, &[], &["sh", "-c", "exit 7"]).code(), 7);
    assert_eq!(run(&env, &[], &["true"]).code(), 0);
    // Killed by a signal: 128+N, as a shell reports it.
    assert_eq!(run(&env, &[], &["sh", "-c", "kill -9 $$"]).code(), 137);
}

#[test]
fn stdout_and_stderr_pass_through() {
    if !root_or_skip("stdout_and_stderr_pass_through") {
        return;
    }
    let env = Env::new();
    tree(&env);
    let out = run(&env, &[], &["sh", "-c", "echo hello world; echo oops >&2"]);
    assert_eq!(out.code(), 0);
    assert_eq!(out.stdout(), "hello world\n");
    assert_eq!(out.stderr(), "oops\n");
}

#[test]
fn writes_land_in_the_rootfs_and_never_outside() {
    if !root_or_skip("writes_land_in_the_rootfs_and_never_outside") {
        return;
    }
    let env = Env::new();
    let dir = tree(&env);
    run(&env, &[], &["sh", "-c", "echo hi > /x"]).ok();
    assert_eq!(fs::read_to_string(dir.join("rootfs/x")).unwrap(), "hi\n");

    let host_x = Path::new("/x").exists();
    run(&env, &[], &["sh", "-c", "echo escaped > /../../x"]).ok();
    assert_eq!(
        fs::read_to_string(dir.join("rootfs/x")).unwrap(),
        "escaped\n"
    );
    assert!(!dir.join("x").exists());
    assert!(!env.path("x").exists());
    if !host_x {
        assert!(!Path::new("/x").exists(), "the write reached the host's /x");
    }
}

#[test]
fn ps_sees_only_the_runs_processes() {
    if !root_or_skip("ps_sees_only_the_runs_processes") {
        return;
    }
    let env = Env::new();
    tree(&env);
    let out = run(&env, &[], &["sh", "-c", "ps"]).ok();
    let pids: Vec<u32> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    // init (acido), sh, ps: nothing of the host.
    assert!(pids.contains(&1), "{out}");
    assert!(pids.len() <= 3 && pids.iter().all(|&p| p < 10), "{out}");
    assert!(
        !out.contains("cargo") && !out.contains("/run-"),
        "host process visible:\n{out}"
    );
    // Its own UTS namespace, named after the image.
    assert_eq!(run(&env, &[], &["hostname"]).ok(), "busybox\n");
}

#[test]
fn network_none_has_only_lo_and_it_is_up() {
    if !root_or_skip("network_none_has_only_lo_and_it_is_up") {
        return;
    }
    let env = Env::new();
    tree(&env);
    let dev = run(&env, &["--network", "none"], &["cat", "/proc/net/dev"]).ok();
    let interfaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{dev}");
    let link = run(&env, &["--network", "none"], &["ip", "link"]).ok();
    assert!(link.contains("lo: <LOOPBACK,UP"), "{link}");
}

#[test]
fn sigterm_reaches_the_command_and_nothing_stays_behind() {
    if !root_or_skip("sigterm_reaches_the_command_and_nothing_stays_behind") {
        return;
    }
    let env = Env::new();
    let dir = fs::canonicalize(tree(&env)).unwrap();
    let before = listing(&dir);
    let mounts_before = host_mounts_of(&dir);
    let mut child = spawn(&env, &["sleep", "100"]);
    wait_until("sleep 100 to start", Duration::from_secs(10), || {
        !processes(&["sleep", "100"]).is_empty()
    });
    // The run's mounts are invisible to the host even while it runs.
    assert_eq!(host_mounts_of(&dir), mounts_before);
    let started = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_child(&mut child, Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(128 + 15));
    assert!(processes(&["sleep", "100"]).is_empty());
    assert_eq!(host_mounts_of(&dir), mounts_before);
    assert_eq!(listing(&dir), before);
}

#[test]
fn sigkill_to_acido_kills_the_run_and_cleans_the_tree() {
    if !root_or_skip("sigkill_to_acido_kills_the_run_and_cleans_the_tree") {
        return;
    }
    let env = Env::new();
    let dir = fs::canonicalize(tree(&env)).unwrap();
    let before = listing(&dir);
    let mut child = spawn(&env, &["sh", "-c", "sleep 101 & sleep 102"]);
    wait_until("both sleeps to start", Duration::from_secs(10), || {
        !processes(&["sleep", "101"]).is_empty() && !processes(&["sleep", "102"]).is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("the run's processes to die", Duration::from_secs(5), || {
        processes(&["sleep", "101"]).is_empty() && processes(&["sleep", "102"]).is_empty()
    });
    // The orphaned namespace process removes the mount points.
    wait_until("the tree to be as before", Duration::from_secs(5), || {
        listing(&dir) == before
    });
    assert!(host_mounts_of(&dir).is_empty());
}

#[test]
fn a_run_of_true_leaves_the_tree_unchanged() {
    if !root_or_skip("a_run_of_true_leaves_the_tree_unchanged") {
        return;
    }
    let env = Env::new();
    let dir = tree(&env);
    let before = listing(&dir);
    // The run itself needs /proc, /dev and /etc/resolv.conf (when the
    // host has one): they exist during the run only.
    let inside = run(
        &env,
        &[],
        &["sh", "-c", "ls -d /proc/1 /dev/null /dev/pts/ptmx /dev/shm"],
    )
    .ok();
    assert_eq!(inside.lines().count(), 4, "{inside}");
    run(&env, &[], &["true"]).ok();
    assert_eq!(listing(&dir), before);
    // A tree that has its own mount points keeps them, untouched.
    for sub in ["proc", "dev"] {
        fs::create_dir(dir.join("rootfs").join(sub)).unwrap();
    }
    fs::write(dir.join("rootfs/etc/resolv.conf"), "nameserver 192.0.2.1\n").unwrap();
    common::pin_times(&dir);
    let before = listing(&dir);
    let resolv = run(&env, &[], &["cat", "/etc/resolv.conf"]).ok();
    if Path::new("/etc/resolv.conf").is_file() {
        // The host's, read-only, over the tree's.
        assert_eq!(resolv, fs::read_to_string("/etc/resolv.conf").unwrap());
        let write = run(&env, &[], &["sh", "-c", "echo x > /etc/resolv.conf"]);
        assert_ne!(write.code(), 0);
    }
    assert_eq!(listing(&dir), before);
}

#[test]
fn env_workdir_and_user() {
    if !root_or_skip("env_workdir_and_user") {
        return;
    }
    let env = Env::new();
    tree_with(
        &env,
        r#","app":{"exec":["/bin/sh"],"user":"0","group":"0","workingDirectory":"/tmp",
            "environment":[{"name":"FROM_MANIFEST","value":"m"},{"name":"OVER","value":"manifest"}]}"#,
    );
    let out = run(
        &env,
        &["--env", "OVER=cli", "-e", "NEW=a=b"],
        &[
            "sh",
            "-c",
            "echo $FROM_MANIFEST $OVER $NEW; echo $PATH; echo $HOME",
        ],
    )
    .ok();
    assert_eq!(
        out,
        "m cli a=b\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/root\n"
    );
    // Only what the manifest and the options give: nothing of acido's.
    let all = run(
        &env,
        &[],
        &["sh", "-c", "echo $SOURCE_DATE_EPOCH,$ACIDO_STORE"],
    )
    .ok();
    assert_eq!(all, ",\n");
    let path = run(&env, &["--env", "PATH=/bin"], &["sh", "-c", "echo $PATH"]).ok();
    assert_eq!(path, "/bin\n");

    assert_eq!(run(&env, &[], &["pwd"]).ok(), "/tmp\n");
    assert_eq!(run(&env, &["--workdir", "/bin"], &["pwd"]).ok(), "/bin\n");

    let ids = &["sh", "-c", "id -u; id -g; echo $HOME"];
    assert_eq!(
        run(&env, &["--user", "1000:1000"], ids).ok(),
        "1000\n1000\n/home/builder\n"
    );
    assert_eq!(
        run(&env, &["--user", "builder"], ids).ok(),
        "1000\n1000\n/home/builder\n"
    );
    assert_eq!(run(&env, &["-u", "4242:7"], ids).ok(), "4242\n7\n/\n");
    let touched = run(&env, &["--user", "1000:1000"], &["touch", "/tmp/mine"]);
    touched.ok();
    let meta = fs::metadata(env.path("tree/rootfs/tmp/mine")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn without_root_the_caller_is_root_inside_a_user_namespace() {
    if !root_or_skip("without_root_the_caller_is_root_inside_a_user_namespace") {
        return;
    }
    let Ok(setpriv) = which("setpriv") else {
        panic!("setpriv (util-linux) is needed to run acido as another user");
    };
    let env = Env::new();
    let dir = tree(&env);
    let nobody = 65534;
    for entry in walkdir::WalkDir::new(&dir) {
        let path = entry.unwrap().into_path();
        std::os::unix::fs::lchown(&path, Some(nobody), Some(nobody)).unwrap();
    }
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let before = listing(&dir);
    let as_nobody = |args: &[&str]| {
        // The sandbox's environment, with setpriv in front of acido.
        let base = env.command();
        let vars = base.get_envs().filter_map(|(k, v)| Some((k, v?)));
        let out = Command::new(&setpriv)
            .current_dir(env.dir.path())
            .env_clear()
            .envs(vars)
            .stdin(Stdio::null())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_acido"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = as_nobody(&["run", "tree", "--", "sh", "-c", "id -u; ps | wc -l"]);
    assert_eq!(code, Some(0), "{err}");
    // uid 0 inside; init, sh, ps and wc (plus the header line).
    assert_eq!(out.lines().next(), Some("0"), "{out}");
    assert_eq!(listing(&dir), before);
    let (code, _, err) = as_nobody(&["run", "tree", "--", "sh", "-c", "echo hi > /x"]);
    assert_eq!(code, Some(0), "{err}");
    let meta = fs::metadata(dir.join("rootfs/x")).unwrap();
    assert_eq!(meta.uid(), nobody);
    let (code, out, err) = as_nobody(&["run", "--network", "none", "tree", "--", "ip", "link"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("lo: <LOOPBACK,UP"), "{out}");
    let (code, _, err) = as_nobody(&["run", "--user", "1:1", "tree", "--", "true"]);
    assert_eq!(code, Some(128));
    assert_eq!(
        err,
        "acido: error: user 1:1: running as another user than 0:0 needs root\n"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map_err(|_| ())?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !path.is_empty() {
        Ok(PathBuf::from(path))
    } else {
        Err(())
    }
}

#[test]
fn error_messages() {
    if !root_or_skip("error_messages") {
        return;
    }
    let env = Env::new();
    let missing = env.run(["run", "nope", "--", "true"]);
    insta::assert_snapshot!("run_missing_dir", env.snap(&missing));
    fs::create_dir(env.path("empty")).unwrap();
    let no_rootfs = env.run(["run", "empty", "--", "true"]);
    insta::assert_snapshot!("run_dir_without_rootfs", env.snap(&no_rootfs));

    let dir = tree(&env);
    let before = listing(&dir);
    let not_found = run(&env, &[], &["nosuchcmd", "arg"]);
    insta::assert_snapshot!("run_command_not_found", env.snap(&not_found));
    let not_exec = run(&env, &[], &["/etc/passwd"]);
    insta::assert_snapshot!("run_command_not_executable", env.snap(&not_exec));
    let workdir = run(&env, &["--workdir", "/nope"], &["true"]);
    insta::assert_snapshot!("run_missing_workdir", env.snap(&workdir));
    let user = run(&env, &["--user", "nobody"], &["true"]);
    insta::assert_snapshot!("run_unknown_user", env.snap(&user));
    let usage = env.run([OsStr::new("run"), OsStr::new("tree"), OsStr::new("true")]);
    assert_eq!(usage.code(), 129, "the command must follow --");
    let bad_env = run(&env, &["--env", "NOEQUALS"], &["true"]);
    assert_eq!(bad_env.code(), 129);
    // Failed runs leave the tree as it was too.
    assert_eq!(listing(&dir), before);
}
