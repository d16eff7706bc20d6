//! Hostile input, one test per class of issue 5 that tests/render.rs does
//! not already cover: archives built byte by byte here (a tiny tar writer
//! below; compressed with the system's gzip, bzip2 and xz).
//!
//! Every rejected input is checked the same way ([`refused`]): `import`
//! and `render-tree` both exit 128 (an error, never a panic's 101) with
//! the message snapshotted, the store lists exactly as before, and a
//! sentinel directory and a victim file beside the render target are
//! untouched. Accepted inputs check what was rendered instead.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{manifest, Env, Run};

// ---------------------------------------------------------------------
// A tar writer that writes whatever it is told, including what no sane
// writer would.

const BLOCK: usize = 512;

/// One ustar header block with a correct checksum.
fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    let mode: &[u8] = match typeflag {
        b'5' => b"0000755\0",
        b'2' => b"0000777\0",
        _ => b"0000644\0",
    };
    h[100..108].copy_from_slice(mode);
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"13721350400\0");
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    fix_checksum(&mut h);
    h
}

fn fix_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// PAX records, each `"%d key=value\n"` with the length counting itself.
fn pax_data(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // space, '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    /// A tar starting with `manifest` and the `rootfs` directory.
    fn aci(manifest: &str) -> Tar {
        let mut t = Tar::default();
        t.file(b"manifest", manifest.as_bytes());
        t.dir(b"rootfs");
        t
    }

    /// A header block followed by `data`, padded to the block size.
    fn raw(&mut self, header: [u8; BLOCK], data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&header);
        self.0.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    fn file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        self.raw(header(name, b'0', data.len() as u64, b""), data)
    }

    fn dir(&mut self, name: &[u8]) -> &mut Self {
        self.raw(header(name, b'5', 0, b""), b"")
    }

    fn link(&mut self, typeflag: u8, name: &[u8], target: &[u8]) -> &mut Self {
        self.raw(header(name, typeflag, 0, target), b"")
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data = pax_data(records);
        self.raw(header(b"PaxHeader", b'x', data.len() as u64, b""), &data)
    }

    fn gnu_long(&mut self, typeflag: u8, value: &[u8]) -> &mut Self {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = header(b"././@LongLink", typeflag, data.len() as u64, b"");
        h[257..265].copy_from_slice(b"ustar  \0");
        fix_checksum(&mut h);
        self.raw(h, &data)
    }

    /// A regular file with the mode `mode` (octal digits, e.g. `4755`).
    fn file_mode(&mut self, name: &[u8], mode: &str, data: &[u8]) -> &mut Self {
        let mut h = header(name, b'0', data.len() as u64, b"");
        h[100..108].copy_from_slice(format!("{:0>7}\0", mode).as_bytes());
        fix_checksum(&mut h);
        self.raw(h, data)
    }

    /// A character (`'3'`) or block (`'4'`) device node.
    fn device(&mut self, typeflag: u8, name: &[u8], major: u32, minor: u32) -> &mut Self {
        let mut h = header(name, typeflag, 0, b"");
        h[329..337].copy_from_slice(format!("{major:07o}\0").as_bytes());
        h[337..345].copy_from_slice(format!("{minor:07o}\0").as_bytes());
        fix_checksum(&mut h);
        self.raw(h, b"")
    }

    fn end(&mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 2 * BLOCK]);
        std::mem::take(&mut self.0)
    }
}

fn hostile_manifest(name: &str) -> String {
    manifest(&format!("hostile.example/{name}"), "")
}

/// `bytes` through `tool -c` (gzip, bzip2 or xz).
fn compress(tool: &str, bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(["-c", "-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

// ---------------------------------------------------------------------
// The checks every case shares.

/// A store holding one ordinary image (so the layout exists and a
/// rejected import has something to leave unchanged), and a work dir with
/// a sentinel directory and a victim file beside the target `work/out`.
fn setup() -> Env {
    let env = Env::new();
    let base = env.layout(
        "base",
        &manifest("example.com/base", ""),
        &[("etc/base", "base\n")],
    );
    env.pack(&base, "base.aci", "none");
    env.run(["import", "base.aci"]).ok();
    common::sentinel_work(&env);
    env
}

/// Every file in the store: path, kind, mode, size and a content hash.
fn store_listing(env: &Env) -> Vec<String> {
    let root = env.store();
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name() {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let rel = entry.path().strip_prefix(&root).unwrap().display();
        let content = if meta.is_file() {
            common::id_of(&fs::read(entry.path()).unwrap())
        } else {
            String::new()
        };
        lines.push(format!(
            "{rel} {:o} {} {content}",
            meta.mode(),
            if meta.is_dir() { 0 } else { meta.len() }
        ));
    }
    lines
}

/// Asserts the sentinel and the victim are as [`setup`] made them, and
/// nothing but them (and a target) is beside the target.
fn untouched(env: &Env) {
    let work = env.path("work");
    common::untouched(&work);
    let beside: Vec<String> = common::names(&work)
        .into_iter()
        .filter(|n| n != "out")
        .collect();
    assert_eq!(
        beside,
        ["sentinel", "victim"],
        "something was created beside the target"
    );
    // The store's temp dir and the private TMPDIR are empty again.
    for dir in [env.store().join("tmp"), env.path("tmp")] {
        let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{} not empty: {left:?}", dir.display());
    }
}

fn no_panic(run: &Run) {
    assert_ne!(run.code(), 101, "acido panicked:\n{}", run.stderr());
    assert!(
        !run.stderr().contains("panicked"),
        "acido panicked:\n{}",
        run.stderr()
    );
}

/// Writes `bytes` to `work/in.aci` and checks that importing and
/// rendering it are refused cleanly; snapshots both messages under `name`.
fn refused(name: &str, bytes: &[u8], extra: &[&str]) -> Env {
    let env = setup();
    let input = env.path("in.aci");
    fs::write(&input, bytes).unwrap();
    let before = store_listing(&env);
    let args = |cmd: &[&str]| -> Vec<String> {
        extra
            .iter()
            .chain(cmd)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let import = env.run(args(&["import", "in.aci"]));
    no_panic(&import);
    assert_eq!(
        import.code(),
        128,
        "import accepted {name}:\n{}",
        import.stdout()
    );
    assert_eq!(
        store_listing(&env),
        before,
        "a rejected import changed the store"
    );
    let render = env.run(args(&["render-tree", "in.aci", "work/out"]));
    no_panic(&render);
    assert_eq!(render.code(), 128, "render-tree accepted {name}");
    assert!(!env.path("work/out").exists(), "render left a target");
    assert_eq!(store_listing(&env), before, "render changed the store");
    untouched(&env);
    insta::assert_snapshot!(name, format!("{}{}", env.snap(&import), env.snap(&render)));
    env
}

/// Imports and renders `bytes`, which must be accepted; returns the env
/// (the tree is in `work/out`).
fn accepted(bytes: &[u8]) -> Env {
    let env = setup();
    fs::write(env.path("in.aci"), bytes).unwrap();
    let import = env.run(["import", "in.aci"]);
    no_panic(&import);
    import.ok();
    let render = env.run(["render-tree", "in.aci", "work/out"]);
    no_panic(&render);
    render.ok();
    untouched(&env);
    // The archives here say 0:0: root restores that, a normal user
    // renders everything as its own.
    let owner = if common::is_root() {
        (0, 0)
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    };
    for path in ["work/out/manifest", "work/out/rootfs"] {
        let meta = fs::symlink_metadata(env.path(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), owner, "owner of {path}");
    }
    env
}

// ---------------------------------------------------------------------
// Every case again as a normal user (issue 5: CI runs as root).

#[test]
fn every_case_again_as_a_normal_user() {
    // Nothing here needs root: every case runs, and those whose outcome
    // depends on privilege assert both.
    common::rerun_as_nobody("every_case_again_as_a_normal_user", &[]);
}

// ---------------------------------------------------------------------
// Names outside the root, hidden in extended headers.

#[test]
fn dotdot_and_absolute_names_hidden_in_pax_headers() {
    for (case, path) in [
        ("pax_dotdot", &b"rootfs/../../victim"[..]),
        ("pax_absolute", b"/etc/victim"),
    ] {
        let mut t = Tar::aci(&hostile_manifest(case));
        // The ustar name is harmless; the PAX path replaces it.
        t.pax(&[("path", path)])
            .file(b"rootfs/harmless", b"pwned\n");
        refused(case, &t.end(), &[]);
    }
}

#[test]
fn dotdot_and_absolute_names_hidden_in_gnu_long_names() {
    // Longer than a ustar name field can hold, and climbing one level
    // more than it descends.
    let deep_escape = format!("rootfs/{}{}victim", "a/".repeat(60), "../".repeat(62));
    for (case, path) in [
        ("gnu_dotdot", deep_escape.as_bytes()),
        ("gnu_absolute", b"/etc/victim"),
    ] {
        let mut t = Tar::aci(&hostile_manifest(case));
        t.gnu_long(b'L', path).file(b"rootfs/harmless", b"pwned\n");
        refused(case, &t.end(), &[]);
    }
    // A hard link whose GNU long link name climbs out.
    let mut t = Tar::aci(&hostile_manifest("gnu-link"));
    t.gnu_long(b'K', b"rootfs/../../victim")
        .link(b'1', b"rootfs/h", b"rootfs/harmless");
    refused("gnu_long_link_dotdot", &t.end(), &[]);
}

// ---------------------------------------------------------------------
// Hard links.

#[test]
fn hard_links_to_directories_and_to_later_entries() {
    let mut t = Tar::aci(&hostile_manifest("link-dir"));
    t.dir(b"rootfs/d").link(b'1', b"rootfs/h", b"rootfs/d");
    refused("hardlink_to_directory", &t.end(), &[]);

    let mut t = Tar::aci(&hostile_manifest("link-later"));
    t.link(b'1', b"rootfs/h", b"rootfs/later")
        .file(b"rootfs/later", b"later\n");
    refused("hardlink_to_later_entry", &t.end(), &[]);

    // A link to itself is a link to a not-yet-existing entry too.
    let mut t = Tar::aci(&hostile_manifest("link-self"));
    t.link(b'1', b"rootfs/h", b"rootfs/h");
    refused("hardlink_to_itself", &t.end(), &[]);

    // A hard link to a symlink that points out: the link is to the
    // symlink itself, never followed.
    let mut t = Tar::aci(&hostile_manifest("link-symlink"));
    t.link(b'2', b"rootfs/s", b"../../victim")
        .link(b'1', b"rootfs/h", b"rootfs/s")
        .file(b"rootfs/f", b"f\n");
    let env = accepted(&t.end());
    let h = env.path("work/out/rootfs/h");
    assert!(h.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(fs::read_link(&h).unwrap(), Path::new("../../victim"));
}

// ---------------------------------------------------------------------
// Device nodes, setuid files and capabilities: restored as root, left
// out (and reported) as a normal user.

/// A file capability (`security.capability`, VFS revision 2): cap_net_raw
/// (bit 13) permitted and effective.
const CAP_NET_RAW: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Checks a tree rendered from the image of
/// [`device_nodes_setuid_files_and_capabilities_as_privilege_allows`]: all
/// of it as root; as a normal user, no device nodes, no capability, and
/// everything owned by the renderer (the setuid bit then grants nothing).
fn privileged_tree(tree: &Path, user_xattrs: bool) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let rootfs = tree.join("rootfs");
    let meta = |p: &str| fs::symlink_metadata(rootfs.join(p)).unwrap();
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let root = common::is_root();
    for p in ["", "dev", "suid", "sgid", "cap"] {
        let m = meta(p);
        // The image says 0:0 throughout.
        let want = if root {
            (0, 0)
        } else {
            (uid.as_raw(), gid.as_raw())
        };
        assert_eq!((m.uid(), m.gid()), want, "owner of rootfs/{p}");
    }
    // The mode is the image's either way: a normal user may set setuid
    // and setgid on its own file (its own uid and group, so harmless).
    assert_eq!(meta("suid").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(meta("sgid").permissions().mode() & 0o7777, 0o2755);
    let devices: Vec<_> = fs::read_dir(rootfs.join("dev"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let cap = xattr::get(rootfs.join("cap"), "security.capability").unwrap();
    if root {
        let sda = meta("dev/sda");
        assert!(sda.file_type().is_block_device());
        assert_eq!(sda.rdev(), nix::sys::stat::makedev(8, 0));
        let mem = meta("dev/mem");
        assert!(mem.file_type().is_char_device());
        assert_eq!(mem.rdev(), nix::sys::stat::makedev(1, 1));
        assert_eq!(devices.len(), 2);
        assert_eq!(cap.as_deref(), Some(&CAP_NET_RAW[..]));
    } else {
        assert!(devices.is_empty(), "a normal user made {devices:?}");
        assert_eq!(cap, None, "a normal user set a file capability");
    }
    // A user xattr is anyone's to set, where the file system has them.
    let note = xattr::get(rootfs.join("cap"), "user.note").unwrap();
    assert_eq!(note.as_deref(), user_xattrs.then_some(&b"hello"[..]));
}

#[test]
fn device_nodes_setuid_files_and_capabilities_as_privilege_allows() {
    let mut t = Tar::aci(&hostile_manifest("privileged"));
    t.dir(b"rootfs/dev")
        .device(b'4', b"rootfs/dev/sda", 8, 0)
        .device(b'3', b"rootfs/dev/mem", 1, 1)
        .file_mode(b"rootfs/suid", "4755", b"#!/bin/sh\n")
        .file_mode(b"rootfs/sgid", "2755", b"#!/bin/sh\n")
        .pax(&[
            ("SCHILY.xattr.security.capability", &CAP_NET_RAW[..]),
            ("SCHILY.xattr.user.note", b"hello"),
        ])
        .file(b"rootfs/cap", b"cap\n");
    let env = accepted(&t.end());
    // Whether this file system takes user xattrs at all (tmpfs before
    // Linux 6.6 does not): then neither root nor a user restores it.
    let probe = env.path("work/sentinel/keep");
    let user_xattrs = xattr::set(&probe, "user.probe", b"1").is_ok();
    let _ = xattr::remove(&probe, "user.probe");
    privileged_tree(&env.path("work/out"), user_xattrs);
    // The plumbing leaves out silently what it cannot restore; the
    // porcelain reports it (acido-render-tree(1), "Metadata").
    let render = env.run(["render-tree", "in.aci", "rendered"]);
    render.ok();
    assert_eq!(render.stderr(), "");

    // `extract` reports once what it could not restore.
    let run = env.run(["extract", "hostile.example/privileged", "extracted"]);
    no_panic(&run);
    run.ok();
    privileged_tree(&env.path("extracted"), user_xattrs);
    let report: Vec<_> = run
        .stderr()
        .lines()
        .filter(|l| l.starts_with("acido: not restored"))
        .map(str::to_owned)
        .collect();
    if common::is_root() {
        assert!(report.is_empty(), "{report:?}");
    } else {
        // Owners of manifest, rootfs, dev, suid, sgid and cap; the two
        // devices; the capability, and the user xattr if it failed.
        let xattrs = if user_xattrs { "1 xattr" } else { "2 xattrs" };
        assert_eq!(
            report,
            [format!(
                "acido: not restored (running as a normal user): 6 ownerships, \
                 2 device nodes, {xattrs}"
            )]
        );
    }
}

// ---------------------------------------------------------------------
// Duplicates and manifests.

#[test]
fn duplicate_entries_and_manifests() {
    let mut t = Tar::aci(&hostile_manifest("dup"));
    t.file(b"rootfs/a", b"first\n")
        .file(b"rootfs/./a", b"second\n");
    refused("duplicate_entry", &t.end(), &[]);

    // A second manifest: the reference concatenates them; we refuse.
    let mut t = Tar::aci(&hostile_manifest("dup-manifest"));
    t.file(b"./manifest", hostile_manifest("other").as_bytes());
    refused("duplicate_manifest", &t.end(), &[]);

    // A directory entry and a file of the same name.
    let mut t = Tar::aci(&hostile_manifest("dup-kind"));
    t.dir(b"rootfs/x").file(b"rootfs/x", b"x\n");
    refused("duplicate_dir_and_file", &t.end(), &[]);
}

#[test]
fn manifests_invalid_missing_a_directory_or_oversized() {
    let mut t = Tar::aci("{\"acKind\": \"ImageManifest\", \"acVersion\": ");
    refused("manifest_invalid_json", &t.end(), &[]);

    let mut t = Tar::aci(r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"Bad Name!"}"#);
    refused("manifest_bad_name", &t.end(), &[]);

    let mut t = Tar::default();
    t.dir(b"rootfs").file(b"rootfs/a", b"a\n");
    refused("manifest_missing", &t.end(), &[]);

    let mut t = Tar::default();
    t.dir(b"manifest").dir(b"rootfs");
    refused("manifest_is_a_directory", &t.end(), &[]);

    let mut t = Tar::default();
    t.link(b'2', b"manifest", b"/etc/passwd").dir(b"rootfs");
    refused("manifest_is_a_symlink", &t.end(), &[]);

    // 1 MiB + 1 byte: valid JSON (trailing spaces), over the bound.
    let mut big = hostile_manifest("big").into_bytes();
    big.resize((1 << 20) + 1, b' ');
    let mut t = Tar::default();
    t.file(b"manifest", &big).dir(b"rootfs");
    refused("manifest_oversized", &t.end(), &[]);

    // Nested 10 000 deep: the JSON depth bound, not a stack overflow.
    let deep = format!(
        r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","annotations":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut t = Tar::default();
    t.file(b"manifest", deep.as_bytes()).dir(b"rootfs");
    refused("manifest_nested_too_deep", &t.end(), &[]);
}

// ---------------------------------------------------------------------
// Malformed tar streams.

#[test]
fn pax_size_disagreeing_with_the_ustar_size() {
    // The PAX size wins, as in Go's reader (the reference): the bytes
    // the ustar size would cover hide a header that then becomes an
    // entry. Whatever is listed is exactly what is rendered, so there is
    // no second reading in which an entry is smuggled past the index.
    let mut smuggled = Tar::default();
    smuggled.file(b"rootfs/smuggled", b"smuggled\n");
    let hidden = smuggled.0;
    let mut t = Tar::aci(&hostile_manifest("pax-size"));
    t.pax(&[("size", b"0")]);
    t.raw(
        header(b"rootfs/cover", b'0', hidden.len() as u64, b""),
        &hidden,
    );
    let bytes = t.end();
    let env = accepted(&bytes);
    let listed = env.run(["ls-tree", "in.aci"]).ok();
    assert!(listed.contains("rootfs/smuggled"), "{listed}");
    let out = env.path("work/out/rootfs");
    assert_eq!(fs::read(out.join("cover")).unwrap(), b"");
    assert_eq!(fs::read(out.join("smuggled")).unwrap(), b"smuggled\n");

    // A PAX size larger than the data that follows: truncated.
    let mut t = Tar::aci(&hostile_manifest("pax-size-big"));
    t.pax(&[("size", b"1000000")]).file(b"rootfs/a", b"a\n");
    refused("pax_size_larger_than_data", &t.end(), &[]);

    // A PAX size that is not a number.
    let mut t = Tar::aci(&hostile_manifest("pax-size-bad"));
    t.pax(&[("size", b"-5")]).file(b"rootfs/a", b"a\n");
    refused("pax_size_not_a_number", &t.end(), &[]);
}

#[test]
fn truncated_headers_bad_checksums_and_truncated_data() {
    let mut t = Tar::aci(&hostile_manifest("cut"));
    t.file(b"rootfs/a", &[b'a'; 2000]);
    let full = t.end();
    // Cut inside the last header block.
    refused("truncated_header", &full[..3 * BLOCK + 100], &[]);
    // Cut inside the data of rootfs/a.
    refused("truncated_data", &full[..4 * BLOCK + 700], &[]);
    // A flipped byte in a header's name.
    let mut bad = full.clone();
    bad[3 * BLOCK + 8] ^= 0x20;
    refused("bad_checksum", &bad, &[]);
    // A checksum field that is not octal.
    let mut bad = full.clone();
    bad[3 * BLOCK + 148..3 * BLOCK + 156].copy_from_slice(b"99999999");
    refused("checksum_not_octal", &bad, &[]);
    // Data after a single zero block: a broken end marker.
    let mut bad = full[..full.len() - BLOCK].to_vec();
    bad.extend_from_slice(&header(b"rootfs/b", b'0', 0, b""));
    refused("broken_end_marker", &bad, &[]);
    // A PAX header with nothing after it.
    let mut t = Tar::aci(&hostile_manifest("dangling"));
    t.pax(&[("path", b"rootfs/x")]);
    refused("dangling_pax_header", &t.end(), &[]);
}

#[test]
fn trailing_garbage_corrupt_streams_and_double_compression() {
    let mut t = Tar::aci(&hostile_manifest("streams"));
    t.file(b"rootfs/a", b"a\n");
    let tar = t.end();
    for tool in ["gzip", "bzip2", "xz"] {
        let packed = compress(tool, &tar);
        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"GARBAGE AFTER THE STREAM");
        refused(&format!("{tool}_trailing_garbage"), &trailing, &[]);
        // Missing trailer: the last 8 bytes cut.
        refused(
            &format!("{tool}_missing_trailer"),
            &packed[..packed.len() - 8],
            &[],
        );
        // A flipped bit in the middle of the compressed data.
        let mut flipped = packed.clone();
        let mid = packed.len() / 2;
        flipped[mid] ^= 0x10;
        refused(&format!("{tool}_corrupt"), &flipped, &[]);
    }
    // gzip inside gzip: the inner stream is not a tar.
    let double = compress("gzip", &compress("gzip", &tar));
    refused("double_gzip", &double, &[]);
    let double = compress("xz", &compress("gzip", &tar));
    refused("gzip_inside_xz", &double, &[]);
}

// ---------------------------------------------------------------------
// Decompression bombs.

/// Peak RSS in KiB and wall time of `acido ARGS`, measured by
/// `/usr/bin/time -v` (None when it is not installed).
fn measure(env: &Env, args: &[&str]) -> Option<(Run, u64, Duration)> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        return None;
    }
    let start = Instant::now();
    let output = Command::new(time)
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_acido"))
        .args(args)
        .current_dir(env.path(""))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("TMPDIR", env.path("tmp"))
        .env("ACIDO_STORE", env.store())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Keep acido's own stderr (time's report follows it).
    let own = stderr
        .split("\tCommand being timed")
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut output = output;
    output.stderr = own.into_bytes();
    let run = Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        output,
    };
    Some((run, rss, elapsed))
}

/// A gzip bomb: a tar header for `rootfs/bomb` of `gib` GiB, then that
/// many zeros, as concatenated gzip members (each 64 MiB of zeros is
/// about 64 KiB compressed).
fn gzip_bomb(gib: u64) -> Vec<u8> {
    let mut head = Tar::aci(&hostile_manifest("bomb")).0;
    head.extend_from_slice(&header(b"rootfs/bomb", b'0', gib << 30, b""));
    let mut bomb = compress("gzip", &head);
    let member = compress("gzip", &vec![0u8; 64 << 20]);
    for _ in 0..(gib << 30) / (64 << 20) {
        bomb.extend_from_slice(&member);
    }
    bomb
}

#[test]
fn a_decompression_bomb_stops_at_the_limit_quickly_with_flat_memory() {
    let bomb = gzip_bomb(1);
    assert!(bomb.len() < 8 << 20, "the bomb is small: {}", bomb.len());
    let env = refused("bomb", &bomb, &["--limit", "size=64M"]);
    let before = store_listing(&env);
    // Peak memory at a 64 MiB and at a 512 MiB limit: flat, not growing
    // with the bytes decoded.
    let mut peaks = Vec::new();
    for limit in ["size=64M", "size=512M"] {
        for cmd in [&["import", "in.aci"][..], &["hash-object", "in.aci"]] {
            let mut args = vec!["--limit", limit];
            args.extend_from_slice(cmd);
            let Some((run, rss, elapsed)) = measure(&env, &args) else {
                eprintln!("skipped the RSS measurement: /usr/bin/time is not installed");
                return;
            };
            no_panic(&run);
            assert_eq!(run.code(), 128, "{}", run.stderr());
            assert!(
                run.stderr().contains("maximum decompressed size exceeded"),
                "{}",
                run.stderr()
            );
            eprintln!("bomb: acido {args:?}: peak RSS {rss} KiB, {elapsed:?}");
            assert!(rss > 0 && rss < 128 * 1024, "peak RSS {rss} KiB");
            assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
            peaks.push(rss);
        }
    }
    let (lo, hi) = (peaks.iter().min().unwrap(), peaks.iter().max().unwrap());
    assert!(
        hi - lo < 32 * 1024,
        "peak RSS grows with the input: {peaks:?}"
    );
    assert_eq!(store_listing(&env), before);
    untouched(&env);
}

// ---------------------------------------------------------------------
// Sparse files.

#[test]
fn sparse_entries_are_refused_or_take_only_their_stored_bytes() {
    // An old GNU sparse entry ('S') claiming 1 TiB: not supported.
    let mut h = header(b"rootfs/sparse", b'S', 512, b"");
    h[257..265].copy_from_slice(b"ustar  \0");
    // realsize field (GNU): 1 TiB in base-256.
    h[483] = 0x80;
    h[488..495].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0]);
    fix_checksum(&mut h);
    let mut t = Tar::aci(&hostile_manifest("gnu-sparse"));
    t.raw(h, &[b'x'; 512]);
    refused("gnu_sparse", &t.end(), &[]);

    // A PAX 1.0 sparse file claiming a 1 TiB real size: refused too,
    // rather than written with its sparse map as content.
    let mut t = Tar::aci(&hostile_manifest("pax-sparse"));
    t.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"rootfs/sparse"),
        ("GNU.sparse.realsize", b"1099511627776"),
    ])
    .file(b"rootfs/GNUSparseFile.0/sparse", b"1\n0\n5\nhello");
    refused("pax_sparse", &t.end(), &[]);
}

// ---------------------------------------------------------------------
// Deep and wide trees.

#[test]
fn a_tree_2000_levels_deep_renders() {
    let deep = format!("rootfs/{}file", "d/".repeat(2000));
    let mut t = Tar::aci(&hostile_manifest("deep"));
    t.pax(&[("path", deep.as_bytes())]).file(b"x", b"deep\n");
    let bytes = t.end();
    let env = setup();
    fs::write(env.path("in.aci"), &bytes).unwrap();
    env.run(["import", "in.aci"]).ok();
    let start = Instant::now();
    let render = env.run(["render-tree", "in.aci", "work/out"]);
    no_panic(&render);
    render.ok();
    eprintln!("deep: render took {:?}", start.elapsed());
    // Walk down by relative steps: the full path is longer than PATH_MAX.
    let mut dir = fs::File::open(env.path("work/out/rootfs")).unwrap();
    for _ in 0..2000 {
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", raw_fd(&dir)));
        dir = fs::File::open(fd_path.join("d")).unwrap();
    }
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", raw_fd(&dir)));
    assert_eq!(fs::read(fd_path.join("file")).unwrap(), b"deep\n");
    untouched(&env);

    // 3000 levels: the name is longer than the path-length limit.
    let deeper = format!("rootfs/{}file", "d/".repeat(3000));
    let mut t = Tar::aci(&hostile_manifest("deeper"));
    t.pax(&[("path", deeper.as_bytes())]).file(b"x", b"deep\n");
    let bytes = t.end();
    refused("path_length_limit", &bytes, &[]);
    let env = setup();
    fs::write(env.path("in.aci"), &bytes).unwrap();
    let raised = env.run(["--limit", "path-length=8K", "import", "in.aci"]);
    raised.ok();
}

fn raw_fd(file: &fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    file.as_raw_fd()
}

#[test]
fn a_tree_50000_entries_wide_renders_and_the_entry_limit_holds() {
    let mut t = Tar::aci(&hostile_manifest("wide"));
    for i in 0..50_000 {
        t.file(format!("rootfs/w/{i:05}").as_bytes(), b"");
    }
    let bytes = t.end();
    let env = accepted(&bytes);
    assert_eq!(
        fs::read_dir(env.path("work/out/rootfs/w")).unwrap().count(),
        50_000
    );
    // Below the entry limit it is refused; the option lets it in.
    let env = refused("entries_limit", &bytes, &["--limit", "entries=10000"]);
    env.run(["--limit", "entries=50002", "import", "in.aci"])
        .ok();
}

// ---------------------------------------------------------------------
// Names.

#[test]
fn non_utf8_control_character_and_overlong_names() {
    let mut t = Tar::aci(&hostile_manifest("names"));
    t.file(b"rootfs/latin1-\xe9t\xe9", b"latin1\n")
        .file(b"rootfs/ctrl-\x1b[31m-\x07-\n-\r", b"ctrl\n")
        .file(b"rootfs/tab\there", b"tab\n");
    let env = accepted(&t.end());
    let out = env.path("work/out/rootfs");
    assert_eq!(
        fs::read(out.join(OsStr::from_bytes(b"latin1-\xe9t\xe9"))).unwrap(),
        b"latin1\n"
    );
    assert_eq!(
        fs::read(out.join(OsStr::from_bytes(b"ctrl-\x1b[31m-\x07-\n-\r"))).unwrap(),
        b"ctrl\n"
    );
    // Listings quote what a terminal would interpret.
    let list = env.run(["ls-tree", "in.aci"]).ok();
    assert!(!list.contains('\x1b') && !list.contains('\x07'), "{list:?}");
    insta::assert_snapshot!("names_listing", list);

    // A component longer than NAME_MAX (255): the render fails on it.
    let long = format!("rootfs/{}", "n".repeat(300));
    let mut t = Tar::aci(&hostile_manifest("long-component"));
    t.pax(&[("path", long.as_bytes())]).file(b"x", b"x\n");
    let bytes = t.end();
    let env = setup();
    fs::write(env.path("in.aci"), &bytes).unwrap();
    let render = env.run(["render-tree", "in.aci", "work/out"]);
    no_panic(&render);
    assert_eq!(render.code(), 128);
    assert!(!env.path("work/out").exists());
    untouched(&env);
    insta::assert_snapshot!("long_component", env.snap(&render));

    // Names over the path-length limit, and link targets over theirs.
    let long = format!("rootfs/{}", "n/".repeat(2100));
    let mut t = Tar::aci(&hostile_manifest("long-name"));
    t.pax(&[("path", long.as_bytes())]).file(b"x", b"x\n");
    refused("name_over_path_limit", &t.end(), &[]);
    let target = "t/".repeat(2100);
    let mut t = Tar::aci(&hostile_manifest("long-link"));
    t.pax(&[("linkpath", target.as_bytes())])
        .link(b'2', b"rootfs/l", b"x");
    let bytes = t.end();
    let env = refused("link_over_length_limit", &bytes, &[]);
    env.run(["--limit", "link-length=8K", "import", "in.aci"])
        .ok();
    // A NUL hidden in a PAX path.
    let mut t = Tar::aci(&hostile_manifest("nul"));
    t.pax(&[("path", b"rootfs/a\0../../victim")])
        .file(b"x", b"x\n");
    refused("nul_in_pax_path", &t.end(), &[]);
}

// ---------------------------------------------------------------------
// Limits: each one refuses with its name and the entry, and --limit
// lets the same input through.

#[test]
fn every_limit_names_itself_and_the_entry_and_can_be_raised() {
    let mut t = Tar::aci(&hostile_manifest("limits"));
    t.pax(&[("comment", &[b'c'; 3000][..])])
        .file(b"rootfs/a", &[b'a'; 5000])
        .link(b'2', b"rootfs/l", b"a-rather-long-target-name");
    let bytes = t.end();
    let size = bytes.len();
    let manifest_len = hostile_manifest("limits").len();
    let cases = [
        (
            "size",
            "size=4K",
            format!("size={size}"),
            "maximum decompressed size",
        ),
        (
            "entries",
            "entries=3",
            "entries=4".to_owned(),
            "maximum number of entries",
        ),
        (
            "path-length",
            "path-length=7",
            "path-length=8".to_owned(),
            "maximum path length",
        ),
        (
            "link-length",
            "link-length=10",
            "link-length=25".to_owned(),
            "maximum link target length",
        ),
        (
            "extended-header",
            "extended-header=1K",
            "extended-header=3K".to_owned(),
            "maximum extended header size",
        ),
        (
            "manifest-size",
            "manifest-size=20",
            format!("manifest-size={manifest_len}"),
            "maximum manifest size",
        ),
    ];
    for (name, low, enough, phrase) in cases {
        let env = refused(&format!("limit_{name}"), &bytes, &["--limit", low]);
        let run = env.run(["--limit", low, "import", "in.aci"]);
        let stderr = run.stderr();
        assert!(stderr.contains(&format!("{phrase} exceeded")), "{stderr}");
        assert!(
            stderr.contains(&format!("--limit {name}=N")),
            "no hint: {stderr}"
        );
        // hash-object -w validates like import.
        let w = env.run(["--limit", low, "hash-object", "-w", "in.aci"]);
        assert_eq!(w.code(), 128, "{name}: {}", w.stderr());
        let ok = env.run(["--limit", &enough, "import", "in.aci"]);
        assert_eq!(ok.code(), 0, "{name} raised to {enough}: {}", ok.stderr());
        let render = env.run(["--limit", &enough, "render-tree", "in.aci", "work/out"]);
        assert_eq!(render.code(), 0, "{name}: {}", render.stderr());
    }
    // hash-object alone parses nothing, so only the size limit applies.
    let env = setup();
    fs::write(env.path("in.aci"), &bytes).unwrap();
    let h = env.run(["--limit", "size=4K", "hash-object", "in.aci"]);
    assert_eq!(h.code(), 128);
    insta::assert_snapshot!("limit_hash_object", env.snap(&h));
    env.run(["--limit", &format!("size={size}"), "hash-object", "in.aci"])
        .ok();
    let bad = env.run(["--limit", "sizes=1", "images"]);
    assert_eq!(bad.code(), 129);
}

// ---------------------------------------------------------------------
// Dependencies.

/// Packs and imports an image `name` with `deps` (JSON of the
/// dependencies array) and one file; returns its id.
fn dep_image(env: &Env, name: &str, deps: &str) -> String {
    let m = manifest(name, &format!(r#","dependencies":{deps}"#));
    let file = format!("f-{}", name.replace('/', "-"));
    let layout = env.layout(
        &format!("l-{}", name.replace('/', "-")),
        &m,
        &[(&file, name)],
    );
    let out = format!("{}.aci", name.replace('/', "-"));
    let id = env.pack(&layout, &out, "none");
    env.run(["import", &out]).ok();
    id
}

fn render_refused(env: &Env, image: &str, snapshot: &str) {
    let before = store_listing(env);
    let run = env.run(["render-tree", image, "work/out"]);
    no_panic(&run);
    assert_eq!(run.code(), 128, "{}", run.stdout());
    assert!(!env.path("work/out").exists());
    assert_eq!(store_listing(env), before);
    untouched(env);
    insta::assert_snapshot!(snapshot, env.snap(&run));
}

#[test]
fn dependency_cycles_self_dependencies_and_bad_ids() {
    let env = setup();
    // a -> b -> a, by name.
    dep_image(
        &env,
        "hostile.example/a",
        r#"[{"imageName":"hostile.example/b"}]"#,
    );
    dep_image(
        &env,
        "hostile.example/b",
        r#"[{"imageName":"hostile.example/a"}]"#,
    );
    render_refused(&env, "hostile.example/a", "dependency_cycle");
    // self -> self.
    dep_image(
        &env,
        "hostile.example/self",
        r#"[{"imageName":"hostile.example/self"}]"#,
    );
    render_refused(&env, "hostile.example/self", "self_dependency");
    // A dependency by an id nothing has.
    let missing = format!("sha512-{}", "ab".repeat(64));
    dep_image(
        &env,
        "hostile.example/missing-id",
        &format!(r#"[{{"imageName":"example.com/base","imageID":"{missing}"}}]"#),
    );
    render_refused(&env, "hostile.example/missing-id", "missing_dependency_id");
    // A dependency whose id is a stored image of another name.
    let other = dep_image(&env, "hostile.example/other", "[]");
    dep_image(
        &env,
        "hostile.example/mismatch",
        &format!(r#"[{{"imageName":"example.com/base","imageID":"{other}"}}]"#),
    );
    // The reference resolves by id alone and ignores the name (aci-format
    // §8): the id is what is verified, so the image it names is used.
    let list = env.run(["render-tree", "--list", "hostile.example/mismatch"]);
    no_panic(&list);
    insta::assert_snapshot!("mismatched_dependency_id", env.snap(&list));
    assert!(list.ok().contains("rootfs/f-hostile.example-other"));
    env.run(["render-tree", "hostile.example/mismatch", "work/out"])
        .ok();
    assert!(!env.path("work/out/rootfs/etc/base").exists());
    untouched(&env);
    // A chain longer than the depth bound: 70 images, each on the next.
    let env = setup();
    for i in 0..70 {
        let deps = if i == 69 {
            "[]".to_owned()
        } else {
            format!(r#"[{{"imageName":"hostile.example/c{}"}}]"#, i + 1)
        };
        dep_image(&env, &format!("hostile.example/c{i}"), &deps);
    }
    render_refused(&env, "hostile.example/c0", "dependency_chain_too_deep");
    // A diamond that doubles at every level: the list bound, quickly.
    let env = setup();
    for i in 0..12 {
        let deps = if i == 11 {
            "[]".to_owned()
        } else {
            let next = format!("hostile.example/w{}", i + 1);
            format!(
                r#"[{{"imageName":"{next}"}},{{"imageName":"{next}","labels":[{{"name":"os","value":"linux"}}]}}]"#
            )
        };
        let m = manifest(
            &format!("hostile.example/w{i}"),
            &format!(r#","labels":[{{"name":"os","value":"linux"}}],"dependencies":{deps}"#),
        );
        let layout = env.layout(&format!("w{i}"), &m, &[("f", "w")]);
        env.pack(&layout, &format!("w{i}.aci"), "none");
        env.run(["import", &format!("w{i}.aci")]).ok();
    }
    let start = Instant::now();
    let run = env.run(["render-tree", "--list", "hostile.example/w0"]);
    no_panic(&run);
    assert!(start.elapsed() < Duration::from_secs(30));
    insta::assert_snapshot!("dependency_fan_out", env.snap(&run));
}

// ---------------------------------------------------------------------
// Limits on what manifests say: JSON depth, whitelist length, dependency
// depth and count. Each refuses with its name and the --limit hint, and
// raising it lets the same input through.

/// Checks that `run` was refused by the limit `name` (`phrase exceeded`)
/// and hints at the option.
fn refused_by(run: &Run, name: &str, phrase: &str) {
    no_panic(run);
    assert_eq!(run.code(), 128, "{name}: {}", run.stdout());
    let stderr = run.stderr();
    assert!(stderr.contains(&format!("{phrase} exceeded")), "{stderr}");
    assert!(
        stderr.contains(&format!("--limit {name}=N")),
        "no hint: {stderr}"
    );
}

#[test]
fn manifest_limits_name_themselves_and_can_be_raised() {
    // Ten levels of nesting: the manifest object and nine arrays.
    let deep = manifest(
        "hostile.example/deep",
        &format!(r#","x":{}1{}"#, "[".repeat(9), "]".repeat(9)),
    );
    let mut t = Tar::aci(&deep);
    t.file(b"rootfs/a", b"a");
    let bytes = t.end();
    let env = refused("limit_json_depth", &bytes, &["--limit", "json-depth=9"]);
    let run = env.run(["--limit", "json-depth=9", "import", "in.aci"]);
    refused_by(&run, "json-depth", "maximum JSON depth");
    env.run(["--limit", "json-depth=10", "import", "in.aci"])
        .ok();
    env.run([
        "--limit",
        "json-depth=10",
        "render-tree",
        "in.aci",
        "work/out",
    ])
    .ok();
    // Past the reader's ceiling the option itself is refused.
    let over = env.run(["--limit", "json-depth=513", "images"]);
    assert_eq!(over.code(), 129, "{}", over.stderr());
    // The default holds past 128 levels and can be raised above it.
    let deeper = manifest(
        "hostile.example/deeper",
        &format!(r#","x":{}1{}"#, "[".repeat(199), "]".repeat(199)),
    );
    let mut t = Tar::aci(&deeper);
    t.file(b"rootfs/a", b"a");
    let env = setup();
    fs::write(env.path("in.aci"), t.end()).unwrap();
    refused_by(
        &env.run(["import", "in.aci"]),
        "json-depth",
        "maximum JSON depth",
    );
    env.run(["--limit", "json-depth=200", "import", "in.aci"])
        .ok();

    let listed = manifest(
        "hostile.example/whitelist",
        r#","pathWhitelist":["/a","/b","/c"]"#,
    );
    let mut t = Tar::aci(&listed);
    t.file(b"rootfs/a", b"a")
        .file(b"rootfs/b", b"b")
        .file(b"rootfs/c", b"c");
    let bytes = t.end();
    let low = ["--limit", "whitelist-length=2"];
    let env = refused("limit_whitelist_length", &bytes, &low);
    let run = env.run(low.iter().chain(&["import", "in.aci"]));
    refused_by(&run, "whitelist-length", "maximum whitelist length");
    env.run(["--limit", "whitelist-length=3", "import", "in.aci"])
        .ok();
    env.run([
        "--limit",
        "whitelist-length=3",
        "render-tree",
        "in.aci",
        "work/out",
    ])
    .ok();
    assert!(env.path("work/out/rootfs/c").exists());
}

#[test]
fn dependency_limits_name_themselves_and_can_be_raised() {
    // A chain four images long: levels 0 to 3.
    let env = setup();
    for i in 0..4 {
        let deps = if i == 3 {
            "[]".to_owned()
        } else {
            format!(r#"[{{"imageName":"hostile.example/d{}"}}]"#, i + 1)
        };
        dep_image(&env, &format!("hostile.example/d{i}"), &deps);
    }
    let low = ["--limit", "dependency-depth=2"];
    let before = store_listing(&env);
    let run = env.run(
        low.iter()
            .chain(&["render-tree", "hostile.example/d0", "work/out"]),
    );
    refused_by(&run, "dependency-depth", "maximum dependency depth");
    assert!(!env.path("work/out").exists());
    assert_eq!(store_listing(&env), before);
    untouched(&env);
    insta::assert_snapshot!("limit_dependency_depth", env.snap(&run));
    env.run([
        "--limit",
        "dependency-depth=3",
        "render-tree",
        "hostile.example/d0",
        "work/out",
    ])
    .ok();
    assert!(env.path("work/out/rootfs/f-hostile.example-d3").exists());

    // A diamond: top -> [left, right], both -> base. The list names base
    // once per path (aci-format §9.1): top, right, base, left, base.
    let env = setup();
    dep_image(&env, "hostile.example/base", "[]");
    for side in ["left", "right"] {
        dep_image(
            &env,
            &format!("hostile.example/{side}"),
            r#"[{"imageName":"hostile.example/base"}]"#,
        );
    }
    dep_image(
        &env,
        "hostile.example/top",
        r#"[{"imageName":"hostile.example/left"},{"imageName":"hostile.example/right"}]"#,
    );
    let low = ["--limit", "dependency-count=4"];
    let before = store_listing(&env);
    let run = env.run(
        low.iter()
            .chain(&["render-tree", "hostile.example/top", "work/out"]),
    );
    refused_by(&run, "dependency-count", "maximum dependency count");
    assert!(!env.path("work/out").exists());
    assert_eq!(store_listing(&env), before);
    insta::assert_snapshot!("limit_dependency_count", env.snap(&run));
    env.run([
        "--limit",
        "dependency-count=5",
        "render-tree",
        "hostile.example/top",
        "work/out",
    ])
    .ok();
    assert!(env.path("work/out/rootfs/f-hostile.example-base").exists());
}
