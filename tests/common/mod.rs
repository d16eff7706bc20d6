//! A small harness for running the `acido` binary in tests: a private
//! store, HOME and temp dir per test, pinned locale and time, and a
//! snapshot text of argv, exit status, stdout and stderr with temp paths
//! redacted.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod conformance;

/// A sandbox for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

/// The result of one run.
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code(),
            0,
            "acido {:?} failed:\n{}",
            self.args,
            self.stderr()
        );
        self.stdout()
    }
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("acido-test-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir_all(dir.path().join("home")).unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acido"));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .env("LC_ALL", "C")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("ACIDO_STORE", self.store())
            .stdin(Stdio::null());
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let output = self.command().args(&args).output().expect("run acido");
        Run { args, output }
    }

    pub fn run_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::io::Write;
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let mut child = self
            .command()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn acido");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let output = child.wait_with_output().expect("wait acido");
        writer.join().unwrap();
        Run { args, output }
    }

    /// The snapshot text of a run: argv, exit code, stdout and stderr,
    /// with this sandbox's path shown as `[TMP]`.
    pub fn snap(&self, run: &Run) -> String {
        let text = format!(
            "args: {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
            run.args.join(" "),
            run.code(),
            run.stdout(),
            run.stderr()
        );
        let root = self.dir.path().to_string_lossy().into_owned();
        let canonical = fs::canonicalize(self.dir.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| root.clone());
        let fixtures = fixtures().to_string_lossy().into_owned();
        let text = text
            .replace(&fixtures, "[FIXTURES]")
            .replace(&canonical, "[TMP]")
            .replace(&root, "[TMP]");
        redact_ids(&text)
    }

    /// Writes a layout dir at `rel` with `manifest` and files under rootfs
    /// (path, contents); parents are created.
    pub fn layout(&self, rel: &str, manifest: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(rel);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        fs::write(dir.join("manifest"), manifest).unwrap();
        for (path, contents) in files {
            let file = dir.join("rootfs").join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, contents).unwrap();
        }
        pin_times(&dir);
        dir
    }

    /// Packs `layout` into `out` (plain tar unless told) and returns the id.
    pub fn pack(&self, layout: &Path, out: &str, compression: &str) -> String {
        let run = self.run([
            OsStr::new("pack-aci"),
            OsStr::new("--compression"),
            OsStr::new(compression),
            OsStr::new("-o"),
            self.path(out).as_os_str(),
            layout.as_os_str(),
        ]);
        run.ok().trim().to_owned()
    }
}

/// A test path as `&str` (test paths are UTF-8), for argv.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Runs `cmd args` and asserts it succeeded.
pub fn sh(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?} failed");
}

/// Writes `contents` to `path`, creating its parent directories.
pub fn write(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, contents).unwrap();
}

/// Sets every mtime under `dir` to a fixed time so packed ids are stable.
pub fn pin_times(dir: &Path) {
    let status = Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d", "@1600000000", "{}", "+"])
        .status()
        .expect("find");
    assert!(status.success());
}

pub fn manifest(name: &str, extra: &str) -> String {
    format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{name}"{extra}}}"#)
}

/// sha512 of a byte string as an image id.
pub fn id_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha512-{hex}")
}

/// The hex digits of an image id `sha512-<hex>`.
pub fn hex(id: &str) -> &str {
    id.strip_prefix("sha512-").expect("an image id")
}

/// Where the store keeps the blob of image `id`.
pub fn blob(env: &Env, id: &str) -> PathBuf {
    let h = hex(id);
    env.store().join("blobs/sha512").join(&h[..2]).join(h)
}

/// Where the store keeps the entry index of image `id`.
pub fn index(env: &Env, id: &str) -> PathBuf {
    let h = hex(id);
    env.store().join("index/sha512").join(&h[..2]).join(h)
}

/// Where the store keeps the image record of `id`.
pub fn record(env: &Env, id: &str) -> PathBuf {
    env.store().join("images").join(format!("{}.json", hex(id)))
}

/// The names in `dir`, sorted (lossily converted: test names are UTF-8).
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A work dir `work` with a sentinel directory and a victim file beside
/// the target `work/out`, for the hostile-input tests; [`untouched`]
/// checks them afterwards.
pub fn sentinel_work(env: &Env) -> PathBuf {
    let work = env.path("work");
    fs::create_dir_all(work.join("sentinel")).unwrap();
    fs::write(work.join("sentinel/keep"), "keep\n").unwrap();
    fs::write(work.join("victim"), "victim\n").unwrap();
    work
}

/// Asserts the sentinel and the victim are as [`sentinel_work`] made them,
/// nothing was written beside `work` (a `victim` or `pwned` one level up),
/// and no render temp dir was left in `work`.
pub fn untouched(work: &Path) {
    assert_eq!(
        names(&work.join("sentinel")),
        ["keep"],
        "the sentinel directory changed"
    );
    assert_eq!(
        fs::read_to_string(work.join("sentinel/keep")).unwrap(),
        "keep\n"
    );
    assert_eq!(fs::read_to_string(work.join("victim")).unwrap(), "victim\n");
    let parent = work.parent().unwrap();
    assert!(!parent.join("victim").exists() && !parent.join("pwned").exists());
    for name in names(work) {
        assert!(
            !name.starts_with(".acido-render-"),
            "temp dir left behind: {name:?}"
        );
    }
}

/// The workspace's fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // Avoid a dependency for one syscall: `id -u` is everywhere.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// The reference actool, when built (`bash ../shared/oracle/build.sh` puts
/// it in target/oracle); when it is not, the calling check is recorded as
/// skipped, or fails under CI (`conformance`).
pub fn actool() -> Option<PathBuf> {
    conformance::reference_tool(Path::new(env!("CARGO_MANIFEST_DIR")), "actool")
}

/// Replaces every image id (or id prefix of 12+ digits) with `[ID<n>]`,
/// numbered by first appearance, so snapshots do not depend on the uid of
/// the test runner (which packed trees record) yet still show which ids
/// are equal. Prefixes of a full id get the full id's number.
pub fn redact_ids(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("sha512-") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 7..];
        let hex_len = after
            .bytes()
            .take_while(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            .count();
        if hex_len < 12 {
            out.push_str("sha512-");
            rest = after;
            continue;
        }
        let hex = &after[..hex_len];
        let n = match seen
            .iter()
            .position(|s| s.starts_with(hex) || hex.starts_with(s.as_str()))
        {
            Some(n) => {
                if hex.len() > seen[n].len() {
                    seen[n] = hex.to_owned();
                }
                n
            }
            None => {
                seen.push(hex.to_owned());
                seen.len() - 1
            }
        };
        let form = if hex_len == 128 { "" } else { "-prefix" };
        out.push_str(&format!("[ID{}{form}]", n + 1));
        rest = &after[hex_len..];
    }
    out.push_str(rest);
    out
}

/// Set (to `1`) in the environment of [`rerun_as_nobody`]'s child, so the
/// re-run neither recurses nor mistakes itself for the root run.
pub const AS_NOBODY_GUARD: &str = "ACIDO_TEST_AS_NOBODY";

/// The unprivileged user (and group) the root suite re-runs as.
pub const NOBODY: u32 = 65534;

/// Whether this process is the re-run as nobody of [`rerun_as_nobody`].
pub fn is_nobody_rerun() -> bool {
    std::env::var_os(AS_NOBODY_GUARD).is_some()
}

/// setpriv's arguments that make the child truly unprivileged: nobody's
/// uid and gid, no supplementary groups, no capabilities to inherit or
/// regain, and no gaining privileges through setuid binaries (mount(8)).
fn nobody_setpriv_args() -> Vec<String> {
    vec![
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".to_owned(),
        "--inh-caps=-all".to_owned(),
        "--bounding-set=-all".to_owned(),
        "--no-new-privs".to_owned(),
        "--".to_owned(),
    ]
}

/// The first directory on the way to `path` (the path itself included
/// when it is a directory) that others cannot traverse, if any.
fn untraversable_ancestor(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs: Vec<&Path> = path.ancestors().collect();
    dirs.reverse();
    dirs.into_iter()
        .filter(|d| d.is_dir())
        .find(|d| fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_owned)
}

/// Panics with a clear message unless nobody can access `path` as `test
/// FLAG` says (`-r`, `-x`, `-w`), checked by running test(1) as nobody.
fn assert_nobody_can(setpriv: &Path, flag: &str, path: &Path, what: &str) {
    let ok = Command::new(setpriv)
        .args(nobody_setpriv_args())
        .arg("test")
        .arg(flag)
        .arg(path)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return;
    }
    let why = match untraversable_ancestor(path) {
        Some(dir) => format!(
            "the directory {} is not traversable by others (chmod o+x it, or run \
             the suite from a checkout under a world-traversable directory such as /tmp)",
            dir.display()
        ),
        None => "its permissions do not allow it".to_owned(),
    };
    panic!(
        "cannot re-run the tests as nobody (uid {NOBODY}): `test {flag}` fails as nobody \
         on {what} {}: {why}",
        path.display()
    );
}

/// Re-runs every test of the current test binary but `this_test` as the
/// unprivileged user nobody (uid and gid 65534) and asserts they all pass,
/// showing the child's output otherwise (issue 5: the root-only cases also
/// run as a normal user). Call it from one `#[test]` named `this_test`.
///
/// Runs only as root, when `/usr/bin/setpriv` exists and this is not
/// already the re-run; otherwise prints why it skipped. The child gets a
/// fresh HOME and TMPDIR owned by nobody (removed afterwards), runs with
/// insta in CI mode (a snapshot mismatch fails, nothing is written), and
/// must report as many passed tests as the binary has, less this one.
/// The cases that skip as nobody must print exactly `skips` (lines that
/// start with `skipped:`), so none stops running unnoticed.
/// Returns the number of tests that ran as nobody (0 when skipped).
pub fn rerun_as_nobody(this_test: &str, skips: &[&str]) -> usize {
    rerun_as_nobody_with(this_test, skips, &[])
}

/// [`rerun_as_nobody`] with extra environment variables for the child
/// (e.g. mounts only root can make, lent to the unprivileged cases).
pub fn rerun_as_nobody_with(
    this_test: &str,
    skips: &[&str],
    envs: &[(&str, &std::ffi::OsStr)],
) -> usize {
    use std::os::unix::fs::chown;
    if is_nobody_rerun() {
        eprintln!("skipped: this is already the re-run as nobody");
        return 0;
    }
    if !is_root() {
        eprintln!("skipped: the re-run as nobody needs root (this run is a normal user's)");
        return 0;
    }
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.is_file() {
        eprintln!("skipped: /usr/bin/setpriv (util-linux) is not installed");
        return 0;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Everything the cases read: this binary, acido, the fixtures and the
    // snapshots, each through every directory on its way.
    assert_nobody_can(setpriv, "-x", &exe, "the test binary");
    assert_nobody_can(setpriv, "-r", &exe, "the test binary");
    let acido = Path::new(env!("CARGO_BIN_EXE_acido"));
    assert_nobody_can(setpriv, "-x", acido, "the acido binary");
    assert_nobody_can(setpriv, "-x", &fixtures(), "the fixtures directory");
    let snapshots = manifest_dir.join("tests/snapshots");
    assert_nobody_can(setpriv, "-x", &snapshots, "the snapshots directory");
    assert_nobody_can(setpriv, "-r", &snapshots, "the snapshots directory");

    // A HOME and TMPDIR of nobody's own, made and removed by root.
    let sandbox = tempfile::Builder::new()
        .prefix("acido-nobody-")
        .tempdir()
        .expect("temp dir for the re-run as nobody");
    let (home, tmp) = (sandbox.path().join("home"), sandbox.path().join("tmp"));
    for dir in [sandbox.path(), home.as_path(), tmp.as_path()] {
        fs::create_dir_all(dir).expect("nobody's dirs");
        chown(dir, Some(NOBODY), Some(NOBODY)).expect("chown nobody's dirs");
    }
    assert_nobody_can(setpriv, "-w", &tmp, "its TMPDIR");

    // How many tests the child must run: all but this one.
    let list = Command::new(&exe)
        .args(["--list", "--format", "terse"])
        .output()
        .expect("list the tests");
    let expected = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| l.ends_with(": test") && *l != format!("{this_test}: test"))
        .count();

    let mut cmd = Command::new(setpriv);
    cmd.args(nobody_setpriv_args())
        .arg(&exe)
        .args(["--exact", "--nocapture", "--skip", this_test])
        .current_dir(manifest_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("USER", "nobody")
        .env("LOGNAME", "nobody")
        .env(AS_NOBODY_GUARD, "1")
        // insta: compare only, never write (and never ask cargo where the
        // workspace is: nobody's HOME has no cargo).
        .env("INSTA_UPDATE", "no")
        .env("CI", "true")
        .env("INSTA_WORKSPACE_ROOT", manifest_dir)
        .stdin(Stdio::null());
    for var in ["RUST_BACKTRACE", "RUST_TEST_THREADS"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.envs(envs.iter().copied());
    let start = std::time::Instant::now();
    let output = cmd.output().expect("run setpriv");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the re-run as nobody failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status
    );
    let passed = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.ends_with(" ... ok"))
        .count();
    assert_eq!(
        passed, expected,
        "the re-run as nobody ran {passed} tests, not {expected}:\n{stdout}"
    );
    let mut skipped: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("skipped:"))
        .collect();
    skipped.sort_unstable();
    let mut want = skips.to_vec();
    want.sort_unstable();
    assert_eq!(
        skipped, want,
        "other cases skipped as nobody than expected:\n{stderr}"
    );
    // Whatever the cases made in nobody's TMPDIR, they removed.
    let left: Vec<_> = fs::read_dir(&tmp).expect("read nobody's TMPDIR").collect();
    assert!(
        left.is_empty(),
        "the re-run as nobody left {left:?} in its TMPDIR"
    );
    eprintln!("re-ran {passed} tests as nobody (uid {NOBODY}) in {elapsed:?}; {skipped:?}");
    passed
}
