//! CLI tests of `acido build -f Acidofile`: a busybox base image, an
//! Acidofile that copies, adds, runs, and edits the manifest, and the
//! error messages. Steps that `RUN` need root (CI runs as root) and
//! Debian's busybox-static; without them the tests say so and return.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{is_root, manifest, Env};
use serde_json::Value;

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Whether `RUN` steps can run here; prints why not.
fn can_run(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipping {test}: RUN steps need root (namespaces, mounts)");
        return false;
    }
    if busybox().is_none() {
        eprintln!("skipping {test}: busybox is not installed (apt-get install busybox-static)");
        return false;
    }
    true
}

/// Stores `example.com/busybox:1.0`: /bin/busybox with a symlink per
/// applet, and /etc. Returns its id.
fn base_image(env: &Env) -> String {
    let busybox = busybox().expect("checked by can_run");
    let dir = env.layout(
        "base",
        &manifest(
            "example.com/busybox",
            r#","labels":[{"name":"version","value":"1.0"}]"#,
        ),
        &[("etc/hostname", "base\n")],
    );
    let bin = dir.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(&busybox, bin.join("busybox")).unwrap();
    let list = Command::new(&busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    assert!(bin.join("vi").exists(), "busybox has a vi applet to remove");
    common::pin_times(&dir);
    env.pack(&dir, "base.aci", "gzip");
    env.run(["import", "base.aci"]).ok().trim().to_owned()
}

/// What is left in the test's TMPDIR by builds.
fn leftovers(env: &Env) -> Vec<String> {
    fs::read_dir(env.path("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `env.snap(run)` with the step times (`done in 0.12s`, `: 0.00s`)
/// redacted to `[TIME]`.
fn snap(env: &Env, run: &common::Run) -> String {
    let text = env.snap(run);
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let Some((head, last)) = line.rsplit_once(' ') else {
                return line.to_owned();
            };
            let timed = line.starts_with("acido: step ")
                && last
                    .strip_suffix('s')
                    .is_some_and(|n| n.contains('.') && n.parse::<f64>().is_ok());
            if timed {
                format!("{head} [TIME]")
            } else {
                line.to_owned()
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

fn manifest_of(env: &Env, image: &str) -> Value {
    let text = env.run(["cat-manifest", image]).ok();
    serde_json::from_str(&text).unwrap()
}

fn paths_of(env: &Env, image: &str) -> Vec<String> {
    env.run(["ls-tree", "-z", image])
        .output
        .stdout
        .split(|&b| b == 0)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let line = String::from_utf8_lossy(r).into_owned();
            line.split_once('\t')
                .map(|(_, p)| p.to_owned())
                .unwrap_or(line)
        })
        .collect()
}

const ACIDOFILE: &str = r#"# the issue's example
FROM example.com/busybox:1.0
COPY motd /etc/motd
ADD pkg.tar.gz /opt/pkg/
RUN sh -c 'echo hi > /x; rm /bin/vi'
ENV GREETING=hello \
    LANG=C
WORKDIR /srv/app
RUN ["/bin/sh", "-c", "pwd > here; echo $GREETING > greeting"]
EXEC ["/bin/sh", "-c", "echo $GREETING"]
PORT http 8080
LABEL version=1.1
"#;

fn write_inputs(env: &Env) {
    fs::write(env.path("Acidofile"), ACIDOFILE).unwrap();
    fs::write(env.path("motd"), "welcome\n").unwrap();
    fs::create_dir_all(env.path("pkg/lib")).unwrap();
    fs::write(env.path("pkg/lib/data"), "data\n").unwrap();
    common::pin_times(&env.path("pkg"));
    let status = Command::new("tar")
        .args(["-czf", "pkg.tar.gz", "-C", "pkg", "."])
        .current_dir(env.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn an_acidofile_builds_a_diff_image_equal_to_its_steps() {
    if !can_run("an_acidofile_builds_a_diff_image_equal_to_its_steps") {
        return;
    }
    let env = Env::new();
    let base = base_image(&env);
    write_inputs(&env);
    let run = env.run([
        "build",
        "-f",
        "Acidofile",
        "-o",
        "app.aci",
        "--import",
        "--keep-tree",
        "steps",
    ]);
    let id = run.ok().trim().to_owned();
    assert_eq!(env.run(["hash-object", "app.aci"]).ok().trim(), id);
    insta::assert_snapshot!("build_steps", snap(&env, &run));

    // Only the changes: nothing of busybox's bin/ but the directory
    // itself (vi is gone from it).
    let paths = paths_of(&env, "app.aci");
    assert_eq!(
        paths,
        [
            "manifest",
            "rootfs",
            "rootfs/bin",
            "rootfs/etc/motd",
            "rootfs/opt",
            "rootfs/opt/pkg",
            "rootfs/opt/pkg/lib",
            "rootfs/opt/pkg/lib/data",
            "rootfs/srv",
            "rootfs/srv/app",
            "rootfs/srv/app/greeting",
            "rootfs/srv/app/here",
            "rootfs/x",
        ]
    );

    let m = manifest_of(&env, "app.aci");
    let app = &m["app"];
    assert_eq!(m["name"], "example.com/busybox");
    assert_eq!(m["labels"][0]["value"], "1.1");
    assert_eq!(
        app["exec"],
        serde_json::json!(["/bin/sh", "-c", "echo $GREETING"])
    );
    assert_eq!(app["workingDirectory"], "/srv/app");
    assert_eq!(
        app["environment"],
        serde_json::json!([{"name": "GREETING", "value": "hello"}, {"name": "LANG", "value": "C"}])
    );
    assert_eq!(app["ports"][0]["port"], 8080);
    assert_eq!(m["dependencies"][0]["imageID"], base.as_str());
    let whitelist: Vec<&str> = m["pathWhitelist"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(whitelist.contains(&"/bin/sh") && !whitelist.contains(&"/bin/vi"));

    // RUN saw ENV and WORKDIR.
    let steps = env.path("steps/rootfs");
    assert_eq!(fs::read(steps.join("srv/app/here")).unwrap(), b"/srv/app\n");
    assert_eq!(
        fs::read(steps.join("srv/app/greeting")).unwrap(),
        b"hello\n"
    );
    assert_eq!(fs::read(steps.join("x")).unwrap(), b"hi\n");

    // The image rendered over the base is the tree the steps produced.
    env.run(["extract", &id, "out"]).ok();
    let diff = env.run(["diff-tree", "--exit-code", "out", "steps"]);
    assert_eq!(diff.code(), 0, "{}{}", diff.stdout(), diff.stderr());
    assert_eq!(leftovers(&env), Vec::<String>::new());

    // Without --keep-tree, the same file gives the same image and leaves
    // nothing behind, not even a build state in the store.
    let again = env.run(["build", "-q", "-f", "Acidofile", "--import"]);
    assert_eq!(again.code(), 0, "{}", again.stderr());
    assert_eq!(leftovers(&env), Vec::<String>::new());
    let builds = fs::read_dir(env.store().join("builds")).unwrap().count();
    assert_eq!(builds, 1, "only the kept tree's build state");
}

#[test]
fn from_scratch_builds_a_base_image() {
    let env = Env::new();
    fs::create_dir_all(env.path("root/etc")).unwrap();
    fs::write(env.path("root/etc/os-release"), "ID=mini\n").unwrap();
    common::pin_times(&env.path("root"));
    fs::write(
        env.path("Acidofile"),
        "FROM scratch\nCOPY root/ /\nNAME example.com/mini\nLABEL version=0.1 os=linux\n\
         USER 1:1\nANNOTATION authors=us\nMOUNT data /data readOnly\n",
    )
    .unwrap();
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    let id = run.ok().trim().to_owned();
    let m = manifest_of(&env, &id);
    assert_eq!(m["name"], "example.com/mini");
    assert!(m.get("dependencies").is_none(), "a base image: {m}");
    assert_eq!(m["app"]["user"], "1");
    assert_eq!(m["app"]["mountPoints"][0]["readOnly"], true);
    assert_eq!(m["annotations"][0]["value"], "us");
    assert_eq!(
        paths_of(&env, &id),
        ["manifest", "rootfs", "rootfs/etc", "rootfs/etc/os-release"]
    );
    assert_eq!(leftovers(&env), Vec::<String>::new());
    assert!(
        !env.store().join("builds").exists()
            || fs::read_dir(env.store().join("builds")).unwrap().count() == 0
    );
}

fn build_error(env: &Env, name: &str, text: &str) {
    fs::write(env.path("Acidofile"), text).unwrap();
    let run = env.run(["build", "-f", "Acidofile", "-o", "out.aci"]);
    assert_eq!(run.code(), 128, "{name}: {}", run.stderr());
    assert!(!env.path("out.aci").exists(), "{name}: no output");
    assert_eq!(
        leftovers(env),
        Vec::<String>::new(),
        "{name}: temp tree removed"
    );
    insta::assert_snapshot!(format!("error_{name}"), snap(env, &run));
}

#[test]
fn errors_name_the_file_line_and_step() {
    let env = Env::new();
    build_error(
        &env,
        "unknown_instruction",
        "FROM scratch\nNAME a\nFROBNICATE now\n",
    );
    build_error(
        &env,
        "missing_from_image",
        "# base\nFROM example.com/nope:2.0\nRUN true\n",
    );
    build_error(&env, "no_from", "RUN true\n");
    build_error(&env, "scratch_without_name", "FROM scratch\nLABEL a=b\n");
    build_error(&env, "bad_label", "FROM scratch\nNAME a\nLABEL version\n");
    build_error(
        &env,
        "invalid_manifest_edit",
        "FROM scratch\nNAME a\nPORT http 0\n",
    );
    build_error(
        &env,
        "missing_copy_source",
        "FROM scratch\nNAME a\nCOPY nope /x\n",
    );
    let no_output = env.run(["build", "-f", "Acidofile"]);
    insta::assert_snapshot!("error_no_output", env.snap(&no_output));
    if !can_run("errors_name_the_file_line_and_step (failing RUN)") {
        return;
    }
    base_image(&env);
    build_error(
        &env,
        "failing_run",
        "FROM example.com/busybox\nENV A=1\nRUN sh -c 'echo failing; exit 3'\nEXEC [\"/bin/sh\"]\n",
    );
    assert!(Path::new(&env.path("base.aci")).exists());
}
