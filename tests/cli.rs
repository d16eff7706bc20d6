//! End-to-end tests of the first plumbing commands and `import`: each
//! command's success and failure output is pinned by an insta snapshot
//! (argv, exit code, stdout, stderr; temp paths and ids redacted).

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{fixtures, id_of, manifest, Env};
use insta::assert_snapshot;

const BASE: &str = r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/base","labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"}]}"#;

/// A store holding one packed and imported base image; returns its id.
fn with_base(env: &Env) -> String {
    let layout = env.layout(
        "base",
        BASE,
        &[("etc/passwd", "root:x:0:0::/:/bin/sh\n"), ("bin/sh", "#!")],
    );
    env.pack(&layout, "base.aci", "xz");
    let id = env.run(["import", "base.aci"]).ok().trim().to_owned();
    assert!(id.starts_with("sha512-") && id.len() == 135, "{id}");
    id
}

fn decompressed(path: &std::path::Path) -> Vec<u8> {
    let head = fs::read(path).unwrap();
    let tool = match head.get(..3) {
        Some([0x1f, 0x8b, _]) => "gzip",
        Some(b"BZh") => "bzip2",
        Some([0xfd, b'7', b'z']) => "xz",
        _ => return head,
    };
    let out = Command::new(tool).args(["-dc"]).arg(path).output().unwrap();
    assert!(out.status.success(), "{tool} -dc {}", path.display());
    out.stdout
}

#[test]
fn hash_object_matches_sha512_of_the_decompressed_tar_for_every_readable_fixture() {
    let env = Env::new();
    let mut checked = 0;
    for entry in fs::read_dir(fixtures().join("archives")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let run = env.run(["hash-object".as_ref(), path.as_os_str()]);
        let unreadable = [
            "bad-empty-file.aci",
            "bad-empty-tar.aci",
            "bad-zstd-magic.aci",
            "bad-gzip-truncated.aci",
            "ok-gzip-missing-trailer.aci",
        ];
        if unreadable.contains(&name.as_str()) {
            assert_eq!(run.code(), 128, "{name} should fail: {}", run.stdout());
            assert!(run.stderr().contains(&name), "{name}: {}", run.stderr());
            continue;
        }
        assert_eq!(run.ok().trim(), id_of(&decompressed(&path)), "{name}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures hashed");
}

#[test]
fn every_compression_of_one_tree_has_one_id() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/x", ""), &[("a", "a")]);
    let ids: Vec<String> = ["none", "gzip", "bzip2", "xz"]
        .iter()
        .map(|c| env.pack(&layout, &format!("x-{c}.aci"), c))
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    for c in ["none", "gzip", "bzip2", "xz"] {
        let run = env.run(["hash-object", &format!("x-{c}.aci")]);
        assert_eq!(run.ok().trim(), ids[0]);
    }
    // Concatenated gzip members are one stream.
    let tar = fs::read(env.path("x-none.aci")).unwrap();
    let (a, b) = tar.split_at(1000);
    let mut multi = Vec::new();
    for part in [a, b] {
        let mut gz = flate(part);
        multi.append(&mut gz);
    }
    let run = env.run_stdin(["hash-object", "--stdin"], &multi);
    assert_eq!(run.ok().trim(), ids[0]);
}

fn flate(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out.stdout
}

#[test]
fn hash_object_snapshots() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/x", ""), &[("a", "a")]);
    env.pack(&layout, "x.aci", "gzip");
    assert_snapshot!(env.snap(&env.run(["hash-object", "x.aci", "x.aci"])));
    assert_snapshot!(env.snap(
        &env.run([
            "hash-object",
            fixtures()
                .join("archives/bad-zstd-magic.aci")
                .to_str()
                .unwrap()
        ])
    ));
    assert_snapshot!(env.snap(&env.run(["hash-object", "missing.aci"])));
    assert_snapshot!(env.snap(&env.run(["hash-object"])));
    // -w stores it: afterwards it resolves by name.
    env.run(["hash-object", "-w", "x.aci"]).ok();
    assert_snapshot!(env.snap(&env.run(["resolve", "example.com/x"])));
}

#[test]
fn import_is_idempotent_and_rejects_bad_archives_without_touching_the_store() {
    let env = Env::new();
    let id = with_base(&env);
    let store_listing = || {
        let mut paths: Vec<String> = walkdir::WalkDir::new(env.store())
            .into_iter()
            .map(|e| e.unwrap().path().display().to_string())
            .collect();
        paths.sort();
        paths
    };
    let before = store_listing();
    let again = env.run(["import", "base.aci"]);
    assert_eq!(again.ok().trim(), id);
    assert_eq!(store_listing(), before);
    for bad in [
        "bad-invalid-manifest.aci",
        "bad-duplicate-entry.aci",
        "bad-dotdot-escape.aci",
        "bad-gzip-truncated.aci",
        "ok-sibling-rootfsx.aci",
    ] {
        let run = env.run([
            "import",
            fixtures().join("archives").join(bad).to_str().unwrap(),
        ]);
        assert_eq!(run.code(), 128, "{bad}");
        assert_eq!(store_listing(), before, "{bad} changed the store");
    }
    let bad = fixtures().join("archives/bad-invalid-manifest.aci");
    let snap = env.snap(&env.run(["import", bad.to_str().unwrap()]));
    assert_snapshot!(snap);
}

#[test]
fn import_from_stdin_and_several_files() {
    let env = Env::new();
    let a = env.layout("a", &manifest("example.com/a", ""), &[("a", "1")]);
    let b = env.layout("b", &manifest("example.com/b", ""), &[("b", "2")]);
    env.pack(&a, "a.aci", "bzip2");
    env.pack(&b, "b.aci", "none");
    assert_snapshot!(env.snap(&env.run(["import", "a.aci", "b.aci"])));
    let run = env.run_stdin(["import", "-"], &fs::read(env.path("a.aci")).unwrap());
    assert_snapshot!(env.snap(&run));
    assert_snapshot!(env.snap(&env.run(["import", "a.aci", "nope.aci", "b.aci"])));
}

#[test]
fn cat_manifest_prints_stored_bytes_by_name_prefix_and_file() {
    let env = Env::new();
    let id = with_base(&env);
    let by_name = env.run(["cat-manifest", "example.com/base:1.0"]).ok();
    assert_eq!(by_name, BASE);
    assert_eq!(env.run(["cat-manifest", &id[..20]]).ok(), BASE);
    assert_eq!(env.run(["cat-manifest", "base.aci"]).ok(), BASE);
    assert_snapshot!(env.snap(&env.run(["cat-manifest", "--pretty", "example.com/base"])));
    assert_snapshot!(env.snap(&env.run(["cat-manifest", "example.com/base:2.0"])));
    assert_snapshot!(env.snap(&env.run(["cat-manifest", "sha512-zz"])));
}

#[test]
fn ls_tree_lists_entries_in_every_format() {
    let env = Env::new();
    let layout = env.layout(
        "l",
        &manifest("example.com/l", ""),
        &[("etc/a b", "x"), ("new\nline", "y")],
    );
    std::os::unix::fs::symlink("etc/a b", layout.join("rootfs/link")).unwrap();
    common::pin_times(&layout);
    env.pack(&layout, "l.aci", "none");
    assert_snapshot!(env.snap(&env.run(["ls-tree", "l.aci"])));
    let z = env.run(["ls-tree", "-z", "l.aci"]).output.stdout;
    assert!(z.windows(13).any(|w| w == b"rootfs/new\nli"), "-z is raw");
    assert_eq!(z.iter().filter(|&&b| b == 0).count(), 6);
    let long = env.run(["ls-tree", "--long", "l.aci"]).ok();
    assert!(
        long.contains(" 1600000000\trootfs/link -> etc/a b\n"),
        "{long}"
    );
    let long_z = env.run(["ls-tree", "--long", "-z", "l.aci"]).output.stdout;
    let needle = b"\trootfs/link\0etc/a b\0f ";
    assert!(long_z.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn resolve_names_prefixes_and_ambiguity() {
    let env = Env::new();
    // Import images until two share their first two hex digits.
    let mut ids: Vec<String> = Vec::new();
    let mut i = 0;
    let clash = loop {
        let layout = env.layout(
            &format!("l{i}"),
            &manifest(
                "example.com/many",
                &format!(r#","labels":[{{"name":"version","value":"{i}"}}]"#),
            ),
            &[("n", &i.to_string())],
        );
        env.pack(&layout, &format!("m{i}.aci"), "none");
        let id = env
            .run(["import", &format!("m{i}.aci")])
            .ok()
            .trim()
            .to_owned();
        if let Some(other) = ids.iter().find(|o| o[..9] == id[..9]) {
            break (other.clone(), id);
        }
        ids.push(id);
        i += 1;
        assert!(i < 200, "no clash");
    };
    let prefix = &clash.0[..9];
    let run = env.run(["resolve", prefix]);
    assert_eq!(run.code(), 128);
    assert!(run.stderr().contains("ambiguous image id prefix"));
    assert!(run.stderr().contains(&clash.0) && run.stderr().contains(&clash.1));
    // The newest import wins among name matches.
    let newest = env.run(["resolve", "example.com/many"]).ok();
    assert_eq!(newest.trim(), clash.1);
    let abbrev = env
        .run(["resolve", "--abbrev=10", "example.com/many,version=0"])
        .ok();
    assert_eq!(abbrev.trim(), &ids[0][..17]);
    assert_snapshot!(env.snap(&env.run(["resolve", "example.com/nothing:1"])));
    assert_snapshot!(env.snap(&env.run(["resolve", "sha512-f"])));
    assert_snapshot!(env.snap(&env.run(["resolve", "a,b"])));
}

#[test]
fn validate_gives_the_reference_verdict_on_every_fixture() {
    let env = Env::new();
    let mut lines = String::new();
    let mut names: Vec<_> = fs::read_dir(fixtures().join("manifests"))
        .unwrap()
        .chain(fs::read_dir(fixtures().join("archives")).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let run = env.run(["validate".as_ref(), "-v".as_ref(), path.as_os_str()]);
        let valid = run.code() == 0;
        let expect_valid = (name.starts_with("valid-") || name.starts_with("ok-"))
            && name != "ok-sibling-rootfsx.aci"
            && name != "ok-gzip-missing-trailer.aci";
        assert_eq!(valid, expect_valid, "{name}: {}", run.stdout());
        let out = run
            .stdout()
            .replace(&fixtures().display().to_string(), "[FIXTURES]");
        lines.push_str(&out);
    }
    assert_snapshot!(lines);
}

#[test]
fn validate_layouts_strict_warnings_and_exit_codes() {
    let env = Env::new();
    let ok = env.layout("ok", &manifest("example.com/ok", ""), &[("a", "")]);
    let odd = env.layout("odd", &manifest("example.com//odd", ""), &[("a", "")]);
    fs::write(env.path("odd/README"), "x").unwrap();
    let strict_only = env.layout("so", &manifest("example.com//so", ""), &[]);
    assert_snapshot!(env.snap(&env.run(["validate", "-v", "ok", "odd"])));
    let plain = env.run(["validate", "so"]);
    assert_eq!(plain.code(), 0, "{}", plain.stdout());
    assert_snapshot!(env.snap(&env.run(["validate", "--strict", "so"])));
    let _ = (ok, odd, strict_only);
    assert_snapshot!(env.snap(&env.run(["validate"])));
}

#[test]
fn pack_aci_is_deterministic_and_refuses_bad_layouts() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/l", ""), &[("x/y", "z")]);
    let copy = env.path("copy");
    let status = Command::new("cp")
        .args(["-a"])
        .arg(&layout)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let a = env.pack(&layout, "a.aci", "xz");
    let b = env.pack(&copy, "b.aci", "xz");
    assert_eq!(a, b);
    assert_eq!(
        fs::read(env.path("a.aci")).unwrap(),
        fs::read(env.path("b.aci")).unwrap()
    );
    let stdout = env.run(["pack-aci", "--compression", "none", "-o", "-", "l"]);
    assert_eq!(id_of(&stdout.output.stdout), a);
    assert_eq!(stdout.stderr().trim(), a);
    assert_snapshot!(env.snap(&env.run(["pack-aci", "-o", "a.aci", "l"])));
    fs::remove_file(env.path("l/manifest")).unwrap();
    assert_snapshot!(env.snap(&env.run(["pack-aci", "-o", "c.aci", "l"])));
    assert!(!env.path("c.aci").exists());
    assert_snapshot!(env.snap(&env.run(["pack-aci", "l"])));
}

#[test]
fn packed_acis_pass_the_reference_validator() {
    let Some(actool) = common::actool() else {
        return;
    };
    let env = Env::new();
    let layout = env.layout(
        "l",
        &manifest(
            "example.com/l",
            r#","labels":[{"name":"version","value":"1"}]"#,
        ),
        &[("a/b/c", "z"), (&"d".repeat(150), "long")],
    );
    for c in ["none", "gzip", "bzip2", "xz"] {
        let out = format!("l-{c}.aci");
        env.pack(&layout, &out, c);
        let status = Command::new(&actool)
            .args(["validate"])
            .arg(env.path(&out))
            .status()
            .unwrap();
        assert!(status.success(), "actool rejects {out}");
    }
}

#[test]
fn reference_built_acis_hash_like_sha512sum() {
    let Some(actool) = common::actool() else {
        return;
    };
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/ref", ""), &[("x", "y")]);
    for (flag, out) in [
        (None, "ref.aci"),
        (Some("--no-compression"), "ref-plain.aci"),
    ] {
        let mut cmd = Command::new(&actool);
        cmd.arg("build");
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        let status = cmd.arg(&layout).arg(env.path(out)).status().unwrap();
        assert!(status.success());
        let id = env.run(["hash-object", out]).ok();
        assert_eq!(id.trim(), id_of(&decompressed(&env.path(out))));
        env.run(["import", out]).ok();
    }
}

#[test]
fn usage_errors_exit_129_and_broken_pipes_exit_quietly() {
    let env = Env::new();
    assert_snapshot!(env.snap(&env.run(["no-such-command"])));
    assert_snapshot!(env.snap(&env.run(["ls-tree"])));
    let version = env.run(["--version"]);
    assert_eq!(version.code(), 0);

    // A reader that goes away: acido must not complain or panic.
    let layout = env.layout(
        "big",
        &manifest("example.com/big", ""),
        &(0..3000)
            .map(|i| (Box::leak(format!("d/{i:05}").into_boxed_str()) as &str, "x"))
            .collect::<Vec<_>>(),
    );
    env.pack(&layout, "big.aci", "none");
    let mut child = env
        .command()
        .args(["ls-tree", "big.aci"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn store_location_comes_from_flag_env_xdg_then_home() {
    let env = Env::new();
    let layout = env.layout("l", &manifest("example.com/l", ""), &[]);
    env.pack(&layout, "l.aci", "none");
    let flag = env.run(["--store", "flagstore", "import", "l.aci"]);
    flag.ok();
    assert!(env.path("flagstore/version").is_file());
    let out = env
        .command()
        .env_remove("ACIDO_STORE")
        .env("XDG_DATA_HOME", env.path("xdg"))
        .args(["import", "l.aci"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(env.path("xdg/acido/version").is_file());
    let out = env
        .command()
        .env_remove("ACIDO_STORE")
        .args(["import", "l.aci"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(env.path("home/.local/share/acido/version").is_file());
}

#[test]
fn build_refuses_an_output_inside_the_tree() {
    let env = Env::new();
    env.layout("t", &manifest("example.com/t", ""), &[("a", "1")]);
    let run = env.run(["build", "t", "t/rootfs/x.aci"]);
    assert_snapshot!(env.snap(&run));
    assert!(!env.path("t/rootfs/x.aci").exists());
    // Without dependencies the whole tree is packed, like pack-aci.
    let built = env.run(["build", "t", "t.aci"]).ok();
    let packed = env.run(["pack-aci", "-o", "p.aci", "t"]).ok();
    assert_eq!(built, packed);
}
