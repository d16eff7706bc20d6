//! The diff-build workflow end to end (issue 4, DESIGN §6), on a real small
//! rootfs: Debian's static busybox with a few applet links and /etc files,
//! assembled by the test. Pack and import a base, `startbuild` from it,
//! change the tree in every way an image can record, `build --import`,
//! `extract` the new image and check that it reproduces the build tree
//! exactly, attribute by attribute; the same for a two-level chain and an
//! image with two dependencies; the plumbing pipeline (`render-tree`,
//! `diff-tree`, `pack-aci`) gives the same id as `build`, with or without
//! the stat snapshot; a failed build leaves no output behind.
//!
//! Needs `/bin/busybox` (Debian's `busybox-static`, which `.ci/run`
//! installs); each test says so and returns when it is missing. Steps that
//! need root (chown) are skipped with a printed reason otherwise.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use common::{is_root, pin_times, s, sh, write, Env, Run};
use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";

/// Whether the test can run; prints why not.
fn have_busybox(test: &str) -> bool {
    let ok = Path::new(BUSYBOX).is_file();
    if !ok {
        println!("{test}: skipped: {BUSYBOX} is missing (apt-get install busybox-static)");
    }
    ok
}

/// Whether `dir`'s file system keeps `user.*` xattrs; prints why not.
fn user_xattrs_work(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, "").unwrap();
    let ok = xattr::set(&probe, "user.acido.probe", b"1").is_ok();
    fs::remove_file(&probe).unwrap();
    if !ok {
        println!(
            "xattr steps skipped: {} does not keep user xattrs",
            dir.display()
        );
    }
    ok
}

fn manifest_json(name: &str, version: &str) -> String {
    serde_json::json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": version},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": "amd64"},
        ],
        "app": {"exec": ["/bin/sh"], "user": "0", "group": "0"},
    })
    .to_string()
}

/// The busybox base layout: the static binary with applet links, /etc,
/// docs, a log directory, /tmp with the sticky bit and root's home.
fn busybox_layout(env: &Env, rel: &str) -> PathBuf {
    let dir = env.path(rel);
    let root = dir.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    write(&root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    write(&root.join("etc/hostname"), "busybox\n");
    write(&root.join("usr/share/doc/busybox/README"), "BusyBox\n");
    write(&root.join("usr/share/doc/busybox/copyright"), "GPL-2\n");
    write(&root.join("var/log/boot.log"), "booted\n");
    write(&root.join("root/.profile"), "PS1='# '\n");
    fs::create_dir_all(root.join("tmp")).unwrap();
    sh("chmod", &["1777", s(&root.join("tmp"))]);
    sh("chmod", &["700", s(&root.join("root"))]);
    write(
        &dir.join("manifest"),
        &manifest_json("example.com/busybox", "1.0"),
    );
    pin_times(&dir);
    dir
}

fn run_ok(env: &Env, args: &[&str]) -> String {
    env.run(args).ok()
}

/// Runs a command that prints one id and returns it.
fn id_of_run(env: &Env, args: &[&str]) -> String {
    let out = run_ok(env, args);
    let id = out.trim().to_owned();
    assert!(
        id.starts_with("sha512-") && id.len() == 7 + 128,
        "acido {args:?} printed {out:?}, not one id"
    );
    id
}

/// Packs and imports a layout; returns the id.
fn pack_and_import(env: &Env, layout: &Path, out: &str) -> String {
    let aci = env.path(out);
    let packed = id_of_run(
        env,
        &[
            "pack-aci",
            "--compression",
            "gzip",
            "-o",
            s(&aci),
            s(layout),
        ],
    );
    let imported = id_of_run(env, &["import", s(&aci)]);
    assert_eq!(packed, imported);
    packed
}

/// Edits a build tree's manifest: a new name and version label (the
/// dependency's labels are left alone).
fn rename(tree: &Path, name: &str, version: &str) {
    edit_manifest(tree, |m| {
        m["name"] = name.into();
        for label in m["labels"].as_array_mut().unwrap() {
            if label["name"] == "version" {
                label["value"] = version.into();
            }
        }
    });
}

fn edit_manifest(tree: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = tree.join("manifest");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut m);
    fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

/// The stored manifest of an image, parsed.
fn stored_manifest(env: &Env, image: &str) -> serde_json::Value {
    serde_json::from_str(&run_ok(env, &["cat-manifest", image])).unwrap()
}

/// The paths `ls-tree` lists for an image, `manifest` and `rootfs` included.
fn entries(env: &Env, image: &str) -> BTreeSet<String> {
    run_ok(env, &["ls-tree", "-z", image])
        .split('\0')
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('\t').expect("mode TAB path").1.to_owned())
        .collect()
}

fn set<const N: usize>(paths: [&str; N]) -> BTreeSet<String> {
    paths.iter().map(|p| (*p).to_owned()).collect()
}

/// A metadata listing of a tree, one line per path (the root is `.`):
/// type, mode, uid, gid, mtime in ns, size, sha256 of the content, link
/// target, device numbers, xattrs (not `system.*`) and the hard-link group
/// (the smallest path of the group, when a file has other names in the
/// tree). Never follows symlinks.
fn listing(root: &Path) -> String {
    let mut lines = BTreeMap::new();
    let mut groups: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes();
        let rel = if rel.is_empty() {
            b".".to_vec()
        } else {
            rel.to_vec()
        };
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else {
            'o'
        };
        let (hash, target) = if ft.is_file() {
            let digest = Sha256::digest(fs::read(entry.path()).unwrap());
            (
                digest.iter().map(|b| format!("{b:02x}")).collect(),
                String::new(),
            )
        } else if ft.is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            (
                String::new(),
                target.as_os_str().as_bytes().escape_ascii().to_string(),
            )
        } else {
            (String::new(), String::new())
        };
        let mut xattrs: Vec<String> = Vec::new();
        if !ft.is_symlink() {
            for name in xattr::list(entry.path()).unwrap() {
                let name_bytes = name.as_bytes();
                if name_bytes.starts_with(b"system.") {
                    continue;
                }
                let value = xattr::get(entry.path(), &name).unwrap().unwrap_or_default();
                xattrs.push(format!(
                    "{}={}",
                    name_bytes.escape_ascii(),
                    value.escape_ascii()
                ));
            }
        }
        xattrs.sort();
        if ft.is_file() && meta.nlink() > 1 {
            groups
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.clone());
        }
        let size = if ft.is_file() { meta.size() } else { 0 };
        let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let line = format!(
            "{kind} {:04o} {}:{} mtime={mtime} size={size} sha256={hash} link={target} rdev={} xattrs=[{}]",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
            if ft.is_file() || ft.is_dir() || ft.is_symlink() { 0 } else { meta.rdev() },
            xattrs.join(",")
        );
        lines.insert(rel, line);
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        let leader = members.iter().min().unwrap().escape_ascii().to_string();
        for member in members {
            let line = lines.get_mut(member).unwrap();
            line.push_str(&format!(" group={leader}"));
        }
    }
    lines
        .iter()
        .map(|(path, line)| format!("{} {line}\n", path.escape_ascii()))
        .collect()
}

/// Extracts `image` into `out` and asserts that it reproduces `tree`'s
/// rootfs: `diff-tree --exit-code` finds nothing and the metadata listings
/// are identical.
fn assert_round_trip(env: &Env, image: &str, out: &str, tree: &Path) {
    let out = env.path(out);
    run_ok(env, &["extract", image, s(&out)]);
    let diff = env.run(["diff-tree", "--exit-code", s(&out), s(tree)]);
    assert_eq!(
        diff.code(),
        0,
        "diff-tree of {image} extracted vs {} found changes:\n{}{}",
        tree.display(),
        diff.stdout(),
        diff.stderr()
    );
    assert_eq!(diff.stdout(), "");
    assert_eq!(listing(&out.join("rootfs")), listing(&tree.join("rootfs")));
}

/// The complete whitelist a tree must get: `/` and every path below it.
fn whitelist_of(rootfs: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(rootfs)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(rootfs).unwrap();
            format!("/{}", s(rel))
        })
        .collect()
}

fn whitelist_in(manifest: &serde_json::Value) -> Option<BTreeSet<String>> {
    manifest.get("pathWhitelist").map(|list| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    })
}

/// The snapshot-free form of a build's stderr summary line.
fn summary(run: &Run) -> String {
    run.stderr()
        .lines()
        .filter(|l| l.contains("entries packed"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn walkthrough_on_busybox() {
    if !have_busybox("walkthrough_on_busybox") {
        return;
    }
    let env = Env::new();
    let layout = busybox_layout(&env, "base");
    let base = pack_and_import(&env, &layout, "base.aci");

    // Start two builds: by name, and by an id prefix. Both render the same
    // tree with the same manifest, one that depends on the base.
    let w = env.path("w");
    run_ok(&env, &["startbuild", "example.com/busybox:1.0", s(&w)]);
    let w2 = env.path("w2");
    run_ok(&env, &["startbuild", &base[..7 + 12], s(&w2)]);
    assert_eq!(
        fs::read(w.join("manifest")).unwrap(),
        fs::read(w2.join("manifest")).unwrap()
    );
    let start = stored_manifest(&env, &base);
    let made: serde_json::Value =
        serde_json::from_slice(&fs::read(w.join("manifest")).unwrap()).unwrap();
    assert_eq!(made["name"], start["name"]);
    assert_eq!(made["labels"], start["labels"]);
    assert_eq!(made["dependencies"][0]["imageID"], base.as_str());
    assert_eq!(made["dependencies"][0]["imageName"], "example.com/busybox");
    assert_eq!(made["dependencies"][0]["labels"], start["labels"]);
    run_ok(&env, &["diff-tree", "--exit-code", s(&w), s(&w2)]);
    assert_eq!(listing(&w.join("rootfs")), listing(&layout.join("rootfs")));
    // The snapshot lives in the store, never in the tree.
    let top_level: BTreeSet<String> = common::names(&w).into_iter().collect();
    assert_eq!(top_level, set(["manifest", "rootfs"]));

    // Change the tree in every way an image can record.
    let r = w.join("rootfs");
    let keep = env.path("keep");
    fs::create_dir_all(&keep).unwrap();
    write(&r.join("etc/motd"), "Welcome\n"); // added
    fs::hard_link(r.join("etc/motd"), r.join("etc/issue")).unwrap(); // added, same group
    write(&r.join("opt/app/run"), "#!/bin/sh\necho app\n"); // added, with new dirs
    sh("chmod", &["755", s(&r.join("opt/app/run"))]);
    symlink("busybox", r.join("bin/vi")).unwrap(); // added symlink
    fs::hard_link(r.join("bin/busybox"), r.join("bin/bb")).unwrap(); // busybox joins a group
    fs::remove_file(r.join("bin/cat")).unwrap(); // deleted symlink
    fs::remove_dir_all(r.join("usr/share/doc/busybox")).unwrap(); // deleted dir and files
    fs::remove_dir_all(r.join("var/log")).unwrap(); // a directory ...
    write(&r.join("var/log"), "now a file\n"); // ... replaced by a file
                                               // chmod without touching content or mtime.
    sh("chmod", &["600", s(&r.join("etc/hostname"))]);
    // Rewrite a file with the same bytes and put its mtime back: its stat
    // snapshot no longer matches, but it is unchanged and must not be
    // packed.
    sh(
        "cp",
        &["-p", s(&r.join("etc/group")), s(&keep.join("group"))],
    );
    fs::write(r.join("etc/group"), fs::read(keep.join("group")).unwrap()).unwrap();
    sh(
        "touch",
        &["-r", s(&keep.join("group")), s(&r.join("etc/group"))],
    );
    let root = is_root();
    if root {
        // chown without touching content or mtime.
        std::os::unix::fs::chown(r.join("etc/passwd"), Some(1000), Some(1000)).unwrap();
    } else {
        println!("walkthrough_on_busybox: chown step skipped: not running as root");
    }
    let xattrs = user_xattrs_work(&r);
    if xattrs {
        xattr::set(r.join("root/.profile"), "user.note", b"shell setup").unwrap();
    }
    rename(&w, "example.com/busybox", "1.1");

    let out = env.path("new.aci");
    let built = env.run(["build", "--import", "--compression", "gzip", s(&w), s(&out)]);
    let new = built.ok().trim().to_owned();
    assert!(!summary(&built).contains("no startbuild snapshot"));
    assert_eq!(
        id_of_run(&env, &["resolve", "example.com/busybox,version=1.1"]),
        new
    );
    assert_eq!(id_of_run(&env, &["hash-object", s(&out)]), new);

    // Only the changes: added and changed paths, their changed parents.
    let mut expected = set([
        "manifest",
        "rootfs",
        "rootfs/bin",
        "rootfs/bin/bb",
        "rootfs/bin/busybox",
        "rootfs/bin/vi",
        "rootfs/etc",
        "rootfs/etc/hostname",
        "rootfs/etc/issue",
        "rootfs/etc/motd",
        "rootfs/opt",
        "rootfs/opt/app",
        "rootfs/opt/app/run",
        "rootfs/usr/share/doc",
        "rootfs/var",
        "rootfs/var/log",
    ]);
    if root {
        expected.insert("rootfs/etc/passwd".into());
    }
    if xattrs {
        expected.insert("rootfs/root/.profile".into());
    }
    assert_eq!(entries(&env, &new), expected);

    // Something was deleted: a complete whitelist.
    let manifest = stored_manifest(&env, &new);
    assert_eq!(whitelist_in(&manifest), Some(whitelist_of(&r)));
    assert_eq!(manifest["labels"][0]["value"], "1.1");
    assert_eq!(manifest["dependencies"][0]["imageID"], base.as_str());

    assert_round_trip(&env, "example.com/busybox,version=1.1", "x", &w);
    // The listing is not blind: a chmod, a sub-second mtime or a broken
    // hard-link group in the extracted copy shows.
    let x = env.path("x/rootfs");
    let seen = listing(&x);
    sh("chmod", &["644", s(&x.join("etc/hostname"))]);
    assert_ne!(listing(&x), seen);
    sh("chmod", &["600", s(&x.join("etc/hostname"))]);
    assert_eq!(listing(&x), seen);
    sh(
        "touch",
        &["-h", "-d", "@1600000000.5", s(&x.join("bin/vi"))],
    );
    assert_ne!(listing(&x), seen);
    sh(
        "touch",
        &["-h", "-r", s(&r.join("bin/vi")), s(&x.join("bin/vi"))],
    );
    assert_eq!(listing(&x), seen);
    // Same content, mode and mtime, but no longer the same file as motd.
    fs::remove_file(x.join("etc/issue")).unwrap();
    fs::copy(x.join("etc/motd"), x.join("etc/issue")).unwrap();
    sh(
        "touch",
        &["-r", s(&x.join("etc/motd")), s(&x.join("etc/issue"))],
    );
    assert_ne!(listing(&x), seen);

    // Porcelain = plumbing: render the base, list what differs, pack it
    // with the manifest build wrote.
    let rendered = env.path("R");
    run_ok(
        &env,
        &["render-tree", "example.com/busybox:1.0", s(&rendered)],
    );
    let list = env.run([
        "diff-tree",
        "-z",
        "--name-only",
        "--diff-filter=AMT",
        s(&rendered),
        s(&w),
    ]);
    let list = list.ok();
    let m = env.path("M");
    fs::write(&m, run_ok(&env, &["cat-manifest", &new])).unwrap();
    let x = env.path("X.aci");
    let plumbed = env.run_stdin(
        [
            "pack-aci",
            "--compression",
            "gzip",
            "--paths-from",
            "-",
            "--manifest",
            s(&m),
            "-o",
            s(&x),
            s(&w),
        ],
        list.as_bytes(),
    );
    assert_eq!(plumbed.ok().trim(), new);
    assert_eq!(fs::read(&x).unwrap(), fs::read(&out).unwrap());

    // The snapshot is only a short-cut: without it, and for a copy of the
    // tree made by hand, the same image.
    fs::remove_dir_all(env.store().join("builds")).unwrap();
    let again = env.run([
        "build",
        "--compression",
        "none",
        s(&w),
        s(&env.path("again.aci")),
    ]);
    assert_eq!(again.ok().trim(), new);
    assert!(summary(&again).contains("no startbuild snapshot"));
    let copy = env.path("copy");
    sh("cp", &["-a", s(&w), s(&copy)]);
    let copied = env.run([
        "build",
        "--compression",
        "none",
        s(&copy),
        s(&env.path("copy.aci")),
    ]);
    assert_eq!(copied.ok().trim(), new);

    // The second tree: only additions, so no whitelist.
    write(&w2.join("rootfs/etc/motd"), "Hello from w2\n");
    rename(&w2, "example.com/busybox", "1.0-w2");
    let id2 = id_of_run(&env, &["build", "--import", s(&w2)]);
    assert_eq!(
        entries(&env, &id2),
        set(["manifest", "rootfs", "rootfs/etc", "rootfs/etc/motd"])
    );
    assert_eq!(whitelist_in(&stored_manifest(&env, &id2)), None);
    assert_round_trip(&env, "example.com/busybox:1.0-w2", "x2", &w2);
}

#[test]
fn chain_of_builds_round_trips() {
    if !have_busybox("chain_of_builds_round_trips") {
        return;
    }
    let env = Env::new();
    let layout = busybox_layout(&env, "base");
    let base = pack_and_import(&env, &layout, "base.aci");

    // mid: additions and a changed file of the base.
    let mid = env.path("mid");
    run_ok(&env, &["startbuild", &base, s(&mid)]);
    write(&mid.join("rootfs/opt/mid/data"), "mid data\n");
    write(&mid.join("rootfs/etc/hostname"), "mid\n");
    symlink("../opt/mid/data", mid.join("rootfs/etc/mid.conf")).unwrap();
    rename(&mid, "example.com/mid", "1.0");
    let mid_id = id_of_run(&env, &["build", "--import", s(&mid)]);
    assert_eq!(whitelist_in(&stored_manifest(&env, &mid_id)), None);

    // top: on mid by name; deletes from both levels, changes mid's file.
    let top = env.path("top");
    run_ok(&env, &["startbuild", "example.com/mid:1.0", s(&top)]);
    assert_eq!(listing(&top.join("rootfs")), listing(&mid.join("rootfs")));
    let t = top.join("rootfs");
    fs::remove_file(t.join("bin/ls")).unwrap();
    fs::remove_file(t.join("etc/mid.conf")).unwrap();
    fs::write(t.join("opt/mid/data"), "top data\n").unwrap();
    fs::remove_dir_all(t.join("tmp")).unwrap();
    write(&t.join("tmp"), "not a directory\n");
    rename(&top, "example.com/top", "1.0");
    let built = env.run(["build", "--import", s(&top)]);
    let top_id = built.ok().trim().to_owned();

    let top_manifest = stored_manifest(&env, &top_id);
    assert_eq!(top_manifest["dependencies"][0]["imageID"], mid_id.as_str());
    assert_eq!(top_manifest["dependencies"].as_array().unwrap().len(), 1);
    assert_eq!(whitelist_in(&top_manifest), Some(whitelist_of(&t)));
    assert_eq!(
        entries(&env, &top_id),
        set([
            "manifest",
            "rootfs",
            "rootfs/bin",
            "rootfs/etc",
            "rootfs/opt/mid/data",
            "rootfs/tmp",
        ])
    );
    insta::assert_snapshot!(
        "chain_top_summary",
        format!(
            "{}\n{}",
            summary(&built),
            env.snap(&env.run(["diff-tree", "--stat", "example.com/mid", "example.com/top"]))
        )
    );

    assert_round_trip(&env, "example.com/top,version=1.0", "x-top", &top);
    // Building on top of mid did not disturb it.
    assert_round_trip(&env, "example.com/mid", "x-mid", &mid);
}

#[test]
fn two_dependencies_round_trip() {
    if !have_busybox("two_dependencies_round_trip") {
        return;
    }
    let env = Env::new();
    let layout = busybox_layout(&env, "base");
    let base = pack_and_import(&env, &layout, "base.aci");
    let extras = env.layout(
        "extras",
        &manifest_json("example.com/extras", "2.0"),
        &[
            ("etc/extras.conf", "level=3\n"),
            ("usr/local/bin/tool", "#!/bin/sh\necho tool\n"),
            ("usr/share/extras/data", "data\n"),
        ],
    );
    let extras_id = pack_and_import(&env, &extras, "extras.aci");

    // Start from the base, bring in the second image's files as they
    // render, and say so in the manifest.
    let w = env.path("w");
    run_ok(&env, &["startbuild", "example.com/busybox", s(&w)]);
    let rendered = env.path("E");
    run_ok(&env, &["render-tree", "example.com/extras", s(&rendered)]);
    sh(
        "cp",
        &[
            "-a",
            &format!("{}/.", s(&rendered.join("rootfs"))),
            s(&w.join("rootfs")),
        ],
    );
    edit_manifest(&w, |m| {
        m["dependencies"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "imageName": "example.com/extras",
                "imageID": extras_id,
                "labels": [{"name": "version", "value": "2.0"}],
            }));
    });
    rename(&w, "example.com/combo", "1.0");
    write(&w.join("rootfs/opt/combo"), "both\n");
    fs::remove_file(w.join("rootfs/usr/share/extras/data")).unwrap();

    let built = env.run(["build", "--import", s(&w)]);
    let id = built.ok().trim().to_owned();
    let manifest = stored_manifest(&env, &id);
    let deps: Vec<&str> = manifest["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["imageID"].as_str().unwrap())
        .collect();
    assert_eq!(deps, [base.as_str(), extras_id.as_str()]);
    assert_eq!(
        whitelist_in(&manifest),
        Some(whitelist_of(&w.join("rootfs")))
    );
    // The second dependency's files are not repeated.
    let packed = entries(&env, &id);
    for file in ["rootfs/etc/extras.conf", "rootfs/usr/local/bin/tool"] {
        assert!(
            !packed.contains(file),
            "{file} was packed again: {packed:?}"
        );
    }
    assert!(packed.contains("rootfs/opt/combo"));
    insta::assert_snapshot!(
        "two_dependencies_entries",
        format!(
            "{}\n{}",
            summary(&built),
            packed.into_iter().collect::<Vec<_>>().join("\n")
        )
    );
    assert_round_trip(&env, "example.com/combo:1.0", "x", &w);
}

/// Asserts `dir` holds exactly `names` (no temp files left).
fn assert_dir_holds(dir: &Path, names: &BTreeSet<String>) {
    let now: BTreeSet<String> = common::names(dir).into_iter().collect();
    assert_eq!(&now, names, "{} changed", dir.display());
}

#[test]
fn failed_builds_leave_no_output() {
    if !have_busybox("failed_builds_leave_no_output") {
        return;
    }
    let env = Env::new();
    let layout = busybox_layout(&env, "base");
    pack_and_import(&env, &layout, "base.aci");
    let w = env.path("w");
    run_ok(&env, &["startbuild", "example.com/busybox", s(&w)]);
    let outdir = env.path("out");
    fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("new.aci");
    let nothing = BTreeSet::new();
    let store_tmp = env.store().join("tmp");
    let before_tmp: BTreeSet<String> = fs::read_dir(&store_tmp)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let fails = |why: &str, args: &[&str], error: &str| {
        let run = env.run(args);
        assert_eq!(run.code(), 128, "{why}: {}", run.stderr());
        assert!(
            run.stderr().contains(error),
            "{why}: expected {error:?} in {}",
            run.stderr()
        );
        assert_eq!(run.stdout(), "", "{why}");
        assert_dir_holds(&outdir, &nothing);
        if store_tmp.is_dir() {
            assert_dir_holds(&store_tmp, &before_tmp);
        }
    };

    // A mid-pack failure: an added file whose xattr name no tar header can
    // hold. The temp file beside the output is gone, and so is the one in
    // the store's tmp/ when only importing.
    if user_xattrs_work(&w.join("rootfs")) {
        let bad = w.join("rootfs/etc/bad");
        fs::write(&bad, "x\n").unwrap();
        if xattr::set(&bad, "user.a=b", b"1").is_ok() {
            fails(
                "xattr name",
                &["build", "--compression", "none", s(&w), s(&out)],
                "cannot be stored in a pax record",
            );
            fails(
                "xattr name, import only",
                &["build", "--import", s(&w)],
                "cannot be stored in a pax record",
            );
        } else {
            println!("xattr name step skipped: the file system refuses 'user.a=b'");
        }
        fs::remove_file(&bad).unwrap();
    }

    // A manifest that is not JSON.
    let good = fs::read(w.join("manifest")).unwrap();
    fs::write(w.join("manifest"), "{ not json").unwrap();
    fails("bad manifest", &["build", s(&w), s(&out)], "manifest");
    fs::remove_file(w.join("manifest")).unwrap();
    fails("no manifest", &["build", s(&w), s(&out)], "manifest");

    // A dependency the store does not hold.
    let mut m: serde_json::Value = serde_json::from_slice(&good).unwrap();
    m["dependencies"][0]["imageID"] = format!("sha512-{}", "0".repeat(128)).into();
    m["dependencies"][0]["imageName"] = "example.com/missing".into();
    fs::write(w.join("manifest"), m.to_string()).unwrap();
    fails(
        "missing dependency",
        &["build", s(&w), s(&out)],
        "example.com/missing",
    );
    fs::write(w.join("manifest"), &good).unwrap();

    // A deletion needs a whitelist, which cannot name a non-UTF-8 path.
    fs::remove_file(w.join("rootfs/bin/cat")).unwrap();
    let odd = w
        .join("rootfs")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::write(&odd, "latin-1 name\n").unwrap();
    fails("non-UTF-8 path", &["build", s(&w), s(&out)], "not UTF-8");
    fs::remove_file(&odd).unwrap();

    // An existing output is kept without --overwrite, replaced with it.
    fs::write(&out, "precious").unwrap();
    let run = env.run(["build", s(&w), s(&out)]);
    assert_eq!(run.code(), 128, "{}", run.stderr());
    assert!(run.stderr().contains("exists"), "{}", run.stderr());
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    let id = id_of_run(&env, &["build", "--overwrite", s(&w), s(&out)]);
    assert_eq!(id_of_run(&env, &["hash-object", s(&out)]), id);
    assert_dir_holds(&outdir, &set(["new.aci"]));
}
