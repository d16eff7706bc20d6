//! Overlay build trees (issue 12, items 3 and 4; DESIGN §13): for the same
//! edits, `build` on an overlay tree (`startbuild --overlay`, which reads
//! only the overlay's upper directory) and on a plain tree give the SAME
//! image id, on a busybox tree and on a generated tree with every entry
//! kind and every kind of change; the lower directory is never written
//! through; a tree whose mount is gone is reported and `--resume` mounts
//! it again; `endbuild` takes everything down; a killed startbuild leaves
//! no mount; without root `--overlay` fails clearly.
//!
//! Needs root and overlayfs: without them each test says so and skips, or
//! fails under CI (`CI` set), which runs as root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::conformance::under_ci;
use common::{is_root, pin_times, s, sh, write, Env, Run};
use sha2::{Digest, Sha256};

/// Whether overlay tests can run here; prints why not, and fails under CI.
fn can_mount_overlays(test: &str) -> bool {
    let why = if !is_root() {
        Some("not root")
    } else if !fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        Some("no overlayfs in /proc/filesystems")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if under_ci() => panic!("{test}: cannot run under CI: {why}"),
        Some(why) => {
            println!("skipped: {test}: overlay build trees need root and overlayfs: {why}");
            false
        }
    }
}

/// Unmounts `DIR/rootfs` when a test ends early, so its temp dir can go.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Whether anything is mounted on `path`, per /proc/self/mountinfo.
fn is_mounted(path: &Path) -> bool {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let escaped = path
        .to_str()
        .expect("UTF-8 test path")
        .replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(escaped.as_str()))
}

fn manifest_json(name: &str) -> String {
    serde_json::json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [{"name": "version", "value": "1.0"}],
    })
    .to_string()
}

/// Packs and imports a layout; returns the id.
fn import(env: &Env, layout: &Path) -> String {
    let out = env.path("base.aci");
    let id = env.pack(layout, "base.aci", "none");
    env.run(["import", s(&out)]).ok();
    id
}

/// The id `build` prints, with the run for its stderr.
fn build(env: &Env, tree: &Path, out: &str) -> (String, Run) {
    let run = env.run([
        "build",
        "--compression",
        "none",
        "--import",
        s(tree),
        s(&env.path(out)),
    ]);
    let id = run.ok().trim().to_owned();
    (id, run)
}

/// Starts a plain tree `P` and an overlay tree `O` on `base`, applies
/// `edit` to both rootfs directories, pins the times of `touched` paths
/// (relative to rootfs, where they exist) and asserts that both build to
/// the same id, that the overlay build read only its upper directory,
/// that the lower directory is as it was, and that the image reproduces
/// the overlay tree. Returns the id.
fn same_id_both_ways(env: &Env, base: &str, edit: &dyn Fn(&Path), touched: &[&str]) -> String {
    let (plain, over) = (env.path("P"), env.path("O"));
    env.run(["-q", "startbuild", base, s(&plain)]).ok();
    let run = env.run(["startbuild", "--overlay", base, s(&over)]);
    run.ok();
    let _guard = Unmount(over.join("rootfs"));
    assert!(is_mounted(&over.join("rootfs")), "no overlay mounted");
    assert!(
        run.stderr().contains("rendered into the cache"),
        "{}",
        run.stderr()
    );
    let lower = lower_of(env, &over);
    let lower_before = listing(&lower);
    // A second tree on the same base uses the cached tree as it is.
    let again = env.path("O2");
    let run = env.run(["startbuild", "--overlay", base, s(&again)]);
    run.ok();
    let _guard2 = Unmount(again.join("rootfs"));
    assert!(
        run.stderr().contains("overlay on its cached tree"),
        "{}",
        run.stderr()
    );
    assert_eq!(lower_of(env, &again), lower);
    assert_eq!(
        listing(&lower),
        lower_before,
        "the second startbuild wrote the tree"
    );
    env.run(["endbuild", s(&again)]).ok();

    for tree in [&plain, &over] {
        let root = tree.join("rootfs");
        edit(&root);
        for path in touched {
            let full = if path.is_empty() {
                root.clone()
            } else {
                root.join(path)
            };
            if fs::symlink_metadata(&full).is_ok() {
                sh("touch", &["-h", "-d", "@1700000000", s(&full)]);
            }
        }
    }
    let upper = upper_of(env, &over);
    assert!(
        fs::read_dir(&upper).unwrap().next().is_some(),
        "the edits left nothing in the upper directory"
    );

    let (plain_id, _) = build(env, &plain, "plain.aci");
    let (over_id, over_run) = build(env, &over, "over.aci");
    assert!(
        over_run
            .stderr()
            .contains("overlay tree, only its changes read"),
        "the overlay build did not read the upper directory: {}",
        over_run.stderr()
    );
    assert_eq!(
        plain_id,
        over_id,
        "plain and overlay builds differ:\n{}",
        env.run([
            "diff-tree",
            s(&env.path("plain.aci")),
            s(&env.path("over.aci"))
        ])
        .stdout()
    );
    assert_eq!(
        listing(&lower),
        lower_before,
        "a write in the overlay tree changed its lower directory"
    );
    // The image rendered over its base is the overlay tree as mounted.
    let out = env.path("X");
    env.run(["extract", &over_id, s(&out)]).ok();
    let diff = env.run(["diff-tree", s(&out), s(&over)]);
    assert_eq!(
        diff.ok(),
        "",
        "extract of the overlay build differs from the tree"
    );
    over_id
}

/// The overlay state of the tree `dir`, as startbuild wrote it.
fn state_of(env: &Env, dir: &Path) -> (PathBuf, serde_json::Value) {
    let builds = env.store().join("builds");
    let canonical = fs::canonicalize(dir).unwrap();
    for entry in fs::read_dir(&builds).unwrap() {
        let root = entry.unwrap().path();
        let state = root.join("state.json");
        if let Ok(text) = fs::read(&state) {
            let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
            if json["tree"] == s(&canonical) {
                return (root, json);
            }
        }
    }
    panic!("no overlay state for {}", dir.display());
}

fn lower_of(env: &Env, dir: &Path) -> PathBuf {
    let (_, json) = state_of(env, dir);
    PathBuf::from(json["lower"].as_str().expect("lower in state.json"))
}

fn upper_of(env: &Env, dir: &Path) -> PathBuf {
    state_of(env, dir).0.join("upper")
}

/// Every path below `root` with type, mode, owner, mtime, link target,
/// device, xattrs and a content hash, for "nothing changed" checks.
fn listing(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for item in walkdir::WalkDir::new(root) {
        let item = item.unwrap();
        let md = item.path().symlink_metadata().unwrap();
        let mut line = format!(
            "{:o} {}:{} {}.{} {} {}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            md.mtime_nsec(),
            md.rdev(),
            md.ino()
        );
        if md.file_type().is_symlink() {
            line.push_str(&format!(" -> {:?}", fs::read_link(item.path()).unwrap()));
        } else if md.is_file() {
            let digest = Sha256::digest(fs::read(item.path()).unwrap());
            line.push_str(&format!(" {digest:x}"));
        }
        if !md.file_type().is_symlink() {
            let mut names: Vec<_> = xattr::list(item.path()).unwrap().collect();
            names.sort();
            for name in names {
                let value = xattr::get(item.path(), &name).unwrap().unwrap_or_default();
                line.push_str(&format!(" {}={:?}", name.to_string_lossy(), value));
            }
        }
        out.insert(item.path().strip_prefix(root).unwrap().to_owned(), line);
    }
    out
}

/// A tree with every entry kind an image holds: files (setuid, xattrs,
/// other owners), directories, symlinks, a hard-link group, a fifo, char
/// and block devices.
fn every_kind_layout(env: &Env) -> PathBuf {
    let dir = env.path("kinds");
    let root = dir.join("rootfs");
    write(&root.join("bin/tool"), "#!/bin/sh\necho tool\n");
    sh("chmod", &["755", s(&root.join("bin/tool"))]);
    write(&root.join("bin/suid"), "suid\n");
    sh("chmod", &["4755", s(&root.join("bin/suid"))]);
    write(&root.join("etc/conf"), "key=value\n");
    xattr::set(root.join("etc/conf"), "user.origin", b"image").unwrap();
    symlink("conf", root.join("etc/link")).unwrap();
    write(&root.join("data/a"), "linked\n");
    fs::hard_link(root.join("data/a"), root.join("data/b")).unwrap();
    write(&root.join("data/c"), "copy-up me\n");
    write(&root.join("data/d"), "opened for writing\n");
    write(&root.join("data/linkme"), "lone\n");
    fs::create_dir_all(root.join("dev")).unwrap();
    sh("mknod", &[s(&root.join("dev/null")), "c", "1", "3"]);
    sh("mknod", &[s(&root.join("dev/sda")), "b", "8", "0"]);
    fs::create_dir_all(root.join("run")).unwrap();
    sh("mkfifo", &[s(&root.join("run/fifo"))]);
    write(&root.join("dir1/sub/deep"), "deep\n");
    write(&root.join("dir2/x"), "x\n");
    write(&root.join("file2dir"), "was a file\n");
    write(&root.join("owned"), "owned\n");
    sh("chown", &["1000:1000", s(&root.join("owned"))]);
    write(&root.join("xattrfile"), "xattr\n");
    write(&root.join("chmodfile"), "chmod\n");
    write(&root.join("opaq/old"), "hidden by an opaque dir\n");
    write(&dir.join("manifest"), &manifest_json("example.com/kinds"));
    pin_times(&dir);
    dir
}

/// Every kind of change: add, delete, dir→file, file→dir, chmod, chown
/// and xattr only, hard link added and removed, symlink retargeted,
/// content, a device's numbers, copy-ups that change nothing, a directory
/// deleted and made again (opaque).
fn every_change(root: &Path) {
    write(&root.join("new/file"), "added\n");
    write(&root.join("etc/added"), "added too\n");
    fs::remove_dir_all(root.join("dir2")).unwrap();
    fs::remove_file(root.join("run/fifo")).unwrap();
    fs::remove_dir_all(root.join("dir1")).unwrap();
    write(&root.join("dir1"), "now a file\n");
    fs::remove_file(root.join("file2dir")).unwrap();
    write(&root.join("file2dir/inside"), "now a dir\n");
    sh("chmod", &["600", s(&root.join("chmodfile"))]);
    sh("chown", &["2000:3000", s(&root.join("owned"))]);
    xattr::set(root.join("xattrfile"), "user.added", b"1").unwrap();
    fs::hard_link(root.join("data/linkme"), root.join("data/linkme2")).unwrap();
    fs::remove_file(root.join("data/b")).unwrap();
    fs::remove_file(root.join("etc/link")).unwrap();
    symlink("added", root.join("etc/link")).unwrap();
    fs::write(root.join("bin/tool"), "#!/bin/sh\necho TOOL\n").unwrap();
    fs::remove_file(root.join("dev/sda")).unwrap();
    sh("mknod", &[s(&root.join("dev/sda")), "b", "8", "1"]);
    // Copy-ups with no change: an atime-only touch, an open for writing.
    sh(
        "touch",
        &["-a", "-d", "@1650000000", s(&root.join("data/c"))],
    );
    drop(
        fs::OpenOptions::new()
            .append(true)
            .open(root.join("data/d"))
            .unwrap(),
    );
    fs::remove_dir_all(root.join("opaq")).unwrap();
    fs::create_dir(root.join("opaq")).unwrap();
    write(&root.join("opaq/new"), "in the new dir\n");
}

/// The paths `every_change` leaves with a time of the edit.
const EVERY_CHANGE_TOUCHED: &[&str] = &[
    "",
    "new",
    "new/file",
    "etc",
    "etc/added",
    "etc/link",
    "run",
    "dir1",
    "file2dir",
    "file2dir/inside",
    "data",
    "dev",
    "dev/sda",
    "bin/tool",
    "opaq",
    "opaq/new",
];

#[test]
fn every_entry_kind_and_change_kind_build_the_same_id_plain_and_overlay() {
    if !can_mount_overlays("every_entry_kind_and_change_kind") {
        return;
    }
    let env = Env::new();
    let layout = every_kind_layout(&env);
    let base = import(&env, &layout);
    same_id_both_ways(&env, &base, &every_change, EVERY_CHANGE_TOUCHED);
}

#[test]
fn busybox_workflow_builds_the_same_id_plain_and_overlay() {
    if !can_mount_overlays("busybox_workflow") {
        return;
    }
    const BUSYBOX: &str = "/bin/busybox";
    if !Path::new(BUSYBOX).is_file() {
        assert!(!under_ci(), "{BUSYBOX} is missing under CI");
        println!(
            "skipped: busybox_workflow: {BUSYBOX} is missing (apt-get install busybox-static)"
        );
        return;
    }
    let env = Env::new();
    let dir = env.path("busybox");
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    write(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    write(&root.join("etc/hostname"), "busybox\n");
    write(&root.join("usr/share/doc/busybox/README"), "BusyBox\n");
    write(&root.join("var/log/boot.log"), "booted\n");
    fs::create_dir_all(root.join("tmp")).unwrap();
    sh("chmod", &["1777", s(&root.join("tmp"))]);
    write(&dir.join("manifest"), &manifest_json("example.com/busybox"));
    pin_times(&dir);
    let base = import(&env, &dir);
    let edit = |root: &Path| {
        write(&root.join("etc/motd"), "welcome\n");
        let mut passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
        passwd.push_str("app:x:1000:1000::/home/app:/bin/sh\n");
        fs::write(root.join("etc/passwd"), passwd).unwrap();
        fs::remove_file(root.join("usr/share/doc/busybox/README")).unwrap();
        sh("chmod", &["600", s(&root.join("etc/hostname"))]);
        fs::remove_file(root.join("bin/ls")).unwrap();
        symlink("/bin/busybox", root.join("bin/ls")).unwrap();
        fs::remove_dir_all(root.join("var/log")).unwrap();
        write(&root.join("home/app/.profile"), "PS1='$ '\n");
    };
    let touched = [
        "",
        "etc",
        "etc/motd",
        "etc/passwd",
        "usr/share/doc/busybox",
        "bin",
        "bin/ls",
        "var",
        "home",
        "home/app",
        "home/app/.profile",
    ];
    same_id_both_ways(&env, &base, &edit, &touched);
}

#[test]
fn unmounted_trees_are_reported_resumed_and_ended() {
    if !can_mount_overlays("unmounted_trees") {
        return;
    }
    let env = Env::new();
    let layout = env.layout(
        "base",
        &manifest_json("example.com/small"),
        &[("etc/a", "a\n"), ("etc/b", "b\n")],
    );
    let base = import(&env, &layout);
    let tree = env.path("T");
    env.run(["-q", "startbuild", "--overlay", &base, s(&tree)])
        .ok();
    let rootfs = tree.join("rootfs");
    let _guard = Unmount(rootfs.clone());
    fs::write(rootfs.join("etc/a"), "changed\n").unwrap();
    let (before, _) = build(&env, &tree, "one.aci");

    // A reboot, as far as the tree is concerned.
    sh("umount", &[s(&rootfs)]);
    let run = env.run(["build", "--import", s(&tree)]);
    insta::assert_snapshot!("overlay_build_unmounted", env.snap(&run));
    assert_eq!(run.code(), 128);

    let run = env.run(["startbuild", "--resume", s(&tree)]);
    insta::assert_snapshot!("overlay_resume", env.snap(&run));
    assert!(is_mounted(&rootfs));
    let (after, _) = build(&env, &tree, "two.aci");
    assert_eq!(before, after, "the changes did not survive the remount");
    let run = env.run(["startbuild", "--resume", s(&tree)]);
    assert!(run.ok().is_empty());
    assert!(run.stderr().contains("still mounted"), "{}", run.stderr());

    let (state_dir, _) = state_of(&env, &tree);
    let run = env.run(["endbuild", s(&tree)]);
    insta::assert_snapshot!("overlay_endbuild", env.snap(&run));
    assert!(!is_mounted(&rootfs), "endbuild left the overlay mounted");
    assert!(!tree.exists(), "endbuild left the tree directory");
    assert!(!state_dir.exists(), "endbuild left the build state");
    let run = env.run(["endbuild", s(&env.path("base"))]);
    insta::assert_snapshot!("overlay_endbuild_not_a_build", env.snap(&run));

    // A tree unmounted and removed by hand can still be ended.
    let gone = env.path("gone");
    env.run(["-q", "startbuild", "--overlay", &base, s(&gone)])
        .ok();
    let (state_dir, _) = state_of(&env, &gone);
    sh("umount", &[s(&gone.join("rootfs"))]);
    fs::remove_dir_all(&gone).unwrap();
    env.run(["endbuild", s(&gone)]).ok();
    assert!(
        !state_dir.exists(),
        "endbuild left the state of a removed tree"
    );
}

#[test]
fn a_killed_startbuild_leaves_no_mount() {
    if !can_mount_overlays("a_killed_startbuild_leaves_no_mount") {
        return;
    }
    let env = Env::new();
    let layout = env.layout("base", &manifest_json("example.com/k"), &[("f", "f\n")]);
    let base = import(&env, &layout);
    // Killed while the cached tree is written, then just before the mount.
    for (round, step) in ["render-mid-write", "overlay-before-mount"]
        .into_iter()
        .enumerate()
    {
        killed_at(&env, &base, step, &env.path(&format!("T{round}")));
    }
    // The cache holds one complete entry: the killed render left none.
    let run = env.run(["fsck"]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
}

fn killed_at(env: &Env, base: &str, step: &str, tree: &Path) {
    let tree = tree.to_owned();
    let marker = env.path(&format!("paused-{step}"));
    let mut child = env
        .command()
        .args(["startbuild", "--overlay", base, s(&tree)])
        .env("ACIDO_TEST_PAUSE_AT", step)
        .env("ACIDO_TEST_PAUSE_FILE", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "never paused");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _guard = Unmount(tree.join("rootfs"));
    assert!(
        !is_mounted(&tree.join("rootfs")),
        "a startbuild killed at {step} left a mount"
    );
    let run = env.run(["build", "--import", s(&tree)]);
    assert_eq!(run.code(), 128, "{}", run.stderr());
    assert!(run.stderr().contains("is not mounted"), "{}", run.stderr());
    env.run(["endbuild", s(&tree)]).ok();
    assert!(!tree.exists());
    let leftovers: Vec<_> = fs::read_dir(env.store().join("builds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "state left after {step}: {leftovers:?}"
    );
    // A new start on the same base works and mounts.
    let again = env.path("again");
    env.run(["-q", "startbuild", "--overlay", base, s(&again)])
        .ok();
    let _guard2 = Unmount(again.join("rootfs"));
    assert!(is_mounted(&again.join("rootfs")));
    env.run(["endbuild", s(&again)]).ok();
}

#[test]
fn a_killed_build_leaves_the_overlay_as_it_was() {
    if !can_mount_overlays("a_killed_build_leaves_the_overlay_as_it_was") {
        return;
    }
    let env = Env::new();
    let layout = env.layout("base", &manifest_json("example.com/kb"), &[("f", "f\n")]);
    let base = import(&env, &layout);
    let tree = env.path("T");
    env.run(["-q", "startbuild", "--overlay", &base, s(&tree)])
        .ok();
    let rootfs = tree.join("rootfs");
    let _guard = Unmount(rootfs.clone());
    write(&rootfs.join("new"), "new\n");
    let upper = upper_of(&env, &tree);
    let before = listing(&upper);
    let marker = env.path("paused");
    let mut child = env
        .command()
        .args(["build", "--import", s(&tree)])
        .env("ACIDO_TEST_PAUSE_AT", "pack-mid-write")
        .env("ACIDO_TEST_PAUSE_FILE", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "never paused");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Exactly the one overlay mount, and its changes untouched.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let canonical = fs::canonicalize(&rootfs).unwrap();
    let on_tree = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(s(&canonical)))
        .count();
    assert_eq!(on_tree, 1, "a killed build changed the mounts on the tree");
    assert_eq!(
        listing(&upper),
        before,
        "a killed build changed the upper directory"
    );
    let (id, _) = build(&env, &tree, "after.aci");
    assert!(id.starts_with("sha512-"));
    env.run(["endbuild", s(&tree)]).ok();
}

#[test]
fn overlay_without_root_fails_clearly_and_creates_nothing() {
    if !is_root() {
        // As a normal user the test is this very case.
        let env = Env::new();
        let run = env.run([
            "startbuild",
            "--overlay",
            "example.com/x",
            s(&env.path("T")),
        ]);
        assert_eq!(run.code(), 128);
        assert!(run.stderr().contains("need root"), "{}", run.stderr());
        assert!(!env.path("T").exists());
        return;
    }
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.is_file() {
        assert!(!under_ci(), "/usr/bin/setpriv is missing under CI");
        println!("skipped: overlay_without_root: /usr/bin/setpriv (util-linux) is missing");
        return;
    }
    let env = Env::new();
    let layout = env.layout("base", &manifest_json("example.com/nr"), &[("f", "f\n")]);
    let base = import(&env, &layout);
    // A world-writable parent, so only the missing privilege can stop it.
    let parent = env.path("open");
    fs::create_dir(&parent).unwrap();
    sh("chmod", &["1777", s(&parent)]);
    sh("chmod", &["-R", "a+rwX", s(&env.store())]);
    sh("chmod", &["o+x", s(env.dir.path())]);
    let tree = parent.join("T");
    let output = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args([
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_acido"))
        .args([
            "--store",
            s(&env.store()),
            "startbuild",
            "--overlay",
            &base,
            s(&tree),
        ])
        .env_clear()
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).replace(&base, "[ID]");
    assert_eq!(output.status.code(), Some(128), "{stderr}");
    insta::assert_snapshot!("overlay_not_root", stderr);
    assert!(!tree.exists(), "a failed --overlay left {}", tree.display());
}

#[test]
fn gc_sweeps_the_state_of_trees_gone_without_endbuild_and_never_a_mounted_one() {
    if !can_mount_overlays("gc_sweeps_states") {
        return;
    }
    let env = Env::new();
    let layout = env.layout(
        "base",
        &manifest_json("example.com/small"),
        &[("etc/a", "a\n")],
    );
    let base = import(&env, &layout);
    let start = |name: &str| {
        let tree = env.path(name);
        env.run(["-q", "startbuild", "--overlay", &base, s(&tree)])
            .ok();
        let (state_dir, _) = state_of(&env, &tree);
        (tree.clone(), tree.join("rootfs"), state_dir)
    };
    let swept = |state_dir: &Path| {
        let name = state_dir.file_name().unwrap().to_str().unwrap().to_owned();
        let gc = env.run(["gc"]);
        let out = gc.ok();
        out.lines()
            .any(|l| l.starts_with(&format!("removed build-state builds/{name} ")))
    };

    // Mounted: kept, and still mounted.
    let (live, live_rootfs, live_state) = start("live");
    let _g1 = Unmount(live_rootfs.clone());
    fs::write(live_rootfs.join("etc/a"), "edited\n").unwrap();
    assert!(!swept(&live_state));
    assert!(live_state.exists() && is_mounted(&live_rootfs));

    // Unmounted (a reboot) with its empty mount point: it can be resumed.
    let (_, resumable_rootfs, resumable_state) = start("resumable");
    let _g2 = Unmount(resumable_rootfs.clone());
    sh("umount", &[s(&resumable_rootfs)]);
    assert!(!swept(&resumable_state));
    assert!(resumable_state.exists());

    // Removed by hand while unmounted (or after a reboot): swept.
    let (gone, gone_rootfs, gone_state) = start("gone");
    let _g3 = Unmount(gone_rootfs.clone());
    fs::write(gone_rootfs.join("etc/new"), "new\n").unwrap();
    sh("umount", &[s(&gone_rootfs)]);
    fs::remove_dir_all(&gone).unwrap();
    assert!(swept(&gone_state));
    assert!(!gone_state.exists());

    // Its path now holds a plain tree: the old state is not that tree's,
    // and once swept a plain build of it works again.
    let (taken, taken_rootfs, taken_state) = start("taken");
    let _g4 = Unmount(taken_rootfs.clone());
    sh("umount", &[s(&taken_rootfs)]);
    fs::remove_dir_all(&taken).unwrap();
    env.run(["-q", "startbuild", &base, s(&taken)]).ok();
    let refused = env.run(["build", "--import", s(&taken)]);
    assert_eq!(refused.code(), 128, "{}", refused.stderr());
    assert!(swept(&taken_state));
    env.run(["build", "--import", s(&taken)]).ok();

    // The live tree's changes are intact and it still builds.
    assert_eq!(
        fs::read_to_string(live_rootfs.join("etc/a")).unwrap(),
        "edited\n"
    );
    build(&env, &live, "live.aci");
    env.run(["endbuild", s(&live)]).ok();
    env.run(["startbuild", "--resume", s(&env.path("resumable"))])
        .ok();
    env.run(["endbuild", s(&env.path("resumable"))]).ok();
}

#[test]
fn run_in_an_overlay_tree_leaves_only_its_change_for_build() {
    if !can_mount_overlays("run_in_an_overlay_tree") {
        return;
    }
    const BUSYBOX: &str = "/bin/busybox";
    if !Path::new(BUSYBOX).is_file() {
        assert!(!under_ci(), "{BUSYBOX} is missing under CI");
        println!("skipped: run_in_an_overlay_tree: {BUSYBOX} is missing");
        return;
    }
    let env = Env::new();
    let dir = env.path("busybox");
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "rm"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    write(&root.join("etc/hostname"), "busybox\n");
    write(&root.join("etc/resolv.conf"), "");
    for mount_point in ["proc", "dev", "tmp", "srv"] {
        fs::create_dir_all(root.join(mount_point)).unwrap();
    }
    write(&dir.join("manifest"), &manifest_json("example.com/busybox"));
    pin_times(&dir);
    let base = import(&env, &dir);

    let plain = env.path("P");
    let over = env.path("O");
    env.run(["-q", "startbuild", &base, s(&plain)]).ok();
    env.run(["-q", "startbuild", "--overlay", &base, s(&over)])
        .ok();
    let _guard = Unmount(over.join("rootfs"));
    for tree in [&plain, &over] {
        let run = env.run([
            "run",
            s(tree),
            "--",
            "/bin/sh",
            "-c",
            "echo hi > /srv/new; rm /etc/hostname",
        ]);
        run.ok();
        // The times the command set, pinned, so both trees are the same.
        for path in ["etc", "srv", "srv/new"] {
            let full = tree.join("rootfs").join(path);
            sh("touch", &["-h", "-d", "@1600000000", s(&full)]);
        }
    }
    // The run's mounts (/proc, /dev, resolv.conf) left nothing in the
    // upper directory: only the command's change is there.
    let upper = upper_of(&env, &over);
    let mut changed: Vec<String> = walkdir::WalkDir::new(&upper)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path().strip_prefix(&upper).unwrap().display().to_string()
        })
        .collect();
    changed.sort();
    assert_eq!(changed, ["etc", "etc/hostname", "srv", "srv/new"]);
    let (plain_id, _) = build(&env, &plain, "plain.aci");
    let (over_id, run) = build(&env, &over, "over.aci");
    assert!(
        run.stderr().contains("overlay tree, only its changes read"),
        "{}",
        run.stderr()
    );
    assert_eq!(over_id, plain_id);
    env.run(["endbuild", s(&over)]).ok();
}
