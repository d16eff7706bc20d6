//! CLI tests of the Acidofile step cache (issue 14): what a rebuild runs
//! again, that the image does not depend on the cache, how entries are
//! listed and removed, and that a killed build leaves no entry a later
//! build uses. Steps that `RUN` need root (CI runs as root) and Debian's
//! busybox-static; without them those tests say so and return.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{is_root, manifest, Env, Run};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Whether `RUN` steps can run here; prints why not, and fails in CI.
fn can_run(test: &str) -> bool {
    let why = if !is_root() {
        "RUN steps need root (namespaces, mounts)"
    } else if busybox().is_none() {
        "busybox is not installed (apt-get install busybox-static)"
    } else {
        return true;
    };
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{test}: cannot run in CI: {why}");
    eprintln!("skipping {test}: {why}");
    false
}

/// Stores `example.com/base:1.0`, a tree with /etc and /srv (and, with
/// `with_busybox`, /bin/busybox and its applets, and the mount points
/// `run` needs, so a RUN leaves no trace of them). Returns its id.
fn base_image(env: &Env, with_busybox: bool) -> String {
    let dir = env.layout(
        "base",
        &manifest(
            "example.com/base",
            r#","labels":[{"name":"version","value":"1.0"}]"#,
        ),
        &[("etc/hostname", "base\n"), ("srv/.keep", "")],
    );
    if with_busybox {
        let busybox = busybox().expect("checked by can_run");
        let bin = dir.join("rootfs/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy(&busybox, bin.join("busybox")).unwrap();
        for applet in ["sh", "echo", "cat", "touch", "mkdir", "rm", "chmod"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        for dir in ["proc", "dev", "tmp"] {
            fs::create_dir_all(env.path("base/rootfs").join(dir)).unwrap();
        }
        fs::write(env.path("base/rootfs/etc/resolv.conf"), "").unwrap();
    }
    common::pin_times(&dir);
    env.pack(&dir, "base.aci", "none");
    env.run(["import", "base.aci"]).ok().trim().to_owned()
}

/// The step numbers that ran and those that were cached, from stderr.
#[derive(Debug, PartialEq, Eq)]
struct Steps {
    ran: Vec<usize>,
    cached: Vec<usize>,
}

fn steps(run: &Run) -> Steps {
    let mut steps = Steps {
        ran: Vec::new(),
        cached: Vec::new(),
    };
    for line in run.stderr().lines() {
        let Some(rest) = line.strip_prefix("acido: step ") else {
            continue;
        };
        let Some((number, _)) = rest.split_once('/') else {
            continue;
        };
        let number: usize = number.parse().unwrap();
        if line.ends_with(": cached") {
            steps.cached.push(number);
        } else if line.contains(": done in ") {
            steps.ran.push(number);
        }
    }
    steps
}

fn build(env: &Env, file: &str, extra: &[&str]) -> (String, Steps) {
    let mut args = vec!["build", "-f", file, "--import"];
    args.extend_from_slice(extra);
    let run = env.run(&args);
    let id = run.ok().trim().to_owned();
    (id, steps(&run))
}

fn ran(ran: &[usize], cached: &[usize]) -> Steps {
    Steps {
        ran: ran.to_vec(),
        cached: cached.to_vec(),
    }
}

/// The ids `images` lists (with `--all` when `all`).
fn listed(env: &Env, all: bool) -> Vec<String> {
    let mut args = vec!["images", "--no-abbrev"];
    if all {
        args.push("--all");
    }
    env.run(&args)
        .ok()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

const COPY_ONLY: &str = "FROM example.com/base:1.0\n\
COPY app/ /srv/app/\n\
WORKDIR /srv/app\n\
COPY motd /etc/motd\n\
LABEL version=2.0\n";

fn copy_inputs(env: &Env) {
    fs::create_dir_all(env.path("app/lib")).unwrap();
    fs::write(env.path("app/lib/code"), "code v1\n").unwrap();
    std::os::unix::fs::symlink("lib/code", env.path("app/link")).unwrap();
    fs::write(env.path("motd"), "hello\n").unwrap();
    fs::write(env.path("Acidofile"), COPY_ONLY).unwrap();
}

#[test]
fn an_unchanged_rebuild_runs_no_step_and_gives_the_same_image() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    let (first, steps1) = build(&env, "Acidofile", &[]);
    assert_eq!(steps1, ran(&[2, 3, 4], &[]));
    let again = env.run(["build", "-f", "Acidofile", "-o", "again.aci"]);
    let second = again.ok().trim().to_owned();
    assert_eq!(steps(&again), ran(&[], &[2, 3, 4]));
    assert_eq!(second, first);
    assert!(
        again.stderr().contains("every step cached: reusing"),
        "{}",
        again.stderr()
    );
    // The reused image is written out whole.
    assert_eq!(env.run(["hash-object", "again.aci"]).ok().trim(), first);
}

#[test]
fn the_image_is_the_same_whether_steps_were_cached_or_not() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    build(&env, "Acidofile", &[]);
    // The last COPY changes: steps 2 and 3 come from the cache.
    fs::write(env.path("motd"), "changed\n").unwrap();
    let (cached, steps2) = build(&env, "Acidofile", &[]);
    assert_eq!(steps2, ran(&[4], &[2, 3]));
    let uncached = env.run(["build", "-f", "Acidofile", "-o", "fresh.aci", "--no-cache"]);
    // FROM renders at once: nothing after it comes from the cache.
    assert_eq!(steps(&uncached), ran(&[1, 2, 3, 4], &[]));
    assert_eq!(uncached.ok().trim(), cached);
    // And the image is the diff against FROM, not against a cache entry.
    let m: serde_json::Value =
        serde_json::from_str(&env.run(["cat-manifest", &cached]).ok()).unwrap();
    assert_eq!(m["dependencies"][0]["imageName"], "example.com/base");
    assert_eq!(m["labels"][0]["value"], "2.0");
    assert!(m["labels"].as_array().unwrap().len() == 1, "{m}");
}

#[test]
fn editing_a_copied_file_reruns_that_copy_and_what_follows_only() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    let (first, _) = build(&env, "Acidofile", &[]);
    fs::write(env.path("app/lib/code"), "code v2\n").unwrap();
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    assert_eq!(steps(&run), ran(&[2, 3, 4], &[]));
    // The new image takes its name from the first: said once, for the
    // final image only (the steps' entries are never looked up by name).
    let warning = format!("the store already holds {first} as ");
    let stderr = run.stderr();
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert_eq!(stderr.matches("already holds").count(), 1, "{stderr}");
    // A new file name, a new mode, a new link target: each a miss.
    for change in [
        &(|env: &Env| fs::write(env.path("app/new"), "").unwrap()) as &dyn Fn(&Env),
        &|env: &Env| {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::Permissions::from_mode(0o600);
            fs::set_permissions(env.path("app/lib/code"), mode).unwrap()
        },
        &|env: &Env| {
            fs::remove_file(env.path("app/link")).unwrap();
            std::os::unix::fs::symlink("lib", env.path("app/link")).unwrap()
        },
    ] {
        change(&env);
        let (_, steps) = build(&env, "Acidofile", &[]);
        assert_eq!(steps, ran(&[2, 3, 4], &[]));
    }
}

#[test]
fn touching_a_copied_file_or_changing_its_owner_is_a_hit() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    let (first, _) = build(&env, "Acidofile", &[]);
    let touch = Command::new("touch")
        .args(["-h", "-d", "@1234567890"])
        .arg(env.path("motd"))
        .arg(env.path("app/lib/code"))
        .arg(env.path("app"))
        .status()
        .unwrap();
    assert!(touch.success());
    if is_root() {
        std::os::unix::fs::lchown(env.path("motd"), Some(4321), Some(4321)).unwrap();
    }
    let (second, steps) = build(&env, "Acidofile", &[]);
    assert_eq!(steps, ran(&[], &[2, 3, 4]));
    assert_eq!(second, first);
    // COPY sets owner and time itself, so no build ever sees the host's.
    let fresh = env.run(["build", "-f", "Acidofile", "-o", "fresh.aci", "--no-cache"]);
    assert_eq!(fresh.ok().trim(), first);
}

#[test]
fn build_files_sharing_a_prefix_share_its_steps() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    build(&env, "Acidofile", &[]);
    // Same first steps, spelled differently; then something else.
    fs::write(
        env.path("Other"),
        "# another image\nfrom   example.com/base:1.0\nCOPY  \"app/\" /srv/app/\n\
         WORKDIR /srv/app\nCOPY motd /etc/motd2\n",
    )
    .unwrap();
    let (_, steps) = build(&env, "Other", &[]);
    assert_eq!(steps, ran(&[4], &[2, 3]));
}

#[test]
fn rebuild_from_reruns_from_that_step() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    let (first, _) = build(&env, "Acidofile", &[]);
    let (again, steps) = build(&env, "Acidofile", &["--rebuild-from", "3"]);
    assert_eq!(steps, ran(&[3, 4], &[2]));
    assert_eq!(again, first);
    let bad = env.run([
        "build",
        "-f",
        "Acidofile",
        "--import",
        "--rebuild-from",
        "9",
    ]);
    assert_eq!(bad.code(), 128);
    assert!(
        bad.stderr()
            .contains("Acidofile: --rebuild-from 9: the file has 5 steps"),
        "{}",
        bad.stderr()
    );
}

#[test]
fn entries_are_listed_with_all_kept_by_gc_and_removed_by_gc_cache_or_rm() {
    let env = Env::new();
    let base = base_image(&env, false);
    copy_inputs(&env);
    let (image, _) = build(&env, "Acidofile", &[]);
    assert_eq!(listed(&env, false), [base.clone(), image.clone()]);
    let all = listed(&env, true);
    // Three step entries and the pointer to the image.
    assert_eq!(all.len(), 6, "{all:?}");

    // No image removed. (Where the build ran on an overlay tree, the
    // rendering of the base it mounted stays in the tree cache unused,
    // and that is all gc takes.)
    let gc = env.run(["gc"]);
    let out = gc.ok();
    assert!(
        out.lines().all(|l| l.starts_with("removed tree trees/")),
        "{out}"
    );
    if out.is_empty() {
        assert_eq!(gc.stderr(), "gc: removed 0 files, 0 bytes\n");
    }
    assert_eq!(listed(&env, true), all);
    let (_, steps) = build(&env, "Acidofile", &[]);
    assert_eq!(steps, ran(&[], &[2, 3, 4]));

    // rm of the image takes the pointer with it, not the steps.
    let removed = env.run(["rm", &image]).ok();
    assert_eq!(removed.lines().count(), 2, "{removed}");
    assert_eq!(listed(&env, true).len(), 4);

    let gc = env.run(["gc", "--cache"]).ok();
    assert_eq!(gc.matches("removed cache blobs/sha512/").count(), 3, "{gc}");
    assert_eq!(listed(&env, true), std::slice::from_ref(&base));
    let (_, steps) = build(&env, "Acidofile", &[]);
    assert_eq!(steps, ran(&[2, 3, 4], &[]));

    // An entry a real image depends on stays.
    let entry = listed(&env, true)
        .into_iter()
        .find(|id| *id != base && !listed(&env, false).contains(id))
        .unwrap();
    env.run(["startbuild", &entry, "tree"]).ok();
    // As a user would, the new image gets a name of its own.
    let path = env.path("tree/manifest");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    m["name"] = "example.com/derived".into();
    m["labels"] = serde_json::json!([]);
    fs::write(&path, m.to_string()).unwrap();
    env.run(["build", "--import", "tree"]).ok();
    let gc = env.run(["gc", "--cache"]);
    gc.ok();
    assert!(
        gc.stderr()
            .contains("gc: left 1 cache entry other images depend on"),
        "{}",
        gc.stderr()
    );
    assert!(listed(&env, true).contains(&entry));
}

/// The overlay mounts below the test's `$TMPDIR` in the mount namespace
/// of `pid` (`None`: this test's own).
fn overlay_mounts(env: &Env, pid: Option<u32>) -> usize {
    let tmp = fs::canonicalize(env.path("tmp")).unwrap();
    let info = match pid {
        Some(pid) => format!("/proc/{pid}/mountinfo"),
        None => "/proc/self/mountinfo".to_owned(),
    };
    fs::read_to_string(info)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" - overlay "))
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| std::path::Path::new(m).starts_with(&tmp))
        })
        .count()
}

/// Removes the work directories a killed `build -f` left in `$TMPDIR`.
fn remove_killed_trees(env: &Env) {
    for entry in fs::read_dir(env.path("tmp")).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("acido-acidofile-")
        {
            fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}

/// A running `acido build -f` paused at `step` by the test hook.
fn paused_build(env: &Env, step: &str) -> std::process::Child {
    let marker = env.path("paused");
    let _ = fs::remove_file(&marker);
    let mut child = env
        .command()
        .args(["build", "-f", "Acidofile", "--import"])
        .env("ACIDO_TEST_PAUSE_AT", step)
        .env("ACIDO_TEST_PAUSE_FILE", &marker)
        .env("ACIDO_TEST_PAUSE_SECS", "60")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("acido ended ({status}) before pausing at {step}: built without test-hooks?");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never paused");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn a_killed_build_leaves_no_entry_that_is_used() {
    let env = Env::new();
    let overlays = nix::unistd::geteuid().is_root()
        && can_mount_overlays("a_killed_build_leaves_no_entry_that_is_used");
    base_image(&env, false);
    copy_inputs(&env);
    let expected = env
        .run([
            "build",
            "-f",
            "Acidofile",
            "-o",
            "expected.aci",
            "--no-cache",
        ])
        .ok();
    env.run(["gc", "--cache"]).ok();
    // Killed while packing the first entry, and after its blob is in
    // place but before its record is.
    for step in ["pack-mid-write", "after-link-before-record"] {
        let mut child = paused_build(&env, step);
        // As root the steps run in an overlay tree, mounted in the
        // build's own mount namespace: seen by nothing else, gone with it.
        if overlays {
            assert!(
                overlay_mounts(&env, Some(child.id())) > 0,
                "{step}: the steps do not run in an overlay tree"
            );
        }
        assert_eq!(overlay_mounts(&env, None), 0, "{step}: seen outside");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        assert_eq!(overlay_mounts(&env, None), 0, "{step}: a mount was left");
        remove_killed_trees(&env);
        assert_eq!(
            listed(&env, true).len(),
            1,
            "{step}: only the base is listed"
        );
        let (id, steps) = build(&env, "Acidofile", &[]);
        assert_eq!(steps, ran(&[2, 3, 4], &[]), "{step}");
        assert_eq!(id, expected.trim(), "{step}");
        env.run(["gc", "--cache"]).ok();
        env.run(["rm", &id]).ok();
    }
    let fsck = env.run(["fsck"]);
    assert!(fsck.code() == 0 || fsck.code() == 1, "{}", fsck.stderr());
}

#[test]
fn run_steps_are_cached_by_env_user_and_workdir() {
    if !can_run("run_steps_are_cached_by_env_user_and_workdir") {
        return;
    }
    let env = Env::new();
    base_image(&env, true);
    fs::write(env.path("motd"), "hello\n").unwrap();
    // Deterministic RUN steps: they fix the times of all they touch.
    let file = |greeting: &str| {
        format!(
            "FROM example.com/base:1.0\n\
             RUN sh -c 'echo one > /srv/one; touch -d @1600000000 /srv/one /srv'\n\
             ENV GREETING={greeting}\n\
             RUN sh -c 'echo $GREETING > /srv/two; touch -d @1600000000 /srv/two /srv'\n\
             COPY motd /etc/motd\n\
             NAME example.com/app\n"
        )
    };
    fs::write(env.path("Acidofile"), file("hi")).unwrap();
    let (first, steps1) = build(&env, "Acidofile", &[]);
    assert_eq!(steps1, ran(&[2, 4, 5], &[]));
    let (second, steps2) = build(&env, "Acidofile", &[]);
    assert_eq!(steps2, ran(&[], &[2, 4, 5]));
    assert_eq!(second, first);

    // The ENV before the second RUN changes: it runs again, the first not.
    fs::write(env.path("Acidofile"), file("hello")).unwrap();
    let (changed, steps3) = build(&env, "Acidofile", &[]);
    assert_eq!(steps3, ran(&[4, 5], &[2]));
    let fresh = env.run(["build", "-f", "Acidofile", "-o", "fresh.aci", "--no-cache"]);
    assert_eq!(steps(&fresh), ran(&[1, 2, 4, 5], &[]));
    assert_eq!(fresh.ok().trim(), changed, "deterministic RUNs: same image");
    env.run(["extract", &changed, "out"]).ok();
    assert_eq!(
        fs::read(env.path("out/rootfs/srv/two")).unwrap(),
        b"hello\n"
    );

    // Only the copied file changes: the RUNs are not run again.
    fs::write(env.path("motd"), "bye\n").unwrap();
    let (_, steps4) = build(&env, "Acidofile", &[]);
    assert_eq!(steps4, ran(&[5], &[2, 4]));
}

#[test]
fn a_kept_tree_of_a_cached_build_builds_the_same_image() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    build(&env, "Acidofile", &[]);
    fs::write(env.path("motd"), "changed\n").unwrap();
    for (tree, steps_expected) in [
        ("kept1", ran(&[4], &[2, 3])),
        ("kept2", ran(&[], &[2, 3, 4])),
    ] {
        let (id, steps) = build(&env, "Acidofile", &["--keep-tree", tree]);
        assert_eq!(steps, steps_expected, "{tree}");
        // The kept tree is the image's: built on its own, and rendered.
        let again = env.run([
            "build",
            &env.path(tree).to_string_lossy(),
            &format!("{tree}.aci"),
        ]);
        assert_eq!(again.ok().trim(), id, "{tree}");
        env.run(["extract", &id, &format!("{tree}.out")]).ok();
        let diff = env.run(["diff-tree", "--exit-code", &format!("{tree}.out"), tree]);
        assert_eq!(diff.code(), 0, "{tree}: {}", diff.stdout());
    }
}

#[test]
fn from_scratch_is_cached_too_and_a_failed_step_stores_nothing() {
    let env = Env::new();
    copy_inputs(&env);
    fs::write(
        env.path("Acidofile"),
        "FROM scratch\nCOPY app/ /app/\nCOPY nope /nope\nNAME example.com/mini\n",
    )
    .unwrap();
    let failed = env.run(["build", "-f", "Acidofile", "--import"]);
    assert_eq!(failed.code(), 128, "{}", failed.stderr());
    // Only the step that succeeded left an entry.
    assert_eq!(listed(&env, true).len(), 1);
    fs::write(env.path("nope"), "now here\n").unwrap();
    let (first, steps1) = build(&env, "Acidofile", &[]);
    assert_eq!(steps1, ran(&[3], &[2]));
    let (second, steps2) = build(&env, "Acidofile", &[]);
    assert_eq!(steps2, ran(&[], &[2, 3]));
    assert_eq!(second, first);
    let fresh = env.run(["build", "-f", "Acidofile", "-o", "fresh.aci", "--no-cache"]);
    assert_eq!(fresh.ok().trim(), first);
}

#[test]
fn an_image_built_on_a_cache_entry_is_no_cache_entry() {
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    build(&env, "Acidofile", &[]);
    let users = listed(&env, false);
    let entry = listed(&env, true)
        .into_iter()
        .find(|id| !users.contains(id))
        .unwrap();
    let shown = env.run(["cat-manifest", &entry]).ok();
    assert!(shown.contains("acido-cache-key"), "{shown}");
    // Built on the entry as it is, manifest untouched.
    env.run(["startbuild", &entry, "tree"]).ok();
    fs::write(env.path("tree/rootfs/new"), "new\n").unwrap();
    let built = env
        .run(["build", "--import", "tree"])
        .ok()
        .trim()
        .to_owned();
    let manifest = env.run(["cat-manifest", &built]).ok();
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    // Its own labels and annotations (its dependency names the entry by
    // id and labels, as every dependency does).
    let own = format!("{} {}", m["labels"], m["annotations"]);
    assert!(!own.contains("acido-cache-key"), "{manifest}");
    assert!(!own.contains("acido-step"), "{manifest}");
    // So it is the user's: listed, and gc --cache leaves it.
    assert!(listed(&env, false).contains(&built));
    env.run(["gc", "--cache"]).ok();
    assert!(listed(&env, false).contains(&built));
    assert!(listed(&env, true).contains(&entry), "its dependency stays");
}

/// Whether overlays can be mounted here; prints why not, and fails in CI.
fn can_mount_overlays(test: &str) -> bool {
    let listed = fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    if listed {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{test}: cannot run in CI: no overlayfs in /proc/filesystems"
    );
    eprintln!("skipping {test}: no overlayfs in /proc/filesystems");
    false
}

/// Deterministic steps that stack: later RUNs change, delete and replace
/// what earlier ones made (a directory by a file and the other way round,
/// one member of a hard-link group), and what the base has; on an overlay
/// each step is a layer, so the final image reads them all together.
const STACKED: &str = "FROM example.com/base:1.0\n\
RUN sh -c 'mkdir -p /srv/a/b; echo one > /srv/a/b/f; echo x > /srv/a/g; touch -d @1600000000 /srv/a/b/f /srv/a/g /srv/a/b /srv/a /srv'\n\
RUN sh -c 'mkdir /srv/h /srv/t; echo l > /srv/h/one; busybox ln /srv/h/one /srv/h/two; busybox ln /srv/h/one /srv/h/three; echo t > /srv/t/x; echo f > /srv/f; touch -d @1600000000 /srv/h/one /srv/h /srv/t/x /srv/t /srv/f /srv'\n\
RUN sh -c 'echo two >> /srv/a/b/f; rm /srv/a/g /etc/hostname; touch -d @1600000000 /srv/a/b/f /srv/a /etc'\n\
COPY app/ /srv/app/\n\
RUN sh -c 'rm -rf /srv/a; mkdir /srv/a; echo new > /srv/a/h; chmod 600 /srv/app/lib/code; rm /srv/h/three; rm -r /srv/t; echo file > /srv/t; rm /srv/f; mkdir /srv/f; echo in > /srv/f/y; touch -d @1600000000 /srv/a/h /srv/a /srv/h /srv/t /srv/f/y /srv/f /srv'\n\
COPY motd /etc/motd\n\
NAME example.com/app\n";

/// A build of the Acidofile, on plain trees when `plain`.
fn build_trees(env: &Env, plain: bool, extra: &[&str]) -> (String, Steps) {
    let mut cmd = env.command();
    cmd.args(["build", "-f", "Acidofile", "--import"])
        .args(extra);
    if plain {
        cmd.env("ACIDO_TEST_PLAIN_TREES", "1");
    }
    let output = cmd.output().unwrap();
    let run = Run {
        args: vec!["build".into(), "-f".into(), format!("plain={plain}")],
        output,
    };
    (run.ok().trim().to_owned(), steps(&run))
}

/// The store's tree-cache entries (an overlay build's lower directories).
fn cached_trees(env: &Env) -> usize {
    fs::read_dir(env.store().join("trees"))
        .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
        .unwrap_or(0)
}

/// The store's step layers.
fn layers(env: &Env) -> usize {
    fs::read_dir(env.store().join("layers"))
        .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
        .unwrap_or(0)
}

/// Nothing of a build tree is left: no mount under the test's directory,
/// no build state.
fn no_tree_left(env: &Env) {
    let dir = fs::canonicalize(env.path("")).unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    assert!(
        !mounts.contains(dir),
        "a mount is left under {dir}:\n{mounts}"
    );
    let builds: Vec<_> = fs::read_dir(env.store().join("builds"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(builds.is_empty(), "build state left: {builds:?}");
}

#[test]
fn steps_build_the_same_images_on_overlay_and_plain_trees() {
    let test = "steps_build_the_same_images_on_overlay_and_plain_trees";
    if !can_run(test) || !can_mount_overlays(test) {
        return;
    }
    let plain = Env::new();
    let overlay = Env::new();
    for env in [&plain, &overlay] {
        base_image(env, true);
        copy_inputs(env);
        fs::write(env.path("Acidofile"), STACKED).unwrap();
    }
    let sorted = |env: &Env| {
        let mut all = listed(env, true);
        all.sort();
        all
    };
    let check = |what: &str, expect: Steps, extra: &[&str]| {
        let (a, steps_a) = build_trees(&plain, true, extra);
        let (b, steps_b) = build_trees(&overlay, false, extra);
        assert_eq!(steps_a, expect, "{what}: plain");
        assert_eq!(steps_b, expect, "{what}: overlay");
        assert_eq!(a, b, "{what}: the same image");
        // The same entries under the same keys: ids are the entries'
        // bytes, and each holds its key in its manifest.
        assert_eq!(sorted(&plain), sorted(&overlay), "{what}: the same entries");
        no_tree_left(&plain);
        no_tree_left(&overlay);
        a
    };
    let first = check("first", ran(&[2, 3, 4, 5, 6, 7], &[]), &[]);
    // The overlay build mounted its steps over the base's cached
    // rendering; the plain one rendered it into its tree.
    assert_eq!(cached_trees(&plain), 0);
    assert_eq!(cached_trees(&overlay), 1);
    env_extract_is(&overlay, &first, "srv/a/h", "new\n");
    env_extract_is(&overlay, &first, "srv/t", "file\n");
    env_extract_is(&overlay, &first, "srv/f/y", "in\n");
    env_extract_is(&overlay, &first, "srv/h/two", "l\n");

    // Each step stored on the overlay left its layer; none on plain trees.
    assert_eq!(layers(&plain), 0);
    assert_eq!(layers(&overlay), 6);

    // From a cached step: the overlay mounts the layers of steps 2 and 3
    // over the base's cached rendering, and renders nothing.
    fs::write(plain.path("app/lib/code"), "code v2\n").unwrap();
    fs::write(overlay.path("app/lib/code"), "code v2\n").unwrap();
    let edited = check("edited", ran(&[5, 6, 7], &[2, 3, 4]), &[]);
    assert_ne!(edited, first);
    assert_eq!(cached_trees(&overlay), 1, "the cached step was rendered");
    assert_eq!(layers(&overlay), 9);
    env_extract_is(&overlay, &edited, "srv/app/lib/code", "code v2\n");
    // Every layer is still what was sealed, whiteouts included (they are
    // links of one inode the overlay keeps in its work directory).
    let fsck = overlay.run(["fsck"]);
    assert_eq!(fsck.code(), 0, "{}", fsck.stdout());

    // Everything run again gives the same image as the cached steps.
    let fresh = check(
        "no cache",
        ran(&[1, 2, 3, 4, 5, 6, 7], &[]),
        &["--no-cache"],
    );
    assert_eq!(fresh, edited);
}

/// `path` in the rootfs of the stored image `id` holds `text`.
fn env_extract_is(env: &Env, id: &str, path: &str, text: &str) {
    let out = format!("out-{}", &id[7..19]);
    if !env.path(&out).exists() {
        env.run(["extract", id, &out]).ok();
    }
    let got = fs::read_to_string(env.path(&format!("{out}/rootfs/{path}"))).unwrap();
    assert_eq!(got, text, "{path} in {id}");
}

/// Whether overlay build trees can be used here (root and overlayfs);
/// prints why not, and fails in CI.
fn can_use_overlays(test: &str) -> bool {
    if !is_root() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!ci, "{test}: cannot run in CI: overlay trees need root");
        eprintln!("skipping {test}: overlay trees need root");
        return false;
    }
    can_mount_overlays(test)
}

/// The temps in the store's `layers/`.
fn layer_temps(env: &Env) -> Vec<String> {
    fs::read_dir(env.store().join("layers"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".acido-render-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_build_killed_while_storing_a_layer_leaves_none_that_is_used() {
    let test = "a_build_killed_while_storing_a_layer_leaves_none_that_is_used";
    if !can_use_overlays(test) {
        return;
    }
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    let expected = env
        .run([
            "build",
            "-f",
            "Acidofile",
            "-o",
            "expected.aci",
            "--no-cache",
        ])
        .ok();
    env.run(["gc", "--cache"]).ok();
    assert_eq!(
        layers(&env),
        0,
        "gc --cache took the layers with the entries"
    );

    // Killed with the first step's entry stored and its layer sealed in a
    // temp, not yet renamed into place.
    let mut child = paused_build(&env, "layer-before-publish");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    remove_killed_trees(&env);
    assert_eq!(layers(&env), 0, "a layer was published");
    assert_eq!(layer_temps(&env).len(), 1, "the killed build's temp");

    // The entry is used; it has no layer, so it is rendered, and the
    // temp is never mounted (this build sweeps it).
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    assert_eq!(steps(&run), ran(&[3, 4], &[2]));
    assert_eq!(run.ok().trim(), expected.trim());
    assert!(
        !run.stderr().contains("step layers mounted"),
        "{}",
        run.stderr()
    );
    assert!(layer_temps(&env).is_empty(), "{:?}", layer_temps(&env));
    assert_eq!(layers(&env), 2, "the steps that ran left their layers");
    let fsck = env.run(["fsck"]);
    assert_eq!(fsck.code(), 0, "{}{}", fsck.stdout(), fsck.stderr());
    assert!(
        fsck.stderr().contains("; 2 step layers"),
        "{}",
        fsck.stderr()
    );
}

/// The hex digits of a stored cache entry that has a layer.
fn layered_entry(env: &Env) -> String {
    let images = listed(env, false);
    listed(env, true)
        .into_iter()
        .filter(|id| !images.contains(id))
        .map(|id| id["sha512-".len()..].to_owned())
        .find(|hex| env.store().join("layers").join(&hex[..64]).is_dir())
        .expect("an entry with a layer")
}

#[test]
fn step_layers_go_with_their_entries_and_fsck_checks_their_seals() {
    let test = "step_layers_go_with_their_entries_and_fsck_checks_their_seals";
    if !can_use_overlays(test) {
        return;
    }
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    let (first, _) = build(&env, "Acidofile", &[]);
    assert_eq!(layers(&env), 3);

    // An edit of the last copied file mounts the first two steps' layers
    // and renders no cached step.
    fs::write(env.path("motd"), "hello again\n").unwrap();
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    assert_eq!(steps(&run), ran(&[4], &[2, 3]));
    assert!(
        run.stderr().contains(": 2 step layers mounted"),
        "{}",
        run.stderr()
    );
    assert_eq!(cached_trees(&env), 1, "only the base's render");
    let edited = run.ok().trim().to_owned();
    assert_ne!(edited, first);
    assert_eq!(layers(&env), 4);
    // The same image as a build that ran every step.
    let (fresh, _) = build(&env, "Acidofile", &["--no-cache"]);
    assert_eq!(fresh, edited);

    // While a build stacks the layers, rm of their entries is refused.
    fs::write(env.path("motd"), "hello a third time\n").unwrap();
    let mut child = paused_build(&env, "pack-mid-write");
    let state = fs::read_dir(env.store().join("builds"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("state.json"))
        .find(|p| p.is_file())
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&fs::read(state).unwrap()).unwrap();
    let stacked = state["layers"][0]["id"].as_str().unwrap().to_owned();
    let refused = env.run(["rm", &stacked]);
    assert_eq!(refused.code(), 128);
    assert!(
        refused
            .stderr()
            .contains("its step layer is stacked by the build tree"),
        "{}",
        refused.stderr()
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    remove_killed_trees(&env);
    env.run(["gc"]).ok();
    fs::write(env.path("motd"), "hello again\n").unwrap();

    // plain gc keeps every layer: their entries are stored.
    let gc = env.run(["gc"]).ok();
    assert!(!gc.contains("removed layer"), "{gc}");
    assert_eq!(layers(&env), 4);

    // A layer written through breaks its seal: fsck reports it and
    // --repair removes it; the next build renders that step's state.
    let layer = fs::read_dir(env.store().join("layers"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().len() == 64)
        .unwrap()
        .path();
    fs::write(layer.join("upper/intruder"), "x").unwrap();
    let fsck = env.run(["fsck"]);
    assert_eq!(fsck.code(), 1);
    assert!(
        fsck.stdout().contains("bad-layer\tlayers/"),
        "{}",
        fsck.stdout()
    );
    env.run(["fsck", "--repair"]);
    assert_eq!(env.run(["fsck"]).code(), 0);
    assert_eq!(layers(&env), 3);

    // gc --cache takes every entry and its layer; an orphan layer (its
    // entry removed behind the store's back) goes with plain gc.
    env.run(["gc", "--cache"]).ok();
    assert_eq!(layers(&env), 0);
    build(&env, "Acidofile", &[]);
    assert_eq!(layers(&env), 3);
    let hex = layered_entry(&env);
    fs::remove_file(
        env.store()
            .join(format!("blobs/sha512/{}/{hex}", &hex[..2])),
    )
    .unwrap();
    let gc = env.run(["gc"]).ok();
    assert!(
        gc.contains(&format!("removed layer layers/{} ", &hex[..64])),
        "{gc}"
    );

    // rm of an entry removes its layer.
    let before = layers(&env);
    let hex = layered_entry(&env);
    env.run(["rm", "--force", &format!("sha512-{hex}")]).ok();
    assert!(!env.store().join("layers").join(&hex[..64]).exists());
    assert!(layers(&env) < before);
}

#[test]
fn a_layer_changed_since_its_seal_is_never_mounted() {
    let test = "a_layer_changed_since_its_seal_is_never_mounted";
    if !can_use_overlays(test) {
        return;
    }
    let env = Env::new();
    base_image(&env, false);
    copy_inputs(&env);
    build(&env, "Acidofile", &[]);
    assert_eq!(layers(&env), 3);
    // Every layer written through behind the store's back: mounted, the
    // intruder would be in the tree and in the image.
    for entry in fs::read_dir(env.store().join("layers")).unwrap().flatten() {
        if entry.file_name().len() == 64 {
            fs::write(entry.path().join("upper/intruder"), "x").unwrap();
        }
    }
    fs::write(env.path("motd"), "hello again\n").unwrap();
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    assert_eq!(steps(&run), ran(&[4], &[2, 3]));
    assert!(
        !run.stderr().contains("step layers mounted"),
        "{}",
        run.stderr()
    );
    let edited = run.ok().trim().to_owned();
    // The image is the one of a build that ran every step: that build
    // found the changed layers under its steps' names and replaced them
    // instead of stacking them.
    let (fresh, _) = build(&env, "Acidofile", &["--no-cache"]);
    assert_eq!(fresh, edited);
    // So the next edit mounts sound layers again, and gets it right.
    fs::write(env.path("motd"), "hello a third time\n").unwrap();
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    assert!(
        run.stderr().contains(": 2 step layers mounted"),
        "{}",
        run.stderr()
    );
    let third = run.ok().trim().to_owned();
    let (fresh, _) = build(&env, "Acidofile", &["--no-cache"]);
    assert_eq!(fresh, third);
}

#[test]
fn more_layers_than_one_page_of_mount_options_are_mounted_one_by_one() {
    let test = "more_layers_than_one_page_of_mount_options_are_mounted_one_by_one";
    if !can_use_overlays(test) {
        return;
    }
    let env = Env::new();
    base_image(&env, false);
    // Sixty steps: their layers' paths take more than the one page of
    // options mount(2) copies.
    let count = 60;
    let mut file = String::from("FROM example.com/base:1.0\n");
    for i in 1..=count {
        fs::write(env.path(&format!("f{i}")), format!("{i}\n")).unwrap();
        file += &format!("COPY f{i} /srv/f{i}\n");
    }
    file += "NAME example.com/app\n";
    fs::write(env.path("Acidofile"), file).unwrap();
    let (first, _) = build(&env, "Acidofile", &[]);
    assert_eq!(layers(&env), count);
    let layers_dir = fs::canonicalize(env.store().join("layers")).unwrap();
    // ':' + layers/<64 hex>/upper, for every layer below the last step.
    let per_layer = layers_dir.as_os_str().len() + 1 + 64 + "/upper".len() + 1;
    assert!(
        (count - 1) * per_layer > 4096,
        "the test's paths are too short to need more than a page"
    );

    fs::write(env.path(&format!("f{count}")), "edited\n").unwrap();
    let run = env.run(["build", "-f", "Acidofile", "--import"]);
    let cached: Vec<usize> = (2..=count).collect();
    assert_eq!(steps(&run), ran(&[count + 1], &cached));
    assert!(
        run.stderr()
            .contains(&format!(": {} step layers mounted", count - 1)),
        "{}",
        run.stderr()
    );
    assert_eq!(cached_trees(&env), 1, "only the base's render");
    let edited = run.ok().trim().to_owned();
    assert_ne!(edited, first);
    env_extract_is(&env, &edited, &format!("srv/f{count}"), "edited\n");
    let (fresh, _) = build(&env, "Acidofile", &["--no-cache"]);
    assert_eq!(fresh, edited);
    no_tree_left(&env);
}
