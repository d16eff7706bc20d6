//! Library tests of rendering: the dependency list, the file map and
//! extraction, on images generated here and packed with `pack`, compared
//! with the reference renderer `render-aci` (aci-format §14, §15 cases
//! 25–39) where it is available, and asserting our spec behaviour in the
//! reference's quirk cases (DESIGN §5).

#![allow(clippy::print_stderr)] // skip reasons go to the test log

use std::fs;
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use acido_plumbing::compression::Compression;
use acido_plumbing::diff::{self, DiffOptions};
use acido_plumbing::id::ImageId;
use acido_plumbing::index::EntryIndex;
use acido_plumbing::pack::{pack_selected, PackOptions};
use acido_plumbing::render::{
    self, dependency_list, file_map, write_file_map, EnsuredTree, RenderError, RenderOptions,
    RenderReport, TreeState,
};
use acido_plumbing::store::Store;
use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

mod common;
use common::{dump, is_root, oracle};

/// One node of a generated rootfs.
#[derive(Clone)]
enum Node {
    Dir(&'static str, u32),
    File(&'static str, &'static str, u32),
    Link(&'static str, &'static str),
    Hard(&'static str, &'static str),
    Fifo(&'static str),
    Char(&'static str, u64, u64),
}
use Node::*;

/// A generated image.
#[derive(Clone, Default)]
struct Spec {
    name: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    /// Dependencies as JSON objects.
    deps: Vec<String>,
    whitelist: Vec<&'static str>,
    nodes: Vec<Node>,
    /// Directory entries left out of the archive (their children stay).
    omit: Vec<&'static str>,
    rootfs_mode: Option<u32>,
}

fn spec(name: &'static str, nodes: Vec<Node>) -> Spec {
    Spec {
        name,
        nodes,
        ..Spec::default()
    }
}

fn dep(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!(r#"{{"name":"{k}","value":"{v}"}}"#))
        .collect();
    format!(
        r#"{{"imageName":"{name}","labels":[{}]}}"#,
        labels.join(",")
    )
}

fn dep_id(name: &str, id: &ImageId) -> String {
    format!(
        r#"{{"imageName":"{name}","imageID":"{id}","labels":[{{"name":"version","value":"wrong"}}]}}"#
    )
}

fn set_time(path: &Path, secs: i64, nanos: i64) {
    let t = TimeSpec::new(secs, nanos);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

impl Spec {
    fn manifest(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!(r#"{{"name":"{k}","value":"{v}"}}"#))
            .collect();
        let pwl: Vec<String> = self.whitelist.iter().map(|p| format!("{p:?}")).collect();
        format!(
            r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{}","labels":[{}],"dependencies":[{}],"pathWhitelist":[{}]}}"#,
            self.name,
            labels.join(","),
            self.deps.join(","),
            pwl.join(",")
        )
    }

    /// Builds the rootfs under `dir` and packs it into a plain tar.
    fn tar(&self, dir: &Path) -> Vec<u8> {
        let root = dir.join("rootfs");
        fs::create_dir_all(&root).unwrap();
        for (i, node) in self.nodes.iter().enumerate() {
            let (path, dir_mode) = match node {
                Dir(p, m) => (*p, Some(*m)),
                File(p, ..) | Link(p, _) | Hard(p, _) | Fifo(p) | Char(p, ..) => (*p, None),
            };
            let full = root.join(path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            match node {
                Dir(..) => fs::create_dir_all(&full).unwrap(),
                File(_, content, mode) => {
                    fs::write(&full, content).unwrap();
                    fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
                }
                Link(_, target) => symlink(target, &full).unwrap(),
                Hard(_, target) => fs::hard_link(root.join(target), &full).unwrap(),
                Fifo(_) => {
                    nix::unistd::mkfifo(&full, nix::sys::stat::Mode::from_bits_truncate(0o640))
                        .unwrap()
                }
                Char(_, major, minor) => nix::sys::stat::mknod(
                    &full,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o620),
                    nix::sys::stat::makedev(*major, *minor),
                )
                .unwrap(),
            }
            if let Some(mode) = dir_mode {
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
            }
            let _ = i;
        }
        // Times last, deepest first, so creating children does not change them.
        let mut all: Vec<PathBuf> = walkdir::WalkDir::new(&root)
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for (i, p) in all.iter().enumerate() {
            set_time(p, 1_600_000_000 + i as i64, 0);
        }
        fs::set_permissions(
            &root,
            fs::Permissions::from_mode(self.rootfs_mode.unwrap_or(0o755)),
        )
        .unwrap();
        set_time(&root, 1_500_000_000, 0);
        let mut out = Vec::new();
        let omit: Vec<&[u8]> = self.omit.iter().map(|p| p.as_bytes()).collect();
        pack_selected(
            self.manifest().as_bytes(),
            &root,
            &|p| !omit.contains(&p),
            &mut out,
            &PackOptions {
                compression: Compression::None,
                xz_threads: 1,
                level: None,
                ..PackOptions::default()
            },
        )
        .unwrap();
        out
    }
}

/// A store and a directory of the same images as `.aci` files (for the
/// reference renderer).
struct World {
    tmp: tempfile::TempDir,
    store: Store,
    count: usize,
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("acis")).unwrap();
        let store = Store::at(tmp.path().join("store"));
        World {
            tmp,
            store,
            count: 0,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn add(&mut self, spec: &Spec) -> ImageId {
        self.count += 1;
        let dir = self.path(&format!("layout-{}", self.count));
        let tar = spec.tar(&dir);
        // The reference picks the file name sorting last among matches; we
        // pick the newest import: adding in order makes them agree.
        fs::write(self.path(&format!("acis/{:03}.aci", self.count)), &tar).unwrap();
        self.store
            .import(Cursor::new(tar), spec.name)
            .unwrap()
            .record
            .id
    }

    fn render(&self, top: ImageId, out: &str) -> Result<RenderReport, RenderError> {
        render::render(
            &self.store,
            top,
            &self.path(out),
            &RenderOptions::default(),
            &AtomicBool::new(false),
        )
    }

    /// The reference's rendering of `name`, or its error text.
    fn oracle(&self, name: &str, out: &str) -> Option<Result<PathBuf, String>> {
        let tool = oracle()?;
        let target = self.path(out);
        let run = Command::new(tool)
            .arg("-full-keys")
            .arg(self.path("acis"))
            .arg(name)
            .arg(&target)
            .output()
            .unwrap();
        Some(if run.status.success() {
            Ok(target)
        } else {
            Err(String::from_utf8_lossy(&run.stderr).into_owned())
        })
    }

    fn list(&self, top: ImageId) -> String {
        let list = dependency_list(&self.store, top).unwrap();
        let map = file_map(&list).unwrap();
        let mut out = Vec::new();
        write_file_map(&mut out, &list, &map, false).unwrap();
        String::from_utf8(out).unwrap()
    }
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

/// Renders `top` with acido and, when available, with the reference, and
/// asserts the dumps are identical. Returns our tree.
fn same_as_reference(world: &World, top: ImageId, name: &str) -> PathBuf {
    world.render(top, "ours").unwrap();
    let ours = world.path("ours");
    match world.oracle(name, "theirs") {
        // Recorded as a skipped conformance check by `oracle()`.
        None => {}
        Some(Err(e)) => panic!("the reference failed: {e}"),
        Some(Ok(theirs)) => assert_eq!(dump(&ours), dump(&theirs), "dumps differ"),
    }
    ours
}

fn names_in_list(world: &World, top: ImageId) -> Vec<String> {
    dependency_list(&world.store, top)
        .unwrap()
        .images
        .iter()
        .map(|e| e.image.manifest.name.to_string())
        .collect()
}

#[test]
fn case25_priority_order_and_diamond() {
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        vec![File("x", "b", 0o644), File("b", "b", 0o644)],
    ));
    w.add(&spec(
        "ex.com/d",
        vec![File("x", "d", 0o644), File("d", "d", 0o644)],
    ));
    let mut c = spec("ex.com/c", vec![File("c", "c", 0o644)]);
    c.deps = vec![dep("ex.com/d", &[])];
    w.add(&c);
    let mut a = spec("ex.com/a", vec![Dir("etc", 0o755)]);
    a.deps = vec![dep("ex.com/b", &[]), dep("ex.com/c", &[])];
    let top = w.add(&a);
    assert_eq!(
        names_in_list(&w, top),
        ["ex.com/a", "ex.com/c", "ex.com/d", "ex.com/b"]
    );
    let tree = same_as_reference(&w, top, "ex.com/a");
    assert_eq!(read(&tree, "rootfs/x"), "d", "D precedes B in priority");

    // A diamond lists the shared image once per path.
    let mut w = World::new();
    w.add(&spec("ex.com/d", vec![File("d", "d", 0o644)]));
    let mut b = spec("ex.com/b", vec![File("b", "b", 0o644)]);
    b.deps = vec![dep("ex.com/d", &[])];
    w.add(&b);
    let mut c = spec("ex.com/c", vec![File("c", "c", 0o644)]);
    c.deps = vec![dep("ex.com/d", &[])];
    w.add(&c);
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[]), dep("ex.com/c", &[])];
    let top = w.add(&a);
    assert_eq!(
        names_in_list(&w, top),
        ["ex.com/a", "ex.com/c", "ex.com/d", "ex.com/b", "ex.com/d"]
    );
    same_as_reference(&w, top, "ex.com/a");
}

fn base() -> Spec {
    // The worked example of aci-format §9.4.
    let mut base = spec(
        "example.com/base",
        vec![
            Dir("bin", 0o755),
            File("bin/sh", "base-sh", 0o755),
            File("bin/tool", "tool", 0o4755),
            Dir("etc", 0o750),
            File("etc/passwd", "root", 0o644),
            File("etc/secret", "secret", 0o600),
            Link("lib", "usr/lib"),
            Dir("opt", 0o755),
            File("opt/data", "data", 0o644),
            Dir("usr/lib", 0o755),
            File("usr/lib/libc.so", "libc", 0o755),
            Hard("usr/lib/libc.so.6", "usr/lib/libc.so"),
            Dir("var/log", 0o755),
            File("var/log/x", "x", 0o644),
        ],
    );
    base.labels = vec![("version", "1.0"), ("os", "linux"), ("arch", "amd64")];
    base
}

#[test]
fn case26_whitelists_filter_dependency_files_and_dirs_and_own_files_only() {
    let mut w = World::new();
    w.add(&base());
    let mut app = spec(
        "example.com/app",
        vec![
            Dir("bin", 0o755),
            File("bin/app", "app", 0o755),
            File("bin/sh", "app-sh", 0o700),
            Dir("etc", 0o755),
            File("etc/app.conf", "conf", 0o644),
            Link("opt", "/srv"),
        ],
    );
    app.deps = vec![dep("example.com/base", &[("version", "1.0")])];
    app.whitelist = vec![
        "/bin/sh",
        "/bin/app",
        "/bin/tool",
        "/etc/passwd",
        "/etc",
        "/lib",
        "/usr/lib/libc.so",
        "/usr/lib/libc.so.6",
        "/opt",
        "/opt/data",
    ];
    let top = w.add(&app);
    let tree = same_as_reference(&w, top, "example.com/app");
    assert_eq!(read(&tree, "rootfs/bin/sh"), "app-sh");
    assert!(
        !tree.join("rootfs/etc/app.conf").exists(),
        "own file filtered"
    );
    assert!(
        !tree.join("rootfs/etc/secret").exists(),
        "dependency file filtered"
    );
    assert!(!tree.join("rootfs/var").exists(), "dependency dir filtered");
    let meta = fs::symlink_metadata(tree.join("rootfs/etc")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o755, "case 39: the upper etc wins");
    let so = fs::metadata(tree.join("rootfs/usr/lib/libc.so")).unwrap();
    let so6 = fs::metadata(tree.join("rootfs/usr/lib/libc.so.6")).unwrap();
    assert_eq!(so.ino(), so6.ino(), "hard link kept");
    assert_eq!(
        fs::read_link(tree.join("rootfs/opt")).unwrap(),
        Path::new("/srv")
    );
    let listing = w.list(top);
    assert!(
        listing.contains(&format!("{top} f rootfs/bin/sh\n")),
        "{listing}"
    );
    assert!(
        listing.contains(" h rootfs/usr/lib/libc.so.6\n"),
        "{listing}"
    );
    assert!(listing.starts_with(&format!("{top} f manifest\n{top} d rootfs\n")));
}

#[test]
fn case27_whitelists_are_not_recursive() {
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        vec![Dir("etc", 0o700), File("etc/passwd", "p", 0o644)],
    ));
    let mut a = spec("ex.com/a", vec![File("a", "a", 0o644)]);
    a.deps = vec![dep("ex.com/b", &[])];
    a.whitelist = vec!["/etc", "/a"];
    let top = w.add(&a);
    let tree = same_as_reference(&w, top, "ex.com/a");
    assert!(tree.join("rootfs/etc").is_dir());
    assert!(!tree.join("rootfs/etc/passwd").exists());
}

#[test]
fn case28_every_ancestor_whitelist_applies_quirk() {
    let mut w = World::new();
    w.add(&spec(
        "ex.com/c",
        vec![File("c1", "c1", 0o644), File("b", "b", 0o644)],
    ));
    let mut b = spec("ex.com/b", vec![]);
    b.deps = vec![dep("ex.com/c", &[])];
    b.whitelist = vec!["/b"];
    w.add(&b);
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[])];
    a.whitelist = vec!["/c1", "/b"];
    let top = w.add(&a);
    w.render(top, "ours").unwrap();
    let ours = w.path("ours");
    assert!(ours.join("rootfs/b").exists());
    assert!(
        !ours.join("rootfs/c1").exists(),
        "B's whitelist lacks /c1: DESIGN §5 filters it (the reference keeps it)"
    );
    if let Some(theirs) = w.oracle("ex.com/a", "theirs") {
        let theirs = theirs.unwrap();
        assert!(theirs.join("rootfs/c1").exists(), "the recorded quirk");
    }
}

#[test]
fn case29_no_sibling_whitelist_leak_quirk() {
    let mut w = World::new();
    w.add(&spec("ex.com/e", vec![File("e", "e", 0o644)]));
    w.add(&spec("ex.com/d", vec![File("d", "d", 0o644)]));
    let mut b = spec("ex.com/b", vec![File("b", "b", 0o644)]);
    b.deps = vec![dep("ex.com/e", &[])];
    w.add(&b);
    let mut c = spec("ex.com/c", vec![File("c", "c", 0o644)]);
    c.deps = vec![dep("ex.com/d", &[])];
    c.whitelist = vec!["/c", "/d"];
    w.add(&c);
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[]), dep("ex.com/c", &[])];
    let top = w.add(&a);
    w.render(top, "ours").unwrap();
    let ours = w.path("ours");
    for f in ["b", "c", "d", "e"] {
        assert!(ours.join("rootfs").join(f).exists(), "{f} is kept");
    }
    if let Some(theirs) = w.oracle("ex.com/a", "theirs") {
        let theirs = theirs.unwrap();
        assert!(!theirs.join("rootfs/b").exists(), "the recorded quirk");
        assert!(!theirs.join("rootfs/e").exists(), "the recorded quirk");
    }
}

#[test]
fn case30_parent_must_be_dir() {
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        vec![
            Dir("x", 0o755),
            File("x/y", "y", 0o644),
            Dir("s", 0o755),
            File("s/y", "y", 0o644),
        ],
    ));
    let mut a = spec(
        "ex.com/a",
        vec![File("x", "file", 0o644), Link("s", "/tmp")],
    );
    a.deps = vec![dep("ex.com/b", &[])];
    let top = w.add(&a);
    let tree = same_as_reference(&w, top, "ex.com/a");
    assert_eq!(read(&tree, "rootfs/x"), "file");
    assert!(fs::symlink_metadata(tree.join("rootfs/s"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn case31_implied_upper_dir_beats_lower_symlink_quirk() {
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        vec![Link("lib", "usr/lib"), Dir("usr/lib", 0o755)],
    ));
    let mut a = spec(
        "ex.com/a",
        vec![Dir("lib", 0o700), File("lib/x", "x", 0o644)],
    );
    a.deps = vec![dep("ex.com/b", &[])];
    a.omit = vec!["lib"];
    let top = w.add(&a);
    w.render(top, "ours").unwrap();
    let ours = w.path("ours");
    let lib = fs::symlink_metadata(ours.join("rootfs/lib")).unwrap();
    assert!(lib.is_dir(), "the upper implied directory wins");
    assert_eq!(lib.mode() & 0o7777, 0o755, "implied directories are 0755");
    assert_eq!(read(&ours, "rootfs/lib/x"), "x");
    if let Some(theirs) = w.oracle("ex.com/a", "theirs") {
        let err = theirs.unwrap_err();
        assert!(err.contains("file exists"), "the recorded quirk: {err}");
    }

    // An explicit upper directory hides the lower symlink in both.
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        vec![Link("lib", "usr/lib"), Dir("usr/lib", 0o755)],
    ));
    let mut a = spec(
        "ex.com/a",
        vec![Dir("lib", 0o700), File("lib/x", "x", 0o644)],
    );
    a.deps = vec![dep("ex.com/b", &[])];
    let top = w.add(&a);
    same_as_reference(&w, top, "ex.com/a");

    // A lower explicit directory at a path the upper only implies supplies
    // its metadata.
    let mut w = World::new();
    w.add(&spec("ex.com/b", vec![Dir("lib", 0o750)]));
    let mut a = spec(
        "ex.com/a",
        vec![Dir("lib", 0o700), File("lib/x", "x", 0o644)],
    );
    a.deps = vec![dep("ex.com/b", &[])];
    a.omit = vec!["lib"];
    let top = w.add(&a);
    let tree = same_as_reference(&w, top, "ex.com/a");
    let lib = fs::symlink_metadata(tree.join("rootfs/lib")).unwrap();
    assert_eq!(lib.mode() & 0o7777, 0o750);
}

#[test]
fn case32_hard_links_keep_their_own_image_content_quirk() {
    // Target filtered out: the reference fails, we write the content.
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        // `a` sorts first, so the packer writes it as the file and `h` as
        // the link.
        vec![File("a", "lower", 0o640), Hard("h", "a")],
    ));
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[])];
    a.whitelist = vec!["/h"];
    let top = w.add(&a);
    w.render(top, "ours").unwrap();
    let ours = w.path("ours");
    assert!(!ours.join("rootfs/a").exists());
    assert_eq!(read(&ours, "rootfs/h"), "lower");
    assert_eq!(
        fs::metadata(ours.join("rootfs/h")).unwrap().mode() & 0o7777,
        0o640
    );
    if let Some(theirs) = w.oracle("ex.com/a", "theirs") {
        let err = theirs.unwrap_err();
        assert!(err.contains("no such file or directory"), "{err}");
    }

    // Target overridden by the upper image: the reference links to the
    // upper file, we keep the lower content.
    let mut w = World::new();
    w.add(&spec(
        "ex.com/b",
        vec![File("a", "lower", 0o644), Hard("h", "a"), Hard("h2", "a")],
    ));
    let mut a = spec("ex.com/a", vec![File("a", "upper", 0o644)]);
    a.deps = vec![dep("ex.com/b", &[])];
    let top = w.add(&a);
    w.render(top, "ours").unwrap();
    let ours = w.path("ours");
    assert_eq!(read(&ours, "rootfs/a"), "upper");
    assert_eq!(read(&ours, "rootfs/h"), "lower");
    let h = fs::metadata(ours.join("rootfs/h")).unwrap();
    let h2 = fs::metadata(ours.join("rootfs/h2")).unwrap();
    assert_eq!(h.ino(), h2.ino(), "the rest of the group stays linked");
    if let Some(theirs) = w.oracle("ex.com/a", "theirs") {
        assert_eq!(read(&theirs.unwrap(), "rootfs/h"), "upper", "the quirk");
    }
}

#[test]
fn case33_34_manifest_and_rootfs_come_from_the_top_quirk() {
    let mut w = World::new();
    let mut b = spec("ex.com/b", vec![File("b", "b", 0o644)]);
    b.rootfs_mode = Some(0o700);
    w.add(&b);
    let mut a = spec("ex.com/a", vec![File("a", "a", 0o644)]);
    a.deps = vec![dep("ex.com/b", &[])];
    let top = w.add(&a);
    w.render(top, "ours").unwrap();
    let ours = w.path("ours");
    assert_eq!(read(&ours, "manifest"), a.manifest());
    let rootfs = fs::metadata(ours.join("rootfs")).unwrap();
    assert_eq!(rootfs.mode() & 0o7777, 0o755, "rootfs from the top image");
    assert_eq!(rootfs.mtime(), 1_500_000_000);
    if let Some(theirs) = w.oracle("ex.com/a", "theirs") {
        let theirs = theirs.unwrap();
        assert_eq!(read(&theirs, "manifest"), a.manifest());
        let mode = fs::metadata(theirs.join("rootfs")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700, "the reference keeps the lowest image's rootfs");
        // Everything else agrees.
        let strip = |d: String| {
            d.lines()
                .filter(|l| !l.starts_with("rootfs dir"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(dump(&ours)), strip(dump(&theirs)));
    }
}

#[test]
fn case35_metadata_round_trip_as_root() {
    if !is_root() {
        eprintln!("skipping the metadata round trip: it needs root (uid/gid, devices)");
        return;
    }
    let mut w = World::new();
    let mut b = spec(
        "ex.com/b",
        vec![
            Dir("sticky", 0o1777),
            File("suid", "s", 0o4755),
            File("sgid", "g", 0o2755),
            File("owned", "o", 0o640),
            Link("link", "owned"),
            Fifo("fifo"),
            Char("null", 1, 3),
            Dir("deep/er", 0o700),
            File("deep/er/f", "f", 0o600),
        ],
    );
    b.labels = vec![("version", "2")];
    w.add(&b);
    let layout = w.path("layout-1/rootfs");
    // Set ownership, nanosecond times and an xattr on the layout and pack
    // it again as a second image that renders it.
    nix::unistd::chown(&layout.join("owned"), Some(1234.into()), Some(5678.into())).unwrap();
    nix::unistd::fchownat(
        None,
        &layout.join("link"),
        Some(42.into()),
        Some(43.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let xattr_ok = xattr::set(layout.join("owned"), "user.acido", b"v1").is_ok();
    set_time(&layout.join("owned"), 1_600_000_123, 456_789_000);
    set_time(&layout.join("link"), 1_600_000_321, 5);
    // chown cleared setuid: set it back.
    fs::set_permissions(layout.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    let mut tar = Vec::new();
    // The metadata image: the same rootfs, packed directly.
    pack_selected(
        spec("ex.com/m2", vec![]).manifest().as_bytes(),
        &layout,
        &|_| true,
        &mut tar,
        &PackOptions {
            compression: Compression::None,
            xz_threads: 1,
            level: None,
            ..PackOptions::default()
        },
    )
    .unwrap();
    fs::write(w.path("acis/900.aci"), &tar).unwrap();
    let id = w.store.import(Cursor::new(tar), "m2").unwrap().record.id;
    let report = w.render(id, "ours").unwrap();
    assert!(report.as_root);
    assert_eq!(report.ownership_not_restored, 0);
    assert_eq!(report.devices_not_created, 0);
    let ours = w.path("ours");
    let r = ours.join("rootfs");
    let meta = |p: &str| fs::symlink_metadata(r.join(p)).unwrap();
    assert_eq!(meta("sticky").mode() & 0o7777, 0o1777);
    assert_eq!(meta("suid").mode() & 0o7777, 0o4755);
    assert_eq!(meta("sgid").mode() & 0o7777, 0o2755);
    assert_eq!((meta("owned").uid(), meta("owned").gid()), (1234, 5678));
    assert_eq!(
        (meta("owned").mtime(), meta("owned").mtime_nsec()),
        (1_600_000_123, 456_789_000)
    );
    assert_eq!((meta("link").uid(), meta("link").gid()), (42, 43));
    assert_eq!(
        (meta("link").mtime(), meta("link").mtime_nsec()),
        (1_600_000_321, 5)
    );
    assert!(meta("fifo").file_type().is_fifo_like());
    assert_eq!(meta("null").rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(meta("deep/er").mode() & 0o7777, 0o700);
    if xattr_ok {
        assert_eq!(
            xattr::get(r.join("owned"), "user.acido")
                .unwrap()
                .as_deref(),
            Some(&b"v1"[..])
        );
    }
    if let Some(theirs) = w.oracle("ex.com/m2", "theirs") {
        let theirs = theirs.unwrap();
        assert_eq!(dump(&ours), dump(&theirs));
    }
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn case36_resolution_by_id_ignores_name_and_newest_import_wins() {
    let mut w = World::new();
    let mut old = spec("ex.com/b", vec![File("v", "old", 0o644)]);
    old.labels = vec![("version", "1")];
    w.add(&old);
    let mut new = spec("ex.com/b", vec![File("v", "new", 0o644)]);
    new.labels = vec![("version", "1"), ("os", "linux")];
    let new_id = w.add(&new);
    let mut other = spec("ex.com/b", vec![File("v", "other", 0o644)]);
    other.labels = vec![("version", "2")];
    let other_id = w.add(&other);
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[("version", "1")])];
    let top = w.add(&a);
    let tree = same_as_reference(&w, top, "ex.com/a");
    assert_eq!(read(&tree, "rootfs/v"), "new");
    let list = dependency_list(&w.store, top).unwrap();
    assert_eq!(list.images[1].id, new_id);

    let mut a2 = spec("ex.com/a2", vec![]);
    a2.deps = vec![dep_id("ex.com/does-not-exist", &other_id)];
    let top = w.add(&a2);
    let list = dependency_list(&w.store, top).unwrap();
    assert_eq!(list.images[1].id, other_id);
    w.render(top, "by-id").unwrap();
    assert_eq!(read(&w.path("by-id"), "rootfs/v"), "other");
}

#[test]
fn case37_cycles_and_self_dependencies_are_errors() {
    let mut w = World::new();
    let mut b = spec("ex.com/b", vec![]);
    b.deps = vec![dep("ex.com/a", &[])];
    w.add(&b);
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[])];
    let top = w.add(&a);
    let err = w.render(top, "out").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ex.com/a -> ex.com/b -> ex.com/a: dependency cycle"
    );
    assert!(!w.path("out").exists());

    let mut s = spec("ex.com/self", vec![]);
    s.deps = vec![dep("ex.com/self", &[])];
    let top = w.add(&s);
    let err = w.render(top, "out").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ex.com/self -> ex.com/self: dependency cycle"
    );
}

#[test]
fn case38_missing_dependency_leaves_nothing() {
    let mut w = World::new();
    let mut a = spec("example.com/app", vec![File("a", "a", 0o644)]);
    a.deps = vec![dep("example.com/base", &[("version", "1.0")])];
    let top = w.add(&a);
    let err = w.render(top, "out").unwrap_err();
    assert_eq!(
        err.to_string(),
        "example.com/app -> example.com/base,version=1.0: not in store"
    );
    assert!(!w.path("out").exists());
    let leftovers: Vec<_> = fs::read_dir(w.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_bytes().starts_with(b".acido-render-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Flips one bit of the data of `ex.com/b`'s blob (the index still
/// matches the layout); returns the render's top image and the base's id.
fn world_with_flipped_bit() -> (World, ImageId, ImageId) {
    let mut w = World::new();
    let base_id = w.add(&spec("ex.com/b", vec![File("big", "contents", 0o644)]));
    let mut a = spec("ex.com/a", vec![]);
    a.deps = vec![dep("ex.com/b", &[])];
    let top = w.add(&a);
    let blob = w.store.blob_path(&base_id);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    let at = bytes.windows(8).position(|x| x == b"contents").unwrap();
    bytes[at] ^= 1;
    fs::write(&blob, bytes).unwrap();
    (w, top, base_id)
}

fn render_leftovers(w: &World) -> usize {
    fs::read_dir(w.tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .as_bytes()
                .starts_with(b".acido-render-")
        })
        .count()
}

#[test]
fn bit_flipped_blob_fails_the_fast_digest_and_leaves_nothing() {
    let (w, top, base_id) = world_with_flipped_bit();
    // Imported now, so its index records the BLAKE3 digest.
    let index = EntryIndex::decode(&fs::read(w.store.index_path(&base_id)).unwrap()).unwrap();
    assert!(index.fast_digest.is_some());
    let err = w.render(top, "out").unwrap_err();
    assert!(
        matches!(&err, RenderError::DigestMismatch { chain, id, expected, found }
            if chain == "ex.com/a -> ex.com/b" && **id == base_id
                && Some(**expected) == index.fast_digest && expected != found),
        "{err}"
    );
    assert!(!w.path("out").exists());
    assert_eq!(render_leftovers(&w), 0);
    // Without verification the damaged data is written (the caller asked).
    let report = render::render(
        &w.store,
        top,
        &w.path("unverified"),
        &RenderOptions {
            verify: false,
            progress: None,
            ..RenderOptions::default()
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(report.bytes > 8);
    assert_eq!(read(&w.path("unverified"), "rootfs/big"), "bontents");
}

#[test]
fn bit_flipped_blob_with_an_old_index_is_a_hash_mismatch() {
    let (w, top, base_id) = world_with_flipped_bit();
    // An index as acido wrote it before the fast digest: version 1.
    let path = w.store.index_path(&base_id);
    let v2 = EntryIndex {
        fast_digest: None,
        ..EntryIndex::decode(&fs::read(&path).unwrap()).unwrap()
    }
    .encode();
    let mut v1 = v2[..8].to_vec();
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&v2[13..]);
    fs::write(&path, v1).unwrap();
    let err = w.render(top, "out").unwrap_err();
    assert!(
        matches!(&err, RenderError::HashMismatch { chain, expected, .. } if chain == "ex.com/a -> ex.com/b" && **expected == base_id),
        "{err}"
    );
    assert!(!w.path("out").exists());
    assert_eq!(render_leftovers(&w), 0);
}

#[test]
fn a_bit_flip_anywhere_in_a_blob_fails_the_render() {
    // Headers, padding, the manifest and the end-of-archive blocks too:
    // the fast digest covers every byte, as the id does.
    let mut w = World::new();
    let top = w.add(&spec("ex.com/one", vec![File("f", "data", 0o644)]));
    let blob = w.store.blob_path(&top);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let good = fs::read(&blob).unwrap();
    for at in (0..good.len()).step_by(good.len() / 23) {
        let mut bytes = good.clone();
        bytes[at] ^= 0x20;
        fs::write(&blob, &bytes).unwrap();
        let out = format!("out-{at}");
        // A flip in a header may also make the index point elsewhere;
        // either way nothing may be published.
        assert!(w.render(top, &out).is_err(), "flip at {at} was rendered");
        assert!(!w.path(&out).exists());
    }
    fs::write(&blob, &good).unwrap();
    w.render(top, "out-good").unwrap();
}

#[test]
fn targets_must_be_absent_or_empty_directories() {
    let mut w = World::new();
    let top = w.add(&spec("ex.com/a", vec![File("a", "a", 0o644)]));
    fs::create_dir(w.path("empty")).unwrap();
    fs::set_permissions(w.path("empty"), fs::Permissions::from_mode(0o750)).unwrap();
    w.render(top, "empty").unwrap();
    assert_eq!(read(&w.path("empty"), "rootfs/a"), "a");
    assert_eq!(
        fs::metadata(w.path("empty")).unwrap().mode() & 0o7777,
        0o750,
        "the replaced directory keeps its mode"
    );
    let err = w.render(top, "empty").unwrap_err();
    assert!(matches!(err, RenderError::TargetNotEmpty { .. }), "{err}");
    fs::write(w.path("file"), "x").unwrap();
    assert!(matches!(
        w.render(top, "file").unwrap_err(),
        RenderError::TargetNotEmpty { .. }
    ));
    // A symlink to an empty directory is refused, and nothing is written
    // through it.
    fs::create_dir(w.path("elsewhere")).unwrap();
    symlink(w.path("elsewhere"), w.path("link")).unwrap();
    assert!(matches!(
        w.render(top, "link").unwrap_err(),
        RenderError::TargetNotEmpty { .. }
    ));
    assert_eq!(fs::read_dir(w.path("elsewhere")).unwrap().count(), 0);
}

#[test]
fn interrupt_leaves_nothing() {
    let mut w = World::new();
    let top = w.add(&spec("ex.com/a", vec![File("a", "a", 0o644)]));
    let err = render::render(
        &w.store,
        top,
        &w.path("out"),
        &RenderOptions::default(),
        &AtomicBool::new(true),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Interrupted));
    assert!(!w.path("out").exists());
    let names: Vec<_> = fs::read_dir(w.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.as_bytes().starts_with(b".acido-render")),
        "{names:?}"
    );
}

// The rendered-tree cache (issue 12, item 2).

fn cache_world() -> (World, ImageId, ImageId) {
    let mut w = World::new();
    let base = w.add(&spec(
        "ex.com/base",
        vec![
            Dir("etc", 0o755),
            File("etc/os", "base\n", 0o644),
            Link("etc/link", "os"),
            Hard("etc/hard", "etc/os"),
        ],
    ));
    let mut app = spec("ex.com/app", vec![File("app", "app\n", 0o755)]);
    app.deps = vec![dep("ex.com/base", &[])];
    let top = w.add(&app);
    (w, top, base)
}

fn ensure(w: &World, top: ImageId, user: Option<&Path>) -> Result<EnsuredTree, RenderError> {
    let list = render::dependency_list(&w.store, top).unwrap();
    let map = render::file_map(&list).unwrap();
    render::ensure_cached_tree(
        &w.store,
        &list,
        &map,
        user,
        &RenderOptions::default(),
        &AtomicBool::new(false),
    )
}

fn no_changes(a: &Path, b: &Path) {
    let changes = diff::diff_trees(a, b, &DiffOptions::default()).unwrap();
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn a_cached_tree_is_rendered_once_sealed_and_then_reused() {
    let (w, top, base) = cache_world();
    let first = ensure(&w, top, None).unwrap();
    assert!(first.rendered.is_some());
    let tree = first.tree;
    assert_eq!(tree.key().ids(), [top, base]);
    assert_eq!(tree.key().name().len(), 64);
    assert_eq!(tree.entry(), w.store.trees_dir().join(tree.key().name()));
    assert_eq!(
        fs::symlink_metadata(tree.entry()).unwrap().mode() & 0o7777,
        0o555
    );
    // The same tree a plain render writes.
    w.render(top, "plain").unwrap();
    no_changes(&w.path("plain"), &tree.path());
    assert_eq!(
        fs::read(tree.path().join("manifest")).unwrap(),
        fs::read(w.path("plain/manifest")).unwrap()
    );
    assert_eq!(render::check_cached_tree(&tree).unwrap(), TreeState::Intact);
    // Used, not written again: same inodes.
    let ino = fs::metadata(tree.rootfs().join("app")).unwrap().ino();
    let second = ensure(&w, top, None).unwrap();
    assert!(second.rendered.is_none());
    assert_eq!(second.tree, tree);
    assert_eq!(fs::metadata(tree.rootfs().join("app")).unwrap().ino(), ino);
    assert_eq!(w.store.cached_tree(tree.key()).unwrap(), Some(tree.clone()));
    // The base alone is another key.
    let base_tree = ensure(&w, base, None).unwrap().tree;
    assert_ne!(base_tree.key(), tree.key());
    assert_eq!(w.store.tree_inventory().unwrap().trees.len(), 2);
}

#[test]
fn a_write_into_a_cached_tree_breaks_its_seal_and_it_is_rendered_again() {
    let (w, top, _) = cache_world();
    let tree = ensure(&w, top, None).unwrap().tree;
    let os = tree.rootfs().join("etc/os");
    fs::set_permissions(&os, fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(
        render::check_cached_tree(&tree).unwrap(),
        TreeState::Changed
    );
    fs::write(&os, "written through\n").unwrap();
    let again = ensure(&w, top, None).unwrap();
    assert!(again.rendered.is_some());
    assert_eq!(
        fs::read(again.tree.rootfs().join("etc/os")).unwrap(),
        b"base\n"
    );
    assert_eq!(
        render::check_cached_tree(&again.tree).unwrap(),
        TreeState::Intact
    );
    let inv = w.store.tree_inventory().unwrap();
    assert_eq!((inv.trees.len(), inv.temps.len()), (1, 0), "{inv:?}");
}

#[test]
fn users_are_recorded_and_rm_of_any_image_removes_the_tree() {
    let (w, top, base) = cache_world();
    let user = w.path("build");
    fs::create_dir(&user).unwrap();
    let tree = ensure(&w, top, Some(&user)).unwrap().tree;
    let inv = w.store.tree_inventory().unwrap();
    assert_eq!(inv.trees[0].live_users, [fs::canonicalize(&user).unwrap()]);
    // A second use by the same build is one user.
    assert!(ensure(&w, top, Some(&user)).unwrap().rendered.is_none());
    assert_eq!(
        w.store.tree_inventory().unwrap().trees[0].live_users.len(),
        1
    );
    // A user whose directory is gone is stale.
    fs::remove_dir(&user).unwrap();
    let info = &w.store.tree_inventory().unwrap().trees[0];
    assert_eq!((info.live_users.len(), info.stale_users), (0, 1));
    fs::create_dir(&user).unwrap();
    assert!(w.store.release_cached_tree(tree.key(), &user).unwrap());
    assert!(!w.store.release_cached_tree(tree.key(), &user).unwrap());
    // Removing the base (a dependency) removes the tree holding it.
    w.store.remove(&base).unwrap();
    assert_eq!(w.store.cached_tree(tree.key()).unwrap(), None);
    let inv = w.store.tree_inventory().unwrap();
    assert!(inv.trees.is_empty() && inv.temps.is_empty(), "{inv:?}");
}

#[test]
fn a_killed_or_failed_render_never_leaves_an_entry_under_the_key() {
    let (w, top, base) = cache_world();
    let list = render::dependency_list(&w.store, top).unwrap();
    let key = render::tree_key(&list);
    // A writer killed mid-render: its staging dir stays, unlocked.
    let staging = w.store.stage_tree(&key).unwrap();
    fs::create_dir(staging.tree_path()).unwrap();
    fs::write(staging.tree_path().join("manifest"), b"{}").unwrap();
    drop(staging);
    assert_eq!(w.store.cached_tree(&key).unwrap(), None);
    assert_eq!(w.store.tree_inventory().unwrap().temps.len(), 1);
    // The next render sweeps it and completes its own.
    let tree = ensure(&w, top, None).unwrap().tree;
    let inv = w.store.tree_inventory().unwrap();
    assert_eq!((inv.trees.len(), inv.temps.len()), (1, 0), "{inv:?}");
    w.store.remove_tree_entry(tree.entry()).unwrap();
    // A damaged blob: the render is refused and no entry appears.
    let blob = w.store.blob_path(&base);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&blob).unwrap();
    let at = bytes.windows(5).position(|x| x == b"base\n").unwrap();
    bytes[at] ^= 4;
    fs::write(&blob, bytes).unwrap();
    let err = ensure(&w, top, None).unwrap_err();
    assert!(matches!(err, RenderError::DigestMismatch { .. }), "{err}");
    assert_eq!(w.store.cached_tree(&key).unwrap(), None);
    let inv = w.store.tree_inventory().unwrap();
    assert!(inv.trees.is_empty() && inv.temps.is_empty(), "{inv:?}");
}

#[test]
fn an_entry_that_lost_its_tree_is_rendered_again() {
    let (w, top, _) = cache_world();
    let tree = ensure(&w, top, None).unwrap().tree;
    fs::set_permissions(tree.entry(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(tree.path(), w.path("moved")).unwrap();
    assert_eq!(
        render::check_cached_tree(&tree).unwrap(),
        TreeState::Changed
    );
    let again = ensure(&w, top, None).unwrap();
    assert!(again.rendered.is_some());
    no_changes(&w.path("moved"), &again.tree.path());
}
