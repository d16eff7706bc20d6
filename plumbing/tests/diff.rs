//! `diff` on real trees: two directories built in temp dirs, the second a
//! `cp -a` copy of the first with one change applied.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use acido_plumbing::diff::{
    diff_trees, format, tree_root, walk, Attr, Change, DiffOptions, Status,
};
use nix::sys::stat::{utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

struct Pair {
    _tmp: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Says why a root-only test did nothing (STYLE 17: never pass silently).
#[allow(clippy::print_stderr)]
fn skip(why: &str) {
    eprintln!("skipped: {why}");
}

/// Sets a path's atime and mtime without following a symlink.
fn set_mtime(path: &Path, secs: i64, nsec: i64) {
    let t = TimeSpec::new(secs, nsec);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

/// Gives `b` the mtime of `a` (both lstat'ed), so a test isolates one attribute.
fn same_mtime(a: &Path, b: &Path) {
    let m = fs::symlink_metadata(a).unwrap();
    set_mtime(b, m.mtime(), m.mtime_nsec());
}

/// Tree A with a bit of everything, then B = `cp -a A`.
fn pair() -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    fs::create_dir_all(a.join("etc/sub")).unwrap();
    fs::create_dir_all(a.join("usr/bin")).unwrap();
    fs::write(a.join("etc/passwd"), b"root:x:0:0\n").unwrap();
    fs::write(a.join("etc/sub/deep"), b"deep").unwrap();
    fs::write(a.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(a.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(a.join("usr/bin/tool"), a.join("usr/bin/tool2")).unwrap();
    fs::write(a.join("twin1"), b"same").unwrap();
    fs::write(a.join("twin2"), b"same").unwrap();
    symlink("../etc/passwd", a.join("usr/link")).unwrap();
    symlink("/etc/passwd", a.join("outside")).unwrap();
    nix::unistd::mkfifo(&a.join("pipe"), Mode::from_bits_truncate(0o644)).unwrap();
    xattr::set(a.join("etc/passwd"), "user.note", b"v1").unwrap();
    if is_root() {
        nix::sys::stat::mknod(
            &a.join("null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
    // Fixed, nanosecond-precise times everywhere, deepest first so that
    // setting a child does not disturb its directory afterwards.
    let paths: Vec<PathBuf> = walkdir::WalkDir::new(&a)
        .contents_first(true)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .collect();
    for (i, p) in paths.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64, 123_456_789);
    }
    let b = tmp.path().join("b");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(st.success());
    Pair { _tmp: tmp, a, b }
}

fn ignore_dirs() -> DiffOptions {
    DiffOptions {
        ignore_dir_mtime: true,
    }
}

fn summary(changes: &[Change]) -> Vec<(String, Status, Vec<Attr>)> {
    changes
        .iter()
        .map(|c| {
            (
                String::from_utf8(c.path.clone()).unwrap(),
                c.status,
                c.attrs.clone(),
            )
        })
        .collect()
}

fn diff(p: &Pair, opts: &DiffOptions) -> Vec<(String, Status, Vec<Attr>)> {
    summary(&diff_trees(&p.a, &p.b, opts).unwrap())
}

fn m(path: &str, attrs: &[Attr]) -> (String, Status, Vec<Attr>) {
    (path.to_owned(), Status::Modified, attrs.to_vec())
}

fn s(path: &str, status: Status) -> (String, Status, Vec<Attr>) {
    (path.to_owned(), status, vec![])
}

#[test]
fn a_cp_a_copy_has_no_changes() {
    let p = pair();
    assert_eq!(diff(&p, &DiffOptions::default()), vec![]);
    let tree = walk(&p.b).unwrap();
    assert!(tree.len() >= 14, "walk saw {} paths", tree.len());
    let tool = tree.get(b"usr/bin/tool").unwrap();
    assert_eq!(tool.mode, 0o4755);
    assert_eq!(tool.hard_links, vec![b"usr/bin/tool2".to_vec()]);
    assert_eq!(
        tree.get(b"etc/passwd").unwrap().xattrs,
        vec![(b"user.note".to_vec(), b"v1".to_vec())]
    );
}

#[test]
fn same_size_content_change() {
    let p = pair();
    let f = p.b.join("etc/passwd");
    fs::write(&f, b"root:y:0:0\n").unwrap();
    same_mtime(&p.a.join("etc/passwd"), &f);
    assert_eq!(
        diff(&p, &DiffOptions::default()),
        vec![m("etc/passwd", &[Attr::Content])]
    );
}

#[test]
fn size_change_reports_content_and_size() {
    let p = pair();
    let f = p.b.join("etc/sub/deep");
    fs::write(&f, b"deeper").unwrap();
    same_mtime(&p.a.join("etc/sub/deep"), &f);
    assert_eq!(
        diff(&p, &ignore_dirs()),
        vec![m("etc/sub/deep", &[Attr::Content, Attr::Size])]
    );
}

#[test]
fn mode_change_of_every_bit_kind() {
    let p = pair();
    // Dropping only the setuid bit must be seen.
    fs::set_permissions(p.b.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(p.b.join("etc/sub"), fs::Permissions::from_mode(0o1755)).unwrap();
    // tool2 is the same inode as tool, so it changes with it.
    assert_eq!(
        diff(&p, &DiffOptions::default()),
        vec![
            m("etc/sub", &[Attr::Mode]),
            m("usr/bin/tool", &[Attr::Mode]),
            m("usr/bin/tool2", &[Attr::Mode]),
        ]
    );
}

#[test]
fn owner_changes_as_root() {
    if !is_root() {
        skip("changing owners needs root");
        return;
    }
    let p = pair();
    let uid = nix::unistd::Uid::from_raw(1234);
    let gid = nix::unistd::Gid::from_raw(4321);
    nix::unistd::chown(&p.b.join("etc/passwd"), Some(uid), None).unwrap();
    nix::unistd::chown(&p.b.join("twin1"), None, Some(gid)).unwrap();
    nix::unistd::fchownat(
        None,
        &p.b.join("outside"),
        Some(uid),
        Some(gid),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    assert_eq!(
        diff(&p, &DiffOptions::default()),
        vec![
            m("etc/passwd", &[Attr::Uid]),
            m("outside", &[Attr::Uid, Attr::Gid]),
            m("twin1", &[Attr::Gid]),
        ]
    );
}

#[test]
fn mtime_nanoseconds_and_dir_mtime() {
    let p = pair();
    let a_md = fs::symlink_metadata(p.a.join("twin2")).unwrap();
    set_mtime(&p.b.join("twin2"), a_md.mtime(), a_md.mtime_nsec() + 1);
    let a_dir = fs::symlink_metadata(p.a.join("usr")).unwrap();
    set_mtime(&p.b.join("usr"), a_dir.mtime() + 1, a_dir.mtime_nsec());
    assert_eq!(
        diff(&p, &DiffOptions::default()),
        vec![m("twin2", &[Attr::Mtime]), m("usr", &[Attr::Mtime])]
    );
    assert_eq!(diff(&p, &ignore_dirs()), vec![m("twin2", &[Attr::Mtime])]);
}

#[test]
fn xattr_changes() {
    let p = pair();
    xattr::set(p.b.join("etc/passwd"), "user.note", b"v2").unwrap();
    xattr::set(p.b.join("etc/sub"), "user.dir", b"x").unwrap();
    assert_eq!(
        diff(&p, &DiffOptions::default()),
        vec![
            m("etc/passwd", &[Attr::Xattrs]),
            m("etc/sub", &[Attr::Xattrs])
        ]
    );
    // Back to A's set: no change; a removed attribute is a change again.
    xattr::set(p.b.join("etc/passwd"), "user.note", b"v1").unwrap();
    xattr::remove(p.b.join("etc/sub"), "user.dir").unwrap();
    assert_eq!(diff(&p, &DiffOptions::default()), vec![]);
    xattr::remove(p.b.join("etc/passwd"), "user.note").unwrap();
    assert_eq!(
        diff(&p, &DiffOptions::default()),
        vec![m("etc/passwd", &[Attr::Xattrs])]
    );
}

#[test]
fn symlink_outside_the_tree_is_never_followed() {
    let p = pair();
    let link = p.b.join("outside");
    fs::remove_file(&link).unwrap();
    symlink("/etc/shadow", &link).unwrap();
    same_mtime(&p.a.join("outside"), &link);
    assert_eq!(
        diff(&p, &ignore_dirs()),
        vec![m("outside", &[Attr::LinkTarget])]
    );
    // A dangling target differs the same way and is not an error.
    fs::remove_file(&link).unwrap();
    symlink("/nonexistent/target", &link).unwrap();
    same_mtime(&p.a.join("outside"), &link);
    assert_eq!(
        diff(&p, &ignore_dirs()),
        vec![m("outside", &[Attr::LinkTarget])]
    );
}

#[test]
fn hard_link_regrouping_with_identical_content() {
    let p = pair();
    // twin1 and twin2 become one inode (content was already identical).
    fs::remove_file(p.b.join("twin2")).unwrap();
    fs::hard_link(p.b.join("twin1"), p.b.join("twin2")).unwrap();
    // usr/bin/tool2 becomes a separate copy of tool.
    fs::remove_file(p.b.join("usr/bin/tool2")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(p.b.join("usr/bin/tool"))
        .arg(p.b.join("usr/bin/tool2"))
        .status()
        .unwrap();
    assert!(st.success());
    // twin2 is now twin1's inode, whose mtime it takes.
    same_mtime(&p.a.join("twin1"), &p.b.join("twin1"));
    let twin2_mtime = fs::symlink_metadata(p.a.join("twin2")).unwrap().mtime();
    assert_ne!(
        twin2_mtime,
        fs::symlink_metadata(p.b.join("twin2")).unwrap().mtime()
    );
    assert_eq!(
        diff(&p, &ignore_dirs()),
        vec![
            m("twin1", &[Attr::HardLinks]),
            m("twin2", &[Attr::Mtime, Attr::HardLinks]),
            m("usr/bin/tool", &[Attr::HardLinks]),
            m("usr/bin/tool2", &[Attr::HardLinks]),
        ]
    );
}

#[test]
fn device_numbers_as_root() {
    if !is_root() {
        skip("mknod needs root");
        return;
    }
    let p = pair();
    let dev = p.b.join("null");
    fs::remove_file(&dev).unwrap();
    nix::sys::stat::mknod(
        &dev,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .unwrap();
    let a_mode = fs::symlink_metadata(p.a.join("null")).unwrap().mode();
    fs::set_permissions(&dev, fs::Permissions::from_mode(a_mode & 0o7777)).unwrap();
    same_mtime(&p.a.join("null"), &dev);
    assert_eq!(diff(&p, &ignore_dirs()), vec![m("null", &[Attr::Device])]);
    let tree = walk(&p.b).unwrap();
    let meta = tree.get(b"null").unwrap();
    assert_eq!((meta.dev_major, meta.dev_minor), (1, 5));
}

#[test]
fn added_deleted_and_type_changed_with_children() {
    let p = pair();
    fs::remove_dir_all(p.b.join("etc")).unwrap();
    fs::write(p.b.join("etc"), b"now a file").unwrap();
    fs::remove_dir_all(p.b.join("usr/bin")).unwrap();
    fs::create_dir_all(p.b.join("opt/x")).unwrap();
    fs::write(p.b.join("opt/x/y"), b"").unwrap();
    fs::remove_file(p.b.join("pipe")).unwrap();
    fs::write(p.b.join("pipe"), b"").unwrap();
    assert_eq!(
        diff(&p, &ignore_dirs()),
        vec![
            s("etc", Status::TypeChanged),
            s("etc/passwd", Status::Deleted),
            s("etc/sub", Status::Deleted),
            s("etc/sub/deep", Status::Deleted),
            s("opt", Status::Added),
            s("opt/x", Status::Added),
            s("opt/x/y", Status::Added),
            s("pipe", Status::TypeChanged),
            s("usr/bin", Status::Deleted),
            s("usr/bin/tool", Status::Deleted),
            s("usr/bin/tool2", Status::Deleted),
        ]
    );
    // The reverse direction swaps added and deleted.
    let back = summary(&diff_trees(&p.b, &p.a, &ignore_dirs()).unwrap());
    assert_eq!(back[1], s("etc/passwd", Status::Added));
    assert_eq!(back[4], s("opt", Status::Deleted));
}

#[test]
fn root_is_listed_as_dot() {
    let p = pair();
    fs::set_permissions(&p.b, fs::Permissions::from_mode(0o700)).unwrap();
    same_mtime(&p.a, &p.b);
    let got = diff(&p, &DiffOptions::default());
    assert_eq!(got, vec![m(".", &[Attr::Mode])]);
}

#[test]
fn fifos_are_never_opened() {
    let p = pair();
    // Opening a fifo for reading without a writer blocks for ever, so a
    // diff that opened one would hang: run it on a thread with a deadline.
    let (a, b) = (p.a.clone(), p.b.clone());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = diff_trees(&a, &b, &DiffOptions::default()).map(|c| c.len());
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => assert_eq!(r.unwrap(), 0),
        Err(_) => panic!("diff_trees blocked: a fifo was opened"),
    }
    let tree = walk(&p.a).unwrap();
    assert_eq!(
        tree.get(b"pipe").unwrap().kind,
        acido_plumbing::entry::EntryKind::Fifo
    );
}

#[test]
fn layout_dirs_compare_their_rootfs() {
    let p = pair();
    let layout = p._tmp.path().join("layout");
    fs::create_dir(&layout).unwrap();
    fs::write(layout.join("manifest"), b"{}").unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&p.a)
        .arg(layout.join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(tree_root(&layout), layout.join("rootfs"));
    assert_eq!(
        summary(&diff_trees(&layout, &p.b, &DiffOptions::default()).unwrap()),
        vec![]
    );
}

#[test]
fn a_missing_or_file_root_is_an_error() {
    let p = pair();
    let err = diff_trees(&p.a.join("nope"), &p.b, &DiffOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = diff_trees(&p.a.join("twin1"), &p.b, &DiffOptions::default()).unwrap_err();
    assert!(err.to_string().ends_with("twin1: not a directory"), "{err}");
}

#[test]
fn encoders_on_a_real_diff_quote_odd_paths() {
    let p = pair();
    fs::write(p.b.join("new\nline"), b"").unwrap();
    fs::remove_file(p.b.join("twin1")).unwrap();
    let changes = diff_trees(&p.a, &p.b, &ignore_dirs()).unwrap();

    let mut out = Vec::new();
    format::write_name_status(&mut out, &changes, false).unwrap();
    assert_eq!(out, b"A\t\"new\\nline\"\nD\ttwin1\n");

    let mut out = Vec::new();
    format::write_name_status(&mut out, &changes, true).unwrap();
    assert_eq!(out, b"A\0new\nline\0D\0twin1\0");

    let mut out = Vec::new();
    format::write_stat(&mut out, &changes).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        " \"new\\nline\" | added\n twin1 | deleted\n \
         2 paths changed, 1 added, 0 modified, 1 deleted, 0 type changed\n"
    );

    let mut out = Vec::new();
    format::write_json(&mut out, &changes).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["formatVersion"], 1);
    assert_eq!(v["changes"][0]["path"], "new\nline");
    assert_eq!(v["changes"][0]["a"], serde_json::Value::Null);
    assert_eq!(v["changes"][1]["status"], "D");
    assert_eq!(v["changes"][1]["a"]["type"], "regular");
    assert_eq!(v["changes"][1]["a"]["size"], 4);
}

#[test]
fn non_utf8_names_stay_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let p = pair();
    let name = std::ffi::OsStr::from_bytes(b"bad\xff");
    fs::write(p.b.join(name), b"").unwrap();
    let changes = diff_trees(&p.a, &p.b, &ignore_dirs()).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, b"bad\xff");

    let mut out = Vec::new();
    format::write_name_status(&mut out, &changes, false).unwrap();
    assert_eq!(out, b"A\t\"bad\\377\"\n");
    let mut out = Vec::new();
    format::write_name_status(&mut out, &changes, true).unwrap();
    assert_eq!(out, b"A\0bad\xff\0");
    let mut out = Vec::new();
    format::write_json(&mut out, &changes).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["changes"][0]["path"],
        serde_json::json!({"bytes": [98, 97, 100, 255]})
    );
}

#[test]
fn a_symlinked_root_is_resolved_once() {
    let p = pair();
    let link = p._tmp.path().join("b-link");
    symlink(&p.b, &link).unwrap();
    let tree = walk(&link).unwrap();
    assert_eq!(tree.root(), fs::canonicalize(&p.b).unwrap());
    assert_eq!(
        summary(&diff_trees(&p.a, &link, &DiffOptions::default()).unwrap()),
        vec![]
    );
}
