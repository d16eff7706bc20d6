//! Store faults (issue 5): SIGKILL at each step of an import, a render
//! killed or interrupted mid-way, SIGINT during an import, a full disk, a
//! read-only store, `gc` beside an import and a render, a stale lock left
//! by a killed process, concurrent imports of different images, and a
//! blob replaced by a symlink. tests/store_commands.rs has the bit flip,
//! the fifo, a kill mid-stream through stdin and eight imports of one
//! image.
//!
//! The crash points come from the test hook (`acido_porcelain::test_hooks`,
//! compiled into the binary `cargo test` builds through the root crate's
//! dev-dependency feature `test-hooks`): with `ACIDO_TEST_PAUSE_AT=STEP`
//! an import, render or pack reaching STEP creates `$ACIDO_TEST_PAUSE_FILE`
//! and sleeps, and the test kills or interrupts it there.
//! Cases that need root (mounts) skip with a printed reason otherwise.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{blob, index, manifest, record, Env, Run};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Snapshot with import times redacted.
macro_rules! snap {
    ($name:expr, $text:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{9})?Z", "[TIME]");
        settings.add_filter(r"tmp/import-[A-Za-z0-9]+", "tmp/import-[RANDOM]");
        // Blob paths spell the id, which depends on the packing uid.
        settings.add_filter(r"sha512/[0-9a-f]{2}/[0-9a-f]{128}", "sha512/[FAN]/[HEX]");
        settings.bind(|| insta::assert_snapshot!($name, $text));
    }};
}

/// Deterministic data that does not compress much: hex of an LCG.
fn noise(len: usize) -> String {
    let mut data = String::with_capacity(len + 8);
    let mut x: u32 = 7;
    while data.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.push_str(&format!("{x:08x}"));
    }
    data.truncate(len);
    data
}

/// Packs a plain-tar image at `rel` and returns (path, id).
fn image(env: &Env, rel: &str, name: &str, files: &[(&str, &str)]) -> (PathBuf, String) {
    let layout = env.layout(rel, &manifest(name, ""), files);
    let out = format!("{rel}.aci");
    let id = env.pack(&layout, &out, "none");
    (env.path(&out), id)
}

/// A 12 MiB image: larger than the decoder reads ahead (about 6 MiB), so
/// a pause after the first chunk is truly mid-stream.
fn big_image(env: &Env) -> (PathBuf, String) {
    let data = noise(12 << 20);
    image(
        env,
        "big",
        "example.com/big",
        &[("big", &data), ("small", "small\n")],
    )
}

fn tmp_count(store: &Path) -> usize {
    fs::read_dir(store.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Every file in the store with its kind, size and content hash.
fn store_listing(store: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(store).sort_by_file_name() {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let content = if meta.is_file() {
            common::id_of(&fs::read(entry.path()).unwrap())
        } else {
            String::new()
        };
        lines.push(format!(
            "{} {:o} {} {content}",
            entry.path().strip_prefix(store).unwrap().display(),
            meta.mode(),
            if meta.is_dir() { 0 } else { meta.len() }
        ));
    }
    lines
}

fn pid(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap())
}

fn finish(args: &[&str], child: Child) -> Run {
    Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        output: child.wait_with_output().unwrap(),
    }
}

/// Starts `acido ARGS` with the pause hook at `step`.
fn spawn_paused(env: &Env, args: &[&str], step: &str, secs: u32) -> Child {
    let marker = env.path("paused");
    let _ = fs::remove_file(&marker);
    env.command()
        .args(args)
        .env("ACIDO_TEST_PAUSE_AT", step)
        .env("ACIDO_TEST_PAUSE_FILE", &marker)
        .env("ACIDO_TEST_PAUSE_SECS", secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the paused child has written its marker.
fn wait_paused(env: &Env, child: &mut Child) {
    let start = Instant::now();
    while !env.path("paused").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            // Also what a binary built without the porcelain feature
            // `test-hooks` does: it never pauses, and the test must fail.
            panic!(
                "acido ended ({status}) before pausing: was it built without \
                 acido-porcelain's `test-hooks` feature?"
            );
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never paused");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sigkill(child: &mut Child) {
    kill(pid(child), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

/// Every case again as a normal user (issue 5: CI runs as root): the
/// mount cases skip there, the read-only store is read-only by its
/// permissions.
#[test]
fn every_case_again_as_a_normal_user() {
    // Only root can mount the tmpfs a full disk needs: the root run mounts
    // one of each size, owned by nobody, and lends them to the re-run.
    let lent = tempfile::tempdir().unwrap();
    let mut mounts = Vec::new();
    let mut envs = Vec::new();
    if common::is_root() && !common::is_nobody_rerun() {
        fs::set_permissions(
            lent.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        for size in TMPFS_SIZES {
            let dir = lent.path().join(size);
            fs::create_dir(&dir).unwrap();
            let nobody = common::NOBODY;
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size},uid={nobody},gid={nobody},mode=0755"))
                .arg("tmpfs")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                mounts.push(Mount(dir.clone()));
                envs.push((lent_tmpfs_var(size), dir.into_os_string()));
            }
        }
    }
    let skips: &[&str] = if envs.len() == TMPFS_SIZES.len() {
        &[]
    } else {
        &["skipped: mounting a tmpfs needs root"]
    };
    let envs: Vec<(&str, &std::ffi::OsStr)> = envs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_os_str()))
        .collect();
    common::rerun_as_nobody_with("every_case_again_as_a_normal_user", skips, &envs);
    drop(mounts);
}

#[test]
fn sigkill_at_each_import_step_then_gc_fsck_and_retry() {
    let steps = [
        "after-temp-create",
        "mid-stream",
        "before-link",
        "after-link-before-record",
    ];
    for step in steps {
        let env = Env::new();
        let (_, base) = image(&env, "base", "example.com/base", &[("a", "a\n")]);
        env.run(["import", "base.aci"]).ok();
        let (aci, id) = big_image(&env);
        let aci = aci.to_str().unwrap().to_owned();
        let mut child = spawn_paused(&env, &["import", &aci], step, 60);
        wait_paused(&env, &mut child);
        sigkill(&mut child);

        // What each crash leaves behind.
        let linked = step == "after-link-before-record";
        assert_eq!(blob(&env, &id).exists(), linked, "{step}: blob");
        assert!(!record(&env, &id).exists(), "{step}: record");
        assert!(!index(&env, &id).exists(), "{step}: index");
        assert_eq!(
            tmp_count(&env.store()),
            usize::from(!linked),
            "{step}: temps"
        );
        // The other image is untouched and still resolves.
        assert_eq!(env.run(["resolve", "example.com/base"]).ok().trim(), base);
        assert!(!env.run(["images"]).ok().contains("example.com/big"));

        let before = env.run(["fsck"]);
        let gc = env.run(["gc"]);
        gc.ok();
        let after = env.run(["fsck"]);
        snap!(
            format!("kill_{step}"),
            format!("{}{}{}", env.snap(&before), env.snap(&gc), env.snap(&after))
        );
        assert_eq!(tmp_count(&env.store()), 0);
        if linked {
            // A blob without its derivable index and record: fsck names
            // both; the retry (or fsck --repair) writes them.
            assert_eq!(after.code(), 1);
        } else {
            assert_eq!(after.code(), 0, "{step}: {}", after.stdout());
        }
        let retry = env.run(["import", &aci]);
        assert_eq!(retry.ok().trim(), id, "{step}");
        let fsck = env.run(["fsck"]);
        assert_eq!(fsck.code(), 0, "{step}: {}", fsck.stdout());
        assert_eq!(env.run(["resolve", "example.com/big"]).ok().trim(), id);
    }
}

#[test]
fn sigint_during_an_import_removes_its_temp() {
    let env = Env::new();
    image(&env, "base", "example.com/base", &[("a", "a\n")]);
    env.run(["import", "base.aci"]).ok();
    let (aci, id) = big_image(&env);
    let before = store_listing(&env.store());
    let aci = aci.to_str().unwrap().to_owned();
    // `import` and its plumbing form `hash-object -w` alike.
    for args in [
        vec!["import", aci.as_str()],
        vec!["hash-object", "-w", aci.as_str()],
    ] {
        // A short pause: the signal is taken at the next read after it.
        let mut child = spawn_paused(&env, &args, "mid-stream", 1);
        wait_paused(&env, &mut child);
        assert_eq!(tmp_count(&env.store()), 1);
        kill(pid(&child), Signal::SIGINT).unwrap();
        let run = finish(&args, child);
        assert_eq!(run.code(), 128, "{args:?}: {}", run.stderr());
        assert!(
            run.stderr().contains("interrupted by a signal"),
            "{args:?}: {}",
            run.stderr()
        );
        assert!(!blob(&env, &id).exists());
        assert_eq!(tmp_count(&env.store()), 0, "{args:?}: the temp was left");
        assert_eq!(store_listing(&env.store()), before);
        assert_eq!(env.run(["fsck"]).code(), 0);
    }
}

/// A stored image big enough that a render takes a while: many files
/// and a large one.
fn slow_image(env: &Env) -> String {
    let data = noise(48 << 20);
    let mut files: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("many/{i:04}"), format!("{i}\n")))
        .collect();
    files.push(("big".to_owned(), data));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (aci, id) = image(env, "slow", "example.com/slow", &refs);
    env.run([Path::new("import").as_os_str(), aci.as_os_str()])
        .ok();
    id
}

fn render_temps(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".acido-render-"))
        })
        .collect()
}

/// Starts renders of `image` until `signal` reaches one while its temp
/// dir exists (a render can finish first on a fast machine); returns the
/// run and the target.
fn interrupt_a_render(env: &Env, image: &str, signal: Signal) -> (Run, PathBuf) {
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    for attempt in 0..5 {
        let target = work.join(format!("out{attempt}"));
        let target_arg = target.to_str().unwrap().to_owned();
        let args = ["render-tree", image, target_arg.as_str()];
        let mut child = env
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while render_temps(&work).is_empty() && child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(1));
        }
        // Let it get some way into the tree.
        std::thread::sleep(Duration::from_millis(30));
        if child.try_wait().unwrap().is_some() || render_temps(&work).is_empty() {
            let _ = child.wait();
            continue;
        }
        kill(pid(&child), signal).unwrap();
        let run = finish(&args, child);
        if run.code() == 0 {
            // It published before the signal landed: try again.
            continue;
        }
        return (run, target);
    }
    panic!("every render finished before it could be interrupted");
}

#[test]
fn a_render_killed_mid_way_publishes_nothing() {
    let env = Env::new();
    let id = slow_image(&env);
    let (run, target) = interrupt_a_render(&env, &id, Signal::SIGKILL);
    assert_eq!(run.output.status.code(), None, "killed by the signal");
    assert!(!target.exists(), "a partial target was published");
    // SIGKILL leaves the hidden temp dir (the dead process cannot remove
    // it), never the target; the next render beside it sweeps it and
    // succeeds.
    assert_eq!(render_temps(&env.path("work")).len(), 1);
    env.run(["render-tree", &id, target.to_str().unwrap()]).ok();
    assert!(render_temps(&env.path("work")).is_empty());
    assert_eq!(
        fs::read_to_string(target.join("rootfs/many/1999")).unwrap(),
        "1999\n"
    );
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn sigint_during_a_render_removes_the_partial_output() {
    let env = Env::new();
    let id = slow_image(&env);
    let (run, target) = interrupt_a_render(&env, &id, Signal::SIGINT);
    assert_eq!(run.code(), 128, "{}", run.stderr());
    assert!(run.stderr().contains("interrupted"), "{}", run.stderr());
    assert!(!target.exists());
    assert!(render_temps(&env.path("work")).is_empty(), "temp dir left");
}

// ---------------------------------------------------------------------
// Root-only: mounts.

/// A tmpfs of `size` mounted at `dir`, unmounted on drop; or, in the re-run
/// as nobody, a tmpfs the root run mounted for it (see
/// [`every_case_again_as_a_normal_user`]), reached through a symlink at
/// `dir`.
struct Mount(PathBuf);

/// The variable naming the tmpfs of `size` lent to the re-run as nobody.
fn lent_tmpfs_var(size: &str) -> String {
    format!("ACIDO_TEST_TMPFS_{}", size.to_uppercase())
}

/// The tmpfs sizes the cases use.
const TMPFS_SIZES: [&str; 2] = ["8m", "4m"];

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        if !common::is_root() {
            let Some(lent) = std::env::var_os(lent_tmpfs_var(size)) else {
                eprintln!("skipped: mounting a tmpfs needs root");
                return None;
            };
            let _ = fs::remove_dir(dir);
            std::os::unix::fs::symlink(lent, dir).unwrap();
            return Some(Mount(PathBuf::new()));
        }
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: mount -t tmpfs failed (no mount rights here)");
            return None;
        }
        Some(Mount(dir.to_owned()))
    }

    fn read_only_bind(from: &Path, at: &Path) -> Option<Mount> {
        fs::create_dir_all(at).unwrap();
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !bind {
            eprintln!("skipped: mount --bind failed (no mount rights here)");
            return None;
        }
        let mount = Mount(at.to_owned());
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ro {
            eprintln!("skipped: remounting read-only failed");
            return None;
        }
        Some(mount)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // A lent tmpfs (empty path) is unmounted by the root run.
        if !self.0.as_os_str().is_empty() {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
}

#[test]
fn a_full_disk_during_import_and_render_leaves_nothing_behind() {
    let env = Env::new();
    let (big, id) = big_image(&env);
    let (small, small_id) = image(&env, "small", "example.com/small", &[("a", "a\n")]);
    // The store on an 8 MiB tmpfs; the image needs 12.
    let Some(_mount) = Mount::tmpfs(&env.store(), "8m") else {
        return;
    };
    env.run([Path::new("import").as_os_str(), small.as_os_str()])
        .ok();
    let before = store_listing(&env.store());
    let full = env.run([Path::new("import").as_os_str(), big.as_os_str()]);
    assert_eq!(full.code(), 128);
    snap!("full_disk_import", env.snap(&full));
    assert!(full.stderr().contains("No space left on device"));
    assert_eq!(store_listing(&env.store()), before, "the store changed");
    assert!(!blob(&env, &id).exists());
    assert_eq!(env.run(["fsck"]).code(), 0);
    // The space is free again: another import works.
    assert_eq!(
        env.run(["resolve", "example.com/small"]).ok().trim(),
        small_id
    );

    // A render onto a full target filesystem: the big image from a store
    // with room, into a 4 MiB tmpfs.
    let env = Env::new();
    let (big, _) = big_image(&env);
    env.run([Path::new("import").as_os_str(), big.as_os_str()])
        .ok();
    let Some(_target) = Mount::tmpfs(&env.path("small-fs"), "4m") else {
        return;
    };
    let run = env.run(["render-tree", "example.com/big", "small-fs/out"]);
    assert_eq!(run.code(), 128);
    snap!("full_disk_render", env.snap(&run));
    assert_eq!(
        fs::read_dir(env.path("small-fs")).unwrap().count(),
        0,
        "the render left something on the full filesystem"
    );
}

/// Runs acido as the unprivileged user `nobody` through setpriv.
fn run_as_nobody(env: &Env, args: &[&str]) -> Option<Run> {
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.is_file() {
        return None;
    }
    let output = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_acido"))
        .args(args)
        .current_dir(env.path(""))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("TMPDIR", env.path("nobody"))
        .env("LC_ALL", "C")
        .env("ACIDO_STORE", env.store())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Some(Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        output,
    })
}

/// Reads work and writes fail cleanly on a store at `store`; `run` runs
/// acido against it. The index of `id` was deleted, so opening the image
/// must rebuild it in memory without saving it.
fn read_only_checks(env: &Env, store: &Path, id: &str, run: &dyn Fn(&[&str]) -> Run) {
    let before = store_listing(store);
    for args in [
        &["images"][..],
        &["resolve", "example.com/ro"],
        &["ls-tree", "example.com/ro"],
        &["cat-manifest", "example.com/ro"],
        &["fsck"],
    ] {
        let r = run(args);
        assert_eq!(
            r.code(),
            if args[0] == "fsck" { 1 } else { 0 },
            "{args:?}: {}",
            r.stderr()
        );
    }
    let out = env.path("nobody/out");
    let r = run(&["render-tree", id, out.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "render from a read-only store: {}", r.stderr());
    assert_eq!(fs::read_to_string(out.join("rootfs/a")).unwrap(), "a\n");
    let exported = env.path("nobody/x.aci");
    let r = run(&[
        "export",
        "--compression",
        "none",
        id,
        exported.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 0, "export from a read-only store: {}", r.stderr());
    fs::remove_dir_all(&out).unwrap();
    fs::remove_file(&exported).unwrap();
    let other = env.path("other.aci");
    for args in [
        &["import", other.to_str().unwrap()][..],
        &["rm", "example.com/ro"],
    ] {
        let r = run(args);
        assert_eq!(
            r.code(),
            128,
            "{args:?} on a read-only store: {}",
            r.stdout()
        );
        assert!(!r.stderr().contains("panicked"));
    }
    // fsck --repair reports what it could not repair, and why.
    let r = run(&["fsck", "--repair"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stdout().contains("not repaired: repair failed"),
        "{}",
        r.stdout()
    );
    assert_eq!(store_listing(store), before, "a read-only store changed");
}

fn read_only_store(env: &Env) -> String {
    let (aci, id) = image(env, "ro", "example.com/ro", &[("a", "a\n")]);
    image(env, "other", "example.com/other", &[("b", "b\n")]);
    env.run([Path::new("import").as_os_str(), aci.as_os_str()])
        .ok();
    // The index is derivable: a read-only store must still answer.
    fs::remove_file(index(env, &id)).unwrap();
    fs::create_dir_all(env.path("nobody")).unwrap();
    id
}

#[test]
fn a_read_only_store_serves_reads_and_refuses_writes_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let id = read_only_store(&env);
    if common::is_root() {
        // As root: a read-only bind mount (permissions do not stop root).
        let ro = env.path("ro-store");
        if let Some(_mount) = Mount::read_only_bind(&env.store(), &ro) {
            read_only_checks(&env, &ro, &id, &|args| {
                let mut cmd = env.command();
                cmd.env("ACIDO_STORE", &ro).args(args);
                Run {
                    args: args.iter().map(|a| (*a).to_owned()).collect(),
                    output: cmd.output().unwrap(),
                }
            });
        }
        // And as an unprivileged user, for whom the root-owned store is
        // read-only by its permissions.
        fs::set_permissions(env.path(""), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(env.path("nobody"), fs::Permissions::from_mode(0o777)).unwrap();
        if run_as_nobody(&env, &["images"]).is_none() {
            eprintln!("skipped the unprivileged run: setpriv is not installed");
            return;
        }
        read_only_checks(&env, &env.store(), &id, &|args| {
            run_as_nobody(&env, args).unwrap()
        });
    } else {
        // As a normal user: chmod -R a-w.
        let chmod = |mode: &str| {
            let ok = Command::new("chmod")
                .args(["-R", mode])
                .arg(env.store())
                .status()
                .unwrap()
                .success();
            assert!(ok);
        };
        chmod("a-w");
        read_only_checks(&env, &env.store(), &id, &|args| env.run(args));
        chmod("u+w");
    }
}

// ---------------------------------------------------------------------
// gc beside writers and readers, locks, concurrency.

#[test]
fn gc_beside_an_import_loses_nothing() {
    for step in ["mid-stream", "after-link-before-record"] {
        let env = Env::new();
        let (aci, id) = big_image(&env);
        let aci = aci.to_str().unwrap().to_owned();
        let child = {
            let mut child = spawn_paused(&env, &["import", &aci], step, 2);
            wait_paused(&env, &mut child);
            child
        };
        let gc = env.run(["gc"]);
        gc.ok();
        // The summary is on stderr, the removed files on stdout.
        let text = gc.stderr();
        if step == "mid-stream" {
            assert!(text.contains("gc: left 1 temp file in use"), "{text}");
            assert_eq!(tmp_count(&env.store()), 1);
        } else {
            // The blob is linked, its index and record not yet written:
            // gc never removes a blob, and finds nothing to delete.
            assert!(text.starts_with("gc: removed 0 files"), "{text}");
            assert!(blob(&env, &id).exists());
        }
        let run = finish(&["import", &aci], child);
        assert_eq!(run.ok().trim(), id, "{step}");
        let fsck = env.run(["fsck"]);
        assert_eq!(fsck.code(), 0, "{step}: {}", fsck.stdout());
    }
}

#[test]
fn gc_beside_a_render_loses_nothing() {
    let env = Env::new();
    let id = slow_image(&env);
    let mut child = env
        .command()
        .args(["render-tree", &id, "out"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sweeps = 0;
    while child.try_wait().unwrap().is_none() {
        env.run(["gc"]).ok();
        sweeps += 1;
    }
    let run = finish(&["render-tree"], child);
    run.ok();
    assert!(sweeps > 0);
    assert_eq!(
        fs::read_to_string(env.path("out/rootfs/many/0042")).unwrap(),
        "42\n"
    );
    assert_eq!(
        fs::metadata(env.path("out/rootfs/big")).unwrap().len(),
        48 << 20
    );
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn a_stale_lock_from_a_killed_process_does_not_block() {
    let env = Env::new();
    image(&env, "one", "example.com/one", &[("a", "a\n")]);
    let (two, id2) = image(&env, "two", "example.com/two", &[("b", "b\n")]);
    env.run(["import", "one.aci"]).ok();
    let lock = env.store().join("lock");
    // flock(1) holds the store lock itself (-o: not passed to sleep).
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "120"])
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(Duration::from_millis(300));
    // The import stores its blob, then waits for the lock to write its
    // record ...
    let mut import = env
        .command()
        .arg("import")
        .arg(&two)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !blob(&env, &id2).exists() {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        import.try_wait().unwrap().is_none(),
        "the lock was not held"
    );
    // ... until the holder dies: the kernel drops its flock.
    let sleeper = fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        holder.id(),
        holder.id()
    ))
    .unwrap_or_default();
    sigkill(&mut holder);
    for child in sleeper.split_whitespace() {
        if let Ok(raw) = child.parse::<i32>() {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let start = Instant::now();
    while import.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the import still waits after the holder died"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = finish(&["import"], import);
    assert_eq!(run.ok().trim(), id2);
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn eight_concurrent_imports_of_four_images() {
    let env = Env::new();
    let images: Vec<(PathBuf, String)> = (0..4)
        .map(|i| {
            let data = noise(1 << 20);
            image(
                &env,
                &format!("i{i}"),
                &format!("example.com/i{i}"),
                &[("data", &data), ("n", &i.to_string())],
            )
        })
        .collect();
    let children: Vec<(String, Child)> = (0..8)
        .map(|n| {
            let (aci, id) = &images[n % 4];
            let child = env
                .command()
                .arg("import")
                .arg(aci)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (id.clone(), child)
        })
        .collect();
    for (id, child) in children {
        assert_eq!(finish(&["import"], child).ok().trim(), id);
    }
    let table = env.run(["images", "--format", "json"]).ok();
    let value: serde_json::Value = serde_json::from_str(&table).unwrap();
    assert_eq!(value["images"].as_array().unwrap().len(), 4);
    assert_eq!(tmp_count(&env.store()), 0);
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn a_blob_replaced_by_a_symlink_to_a_good_copy_is_refused() {
    let env = Env::new();
    let (aci, id) = image(&env, "one", "example.com/one", &[("a", "a\n")]);
    env.run([Path::new("import").as_os_str(), aci.as_os_str()])
        .ok();
    // The copy has the right bytes: only the symlink is wrong. Following
    // it would let whoever controls the link target control the render.
    let copy = env.path("copy");
    fs::copy(blob(&env, &id), &copy).unwrap();
    fs::remove_file(blob(&env, &id)).unwrap();
    std::os::unix::fs::symlink(&copy, blob(&env, &id)).unwrap();
    let render = env.run(["render-tree", &id, "out"]);
    let export = env.run(["export", &id, "x.aci"]);
    let fsck = env.run(["fsck"]);
    snap!(
        "symlinked_blob",
        format!(
            "{}{}{}",
            env.snap(&render),
            env.snap(&export),
            env.snap(&fsck)
        )
    );
    assert_eq!(render.code(), 128);
    assert_eq!(export.code(), 128);
    assert_eq!(fsck.code(), 1);
    assert!(!env.path("out").exists() && !env.path("x.aci").exists());
}

// ---------------------------------------------------------------------
// Interrupted and killed packs and renders: the temps beside the output.

/// The hidden temps (`.acido-pack-*`, `.acido-render-*`) in `dir`.
fn hidden_temps(dir: &Path) -> Vec<String> {
    common::names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".acido-pack-") || n.starts_with(".acido-render-"))
        .collect()
}

/// A build tree without dependencies (packed whole) with a few files.
fn build_tree(env: &Env) -> PathBuf {
    let files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("f{i:02}"), format!("{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    env.layout("tree", &manifest("example.com/tree", ""), &refs)
}

#[test]
fn sigint_during_a_build_or_pack_leaves_no_temp_no_output_and_the_store_as_it_was() {
    let env = Env::new();
    image(&env, "base", "example.com/base", &[("a", "a\n")]);
    env.run(["import", "base.aci"]).ok();
    build_tree(&env);
    fs::create_dir_all(env.path("out")).unwrap();
    fs::create_dir_all(env.path("ctx/root")).unwrap();
    fs::write(env.path("ctx/root/hello"), "hello\n").unwrap();
    fs::write(
        env.path("ctx/Acidofile"),
        "FROM scratch\nCOPY root/ /\nNAME example.com/acidofile\n",
    )
    .unwrap();
    fs::write(env.path("out/old.aci"), "old\n").unwrap();
    let before = store_listing(&env.store());
    let cases: [(&str, &[&str]); 6] = [
        ("build", &["build", "tree", "out/new.aci"]),
        (
            "build_overwrite",
            &["build", "--overwrite", "tree", "out/old.aci"],
        ),
        ("build_import", &["build", "--import", "tree"]),
        (
            "build_import_output",
            &["build", "--import", "tree", "out/new.aci"],
        ),
        (
            "acidofile",
            &[
                "build",
                "-f",
                "ctx/Acidofile",
                "-o",
                "out/new.aci",
                "--import",
            ],
        ),
        ("pack_aci", &["pack-aci", "-o", "out/new.aci", "tree"]),
    ];
    for (name, args) in cases {
        // A short pause mid-pack: the signal lands in it, the packer sees
        // the flag at its next check.
        let mut child = spawn_paused(&env, args, "pack-mid-write", 1);
        wait_paused(&env, &mut child);
        kill(pid(&child), Signal::SIGINT).unwrap();
        let run = finish(args, child);
        assert_eq!(run.code(), 128, "{name}: {}", run.stderr());
        assert!(
            run.stderr().contains("pack interrupted"),
            "{name}: {}",
            run.stderr()
        );
        if name == "build" || name == "build_import" {
            snap!(format!("sigint_{name}"), env.snap(&run));
        }
        assert!(!env.path("out/new.aci").exists(), "{name}: output written");
        assert_eq!(
            fs::read_to_string(env.path("out/old.aci")).unwrap(),
            "old\n",
            "{name}: the existing output changed"
        );
        assert!(hidden_temps(&env.path("out")).is_empty(), "{name}");
        assert_eq!(store_listing(&env.store()), before, "{name}: store changed");
        assert_eq!(
            fs::read_dir(env.path("tmp")).unwrap().count(),
            0,
            "{name}: work dir left"
        );
    }
    // A signal during the import that follows the pack: the import stops
    // at its next read and the store stays as it was; a written output
    // file is complete and stays.
    for args in [
        &["build", "--import", "tree"][..],
        &["build", "--import", "tree", "out/imported.aci"][..],
    ] {
        let mut child = spawn_paused(&env, args, "mid-stream", 1);
        wait_paused(&env, &mut child);
        kill(pid(&child), Signal::SIGINT).unwrap();
        let run = finish(args, child);
        assert_eq!(run.code(), 128, "{args:?}: {}", run.stderr());
        assert!(run.stderr().contains("interrupted"), "{}", run.stderr());
        assert_eq!(
            store_listing(&env.store()),
            before,
            "{args:?}: store changed"
        );
        assert!(hidden_temps(&env.path("out")).is_empty(), "{args:?}");
    }
    assert_eq!(env.run(["fsck"]).code(), 0);
    // The same commands without a signal go through.
    env.run(["build", "--import", "tree", "out/new.aci"]).ok();
    assert!(hidden_temps(&env.path("out")).is_empty());
    assert_eq!(env.run(["fsck"]).code(), 0);
}

/// A small stored image with a few dozen paths, for step-by-step kills.
fn small_image(env: &Env) -> String {
    let files: Vec<(String, String)> = (0..40)
        .map(|i| (format!("d/{i:02}"), format!("{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (aci, id) = image(env, "small", "example.com/small", &refs);
    env.run([Path::new("import").as_os_str(), aci.as_os_str()])
        .ok();
    id
}

#[test]
fn sigkill_at_each_render_step_then_the_next_render_sweeps_the_leftover() {
    let env = Env::new();
    let id = small_image(&env);
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    for step in [
        "render-after-temp-create",
        "render-mid-write",
        "render-before-rename",
    ] {
        let target = work.join(step);
        let target_arg = target.to_str().unwrap();
        let mut child = spawn_paused(&env, &["render-tree", &id, target_arg], step, 60);
        wait_paused(&env, &mut child);
        sigkill(&mut child);
        assert!(!target.exists(), "{step}: a partial target was published");
        assert_eq!(render_temps(&work).len(), 1, "{step}: the leftover");
        // The next render beside it sweeps the leftover and succeeds.
        env.run(["render-tree", &id, target_arg]).ok();
        assert!(render_temps(&work).is_empty(), "{step}: leftover not swept");
        assert_eq!(
            fs::read_to_string(target.join("rootfs/d/39")).unwrap(),
            "39\n"
        );
    }
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn sigkill_during_a_pack_then_the_next_pack_sweeps_the_leftover() {
    let env = Env::new();
    build_tree(&env);
    fs::create_dir_all(env.path("out")).unwrap();
    for step in ["pack-after-temp-create", "pack-mid-write"] {
        let args = [
            "pack-aci",
            "--compression",
            "none",
            "-o",
            "out/x.aci",
            "tree",
        ];
        let mut child = spawn_paused(&env, &args, step, 60);
        wait_paused(&env, &mut child);
        sigkill(&mut child);
        assert!(!env.path("out/x.aci").exists(), "{step}");
        assert_eq!(hidden_temps(&env.path("out")).len(), 1, "{step}");
        let id = env.run(args).ok();
        assert!(hidden_temps(&env.path("out")).is_empty(), "{step}");
        assert_eq!(
            common::id_of(&fs::read(env.path("out/x.aci")).unwrap()),
            id.trim()
        );
        fs::remove_file(env.path("out/x.aci")).unwrap();
    }
}

#[test]
fn a_live_renders_temp_is_never_swept_nor_a_symlink_followed() {
    let env = Env::new();
    let id = small_image(&env);
    let work = env.path("work");
    fs::create_dir_all(&work).unwrap();
    // A dead render's leftover, and a symlink with a temp's name pointing
    // at a directory that must survive.
    fs::create_dir_all(work.join(".acido-render-dead01/rootfs/x")).unwrap();
    fs::create_dir_all(env.path("precious")).unwrap();
    fs::write(env.path("precious/file"), "keep\n").unwrap();
    std::os::unix::fs::symlink(env.path("precious"), work.join(".acido-render-link01")).unwrap();

    let a = work.join("a");
    let mut live = spawn_paused(
        &env,
        &["render-tree", &id, a.to_str().unwrap()],
        "render-mid-write",
        3,
    );
    wait_paused(&env, &mut live);
    let live_temp: Vec<PathBuf> = render_temps(&work)
        .into_iter()
        .filter(|p| !p.ends_with(".acido-render-dead01") && !p.ends_with(".acido-render-link01"))
        .collect();
    assert_eq!(live_temp.len(), 1, "{:?}", render_temps(&work));

    // A second render into the same parent while the first is paused.
    let b = work.join("b");
    env.run(["render-tree", &id, b.to_str().unwrap()]).ok();
    assert!(live_temp[0].is_dir(), "the live render's temp was swept");
    assert!(!work.join(".acido-render-dead01").exists(), "leftover kept");
    assert!(work
        .join(".acido-render-link01")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(env.path("precious/file")).unwrap(),
        "keep\n"
    );

    // The paused render resumes and publishes its tree.
    finish(&["render-tree"], live).ok();
    for target in [&a, &b] {
        assert_eq!(
            fs::read_to_string(target.join("rootfs/d/07")).unwrap(),
            "7\n"
        );
    }
    let mut left: Vec<String> = render_temps(&work)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".acido-render-link01"]);
}
