//! CLI tests of the store porcelain: images, rm, gc, export, fsck, and the
//! store faults they must survive (killed and concurrent imports, bit
//! flips, a blob replaced by a fifo).

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{blob, hex, index, manifest, record, Env, Run};

/// Snapshot with import times (which follow the real clock) redacted.
macro_rules! snap {
    ($name:expr, $env:expr, $run:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{9})?Z", "[TIME]");
        settings.bind(|| insta::assert_snapshot!($name, $env.snap(&$run)));
    }};
}

/// Packs a layout (plain tar) at `rel` and returns (aci path, id).
fn image(env: &Env, rel: &str, manifest: &str, files: &[(&str, &str)]) -> (PathBuf, String) {
    let layout = env.layout(rel, manifest, files);
    let out = format!("{rel}.aci");
    let id = env.pack(&layout, &out, "none");
    (env.path(&out), id)
}

fn import(env: &Env, aci: &Path) -> String {
    env.run([Path::new("import").as_os_str(), aci.as_os_str()])
        .ok()
        .trim()
        .to_owned()
}

fn tmp_files(env: &Env) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(env.store().join("tmp"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Waits for `child` at most `secs` seconds, killing it and failing on timeout.
fn wait_bounded(args: &[&str], mut child: Child, secs: u64) -> Run {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            return Run {
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                output,
            };
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("acido {args:?} did not finish in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_bounded(env: &Env, args: &[&str]) -> Run {
    let child = env
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(args, child, 30)
}

/// A base image, an image depending on it by imageID and one depending on
/// it by name and version label.
fn family(env: &Env) -> (String, String, String) {
    let base_manifest = manifest(
        "example.com/base",
        r#","labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"}]"#,
    );
    let (base_aci, base) = image(env, "base", &base_manifest, &[("etc/base", "base\n")]);
    import(env, &base_aci);
    let by_id = manifest(
        "example.com/mid",
        &format!(r#","dependencies":[{{"imageName":"example.com/base","imageID":"{base}"}}]"#),
    );
    let (mid_aci, mid) = image(env, "mid", &by_id, &[("etc/mid", "mid\n")]);
    import(env, &mid_aci);
    let by_name = manifest(
        "example.com/top",
        r#","labels":[{"name":"version","value":"2"}],"dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"1.0"}]}]"#,
    );
    let (top_aci, top) = image(env, "top", &by_name, &[("etc/top", "top\n")]);
    import(env, &top_aci);
    (base, mid, top)
}

#[test]
fn images_lists_table_and_json_in_import_order() {
    let env = Env::new();
    let empty = env.run(["images"]);
    snap!("images_empty", env, empty);
    let (base, mid, top) = family(&env);

    let table = env.run(["images"]);
    snap!("images_table", env, table);
    let lines: Vec<&str> = table
        .output
        .stdout
        .split(|&b| b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    assert!(lines[1].starts_with(&base[..19]), "{lines:?}");
    assert!(lines[2].starts_with(&mid[..19]), "{lines:?}");
    assert!(lines[3].starts_with(&top[..19]), "{lines:?}");

    let short = env.run(["images", "--abbrev=4"]);
    snap!("images_abbrev4", env, short);
    let full = env.run(["images", "--no-abbrev"]);
    assert!(full.ok().contains(&base));

    let json = env.run(["images", "--format", "json"]);
    snap!("images_json", env, json);
    let value: serde_json::Value = serde_json::from_str(&json.ok()).unwrap();
    assert_eq!(value["formatVersion"], 1);
    let ids: Vec<&str> = value["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&base, &mid, &top]);
    let size = fs::metadata(blob(&env, &base)).unwrap().len();
    assert_eq!(value["images"][0]["size"], size);

    let bad = env.run(["images", "--abbrev=1"]);
    assert_eq!(bad.code(), 129);
}

#[test]
fn rm_refuses_to_break_dependents_unless_forced() {
    let env = Env::new();
    let (base, mid, top) = family(&env);

    let refused = env.run(["rm", "example.com/base"]);
    snap!("rm_refused", env, refused);
    assert_eq!(refused.code(), 128);
    assert!(blob(&env, &base).exists() && record(&env, &base).exists());

    // Removing base together with one dependent is still refused: the
    // other dependent (top, by name and label) would break.
    let still = env.run(["rm", &base[..20], "example.com/mid"]);
    assert_eq!(still.code(), 128);
    assert!(still.stderr().contains(&top) && !still.stderr().contains(&mid));
    assert!(blob(&env, &mid).exists(), "a refusal removes nothing");

    let missing = env.run(["rm", "example.com/nothing"]);
    snap!("rm_not_found", env, missing);

    let removed = env.run(["rm", "example.com/top", "example.com/mid"]);
    snap!("rm_dependents", env, removed);
    for id in [&top, &mid] {
        assert!(!blob(&env, id).exists());
        assert!(!index(&env, id).exists());
        assert!(!record(&env, id).exists());
    }
    let (_, mid_again) = {
        let aci = env.path("mid.aci");
        (aci.clone(), import(&env, &aci))
    };
    assert_eq!(mid_again, mid);
    let forced = env.run(["rm", "--force", "example.com/base"]);
    snap!("rm_forced", env, forced);
    assert!(!blob(&env, &base).exists());
    let fsck = env.run(["fsck"]);
    assert_eq!(fsck.code(), 0, "{}", fsck.stdout());
}

#[test]
fn rm_refuses_when_a_possible_dependent_cannot_be_read() {
    let env = Env::new();
    let (base, mid, top) = family(&env);
    // mid's blob zeroed: its manifest, so whether it depends on base, is
    // unknown. Only --force goes past that.
    let len = fs::metadata(blob(&env, &mid)).unwrap().len();
    fs::write(blob(&env, &mid), vec![0u8; len as usize]).unwrap();
    let refused = env.run(["rm", "example.com/top"]);
    assert_eq!(refused.code(), 128, "{}", refused.stderr());
    assert!(
        refused.stderr().contains(&mid) && refused.stderr().contains("cannot tell whether"),
        "{}",
        refused.stderr()
    );
    assert!(blob(&env, &top).exists(), "a refusal removes nothing");
    // The unreadable image itself may be removed: nothing asks it then.
    let removed = env.run(["rm", "--force", &mid[..20]]);
    assert_eq!(removed.code(), 0, "{}", removed.stderr());
    let forced = env.run(["rm", "--force", "example.com/base"]);
    assert_eq!(forced.code(), 0, "{}", forced.stderr());
    assert!(forced.stderr().contains(&top), "{}", forced.stderr());
    assert!(!blob(&env, &base).exists());
}

#[test]
fn gc_sweeps_leftovers_and_orphans_but_not_a_locked_temp() {
    use nix::fcntl::{Flock, FlockArg};
    let env = Env::new();
    let (base, mid, _) = family(&env);
    let tmp = env.store().join("tmp");
    fs::write(tmp.join("import-leftover"), vec![7u8; 1000]).unwrap();
    let live = tmp.join("import-live");
    fs::write(&live, b"in flight").unwrap();
    let held = Flock::lock(fs::File::open(&live).unwrap(), FlockArg::LockExclusive).unwrap();
    // An orphaned index and record: their blob is gone.
    fs::remove_file(blob(&env, &mid)).unwrap();

    let gc = env.run(["gc"]);
    snap!("gc", env, gc);
    assert!(live.exists(), "a locked temp is never removed");
    assert!(!tmp.join("import-leftover").exists());
    assert!(!index(&env, &mid).exists() && !record(&env, &mid).exists());
    assert!(blob(&env, &base).exists() && index(&env, &base).exists());

    drop(held);
    let again = env.run(["gc"]);
    snap!("gc_after_unlock", env, again);
    assert!(tmp_files(&env).is_empty());
}

#[test]
fn export_round_trips_in_every_compression() {
    let env = Env::new();
    let (base, _, _) = family(&env);
    for compression in ["none", "gzip", "xz", "bzip2"] {
        let out = format!("out-{compression}.aci");
        let run = env.run([
            "export",
            "--compression",
            compression,
            "example.com/base",
            &out,
        ]);
        assert_eq!(run.ok().trim(), base);
        let hashed = env.run(["hash-object", &out]).ok();
        assert_eq!(hashed.trim(), base, "{compression}");
    }
    assert_eq!(
        fs::read(env.path("out-none.aci")).unwrap(),
        fs::read(blob(&env, &base)).unwrap()
    );
    let run = env.run([
        "export",
        "--compression",
        "gzip",
        &base[..10],
        "out-none.aci",
    ]);
    snap!("export_exists", env, run);
    env.run([
        "export",
        "--overwrite",
        "--compression",
        "gzip",
        &base[..10],
        "out-none.aci",
    ])
    .ok();
    assert_eq!(env.run(["hash-object", "out-none.aci"]).ok().trim(), base);

    let stdout = env.run(["export", "--compression", "none", "example.com/base", "-"]);
    assert_eq!(stdout.code(), 0);
    assert_eq!(stdout.output.stdout, fs::read(blob(&env, &base)).unwrap());
    assert_eq!(stdout.stderr().trim(), base);
}

#[test]
fn a_bit_flip_is_found_refused_and_quarantined() {
    let env = Env::new();
    let (base, mid, _) = family(&env);
    let clean = env.run(["fsck"]);
    snap!("fsck_clean", env, clean);

    let path = blob(&env, &mid);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[700] ^= 0x10;
    fs::write(&path, bytes).unwrap();

    let found = env.run(["fsck"]);
    snap!("fsck_bit_flip", env, found);
    assert_eq!(found.code(), 1);
    assert!(found
        .stdout()
        .starts_with(&format!("hash-mismatch\t{mid}\t")));

    let export = env.run(["export", "example.com/mid", "mid-out.aci"]);
    snap!("export_damaged", env, export);
    assert!(!env.path("mid-out.aci").exists());
    assert!(fs::read_dir(env.dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".acido-export")));

    let repair = env.run(["fsck", "--repair"]);
    snap!("fsck_repair_bit_flip", env, repair);
    assert_eq!(repair.code(), 0);
    assert!(env.store().join("quarantine").join(hex(&mid)).is_file());
    assert!(!path.exists() && !record(&env, &mid).exists() && !index(&env, &mid).exists());
    let after = env.run(["fsck"]);
    assert_eq!(after.code(), 0, "{}", after.stdout());
    assert!(blob(&env, &base).exists());
    // The image can be imported again, intact.
    assert_eq!(import(&env, &env.path("mid.aci")), mid);
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn lost_indexes_and_records_are_rebuilt() {
    let env = Env::new();
    let (base, mid, top) = family(&env);
    let record_before = fs::read(record(&env, &top)).unwrap();
    fs::remove_file(index(&env, &base)).unwrap();
    fs::write(index(&env, &mid), b"not an index").unwrap();
    fs::remove_file(record(&env, &top)).unwrap();
    let mut wrong: serde_json::Value =
        serde_json::from_slice(&fs::read(record(&env, &mid)).unwrap()).unwrap();
    wrong["name"] = "example.com/impostor".into();
    fs::write(record(&env, &mid), serde_json::to_vec(&wrong).unwrap()).unwrap();

    let found = env.run(["fsck"]);
    snap!("fsck_index_record", env, found);
    assert_eq!(found.code(), 1);
    let repair = env.run(["fsck", "--repair"]);
    snap!("fsck_repair_index_record", env, repair);
    assert_eq!(repair.code(), 0);
    assert!(index(&env, &base).is_file());
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&fs::read(record(&env, &top)).unwrap()).unwrap();
    let before: serde_json::Value = serde_json::from_slice(&record_before).unwrap();
    assert_eq!(rebuilt["name"], before["name"]);
    assert_eq!(rebuilt["labels"], before["labels"]);
    assert_eq!(env.run(["fsck"]).code(), 0);
    assert_eq!(env.run(["resolve", "example.com/mid"]).ok().trim(), mid);
}

#[test]
fn a_blob_replaced_by_a_fifo_or_symlink_is_reported_without_hanging() {
    let env = Env::new();
    let (base, mid, _) = family(&env);
    let fifo = blob(&env, &mid);
    fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let link = blob(&env, &base);
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();

    let found = run_bounded(&env, &["fsck"]);
    snap!("fsck_fifo", env, found);
    assert_eq!(found.code(), 1);
    let export = run_bounded(&env, &["export", "example.com/mid", "x.aci"]);
    snap!("export_fifo", env, export);
    let repair = run_bounded(&env, &["fsck", "--repair"]);
    assert_eq!(repair.code(), 0, "{}", repair.stdout());
    assert_eq!(run_bounded(&env, &["fsck"]).code(), 0);
    let quarantine = env.store().join("quarantine");
    assert!(fs::symlink_metadata(quarantine.join(hex(&mid)))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(fs::symlink_metadata(quarantine.join(hex(&base)))
        .unwrap()
        .file_type()
        .is_symlink());
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn a_killed_import_leaves_a_temp_that_fsck_reports_and_gc_removes() {
    let env = Env::new();
    // 4 MiB of incompressible-looking data so the import is mid-stream.
    let mut data = String::with_capacity(4 << 20);
    let mut x: u32 = 1;
    while data.len() < 4 << 20 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.push_str(&format!("{x:08x}"));
    }
    let (aci, id) = image(
        &env,
        "big",
        &manifest("example.com/big", ""),
        &[("big", data.as_str())],
    );
    let bytes = fs::read(&aci).unwrap();
    fs::create_dir_all(env.store()).unwrap();

    let mut child = env
        .command()
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    // Wait until the half has reached the temp file, then kill.
    let start = Instant::now();
    loop {
        let written: u64 = tmp_files(&env)
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        if written > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temp appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    drop(stdin);

    assert!(!blob(&env, &id).exists());
    assert!(!record(&env, &id).exists());
    assert_eq!(fs::read_dir(env.store().join("images")).unwrap().count(), 0);
    assert_eq!(tmp_files(&env).len(), 1);
    let found = env.run(["fsck"]);
    assert_eq!(found.code(), 1);
    assert!(
        found.stdout().starts_with("stale-temp\ttmp/import-"),
        "{}",
        found.stdout()
    );
    assert_eq!(found.stdout().lines().count(), 1);
    let gc = env.run(["gc"]);
    assert!(gc.ok().starts_with("removed temp tmp/import-"));
    assert!(tmp_files(&env).is_empty());
    assert_eq!(env.run(["fsck"]).code(), 0);
    // The retry succeeds.
    assert_eq!(import(&env, &aci), id);
    assert_eq!(env.run(["fsck"]).code(), 0);
}

#[test]
fn eight_concurrent_imports_of_one_image_store_it_once() {
    let env = Env::new();
    let (aci, id) = image(
        &env,
        "one",
        &manifest("example.com/one", ""),
        &[("a", "a\n"), ("b/c", "c\n")],
    );
    let children: Vec<Child> = (0..8)
        .map(|_| {
            env.command()
                .arg("import")
                .arg(&aci)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run = wait_bounded(&["import"], child, 60);
        assert_eq!(run.ok().trim(), id);
    }
    let blobs: Vec<_> = walkdir::WalkDir::new(env.store().join("blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .collect();
    assert_eq!(blobs.len(), 1);
    assert_eq!(fs::read_dir(env.store().join("images")).unwrap().count(), 1);
    assert!(tmp_files(&env).is_empty(), "{:?}", tmp_files(&env));
    assert_eq!(env.run(["fsck"]).code(), 0);
}

/// Rewrites the index of `id` as acido wrote it before the fast digest
/// (index version 1: no digest flag, no digest).
fn as_old_index(env: &Env, id: &str) {
    let path = index(env, id);
    let v2 = fs::read(&path).unwrap();
    assert_eq!(
        &v2[8..13],
        &[2, 0, 0, 0, 1],
        "a version 2 index with a digest"
    );
    let mut v1 = v2[..8].to_vec();
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&v2[13 + 32..]);
    fs::write(&path, v1).unwrap();
}

fn flip_a_data_bit(env: &Env, id: &str, content: &[u8]) {
    let path = blob(env, id);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes
        .windows(content.len())
        .position(|w| w == content)
        .unwrap();
    bytes[at] ^= 0x01;
    fs::write(&path, bytes).unwrap();
}

#[test]
fn a_bit_flip_fails_extract_by_the_fast_digest_and_old_indexes_by_sha512() {
    let env = Env::new();
    let (base, mid, _) = family(&env);
    // Imported now: the index has the digest, and it catches the flip.
    flip_a_data_bit(&env, &base, b"base\n");
    let fast = env.run(["extract", "example.com/mid", "out-fast"]);
    snap!("extract_bit_flip_fast_digest", env, fast);
    assert_eq!(fast.code(), 128);
    assert!(!env.path("out-fast").exists());
    // An old index without it: the render re-hashes SHA-512 and refuses too.
    as_old_index(&env, &base);
    let slow = env.run(["extract", "example.com/mid", "out-slow"]);
    snap!("extract_bit_flip_old_index", env, slow);
    assert_eq!(slow.code(), 128);
    assert!(!env.path("out-slow").exists());
    let _ = mid;
}

#[test]
fn old_indexes_are_clean_and_fsck_repair_adds_the_fast_digest() {
    let env = Env::new();
    let (base, mid, top) = family(&env);
    for id in [&base, &mid, &top] {
        as_old_index(&env, id);
    }
    // Not damage: a store written by an older acido is clean, and says how
    // to make its renders fast.
    let old = env.run(["fsck"]);
    snap!("fsck_old_indexes", env, old);
    assert_eq!(old.code(), 0);
    assert!(env.run(["extract", "example.com/top", "out-old"]).code() == 0);
    let repair = env.run(["fsck", "--repair"]);
    snap!("fsck_repair_old_indexes", env, repair);
    assert_eq!(repair.code(), 0);
    for id in [&base, &mid, &top] {
        assert_eq!(&fs::read(index(&env, id)).unwrap()[8..13], &[2, 0, 0, 0, 1]);
    }
    assert_eq!(
        env.run(["fsck"]).stderr(),
        "fsck: checked 3 blobs, 0 problems, 0 left\n"
    );
    // A digest that lies about an intact blob is a problem fsck repairs.
    let path = index(&env, &mid);
    let mut lying = fs::read(&path).unwrap();
    lying[13] ^= 0xff;
    fs::write(&path, lying).unwrap();
    let found = env.run(["fsck"]);
    assert_eq!(found.code(), 1);
    assert!(
        found
            .stdout()
            .starts_with(&format!("bad-digest\t{mid}\tindex records blake3-")),
        "{}",
        found.stdout()
    );
    assert_eq!(env.run(["fsck", "--repair"]).code(), 0);
    assert_eq!(env.run(["fsck"]).code(), 0);
    assert_eq!(env.run(["extract", "example.com/mid", "out-new"]).code(), 0);
}
