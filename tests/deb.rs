//! The Debian package (issue 15, item 11): `packaging/deb.sh` builds a
//! `.deb` from the binary under test, `dpkg -i` installs it into a
//! throwaway root (`dpkg --root`, its own empty package database), and the
//! installed binary and manual pages work.
//!
//! Installing needs root and dpkg: without them the test is skipped with a
//! printed reason locally, and fails under CI (`CI` set), where it must run.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Why the test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !common::is_root() {
        return Some("installing a .deb with dpkg needs root".to_owned());
    }
    for tool in ["dpkg", "dpkg-deb", "man", "gzip"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

#[test]
fn deb_installs_into_a_throwaway_root_and_runs() {
    if let Some(why) = missing_prerequisite() {
        if common::conformance::under_ci() {
            panic!("the .deb test must run under CI: {why}");
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: the .deb test: {why}");
        }
        return;
    }
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temp dir");

    // Build it from the test binary (a release build would take minutes);
    // gzip, as xz on a debug binary is slow.
    let built = run(Command::new("bash")
        .arg(top.join("packaging/deb.sh"))
        .arg(env!("CARGO_BIN_EXE_acido"))
        .arg(tmp.path().join("out"))
        .env("DEB_COMPRESSION", "gzip")
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let deb = PathBuf::from(
        String::from_utf8_lossy(&built.stdout)
            .lines()
            .last()
            .expect("deb.sh prints the package path")
            .trim(),
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.file_name().is_some_and(|n| n
            .to_string_lossy()
            .starts_with(&format!("acido_{version}_"))),
        "{}",
        deb.display()
    );

    // A throwaway root with an empty dpkg database. Its Depends (libc6,
    // ...) are not in that database, so they are forced: they are the
    // host's, which runs the installed binary below.
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("var/lib/dpkg/updates")).expect("dpkg dirs");
    fs::create_dir_all(root.join("var/lib/dpkg/info")).expect("dpkg dirs");
    fs::write(root.join("var/lib/dpkg/status"), "").expect("dpkg status");
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg("--force-depends")
        .arg("-i")
        .arg(&deb));
    let listed = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-L", "acido"]));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();

    // Every page of man/ is installed, gzipped, in its section.
    for page in fs::read_dir(top.join("man")).expect("man/") {
        let name = page.expect("man/ entry").file_name();
        let name = name.to_string_lossy();
        let Some(section) = name.rsplit_once('.').map(|(_, s)| s.to_owned()) else {
            continue;
        };
        if section != "1" && section != "5" {
            continue;
        }
        let installed = format!("/usr/share/man/man{section}/{name}.gz");
        assert!(
            listed.lines().any(|l| l == installed),
            "{installed} missing:\n{listed}"
        );
    }
    assert!(listed.lines().any(|l| l == "/usr/bin/acido"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l == "/usr/share/doc/acido/copyright"),
        "{listed}"
    );

    // The completion scripts, in each shell's standard place, as the
    // binary generates them.
    for (shell, file) in [
        ("bash", "/usr/share/bash-completion/completions/acido"),
        ("zsh", "/usr/share/zsh/vendor-completions/_acido"),
        ("fish", "/usr/share/fish/vendor_completions.d/acido.fish"),
    ] {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} missing:\n{listed}"
        );
        let generated = run(Command::new(env!("CARGO_BIN_EXE_acido")).args(["completions", shell]));
        let installed = fs::read(root.join(file.trim_start_matches('/'))).expect(file);
        assert_eq!(installed, generated.stdout, "{file}");
    }

    let v = run(Command::new(root.join("usr/bin/acido")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("acido {version}")
    );

    let page = run(Command::new("man")
        .arg("-l")
        .arg(root.join("usr/share/man/man1/acido-build.1.gz"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C"));
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(
        text.contains("NAME") && text.contains("acido-build"),
        "{text}"
    );
}
