//! `--format json` (issue 15, item 10): one versioned JSON document on one
//! line from `images`, `ls-tree`, `resolve`, `validate`, `fsck` and
//! `diff-tree`, all through the shared writer (`json_output`). Each output
//! is pinned by a snapshot and parsed back; options that only shape the
//! text are usage errors with it; `diff-tree --json` is the same as
//! `--format json`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use common::{manifest, Env, Run};
use serde_json::Value;

/// Snapshots a run with the packing user's ids and import times redacted.
macro_rules! snap {
    ($name:expr, $env:expr, $run:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r#""(uid|gid)":\d+"#, "\"$1\":[ID]");
        settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", "[TIME]");
        settings.bind(|| insta::assert_snapshot!($name, $env.snap(&$run)));
    }};
}

/// The document a successful (or, for `exit`, negative) run printed: one
/// line, parsed, with `formatVersion` 1 first.
fn document(run: &Run, exit: i32) -> Value {
    assert_eq!(run.code(), exit, "{:?}: {}", run.args, run.stderr());
    let text = run.stdout();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(text.starts_with("{\"formatVersion\":1,"), "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A store with `example.com/base` (a file, a symlink and a path that is
/// not UTF-8) and `example.com/top` depending on it; returns their ids.
fn family(env: &Env) -> (String, String) {
    let base = env.layout(
        "base",
        &manifest(
            "example.com/base",
            r#","labels":[{"name":"version","value":"1.0"}]"#,
        ),
        &[("etc/a b", "x")],
    );
    std::os::unix::fs::symlink("a b", base.join("rootfs/etc/link")).unwrap();
    fs::write(base.join("rootfs").join(OsStr::from_bytes(b"bin\xfe")), "y").unwrap();
    common::pin_times(&base);
    env.pack(&base, "base.aci", "none");
    let base_id = env.run(["import", "base.aci"]).ok().trim().to_owned();
    let top = env.layout(
        "top",
        &manifest(
            "example.com/top",
            r#","dependencies":[{"imageName":"example.com/base"}]"#,
        ),
        &[("etc/top", "top\n")],
    );
    env.pack(&top, "top.aci", "none");
    let top_id = env.run(["import", "top.aci"]).ok().trim().to_owned();
    (base_id, top_id)
}

#[test]
fn images_json() {
    let env = Env::new();
    let (base, top) = family(&env);
    let run = env.run(["images", "--format", "json"]);
    snap!("images", env, run);
    let doc = document(&run, 0);
    assert_eq!(doc["images"][0]["id"], base.as_str());
    assert_eq!(doc["images"][0]["labels"][0]["value"], "1.0");
    assert_eq!(doc["images"][1]["id"], top.as_str());
    // The table's own options do not mix with JSON; `table` still works.
    assert_eq!(
        env.run(["images", "--format", "json", "--abbrev=4"]).code(),
        129
    );
    assert_eq!(
        env.run(["images", "--format", "json", "--no-abbrev"])
            .code(),
        129
    );
    assert!(env
        .run(["images", "--format", "table"])
        .ok()
        .starts_with("ID "));
}

#[test]
fn ls_tree_json() {
    let env = Env::new();
    family(&env);
    let run = env.run(["ls-tree", "--format", "json", "example.com/base"]);
    snap!("ls_tree", env, run);
    let doc = document(&run, 0);
    let entries = doc["entries"].as_array().unwrap();
    let by_path = |path: &Value| entries.iter().find(|e| &e["path"] == path).cloned();
    let link = by_path(&"rootfs/etc/link".into()).expect("the symlink");
    assert_eq!(link["type"], "symlink");
    assert_eq!(link["linkTarget"], "a b");
    assert_eq!(link["mtime"]["sec"], 1_600_000_000);
    // Not UTF-8: the bytes, exactly.
    let raw: Vec<u8> = b"rootfs/bin\xfe".to_vec();
    let odd = by_path(&serde_json::json!({ "bytes": raw })).expect("the non-UTF-8 path");
    assert_eq!(odd["size"], 1);
    // The same entries as the text listing, in the same order.
    let text = env.run(["ls-tree", "example.com/base"]).ok();
    assert_eq!(entries.len(), text.lines().count());
    for flag in ["-z", "--long"] {
        let run = env.run(["ls-tree", "--format", "json", flag, "example.com/base"]);
        assert_eq!(run.code(), 129, "{flag}: {}", run.stderr());
    }
}

#[test]
fn resolve_json() {
    let env = Env::new();
    let (base, top) = family(&env);
    let prefix = &top[..19];
    let run = env.run([
        "resolve",
        "--format",
        "json",
        "example.com/base:1.0",
        prefix,
    ]);
    snap!("resolve", env, run);
    let doc = document(&run, 0);
    assert_eq!(doc["images"][0]["name"], "example.com/base:1.0");
    assert_eq!(doc["images"][0]["id"], base.as_str());
    assert_eq!(doc["images"][0]["matches"], 1);
    assert_eq!(doc["images"][1]["id"], top.as_str());
    // A name that does not resolve prints no half document.
    let run = env.run([
        "resolve",
        "--format",
        "json",
        "example.com/base",
        "nothing.org/x",
    ]);
    snap!("resolve_missing", env, run);
    assert_eq!(run.code(), 128);
    assert_eq!(run.stdout(), "");
    let run = env.run([
        "resolve",
        "--format",
        "json",
        "--abbrev=8",
        "example.com/base",
    ]);
    assert_eq!(run.code(), 129, "{}", run.stderr());
}

#[test]
fn validate_json() {
    let env = Env::new();
    let good = env.layout("good", &manifest("example.com/good", ""), &[("a", "a")]);
    fs::write(env.path("bad.json"), r#"{"acKind":"ImageManifest"}"#).unwrap();
    let odd = env.path("odd\u{7}.json");
    fs::write(&odd, manifest("example.com/Odd", "")).unwrap();
    let (bad, missing) = (env.path("bad.json"), env.path("missing"));
    let run = env.run([
        OsStr::new("validate"),
        OsStr::new("--format"),
        OsStr::new("json"),
        good.as_os_str(),
        bad.as_os_str(),
        odd.as_os_str(),
        missing.as_os_str(),
    ]);
    snap!("validate", env, run);
    let doc = document(&run, 1);
    let inputs = doc["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 4);
    assert_eq!(inputs[0]["valid"], true);
    assert_eq!(inputs[0]["kind"], "layout");
    assert_eq!(inputs[0]["findings"], serde_json::json!([]));
    assert_eq!(inputs[1]["valid"], false);
    assert_eq!(inputs[1]["findings"][0]["severity"], "error");
    assert_eq!(inputs[3]["kind"], Value::Null);
    // Only valid inputs: exit 0, same as the text output.
    let run = env.run([
        OsStr::new("validate"),
        OsStr::new("--format"),
        OsStr::new("json"),
        good.as_os_str(),
    ]);
    document(&run, 0);
    let run = env.run([
        OsStr::new("validate"),
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("-v"),
        good.as_os_str(),
    ]);
    assert_eq!(run.code(), 129, "{}", run.stderr());
}

#[test]
fn fsck_json() {
    let env = Env::new();
    let (base, _) = family(&env);
    let clean = env.run(["fsck", "--format", "json"]);
    let doc = document(&clean, 0);
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert_eq!(doc["blobsChecked"], 2);
    // A stray file and a missing record: one path, one image.
    fs::write(env.store().join("stray"), "?").unwrap();
    let record = env
        .store()
        .join("images")
        .join(format!("{}.json", common::hex(&base)));
    fs::remove_file(&record).unwrap();
    let run = env.run(["fsck", "--format", "json"]);
    snap!("fsck", env, run);
    let doc = document(&run, 1);
    let problems = doc["problems"].as_array().unwrap();
    let kinds: Vec<&str> = problems
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"missing-record") && kinds.contains(&"stray"),
        "{kinds:?}"
    );
    assert!(problems.iter().any(|p| p["image"] == base.as_str()));
    assert!(problems.iter().any(|p| p["path"] == "stray"));
    assert_eq!(doc["unrepaired"], problems.len());
    let run = env.run(["fsck", "--repair", "--format", "json"]);
    snap!("fsck_repair", env, run);
    let doc = document(&run, 0);
    assert_eq!(doc["repair"], true);
    assert_eq!(doc["unrepaired"], 0);
    assert!(doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["repair"]["done"] == true));
}

#[test]
fn diff_tree_json_and_its_older_spelling() {
    let env = Env::new();
    family(&env);
    let a = env.layout(
        "a",
        &manifest("example.com/a", ""),
        &[("same", "1"), ("gone", "2")],
    );
    let b = env.layout(
        "b",
        &manifest("example.com/a", ""),
        &[("same", "1"), ("new", "3")],
    );
    let (a, b) = (a.join("rootfs"), b.join("rootfs"));
    let args = |format: &[&str]| -> Vec<std::ffi::OsString> {
        let mut v = vec![std::ffi::OsString::from("diff-tree")];
        v.extend(format.iter().map(std::ffi::OsString::from));
        v.push(a.clone().into_os_string());
        v.push(b.clone().into_os_string());
        v
    };
    let run = env.run(args(&["--format", "json"]));
    snap!("diff_tree", env, run);
    let doc = document(&run, 0);
    let statuses: Vec<(&str, &str)> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("gone", "D"), ("new", "A")]);
    assert_eq!(env.run(args(&["--json"])).ok(), run.ok());
    // Images too: top over base against base.
    let run = env.run([
        "diff-tree",
        "--format",
        "json",
        "example.com/base",
        "example.com/top",
    ]);
    let doc = document(&run, 0);
    assert!(doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["path"] == "etc/top" && c["status"] == "A"));
    for other in [
        &["--stat"][..],
        &["--name-only"],
        &["--name-status"],
        &["--json"],
    ] {
        let mut format = vec!["--format", "json"];
        format.extend(other);
        let run = env.run(args(&format));
        assert_eq!(run.code(), 129, "{other:?}: {}", run.stderr());
    }
}
