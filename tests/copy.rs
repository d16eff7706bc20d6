//! CLI tests of `acido copy` and `acido add`: metadata kept, symlinks in
//! the tree resolved inside the rootfs (nothing written outside), tar
//! archives unpacked, and the error messages.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{is_root, manifest, Env};

/// A build tree `tree` with an empty rootfs, a source file `motd` and a
/// source directory `site` (with a subdirectory, a symlink and a hard link).
fn setup(env: &Env) {
    env.layout("tree", &manifest("example.com/t", ""), &[]);
    fs::write(env.path("motd"), "hello\n").unwrap();
    fs::set_permissions(env.path("motd"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir_all(env.path("site/css")).unwrap();
    fs::write(env.path("site/index.html"), "<p>hi</p>\n").unwrap();
    fs::write(env.path("site/css/a.css"), "p{}\n").unwrap();
    fs::hard_link(env.path("site/index.html"), env.path("site/also.html")).unwrap();
    symlink("index.html", env.path("site/home.html")).unwrap();
    common::pin_times(&env.path("motd"));
    common::pin_times(&env.path("site"));
}

#[test]
fn copy_keeps_metadata_and_copies_directory_contents() {
    let env = Env::new();
    setup(&env);
    let run = env.run(["copy", "motd", "tree:/etc/motd"]);
    insta::assert_snapshot!("copy_file", env.snap(&run));
    let out = env.path("tree/rootfs/etc/motd");
    let meta = fs::metadata(&out).unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"hello\n");
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o640, 1_600_000_000));

    env.run(["copy", "site", "motd", "tree:/srv/www/"]).ok();
    let www = env.path("tree/rootfs/srv/www");
    assert_eq!(fs::read(www.join("css/a.css")).unwrap(), b"p{}\n");
    assert_eq!(fs::read(www.join("motd")).unwrap(), b"hello\n");
    assert_eq!(
        fs::read_link(www.join("home.html")).unwrap(),
        Path::new("index.html")
    );
    let (a, b) = (
        fs::metadata(www.join("index.html")).unwrap(),
        fs::metadata(www.join("also.html")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard links stay linked");
    assert_eq!(
        fs::metadata(www.join("css")).unwrap().mtime(),
        1_600_000_000
    );

    env.run(["copy", "--chmod", "0600", "motd", "tree:etc/"])
        .ok();
    assert_eq!(
        fs::metadata(&out).unwrap().mode() & 0o7777,
        0o600,
        "--chmod, and a relative DEST from /"
    );
    if is_root() {
        env.run(["copy", "--chown", "12:34", "motd", "tree:/etc/owned"])
            .ok();
        let meta = fs::metadata(env.path("tree/rootfs/etc/owned")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (12, 34));
    } else {
        eprintln!("skipping the --chown check: setting owners needs root");
    }
}

#[test]
fn symlinks_in_the_tree_never_lead_outside() {
    let env = Env::new();
    setup(&env);
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("passwd"), "host\n").unwrap();
    let rootfs = env.path("tree/rootfs");
    symlink(&outside, rootfs.join("etc")).unwrap();
    symlink("../../../../../../../..", rootfs.join("up")).unwrap();
    symlink(outside.join("passwd"), rootfs.join("passwd")).unwrap();
    env.run(["copy", "motd", "tree:/etc/passwd"]).ok();
    env.run(["copy", "motd", "tree:/up/up/x"]).ok();
    env.run(["copy", "site", "tree:/etc/www"]).ok();
    env.run(["copy", "motd", "tree:/passwd"]).ok();
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"host\n");
    let names: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "nothing written outside the rootfs");
    // /etc -> OUTSIDE resolved from the rootfs: rootfs/OUTSIDE.
    let redirected = rootfs.join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(redirected.join("passwd")).unwrap(), b"hello\n");
    assert!(redirected.join("www/css/a.css").is_file());
    assert_eq!(fs::read(rootfs.join("x")).unwrap(), b"hello\n");
    assert!(
        fs::symlink_metadata(rootfs.join("passwd"))
            .unwrap()
            .is_file(),
        "a symlink at the final name is replaced, not followed"
    );
}

#[test]
fn add_unpacks_tarballs_and_copies_other_files() {
    let env = Env::new();
    setup(&env);
    let status = Command::new("tar")
        .current_dir(env.path("site"))
        .args(["-czf", "../site.tgz", "."])
        .status()
        .expect("tar");
    assert!(status.success());
    let run = env.run(["add", "site.tgz", "motd", "tree:/srv/"]);
    insta::assert_snapshot!("add_tarball", env.snap(&run));
    let srv = env.path("tree/rootfs/srv");
    assert_eq!(fs::read(srv.join("css/a.css")).unwrap(), b"p{}\n");
    assert_eq!(fs::read(srv.join("motd")).unwrap(), b"hello\n");
    let (a, b) = (
        fs::metadata(srv.join("index.html")).unwrap(),
        fs::metadata(srv.join("also.html")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mtime(), 1_600_000_000);
    // copy leaves the archive packed.
    env.run(["copy", "site.tgz", "tree:/srv/"]).ok();
    assert_eq!(
        fs::read(srv.join("site.tgz")).unwrap(),
        fs::read(env.path("site.tgz")).unwrap()
    );
}

#[test]
fn errors_name_the_operand_and_the_problem() {
    let env = Env::new();
    setup(&env);
    let rootfs = env.path("tree/rootfs");
    symlink("loop", rootfs.join("loop")).unwrap();
    fs::write(rootfs.join("file"), "").unwrap();
    for (name, args) in [
        ("no_colon", &["copy", "motd", "tree"][..]),
        ("bad_mode", &["copy", "--chmod", "u+x", "motd", "tree:/x"]),
        ("bad_owner", &["copy", "--chown", "root", "motd", "tree:/x"]),
        ("missing_source", &["copy", "nope", "tree:/x"]),
        ("not_a_tree", &["copy", "motd", "site:/x"]),
        ("several_to_a_file", &["copy", "motd", "motd", "tree:/new"]),
        ("symlink_loop", &["copy", "motd", "tree:/loop/x"]),
        ("through_a_file", &["copy", "motd", "tree:/file/x"]),
    ] {
        let run = env.run(args);
        // Malformed operands and option values are usage errors.
        let usage = ["no_colon", "bad_mode", "bad_owner"].contains(&name);
        let want = if usage { 129 } else { 128 };
        assert_eq!(run.code(), want, "{name}: {}", run.stderr());
        insta::assert_snapshot!(format!("copy_error_{name}"), env.snap(&run));
    }
    assert!(!rootfs.join("new").exists() && !rootfs.join("x").exists());
}
