//! A small harness for running the `acido` binary in tests: a private
//! store, HOME and temp dir per test, pinned locale and time, and a
//! snapshot text of argv, exit status, stdout and stderr with temp paths
//! redacted.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
/// it in target/oracle).
pub fn actool() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle/actool");
    path.is_file().then_some(path)
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
