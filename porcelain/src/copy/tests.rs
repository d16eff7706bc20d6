//! Unit tests of `copy`, `add` and `make_dir` through the public entry points.

use super::*;
use nix::sys::stat::{self, UtimensatFlags};
use nix::unistd;
use std::os::unix::fs::{symlink, PermissionsExt};

/// A build tree with an empty rootfs, and a scratch dir.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    fs::write(dir.join("manifest"), "{}").unwrap();
    (tmp, dir)
}

fn run(
    dir: &Path,
    sources: &[&Path],
    dest: &str,
    opts: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    let sources: Vec<PathBuf> = sources.iter().map(|p| p.to_path_buf()).collect();
    copy(dir, &sources, dest.as_bytes(), opts, dir.parent().unwrap())
}

fn set_mtime(path: &Path, secs: i64) {
    let t = TimeSpec::new(secs, 123_456_789);
    stat::utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

#[test]
fn options_parse_or_name_the_bad_value() {
    assert_eq!(parse_owner("10:20").unwrap(), (10, 20));
    assert_eq!(parse_owner("7").unwrap(), (7, 7));
    assert_eq!(parse_owner("7:").unwrap(), (7, 7));
    for bad in ["", ":1", "a:b", "1:-2", "99999999999"] {
        assert!(
            matches!(parse_owner(bad), Err(CopyError::BadOwner { .. })),
            "{bad}"
        );
    }
    assert_eq!(parse_mode("0644").unwrap(), 0o644);
    assert_eq!(parse_mode("4755").unwrap(), 0o4755);
    assert_eq!(parse_mode("0o700").unwrap(), 0o700);
    for bad in ["", "8", "12345", "u+x", "0x1"] {
        assert!(
            matches!(parse_mode(bad), Err(CopyError::BadMode { .. })),
            "{bad}"
        );
    }
    let (dir, dest) = parse_target(OsStr::new("t:/a:b")).unwrap();
    assert_eq!(
        (dir.as_path(), dest.as_slice()),
        (Path::new("t"), &b"/a:b"[..])
    );
    for bad in ["t", ":/x", "t:"] {
        assert!(
            matches!(
                parse_target(OsStr::new(bad)),
                Err(CopyError::BadTarget { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_file_keeps_its_data_mode_and_times_and_parents_are_made() {
    let (tmp, dir) = tree();
    let src = tmp.path().join("hello");
    fs::write(&src, "hi\n").unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o4751)).unwrap();
    set_mtime(&src, 1_000_000_000);
    let report = run(
        &dir,
        &[&src],
        "/usr/local/bin/greet",
        &CopyOptions::default(),
    )
    .unwrap();
    let out = dir.join("rootfs/usr/local/bin/greet");
    assert_eq!(fs::read(&out).unwrap(), b"hi\n");
    let m = fs::symlink_metadata(&out).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4751);
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000_000, 123_456_789));
    let parent = fs::metadata(dir.join("rootfs/usr/local")).unwrap();
    assert_eq!(parent.mode() & 0o7777, 0o755);
    assert_eq!((report.files, report.bytes, report.dirs), (1, 3, 3));

    // An existing directory destination receives the file by name;
    // --chmod replaces the mode.
    let opts = CopyOptions {
        chmod: Some(0o600),
        ..CopyOptions::default()
    };
    run(&dir, &[&src], "/usr", &opts).unwrap();
    let m = fs::metadata(dir.join("rootfs/usr/hello")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
}

#[test]
fn a_directory_copies_its_contents_with_links_kept() {
    let (tmp, dir) = tree();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("sub/a"), "a").unwrap();
    fs::hard_link(src.join("sub/a"), src.join("b")).unwrap();
    symlink("sub/a", src.join("link")).unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&src.join("sub"), 1_500_000_000);
    run(&dir, &[&src], "/opt/app/", &CopyOptions::default()).unwrap();
    let root = dir.join("rootfs/opt/app");
    assert_eq!(fs::read(root.join("sub/a")).unwrap(), b"a");
    let (a, b) = (
        fs::metadata(root.join("sub/a")).unwrap(),
        fs::metadata(root.join("b")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link kept");
    assert_eq!(
        fs::read_link(root.join("link")).unwrap(),
        Path::new("sub/a")
    );
    let sub = fs::metadata(root.join("sub")).unwrap();
    assert_eq!(sub.mode() & 0o7777, 0o750);
    assert_eq!(
        sub.mtime(),
        1_500_000_000,
        "directory times set after its children"
    );
    assert!(root.join("sub/deeper").is_dir());
}

#[test]
fn symlinks_in_the_tree_resolve_inside_the_rootfs() {
    let (tmp, dir) = tree();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "keep").unwrap();
    let rootfs = dir.join("rootfs");
    // An absolute link to the host directory, a relative one climbing
    // far above the rootfs, and a link in the final name.
    symlink(&outside, rootfs.join("abs")).unwrap();
    symlink("../../../../../../..", rootfs.join("up")).unwrap();
    fs::create_dir(rootfs.join("etc")).unwrap();
    symlink(outside.join("victim"), rootfs.join("etc/passwd")).unwrap();
    let src = tmp.path().join("f");
    fs::write(&src, "new").unwrap();
    let opts = CopyOptions::default();
    run(&dir, &[&src], "/abs/victim", &opts).unwrap();
    run(&dir, &[&src], "/up/x", &opts).unwrap();
    run(&dir, &[&src], "/up/../../y/", &opts).unwrap();
    run(&dir, &[&src], "/etc/passwd", &opts).unwrap();
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing written outside"
    );
    let inside = rootfs
        .join(outside.strip_prefix("/").unwrap())
        .join("victim");
    assert_eq!(
        fs::read(inside).unwrap(),
        b"new",
        "/abs resolved as in a chroot"
    );
    assert_eq!(fs::read(rootfs.join("x")).unwrap(), b"new");
    assert_eq!(fs::read(rootfs.join("y/f")).unwrap(), b"new");
    let passwd = fs::symlink_metadata(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.is_file(), "the final name is replaced, not followed");
}

#[test]
fn make_dir_is_mkdir_p_inside_the_rootfs() {
    let (tmp, dir) = tree();
    let rootfs = dir.join("rootfs");
    symlink(tmp.path(), rootfs.join("host")).unwrap();
    assert_eq!(make_dir(&dir, b"srv/app").unwrap(), 2);
    assert_eq!(make_dir(&dir, b"/srv/app/").unwrap(), 0);
    make_dir(&dir, b"/host/made").unwrap();
    assert!(!tmp.path().join("made").exists());
    assert!(rootfs
        .join(tmp.path().strip_prefix("/").unwrap())
        .join("made")
        .is_dir());
    let m = fs::metadata(rootfs.join("srv/app")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);
}

#[test]
fn loops_non_directories_and_several_sources_are_refused() {
    let (tmp, dir) = tree();
    let rootfs = dir.join("rootfs");
    symlink("loop", rootfs.join("loop")).unwrap();
    fs::write(rootfs.join("file"), "").unwrap();
    fs::create_dir(rootfs.join("d")).unwrap();
    let src = tmp.path().join("f");
    fs::write(&src, "x").unwrap();
    let opts = CopyOptions::default();
    assert!(matches!(
        run(&dir, &[&src], "/loop/x", &opts),
        Err(CopyError::Tree(TreeError::SymlinkLoop { .. }))
    ));
    assert!(matches!(
        run(&dir, &[&src], "/file/x", &opts),
        Err(CopyError::Tree(TreeError::NotADirectory { .. }))
    ));
    let two = [src.as_path(), src.as_path()];
    assert!(matches!(
        run(&dir, &two, "/new", &opts),
        Err(CopyError::NotADirectoryDestination { .. })
    ));
    assert!(!rootfs.join("new").exists());
    let err = run(&dir, &[&tmp.path().join("missing")], "/", &opts).unwrap_err();
    assert!(matches!(err, CopyError::Source { .. }), "{err}");
    // A directory in the way of a file inside a copied directory.
    let srcdir = tmp.path().join("sd");
    fs::create_dir(&srcdir).unwrap();
    fs::write(srcdir.join("d"), "").unwrap();
    assert!(matches!(
        run(&dir, &[&srcdir], "/", &opts),
        Err(CopyError::Tree(TreeError::WouldReplaceDirectory { .. }))
    ));
}

/// (name, typeflag, link target, data).
type Member<'a> = (&'a [u8], u8, &'a [u8], &'a [u8]);

fn tar_with(members: &[Member<'_>]) -> Vec<u8> {
    // (name, typeflag, link target, data); names written raw so
    // hostile ones survive.
    let mut out = Vec::new();
    for (name, kind, link, data) in members {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_size(data.len() as u64);
        h.set_mode(if *kind == b'5' { 0o755 } else { 0o640 });
        h.set_mtime(1_234_567_890);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn add_unpacks_archives_inside_the_rootfs_only() {
    let (tmp, dir) = tree();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let rootfs = dir.join("rootfs");
    let abs_outside = outside.as_os_str().as_bytes();
    let tarball = tar_with(&[
        (b"./", b'5', b"", b""),
        (b"pkg/", b'5', b"", b""),
        (b"pkg/data.txt", b'0', b"", b"payload"),
        (b"pkg/again", b'1', b"pkg/data.txt", b""),
        // A symlink out of the rootfs, then a write through it.
        (b"pkg/esc", b'2', abs_outside, b""),
        (b"pkg/esc/planted", b'0', b"", b"gotcha"),
    ]);
    let archive = tmp.path().join("pkg.tar.gz");
    fs::write(&archive, gzip(&tarball)).unwrap();
    let opts = CopyOptions {
        unpack: true,
        ..CopyOptions::default()
    };
    let report = run(&dir, &[&archive], "/srv", &opts).unwrap();
    assert_eq!(report.archives, 1);
    assert_eq!(
        fs::read(rootfs.join("srv/pkg/data.txt")).unwrap(),
        b"payload"
    );
    let (a, b) = (
        fs::metadata(rootfs.join("srv/pkg/data.txt")).unwrap(),
        fs::metadata(rootfs.join("srv/pkg/again")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mode() & 0o7777, 0o640);
    assert_eq!(a.mtime(), 1_234_567_890);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    let planted = rootfs
        .join(outside.strip_prefix("/").unwrap())
        .join("planted");
    assert_eq!(fs::read(planted).unwrap(), b"gotcha");

    // `copy` of the same file, and `add` of a file that is no tar,
    // copy bytes.
    run(&dir, &[&archive], "/copied.tgz", &CopyOptions::default()).unwrap();
    assert_eq!(
        fs::read(rootfs.join("copied.tgz")).unwrap(),
        fs::read(&archive).unwrap()
    );
    let text = tmp.path().join("notes.gz");
    fs::write(&text, gzip(b"just text")).unwrap();
    run(&dir, &[&text], "/n.gz", &opts).unwrap();
    assert_eq!(
        fs::read(rootfs.join("n.gz")).unwrap(),
        fs::read(&text).unwrap()
    );

    // A member climbing above the destination is refused.
    let evil = tmp.path().join("evil.tar");
    fs::write(&evil, tar_with(&[(b"../../x", b'0', b"", b"x")])).unwrap();
    let err = run(&dir, &[&evil], "/srv", &opts).unwrap_err();
    // The tar parser itself refuses it (`member_path` is the second line).
    assert!(err.to_string().contains("escapes"), "{err}");
    assert!(!tmp.path().join("x").exists() && !dir.join("x").exists());
}

#[test]
fn chown_sets_owners_as_root() {
    if !unistd::geteuid().is_root() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: setting owners needs root");
        }
        return;
    }
    let (tmp, dir) = tree();
    let src = tmp.path().join("s");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "").unwrap();
    symlink("f", src.join("l")).unwrap();
    let opts = CopyOptions {
        chown: Some((1234, 5678)),
        ..CopyOptions::default()
    };
    run(&dir, &[&src], "/d", &opts).unwrap();
    for name in ["d", "d/f", "d/l"] {
        let m = fs::symlink_metadata(dir.join("rootfs").join(name)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "{name}");
    }
}
